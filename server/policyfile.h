/*
 * `claimd policy add FILE.json`: reads a policy version from a JSON file
 * (every parameter of policy.md, nothing else), validates it through the core
 * together with the stored versions, and stores it as the owner role.
 * Running daemons pick it up on SIGHUP.
 */
#ifndef CLAIMD_SERVER_POLICYFILE_H
#define CLAIMD_SERVER_POLICYFILE_H

#include <jansson.h>

#include "policy.h"

/** The policy command; returns the process exit code. */
int policyfile_main(int argc, char **argv);

/**
 * Decodes one version from a JSON object; 0, or CLAIMD_EINVAL with the
 * failing member in err.
 */
CLAIMD_MUSTCHECK int policyfile_decode(json_t *obj, struct policy *p, struct claimd_error *err);

#endif
