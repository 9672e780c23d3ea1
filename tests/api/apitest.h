/*
 * Helpers of the REST API tests (issue 7), on top of the HTTP harness (tests/http/daemon.h):
 * replies of any size parsed as JSON, keep-alive sessions, member-by-member checks, set-up calls
 * and many connections racing at once.
 */
#ifndef CLAIMD_TESTS_API_APITEST_H
#define CLAIMD_TESTS_API_APITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "daemon.h"

#define API_WAIT_MS 20000 /* the longest wait for one answer (ASan is slow) */

/* Valid IMEIs (15 digits, Luhn): api.md's, the tour's second one, an iOS one. */
#define IMEI_A   "356938035643809"
#define IMEI_B   "490154203237518"
#define IMEI_IOS "352099001761481"

/** One parsed response of any size; the body is on the heap. */
struct reply {
    int status;
    char head[RESPONSE_HEAD_MAX]; /* status line and header lines, NUL-terminated */
    char *body;                   /* NUL-terminated, or NULL */
    size_t body_len;
    json_t *json; /* the body as JSON (objects and arrays), or NULL */
};

/** Frees the body and the JSON; the reply can be reused. */
void reply_free(struct reply *r);

/**
 * Parses one response at buf (head: the answer to a HEAD, no body). Returns its length, 0 when
 * incomplete, -1 when malformed. r must be zeroed or freed.
 */
ssize_t reply_parse(const char *buf, size_t len, bool head, struct reply *r);

/** The value of header name (case-insensitive); returns how many lines carry it. */
int reply_header(const struct reply *r, const char *name, char *out, size_t outlen);

/**
 * Reads the next response on c, waiting up to timeout_ms: 0, -ETIMEDOUT, -ECONNRESET (the
 * stream ended first) or -EPROTO.
 */
int client_reply(struct client *c, bool head, int timeout_ms, struct reply *r);

/* ------------------------------------------------------------------------
 * Sessions: one keep-alive connection and one key
 * ------------------------------------------------------------------------ */

/** A keep-alive connection that reconnects when the server closed it. */
struct sess {
    int port;
    const char *key; /* the caller's string; NULL sends no Authorization */
    struct client c;
    bool open;
};

void sess_open(struct sess *s, int port, const char *key);
void sess_close(struct sess *s);

/** Sends one request (JSON body when body is not NULL) without reading (pipelining). */
void sess_send(struct sess *s, const char *method, const char *target, const char *body);

/** Reads the next answer or fails the test. */
void sess_read(struct sess *s, bool head, struct reply *r);

/** One request, one answer (a HEAD reads no body). */
void sess_call(struct sess *s, const char *method, const char *target, const char *body,
               struct reply *r);

/** sess_call that asserts the status and a JSON body; returns r->json (owned by r). */
json_t *sess_expect(struct sess *s, int status, const char *method, const char *target,
                    const char *body, struct reply *r);

/** sess_call that asserts an RFC 9457 problem with this status and code. */
void sess_problem(struct sess *s, int status, const char *code, const char *method,
                  const char *target, const char *body);

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------ */

/** Asserts the status, with the answer in the message. */
void expect_status(const struct reply *r, int status, const char *what);

/**
 * Asserts a problem: the status, application/problem+json, type, title, detail and code
 * strings, and status equal to the status line's.
 */
void expect_problem(const struct reply *r, int status, const char *code);

/** Asserts that the problem's errors array equals want (JSON text). */
void expect_errors(const struct reply *r, const char *want);

/**
 * True when every member of want (an object) equals got's member of the same name, arrays
 * of objects compared element by element; why names the first difference.
 */
bool json_match(json_t *got, json_t *want, char *why, size_t len);

/** Asserts json_match(got, want-as-JSON-text). */
void expect_members(json_t *got, const char *want, const char *what);

/** Asserts that two JSON values are equal. */
void expect_equal(json_t *got, json_t *want, const char *what);

/** Asserts that obj has exactly these members (comma-separated names), in any order. */
void expect_keys(json_t *obj, const char *names, const char *what);

/** Asserts an RFC 3339 timestamp in Japan time: YYYY-MM-DDTHH:MM:SS[.fff]+09:00. */
void expect_timestamp(json_t *v, const char *what);

/** A compact dump for messages, in a rotating static buffer (valid for a few calls). */
const char *jtext(json_t *v);

/** Parses JSON text or fails the test; the caller owns the value. */
json_t *jparse(const char *text);

/* ------------------------------------------------------------------------
 * Dates, IMEIs, SQL
 * ------------------------------------------------------------------------ */

/** The civil date in Japan today plus days, as YYYY-MM-DD. */
void japan_date(int days, char out[11]);

/** A valid IMEI (Luhn) made from n: "35" + 12 digits of n + the check digit. */
void imei_make(unsigned long n, char out[16]);

/** Runs a query of one value as the owner and returns it as a number. */
long long sql_count(const struct daemon *d, const char *sql);

/* ------------------------------------------------------------------------
 * Set-up calls (each asserts that it took effect)
 * ------------------------------------------------------------------------ */

/** POST /v1/subscriptions (activated NULL: omitted); asserts 201. */
void api_sub(struct sess *s, const char *ref, const char *applied, const char *activated,
             bool option);

/** PUT /v1/subscriptions/{ref}/device, model "Pixel 6"; asserts 200. */
void api_device(struct sess *s, const char *ref, const char *imei, const char *os,
                const char *release, const char *registered, const char *from);

/**
 * A claim body: damage NULL for natural failure, estimate < 0 for none (an exchange);
 * claim_ref NULL leaves it out (a quote).
 */
void claim_json(char *out, size_t len, const char *claim_ref, const char *sub, const char *imei,
                const char *incident, const char *damage, const char *remedy, long long estimate);

/** POST /v1/claims with body; asserts the status (201 or 200) and returns the decision. */
json_t *api_claim(struct sess *s, int status, const char *body, struct reply *r);

/* ------------------------------------------------------------------------
 * Many connections at once
 * ------------------------------------------------------------------------ */

/** One request on a connection of its own, and its answer. */
struct job {
    int port;  /* 0: the port jobs_run is given */
    char *req; /* the request bytes (job_build's) */
    size_t len;
    int rc; /* 0 when r holds the answer, else a negative errno */
    struct reply r;
    struct client _c;
    bool _done;
};

/** Builds a job's request (on the heap: job_free frees it). */
void job_build(struct job *j, const char *method, const char *target, const char *key,
               const char *body);

/**
 * Connects every job first, then sends every request, then waits for all the answers
 * (poll on all the sockets), so that the server sees them all at once.
 */
void jobs_run(int port, struct job *jobs, size_t n, int timeout_ms);

/** Frees the request and the answer of every job. */
void jobs_free(struct job *jobs, size_t n);

#endif
