/*
 * Races over HTTP: 100 connections at once for the last use of one line, 100 at once replaying
 * one claim_ref, and two daemons on one database racing for the same lines. Every request is
 * connected and sent before any answer is read, so the daemons see them all together.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(races, .fini = daemon_cleanup, .timeout = 90);

#define CLIENTS 100

static struct daemon d, d2;
static struct job jobs[2 * CLIENTS + 40];

static void line(struct sess *s, const char *ref, const char *imei)
{
    api_sub(s, ref, "2024-04-01", "2024-04-03", true);
    api_device(s, ref, imei, "android", "2022-01-20", "2024-04-10", "other");
}

/* Asserts every job got 201 or 200 and a decision for its claim_ref. */
static void all_decided(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer: %s", i, strerror(-jobs[i].rc));
        cr_assert(jobs[i].r.status == 201 || jobs[i].r.status == 200, "client %zu: %d %s", i,
                  jobs[i].r.status, jobs[i].r.body);
        cr_assert(jobs[i].r.json != NULL, "client %zu: %s", i, jobs[i].r.body);
    }
}

static const char *status_of(size_t i)
{
    const char *st = json_string_value(json_object_get(jobs[i].r.json, "status"));
    return st != NULL ? st : "";
}

Test(races, hundred_clients_race_for_the_last_use)
{
    struct sess s;
    struct reply r = {0};
    char body[512], ref[16];
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    line(&s, "L-1", IMEI_A);
    line(&s, "L-2", IMEI_B);
    claim_json(body, sizeof(body), "FIRST", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    api_claim(&s, 201, body, &r);

    /* L-1 has one use left: exactly one of 100 gets it. */
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(ref, sizeof(ref), "R-%03d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-06-01", "screen", "repair", 1000);
        job_build(&jobs[i], "POST", "/v1/claims", d.key, body);
    }
    jobs_run(d.port, jobs, CLIENTS, API_WAIT_MS);
    all_decided(CLIENTS);
    int approved = 0;
    for (size_t i = 0; i < CLIENTS; i++) {
        cr_assert_eq(jobs[i].r.status, 201, "client %zu: %s", i, jobs[i].r.body);
        if (strcmp(status_of(i), "approved") == 0) {
            approved++;
            expect_members(jobs[i].r.json, "{\"use_number\":2,\"uses_remaining\":0}", "the winner");
        } else {
            expect_members(jobs[i].r.json,
                           "{\"status\":\"denied\",\"reasons\":[\"frequency_limit\"],"
                           "\"uses_remaining\":0}",
                           "a loser");
        }
    }
    cr_assert_eq(approved, 1, "%d of %d approved for the last use", approved, CLIENTS);
    jobs_free(jobs, CLIENTS);

    /* L-2 has both uses left: exactly two, numbered 1 and 2. */
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(ref, sizeof(ref), "T-%03d", i);
        claim_json(body, sizeof(body), ref, "L-2", IMEI_B, "2024-06-01", NULL, "exchange", -1);
        job_build(&jobs[i], "POST", "/v1/claims", d.key, body);
    }
    jobs_run(d.port, jobs, CLIENTS, API_WAIT_MS);
    all_decided(CLIENTS);
    int uses[3] = {0};
    for (size_t i = 0; i < CLIENTS; i++) {
        if (strcmp(status_of(i), "approved") == 0) {
            json_int_t n = json_integer_value(json_object_get(jobs[i].r.json, "use_number"));
            cr_assert(n == 1 || n == 2, "%s", jobs[i].r.body);
            uses[n]++;
            /* The first exchange costs 5,500, the second 8,800. */
            cr_assert_eq(json_integer_value(json_object_get(jobs[i].r.json, "customer_charge")),
                         n == 1 ? 5500 : 8800, "%s", jobs[i].r.body);
        }
    }
    cr_assert(uses[1] == 1 && uses[2] == 1, "uses 1 and 2 approved %d and %d times", uses[1],
              uses[2]);
    jobs_free(jobs, CLIENTS);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE status = 'approved' "
                               "AND withdrawn_at IS NULL"),
                 4);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 2 * CLIENTS + 1);
    sess_close(&s);
    reply_free(&r);
    daemon_stop(&d);
    daemon_destroy(&d);
}

Test(races, hundred_concurrent_replays_of_one_claim_ref)
{
    struct sess s;
    char body[512];
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    line(&s, "L-1", IMEI_A);
    claim_json(body, sizeof(body), "SAME", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    for (int i = 0; i < CLIENTS; i++)
        job_build(&jobs[i], "POST", "/v1/claims", d.key, body);
    jobs_run(d.port, jobs, CLIENTS, API_WAIT_MS);
    all_decided(CLIENTS);
    int created = 0;
    for (size_t i = 0; i < CLIENTS; i++) {
        created += jobs[i].r.status == 201;
        expect_equal(jobs[i].r.json, jobs[0].r.json, "every answer is the one decision");
    }
    cr_assert_eq(created, 1, "%d answers were 201", created);
    json_t *first = json_incref(jobs[0].r.json);
    jobs_free(jobs, CLIENTS);

    /* Another claim_ref alone and in batches at once: one decision for all. */
    char batch[1024];
    claim_json(body, sizeof(body), "BOTH", "L-1", IMEI_A, "2024-06-02", NULL, "exchange", -1);
    snprintf(batch, sizeof(batch), "{\"claims\":[%s]}", body);
    for (int i = 0; i < CLIENTS; i++)
        job_build(&jobs[i], "POST", i % 2 ? "/v1/claims/batch" : "/v1/claims", d.key,
                  i % 2 ? batch : body);
    jobs_run(d.port, jobs, CLIENTS, API_WAIT_MS);
    created = 0;
    for (size_t i = 0; i < CLIENTS; i++) {
        cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer", i);
        json_t *got =
            i % 2 ? json_array_get(json_object_get(jobs[i].r.json, "results"), 0) : jobs[i].r.json;
        cr_assert(jobs[i].r.status == 200 || (i % 2 == 0 && jobs[i].r.status == 201),
                  "client %zu: %d %s", i, jobs[i].r.status, jobs[i].r.body);
        created += jobs[i].r.status == 201;
        /* Client 0 posted it alone: its answer is the decision. */
        expect_equal(got, jobs[0].r.json, "alone or in a batch, the one decision");
    }
    cr_assert(created <= 1, "%d answers were 201", created);
    expect_members(jobs[0].r.json, "{\"claim_ref\":\"BOTH\",\"use_number\":2}", "BOTH");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 2);
    jobs_free(jobs, CLIENTS);

    /* The same creation at once: one 201, the retries 200, one row. */
    static const char sub[] = "{\"subscription_ref\":\"NEW\",\"applied_on\":\"2024-04-01\","
                              "\"device_protection\":true}";
    for (int i = 0; i < 20; i++)
        job_build(&jobs[i], "POST", "/v1/subscriptions", d.key, sub);
    jobs_run(d.port, jobs, 20, API_WAIT_MS);
    created = 0;
    for (size_t i = 0; i < 20; i++) {
        cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer", i);
        cr_assert(jobs[i].r.status == 201 || jobs[i].r.status == 200,
                  "identical creations at once: %d %s", jobs[i].r.status, jobs[i].r.body);
        created += jobs[i].r.status == 201;
    }
    cr_assert_eq(created, 1, "%d answers were 201", created);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM subscriptions WHERE subscription_ref = 'NEW'"),
                 1);
    jobs_free(jobs, 20);

    /* Twenty lines registering one IMEI at once: one gets it, the others imei_in_use. */
    char ref[16], target[64];
    for (int i = 0; i < 20; i++) {
        snprintf(ref, sizeof(ref), "IMEI-%02d", i);
        api_sub(&s, ref, "2024-04-01", "2024-04-03", true);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(target, sizeof(target), "/v1/subscriptions/IMEI-%02d/device", i);
        job_build(&jobs[i], "PUT", target, d.key,
                  "{\"imei\":\"" IMEI_IOS "\",\"os\":\"ios\",\"model\":\"iPhone 15\","
                  "\"release_date\":\"2023-09-22\",\"purchased_from\":\"other\","
                  "\"registered_on\":\"2024-04-10\"}");
    }
    jobs_run(d.port, jobs, 20, API_WAIT_MS);
    created = 0;
    for (size_t i = 0; i < 20; i++) {
        cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer", i);
        if (jobs[i].r.status == 200) {
            created++;
            continue;
        }
        expect_problem(&jobs[i].r, 409, "imei_in_use");
    }
    cr_assert_eq(created, 1, "%d lines got the IMEI", created);
    jobs_free(jobs, 20);
    expect_members(first,
                   "{\"claim_ref\":\"SAME\",\"status\":\"approved\",\"use_number\":1,"
                   "\"covered_amount\":50000,\"customer_charge\":12000}",
                   "the decision");
    json_decref(first);
    sess_close(&s);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/*
 * Two daemons on one database: ten lines, twenty claims each (ten through each daemon), all at
 * once. Each line ends with exactly two approvals, numbered 1 and 2. Then one claim_ref
 * replayed twenty times through each daemon: one decision.
 */
Test(races, two_daemons_on_one_database_race_for_the_same_lines)
{
    struct sess s;
    char body[512], ref[16], sub[16], imei[16];
    daemon_up(&d, NULL);
    daemon_db_use(&d2, d.owner_url, d.app_url);
    memcpy(d2.key, d.key, sizeof(d.key));
    daemon_start(&d2, NULL);
    cr_assert_neq(d.port, d2.port);
    sess_open(&s, d.port, d.key);
    for (int k = 0; k < 10; k++) {
        snprintf(sub, sizeof(sub), "S-%d", k);
        imei_make((unsigned long)k + 1, imei);
        line(&s, sub, imei);
    }
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < 10; k++) {
            snprintf(ref, sizeof(ref), "S%d-%02d", k, i);
            snprintf(sub, sizeof(sub), "S-%d", k);
            imei_make((unsigned long)k + 1, imei);
            claim_json(body, sizeof(body), ref, sub, imei, "2024-06-01", "screen", "repair", 500);
            job_build(&jobs[n], "POST", "/v1/claims", d.key, body);
            jobs[n++].port = i % 2 ? d2.port : d.port;
        }
    }
    claim_json(body, sizeof(body), "RR", "S-0", IMEI_A, "2024-07-01", NULL, "repair", 1);
    for (int i = 0; i < 40; i++) {
        job_build(&jobs[n], "POST", "/v1/claims", d.key, body);
        jobs[n++].port = i % 2 ? d2.port : d.port;
    }
    jobs_run(0, jobs, n, API_WAIT_MS);
    all_decided(n);

    int uses[10][3] = {{0}};
    for (size_t i = 0; i < 200; i++) {
        cr_assert_eq(jobs[i].r.status, 201, "%s", jobs[i].r.body);
        if (strcmp(status_of(i), "approved") != 0)
            continue;
        json_int_t u = json_integer_value(json_object_get(jobs[i].r.json, "use_number"));
        cr_assert(u == 1 || u == 2, "%s", jobs[i].r.body);
        uses[i % 10][u]++;
    }
    for (int k = 0; k < 10; k++)
        cr_assert(uses[k][1] == 1 && uses[k][2] == 1,
                  "line S-%d: use 1 approved %d times, use 2 %d times", k, uses[k][1], uses[k][2]);
    int created = 0;
    for (size_t i = 200; i < n; i++) {
        created += jobs[i].r.status == 201;
        expect_equal(jobs[i].r.json, jobs[200].r.json, "RR through either daemon");
    }
    cr_assert_eq(created, 1, "RR: %d answers were 201", created);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 201);
    cr_assert_eq(sql_count(&d, "SELECT max(c) FROM (SELECT count(*) AS c FROM claims "
                               "WHERE status = 'approved' GROUP BY subscription_id) x"),
                 2);
    jobs_free(jobs, n);
    sess_close(&s);
    daemon_stop(&d2);
    daemon_destroy(&d2);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/*
 * Changes racing on one line: twenty withdrawals of one claim (one withdrawal, the same answer
 * for all), ten activations and ten cancellations with ten different dates (one of each wins,
 * the others are already_activated / already_cancelled).
 */
Test(races, withdrawals_activations_and_cancellations_at_once)
{
    struct sess s;
    struct reply r = {0};
    char body[512], target[64];
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    line(&s, "L-1", IMEI_A);
    claim_json(body, sizeof(body), "W-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    api_claim(&s, 201, body, &r);
    for (int i = 0; i < 20; i++)
        job_build(&jobs[i], "POST", "/v1/claims/W-1/withdraw", d.key, NULL);
    jobs_run(d.port, jobs, 20, API_WAIT_MS);
    for (size_t i = 0; i < 20; i++) {
        cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer", i);
        expect_status(&jobs[i].r, 200, "a withdrawal at once");
        expect_equal(jobs[i].r.json, jobs[0].r.json, "the withdrawn claim");
    }
    expect_members(jobs[0].r.json, "{\"status\":\"withdrawn\"}", "W-1");
    jobs_free(jobs, 20);

    api_sub(&s, "A-1", "2024-04-01", NULL, true);
    for (int kind = 0; kind < 2; kind++) {
        for (int i = 0; i < 10; i++) {
            snprintf(target, sizeof(target), "/v1/subscriptions/A-1/%s",
                     kind == 0 ? "activate" : "cancel");
            snprintf(body, sizeof(body), "{\"%s\":\"2024-05-%02d\"}",
                     kind == 0 ? "activated_on" : "cancelled_on", i + 1);
            job_build(&jobs[i], "POST", target, d.key, body);
        }
        jobs_run(d.port, jobs, 10, API_WAIT_MS);
        int won = 0;
        for (size_t i = 0; i < 10; i++) {
            cr_assert_eq(jobs[i].rc, 0, "client %zu got no answer", i);
            if (jobs[i].r.status == 200) {
                won++;
                continue;
            }
            expect_problem(&jobs[i].r, 409, kind == 0 ? "already_activated" : "already_cancelled");
        }
        cr_assert_eq(won, 1, "%d of ten different dates took effect", won);
        jobs_free(jobs, 10);
    }
    sess_close(&s);
    reply_free(&r);
    daemon_stop(&d);
    daemon_destroy(&d);
}
