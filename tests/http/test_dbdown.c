/*
 * PostgreSQL stopped under a running daemon (a private cluster of its own): 503
 * database_unavailable with Retry-After, /healthz still 200, recovery without a restart.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS    5000
#define RECOVER_MS 30000

static char pg_dir[64];

/* Runs pg-private VERB [--fast] DIR (--fast for start); asserts exit 0. */
static void pg_private(const char *verb, struct exec_result *r)
{
    const char *helper = getenv("CLAIMD_PG_PRIVATE");
    cr_assert(helper != NULL && helper[0] != '\0', "CLAIMD_PG_PRIVATE is not set: run under ctest");
    const char *start[] = {helper, verb, "--fast", pg_dir, NULL};
    const char *other[] = {helper, verb, pg_dir, NULL};
    daemon_exec(strcmp(verb, "start") == 0 ? start : other, r);
    cr_assert_eq(r->status, 0, "pg-private %s %s exited %d: %s", verb, pg_dir, r->status, r->err);
}

static void destroy_cluster(void)
{
    struct exec_result r;
    daemon_cleanup();
    if (pg_dir[0] != '\0') {
        const char *argv[] = {getenv("CLAIMD_PG_PRIVATE"), "destroy", pg_dir, NULL};
        if (argv[0] != NULL)
            daemon_exec(argv, &r);
        char lock[80]; /* pg-private's lock file beside the directory */
        snprintf(lock, sizeof(lock), "%s.lock", pg_dir);
        unlink(lock);
    }
}

TestSuite(dbdown, .fini = destroy_cluster, .timeout = 80);

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

static void request(int port, const char *method, const char *target, const char *key,
                    const char *body, struct response *r)
{
    static char req[2048];
    struct client c;
    request_build(req, sizeof(req), method, target, key, body ? "application/json" : NULL, NULL,
                  body);
    client_open(&c, port);
    cr_assert_eq(client_send_str(&c, req), 0);
    client_expect(&c, strcmp(method, "HEAD") == 0, WAIT_MS, r);
    client_close(&c);
}

static void assert_unavailable(const struct response *r, const char *what)
{
    char retry[32], *end;
    cr_assert_eq(r->status, 503, "%s: %s%s", what, r->head, r->body);
    response_assert_problem(r, 503, "database_unavailable");
    cr_assert_eq(response_header(r, "retry-after", retry, sizeof(retry)), 1, "%s: %s", what,
                 r->head);
    long s = strtol(retry, &end, 10);
    cr_assert(end != retry && *end == '\0' && s >= 0, "%s: Retry-After '%s'", what, retry);
}

static const char body_d1[] = "{\"subscription_ref\":\"D-1\",\"applied_on\":\"2026-04-01\","
                              "\"device_protection\":true}";
static const char body_d2[] = "{\"subscription_ref\":\"D-2\",\"applied_on\":\"2026-04-01\","
                              "\"device_protection\":true}";

/* While the database is down: every request that needs it is 503, the rest is served. */
static void assert_down(const struct daemon *d, const char *unused_key)
{
    static struct response r;
    request(d->port, "POST", "/v1/subscriptions", d->key, body_d2, &r);
    assert_unavailable(&r, "POST with a cached key");
    request(d->port, "POST", "/v1/subscriptions", unused_key, body_d2, &r);
    assert_unavailable(&r, "POST with a key never checked");
    request(d->port, "GET", "/v1/policies", unused_key, NULL, &r);
    assert_unavailable(&r, "GET /v1/policies with a key never checked");
    request(d->port, "GET", "/readyz", NULL, NULL, &r);
    assert_unavailable(&r, "/readyz");
    request(d->port, "GET", "/healthz", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "/healthz while the database is down: %s", r.head);
    request(d->port, "GET", "/v1/policies", d->key, NULL, &r);
    cr_assert_eq(r.status, 200, "policies are in memory and the key is cached: %s%s", r.head,
                 r.body);
}

/*
 * Repeats a request on new connections until it answers status; until then every answer
 * must be 503 database_unavailable (each loop's pool comes back on its own back-off).
 */
static void recovered(const struct daemon *d, const char *method, const char *target,
                      const char *key, const char *body, int status)
{
    static struct response r;
    int64_t deadline = now_ms() + RECOVER_MS;
    for (;;) {
        request(d->port, method, target, key, body, &r);
        if (r.status != 503 || now_ms() > deadline)
            break;
        assert_unavailable(&r, target);
        sleep_ms(50);
    }
    cr_assert_eq(r.status, status, "%s %s after the database came back: %s%s", method, target,
                 r.head, r.body);
}

Test(dbdown, database_unavailable_then_recovery_without_restart)
{
    static struct daemon d;
    static struct response r;
    struct exec_result x;
    char owner[TESTDB_URL_SIZE], app[TESTDB_URL_SIZE], key2[DAEMON_KEY_SIZE];

    snprintf(pg_dir, sizeof(pg_dir), "/tmp/claimd-h503-%ld", (long)getpid());
    pg_private("start", &x);
    url_of(x.out, "CLAIMD_OWNER_URL", owner, sizeof(owner));
    url_of(x.out, "CLAIMD_DATABASE_URL", app, sizeof(app));
    const char *migrate[] = {daemon_bin(), "migrate", "--database-url", owner, NULL};
    daemon_exec(migrate, &x);
    cr_assert_eq(x.status, 0, "claimd migrate: %s", x.err);
    daemon_db_use(&d, owner, app);
    d.key_id = daemon_key_create(&d, "t1", d.key);
    daemon_key_create(&d, "t1", key2);
    daemon_start(&d, (const char *[]){"--auth-cache-ms", "60000", NULL});

    request(d.port, "POST", "/v1/subscriptions", d.key, body_d1, &r);
    cr_assert_eq(r.status, 201, "%s%s", r.head, r.body);
    /* Each loop has its own key cache: new connections until both must have seen the key. */
    for (int i = 0; i < 24; i++) {
        request(d.port, "GET", "/v1/policies", d.key, NULL, &r);
        cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
        request(d.port, "GET", "/readyz", NULL, NULL, &r);
        cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    }

    pg_private("stop", &x);
    assert_down(&d, key2);
    sleep_ms(1500); /* the pool is now reconnecting with back-off */
    assert_down(&d, key2);

    pg_private("start", &x);
    /* 201, not 200: nothing of the refused creations was written. */
    recovered(&d, "POST", "/v1/subscriptions", d.key, body_d2, 201);
    for (int i = 0; i < 8; i++) { /* new connections: both loops are back */
        recovered(&d, "GET", "/readyz", NULL, NULL, 200);
        recovered(&d, "GET", "/v1/policies", key2, NULL, 200);
        recovered(&d, "POST", "/v1/subscriptions", d.key, body_d1, 200);
    }
    daemon_stop(&d);
    daemon_destroy(&d);
}
