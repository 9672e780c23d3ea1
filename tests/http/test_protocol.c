/*
 * HTTP/1.1 as clients use it, over raw sockets against the real daemon: keep-alive,
 * pipelining answered in order, chunked bodies split anywhere, 100-continue, HEAD,
 * 404/405 with Allow, and the route-before-key part of the check order.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS 5000

TestSuite(protocol, .fini = daemon_cleanup, .timeout = 50);

static const char healthz_req[] = "GET /healthz HTTP/1.1\r\nHost: claimd.test\r\n\r\n";
static const char healthz_body[] = "{\"status\":\"ok\"}";

/* A creation body for ref (api.md's example dates). */
static void sub_body(char *out, size_t outlen, const char *ref)
{
    snprintf(out, outlen,
             "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
             "\"activated_on\":\"2026-04-03\",\"device_protection\":true}",
             ref);
}

static size_t sub_request(char *out, size_t outlen, const char *key, const char *ref)
{
    char body[256];
    sub_body(body, sizeof(body), ref);
    return request_build(out, outlen, "POST", "/v1/subscriptions", key, "application/json", NULL,
                         body);
}

/* Asserts a subscription answer for ref with the given status. */
static void assert_sub(const struct response *r, int status, const char *ref)
{
    cr_assert_eq(r->status, status, "expected %d for %s, got:\n%s%s", status, ref, r->head,
                 r->body);
    json_t *o = response_json(r);
    const char *got = json_string_value(json_object_get(o, "subscription_ref"));
    cr_assert(got != NULL && strcmp(got, ref) == 0, "expected %s, got %s", ref, r->body);
    json_decref(o);
}

static void assert_healthz(const struct response *r)
{
    char conn[64];
    cr_assert_eq(r->status, 200, "%s%s", r->head, r->body);
    cr_assert_str_eq(r->body, healthz_body);
    cr_assert_eq(response_header(r, "connection", conn, sizeof(conn)), 0,
                 "a keep-alive answer must not close: %s", r->head);
}

/* One request on c, one answer. */
static void exchange(struct client *c, const char *req, bool head, struct response *r)
{
    cr_assert_eq(client_send_str(c, req), 0);
    client_expect(c, head, WAIT_MS, r);
}

/* ------------------------------------------------------------------------
 * Keep-alive and pipelining
 * ------------------------------------------------------------------------ */

Test(protocol, keep_alive_2000_requests_on_one_connection)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    for (int i = 0; i < 2000; i++) {
        exchange(&c, healthz_req, false, &r);
        assert_healthz(&r);
    }
    cr_assert(!c.eof, "the connection closed after 2000 requests");
    cr_assert_eq(client_unparsed(&c), 0);
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* The kinds of request in the pipelining test, by index. */
enum kind { K_HEALTHZ, K_POST, K_NOT_FOUND, K_POLICIES };

static enum kind kind_of(int i)
{
    static const enum kind order[] = {K_HEALTHZ, K_POST, K_HEALTHZ, K_NOT_FOUND, K_POLICIES};
    return order[i % 5];
}

static size_t pipeline_request(char *out, size_t outlen, int i, const char *key)
{
    char ref[32];
    switch (kind_of(i)) {
    case K_HEALTHZ:
        return request_build(out, outlen, "GET", "/healthz", NULL, NULL, NULL, NULL);
    case K_POST:
        snprintf(ref, sizeof(ref), "P-%02d", i);
        return sub_request(out, outlen, key, ref);
    case K_NOT_FOUND:
        return request_build(out, outlen, "GET", "/nothing-here", NULL, NULL, NULL, NULL);
    default:
        return request_build(out, outlen, "GET", "/v1/policies", key, NULL, NULL, NULL);
    }
}

static void assert_pipelined(const struct response *r, int i)
{
    char ref[32];
    switch (kind_of(i)) {
    case K_HEALTHZ:
        assert_healthz(r);
        return;
    case K_POST:
        snprintf(ref, sizeof(ref), "P-%02d", i);
        assert_sub(r, 201, ref);
        return;
    case K_NOT_FOUND:
        response_assert_problem(r, 404, "not_found");
        return;
    default:
        cr_assert_eq(r->status, 200, "answer %d: %s%s", i, r->head, r->body);
        cr_assert(strncmp(r->body, "{\"policies\":[{\"name\":\"2025-01\"", 30) == 0,
                  "answer %d: %s", i, r->body);
    }
}

/*
 * 50 requests in one write. While the table of subscriptions is locked, the first
 * creation (request 1) cannot finish, so nothing after the answer to request 0 may be
 * written, though the /healthz and 404 behind it are answered at once internally; once
 * the lock goes, all 50 come in request order (each creation's body names its ref).
 */
Test(protocol, fifty_pipelined_requests_answered_in_order)
{
    static struct daemon d;
    static struct response r;
    static char all[50 * 512];
    struct client c;
    size_t n = 0;
    daemon_up(&d, NULL);
    for (int i = 0; i < 50; i++)
        n += pipeline_request(all + n, sizeof(all) - n, i, d.key);
    PGconn *lock = testdb_connect(d.owner_url);
    testdb_ok(lock, "BEGIN; LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE");
    client_open(&c, d.port);
    cr_assert_eq(client_send(&c, all, n), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_pipelined(&r, 0);
    client_read_some(&c, 400);
    cr_assert_eq(client_unparsed(&c), 0,
                 "answers overtook a creation still waiting for the database: '%.*s'",
                 (int)client_unparsed(&c), c.buf + c.pos);
    testdb_ok(lock, "ROLLBACK");
    PQfinish(lock);
    for (int i = 1; i < 50; i++) {
        client_expect(&c, false, WAIT_MS, &r);
        assert_pipelined(&r, i);
    }
    cr_assert(!client_wait_closed(&c, 100), "the connection closed after the pipeline");
    cr_assert_eq(client_unparsed(&c), 0, "more than 50 answers");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Chunked bodies
 * ------------------------------------------------------------------------ */

/*
 * A creation with a chunked body: a lower-case hex size, an upper-case one with a chunk
 * extension, the rest, and the last chunk.
 */
static size_t chunked_sub_request(char *out, size_t outlen, const char *key, const char *ref)
{
    char body[256];
    sub_body(body, sizeof(body), ref);
    size_t len = strlen(body);
    int n = snprintf(out, outlen,
                     "POST /v1/subscriptions HTTP/1.1\r\nHost: claimd.test\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"
                     "a\r\n%.10s\r\n1F;note=x\r\n%.31s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     key, body, body + 10, len - 41, body + 41);
    cr_assert(n > 0 && (size_t)n < outlen);
    return (size_t)n;
}

/* Sends req in two writes split at k, with a pause so that the daemon reads them apart. */
static void send_split(struct client *c, const char *req, size_t len, size_t k)
{
    cr_assert_eq(client_send(c, req, k), 0);
    sleep_ms(1);
    cr_assert_eq(client_send(c, req + k, len - k), 0);
}

Test(protocol, chunked_body_split_at_every_byte_boundary)
{
    static struct daemon d;
    static struct response r;
    char req[1024], ref[32];
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    size_t len = chunked_sub_request(req, sizeof(req), d.key, "C-000");
    for (size_t k = 1; k < len; k++) {
        snprintf(ref, sizeof(ref), "C-%03zu", k);
        cr_assert_eq(chunked_sub_request(req, sizeof(req), d.key, ref), len);
        send_split(&c, req, len, k);
        client_expect(&c, false, WAIT_MS, &r);
        assert_sub(&r, 201, ref);
        send_split(&c, req, len, k); /* the retry: the same request again */
        client_expect(&c, false, WAIT_MS, &r);
        assert_sub(&r, 200, ref);
    }
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

Test(protocol, chunked_body_one_byte_per_write)
{
    static struct daemon d;
    static struct response r;
    char req[1024];
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    size_t len = chunked_sub_request(req, sizeof(req), d.key, "B-1");
    cr_assert_eq(client_send_slowly(&c, req, len, 1, 300), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_sub(&r, 201, "B-1");
    cr_assert_eq(client_send_slowly(&c, req, len, 1, 300), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_sub(&r, 200, "B-1");
    /* Same again with a Content-Length body. */
    len = sub_request(req, sizeof(req), d.key, "B-2");
    cr_assert_eq(client_send_slowly(&c, req, len, 1, 300), 0);
    client_expect(&c, false, WAIT_MS, &r);
    assert_sub(&r, 201, "B-2");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Expect: 100-continue and HEAD
 * ------------------------------------------------------------------------ */

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Sends head, expects exactly the interim answer and nothing else, then sends body. */
static void continue_then_body(struct client *c, const char *head, const char *body)
{
    static struct response r;
    cr_assert_eq(client_send_str(c, head), 0);
    client_expect(c, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 100, "%s", r.head);
    cr_assert_str_eq(r.head, continue_line);
    client_read_some(c, 100);
    cr_assert_eq(client_unparsed(c), 0, "bytes after 100 Continue before the body was sent");
    cr_assert_eq(client_send_str(c, body), 0);
}

Test(protocol, expect_100_continue_then_the_final_answer)
{
    static struct daemon d;
    static struct response r;
    char head[512], body[256], chunked[512];
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    sub_body(body, sizeof(body), "E-1");
    snprintf(head, sizeof(head),
             "POST /v1/subscriptions HTTP/1.1\r\nHost: claimd.test\r\nAuthorization: Bearer %s"
             "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
             "Content-Length: %zu\r\n\r\n",
             d.key, strlen(body));
    continue_then_body(&c, head, body);
    client_expect(&c, false, WAIT_MS, &r);
    assert_sub(&r, 201, "E-1");

    /* Chunked, on the same connection. */
    sub_body(body, sizeof(body), "E-2");
    snprintf(head, sizeof(head),
             "POST /v1/subscriptions HTTP/1.1\r\nHost: claimd.test\r\nAuthorization: Bearer %s"
             "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             d.key);
    snprintf(chunked, sizeof(chunked), "%zx\r\n%s\r\n0\r\n\r\n", strlen(body), body);
    continue_then_body(&c, head, chunked);
    client_expect(&c, false, WAIT_MS, &r);
    assert_sub(&r, 201, "E-2");
    client_close(&c);

    /* A body refused on its announced size gets the final answer instead of 100. */
    client_open(&c, d.port);
    snprintf(head, sizeof(head),
             "POST /v1/subscriptions HTTP/1.1\r\nHost: claimd.test\r\nAuthorization: Bearer %s"
             "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
             "Content-Length: 65537\r\n\r\n",
             d.key);
    cr_assert_eq(client_send_str(&c, head), 0);
    client_expect(&c, false, WAIT_MS, &r);
    response_assert_problem(&r, 413, "payload_too_large");
    cr_assert(client_wait_closed(&c, WAIT_MS), "the connection stayed open after 413");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/*
 * HEAD and GET pipelined on one connection: the same status and header lines, a
 * Content-Length that is the GET body's, and no body (the answer after it parses cleanly).
 * A body that changes from one request to the next (/metrics counts requests) is only
 * held to the same Content-Type and a Content-Length.
 */
static void assert_head_like_get(int port, const char *target, const char *key, int status,
                                 bool same_body)
{
    static struct response get, head, after;
    char req[1024], t1[128], t2[128];
    struct client c;
    size_t n = request_build(req, sizeof(req), "GET", target, key, NULL, NULL, NULL);
    n += request_build(req + n, sizeof(req) - n, "HEAD", target, key, NULL, NULL, NULL);
    n += request_build(req + n, sizeof(req) - n, "GET", "/healthz", NULL, NULL, NULL, NULL);
    client_open(&c, port);
    cr_assert_eq(client_send(&c, req, n), 0);
    client_expect(&c, false, WAIT_MS, &get);
    client_expect(&c, true, WAIT_MS, &head);
    client_expect(&c, false, WAIT_MS, &after);
    cr_assert_eq(get.status, status, "GET %s: %s%s", target, get.head, get.body);
    cr_assert_eq(head.status, status, "HEAD %s: %s", target, head.head);
    cr_assert(get.body_len > 0, "GET %s has an empty body", target);
    if (same_body) {
        cr_assert_str_eq(response_headers(&head), response_headers(&get), "HEAD %s", target);
        cr_assert_eq(head.content_length, get.body_len, "HEAD %s", target);
    } else {
        cr_assert_eq(response_header(&get, "content-type", t1, sizeof(t1)), 1);
        cr_assert_eq(response_header(&head, "content-type", t2, sizeof(t2)), 1);
        cr_assert_str_eq(t2, t1, "HEAD %s", target);
        cr_assert(head.content_length > 0, "HEAD %s: %s", target, head.head);
    }
    assert_healthz(&after);
    client_read_some(&c, 50);
    cr_assert_eq(client_unparsed(&c), 0, "HEAD %s sent a body", target);
    client_close(&c);
}

/* One request on a new connection that must answer status. */
static void expect_status(int port, const char *method, const char *target, const char *key,
                          const char *body, int status)
{
    static char req[2048];
    static struct response r;
    struct client c;
    request_build(req, sizeof(req), method, target, key, body ? "application/json" : NULL, NULL,
                  body);
    client_open(&c, port);
    exchange(&c, req, false, &r);
    cr_assert_eq(r.status, status, "%s %s: %s%s", method, target, r.head, r.body);
    client_close(&c);
}

Test(protocol, head_on_every_get_route)
{
    static struct daemon d;
    daemon_up(&d, NULL);
    expect_status(d.port, "POST", "/v1/subscriptions", d.key,
                  "{\"subscription_ref\":\"H-1\",\"applied_on\":\"2026-04-01\","
                  "\"activated_on\":\"2026-04-03\",\"device_protection\":true}",
                  201);
    expect_status(d.port, "PUT", "/v1/subscriptions/H-1/device", d.key,
                  "{\"imei\":\"356938035643809\",\"os\":\"android\",\"model\":\"Pixel 8\","
                  "\"release_date\":\"2023-10-12\",\"purchased_from\":\"other\","
                  "\"registered_on\":\"2026-04-10\"}",
                  200);
    expect_status(d.port, "POST", "/v1/claims", d.key,
                  "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"H-1\",\"imei\":"
                  "\"356938035643809\",\"incident_on\":\"2026-05-01\",\"cause\":"
                  "\"physical_damage\",\"damage\":\"screen\",\"remedy\":\"repair\","
                  "\"repair_estimate\":30000}",
                  201);
    assert_head_like_get(d.port, "/healthz", NULL, 200, true);
    assert_head_like_get(d.port, "/readyz", NULL, 200, true);
    assert_head_like_get(d.port, "/metrics", NULL, 200, false);
    assert_head_like_get(d.port, "/v1/policies", d.key, 200, true);
    assert_head_like_get(d.port, "/v1/subscriptions/H-1", d.key, 200, true);
    assert_head_like_get(d.port, "/v1/subscriptions/H-1/claims", d.key, 200, true);
    assert_head_like_get(d.port, "/v1/claims/C-1", d.key, 200, true);
    /* Refusals of a HEAD have the GET's headers too, and no body. */
    assert_head_like_get(d.port, "/v1/subscriptions/nope", d.key, 404, true);
    assert_head_like_get(d.port, "/v1/policies", NULL, 401, true);
    assert_head_like_get(d.port, "/nothing-here", NULL, 404, true);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * 404, 405 and the order of route and key checks
 * ------------------------------------------------------------------------ */

/* method target [key] → a problem; the connection stays usable for /healthz. */
static void assert_refused(struct client *c, const char *method, const char *target,
                           const char *key, int status, const char *code, const char *allow)
{
    static struct response r;
    char req[1024], got[128];
    request_build(req, sizeof(req), method, target, key, NULL, NULL, NULL);
    exchange(c, req, strcmp(method, "HEAD") == 0, &r);
    cr_assert_eq(r.status, status, "%s %s: %s%s", method, target, r.head, r.body);
    if (strcmp(method, "HEAD") != 0)
        response_assert_problem(&r, status, code);
    int n = response_header(&r, "allow", got, sizeof(got));
    if (allow != NULL) {
        cr_assert_eq(n, 1, "%s %s: no Allow: %s", method, target, r.head);
        cr_assert_str_eq(got, allow, "%s %s", method, target);
    } else {
        cr_assert_eq(n, 0, "%s %s: unexpected Allow: %s", method, target, r.head);
    }
    cr_assert_eq(response_header(&r, "www-authenticate", got, sizeof(got)), 0,
                 "%s %s: a route problem is not a key problem: %s", method, target, r.head);
    exchange(c, healthz_req, false, &r);
    assert_healthz(&r);
}

Test(protocol, not_found_and_method_not_allowed)
{
    static struct daemon d;
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    assert_refused(&c, "GET", "/", NULL, 404, "not_found", NULL);
    assert_refused(&c, "GET", "/nothing-here", NULL, 404, "not_found", NULL);
    assert_refused(&c, "GET", "/healthz/", NULL, 404, "not_found", NULL);
    assert_refused(&c, "GET", "/HEALTHZ", NULL, 404, "not_found", NULL);
    assert_refused(&c, "GET", "/v1/policies/2025-01/x", NULL, 404, "not_found", NULL);
    assert_refused(&c, "DELETE", "/healthz", NULL, 405, "method_not_allowed", "GET, HEAD");
    assert_refused(&c, "POST", "/readyz", NULL, 405, "method_not_allowed", "GET, HEAD");
    assert_refused(&c, "GET", "/v1/subscriptions", NULL, 405, "method_not_allowed", "POST");
    assert_refused(&c, "HEAD", "/v1/subscriptions", NULL, 405, "method_not_allowed", "POST");
    assert_refused(&c, "PUT", "/v1/policies", NULL, 405, "method_not_allowed", "GET, HEAD");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* 404 and 405 come before the key: no key, a bad key, or a good one give the same answer. */
Test(protocol, route_is_checked_before_the_key)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    char req[1024];
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    const char *keys[] = {NULL, "ck_not_a_key", d.key};
    for (int i = 0; i < 3; i++) {
        assert_refused(&c, "GET", "/v1/nothing", keys[i], 404, "not_found", NULL);
        assert_refused(&c, "DELETE", "/v1/policies", keys[i], 405, "method_not_allowed",
                       "GET, HEAD");
        assert_refused(&c, "GET", "/v1/subscriptions", keys[i], 405, "method_not_allowed", "POST");
    }
    /* With a body that would be refused later (media type, JSON), still 405. */
    request_build(req, sizeof(req), "PUT", "/v1/subscriptions", NULL, "text/plain", NULL, "{");
    exchange(&c, req, false, &r);
    response_assert_problem(&r, 405, "method_not_allowed");
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* An empty field value is valid (RFC 9110 field-value = *field-content), wherever it is. */
Test(protocol, empty_header_values_are_accepted)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    static const char *const reqs[] = {
        "GET /healthz HTTP/1.1\r\nX-Empty:\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nX-Empty: \r\nHost: claimd.test\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: claimd.test\r\nX-Empty:   \r\nX-Other: y\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nX-A:\r\nX-B:\r\nX-C: c\r\n\r\n",
    };
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            if (step == 0)
                cr_assert_eq(client_send_str(&c, reqs[i]), 0);
            else
                cr_assert_eq(client_send_slowly(&c, reqs[i], strlen(reqs[i]), 1, 100), 0);
            client_expect(&c, false, WAIT_MS, &r);
            cr_assert_eq(r.status, 200, "%s→ %s%s", reqs[i], r.head, r.body);
        }
    }
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}
