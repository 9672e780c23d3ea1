/*
 * The server tests' fixture: a loop with pipelines, pools and stores on a
 * per-test database, the run-until helpers, and seeding and locking as the
 * owner. Every handle it opens is closed by loopdb_stop.
 */
#include "loopdb.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "imei.h"

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

void loopdb_urls(struct loopdb *ld, const char *host, const char *dbname)
{
    snprintf(ld->app_url, sizeof(ld->app_url), "postgresql:///%s?host=%s&user=claimd_app", dbname,
             host);
    snprintf(ld->owner_url, sizeof(ld->owner_url), "postgresql:///%s?host=%s&user=claimd_owner",
             dbname, host);
    snprintf(ld->admin_url, sizeof(ld->admin_url), "postgresql:///%s?host=%s&user=postgres", dbname,
             host);
}

void loopdb_setup(struct loopdb *ld, const struct loopdb_opts *o)
{
    testdb_create_migrated(&ld->db);
    memcpy(ld->app_url, ld->db.app_url, sizeof(ld->app_url));
    memcpy(ld->owner_url, ld->db.owner_url, sizeof(ld->owner_url));
    testdb_url(ld->db.name, "postgres", ld->admin_url);
    ld->owner = testdb_connect(ld->owner_url);
    testdb_seed(ld->owner);
    loopdb_start(ld, o);
}

static size_t or_default(size_t v, size_t def)
{
    return v != 0 ? v : def;
}

static void start_instance(struct loopdb *ld, struct loopdb_inst *in, const struct loopdb_opts *o)
{
    size_t nconns = or_default(o->nconns, 2);
    struct pipeline_config pc = {.max_batch = or_default(o->max_batch, 64),
                                 .max_queue = or_default(o->max_queue, 1024),
                                 .max_retries = 5};
    cr_assert_eq(dbpool_init(&in->pool, &ld->loop, &ld->cfg, nconns, or_default(o->max_jobs, 64)),
                 0);
    in->open = true;
    dbpool_start(&in->pool);
    cr_assert_eq(pipeline_create(&in->pl, &in->pool, &pc, &ld->policies), 0);
    pipeline_set_today(in->pl, loopdb_date(LOOPDB_TODAY));
    in->store = (struct store){&in->pool, &ld->policies, loopdb_date(LOOPDB_TODAY)};
}

void loopdb_start(struct loopdb *ld, const struct loopdb_opts *o)
{
    cr_assert_eq(uv_loop_init(&ld->loop), 0);
    ld->loop_open = true;
    cr_assert_eq(uv_timer_init(&ld->loop, &ld->timer), 0);
    ld->timer.data = ld;
    policy_default(&ld->policy);
    ld->policies = (struct policy_set){&ld->policy, 1};
    ld->cfg = (struct pgconn_config){
        .conninfo = ld->app_url,
        .statement_timeout_ms = 20000,
        .connect_timeout_ms = 5000,
        .job_timeout_ms = 30000,
        .backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 20,
        .backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 200,
    };
    ld->cfg.statements[0] = (struct pgconn_statements){pipeline_statements, pipeline_nstatements};
    ld->cfg.statements[1] = (struct pgconn_statements){store_statements, store_nstatements};
    ld->ninst = or_default(o->instances, 1);
    cr_assert_leq(ld->ninst, LOOPDB_INSTANCES);
    for (size_t i = 0; i < ld->ninst; i++)
        start_instance(ld, &ld->inst[i], o);
    for (size_t i = 0; i < ld->ninst; i++)
        cr_assert(loopdb_wait_up(ld, i, ld->inst[i].pool.nconns, 10000),
                  "the pool of instance %zu did not come up", i);
}

void loopdb_stop(struct loopdb *ld)
{
    if (!ld->loop_open)
        return;
    ld->loop_open = false;
    for (size_t i = 0; i < ld->ninst; i++) {
        if (ld->inst[i].open)
            dbpool_close(&ld->inst[i].pool, NULL);
    }
    uv_close((uv_handle_t *)&ld->timer, NULL);
    uv_run(&ld->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < ld->ninst; i++) {
        pipeline_destroy(ld->inst[i].pl);
        ld->inst[i].pl = NULL;
        ld->inst[i].open = false;
    }
    for (size_t i = 0; i < ld->nallocs; i++)
        free(ld->allocs[i]);
    ld->nallocs = 0;
    cr_assert_eq(uv_loop_close(&ld->loop), 0, "handles left open on the loop");
}

void loopdb_teardown(struct loopdb *ld)
{
    loopdb_stop(ld);
    if (ld->owner != NULL)
        PQfinish(ld->owner);
    if (ld->admin != NULL)
        PQfinish(ld->admin);
    ld->owner = ld->admin = NULL;
    testdb_drop(&ld->db);
}

/* ------------------------------------------------------------------------
 * Running the loop
 * ------------------------------------------------------------------------ */

static void on_deadline(uv_timer_t *t)
{
    struct loopdb *ld = t->data;
    ld->fired = true;
}

/*
 * Arms the deadline timer ms from now. The loop's cached time may be long
 * stale (blocking SQL ran since the last uv_run): a timer computed from it
 * would already be due, fire before the poll of UV_RUN_ONCE, and leave that
 * poll to block until some other event.
 */
static void deadline(struct loopdb *ld, uint64_t ms)
{
    uv_update_time(&ld->loop);
    ld->fired = false;
    cr_assert_eq(uv_timer_start(&ld->timer, on_deadline, ms, 0), 0);
}

void loopdb_run_ms(struct loopdb *ld, uint64_t ms)
{
    deadline(ld, ms);
    while (!ld->fired)
        uv_run(&ld->loop, UV_RUN_ONCE);
}

void loopdb_run_done(struct loopdb *ld, uint64_t timeout_ms)
{
    deadline(ld, timeout_ms);
    while (ld->pending > 0 && !ld->fired)
        uv_run(&ld->loop, UV_RUN_ONCE);
    uv_timer_stop(&ld->timer);
    cr_assert_eq(ld->pending, 0, "%d requests still pending after %llu ms", ld->pending,
                 (unsigned long long)timeout_ms);
}

bool loopdb_wait_up(struct loopdb *ld, size_t i, size_t n, uint64_t timeout_ms)
{
    deadline(ld, timeout_ms);
    while (dbpool_up(&ld->inst[i].pool) < n && !ld->fired)
        uv_run(&ld->loop, UV_RUN_ONCE);
    uv_timer_stop(&ld->timer);
    return dbpool_up(&ld->inst[i].pool) >= n;
}

/* ------------------------------------------------------------------------
 * Claims and store operations
 * ------------------------------------------------------------------------ */

struct pipeline_req *loopdb_reqs(struct loopdb *ld, size_t n)
{
    cr_assert_lt(ld->nallocs, sizeof(ld->allocs) / sizeof(ld->allocs[0]));
    struct pipeline_req *r = calloc(n, sizeof(*r));
    cr_assert_not_null(r);
    ld->allocs[ld->nallocs++] = r;
    return r;
}

date_t loopdb_date(const char *s)
{
    date_t d = DATE_NONE;
    if (s != NULL)
        cr_assert_eq(date_parse(s, strlen(s), &d), 0, "bad date %s", s);
    return d;
}

void loopdb_imei(char out[16], unsigned long n)
{
    snprintf(out, 16, "35%012lu", n % 1000000000000ul);
    out[14] = imei_check_digit(out);
    out[15] = '\0';
}

static void claim_done(struct pipeline_req *r)
{
    struct loopdb *ld = r->data;
    ld->pending--;
}

void loopdb_claim(struct loopdb *ld, struct pipeline_req *r, const struct loopdb_claim *c)
{
    memset(r, 0, sizeof(*r));
    r->tenant_id = c->tenant != 0 ? c->tenant : 1;
    r->api_key_id = r->tenant_id;
    snprintf(r->claim_ref, sizeof(r->claim_ref), "%s", c->ref);
    snprintf(r->subscription_ref, sizeof(r->subscription_ref), "%s",
             c->sub != NULL ? c->sub : "L-1");
    memcpy(r->claim.imei, c->imei != NULL ? c->imei : LOOPDB_SEED_IMEI, IMEI_LEN);
    r->claim.incident_on = loopdb_date(c->incident);
    r->claim.cause = c->cause;
    r->claim.damage = c->damage;
    r->claim.remedy = c->remedy;
    r->claim.repair_estimate = c->remedy == ADJ_REMEDY_REPAIR ? c->estimate : -1;
    r->done = claim_done;
    r->data = ld;
    cr_assert_eq(pipeline_fingerprint(r), 0);
}

int loopdb_submit(struct loopdb *ld, size_t i, struct pipeline_req *r)
{
    ld->pending++;
    int rc = pipeline_submit(ld->inst[i].pl, r);
    if (rc != 0)
        ld->pending--;
    return rc;
}

void loopdb_decide(struct loopdb *ld, size_t i, struct pipeline_req *reqs, size_t n)
{
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(loopdb_submit(ld, i, &reqs[k]), 0, "claim %s refused", reqs[k].claim_ref);
    loopdb_run_done(ld, 20000);
}

void loopdb_op(struct store_op *op, enum store_kind kind, int64_t tenant, const char *ref)
{
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->tenant_id = tenant;
    op->api_key_id = tenant;
    snprintf(op->ref, sizeof(op->ref), "%s", ref != NULL ? ref : "");
}

static void op_done(struct store_op *op)
{
    struct loopdb *ld = op->data;
    ld->pending--;
}

int loopdb_store_submit(struct loopdb *ld, size_t i, struct store_op *op)
{
    op->done = op_done;
    op->data = ld;
    ld->pending++;
    int rc = store_submit(&ld->inst[i].store, op);
    if (rc != 0)
        ld->pending--;
    return rc;
}

int loopdb_store(struct loopdb *ld, size_t i, struct store_op *op)
{
    int rc = loopdb_store_submit(ld, i, op);
    if (rc != 0)
        return rc;
    loopdb_run_done(ld, 20000);
    return op->rc;
}

/* ------------------------------------------------------------------------
 * SQL as the owner
 * ------------------------------------------------------------------------ */

void loopdb_sql(struct loopdb *ld, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    testdb_ok(ld->owner, sql);
}

const char *loopdb_val(struct loopdb *ld, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    ld->val[0] = '\0';
    testdb_value(ld->owner, sql, ld->val, sizeof(ld->val));
    return ld->val;
}

PGconn *loopdb_admin(struct loopdb *ld)
{
    if (ld->admin == NULL)
        ld->admin = testdb_connect(ld->admin_url);
    return ld->admin;
}

long loopdb_add_sub(struct loopdb *ld, int tenant, const char *ref, const char *applied,
                    const char *activated, bool option)
{
    char act[32] = "NULL";
    if (activated != NULL)
        snprintf(act, sizeof(act), "'%s'", activated);
    return atol(loopdb_val(ld,
                           "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                           "activated_on, device_protection) VALUES (%d, '%s', '%s', %s, %s) "
                           "RETURNING id",
                           tenant, ref, applied, act, option ? "true" : "false"));
}

void loopdb_add_device(struct loopdb *ld, int tenant, const char *sub, const char *imei,
                       const char *registered)
{
    loopdb_sql(ld,
               "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, release_date, "
               "purchased_from, registered_on) SELECT %d, id, '%s', 'android', 'Pixel 6', "
               "'2022-01-20', 'other', '%s' FROM subscriptions WHERE tenant_id = %d "
               "AND subscription_ref = '%s'",
               tenant, imei, registered, tenant, sub);
}

PGconn *loopdb_lock_sql(struct loopdb *ld, const char *sql)
{
    PGconn *holder = testdb_connect(ld->owner_url);
    testdb_ok(holder, "BEGIN");
    testdb_ok(holder, sql);
    return holder;
}

PGconn *loopdb_lock_subs(struct loopdb *ld, const char *refs)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT id FROM subscriptions WHERE tenant_id = 1 AND subscription_ref IN (%s) "
             "FOR UPDATE",
             refs);
    return loopdb_lock_sql(ld, sql);
}

void loopdb_unlock(PGconn *holder)
{
    testdb_ok(holder, "ROLLBACK");
    PQfinish(holder);
}

void loopdb_wait_lock_waiters(struct loopdb *ld, int n)
{
    char v[32];
    for (int tries = 0; tries < 1000; tries++) {
        testdb_value(loopdb_admin(ld),
                     "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND usename = 'claimd_app' AND wait_event_type = 'Lock'",
                     v, sizeof(v));
        if (atoi(v) == n)
            return;
        loopdb_run_ms(ld, 10);
    }
    char seen[2048] = "";
    testdb_value(loopdb_admin(ld),
                 "SELECT coalesce(string_agg(concat_ws(' ', pid, state, wait_event_type, "
                 "wait_event, left(query, 40)), '; '), 'none') FROM pg_stat_activity "
                 "WHERE datname = current_database() AND usename = 'claimd_app'",
                 seen, sizeof(seen));
    cr_assert_fail("expected %d claimd_app backends waiting on a lock, saw %s: %s", n, v, seen);
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */

void loopdb_assert_record_eq(const struct claim_record *a, const struct claim_record *b)
{
    cr_assert_eq(a->seq, b->seq);
    cr_assert_str_eq(a->claim_ref, b->claim_ref);
    cr_assert_str_eq(a->subscription_ref, b->subscription_ref);
    cr_assert_eq(a->status, b->status);
    cr_assert_eq(a->withdrawn, b->withdrawn);
    cr_assert_eq(a->remedy, b->remedy);
    cr_assert_eq(a->repair_estimate, b->repair_estimate);
    cr_assert_eq(a->covered_amount, b->covered_amount);
    cr_assert_eq(a->customer_charge, b->customer_charge);
    cr_assert_eq(a->reasons, b->reasons);
    cr_assert_eq(a->use_number, b->use_number);
    cr_assert_eq(a->uses_remaining, b->uses_remaining);
    cr_assert_eq(a->window.start, b->window.start);
    cr_assert_eq(a->window.end, b->window.end);
    cr_assert_eq(a->loaner, b->loaner);
    cr_assert_str_eq(a->policy_version, b->policy_version);
    cr_assert_str_eq(a->decided_at, b->decided_at);
    cr_assert_str_eq(a->withdrawn_at, b->withdrawn_at);
}
