/*
 * Races for one subscription's last uses and for one claim_ref: within one
 * pipeline over several connections, across two pipelines on one loop (two
 * pools, as two daemons would hold) and across two threads with a loop each.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "loopdb.h"

#define NCLAIMS 64

static struct loopdb ld;
static char race_imei[16];

static void setup(void)
{
    loopdb_setup(&ld, &(struct loopdb_opts){.instances = 2, .nconns = 4, .max_batch = 4});
    loopdb_imei(race_imei, 4242);
    loopdb_add_sub(&ld, 1, "L-R", "2024-04-01", "2024-04-03", true);
    loopdb_add_device(&ld, 1, "L-R", race_imei, "2024-04-10");
}

static void teardown(void)
{
    loopdb_teardown(&ld);
}

TestSuite(races, .init = setup, .fini = teardown, .timeout = 60);

/* Claim i for L-R: a 10,000 yen repair the option would cover if a use is left. */
static void race_claim(struct pipeline_req *r, int i)
{
    char ref[16];
    snprintf(ref, sizeof(ref), "R-%02d", i);
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = ref,
                                        .sub = "L-R",
                                        .imei = race_imei,
                                        .incident = "2024-05-01",
                                        .remedy = ADJ_REMEDY_REPAIR,
                                        .estimate = 10000});
}

/* Exactly two approvals (uses 1 and 2), every other claim frequency_limit. */
static void assert_two_approved(const struct pipeline_req *r, size_t n)
{
    int approved = 0, uses = 0;
    long long first_use = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].rc, 0, "%s: rc %d", r[i].claim_ref, r[i].rc);
        cr_assert(!r[i].replayed);
        if (r[i].rec.status == ADJ_STATUS_APPROVED) {
            approved++;
            uses |= 1 << r[i].rec.use_number;
            cr_assert_eq(r[i].rec.uses_remaining, 2 - r[i].rec.use_number);
            cr_assert_eq(r[i].rec.covered_amount, 10000);
            if (r[i].rec.use_number == 1)
                first_use = (long long)r[i].rec.seq;
        } else {
            cr_assert_eq(r[i].rec.status, ADJ_STATUS_DENIED);
            cr_assert_eq(r[i].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT, "%s", r[i].claim_ref);
            cr_assert_eq(r[i].rec.uses_remaining, 0);
            cr_assert_eq(r[i].rec.use_number, 0);
        }
    }
    cr_assert_eq(approved, 2);
    cr_assert_eq(uses, (1 << 1) | (1 << 2), "use numbers 1 and 2");
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) || ' ' || count(*) FILTER (WHERE status = "
                                     "'approved') FROM claims c JOIN subscriptions s ON s.id = "
                                     "c.subscription_id WHERE s.subscription_ref = 'L-R'"),
                     "64 2");
    /* Use 2 counted use 1, and nothing else. */
    char want[64];
    snprintf(want, sizeof(want), "1:;2:%lld", first_use);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(use_number || ':' || "
                                     "array_to_string(counted_uses, ','), ';' ORDER BY seq) "
                                     "FROM claims WHERE claim_ref LIKE 'R-%%' "
                                     "AND status = 'approved'"),
                     want);
}

/* One pipeline, four connections, batches of at most four claims. */
Test(races, last_uses_one_pipeline)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++)
        race_claim(&r[i], i);
    loopdb_decide(&ld, 0, r, NCLAIMS);
    assert_two_approved(r, NCLAIMS);
    /* Within one pipeline the queue order is the decision order. */
    cr_assert_eq(r[0].rec.use_number, 1);
    cr_assert_eq(r[1].rec.use_number, 2);
    for (int i = 1; i < NCLAIMS; i++)
        cr_assert_gt(r[i].rec.seq, r[i - 1].rec.seq);
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.claims, NCLAIMS);
    /* The first claim goes alone, the other 63 in batches of at most 4. */
    cr_assert_eq(st.batches, 1 + 16);
    cr_assert_eq(st.failed, 0);
}

/* Two pipelines with a pool each on one loop, claims interleaved. */
Test(races, last_uses_two_pipelines_one_loop)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++) {
        race_claim(&r[i], i);
        cr_assert_eq(loopdb_submit(&ld, (size_t)i % 2, &r[i]), 0);
    }
    loopdb_run_done(&ld, 30000);
    assert_two_approved(r, NCLAIMS);
    struct pipeline_stats a, b;
    pipeline_stats(ld.inst[0].pl, &a);
    pipeline_stats(ld.inst[1].pl, &b);
    cr_assert_eq(a.claims, NCLAIMS / 2);
    cr_assert_eq(b.claims, NCLAIMS / 2);
    cr_assert_eq(a.failed + b.failed, 0);
}

/* ------------------------------------------------------------------------
 * Two threads, each with its own loop, pool and pipeline
 * ------------------------------------------------------------------------ */

struct worker {
    const char *url;
    const struct policy_set *policies;
    uv_barrier_t *barrier;
    struct pipeline_req *reqs;
    size_t n;
    int pending;
    int rc_setup;
    int rc_submit;
    int rc_close;
};

static void worker_done(struct pipeline_req *r)
{
    struct worker *w = r->data;
    w->pending--;
}

/* Runs until every claim is done; assertions stay on the main thread. */
static void worker_run(void *arg)
{
    struct worker *w = arg;
    uv_loop_t loop;
    struct dbpool pool;
    struct pipeline *pl = NULL;
    struct pgconn_config cfg = {.conninfo = w->url,
                                .statement_timeout_ms = 20000,
                                .connect_timeout_ms = 5000,
                                .job_timeout_ms = 30000,
                                .backoff_min_ms = 20,
                                .backoff_max_ms = 200};
    cfg.statements[0] = (struct pgconn_statements){pipeline_statements, pipeline_nstatements};
    struct pipeline_config pc = {.max_batch = 4, .max_queue = 1024, .max_retries = 5};
    w->rc_setup = uv_loop_init(&loop);
    if (w->rc_setup == 0)
        w->rc_setup = dbpool_init(&pool, &loop, &cfg, 4, 64);
    if (w->rc_setup == 0)
        w->rc_setup = pipeline_create(&pl, &pool, &pc, w->policies);
    if (w->rc_setup != 0) {
        uv_barrier_wait(w->barrier);
        return;
    }
    pipeline_set_today(pl, date_from_ymd(2026, 11, 26));
    dbpool_start(&pool);
    while (dbpool_up(&pool) < 4)
        uv_run(&loop, UV_RUN_ONCE);
    uv_barrier_wait(w->barrier);
    for (size_t i = 0; i < w->n && w->rc_submit == 0; i++) {
        w->reqs[i].done = worker_done;
        w->reqs[i].data = w;
        w->rc_submit = pipeline_submit(pl, &w->reqs[i]);
        w->pending += w->rc_submit == 0;
    }
    while (w->pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
    dbpool_close(&pool, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pipeline_destroy(pl);
    w->rc_close = uv_loop_close(&loop);
}

static void run_threads(struct pipeline_req *r)
{
    uv_barrier_t barrier;
    uv_thread_t tid[2];
    struct worker w[2];
    cr_assert_eq(uv_barrier_init(&barrier, 2), 0);
    for (int t = 0; t < 2; t++) {
        w[t] = (struct worker){.url = ld.app_url,
                               .policies = &ld.policies,
                               .barrier = &barrier,
                               .reqs = r + t * NCLAIMS / 2,
                               .n = NCLAIMS / 2};
        cr_assert_eq(uv_thread_create(&tid[t], worker_run, &w[t]), 0);
    }
    for (int t = 0; t < 2; t++)
        cr_assert_eq(uv_thread_join(&tid[t]), 0);
    uv_barrier_destroy(&barrier);
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(w[t].rc_setup, 0, "thread %d", t);
        cr_assert_eq(w[t].rc_submit, 0, "thread %d", t);
        cr_assert_eq(w[t].pending, 0, "thread %d", t);
        cr_assert_eq(w[t].rc_close, 0, "thread %d left handles open", t);
    }
}

Test(races, last_uses_two_threads)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++)
        race_claim(&r[i], i);
    run_threads(r);
    assert_two_approved(r, NCLAIMS);
}

/* ------------------------------------------------------------------------
 * Replays of one claim_ref
 * ------------------------------------------------------------------------ */

static void replay_claim(struct pipeline_req *r)
{
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = "RP",
                                        .sub = "L-R",
                                        .imei = race_imei,
                                        .incident = "2024-05-01",
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_WATER,
                                        .remedy = ADJ_REMEDY_EXCHANGE});
}

/* One decision, 63 replays of it, one row. */
static void assert_one_decision(const struct pipeline_req *r, size_t n)
{
    const struct pipeline_req *first = NULL;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].rc, 0, "replay %zu: rc %d", i, r[i].rc);
        if (!r[i].replayed) {
            cr_assert_null(first, "decided twice");
            first = &r[i];
        }
    }
    cr_assert_not_null(first);
    cr_assert_eq(first->rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(first->rec.use_number, 1);
    cr_assert_eq(first->rec.customer_charge, 5500);
    for (size_t i = 0; i < n; i++)
        loopdb_assert_record_eq(&r[i].rec, &first->rec);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM claims WHERE claim_ref = 'RP'"), "1");
}

/* In one pipeline a duplicate never shares a batch: it waits and replays. */
Test(races, replays_one_pipeline)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++) {
        replay_claim(&r[i]);
        cr_assert_eq(loopdb_submit(&ld, 0, &r[i]), 0);
    }
    loopdb_run_done(&ld, 30000);
    assert_one_decision(r, NCLAIMS);
    cr_assert(!r[0].replayed);
    struct pipeline_stats st;
    pipeline_stats(ld.inst[0].pl, &st);
    cr_assert_eq(st.batches, NCLAIMS, "each duplicate deferred to a batch of its own");
    cr_assert_eq(st.retries, 0);
}

Test(races, replays_two_pipelines)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++) {
        replay_claim(&r[i]);
        cr_assert_eq(loopdb_submit(&ld, (size_t)i % 2, &r[i]), 0);
    }
    loopdb_run_done(&ld, 30000);
    assert_one_decision(r, NCLAIMS);
}

Test(races, replays_two_threads)
{
    struct pipeline_req *r = loopdb_reqs(&ld, NCLAIMS);
    for (int i = 0; i < NCLAIMS; i++)
        replay_claim(&r[i]);
    run_threads(r);
    assert_one_decision(r, NCLAIMS);
}

/*
 * One claim_ref for two subscriptions, from two pipelines whose reads both
 * ran before either insert: a lock on the API key row holds the first INSERT
 * (its foreign-key check) until both transactions have read. The loser's
 * INSERT meets the unique index (23505), its batch is re-run once and then
 * sees the other body: claim_ref_reused. One row.
 */
Test(races, unique_violation_reruns_the_batch)
{
    loopdb_add_sub(&ld, 1, "L-U1", "2024-04-01", "2024-04-03", true);
    loopdb_add_sub(&ld, 1, "L-U2", "2024-04-01", "2024-04-03", true);
    PGconn *holder = loopdb_lock_sql(&ld, "SELECT id FROM api_keys WHERE id = 1 FOR UPDATE");
    struct pipeline_req *r = loopdb_reqs(&ld, 2);
    loopdb_claim(&ld, &r[0],
                 &(struct loopdb_claim){.ref = "Z", .sub = "L-U1", .incident = "2024-05-01"});
    loopdb_claim(&ld, &r[1],
                 &(struct loopdb_claim){.ref = "Z", .sub = "L-U2", .incident = "2024-05-01"});
    cr_assert_eq(loopdb_submit(&ld, 0, &r[0]), 0);
    cr_assert_eq(loopdb_submit(&ld, 1, &r[1]), 0);
    loopdb_wait_lock_waiters(&ld, 2);
    loopdb_unlock(holder);
    loopdb_run_done(&ld, 20000);

    int won = r[0].rc == 0 ? 0 : 1;
    cr_assert_eq(r[won].rc, 0);
    cr_assert(!r[won].replayed);
    cr_assert_eq(r[won].rec.status, ADJ_STATUS_DENIED);
    cr_assert_eq(r[won].rec.reasons, 1u << ADJ_R_DEVICE_NOT_REGISTERED);
    cr_assert_eq(r[1 - won].rc, CLAIMD_ECONFLICT);
    struct pipeline_stats a, b;
    pipeline_stats(ld.inst[0].pl, &a);
    pipeline_stats(ld.inst[1].pl, &b);
    cr_assert_eq(a.retries + b.retries, 1);
    cr_assert_eq(a.failed + b.failed, 0);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) || ' ' || min(s.subscription_ref) FROM "
                                     "claims c JOIN subscriptions s ON s.id = c.subscription_id "
                                     "WHERE c.claim_ref = 'Z'"),
                     won == 0 ? "1 L-U1" : "1 L-U2");
}
