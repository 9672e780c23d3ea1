/*
 * Faults and limits: backends terminated under a batch (nothing half-written,
 * the pool reconnects), full queues (CLAIMD_EOVERLOAD from the pipeline and
 * the pool), and no heap growth over 10,000 claims in steady state.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
/* From ASan's runtime (gcc ships no <sanitizer/allocator_interface.h>). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "loopdb.h"

static struct loopdb ld;

static void setup(void)
{
    loopdb_setup(&ld,
                 &(struct loopdb_opts){.nconns = 2, .max_batch = 4, .max_queue = 8, .max_jobs = 4});
    loopdb_add_sub(&ld, 1, "L-8", "2024-04-01", "2024-04-03", true);
    loopdb_add_sub(&ld, 1, "L-9", "2024-04-01", "2024-04-03", true);
}

static void teardown(void)
{
    loopdb_teardown(&ld);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 60);

static void simple_claim(struct pipeline_req *r, const char *ref, const char *sub,
                         const char *incident)
{
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = ref,
                                        .sub = sub,
                                        .incident = incident,
                                        .remedy = ADJ_REMEDY_REPAIR,
                                        .estimate = 20000});
}

/*
 * Both connections wait on row locks held by the owner; then three claims of
 * L-1 form one batch that blocks on L-1's lock, and every claimd_app backend
 * of this database is terminated. The batch's claims fail with
 * CLAIMD_EUNAVAIL and leave no row; the pool reconnects after its backoff
 * and the same claims are then decided (not replayed: nothing was stored).
 */
Test(faults, backend_terminated_mid_batch)
{
    PGconn *hold_a = loopdb_lock_subs(&ld, "'L-8', 'L-9'");
    PGconn *hold_b = loopdb_lock_subs(&ld, "'L-1'");
    struct pipeline_req *blk = loopdb_reqs(&ld, 2), *p = loopdb_reqs(&ld, 3);
    simple_claim(&blk[0], "X", "L-8", "2024-06-01");
    simple_claim(&blk[1], "Y", "L-9", "2024-06-01");
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[0]), 0);
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[1]), 0);
    loopdb_wait_lock_waiters(&ld, 2);
    simple_claim(&p[0], "P-1", "L-1", "2024-06-01");
    simple_claim(&p[1], "P-2", "L-1", "2024-06-02");
    simple_claim(&p[2], "P-3", "L-1", "2024-06-03");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(loopdb_submit(&ld, 0, &p[i]), 0);

    /* X and Y finish; a freed connection takes P-1..P-3 and waits on L-1. */
    loopdb_unlock(hold_a);
    while (ld.pending > 3)
        loopdb_run_ms(&ld, 5);
    cr_assert_eq(blk[0].rc, 0);
    cr_assert_eq(blk[1].rc, 0);
    loopdb_wait_lock_waiters(&ld, 1);
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.in_flight, 1, "P-1..P-3 are one batch in flight");

    char killed[16];
    testdb_value(loopdb_admin(&ld),
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND usename = 'claimd_app'",
                 killed, sizeof(killed));
    cr_assert_str_eq(killed, "2");
    loopdb_run_done(&ld, 10000);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(p[i].rc, CLAIMD_EUNAVAIL, "%s: rc %d (%s)", p[i].claim_ref, p[i].rc,
                     claimd_rc_name(p[i].rc));
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.failed, 1);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims WHERE claim_ref LIKE 'P-%%'"),
                     "0");
    cr_assert_str_eq(
        loopdb_val(&ld, "SELECT string_agg(claim_ref, ',' ORDER BY claim_ref) FROM claims"),
        "C-1,X,Y");
    loopdb_unlock(hold_b);

    /* The same pool objects come back within a few backoff periods (20..200 ms). */
    cr_assert(loopdb_wait_up(&ld, 0, 2, 3000), "the pool did not reconnect");
    loopdb_decide(&ld, 0, p, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(p[i].rc, 0);
        cr_assert(!p[i].replayed);
    }
    cr_assert_eq(p[0].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(p[0].rec.use_number, 2);
    cr_assert_eq(p[1].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT);
    cr_assert_eq(p[2].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT);
    cr_assert_str_eq(
        loopdb_val(&ld, "SELECT string_agg(claim_ref, ',' ORDER BY claim_ref) FROM claims"),
        "C-1,P-1,P-2,P-3,X,Y");
    cr_assert_lt(p[0].rec.seq, p[1].rec.seq);
    cr_assert_lt(p[1].rec.seq, p[2].rec.seq);
}

static struct store_op ops[5];

/*
 * With both connections held by row locks nothing drains: the pipeline takes
 * max_queue (8) claims and answers CLAIMD_EOVERLOAD to the next, and the pool
 * takes max_jobs (4) store operations and refuses the fifth. Once the locks
 * go, everything accepted completes and the queue takes claims again.
 */
Test(faults, queue_full_is_overload)
{
    PGconn *holder = loopdb_lock_subs(&ld, "'L-1', 'L-8'");
    struct pipeline_req *blk = loopdb_reqs(&ld, 2), *q = loopdb_reqs(&ld, 11);
    simple_claim(&blk[0], "X", "L-1", "2024-06-01");
    simple_claim(&blk[1], "Y", "L-8", "2024-06-01");
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[0]), 0);
    cr_assert_eq(loopdb_submit(&ld, 0, &blk[1]), 0);
    loopdb_wait_lock_waiters(&ld, 2);

    char ref[16];
    for (int i = 0; i < 10; i++) {
        snprintf(ref, sizeof(ref), "Q-%d", i);
        simple_claim(&q[i], ref, i % 2 ? "L-9" : "L-1", "2024-06-01");
        int rc = loopdb_submit(&ld, 0, &q[i]);
        cr_assert_eq(rc, i < 8 ? 0 : CLAIMD_EOVERLOAD, "%s: rc %d", ref, rc);
    }
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.queued, 8);
    cr_assert_eq(st.in_flight, 2);

    for (int i = 0; i < 5; i++) {
        loopdb_op(&ops[i], STORE_GET_CLAIM, 1, "C-1");
        int rc = loopdb_store_submit(&ld, 0, &ops[i]);
        cr_assert_eq(rc, i < 4 ? 0 : CLAIMD_EOVERLOAD, "store operation %d: rc %d", i, rc);
    }
    cr_assert_eq(ld.inst[0].pool.queued, 4);
    loopdb_run_ms(&ld, 50);
    cr_assert_eq(ld.pending, 2 + 8 + 4, "nothing drains while the locks are held");

    loopdb_unlock(holder);
    loopdb_run_done(&ld, 20000);
    cr_assert_eq(blk[0].rc, 0);
    cr_assert_eq(blk[1].rc, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(q[i].rc, 0, "%s", q[i].claim_ref);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ops[i].rc, 0);
        cr_assert_str_eq(ops[i].rec.claim_ref, "C-1");
    }
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims WHERE claim_ref IN ('Q-8', "
                                     "'Q-9')"),
                     "0");
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims"), "11");

    simple_claim(&q[10], "Q-10", "L-9", "2024-06-01");
    loopdb_decide(&ld, 0, &q[10], 1);
    cr_assert_eq(q[10].rc, 0);
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.claims, 11);
}

/* ------------------------------------------------------------------------
 * No growth in steady state
 * ------------------------------------------------------------------------ */

#define MEM_ROUND   256
#define MEM_SUBS    16
#define MEM_WARMUP  8
#define MEM_MEASURE 40 /* 10,240 claims */
#define MEM_SLACK   (16 * 1024)

static void mem_setup(void)
{
    char ref[16], imei[16];
    loopdb_setup(&ld, &(struct loopdb_opts){.nconns = 2, .max_batch = 64, .max_queue = 512});
    for (int i = 0; i < MEM_SUBS; i++) {
        snprintf(ref, sizeof(ref), "M-%02d", i);
        loopdb_imei(imei, 5000 + (unsigned long)i);
        loopdb_add_sub(&ld, 1, ref, "2024-04-01", "2024-04-03", true);
        loopdb_add_device(&ld, 1, ref, imei, "2024-04-10");
    }
}

TestSuite(memory, .init = mem_setup, .fini = teardown, .timeout = 90);

/* Bytes the allocator has handed out and not taken back. */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/*
 * One round of MEM_ROUND claims over MEM_SUBS subscriptions; returns how many
 * did not end with rc 0. No Criterion assertion runs inside, so that only the
 * pipeline, the pool, libpq and libuv touch the heap.
 */
static int mem_round(struct pipeline_req *r, int round)
{
    char ref[16], sub[16], imei[16];
    int bad = 0;
    for (int i = 0; i < MEM_ROUND; i++) {
        int n = round * MEM_ROUND + i;
        snprintf(ref, sizeof(ref), "M%07d", n);
        snprintf(sub, sizeof(sub), "M-%02d", n % MEM_SUBS);
        loopdb_imei(imei, 5000 + (unsigned long)(n % MEM_SUBS));
        loopdb_claim(&ld, &r[i],
                     &(struct loopdb_claim){.ref = ref,
                                            .sub = sub,
                                            .imei = imei,
                                            .incident = "2024-05-01",
                                            .remedy = ADJ_REMEDY_REPAIR,
                                            .estimate = 10000});
        ld.pending++;
        if (pipeline_submit(ld.inst[0].pl, &r[i]) != 0) {
            ld.pending--;
            bad++;
        }
    }
    while (ld.pending > 0)
        uv_run(&ld.loop, UV_RUN_ONCE);
    for (int i = 0; i < MEM_ROUND; i++)
        bad += r[i].rc != 0;
    return bad;
}

/*
 * After a warm-up (libpq's buffers reach their working size), deciding
 * 10,240 more claims leaves the heap where it was: the pipeline and the pool
 * allocate nothing per claim, and libpq's results are all cleared.
 */
Test(memory, no_growth_over_10000_claims)
{
    struct pipeline_req *r = loopdb_reqs(&ld, MEM_ROUND);
    int bad = 0, round = 0;
    for (; round < MEM_WARMUP; round++)
        bad += mem_round(r, round);
    size_t before = heap_in_use();
    for (; round < MEM_WARMUP + MEM_MEASURE; round++)
        bad += mem_round(r, round);
    size_t after = heap_in_use();
    cr_assert_eq(bad, 0);
    cr_assert_gt(before, 0, "no heap statistics");
    long long growth = (long long)after - (long long)before;
    cr_assert_leq(growth, MEM_SLACK, "heap grew by %lld bytes (%zu -> %zu) over %d claims", growth,
                  before, after, MEM_MEASURE * MEM_ROUND);
    cr_assert_geq(growth, -MEM_SLACK, "heap shrank by %lld bytes", -growth);
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.claims, (uint64_t)(MEM_WARMUP + MEM_MEASURE) * MEM_ROUND);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FILTER (WHERE status = 'approved') || ' ' || "
                                     "count(*) FROM claims WHERE claim_ref LIKE 'M%%'"),
                     "32 12288");
    fprintf(stderr, "memory: heap %zu -> %zu bytes over %d claims\n", before, after,
            MEM_MEASURE * MEM_ROUND);
}
