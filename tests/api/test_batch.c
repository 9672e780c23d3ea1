/*
 * Batches and pipelining over HTTP: results in order with per-claim problems that carry their
 * claim_ref, 1 to 1000 claims (0 and 1001 are invalid_batch, nothing decided), a full queue,
 * and claims pipelined on one connection decided in the order sent.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(batch, .fini = daemon_cleanup, .timeout = 60);

static struct daemon d;

static const char problem_keys[] = "type,title,status,detail,code,claim_ref";

static void up(struct sess *s, const char *const *extra)
{
    daemon_up(&d, extra);
    sess_open(s, d.port, d.key);
    api_sub(s, "L-1", "2024-04-01", "2024-04-03", true);
    api_device(s, "L-1", IMEI_A, "android", "2022-01-20", "2024-04-10", "other");
}

static void down(struct sess *s)
{
    sess_close(s);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* A growing {"claims":[...]} body. */
struct batch_body {
    char *buf;
    size_t len, cap;
    int n;
};

static void batch_add(struct batch_body *b, const char *claim)
{
    size_t need = b->len + strlen(claim) + 8;
    if (need > b->cap) {
        b->cap = need * 2;
        b->buf = realloc(b->buf, b->cap);
        cr_assert(b->buf != NULL);
    }
    if (b->n == 0)
        b->len = (size_t)sprintf(b->buf, "{\"claims\":[");
    b->len += (size_t)sprintf(b->buf + b->len, "%s%s", b->n > 0 ? "," : "", claim);
    b->n++;
}

/* The body, closed (valid until the next batch_add). */
static const char *batch_text(struct batch_body *b)
{
    if (b->n == 0)
        return "{\"claims\":[]}";
    sprintf(b->buf + b->len, "]}");
    return b->buf;
}

/* Asserts results[i] is a problem of this status and code for claim_ref ref. */
static void item_problem(json_t *results, size_t i, int status, const char *code, const char *ref)
{
    char want[512];
    json_t *it = json_array_get(results, i);
    snprintf(want, sizeof(want), "{\"status\":%d,\"code\":\"%s\",\"claim_ref\":\"%s\"}", status,
             code, ref);
    char what[32];
    snprintf(what, sizeof(what), "results[%zu]", i);
    expect_members(it, want, what);
    cr_assert(json_is_string(json_object_get(it, "type")) &&
                  json_is_string(json_object_get(it, "title")) &&
                  json_is_string(json_object_get(it, "detail")),
              "%s is not a problem object: %s", what, jtext(it));
}

Test(batch, results_in_order_with_per_claim_problems)
{
    struct sess s;
    struct reply r = {0}, x2 = {0}, b1 = {0}, g = {0};
    struct batch_body b = {0};
    char body[512], tomorrow[11], ref65[66];
    up(&s, NULL);
    japan_date(1, tomorrow);
    memset(ref65, 'b', 65);
    ref65[65] = '\0';
    claim_json(body, sizeof(body), "X-1", "L-1", IMEI_A, "2024-04-20", NULL, "repair", 1);
    api_claim(&s, 201, body, &r);
    expect_members(r.json, "{\"status\":\"approved\",\"use_number\":1}", "X-1");
    claim_json(body, sizeof(body), "X-2", "L-1", IMEI_B, "2024-04-21", NULL, "repair", 1);
    json_t *x2v = api_claim(&s, 201, body, &x2);

    claim_json(body, sizeof(body), "B-1", "L-1", IMEI_A, "2025-05-01", "screen", "exchange", -1);
    batch_add(&b, body); /* 0: approved, use 1 of the second window */
    claim_json(body, sizeof(body), "B-2", "L-1", IMEI_A, "2025-05-02", "screen", "exchange", 9);
    batch_add(&b, body); /* 1: invalid */
    claim_json(body, sizeof(body), "B-3", "L-404", IMEI_A, "2025-05-03", NULL, "repair", 100);
    batch_add(&b, body); /* 2: unknown subscription */
    claim_json(body, sizeof(body), "B-4", "L-1", IMEI_A, tomorrow, NULL, "repair", 100);
    batch_add(&b, body); /* 3: incident in the future */
    claim_json(body, sizeof(body), "B-5", "L-1", IMEI_A, "2025-06-01", "other", "repair", 60000);
    batch_add(&b, body); /* 4: approved, use 2 */
    claim_json(body, sizeof(body), "B-6", "L-1", IMEI_A, "2019-06-01", NULL, "repair", 100);
    batch_add(&b, body); /* 5: no policy in force */
    claim_json(body, sizeof(body), "B-7", "L-1", IMEI_A, "2025-07-01", "water", "exchange", -1);
    batch_add(&b, body); /* 6: denied, frequency_limit */
    claim_json(body, sizeof(body), "X-1", "L-1", IMEI_A, "2024-04-20", NULL, "repair", 2);
    batch_add(&b, body); /* 7: claim_ref_reused */
    claim_json(body, sizeof(body), "X-2", "L-1", IMEI_B, "2024-04-21", NULL, "repair", 1);
    batch_add(&b, body); /* 8: a replay */
    claim_json(body, sizeof(body), ref65, "L-1", IMEI_A, "2025-05-01", NULL, "repair", 1);
    batch_add(&b, body); /* 9: an invalid claim_ref, echoed */
    claim_json(body, sizeof(body), "B-1", "L-1", IMEI_A, "2025-05-01", "screen", "exchange", -1);
    batch_add(&b, body); /* 10: B-1 again: replays item 0's decision */
    claim_json(body, sizeof(body), "B-1", "L-1", IMEI_A, "2025-05-02", "screen", "exchange", -1);
    batch_add(&b, body); /* 11: B-1 with another body */
    batch_add(&b, "{\"claim_ref\":\"B-12\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                  "\",\"incident_on\":\"2025-05-01\",\"cause\":\"natural_failure\","
                  "\"remedy\":\"repair\",\"repair_estimate\":1,\"colour\":\"red\"}");
    /* 12: an unknown member */

    json_t *v = sess_expect(&s, 200, "POST", "/v1/claims/batch", batch_text(&b), &r);
    expect_keys(v, "results", "a batch's answer");
    json_t *res = json_object_get(v, "results");
    cr_assert_eq(json_array_size(res), 13, "%s", jtext(v));

    json_t *first = json_array_get(res, 0);
    expect_members(first,
                   "{\"claim_ref\":\"B-1\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
                   "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
                   "\"customer_charge\":5500,\"reasons\":[],\"use_number\":1,\"uses_remaining\":1,"
                   "\"window\":{\"start\":\"2025-04-01\",\"end\":\"2026-03-31\"},\"loaner\":null,"
                   "\"policy_version\":\"2025-01\"}",
                   "results[0]");
    expect_timestamp(json_object_get(first, "decided_at"), "results[0].decided_at");
    item_problem(res, 1, 400, "invalid_field", "B-2");
    expect_keys(json_array_get(res, 1), "type,title,status,detail,code,claim_ref,errors",
                "results[1]");
    expect_members(json_array_get(res, 1),
                   "{\"errors\":[{\"field\":\"repair_estimate\",\"code\":\"invalid_field\"}]}",
                   "results[1].errors");
    item_problem(res, 2, 404, "not_found", "B-3");
    expect_keys(json_array_get(res, 2), problem_keys, "results[2]");
    item_problem(res, 3, 400, "incident_in_future", "B-4");
    expect_members(json_array_get(res, 4),
                   "{\"claim_ref\":\"B-5\",\"status\":\"approved\",\"use_number\":2,"
                   "\"uses_remaining\":0,\"covered_amount\":50000,\"customer_charge\":10000,"
                   "\"reasons\":[\"cap_exceeded\"]}",
                   "results[4]");
    item_problem(res, 5, 422, "no_policy_in_force", "B-6");
    expect_members(json_array_get(res, 6),
                   "{\"claim_ref\":\"B-7\",\"status\":\"denied\",\"reasons\":[\"frequency_limit\"],"
                   "\"use_number\":null,\"uses_remaining\":0}",
                   "results[6]");
    item_problem(res, 7, 409, "claim_ref_reused", "X-1");
    expect_equal(json_array_get(res, 8), x2v, "results[8], the replay of X-2");
    item_problem(res, 9, 400, "invalid_field", ref65);
    expect_equal(json_array_get(res, 10), first, "results[10], B-1 again");
    item_problem(res, 11, 409, "claim_ref_reused", "B-1");
    item_problem(res, 12, 400, "unknown_field", "B-12");
    expect_members(json_array_get(res, 12),
                   "{\"errors\":[{\"field\":\"colour\",\"code\":\"unknown_field\"}]}",
                   "results[12]");

    /* What was decided is recorded as answered; the rest is not. */
    static const size_t decided[] = {0, 4, 6};
    for (size_t i = 0; i < 3; i++) {
        json_t *it = json_array_get(res, decided[i]);
        char target[64];
        snprintf(target, sizeof(target), "/v1/claims/%s",
                 json_string_value(json_object_get(it, "claim_ref")));
        expect_equal(sess_expect(&s, 200, "GET", target, NULL, &g), it, target);
    }
    static const char *const undecided[] = {"B-2", "B-3", "B-4", "B-6"};
    for (size_t i = 0; i < 4; i++) {
        char target[64];
        snprintf(target, sizeof(target), "/v1/claims/%s", undecided[i]);
        sess_problem(&s, 404, "not_found", "GET", target, NULL);
    }
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 5);
    /* History: newest first, the batch's claims in their batch order. */
    json_t *h = sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &b1);
    static const char *const order[] = {"B-7", "B-5", "B-1", "X-2", "X-1"};
    json_t *hc = json_object_get(h, "claims");
    cr_assert_eq(json_array_size(hc), 5, "%s", jtext(h));
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hc, i), "claim_ref")),
                         order[i], "history[%zu]: %s", i, jtext(h));
    free(b.buf);
    reply_free(&r);
    reply_free(&x2);
    reply_free(&b1);
    reply_free(&g);
    down(&s);
}

/* Claim i of a batch on ten lines: line i % 10, one incident day each. */
static void spread_claim(char *body, size_t len, int i)
{
    char ref[16], sub[16], day[16], imei[16];
    imei_make((unsigned long)(i % 10) + 1, imei);
    snprintf(ref, sizeof(ref), "K-%04d", i);
    snprintf(sub, sizeof(sub), "S-%d", i % 10);
    snprintf(day, sizeof(day), "2024-%02d-%02d", 5 + (i / 10) / 28 % 6, 1 + (i / 10) % 28);
    claim_json(body, len, ref, sub, imei, day, "screen", "repair", 1000 + i);
}

Test(batch, one_to_a_thousand_claims_0_and_1001_are_invalid_batch)
{
    struct sess s;
    struct reply r = {0}, again = {0};
    struct batch_body b = {0};
    char body[512], ref[16], imei[16];
    up(&s, NULL);
    for (int k = 0; k < 10; k++) {
        snprintf(ref, sizeof(ref), "S-%d", k);
        imei_make((unsigned long)k + 1, imei);
        api_sub(&s, ref, "2024-04-01", "2024-04-03", true);
        api_device(&s, ref, imei, "android", "2022-01-20", "2024-04-10", "other");
    }
    /* 1001 claims: refused whole, nothing decided. */
    for (int i = 0; i < 1001; i++) {
        spread_claim(body, sizeof(body), i);
        batch_add(&b, body);
    }
    sess_call(&s, "POST", "/v1/claims/batch", batch_text(&b), &r);
    expect_problem(&r, 400, "invalid_batch");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 0);
    sess_call(&s, "POST", "/v1/claims/batch", "{\"claims\":[]}", &r);
    expect_problem(&r, 400, "invalid_batch");
    sess_call(&s, "POST", "/v1/claims/batch", "{\"claims\":{}}", &r);
    expect_problem(&r, 400, "invalid_field");
    expect_errors(&r, "[{\"field\":\"claims\",\"code\":\"invalid_field\"}]");
    sess_call(&s, "POST", "/v1/claims/batch", "{}", &r);
    expect_problem(&r, 400, "missing_field");
    expect_errors(&r, "[{\"field\":\"claims\",\"code\":\"missing_field\"}]");
    sess_call(&s, "POST", "/v1/claims/batch", "{\"claims\":[],\"all\":true}", &r);
    expect_problem(&r, 400, "unknown_field");

    /* 1000 claims, 100 per line: on each line the first two in batch order are approved. */
    free(b.buf);
    memset(&b, 0, sizeof(b));
    for (int i = 0; i < 1000; i++) {
        spread_claim(body, sizeof(body), i);
        batch_add(&b, body);
    }
    cr_assert(b.len < 1024 * 1024);
    json_t *res = json_object_get(
        sess_expect(&s, 200, "POST", "/v1/claims/batch", batch_text(&b), &r), "results");
    cr_assert_eq(json_array_size(res), 1000);
    for (int i = 0; i < 1000; i++) {
        json_t *it = json_array_get(res, (size_t)i);
        snprintf(ref, sizeof(ref), "K-%04d", i);
        const char *got = json_string_value(json_object_get(it, "claim_ref"));
        cr_assert(got != NULL && strcmp(got, ref) == 0, "results[%d] is %s", i, jtext(it));
        const char *st = json_string_value(json_object_get(it, "status"));
        if (i < 20) {
            cr_assert(st != NULL && strcmp(st, "approved") == 0, "results[%d]: %s", i, jtext(it));
            cr_assert_eq(json_integer_value(json_object_get(it, "use_number")), i / 10 + 1,
                         "results[%d]: %s", i, jtext(it));
        } else {
            expect_members(it, "{\"status\":\"denied\",\"reasons\":[\"frequency_limit\"]}", ref);
        }
    }
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 1000);
    /* The same batch again: every claim replays; nothing is decided twice. */
    expect_equal(sess_expect(&s, 200, "POST", "/v1/claims/batch", batch_text(&b), &again), r.json,
                 "the batch replayed");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 1000);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE status = 'approved'"), 20);

    /* A body above 1 MiB. */
    while (b.len < 1024 * 1024 + 10)
        batch_add(&b, "{}");
    sess_call(&s, "POST", "/v1/claims/batch", batch_text(&b), &r);
    expect_problem(&r, 413, "payload_too_large");
    free(b.buf);
    reply_free(&r);
    reply_free(&again);
    down(&s);
}

/* A batch the work queue has no room for is refused whole: 503 overloaded, nothing decided. */
Test(batch, a_full_queue_is_503_overloaded_nothing_decided)
{
    struct sess s;
    struct reply r = {0};
    struct batch_body b = {0};
    char body[512], ref[16], retry[16];
    up(&s, (const char *[]){"--max-queue", "4", NULL});
    for (int i = 0; i < 10; i++) {
        snprintf(ref, sizeof(ref), "Q-%d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
        batch_add(&b, body);
    }
    sess_call(&s, "POST", "/v1/claims/batch", batch_text(&b), &r);
    expect_problem(&r, 503, "overloaded");
    cr_assert_eq(reply_header(&r, "retry-after", retry, sizeof(retry)), 1, "%s", r.head);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 0);
    free(b.buf);
    memset(&b, 0, sizeof(b));
    for (int i = 0; i < 3; i++) {
        snprintf(ref, sizeof(ref), "Q-%d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
        batch_add(&b, body);
    }
    json_t *res = json_object_get(
        sess_expect(&s, 200, "POST", "/v1/claims/batch", batch_text(&b), &r), "results");
    cr_assert_eq(json_array_size(res), 3);
    free(b.buf);
    reply_free(&r);
    down(&s);
}

/*
 * Claims pipelined on one connection are decided in the order sent: two lines interleaved,
 * eight claims each, all written at once; each line's first two are uses 1 and 2.
 */
Test(batch, pipelined_claims_are_decided_in_the_order_sent)
{
    struct sess s;
    struct reply r = {0};
    char body[512], ref[16];
    up(&s, NULL);
    api_sub(&s, "L-2", "2024-04-01", "2024-04-03", true);
    api_device(&s, "L-2", IMEI_B, "android", "2022-01-20", "2024-04-10", "other");
    for (int round = 0; round < 3; round++) {
        /* Each round uses its own window (one per contract year). */
        char day[16];
        for (int i = 0; i < 16; i++) {
            snprintf(ref, sizeof(ref), "P%d-%02d", round, i);
            snprintf(day, sizeof(day), "%d-05-%02d", 2024 + round, 20 - i);
            claim_json(body, sizeof(body), ref, i % 2 ? "L-2" : "L-1", i % 2 ? IMEI_B : IMEI_A, day,
                       "screen", "repair", 1000);
            sess_send(&s, "POST", "/v1/claims", body);
        }
        for (int i = 0; i < 16; i++) {
            sess_read(&s, false, &r);
            snprintf(ref, sizeof(ref), "P%d-%02d", round, i);
            expect_status(&r, 201, ref);
            cr_assert_str_eq(json_string_value(json_object_get(r.json, "claim_ref")), ref,
                             "answer %d of round %d: %s", i, round, r.body);
            if (i < 4)
                expect_members(r.json,
                               i < 2 ? "{\"status\":\"approved\",\"use_number\":1}"
                                     : "{\"status\":\"approved\",\"use_number\":2}",
                               ref);
            else
                expect_members(r.json,
                               "{\"status\":\"denied\",\"reasons\":[\"frequency_limit\"],"
                               "\"uses_remaining\":0}",
                               ref);
        }
    }
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE status = 'approved'"), 12);
    reply_free(&r);
    down(&s);
}

/*
 * RFC 9112 (9.3.2) lets a server work on pipelined requests in parallel only when all of them
 * are safe: a line, its device, a claim, its withdrawal and the reads, written at once on one
 * connection, must each see the ones before.
 */
Test(batch, pipelined_changes_see_the_requests_before_them)
{
    struct sess s;
    struct reply r = {0};
    char body[512], ref[16], sub[16], target[96], imei[16], want_dev[64];
    static const int want[] = {201, 200, 201, 200, 200, 200, 200};
    up(&s, NULL);
    for (int i = 0; i < 5; i++) {
        snprintf(sub, sizeof(sub), "P-%d", i);
        snprintf(ref, sizeof(ref), "PC-%d", i);
        imei_make(100 + (unsigned long)i, imei);
        snprintf(body, sizeof(body),
                 "{\"subscription_ref\":\"%s\",\"applied_on\":\"2024-04-01\","
                 "\"activated_on\":\"2024-04-03\",\"device_protection\":true}",
                 sub);
        sess_send(&s, "POST", "/v1/subscriptions", body);
        snprintf(target, sizeof(target), "/v1/subscriptions/%s/device", sub);
        snprintf(body, sizeof(body),
                 "{\"imei\":\"%s\",\"os\":\"android\",\"model\":\"Pixel 6\",\"release_date\":"
                 "\"2022-01-20\",\"purchased_from\":\"other\",\"registered_on\":\"2024-04-10\"}",
                 imei);
        sess_send(&s, "PUT", target, body);
        claim_json(body, sizeof(body), ref, sub, imei, "2024-05-01", NULL, "repair", 100);
        sess_send(&s, "POST", "/v1/claims", body);
        snprintf(target, sizeof(target), "/v1/claims/%s/withdraw", ref);
        sess_send(&s, "POST", target, NULL);
        snprintf(target, sizeof(target), "/v1/claims/%s", ref);
        sess_send(&s, "GET", target, NULL);
        snprintf(target, sizeof(target), "/v1/subscriptions/%s/cancel", sub);
        sess_send(&s, "POST", target, "{\"cancelled_on\":\"2024-06-01\"}");
        snprintf(target, sizeof(target), "/v1/subscriptions/%s?on=2024-06-01", sub);
        sess_send(&s, "GET", target, NULL);
    }
    for (int i = 0; i < 5; i++) {
        imei_make(100 + (unsigned long)i, imei);
        snprintf(want_dev, sizeof(want_dev), "{\"device\":{\"imei\":\"%s\"}}", imei);
        for (int k = 0; k < 7; k++) {
            char what[64];
            snprintf(what, sizeof(what), "line P-%d, pipelined request %d", i, k);
            sess_read(&s, false, &r);
            expect_status(&r, want[k], what);
            if (k == 1)
                expect_members(r.json, want_dev, what);
            if (k == 2)
                expect_members(r.json, "{\"status\":\"approved\",\"use_number\":1}", what);
            if (k == 3 || k == 4)
                expect_members(r.json, "{\"status\":\"withdrawn\"}", what);
            if (k == 6)
                expect_members(r.json,
                               "{\"option_status\":\"cancelled\",\"uses\":[],"
                               "\"uses_remaining\":2}",
                               what);
        }
    }
    reply_free(&r);
    down(&s);
}
