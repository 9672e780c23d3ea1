/* The decision pipeline against a real database: decisions, replays, order. */
#include <criterion/criterion.h>
#include <string.h>

#include <uv.h>

#include "dbpool.h"
#include "pipeline.h"
#include "store.h"
#include "testdb.h"

static struct testdb db;
static uv_loop_t loop;
static struct dbpool pool;
static struct pgconn_config cfg;
static struct pipeline *pl;
static struct policy policy;
static struct policy_set policies = {&policy, 1};
static int pending;

static void setup(void)
{
    testdb_create_migrated(&db);
    PGconn *owner = testdb_connect(db.owner_url);
    testdb_seed(owner);
    PQfinish(owner);
    policy_default(&policy);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cfg = (struct pgconn_config){.conninfo = db.app_url,
                                 .statement_timeout_ms = 5000,
                                 .connect_timeout_ms = 5000,
                                 .job_timeout_ms = 10000,
                                 .backoff_min_ms = 50,
                                 .backoff_max_ms = 1000};
    cfg.statements[0] = (struct pgconn_statements){pipeline_statements, pipeline_nstatements};
    cfg.statements[1] = (struct pgconn_statements){store_statements, store_nstatements};
    cr_assert_eq(dbpool_init(&pool, &loop, &cfg, 2, 64), 0);
    dbpool_start(&pool);
    struct pipeline_config pc = {.max_batch = 64, .max_queue = 1024, .max_retries = 5};
    cr_assert_eq(pipeline_create(&pl, &pool, &pc, &policies), 0);
    pipeline_set_today(pl, date_from_ymd(2026, 11, 26));
    while (dbpool_up(&pool) < 2)
        uv_run(&loop, UV_RUN_ONCE);
}

static void pool_closed(struct dbpool *p)
{
}

static void teardown(void)
{
    pipeline_destroy(pl);
    dbpool_close(&pool, pool_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    testdb_drop(&db);
}

static void claim_done(struct pipeline_req *r)
{
    pending--;
}

static void make_claim(struct pipeline_req *r, const char *ref, const char *incident,
                       enum adj_remedy remedy, int64_t estimate)
{
    memset(r, 0, sizeof(*r));
    r->tenant_id = 1;
    r->api_key_id = 1;
    snprintf(r->claim_ref, sizeof(r->claim_ref), "%s", ref);
    snprintf(r->subscription_ref, sizeof(r->subscription_ref), "L-1");
    memcpy(r->claim.imei, "356938035643809", IMEI_LEN);
    cr_assert_eq(date_parse(incident, 10, &r->claim.incident_on), 0);
    r->claim.cause = ADJ_CAUSE_PHYSICAL_DAMAGE;
    r->claim.damage = ADJ_DAMAGE_SCREEN;
    r->claim.remedy = remedy;
    r->claim.repair_estimate = remedy == ADJ_REMEDY_REPAIR ? estimate : -1;
    r->done = claim_done;
    pipeline_fingerprint(r);
}

static void run_all(struct pipeline_req *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(pipeline_submit(pl, &reqs[i]), 0);
        pending++;
    }
    while (pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
}

TestSuite(pipeline, .init = setup, .fini = teardown, .timeout = 60);

/* The seed holds C-1 (approved, 2024-05-01): worked examples 2 and 3 follow. */
Test(pipeline, decides_in_order_and_records)
{
    struct pipeline_req r[2];
    make_claim(&r[0], "C-2", "2024-06-01", ADJ_REMEDY_REPAIR, 62000);
    make_claim(&r[1], "C-3", "2024-07-01", ADJ_REMEDY_EXCHANGE, -1);
    run_all(r, 2);
    cr_assert_eq(r[0].rc, 0);
    cr_assert_eq(r[0].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r[0].rec.use_number, 2);
    cr_assert_eq(r[0].rec.covered_amount, 50000);
    cr_assert_eq(r[0].rec.customer_charge, 12000);
    cr_assert_neq(r[0].rec.decided_at[0], '\0');
    cr_assert_eq(r[1].rc, 0);
    cr_assert_eq(r[1].rec.status, ADJ_STATUS_DENIED);
    cr_assert_eq(r[1].rec.reasons, 1u << ADJ_R_FREQUENCY_LIMIT);

    PGconn *c = testdb_connect(db.owner_url);
    char v[256];
    testdb_value(c,
                 "SELECT status || ' ' || use_number || ' ' || array_to_string(counted_uses, ',') "
                 "FROM claims WHERE claim_ref = 'C-2'",
                 v, sizeof(v));
    cr_assert_str_eq(v, "approved 2 1");
    PQfinish(c);

    struct pipeline_req again;
    make_claim(&again, "C-2", "2024-06-01", ADJ_REMEDY_REPAIR, 62000);
    run_all(&again, 1);
    cr_assert_eq(again.rc, 0);
    cr_assert(again.replayed);
    cr_assert_str_eq(again.rec.decided_at, r[0].rec.decided_at);

    make_claim(&again, "C-2", "2024-06-01", ADJ_REMEDY_REPAIR, 1000);
    run_all(&again, 1);
    cr_assert_eq(again.rc, CLAIMD_ECONFLICT);
}
