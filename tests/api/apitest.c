/*
 * Helpers of the REST API tests: replies of any size, sessions, JSON checks, set-up calls and
 * racing connections. The HTTP harness's response struct holds 16 KiB of body; a batch of
 * 1000 or a history page of 100 needs more, hence a reply struct of its own here (the head
 * scanning is the harness's).
 */
#include "apitest.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <criterion/criterion.h>

#include "testdb.h"

/* ------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

void reply_free(struct reply *r)
{
    free(r->body);
    if (r->json != NULL)
        json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

int reply_header(const struct reply *r, const char *name, char *out, size_t outlen)
{
    return response_header_in(r->head, name, out, outlen);
}

ssize_t reply_parse(const char *buf, size_t len, bool head, struct reply *r)
{
    char cl[32], *end;
    const char *hend = response_head_end(buf, len);
    if (hend == NULL)
        return len > RESPONSE_HEAD_MAX ? -1 : 0;
    size_t head_len = (size_t)(hend - buf) + 4;
    if (head_len >= RESPONSE_HEAD_MAX || memcmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    reply_free(r);
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    r->status = (int)strtol(buf + 9, &end, 10);
    if (end != buf + 12 || r->status < 100 || r->status > 599)
        return -1;
    if (r->status < 200)
        return (ssize_t)head_len;
    if (reply_header(r, "content-length", cl, sizeof(cl)) != 1)
        return -1;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0')
        return -1;
    if (head)
        return (ssize_t)head_len;
    if (len - head_len < n)
        return 0;
    r->body = malloc((size_t)n + 1);
    cr_assert(r->body != NULL);
    memcpy(r->body, buf + head_len, (size_t)n);
    r->body[n] = '\0';
    r->body_len = (size_t)n;
    if (n > 0 && (r->body[0] == '{' || r->body[0] == '['))
        r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
    return (ssize_t)(head_len + n);
}

int client_reply(struct client *c, bool head, int timeout_ms, struct reply *r)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ssize_t used = c->len > c->pos ? reply_parse(c->buf + c->pos, c->len - c->pos, head, r) : 0;
        if (used < 0)
            return -EPROTO;
        if (used > 0) {
            c->pos += (size_t)used;
            if (r->status < 200)
                continue; /* 100 Continue: the final answer follows */
            return 0;
        }
        if (c->eof)
            return -ECONNRESET;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        if (client_read_some(c, (int)left) == -ETIMEDOUT)
            return -ETIMEDOUT;
    }
}

/* ------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------ */

void sess_open(struct sess *s, int port, const char *key)
{
    s->port = port;
    s->key = key;
    client_open(&s->c, port);
    s->open = true;
}

void sess_close(struct sess *s)
{
    if (s->open)
        client_close(&s->c);
    s->open = false;
}

static char *build(const char *method, const char *target, const char *key, const char *body,
                   size_t *len)
{
    size_t cap = (body != NULL ? strlen(body) : 0) + 1024;
    char *req = malloc(cap);
    cr_assert(req != NULL);
    *len = request_build(req, cap, method, target, key, body != NULL ? "application/json" : NULL,
                         NULL, body);
    return req;
}

void sess_send(struct sess *s, const char *method, const char *target, const char *body)
{
    size_t len;
    if (s->open && s->c.eof)
        sess_close(s);
    if (!s->open)
        sess_open(s, s->port, s->key);
    char *req = build(method, target, s->key, body, &len);
    int rc = client_send(&s->c, req, len);
    if (rc != 0) { /* closed since the last answer: once more on a new connection */
        sess_close(s);
        sess_open(s, s->port, s->key);
        rc = client_send(&s->c, req, len);
    }
    free(req);
    cr_assert_eq(rc, 0, "sending %s %s: %s", method, target, strerror(-rc));
}

static void read_for(struct sess *s, bool head, struct reply *r, const char *method,
                     const char *target)
{
    char conn[32];
    int rc = client_reply(&s->c, head, API_WAIT_MS, r);
    cr_assert_eq(rc, 0, "%s %s: no answer within %d ms: %s", method, target, API_WAIT_MS,
                 strerror(-rc));
    /* The server closes after this answer: the next request goes on a new connection. */
    reply_header(r, "connection", conn, sizeof(conn));
    if (strcasecmp(conn, "close") == 0 && client_unparsed(&s->c) == 0)
        sess_close(s);
}

void sess_read(struct sess *s, bool head, struct reply *r)
{
    read_for(s, head, r, "the next request", "(pipelined)");
}

void sess_call(struct sess *s, const char *method, const char *target, const char *body,
               struct reply *r)
{
    /* A connection the server closed after its last answer is replaced before sending. */
    if (s->open && client_unparsed(&s->c) == 0 && client_read_some(&s->c, 0) == 0)
        sess_close(s);
    sess_send(s, method, target, body);
    read_for(s, strcmp(method, "HEAD") == 0, r, method, target);
}

json_t *sess_expect(struct sess *s, int status, const char *method, const char *target,
                    const char *body, struct reply *r)
{
    char what[256];
    sess_call(s, method, target, body, r);
    snprintf(what, sizeof(what), "%s %s", method, target);
    expect_status(r, status, what);
    cr_assert(r->json != NULL, "%s: the body is not JSON: %s", what, r->body ? r->body : "");
    return r->json;
}

void sess_problem(struct sess *s, int status, const char *code, const char *method,
                  const char *target, const char *body)
{
    struct reply r = {0};
    sess_call(s, method, target, body, &r);
    if (r.status != status) {
        cr_assert_fail("%s %s%s%s: expected %d %s, got %d: %s", method, target,
                       body != NULL ? " " : "", body != NULL ? body : "", status, code, r.status,
                       r.body ? r.body : "");
    }
    expect_problem(&r, status, code);
    reply_free(&r);
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------ */

const char *jtext(json_t *v)
{
    static char bufs[4][8192];
    static int next;
    char *out = bufs[next++ % 4];
    char *s = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(out, sizeof(bufs[0]), "%s", s != NULL ? s : "(absent)");
    free(s);
    return out;
}

json_t *jparse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    cr_assert(v != NULL, "bad JSON in the test (%s): %s", err.text, text);
    return v;
}

void expect_status(const struct reply *r, int status, const char *what)
{
    cr_assert_eq(r->status, status, "%s: expected %d, got %d:\n%s%s", what, status, r->status,
                 r->head, r->body ? r->body : "");
}

static void problem_string(json_t *o, const char *name, const struct reply *r)
{
    json_t *v = json_object_get(o, name);
    cr_assert(json_is_string(v) && json_string_length(v) > 0,
              "the problem has no string member \"%s\": %s", name, r->body);
}

void expect_problem(const struct reply *r, int status, const char *code)
{
    char ctype[128];
    cr_assert_eq(r->status, status, "expected %d %s, got %d:\n%s%s", status, code, r->status,
                 r->head, r->body ? r->body : "");
    reply_header(r, "content-type", ctype, sizeof(ctype));
    cr_assert_str_eq(ctype, "application/problem+json", "%s", r->head);
    cr_assert(json_is_object(r->json), "the problem is not a JSON object: %s", r->body);
    problem_string(r->json, "type", r);
    problem_string(r->json, "title", r);
    problem_string(r->json, "detail", r);
    problem_string(r->json, "code", r);
    json_t *st = json_object_get(r->json, "status");
    cr_assert(json_is_integer(st) && json_integer_value(st) == status, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "code")), code, "%s", r->body);
}

void expect_errors(const struct reply *r, const char *want)
{
    json_t *w = jparse(want);
    json_t *got = json_object_get(r->json, "errors");
    cr_assert(json_equal(got, w), "errors: expected %s, got %s", want, jtext(got));
    json_decref(w);
}

static bool holds_objects(json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_object(v))
            return true;
    }
    return false;
}

static bool match_at(const char *path, json_t *got, json_t *want, char *why, size_t len)
{
    char sub[256];
    if (json_is_object(want) && json_is_object(got)) {
        const char *key;
        json_t *v;
        json_object_foreach(want, key, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
            if (!match_at(sub, json_object_get(got, key), v, why, len))
                return false;
        }
        return true;
    }
    if (json_is_array(want) && json_is_array(got) && holds_objects(want) &&
        json_array_size(want) == json_array_size(got)) {
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (!match_at(sub, json_array_get(got, i), json_array_get(want, i), why, len))
                return false;
        }
        return true;
    }
    if (got != NULL && json_equal(got, want))
        return true;
    snprintf(why, len, "%s: expected %s, got %s", path[0] ? path : "(value)", jtext(want),
             jtext(got));
    return false;
}

bool json_match(json_t *got, json_t *want, char *why, size_t len)
{
    return match_at("", got, want, why, len);
}

void expect_members(json_t *got, const char *want, const char *what)
{
    char why[2048];
    json_t *w = jparse(want);
    bool ok = json_match(got, w, why, sizeof(why));
    json_decref(w);
    cr_assert(ok, "%s: %s\nin %s", what, why, jtext(got));
}

void expect_equal(json_t *got, json_t *want, const char *what)
{
    cr_assert(got != NULL && want != NULL && json_equal(got, want), "%s:\n got  %s\n want %s", what,
              jtext(got), jtext(want));
}

void expect_keys(json_t *obj, const char *names, const char *what)
{
    char name[64];
    size_t n = 0;
    cr_assert(json_is_object(obj), "%s: not an object: %s", what, jtext(obj));
    for (const char *p = names; *p != '\0';) {
        size_t k = strcspn(p, ",");
        snprintf(name, sizeof(name), "%.*s", (int)k, p);
        cr_assert(json_object_get(obj, name) != NULL, "%s: no member \"%s\" in %s", what, name,
                  jtext(obj));
        n++;
        p += k + (p[k] == ',');
    }
    cr_assert_eq(json_object_size(obj), n, "%s: expected exactly the members %s, got %s", what,
                 names, jtext(obj));
}

void expect_timestamp(json_t *v, const char *what)
{
    const char *s = json_string_value(v);
    cr_assert(s != NULL, "%s: not a string: %s", what, jtext(v));
    size_t n = strlen(s);
    bool ok = n >= 25 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
              s[16] == ':' && strcmp(s + n - 6, "+09:00") == 0;
    for (size_t i = 0; ok && i < 19; i++)
        ok = (i == 4 || i == 7 || i == 10 || i == 13 || i == 16) || isdigit((unsigned char)s[i]);
    if (ok && n > 25) { /* fractional seconds */
        ok = s[19] == '.' && n - 6 > 20;
        for (size_t i = 20; ok && i < n - 6; i++)
            ok = isdigit((unsigned char)s[i]);
    }
    cr_assert(ok, "%s: \"%s\" is not an RFC 3339 timestamp in +09:00", what, s);
}

/* ------------------------------------------------------------------------
 * Dates, IMEIs, SQL
 * ------------------------------------------------------------------------ */

void japan_date(int days, char out[11])
{
    time_t t = time(NULL) + 9 * 3600 + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void imei_make(unsigned long n, char out[16])
{
    int sum = 0;
    snprintf(out, 16, "35%012lu", n % 1000000000000UL);
    for (int i = 0; i < 14; i++) {
        int d = out[i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    out[14] = (char)('0' + (10 - sum % 10) % 10);
    out[15] = '\0';
}

long long sql_count(const struct daemon *d, const char *sql)
{
    char v[64];
    PGconn *conn = testdb_connect(d->owner_url);
    testdb_value(conn, sql, v, sizeof(v));
    PQfinish(conn);
    return strtoll(v, NULL, 10);
}

/* ------------------------------------------------------------------------
 * Set-up calls
 * ------------------------------------------------------------------------ */

void api_sub(struct sess *s, const char *ref, const char *applied, const char *activated,
             bool option)
{
    char body[512], act[64] = "";
    struct reply r = {0};
    if (activated != NULL)
        snprintf(act, sizeof(act), "\"activated_on\":\"%s\",", activated);
    snprintf(body, sizeof(body),
             "{\"subscription_ref\":\"%s\",\"applied_on\":\"%s\",%s\"device_protection\":%s}", ref,
             applied, act, option ? "true" : "false");
    sess_expect(s, 201, "POST", "/v1/subscriptions", body, &r);
    reply_free(&r);
}

void api_device(struct sess *s, const char *ref, const char *imei, const char *os,
                const char *release, const char *registered, const char *from)
{
    char body[512], target[128];
    struct reply r = {0};
    snprintf(target, sizeof(target), "/v1/subscriptions/%s/device", ref);
    snprintf(body, sizeof(body),
             "{\"imei\":\"%s\",\"os\":\"%s\",\"model\":\"Pixel 6\",\"release_date\":\"%s\","
             "\"purchased_from\":\"%s\",\"registered_on\":\"%s\"}",
             imei, os, release, from, registered);
    sess_expect(s, 200, "PUT", target, body, &r);
    reply_free(&r);
}

void claim_json(char *out, size_t len, const char *claim_ref, const char *sub, const char *imei,
                const char *incident, const char *damage, const char *remedy, long long estimate)
{
    char ref[128] = "", dmg[64] = "", est[48] = "";
    if (claim_ref != NULL)
        snprintf(ref, sizeof(ref), "\"claim_ref\":\"%s\",", claim_ref);
    if (damage != NULL)
        snprintf(dmg, sizeof(dmg), "\"damage\":\"%s\",", damage);
    if (estimate >= 0)
        snprintf(est, sizeof(est), ",\"repair_estimate\":%lld", estimate);
    int n = snprintf(out, len,
                     "{%s\"subscription_ref\":\"%s\",\"imei\":\"%s\",\"incident_on\":\"%s\","
                     "\"cause\":\"%s\",%s\"remedy\":\"%s\"%s}",
                     ref, sub, imei, incident,
                     damage != NULL ? "physical_damage" : "natural_failure", dmg, remedy, est);
    cr_assert(n > 0 && (size_t)n < len);
}

json_t *api_claim(struct sess *s, int status, const char *body, struct reply *r)
{
    return sess_expect(s, status, "POST", "/v1/claims", body, r);
}

/* ------------------------------------------------------------------------
 * Many connections at once
 * ------------------------------------------------------------------------ */

void job_build(struct job *j, const char *method, const char *target, const char *key,
               const char *body)
{
    memset(j, 0, sizeof(*j));
    j->req = build(method, target, key, body, &j->len);
}

static void jobs_connect_and_send(int port, struct job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i].rc = client_try_open(&jobs[i]._c, jobs[i].port > 0 ? jobs[i].port : port);
        jobs[i]._done = jobs[i].rc != 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]._done)
            continue;
        jobs[i].rc = client_send(&jobs[i]._c, jobs[i].req, jobs[i].len);
        jobs[i]._done = jobs[i].rc != 0;
    }
}

/* Reads what came on job j; marks it done once its answer or its end is there. */
static void job_progress(struct job *j)
{
    struct client *c = &j->_c;
    client_read_some(c, 0);
    ssize_t used =
        c->len > c->pos ? reply_parse(c->buf + c->pos, c->len - c->pos, false, &j->r) : 0;
    if (used > 0 && j->r.status >= 200) {
        j->rc = 0;
        j->_done = true;
    } else if (used > 0) {
        c->pos += (size_t)used; /* 1xx */
    } else if (used < 0) {
        j->rc = -EPROTO;
        j->_done = true;
    } else if (c->eof) {
        j->rc = -ECONNRESET;
        j->_done = true;
    }
}

void jobs_run(int port, struct job *jobs, size_t n, int timeout_ms)
{
    struct pollfd *fds = calloc(n, sizeof(*fds));
    size_t *idx = calloc(n, sizeof(*idx));
    cr_assert(fds != NULL && idx != NULL);
    jobs_connect_and_send(port, jobs, n);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!jobs[i]._done) {
                fds[k] = (struct pollfd){jobs[i]._c.fd, POLLIN, 0};
                idx[k++] = i;
            }
        }
        int64_t left = deadline - now_ms();
        if (k == 0 || left <= 0)
            break;
        int rc = poll(fds, (nfds_t)k, (int)left);
        cr_assert(rc >= 0 || errno == EINTR, "poll: %s", strerror(errno));
        for (size_t i = 0; rc > 0 && i < k; i++) {
            if (fds[i].revents != 0)
                job_progress(&jobs[idx[i]]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!jobs[i]._done)
            jobs[i].rc = -ETIMEDOUT;
        if (jobs[i]._c.fd >= 0 || jobs[i]._c.buf != NULL)
            client_close(&jobs[i]._c);
    }
    free(fds);
    free(idx);
}

void jobs_free(struct job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].req);
        jobs[i].req = NULL;
        reply_free(&jobs[i].r);
    }
}
