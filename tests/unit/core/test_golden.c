/*
 * The golden-case runner: walks CLAIMD_CASES_DIR, runs every case through the
 * core and reports each failing case by path with the members that differed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "golden.h"

/* Below this many cases the tree was not found or was emptied by mistake. */
#define MIN_CASES 100

#define MSG_SIZE 4096

/* Runs and checks one case; prints why it failed. Returns true when it passed. */
static bool run_one(struct golden_case *c)
{
    static char msg[MSG_SIZE];
    golden_run(c);
    if (golden_check(c, msg, sizeof(msg)))
        return true;
    cr_log_error("%s:%s", c->path, msg);
    return false;
}

Test(golden, every_case_matches_expected)
{
    struct golden_case *cases = NULL;
    long n = golden_load_all(CLAIMD_CASES_DIR, &cases);
    cr_assert_geq(n, 0, "cannot read %s", CLAIMD_CASES_DIR);
    long failed = 0;
    for (long i = 0; i < n; i++)
        if (!run_one(&cases[i]))
            failed++;
    golden_free_all(cases, (size_t)n);
    cr_expect_eq(failed, 0, "%ld of %ld golden cases failed (listed above)", failed, n);
    cr_assert_geq(n, MIN_CASES, "only %ld cases under %s", n, CLAIMD_CASES_DIR);
}
