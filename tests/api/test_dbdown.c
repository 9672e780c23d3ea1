/*
 * PostgreSQL stopped and restarted while clients post claims: every 200/201 a client got reads
 * back unchanged, retrying the rest with the same body converges, and no window ever holds
 * more than its uses. Runs a private cluster of its own (pg-private), never the shared one.
 */
#define _GNU_SOURCE

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "apitest.h"

#define LINES      10
#define CLIENTS    16 /* requests in flight at once */
#define PER_BATCH  5
#define MAX_CLAIMS 6000
#define MAX_BATCH  400
#define RECOVER_MS 40000

static char pg_dir[64];
static struct daemon d;

/* One claim a client posts (alone, or in a batch) until it gets a decision. */
struct claim {
    char ref[16];
    char body[512];
    json_t *answer; /* the first 200/201 decision, or NULL while unresolved */
    int batch;      /* 1 + the index of its batch, or 0 when posted alone */
};

/* A batch of PER_BATCH new claims, retried whole with the same body. */
struct batch {
    char body[PER_BATCH * 512 + 32];
    size_t first; /* its claims are claims[first .. first + PER_BATCH) */
    bool done;
};

/* What one request of a round carries. */
struct item {
    struct claim *claim; /* or NULL for a batch */
    struct batch *batch;
};

static struct claim claims[MAX_CLAIMS];
static size_t nclaims;
static struct batch batches[MAX_BATCH];
static size_t nbatches;
static struct job jobs[CLIENTS];

static void destroy_cluster(void)
{
    struct exec_result r;
    daemon_cleanup();
    for (size_t i = 0; i < nclaims; i++) {
        if (claims[i].answer != NULL)
            json_decref(claims[i].answer);
    }
    if (pg_dir[0] != '\0' && getenv("CLAIMD_PG_PRIVATE") != NULL) {
        const char *argv[] = {getenv("CLAIMD_PG_PRIVATE"), "destroy", pg_dir, NULL};
        char lock[80]; /* pg-private's lock file beside the directory */
        daemon_exec(argv, &r);
        snprintf(lock, sizeof(lock), "%s.lock", pg_dir);
        unlink(lock);
    }
}

TestSuite(dbdown, .fini = destroy_cluster, .timeout = 110);

static const char *helper(void)
{
    const char *h = getenv("CLAIMD_PG_PRIVATE");
    cr_assert(h != NULL && h[0] != '\0', "CLAIMD_PG_PRIVATE is not set: run under ctest");
    return h;
}

/* The value of NAME='...' in pg-private's output. */
static void url_of(const char *out, const char *name, char *url, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s='", name);
    const char *at = strstr(out, pat);
    cr_assert(at != NULL, "no %s in: %s", name, out);
    at += strlen(pat);
    const char *end = strchr(at, '\'');
    cr_assert(end != NULL && (size_t)(end - at) < len);
    snprintf(url, len, "%.*s", (int)(end - at), at);
}

/* A private cluster, migrated, a daemon on it and a key. */
static void cluster_and_daemon(void)
{
    struct exec_result x;
    char owner[TESTDB_URL_SIZE], app[TESTDB_URL_SIZE];
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/claimd-adb-%ld", (long)getpid());
    const char *start[] = {helper(), "start", "--fast", pg_dir, NULL};
    daemon_exec(start, &x);
    cr_assert_eq(x.status, 0, "pg-private start: %s", x.err);
    url_of(x.out, "CLAIMD_OWNER_URL", owner, sizeof(owner));
    url_of(x.out, "CLAIMD_DATABASE_URL", app, sizeof(app));
    const char *migrate[] = {daemon_bin(), "migrate", "--database-url", owner, NULL};
    daemon_exec(migrate, &x);
    cr_assert_eq(x.status, 0, "claimd migrate: %s", x.err);
    daemon_db_use(&d, owner, app);
    d.key_id = daemon_key_create(&d, "t1", d.key);
    daemon_start(&d, NULL);
}

/* Stops PostgreSQL after 300 ms and starts it again 1.5 s later, in a child process. */
static pid_t outage(void)
{
    char script[512];
    snprintf(script, sizeof(script),
             "sleep 0.3; '%s' stop '%s' >/dev/null 2>&1 || exit 1; sleep 1.5; "
             "'%s' start --fast '%s' >/dev/null 2>&1",
             helper(), pg_dir, helper(), pg_dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A new claim: line n % LINES, in one of two contract years, on day 1-28. */
static struct claim *new_claim(int batch)
{
    char sub[16], imei[16], day[16];
    size_t n = nclaims;
    cr_assert(nclaims < MAX_CLAIMS);
    struct claim *c = &claims[nclaims++];
    snprintf(c->ref, sizeof(c->ref), "D-%05zu", n);
    snprintf(sub, sizeof(sub), "S-%zu", n % LINES);
    imei_make(n % LINES + 1, imei);
    snprintf(day, sizeof(day), "%d-05-%02zu", 2024 + (int)(n / LINES % 2), 1 + n % 28);
    claim_json(c->body, sizeof(c->body), c->ref, sub, imei, day, "screen", "repair", 1000);
    c->batch = batch;
    return c;
}

static struct batch *new_batch(void)
{
    cr_assert(nbatches < MAX_BATCH);
    struct batch *b = &batches[nbatches++];
    int k = snprintf(b->body, sizeof(b->body), "{\"claims\":[");
    b->first = nclaims;
    for (int i = 0; i < PER_BATCH; i++) {
        struct claim *c = new_claim((int)nbatches);
        k += snprintf(b->body + k, sizeof(b->body) - (size_t)k, "%s%s", i ? "," : "", c->body);
    }
    snprintf(b->body + k, sizeof(b->body) - (size_t)k, "]}");
    return b;
}

/* A decision for c: kept when it is the first, else it must be the one kept. */
static size_t decided(struct claim *c, json_t *answer)
{
    const char *st = json_string_value(json_object_get(answer, "status"));
    cr_assert(st != NULL && (strcmp(st, "approved") == 0 || strcmp(st, "denied") == 0) &&
                  strcmp(json_string_value(json_object_get(answer, "claim_ref")), c->ref) == 0,
              "%s: not its decision: %s", c->ref, jtext(answer));
    if (c->answer != NULL) {
        expect_equal(answer, c->answer, c->ref);
        return 0;
    }
    c->answer = json_incref(answer);
    return 1;
}

/* A refusal must be 503 database_unavailable (or overloaded) with Retry-After. */
static void refusal(const struct reply *r, const char *what)
{
    char retry[16];
    const char *code = json_string_value(json_object_get(r->json, "code"));
    cr_assert(r->status == 503 && code != NULL &&
                  (strcmp(code, "database_unavailable") == 0 || strcmp(code, "overloaded") == 0),
              "%s: %d %s", what, r->status, r->body);
    cr_assert_eq(reply_header(r, "retry-after", retry, sizeof(retry)), 1, "%s", r->head);
}

/* The answer of one request: decisions recorded, refusals checked. */
static size_t answered(const struct item *it, struct job *j, size_t *refused)
{
    struct reply *r = &j->r;
    const char *what = it->claim != NULL ? it->claim->ref : it->batch->body;
    if (j->rc != 0 || r->status == 503) {
        if (j->rc == 0)
            refusal(r, what);
        (*refused)++;
        return 0;
    }
    if (it->claim != NULL) {
        cr_assert(r->status == 201 || r->status == 200, "%s: %d %s", what, r->status, r->body);
        return decided(it->claim, r->json);
    }
    /* A batch answers 200 with a decision for every claim, or 503 as a whole. */
    json_t *res = json_object_get(r->json, "results");
    size_t n = 0;
    cr_assert(r->status == 200 && json_array_size(res) == PER_BATCH, "a batch: %d %s", r->status,
              r->body);
    for (size_t i = 0; i < PER_BATCH; i++)
        n += decided(&claims[it->batch->first + i], json_array_get(res, i));
    it->batch->done = true;
    return n;
}

/* Sends every item at once, each on a connection of its own; returns the new decisions. */
static size_t send_items(const struct item *items, size_t n, size_t *refused)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].claim != NULL)
            job_build(&jobs[i], "POST", "/v1/claims", d.key, items[i].claim->body);
        else
            job_build(&jobs[i], "POST", "/v1/claims/batch", d.key, items[i].batch->body);
    }
    jobs_run(d.port, jobs, n, 15000);
    for (size_t i = 0; i < n; i++)
        got += answered(&items[i], &jobs[i], refused);
    jobs_free(jobs, n);
    return got;
}

/* Up to max unresolved items (single claims and batches); *open counts them all. */
static size_t unresolved(struct item *items, size_t max, size_t *open)
{
    size_t k = 0;
    *open = 0;
    for (size_t i = 0; i < nclaims; i++) {
        if (claims[i].answer != NULL || claims[i].batch != 0)
            continue;
        (*open)++;
        if (k < max)
            items[k++] = (struct item){&claims[i], NULL};
    }
    for (size_t i = 0; i < nbatches; i++) {
        if (batches[i].done)
            continue;
        (*open)++;
        if (k < max)
            items[k++] = (struct item){NULL, &batches[i]};
    }
    return k;
}

/* Retries every unresolved claim and batch with its body until each got its decisions. */
static void converge(void)
{
    struct item items[CLIENTS];
    size_t refused = 0, open;
    int64_t deadline = now_ms() + RECOVER_MS;
    for (;;) {
        size_t n = unresolved(items, CLIENTS, &open);
        if (n == 0)
            return;
        cr_assert(now_ms() < deadline, "%zu requests still unresolved %d ms after the restart",
                  open, RECOVER_MS);
        if (send_items(items, n, &refused) == 0)
            sleep_ms(100);
    }
}

static void check_read_back(void)
{
    struct sess s;
    struct reply r = {0};
    char target[64];
    sess_open(&s, d.port, d.key);
    for (size_t i = 0; i < nclaims; i++) {
        snprintf(target, sizeof(target), "/v1/claims/%.16s", claims[i].ref);
        expect_equal(sess_expect(&s, 200, "GET", target, NULL, &r), claims[i].answer,
                     claims[i].ref);
    }
    sess_close(&s);
    reply_free(&r);
}

static void check_windows(void)
{
    char sql[512];
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), (long long)nclaims,
                 "rows that no client was told about, or claims lost");
    /* Every line's two windows hold exactly two uses, numbered 1 and 2. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT subscription_id, window_start FROM claims "
             "WHERE status = 'approved' AND withdrawn_at IS NULL GROUP BY 1, 2 "
             "HAVING count(*) = 2 AND min(use_number) = 1 AND max(use_number) = 2) x");
    cr_assert_eq(sql_count(&d, sql), 2 * LINES);
    cr_assert_eq(sql_count(&d, "SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM "
                               "claims WHERE status = 'approved' AND withdrawn_at IS NULL "
                               "GROUP BY subscription_id, window_start) x"),
                 2, "a window holds more than its uses");
}

Test(dbdown, postgres_restarted_while_clients_post_claims)
{
    struct sess s;
    struct item items[CLIENTS];
    char sub[16], imei[16];
    size_t refused = 0, decisions = 0;
    int st, after = 0;
    cluster_and_daemon();
    sess_open(&s, d.port, d.key);
    for (size_t k = 0; k < LINES; k++) {
        snprintf(sub, sizeof(sub), "S-%zu", k);
        imei_make(k + 1, imei);
        api_sub(&s, sub, "2024-04-01", "2024-04-03", true);
        api_device(&s, sub, imei, "android", "2022-01-20", "2024-04-10", "other");
    }
    sess_close(&s);

    int64_t t0 = now_ms(), up_ms = 0, back_ms = 0;
    pid_t child = outage();
    bool restarted = false;
    /* Rounds of new claims, a new batch and unresolved ones, until ten rounds after the first
     * decision that followed the restart. */
    while (after < 10) {
        size_t open, k = unresolved(items, CLIENTS / 2, &open);
        cr_assert(now_ms() - t0 < RECOVER_MS, "no decision within %d ms of the outage", RECOVER_MS);
        /* New work while little is unresolved: the outage must not pile up thousands. */
        if (open < 4 * CLIENTS)
            items[k++] = (struct item){NULL, new_batch()};
        while (k < CLIENTS && open < 4 * CLIENTS)
            items[k++] = (struct item){new_claim(0), NULL};
        size_t got = send_items(items, k, &refused);
        decisions += got;
        if (restarted && got > 0 && back_ms == 0)
            back_ms = now_ms() - t0;
        if (!restarted && waitpid(child, &st, WNOHANG) == child) {
            up_ms = now_ms() - t0;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "stopping or starting PostgreSQL failed");
            restarted = true;
        }
        after += back_ms > 0;
        sleep_ms(20);
    }
    cr_assert_gt(refused, 0, "no request met the outage: the test proved nothing");
    cr_log_info(
        "dbdown: %zu claims (%zu batches), %zu decided in the rounds, %zu attempts refused or "
        "reset; PostgreSQL back after %lld ms, the first decision after it at %lld ms",
        nclaims, nbatches, decisions, refused, (long long)up_ms, (long long)back_ms);
    converge();
    check_read_back();
    check_windows();
    daemon_stop(&d);
    daemon_destroy(&d);
}
