/*
 * claimbench and the database, all blocking libpq outside the measured
 * windows: seeding with COPY, reading the seeded subscriptions, CPU time
 * from /proc, and the cross-check of the answers against what was stored.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "claimbench.h"
#include "procstat.h"

#define COPY_CHUNK   65536
#define VERIFY_CHUNK 20000

static PGconn *connect_db(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "claimbench: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs a command or a query with text parameters; false (and a message) on an error. */
static bool exec_ok(PGconn *c, const char *sql, int n, const char *const *params, PGresult **out)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "claimbench: %s", PQerrorMessage(c));
        PQclear(res);
        return false;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return true;
}

/* ------------------------------------------------------------------------
 * Seeding: the rows of bench/seed.sql, through COPY
 * ------------------------------------------------------------------------ */

/*
 * Subscription 'bench-g' as bench/seed.sql makes it, relative to today in
 * Japan: applied 400..699 days ago, activated 0..2 days later, its device
 * registered 0..14 days after activation, released 0..899 days before the
 * application; 40 % iOS; IMEI '35' + g on 12 digits + the Luhn digit.
 */
static size_t seed_row(date_t today, size_t g, char *out, size_t cap)
{
    char digits[IMEI_LEN + 1], d[4][DATE_STR_SIZE];
    date_t applied = today - (date_t)(400 + (g * 37) % 300);
    date_t activated = applied + (date_t)(g % 3);
    bool ios = g % 5 < 2;
    snprintf(digits, sizeof(digits), "35%012zu", g);
    digits[IMEI_LEN - 1] = imei_check_digit(digits);
    digits[IMEI_LEN] = '\0';
    date_format(applied, d[0]);
    date_format(activated, d[1]);
    date_format(applied - (date_t)((g * 53) % 900), d[2]);
    date_format(activated + (date_t)(g % 15), d[3]);
    int n = snprintf(out, cap, "bench-%zu\t%s\t%s\t%s\t%s\t%s %zu\t%s\t%s\n", g, d[0], d[1], digits,
                     ios ? "ios" : "android", ios ? "iPhone" : "Pixel",
                     ios ? 11 + g % 5 : 5 + g % 4, d[2], d[3]);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool copy_rows(PGconn *c, size_t n, date_t today)
{
    char *buf = malloc(COPY_CHUNK);
    size_t len = 0;
    PGresult *res = PQexec(c, "COPY cb_seed FROM STDIN");
    bool ok = buf != NULL && PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    for (size_t g = 1; ok && g <= n; g++) {
        len += seed_row(today, g, buf + len, COPY_CHUNK - len);
        if (COPY_CHUNK - len < 256 || g == n) {
            ok = PQputCopyData(c, buf, (int)len) == 1;
            len = 0;
        }
    }
    if (PQputCopyEnd(c, ok ? NULL : "claimbench gave up") != 1)
        ok = false;
    res = PQgetResult(c);
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "claimbench: COPY: %s", PQerrorMessage(c));
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
    free(buf);
    return ok;
}

static const char *const seed_sql[] = {
    "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    "INSERT INTO api_keys (tenant_id, key_hash) SELECT t.id, sha256(convert_to("
    "'claimd-bench-key', 'UTF8')) FROM tenants t WHERE t.name = $1 "
    "ON CONFLICT (key_hash) DO NOTHING",
    "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, activated_on, "
    "device_protection) SELECT t.id, x.ref, x.applied_on, x.activated_on, true "
    "FROM cb_seed x CROSS JOIN tenants t WHERE t.name = $1 "
    "ON CONFLICT (tenant_id, subscription_ref) DO NOTHING",
    "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, release_date, "
    "purchased_from, registered_on) SELECT s.tenant_id, s.id, x.imei, x.os, x.model, "
    "x.release_date, 'other', x.registered_on FROM cb_seed x JOIN tenants t ON t.name = $1 "
    "JOIN subscriptions s ON s.tenant_id = t.id AND s.subscription_ref = x.ref "
    "ON CONFLICT DO NOTHING",
};

int cb_seed(struct cb *b)
{
    uint64_t t0 = cb_now_ns();
    PGconn *c = connect_db(b->opt.owner_url);
    const char *params[1] = {b->opt.tenant};
    bool ok = c != NULL && exec_ok(c, "BEGIN", 0, NULL, NULL) &&
              exec_ok(c,
                      "CREATE TEMP TABLE cb_seed (ref text, applied_on date, activated_on date, "
                      "imei text, os text, model text, release_date date, registered_on date) "
                      "ON COMMIT DROP",
                      0, NULL, NULL) &&
              copy_rows(c, b->opt.seed, date_japan_of_unix((int64_t)time(NULL)));
    for (size_t i = 0; ok && i < sizeof(seed_sql) / sizeof(seed_sql[0]); i++)
        ok = exec_ok(c, seed_sql[i], 1, params, NULL);
    ok = ok && exec_ok(c, "COMMIT", 0, NULL, NULL) &&
         exec_ok(c, "ANALYZE tenants, api_keys, subscriptions, devices", 0, NULL, NULL);
    if (ok)
        fprintf(stderr, "claimbench: seeded %zu subscriptions with devices in %.1f s\n",
                b->opt.seed, (double)(cb_now_ns() - t0) / 1e9);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * The subscriptions claims go to
 * ------------------------------------------------------------------------ */

/* Hot subscriptions are the first ones; the others are cold, listed by OS. */
static int split_subs(struct cb *b)
{
    size_t hot = b->opt.mix.hot_subs < b->nsubs ? b->opt.mix.hot_subs : b->nsubs;
    for (int os = 0; os < 2; os++) {
        b->cold[os] = calloc(b->nsubs, sizeof(uint32_t));
        if (b->cold[os] == NULL)
            return -1;
    }
    for (size_t i = hot; i < b->nsubs; i++) {
        int os = b->subs[i].ios;
        b->cold[os][b->ncold[os]++] = (uint32_t)i;
    }
    for (int os = 0; os < 2; os++)
        b->cursor[os] = b->ncold[os] > 0 ? cb_rand(b, (uint32_t)b->ncold[os]) : 0;
    return 0;
}

static int read_subs(struct cb *b, PGresult *res)
{
    b->nsubs = (size_t)PQntuples(res);
    b->subs = calloc(b->nsubs > 0 ? b->nsubs : 1, sizeof(*b->subs));
    if (b->subs == NULL)
        return -1;
    for (size_t i = 0; i < b->nsubs; i++) {
        struct cb_sub *s = &b->subs[i];
        const char *first = PQgetvalue(res, (int)i, 3);
        b->tenant_id = strtoll(PQgetvalue(res, (int)i, 4), NULL, 10);
        snprintf(s->ref, sizeof(s->ref), "%s", PQgetvalue(res, (int)i, 0));
        snprintf(s->imei, sizeof(s->imei), "%s", PQgetvalue(res, (int)i, 1));
        s->ios = strcmp(PQgetvalue(res, (int)i, 2), "ios") == 0;
        if (date_parse(first, strlen(first), &s->first) != 0)
            return -1;
    }
    return 0;
}

int cb_load_subs(struct cb *b)
{
    PGconn *c = connect_db(b->opt.db_url);
    PGresult *res = NULL;
    const char *params[1] = {b->opt.tenant};
    int rc = -1;
    if (c != NULL && exec_ok(c,
                             "SELECT s.subscription_ref, d.imei, d.os, "
                             "greatest(d.registered_on, s.activated_on), t.id "
                             "FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id "
                             "JOIN devices d ON d.tenant_id = s.tenant_id "
                             "AND d.subscription_id = s.id "
                             "WHERE t.name = $1 AND s.device_protection AND s.cancelled_on IS NULL "
                             "AND s.subscription_ref LIKE 'bench-%' ORDER BY s.id",
                             1, params, &res))
        rc = read_subs(b, res);
    PQclear(res);
    PQfinish(c);
    if (rc == 0 && b->nsubs == 0) {
        fprintf(stderr, "claimbench: tenant '%s' has no seeded subscriptions (--seed N)\n",
                b->opt.tenant);
        rc = -1;
    }
    return rc == 0 ? split_subs(b) : -1;
}

/* ------------------------------------------------------------------------
 * CPU time from /proc (Linux)
 * ------------------------------------------------------------------------ */

/* The "some" total of a pressure file (microseconds), in seconds; 0 without PSI. */
static double pressure_seconds(const char *path)
{
    unsigned long long total = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "some avg10=%*f avg60=%*f avg300=%*f total=%llu", &total) != 1)
        total = 0;
    fclose(f);
    return (double)total / 1e6;
}

void cb_cpu_sample(const struct cb *b, struct cb_cpu *out)
{
    out->cpu_wait_s = pressure_seconds("/proc/pressure/cpu");
    out->io_wait_s = pressure_seconds("/proc/pressure/io");
    out->claimd_s = b->opt.claimd_pid > 0 ? procstat_pid_seconds(b->opt.claimd_pid) : 0;
    out->postgres_s = procstat_cluster_seconds(b->opt.postmaster_pid);
    out->self_s = procstat_pid_seconds((long)getpid());
    procstat_machine_seconds(&out->busy_s, &out->total_s);
    out->ok = true;
}

/* ------------------------------------------------------------------------
 * The cross-check
 * ------------------------------------------------------------------------ */

/* Appends "x," to a growing text array; false when out of memory. */
static bool append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 2 > *cap) {
        size_t ncap = (*len + n + 2) * 2;
        char *p = realloc(*buf, ncap);
        if (p == NULL)
            return false;
        *buf = p;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[(*len)++] = ',';
    (*buf)[*len] = '\0';
    return true;
}

struct text_array {
    char *buf;
    size_t len, cap;
};

static void array_start(struct text_array *a)
{
    a->len = 0;
    if (append(&a->buf, &a->len, &a->cap, "{"))
        a->len = 1; /* drop the comma append() added */
}

static const char *array_end(struct text_array *a)
{
    if (a->buf == NULL)
        return NULL;
    if (a->len > 1 && a->buf[a->len - 1] == ',')
        a->len--;
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}

static const char verify_chunk_sql[] =
    "SELECT count(*) FILTER (WHERE c.claim_ref IS NULL AND x.st <> 'u'), "
    "count(*) FILTER (WHERE c.claim_ref IS NOT NULL AND x.st <> 'u' AND "
    "(c.status <> x.st OR c.use_number IS DISTINCT FROM x.use)), "
    "count(*) FILTER (WHERE c.claim_ref IS NOT NULL AND x.st = 'u') "
    "FROM unnest($2::text[], $3::text[], $4::int[]) AS x(ref, st, use) "
    "LEFT JOIN claims c ON c.tenant_id = $1::bigint AND c.claim_ref = x.ref";

/* One chunk of the claims sent, [from, to), against the claims table. */
static bool verify_chunk(struct cb *b, PGconn *c, uint64_t from, uint64_t to,
                         struct text_array a[3])
{
    char tenant[24], ref[CB_REF_MAX + 1], use[16];
    for (int i = 0; i < 3; i++)
        array_start(&a[i]);
    for (uint64_t n = from; n < to; n++) {
        const struct cb_claim *cl = cb_claim_at(b, n);
        if (cl->outcome != OUT_STORED && cl->outcome != OUT_SENT)
            continue;
        bool stored = cl->outcome == OUT_STORED;
        snprintf(ref, sizeof(ref), "%s%" PRIu64, b->prefix, n);
        snprintf(use, sizeof(use), "%d", cl->use_number);
        if (!append(&a[0].buf, &a[0].len, &a[0].cap, ref) ||
            !append(&a[1].buf, &a[1].len, &a[1].cap,
                    stored ? adj_status_name((enum adj_status)cl->status) : "u") ||
            !append(&a[2].buf, &a[2].len, &a[2].cap, stored && cl->use_number > 0 ? use : "NULL"))
            return false;
        b->verify.answered_stored += stored;
        b->verify.unknown += !stored;
    }
    snprintf(tenant, sizeof(tenant), "%" PRId64, b->tenant_id);
    const char *params[4] = {tenant, array_end(&a[0]), array_end(&a[1]), array_end(&a[2])};
    PGresult *res;
    if (params[3] == NULL || !exec_ok(c, verify_chunk_sql, 4, params, &res))
        return false;
    b->verify.missing += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    b->verify.differing += strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    b->verify.unknown_stored += strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return true;
}

static uint64_t count_of(PGconn *c, const char *sql, int n, const char *const *params, bool *ok)
{
    PGresult *res;
    if (!*ok || !exec_ok(c, sql, n, params, &res)) {
        *ok = false;
        return 0;
    }
    uint64_t v = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Whole-tenant invariants: no window over max_uses, no use number given twice. */
static bool verify_tenant(struct cb *b, PGconn *c)
{
    char tenant[24], pattern[CB_PREFIX_MAX + 2];
    bool ok = true;
    snprintf(tenant, sizeof(tenant), "%" PRId64, b->tenant_id);
    snprintf(pattern, sizeof(pattern), "%s%%", b->prefix);
    const char *p2[2] = {tenant, pattern};
    b->verify.in_db = count_of(
        c, "SELECT count(*) FROM claims WHERE tenant_id = $1::bigint AND claim_ref LIKE $2", 2, p2,
        &ok);
    b->verify.over_windows = count_of(
        c,
        "SELECT count(*) FROM (SELECT 1 FROM claims c JOIN policy_versions p "
        "ON p.name = c.policy_version WHERE c.tenant_id = $1::bigint AND c.status = 'approved' "
        "AND c.withdrawn_at IS NULL GROUP BY c.subscription_id, c.window_start, p.max_uses "
        "HAVING count(*) > p.max_uses) x",
        1, p2, &ok);
    b->verify.duplicate_uses =
        count_of(c,
                 "SELECT count(*) FROM (SELECT 1 FROM claims WHERE tenant_id = $1::bigint "
                 "AND status = 'approved' AND withdrawn_at IS NULL "
                 "GROUP BY subscription_id, window_start, use_number HAVING count(*) > 1) x",
                 1, p2, &ok);
    return ok;
}

/*
 * Every claim answered as a new decision must be in the database once, with
 * the status and use number it was answered with; nothing else of this
 * process may be there, except claims whose answer was lost with a
 * connection; and no window of the tenant may hold more uses than allowed.
 */
int cb_verify(struct cb *b)
{
    struct text_array a[3] = {{0}};
    PGconn *c = connect_db(b->opt.db_url);
    bool ok = c != NULL;
    memset(&b->verify, 0, sizeof(b->verify));
    for (uint64_t from = 0; ok && from < b->next_claim; from += VERIFY_CHUNK) {
        uint64_t to = from + VERIFY_CHUNK < b->next_claim ? from + VERIFY_CHUNK : b->next_claim;
        ok = verify_chunk(b, c, from, to, a);
    }
    ok = ok && verify_tenant(b, c);
    for (int i = 0; i < 3; i++)
        free(a[i].buf);
    PQfinish(c);
    struct cb_verify *v = &b->verify;
    v->done = ok;
    v->unexpected = v->in_db - (v->answered_stored - v->missing) - v->unknown_stored;
    bool good = ok && v->missing == 0 && v->differing == 0 && v->unexpected == 0 &&
                v->over_windows == 0 && v->duplicate_uses == 0;
    printf("verify: %" PRIu64 " answered as stored, %" PRIu64 " in the database (%" PRIu64
           " missing, %" PRIu64 " differing, %" PRIu64 " unexpected; %" PRIu64
           " unanswered of which %" PRIu64 " stored); windows over max_uses %" PRIu64
           ", duplicate use numbers %" PRIu64 ": %s\n",
           v->answered_stored, v->in_db, v->missing, v->differing, v->unexpected, v->unknown,
           v->unknown_stored, v->over_windows, v->duplicate_uses,
           !ok    ? "NOT CHECKED"
           : good ? "ok"
                  : "MISMATCH");
    return good ? 0 : -1;
}
