/*
 * Golden cases (tests/cases/<rule>/<case>/): loading a case folder into core
 * structs, running its operation through the core, and comparing the outcome
 * with expected.json. Loading and checking allocate; running never does.
 */
#ifndef CLAIMD_TESTS_GOLDEN_H
#define CLAIMD_TESTS_GOLDEN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "adj.h"
#include "policy.h"
#include "sub.h"

#define GOLDEN_PATH_MAX 512
#define GOLDEN_REF_MAX  64

enum golden_op {
    GOLDEN_OP_CLAIM = 0,
    GOLDEN_OP_BATCH,
    GOLDEN_OP_REGISTER,
    GOLDEN_OP_ACTIVATE,
    GOLDEN_OP_CANCEL,
    GOLDEN_OP_CREATE,
    GOLDEN_OP_STATE,
};

/** What the core answered; filled by golden_run into buffers sized at load. */
struct golden_got {
    int rc;
    struct claimd_error err;
    struct adj_decision decision;
    struct adj_outcome *outcomes; /* one per claim of a batch */
    enum sub_verdict verdict;
    struct sub_state state;
    int64_t fee_for_month; /* sub_fee_for_month on the state's day */
    size_t *use_idx;       /* history indexes listed as uses of the window */
    size_t use_count;
};

/**
 * One case: its inputs as core structs, its expected.json, and room for the
 * answer. load_error is non-empty when the folder could not be loaded.
 */
struct golden_case {
    char path[GOLDEN_PATH_MAX];
    char load_error[GOLDEN_PATH_MAX];
    enum golden_op op;
    json_t *expected;

    struct policy *policies;
    struct policy_set set;
    struct adj_facts facts; /* policies, subscription, device, today */

    struct adj_history_entry *hist;
    char (*hist_refs)[GOLDEN_REF_MAX + 1];
    size_t hist_len;
    struct adj_history_entry *work; /* hist_len + claim_count entries */
    struct adj_history work_hist;

    struct adj_claim *claims;
    size_t claim_count;
    struct adj_device reg;
    struct sub_imei_facts imei_facts;
    date_t date_arg; /* activated_on, cancelled_on or on */

    struct golden_got got;
};

/**
 * Loads every case folder (one holding request.json) under root, sorted by
 * path, into a new array. Returns the number of cases, or -1 when root cannot
 * be read. A case that fails to load is kept with load_error set.
 */
long golden_load_all(const char *root, struct golden_case **out);

/** Frees what golden_load_all returned. */
void golden_free_all(struct golden_case *cases, size_t n);

/**
 * Runs the case's core call(s) into c->got. Calls only the core and writes
 * only into memory golden_load_all allocated: it never allocates.
 */
void golden_run(struct golden_case *c);

/**
 * Compares c->got with every member of expected.json. Returns true when all
 * match; otherwise msg lists each differing member with both values.
 */
bool golden_check(const struct golden_case *c, char *msg, size_t len);

#endif
