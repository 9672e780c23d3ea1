/*
 * PostgreSQL stopped and started again under a running pool, on a cluster of
 * the test's own (tests/pg/pg-private, migrated with `claimd migrate`): claims
 * fail with CLAIMD_EUNAVAIL while it is down and the same pool recovers.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopdb.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 400

static struct loopdb ld;
static char dir[64];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && v[0] != '\0', "%s is not set: run this test with ctest", name);
    return v;
}

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/claimd-rs-%ld", (long)getpid());
    cr_assert_eq(sh("%s start --fast --reset %s >/dev/null", env("CLAIMD_PG_PRIVATE"), dir), 0);
    loopdb_urls(&ld, dir, "claimd");
    cr_assert_eq(sh("%s migrate --database-url '%s' >/dev/null", env("CLAIMD_BIN"), ld.owner_url),
                 0);
    ld.owner = testdb_connect(ld.owner_url);
    testdb_seed(ld.owner);
    loopdb_start(&ld, &(struct loopdb_opts){.nconns = 2,
                                            .backoff_min_ms = BACKOFF_MIN_MS,
                                            .backoff_max_ms = BACKOFF_MAX_MS});
}

static void teardown(void)
{
    loopdb_teardown(&ld);
    if (dir[0] != '\0') {
        cr_assert_eq(sh("%s destroy %s >/dev/null 2>&1", env("CLAIMD_PG_PRIVATE"), dir), 0);
        sh("rm -f %s.lock", dir);
    }
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 60);

static void claim(struct pipeline_req *r, const char *ref, const char *incident)
{
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = ref,
                                        .incident = incident,
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_SCREEN,
                                        .remedy = ADJ_REMEDY_REPAIR,
                                        .estimate = 10000});
}

/* Submits r while the server is down: refused at once, or failed soon after. */
static void assert_unavailable(struct pipeline_req *r)
{
    int rc = loopdb_submit(&ld, 0, r);
    if (rc == 0) {
        loopdb_run_done(&ld, 5000);
        rc = r->rc;
    }
    cr_assert_eq(rc, CLAIMD_EUNAVAIL, "%s: %s", r->claim_ref, claimd_rc_name(rc));
}

Test(restart, unavailable_while_stopped_then_recovers)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 4);
    struct pipeline *pl = ld.inst[0].pl;
    claim(&r[0], "C-2", "2024-06-01");
    loopdb_decide(&ld, 0, &r[0], 1);
    cr_assert_eq(r[0].rc, 0);
    cr_assert_eq(r[0].rec.use_number, 2);

    /* C-3 is in flight, blocked on a row lock, when the server stops. */
    PGconn *holder = loopdb_lock_subs(&ld, "'L-1'");
    claim(&r[1], "C-3", "2024-07-01");
    cr_assert_eq(loopdb_submit(&ld, 0, &r[1]), 0);
    loopdb_wait_lock_waiters(&ld, 1);
    PQfinish(ld.admin);
    ld.admin = NULL;
    PQfinish(ld.owner);
    ld.owner = NULL;
    cr_assert_eq(sh("%s stop %s >/dev/null 2>&1", env("CLAIMD_PG_PRIVATE"), dir), 0);
    PQfinish(holder);
    loopdb_run_done(&ld, 5000);
    cr_assert_eq(r[1].rc, CLAIMD_EUNAVAIL, "C-3: %s", claimd_rc_name(r[1].rc));

    /* Down for several backoff periods: every claim and operation is refused. */
    for (int i = 0; i < 4; i++) {
        claim(&r[2], "C-4", "2025-05-01");
        assert_unavailable(&r[2]);
        struct store_op op;
        loopdb_op(&op, STORE_GET_CLAIM, 1, "C-1");
        int rc = loopdb_store(&ld, 0, &op);
        cr_assert_eq(rc, CLAIMD_EUNAVAIL, "GET_CLAIM: %s", claimd_rc_name(rc));
        loopdb_run_ms(&ld, BACKOFF_MAX_MS / 2);
    }
    cr_assert_eq(dbpool_up(&ld.inst[0].pool), 0);

    /* Back up: the same pool reconnects within a few backoff periods. */
    cr_assert_eq(sh("%s start --fast %s >/dev/null 2>&1", env("CLAIMD_PG_PRIVATE"), dir), 0);
    uint64_t t0 = uv_hrtime();
    bool up = loopdb_wait_up(&ld, 0, 2, 5 * BACKOFF_MAX_MS);
    cr_assert(up, "the pool did not recover within %d ms", 5 * BACKOFF_MAX_MS);
    fprintf(stderr, "restart: pool up %llu ms after the server\n",
            (unsigned long long)((uv_hrtime() - t0) / 1000000));
    cr_assert_eq(ld.inst[0].pl, pl);
    cr_assert_eq(ld.inst[0].pool.nconns, 2);

    /* C-3 was never stored: it is decided now. C-4 is a new claim. */
    claim(&r[1], "C-3", "2024-07-01");
    claim(&r[2], "C-4", "2025-05-01");
    loopdb_decide(&ld, 0, &r[1], 2);
    cr_assert_eq(r[1].rc, 0);
    cr_assert(!r[1].replayed);
    cr_assert_eq(r[1].rec.status, ADJ_STATUS_DENIED);
    cr_assert_eq(r[1].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT);
    cr_assert_eq(r[2].rc, 0);
    cr_assert_eq(r[2].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r[2].rec.use_number, 1);

    ld.owner = testdb_connect(ld.owner_url);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(claim_ref, ',' ORDER BY seq) FROM claims"),
                     "C-1,C-2,C-3,C-4");
    struct pipeline_stats st;
    pipeline_stats(pl, &st);
    cr_assert_eq(st.failed, 1, "only C-3's batch failed");
}
