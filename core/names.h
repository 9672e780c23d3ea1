/*
 * Look-up of a length-delimited string in a table of stable names, shared by
 * the core's enum parsers.
 */
#ifndef CLAIMD_CORE_NAMES_H
#define CLAIMD_CORE_NAMES_H

#include <stddef.h>

/** Index of s[0..len) in names[0..n), or -1. NULL entries never match. */
int names_find(const char *const *names, int n, const char *s, size_t len);

#endif
