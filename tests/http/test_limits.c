/*
 * The limits and refusals that close the connection: 431 at exactly 8 KiB of head, 413 at
 * exactly 64 KiB of body, request smuggling (400), and the order 431 > 404 > 401 > 413 > 415 > 400.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS      5000
#define HEADER_LIMIT 8192  /* api.md: request line plus header fields, CRLFs included */
#define BODY_LIMIT   65536 /* api.md: request body <= 64 KiB */

TestSuite(limits, .fini = daemon_cleanup, .timeout = 50);

static const char healthz_req[] = "GET /healthz HTTP/1.1\r\nHost: claimd.test\r\n\r\n";

/* Fills out with n copies of c and a NUL. */
static void fill(char *out, size_t n, char c)
{
    memset(out, c, n);
    out[n] = '\0';
}

/* What send_expect asserts about the connection after the answer. */
enum after { KEEPS_OPEN, CLOSES, EITHER };

/* Sends req (in step-byte writes unless 0), expects one answer, then checks the connection. */
static void send_expect(int port, const char *req, size_t len, size_t step, struct response *r,
                        enum after closes)
{
    struct client c;
    client_open(&c, port);
    /* A refusal may close while bytes are still being sent: the answer still counts. */
    if (step == 0)
        client_send(&c, req, len);
    else
        client_send_slowly(&c, req, len, step, 200);
    client_expect(&c, false, WAIT_MS, r);
    if (closes == CLOSES) {
        cr_assert(client_wait_closed(&c, WAIT_MS), "the connection stayed open after %d:\n%s",
                  r->status, r->head);
        cr_assert_eq(client_unparsed(&c), 0, "bytes after the closing answer");
    } else if (closes == KEEPS_OPEN) {
        struct response h;
        cr_assert_eq(client_send_str(&c, healthz_req), 0);
        client_expect(&c, false, WAIT_MS, &h);
        cr_assert_eq(h.status, 200, "the connection is not usable after %d", r->status);
    }
    client_close(&c);
}

/* ------------------------------------------------------------------------
 * 431
 * ------------------------------------------------------------------------ */

/*
 * http.c counts from the method's first byte to the last byte of the last header value,
 * plus 4 for that line's CRLF and the empty line's: the whole head as sent, final CRLF
 * included. Three layouts of a head of exactly total bytes, the padding in a header value,
 * in the query string, or spread over 100 header lines.
 */
static size_t head_of(char *out, size_t total, const char *path, int layout)
{
    static char pad[HEADER_LIMIT + 16];
    size_t n;
    if (layout == 0) {
        n = (size_t)sprintf(out, "GET %s HTTP/1.1\r\nHost: claimd.test\r\nX-Pad: ", path);
        cr_assert(total > n + 4);
        fill(pad, total - n - 4, 'p');
        n += (size_t)sprintf(out + n, "%s\r\n\r\n", pad);
    } else if (layout == 1) {
        n = (size_t)sprintf(out, "GET %s?pad= HTTP/1.1\r\nHost: claimd.test\r\n\r\n", path);
        fill(pad, total - n, 'q');
        n = (size_t)sprintf(out, "GET %s?pad=%s HTTP/1.1\r\nHost: claimd.test\r\n\r\n", path, pad);
    } else {
        n = (size_t)sprintf(out, "GET %s HTTP/1.1\r\nHost: claimd.test\r\n", path);
        for (int i = 0; i < 100; i++)
            n += (size_t)sprintf(out + n, "X-Header-%03d: %040d\r\n", i, i);
        n += (size_t)sprintf(out + n, "X-Last: ");
        cr_assert(total > n + 4);
        fill(pad, total - n - 4, 'z');
        n += (size_t)sprintf(out + n, "%s\r\n\r\n", pad);
    }
    cr_assert_eq(n, total);
    return n;
}

Test(limits, header_limit_is_exact_431_above_it)
{
    static struct daemon d;
    static char req[2 * HEADER_LIMIT];
    static struct response r;
    daemon_up(&d, NULL);
    for (int layout = 0; layout < 3; layout++) {
        for (size_t step = 0; step <= 1000; step += 1000) {
            size_t n = head_of(req, HEADER_LIMIT, "/healthz", layout);
            send_expect(d.port, req, n, step, &r, KEEPS_OPEN);
            cr_assert_eq(r.status, 200, "layout %d, %zu bytes: %s%s", layout, n, r.head, r.body);
            n = head_of(req, HEADER_LIMIT + 1, "/healthz", layout);
            send_expect(d.port, req, n, step, &r, CLOSES);
            response_assert_problem(&r, 431, "headers_too_large");
        }
    }
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* 431 comes first: before the route (404) and before the key (401). */
Test(limits, header_limit_before_route_and_key)
{
    static struct daemon d;
    static char req[2 * HEADER_LIMIT];
    static struct response r;
    daemon_up(&d, NULL);
    size_t n = head_of(req, HEADER_LIMIT + 1, "/nothing-here", 0);
    send_expect(d.port, req, n, 0, &r, CLOSES);
    response_assert_problem(&r, 431, "headers_too_large");
    n = head_of(req, HEADER_LIMIT + 1, "/v1/policies", 0);
    send_expect(d.port, req, n, 0, &r, CLOSES);
    response_assert_problem(&r, 431, "headers_too_large");
    /* At the limit the same requests get their ordinary answers. */
    n = head_of(req, HEADER_LIMIT, "/nothing-here", 0);
    send_expect(d.port, req, n, 0, &r, KEEPS_OPEN);
    response_assert_problem(&r, 404, "not_found");
    n = head_of(req, HEADER_LIMIT, "/v1/policies", 0);
    send_expect(d.port, req, n, 0, &r, KEEPS_OPEN);
    response_assert_problem(&r, 401, "unauthorized");
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* The limit is per request: a pipelined oversized head after a good request. */
Test(limits, header_limit_counts_each_pipelined_request_alone)
{
    static struct daemon d;
    static char req[4 * HEADER_LIMIT];
    static struct response r;
    struct client c;
    daemon_up(&d, NULL);
    size_t n = head_of(req, HEADER_LIMIT, "/healthz", 0);
    n += head_of(req + n, HEADER_LIMIT, "/healthz", 2);
    n += head_of(req + n, HEADER_LIMIT + 1, "/healthz", 1);
    client_open(&c, d.port);
    client_send(&c, req, n);
    client_expect(&c, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 200, "%s", r.head);
    client_expect(&c, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 200, "%s", r.head);
    client_expect(&c, false, WAIT_MS, &r);
    response_assert_problem(&r, 431, "headers_too_large");
    cr_assert(client_wait_closed(&c, WAIT_MS));
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * 413
 * ------------------------------------------------------------------------ */

/* A valid creation for ref padded with spaces to exactly size bytes. */
static char *padded_body(size_t size, const char *ref)
{
    char *b = malloc(size + 1);
    cr_assert(b != NULL);
    int n = sprintf(b,
                    "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
                    "\"device_protection\":false",
                    ref);
    memset(b + n, ' ', size - (size_t)n - 1);
    b[size - 1] = '}';
    b[size] = '\0';
    return b;
}

static char *with_length(const char *key, const char *ctype, const char *body, size_t *len)
{
    size_t cap = strlen(body) + 1024;
    char *req = malloc(cap);
    cr_assert(req != NULL);
    *len = request_build(req, cap, "POST", "/v1/subscriptions", key, ctype, NULL, body);
    return req;
}

/* The body in chunks of at most 4000 bytes. */
static char *chunked(const char *key, const char *ctype, const char *body, size_t *len)
{
    size_t blen = strlen(body), cap = blen + blen / 100 + 1024, n;
    char *req = malloc(cap);
    cr_assert(req != NULL);
    n = (size_t)sprintf(req, "POST /v1/subscriptions HTTP/1.1\r\nHost: claimd.test\r\n");
    if (key != NULL)
        n += (size_t)sprintf(req + n, "Authorization: Bearer %s\r\n", key);
    if (ctype != NULL)
        n += (size_t)sprintf(req + n, "Content-Type: %s\r\n", ctype);
    n += (size_t)sprintf(req + n, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < blen; off += 4000) {
        size_t k = blen - off < 4000 ? blen - off : 4000;
        n += (size_t)sprintf(req + n, "%zx\r\n", k);
        memcpy(req + n, body + off, k);
        n += k;
        n += (size_t)sprintf(req + n, "\r\n");
    }
    n += (size_t)sprintf(req + n, "0\r\n\r\n");
    *len = n;
    return req;
}

typedef char *(*framing_fn)(const char *key, const char *ctype, const char *body, size_t *len);

static void body_limit_case(const struct daemon *d, framing_fn frame, const char *tag)
{
    static struct response r;
    char ref[32];
    size_t len;

    /* Exactly the limit: accepted as far as size goes, then created. */
    snprintf(ref, sizeof(ref), "%s-limit", tag);
    char *body = padded_body(BODY_LIMIT, ref);
    char *req = frame(d->key, "application/json", body, &len);
    send_expect(d->port, req, len, 0, &r, KEEPS_OPEN);
    cr_assert_eq(r.status, 201, "%s, %d-byte body: %s%s", tag, BODY_LIMIT, r.head, r.body);
    free(req);

    /* Exactly the limit, not JSON: the size passed, the JSON did not. */
    memset(body, 'x', BODY_LIMIT);
    req = frame(d->key, "application/json", body, &len);
    send_expect(d->port, req, len, 0, &r, KEEPS_OPEN);
    response_assert_problem(&r, 400, "malformed_json");
    free(req);
    free(body);

    /* One byte more: 413, then closed. */
    snprintf(ref, sizeof(ref), "%s-over", tag);
    body = padded_body(BODY_LIMIT + 1, ref);
    req = frame(d->key, "application/json", body, &len);
    send_expect(d->port, req, len, 0, &r, CLOSES);
    response_assert_problem(&r, 413, "payload_too_large");
    free(req);
    free(body);
}

Test(limits, body_limit_is_exact_413_above_it)
{
    static struct daemon d;
    daemon_up(&d, NULL);
    body_limit_case(&d, with_length, "CL");
    body_limit_case(&d, chunked, "TE");
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Smuggling shapes: 400 bad_request, then closed
 * ------------------------------------------------------------------------ */

static const char *const smuggling[] = {
    /* Content-Length with Transfer-Encoding, both orders; a request hides in the body. */
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    "Content-Length: 48\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    /* Two Content-Length headers that disagree. */
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    "Content-Length: 37\r\n\r\n{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    /* chunked not last. */
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n"
    "\r\n0\r\n\r\n",
    /* Whitespace between the field name and the colon. */
    "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n{}",
    /* Obsolete line folding. */
    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n",
    /* Content-Length that is not a number. */
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
};

Test(limits, smuggling_shapes_are_400_then_closed)
{
    static struct daemon d;
    static struct response r;
    daemon_up(&d, NULL);
    for (size_t i = 0; i < sizeof(smuggling) / sizeof(smuggling[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            struct client c;
            client_open(&c, d.port);
            if (step == 0)
                client_send_str(&c, smuggling[i]);
            else
                client_send_slowly(&c, smuggling[i], strlen(smuggling[i]), 1, 100);
            cr_assert(client_wait_closed(&c, WAIT_MS), "case %zu: not closed", i);
            cr_assert_eq(response_count(c.buf, c.len), 1,
                         "case %zu (step %zu): expected one answer, got '%s' for:\n%s", i, step,
                         c.buf ? c.buf : "", smuggling[i]);
            cr_assert_eq(client_response(&c, false, 0, &r), 0);
            response_assert_problem(&r, 400, "bad_request");
            client_close(&c);
        }
    }
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Check order: 401 before 413, 413 before 415, 415 before 400
 * ------------------------------------------------------------------------ */

Test(limits, key_then_size_then_media_type_then_json)
{
    static struct daemon d;
    static struct response r;
    size_t len;
    daemon_up(&d, NULL);
    char *big = padded_body(BODY_LIMIT + 1, "O-1");

    /* No key or an unknown one, oversized body: 401. */
    const char *bad_keys[] = {NULL, "ck_0000000000000000000000000000000000000000000000000000"};
    for (int i = 0; i < 2; i++) {
        char *req = with_length(bad_keys[i], "text/plain", big, &len);
        send_expect(d.port, req, len, 0, &r, EITHER);
        response_assert_problem(&r, 401, "unauthorized");
        free(req);
        req = chunked(bad_keys[i], "text/plain", big, &len);
        send_expect(d.port, req, len, 0, &r, EITHER);
        response_assert_problem(&r, 401, "unauthorized");
        free(req);
    }

    /* A good key, oversized, wrong media type: 413. */
    char *req = with_length(d.key, "text/plain", big, &len);
    send_expect(d.port, req, len, 0, &r, CLOSES);
    response_assert_problem(&r, 413, "payload_too_large");
    free(req);
    req = chunked(d.key, NULL, big, &len);
    send_expect(d.port, req, len, 0, &r, CLOSES);
    response_assert_problem(&r, 413, "payload_too_large");
    free(req);
    free(big);

    /* Wrong or missing media type, malformed JSON: 415. */
    const char *types[] = {"text/plain", NULL, "application/jsonx",
                           "application/x-www-form-urlencoded"};
    for (int i = 0; i < 4; i++) {
        req = with_length(d.key, types[i], "{", &len);
        send_expect(d.port, req, len, 0, &r, KEEPS_OPEN);
        response_assert_problem(&r, 415, "unsupported_media_type");
        free(req);
    }

    /* application/json with parameters is JSON: malformed JSON is then 400. */
    req = with_length(d.key, "application/json; charset=utf-8", "{", &len);
    send_expect(d.port, req, len, 0, &r, KEEPS_OPEN);
    response_assert_problem(&r, 400, "malformed_json");
    free(req);
    daemon_stop(&d);
    daemon_destroy(&d);
}
