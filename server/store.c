/*
 * The store's operations. Each is a transaction in libpq's pipeline mode like
 * a batch: reads (locking what the rule protects) go out with a flush
 * request, the core decides when they are back, and the writes go out with
 * the Sync that commits, followed by the reads that show the result. Every
 * command records the kind of rows it returns, and one reader per kind parses
 * them, whatever the operation.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define SUB_BY_REF " WHERE s.tenant_id = $1::bigint AND s.subscription_ref = $2"
#define POLICIES_SQL                                                                               \
    "SELECT name, effective_from, monthly_fee, free_months, repair_cap, "                          \
    "array_to_string(exchange_fees, ','), max_uses, frequency_window, natural_failure_months, "    \
    "registration_days, ios_exchange, loaner_os FROM policy_versions ORDER BY effective_from"

const char store_policies_sql[] = POLICIES_SQL;

const struct pgconn_statement store_statements[] = {
    {"st_sub", "SELECT s.id, " FACTS_SELECT " FROM subscriptions s LEFT JOIN devices d "
               "ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id" SUB_BY_REF},
    {"st_sub_lock",
     "SELECT s.id, " FACTS_SELECT " FROM subscriptions s LEFT JOIN devices d "
     "ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id" SUB_BY_REF " FOR UPDATE OF s"},
    {"st_uses", "SELECT c.claim_ref, c.seq, c.incident_on, c.remedy, c.withdrawn_at IS NOT NULL "
                "FROM subscriptions s JOIN claims c ON c.tenant_id = s.tenant_id "
                "AND c.subscription_id = s.id AND c.status = 'approved' "
                "AND c.incident_on BETWEEN $3::date AND $4::date" SUB_BY_REF " ORDER BY c.seq"},
    {"st_imei", "SELECT EXISTS (SELECT FROM cancelled_imeis WHERE tenant_id = $1::bigint "
                "AND imei = $3), EXISTS (SELECT FROM devices d JOIN subscriptions s "
                "ON s.tenant_id = d.tenant_id AND s.id = d.subscription_id "
                "WHERE d.tenant_id = $1::bigint AND d.imei = $3 AND d.live "
                "AND s.subscription_ref <> $2)"},
    {"st_create", "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                  "activated_on, device_protection) VALUES ($1::bigint, $2, $3::date, $4::date, "
                  "$5::boolean)"},
    {"st_activate", "UPDATE subscriptions s SET activated_on = $3::date" SUB_BY_REF},
    {"st_cancel", "UPDATE subscriptions s SET cancelled_on = $3::date" SUB_BY_REF},
    {"st_cancel_device", "UPDATE devices d SET live = false FROM subscriptions s "
                         "WHERE d.tenant_id = s.tenant_id AND d.subscription_id = s.id "
                         "AND s.tenant_id = $1::bigint AND s.subscription_ref = $2"},
    {"st_cancel_imei",
     "INSERT INTO cancelled_imeis (tenant_id, imei, subscription_id, cancelled_on) "
     "SELECT d.tenant_id, d.imei, d.subscription_id, $3::date FROM devices d "
     "JOIN subscriptions s ON s.tenant_id = d.tenant_id AND s.id = d.subscription_id" SUB_BY_REF
     " ON CONFLICT DO NOTHING"},
    {"st_register", "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, "
                    "release_date, purchased_from, registered_on) "
                    "SELECT s.tenant_id, s.id, $3, $4, $5, $6::date, $7, $8::date "
                    "FROM subscriptions s" SUB_BY_REF},
    {"st_claim", "SELECT " RECORD_SELECT " FROM claims c JOIN subscriptions s "
                 "ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id "
                 "WHERE c.tenant_id = $1::bigint AND c.claim_ref = $2"},
    {"st_claim_lock", "SELECT " RECORD_SELECT " FROM claims c JOIN subscriptions s "
                      "ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id "
                      "WHERE c.tenant_id = $1::bigint AND c.claim_ref = $2 FOR UPDATE OF c"},
    {"st_withdraw", "UPDATE claims SET withdrawn_at = now(), withdrawn_by_key_id = $3::bigint "
                    "WHERE tenant_id = $1::bigint AND claim_ref = $2 AND status = 'approved' "
                    "AND withdrawn_at IS NULL"},
    {"st_history", "SELECT " RECORD_SELECT " FROM claims c JOIN subscriptions s "
                   "ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id" SUB_BY_REF
                   " AND ($3::bigint = 0 OR c.seq < $3::bigint) ORDER BY c.seq DESC "
                   "LIMIT $4::int"},
    {"st_auth", "SELECT id, tenant_id FROM api_keys WHERE key_hash = decode($1, 'hex') "
                "AND revoked_at IS NULL"},
    {"st_ready", "SELECT coalesce(max(version), 0) FROM schema_migrations"},
    {"st_policies", POLICIES_SQL},
};
const size_t store_nstatements = sizeof(store_statements) / sizeof(store_statements[0]);

/* What a command's rows hold. */
enum rows_kind {
    K_NONE = 0, /* a write: no rows */
    K_SUB,      /* st_sub / st_sub_lock */
    K_USES,     /* st_uses */
    K_IMEI,     /* st_imei */
    K_CLAIM,    /* st_claim / st_claim_lock */
    K_HISTORY,  /* st_history */
    K_POLICIES, /* st_policies */
    K_AUTH,     /* st_auth */
    K_READY,    /* st_ready */
};

static const struct pgjob_ops op_ops;

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static int send_cmd(struct store_op *op, struct pgconn *c, enum rows_kind kind, const char *stmt,
                    int n, const char *const *values)
{
    if (op->_nsent >= (int)sizeof(op->_kinds))
        return CLAIMD_EDB;
    op->_kinds[op->_nsent++] = (unsigned char)kind;
    return pgconn_send(c, stmt, n, values);
}

static date_t today_of(const struct store *st)
{
    return st->today != DATE_NONE ? st->today : date_japan_of_unix((int64_t)time(NULL));
}

/* Parameters $1 (tenant) and $2 (reference) every statement starts with. */
struct params {
    char tenant[24];
    char a[DATE_STR_SIZE];
    char b[DATE_STR_SIZE];
    char c[24];
    const char *v[8];
};

static void params_init(struct params *p, const struct store_op *op)
{
    snprintf(p->tenant, sizeof(p->tenant), "%lld", (long long)op->tenant_id);
    p->v[0] = p->tenant;
    p->v[1] = op->ref;
}

/*
 * The subscription and the approved claims around day `on` (every window
 * holding `on` lies within 12 months of it); the state is computed from them.
 */
static int send_view(struct store_op *op, struct pgconn *c, date_t on)
{
    struct params p = {0};
    params_init(&p, op);
    op->view.on = on;
    date_format(date_add_months(on, -12), p.a);
    date_format(date_add_months(on, 12), p.b);
    p.v[2] = p.a;
    p.v[3] = p.b;
    int rc = send_cmd(op, c, K_SUB, "st_sub", 2, p.v);
    return rc ? rc : send_cmd(op, c, K_USES, "st_uses", 4, p.v);
}

/* ------------------------------------------------------------------------
 * Reads and writes of each operation
 * ------------------------------------------------------------------------ */

static int send_reads(struct store_op *op, struct pgconn *c)
{
    struct params p = {0};
    params_init(&p, op);
    switch (op->kind) {
    case STORE_CREATE:
    case STORE_ADD_OPTION:
        return send_cmd(op, c, K_SUB, "st_sub", 2, p.v);
    case STORE_ACTIVATE:
    case STORE_CANCEL:
        return send_cmd(op, c, K_SUB, "st_sub_lock", 2, p.v);
    case STORE_REGISTER: {
        char imei[IMEI_LEN + 1];
        memcpy(imei, op->device.imei, IMEI_LEN);
        imei[IMEI_LEN] = '\0';
        p.v[2] = imei;
        int rc = send_cmd(op, c, K_SUB, "st_sub_lock", 2, p.v);
        return rc ? rc : send_cmd(op, c, K_IMEI, "st_imei", 3, p.v);
    }
    case STORE_STATE:
        return send_view(op, c, op->date);
    case STORE_QUOTE:
        return send_view(op, c, op->claim.incident_on);
    case STORE_GET_CLAIM:
        return send_cmd(op, c, K_CLAIM, "st_claim", 2, p.v);
    case STORE_WITHDRAW:
        return send_cmd(op, c, K_CLAIM, "st_claim_lock", 2, p.v);
    case STORE_HISTORY:
        snprintf(p.c, sizeof(p.c), "%lld", (long long)op->after);
        snprintf(p.a, sizeof(p.a), "%zu", op->limit + 1);
        p.v[2] = p.c;
        p.v[3] = p.a;
        int rc = send_cmd(op, c, K_SUB, "st_sub", 2, p.v);
        return rc ? rc : send_cmd(op, c, K_HISTORY, "st_history", 4, p.v);
    case STORE_POLICIES:
        return send_cmd(op, c, K_POLICIES, "st_policies", 0, NULL);
    case STORE_AUTH:
        return send_cmd(op, c, K_AUTH, "st_auth", 1, p.v + 1);
    case STORE_READY:
        return send_cmd(op, c, K_READY, "st_ready", 0, NULL);
    }
    return CLAIMD_EDB;
}

static int write_create(struct store_op *op, struct pgconn *c, date_t today)
{
    struct params p = {0};
    params_init(&p, op);
    if (op->_found) {
        op->verdict = sub_check_create_again(&op->view.sub, &op->sub);
        return op->verdict == SUB_REPEAT ? send_view(op, c, today) : 0;
    }
    date_format(op->sub.applied_on, p.a);
    if (op->sub.activated_on != DATE_NONE)
        date_format(op->sub.activated_on, p.b);
    p.v[2] = p.a;
    p.v[3] = op->sub.activated_on != DATE_NONE ? p.b : NULL;
    p.v[4] = op->sub.option ? "true" : "false";
    op->verdict = SUB_OK;
    op->created = true;
    int rc = send_cmd(op, c, K_NONE, "st_create", 5, p.v);
    return rc ? rc : send_view(op, c, today);
}

static int write_dates(struct store_op *op, struct pgconn *c, date_t today)
{
    struct params p = {0};
    params_init(&p, op);
    date_format(op->date, p.a);
    p.v[2] = p.a;
    int rc = 0;
    if (op->kind == STORE_ACTIVATE) {
        op->verdict = sub_check_activate(&op->view.sub, op->date);
        if (op->verdict == SUB_OK)
            rc = send_cmd(op, c, K_NONE, "st_activate", 3, p.v);
    } else {
        op->verdict = sub_check_cancel(&op->view.sub, op->date);
        if (op->verdict == SUB_OK) {
            rc = send_cmd(op, c, K_NONE, "st_cancel", 3, p.v);
            rc = rc ? rc : send_cmd(op, c, K_NONE, "st_cancel_device", 2, p.v);
            rc = rc ? rc : send_cmd(op, c, K_NONE, "st_cancel_imei", 3, p.v);
        }
    }
    bool show = op->verdict == SUB_OK || op->verdict == SUB_REPEAT;
    return rc ? rc : (show ? send_view(op, c, today) : 0);
}

static int write_register(struct store_op *op, struct pgconn *c, date_t today)
{
    struct params p = {0};
    char imei[IMEI_LEN + 1];
    const struct adj_device *d = &op->device;
    op->verdict =
        sub_check_register(op->_store->policies, &op->view.sub, &op->view.dev, d, &op->_imei);
    if (op->verdict == SUB_REPEAT)
        return send_view(op, c, today);
    if (op->verdict != SUB_OK)
        return 0;
    params_init(&p, op);
    memcpy(imei, d->imei, IMEI_LEN);
    imei[IMEI_LEN] = '\0';
    date_format(d->release_date, p.a);
    date_format(d->registered_on, p.b);
    const char *v[] = {p.tenant,
                       op->ref,
                       imei,
                       device_os_name(d->os),
                       d->model,
                       p.a,
                       adj_purchase_name(d->purchased_from),
                       p.b};
    int rc = send_cmd(op, c, K_NONE, "st_register", 8, v);
    return rc ? rc : send_view(op, c, today);
}

static int write_withdraw(struct store_op *op, struct pgconn *c)
{
    struct params p = {0};
    params_init(&p, op);
    op->verdict = sub_check_withdraw(op->rec.status, op->rec.withdrawn);
    if (op->verdict != SUB_OK)
        return 0;
    snprintf(p.c, sizeof(p.c), "%lld", (long long)op->api_key_id);
    p.v[2] = p.c;
    int rc = send_cmd(op, c, K_NONE, "st_withdraw", 3, p.v);
    return rc ? rc : send_cmd(op, c, K_CLAIM, "st_claim", 2, p.v);
}

/* The reads are back: apply the rule and send what it changes. */
static int send_writes(struct store_op *op, struct pgconn *c)
{
    date_t today = today_of(op->_store);
    bool needs_found = op->kind != STORE_CREATE && op->kind != STORE_POLICIES &&
                       op->kind != STORE_AUTH && op->kind != STORE_READY;
    if (needs_found && !op->_found) {
        op->rc = CLAIMD_ENOTFOUND;
        return 0;
    }
    switch (op->kind) {
    case STORE_CREATE:
        return write_create(op, c, today);
    case STORE_ACTIVATE:
    case STORE_CANCEL:
        return write_dates(op, c, today);
    case STORE_REGISTER:
        return write_register(op, c, today);
    case STORE_ADD_OPTION:
        op->verdict = sub_check_add_option(&op->view.sub);
        return 0;
    case STORE_WITHDRAW:
        return write_withdraw(op, c);
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------
 * Rows, by kind
 * ------------------------------------------------------------------------ */

static int rows_sub(struct store_op *op, const PGresult *res)
{
    if (PQntuples(res) != 1)
        return 0;
    op->_found = true;
    snprintf(op->view.subscription_ref, sizeof(op->view.subscription_ref), "%s", op->ref);
    return record_read_facts(res, 0, 1, &op->view.sub, &op->view.dev);
}

static int rows_uses(struct store_op *op, const PGresult *res)
{
    int n = PQntuples(res);
    if (n > STORE_ROWS_MAX)
        return CLAIMD_ECAPACITY;
    op->_nhist = 0;
    for (int row = 0; row < n; row++) {
        struct adj_history_entry *e = &op->_hist[op->_nhist];
        const char *ref = PQgetvalue(res, row, 0), *day = PQgetvalue(res, row, 2);
        snprintf(op->_hist_refs[op->_nhist], REF_MAX + 1, "%s", ref);
        e->tag = op->_nhist;
        e->status = ADJ_STATUS_APPROVED;
        e->remedy = strcmp(PQgetvalue(res, row, 3), "exchange") == 0 ? ADJ_REMEDY_EXCHANGE
                                                                     : ADJ_REMEDY_REPAIR;
        e->withdrawn = PQgetvalue(res, row, 4)[0] == 't';
        if (date_parse(day, strlen(day), &e->incident_on) != 0)
            return CLAIMD_EDB;
        op->_nhist++;
    }
    return 0;
}

static int rows_claim(struct store_op *op, const PGresult *res)
{
    if (PQntuples(res) != 1)
        return 0;
    op->_found = true;
    return record_read(res, 0, 0, &op->rec);
}

static int rows_history(struct store_op *op, const PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    op->nrecords = 0;
    op->next_after = 0;
    for (size_t row = 0; row < n && row < op->limit; row++) {
        int rc = record_read(res, (int)row, 0, &op->records[row]);
        if (rc != 0)
            return rc;
        op->nrecords++;
    }
    if (n > op->limit && op->nrecords > 0)
        op->next_after = op->records[op->nrecords - 1].seq;
    return 0;
}

/* "5500,8800" into the version's fee list. */
static int parse_fees(const char *s, struct policy *p)
{
    p->exchange_fee_count = 0;
    while (*s != '\0') {
        char *end;
        if (p->exchange_fee_count == POLICY_MAX_USES_MAX)
            return CLAIMD_EDB;
        p->exchange_fees[p->exchange_fee_count++] = strtoll(s, &end, 10);
        if (end == s || (*end != ',' && *end != '\0'))
            return CLAIMD_EDB;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static int read_policy(const PGresult *res, int row, struct policy *p)
{
    const char *name = PQgetvalue(res, row, 0), *from = PQgetvalue(res, row, 1);
    const char *window = PQgetvalue(res, row, 7), *loaner = PQgetvalue(res, row, 11);
    memset(p, 0, sizeof(*p));
    if (strlen(name) > POLICY_NAME_MAX || date_parse(from, strlen(from), &p->effective_from) != 0 ||
        policy_window_parse(window, strlen(window), &p->window) != 0 ||
        device_os_parse(loaner, strlen(loaner), &p->loaner_os) != 0)
        return CLAIMD_EDB;
    memcpy(p->name, name, strlen(name) + 1);
    p->monthly_fee = strtoll(PQgetvalue(res, row, 2), NULL, 10);
    p->free_months = atoi(PQgetvalue(res, row, 3));
    p->repair_cap = strtoll(PQgetvalue(res, row, 4), NULL, 10);
    p->max_uses = atoi(PQgetvalue(res, row, 6));
    p->natural_failure_months = atoi(PQgetvalue(res, row, 8));
    p->registration_days = atoi(PQgetvalue(res, row, 9));
    p->ios_exchange = PQgetvalue(res, row, 10)[0] == 't';
    return parse_fees(PQgetvalue(res, row, 5), p);
}

int store_read_policies(const PGresult *res, struct policy *out, size_t cap, size_t *n)
{
    size_t rows = (size_t)PQntuples(res);
    *n = 0;
    if (rows > cap)
        return CLAIMD_ECAPACITY;
    for (size_t row = 0; row < rows; row++) {
        int rc = read_policy(res, (int)row, &out[row]);
        if (rc != 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int read_rows(struct store_op *op, const PGresult *res)
{
    switch ((enum rows_kind)op->_kinds[op->_query]) {
    case K_SUB:
        return rows_sub(op, res);
    case K_USES:
        return rows_uses(op, res);
    case K_IMEI:
        op->_imei.covered_on_cancelled_option = PQgetvalue(res, 0, 0)[0] == 't';
        op->_imei.live_elsewhere = PQgetvalue(res, 0, 1)[0] == 't';
        return 0;
    case K_CLAIM:
        return rows_claim(op, res);
    case K_HISTORY:
        return rows_history(op, res);
    case K_POLICIES:
        return store_read_policies(res, op->policies, POLICY_VERSIONS_MAX, &op->npolicies);
    case K_AUTH:
        op->found = PQntuples(res) == 1;
        if (op->found) {
            op->api_key_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            op->tenant_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        }
        return 0;
    case K_READY:
        op->schema_version = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        return 0;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------
 * The job
 * ------------------------------------------------------------------------ */

static struct store_op *op_of(struct pgjob *job)
{
    return (struct store_op *)((char *)job - offsetof(struct store_op, _job));
}

static int op_start(struct pgjob *job, struct pgconn *c)
{
    struct store_op *op = op_of(job);
    op->_nsent = op->_query = 0;
    op->_writing = op->_failed = op->_found = false;
    op->_sqlstate[0] = '\0';
    op->_nhist = 0;
    op->rc = 0;
    op->created = false;
    op->found = false;
    op->verdict = SUB_OK;
    int rc = send_reads(op, c);
    op->_nreads = op->_nsent;
    return rc ? rc : pgconn_flush_request(c);
}

static void op_failed(struct store_op *op, struct pgconn *c, const PGresult *res, int why)
{
    if (!op->_failed && res != NULL && PQresultStatus(res) != PGRES_PIPELINE_ABORTED) {
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(op->_sqlstate, sizeof(op->_sqlstate), "%s", s != NULL ? s : "");
        log_msg(LOG_DEBUG, "store", "command failed: %s", pgconn_error(c, res));
    }
    if (!op->_failed && why != 0)
        op->rc = why;
    op->_failed = true;
    if (!op->_writing) {
        op->_writing = true;
        if (pgconn_sync(c) != 0)
            pgconn_reset(c);
    }
}

static void op_result(struct pgjob *job, struct pgconn *c, const PGresult *res)
{
    struct store_op *op = op_of(job);
    if (res == NULL) {
        op->_query++;
        if (!op->_writing && op->_query == op->_nreads) {
            op->_writing = true;
            int rc = send_writes(op, c);
            if (rc != 0)
                op_failed(op, c, NULL, rc);
            else if (pgconn_sync(c) != 0)
                pgconn_reset(c);
        }
        return;
    }
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        op_failed(op, c, res, CLAIMD_EDB);
        return;
    }
    int rc = op->_failed || op->_query >= op->_nsent ? 0 : read_rows(op, res);
    if (rc != 0)
        op_failed(op, c, res, rc);
}

/* The state as of the view's day, and the claim_refs of its window's uses. */
static int compute_view(struct store_op *op)
{
    struct store_view *v = &op->view;
    struct adj_history h = {op->_hist, op->_nhist, STORE_ROWS_MAX};
    int rc = sub_state_on(op->_store->policies, &v->sub, &v->dev, &h, v->on, &v->state);
    if (rc != 0)
        return rc;
    v->nuses = 0;
    for (size_t i = 0; i < op->_nhist; i++) {
        const struct adj_history_entry *e = &op->_hist[i];
        if (e->withdrawn || e->incident_on < v->state.window.start ||
            e->incident_on > v->state.window.end)
            continue;
        if (v->nuses == STORE_USES_MAX)
            return CLAIMD_ECAPACITY;
        memcpy(v->uses[v->nuses++], op->_hist_refs[i], REF_MAX + 1);
    }
    return 0;
}

/* A quote: the core decides against the facts and uses read, as the pipeline would. */
static int quote(struct store_op *op)
{
    struct adj_history h = {op->_hist, op->_nhist, STORE_ROWS_MAX};
    struct adj_facts f = {op->_store->policies, op->view.sub, op->view.dev, today_of(op->_store)};
    return adj_decide(&f, &h, &op->claim, &op->decision, NULL);
}

static bool shows_view(const struct store_op *op)
{
    switch (op->kind) {
    case STORE_STATE:
        return true;
    case STORE_CREATE:
    case STORE_ACTIVATE:
    case STORE_CANCEL:
    case STORE_REGISTER:
        return op->verdict == SUB_OK || op->verdict == SUB_REPEAT;
    default:
        return false;
    }
}

static bool retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "40P01") == 0 ||
           strcmp(sqlstate, "40001") == 0;
}

static void op_done(struct pgjob *job, int rc)
{
    struct store_op *op = op_of(job);
    if (rc == 0 && op->_failed && retryable(op->_sqlstate) && op->_retries < 3) {
        op->_retries++;
        rc = dbpool_submit(op->_store->pool, &op->_job);
        if (rc == 0)
            return;
    }
    if (rc != 0)
        op->rc = rc;
    else if (op->_failed && (op->rc == 0 || op->rc == CLAIMD_EDB))
        op->rc = op->_sqlstate[0] != '\0' ? pgconn_failure_rc(op->_sqlstate) : CLAIMD_EDB;
    if (op->rc == 0 && shows_view(op))
        op->rc = compute_view(op);
    if (op->rc == 0 && op->kind == STORE_QUOTE)
        op->rc = quote(op);
    if (op->rc == 0 && op->kind == STORE_POLICIES) {
        struct policy_set set = {op->policies, op->npolicies};
        op->rc = policy_set_validate(&set, NULL) == 0 ? 0 : CLAIMD_EDB;
    }
    op->done(op);
}

static const struct pgjob_ops op_ops = {op_start, op_result, NULL, op_done};

int store_submit(struct store *st, struct store_op *op)
{
    op->_store = st;
    op->_retries = 0;
    op->_job.ops = &op_ops;
    op->_job._next = NULL;
    if (op->kind == STORE_HISTORY && (op->limit < 1 || op->limit > STORE_HISTORY_MAX))
        return CLAIMD_EINVAL;
    return dbpool_submit(st->pool, &op->_job);
}

int store_parse_cursor(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 18)
        return CLAIMD_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CLAIMD_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v <= 0)
        return CLAIMD_EINVAL;
    *out = v;
    return 0;
}
