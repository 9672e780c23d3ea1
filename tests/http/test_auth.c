/*
 * API keys over HTTP: every way to be refused (401 unauthorized with WWW-Authenticate:
 * Bearer), the scheme matched case-insensitively, and a revoked key refused within
 * --auth-cache-ms.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS  5000
#define CACHE_MS 300

TestSuite(auth, .fini = daemon_cleanup, .timeout = 50);

/* GET /v1/policies with the given Authorization line (NULL: none) on c. */
static void policies_with(struct client *c, const char *authorization, struct response *r)
{
    char req[1024];
    snprintf(req, sizeof(req), "GET /v1/policies HTTP/1.1\r\nHost: claimd.test\r\n%s%s%s\r\n",
             authorization != NULL ? "Authorization: " : "",
             authorization != NULL ? authorization : "", authorization != NULL ? "\r\n" : "");
    cr_assert_eq(client_send_str(c, req), 0);
    client_expect(c, false, WAIT_MS, r);
}

static void assert_unauthorized(const struct response *r, const char *what)
{
    char got[128];
    cr_assert_eq(r->status, 401, "%s: %s%s", what, r->head, r->body);
    response_assert_problem(r, 401, "unauthorized");
    cr_assert_eq(response_header(r, "www-authenticate", got, sizeof(got)), 1, "%s: %s", what,
                 r->head);
    cr_assert_str_eq(got, "Bearer", "%s", what);
}

static void assert_policies(const struct response *r, const char *what)
{
    cr_assert_eq(r->status, 200, "%s: %s%s", what, r->head, r->body);
    cr_assert(strstr(r->body, "\"policies\"") != NULL, "%s: %s", what, r->body);
}

Test(auth, missing_wrong_scheme_or_unknown_key_is_401)
{
    static struct daemon d;
    static struct response r;
    char line[512], upper[DAEMON_KEY_SIZE];
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);

    policies_with(&c, NULL, &r);
    assert_unauthorized(&r, "no Authorization");
    snprintf(line, sizeof(line), "Basic %s", d.key);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "Basic");
    snprintf(line, sizeof(line), "Token %s", d.key);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "Token");
    policies_with(&c, "Bearer", &r);
    assert_unauthorized(&r, "Bearer without a key");
    policies_with(&c, "", &r);
    assert_unauthorized(&r, "an empty Authorization");
    snprintf(line, sizeof(line), "Bearer%s", d.key);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "no space after Bearer");
    snprintf(line, sizeof(line), "Bearer %sx", d.key);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "the key and one more character");
    snprintf(line, sizeof(line), "Bearer %.*s", (int)strlen(d.key) - 1, d.key);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "the key less its last character");
    for (size_t i = 0; i <= strlen(d.key); i++)
        upper[i] = (char)(d.key[i] >= 'a' && d.key[i] <= 'f' ? d.key[i] - 32 : d.key[i]);
    snprintf(line, sizeof(line), "Bearer %s", upper);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "the key in upper case (keys are case-sensitive)");
    snprintf(line, sizeof(line), "Bearer %.10s %s", d.key, d.key + 10);
    policies_with(&c, line, &r);
    assert_unauthorized(&r, "a space inside the key");
    for (int i = 0; i < 3; i++) { /* unknown, then unknown from the cache */
        policies_with(
            &c, "Bearer ck_4b1d0000000000000000000000000000000000000000000000000000000000", &r);
        assert_unauthorized(&r, "an unknown key");
    }

    /* The creation route refuses the same way. */
    char req[1024];
    request_build(req, sizeof(req), "POST", "/v1/subscriptions", NULL, "application/json", NULL,
                  "{}");
    cr_assert_eq(client_send_str(&c, req), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_unauthorized(&r, "POST without a key");
    request_build(req, sizeof(req), "POST", "/v1/subscriptions", "ck_nope", "application/json",
                  NULL, "{}");
    cr_assert_eq(client_send_str(&c, req), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_unauthorized(&r, "POST with an unknown key");

    /* Refusals keep the connection: the right key works on it. */
    snprintf(line, sizeof(line), "Bearer %s", d.key);
    policies_with(&c, line, &r);
    assert_policies(&r, "the key after refusals");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

Test(auth, scheme_is_case_insensitive_and_spaces_are_allowed)
{
    static struct daemon d;
    static struct response r;
    char line[512];
    struct client c;
    /* What goes before and after the key. */
    static const char *const forms[][2] = {
        {"Bearer ", ""},  {"bearer ", ""},    {"BEARER ", ""},   {"bEaReR ", ""},
        {"Bearer  ", ""}, {"Bearer    ", ""}, {"Bearer ", "  "}, {"  Bearer ", ""},
    };
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(line, sizeof(line), "%s%s%s", forms[i][0], d.key, forms[i][1]);
        policies_with(&c, line, &r);
        assert_policies(&r, line);
    }
    /* A second tenant's key works too; each key is its own. */
    char key2[DAEMON_KEY_SIZE];
    daemon_key_create(&d, "t2", key2);
    cr_assert_str_neq(key2, d.key);
    snprintf(line, sizeof(line), "bearer %s", key2);
    policies_with(&c, line, &r);
    assert_policies(&r, "the second tenant's key");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* One request on a new connection (so both loops' caches are exercised). */
static int policies_status(int port, const char *key)
{
    static struct response r;
    char line[512];
    struct client c;
    client_open(&c, port);
    snprintf(line, sizeof(line), "Bearer %s", key);
    policies_with(&c, line, &r);
    client_close(&c);
    if (r.status == 401)
        assert_unauthorized(&r, "the revoked key");
    return r.status;
}

/*
 * Each loop trusts a checked key for auth-cache-ms from its look-up, and every look-up
 * before the revocation happened before it commits: so from the commit plus auth-cache-ms
 * on, every request must be refused whatever loop serves it.
 */
Test(auth, revoked_key_stops_working_within_the_cache_time)
{
    static struct daemon d;
    char sql[256], ms[16];
    snprintf(ms, sizeof(ms), "%d", CACHE_MS);
    daemon_up(&d, (const char *[]){"--auth-cache-ms", ms, NULL});
    for (int i = 0; i < 20; i++)
        cr_assert_eq(policies_status(d.port, d.key), 200);
    snprintf(sql, sizeof(sql), "UPDATE api_keys SET revoked_at = now() WHERE id = %ld", d.key_id);
    daemon_sql(&d, sql);
    int64_t revoked = now_ms();
    int64_t first_401 = -1;
    while (now_ms() < revoked + CACHE_MS) {
        int st = policies_status(d.port, d.key);
        cr_assert(st == 200 || st == 401, "got %d", st);
        if (st == 401 && first_401 < 0)
            first_401 = now_ms() - revoked;
        sleep_ms(10);
    }
    for (int i = 0; i < 20; i++) {
        int st = policies_status(d.port, d.key);
        cr_assert_eq(st, 401, "request %d, %lld ms after the revocation (cache %d ms): %d", i,
                     (long long)(now_ms() - revoked), CACHE_MS, st);
    }
    cr_log_info("revoked key first refused after %lld ms", (long long)first_401);
    daemon_stop(&d);
    daemon_destroy(&d);
}
