/*
 * policy.md's worked examples 1-8 over HTTP, one test each (policy 2025-01, option applied
 * 2024-04-01, activated 2024-04-03): each test replays the examples it builds on, then checks
 * its own answer member for member.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(examples, .fini = daemon_cleanup, .timeout = 60);

static struct daemon d;
static struct sess s;

/* The claims of examples 1-5 on the Android line (release 2022-01-20). */
static const char ex1[] = "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                          "\",\"incident_on\":\"2024-05-01\",\"cause\":\"natural_failure\","
                          "\"remedy\":\"repair\",\"repair_estimate\":30000}";
static const char ex2[] = "{\"claim_ref\":\"C-2\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                          "\",\"incident_on\":\"2024-06-01\",\"cause\":\"physical_damage\","
                          "\"damage\":\"screen\",\"remedy\":\"repair\",\"repair_estimate\":62000}";
static const char ex3[] = "{\"claim_ref\":\"C-3\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                          "\",\"incident_on\":\"2024-07-01\",\"cause\":\"physical_damage\","
                          "\"damage\":\"screen\",\"remedy\":\"exchange\"}";
static const char ex4[] = "{\"claim_ref\":\"C-4\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                          "\",\"incident_on\":\"2025-04-01\",\"cause\":\"natural_failure\","
                          "\"remedy\":\"exchange\"}";
static const char ex5[] = "{\"claim_ref\":\"C-5\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                          "\",\"incident_on\":\"2025-04-01\",\"cause\":\"physical_damage\","
                          "\"damage\":\"water\",\"remedy\":\"exchange\"}";

/* The line of the examples, with the Android device of example 1. */
static void line(void)
{
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    api_sub(&s, "L-1", "2024-04-01", "2024-04-03", true);
    api_device(&s, "L-1", IMEI_A, "android", "2022-01-20", "2024-04-10", "other");
}

static void down(void)
{
    sess_close(&s);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* Posts an earlier example's claim and asserts the status it is known to get. */
static void replay(const char *body, const char *status)
{
    struct reply r = {0};
    char want[64];
    snprintf(want, sizeof(want), "{\"status\":\"%s\"}", status);
    expect_members(api_claim(&s, 201, body, &r), want, body);
    reply_free(&r);
}

/* Posts the example's claim: 201 and exactly this decision (decided_at aside). */
static void decision(const char *body, const char *want, const char *what)
{
    struct reply r = {0};
    json_t *got = json_deep_copy(api_claim(&s, 201, body, &r));
    expect_timestamp(json_object_get(got, "decided_at"), what);
    json_object_del(got, "decided_at");
    json_t *w = jparse(want);
    expect_equal(got, w, what);
    json_decref(w);
    json_decref(got);
    reply_free(&r);
}

Test(examples, ex1_natural_failure_repair)
{
    line();
    decision(ex1,
             "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
             "\"remedy\":\"repair\",\"repair_estimate\":30000,\"covered_amount\":30000,"
             "\"customer_charge\":0,\"reasons\":[],\"use_number\":1,\"uses_remaining\":1,"
             "\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},\"loaner\":\"android\","
             "\"policy_version\":\"2025-01\"}",
             "example 1");
    down();
}

Test(examples, ex2_screen_repair_over_the_cap)
{
    line();
    replay(ex1, "approved");
    decision(ex2,
             "{\"claim_ref\":\"C-2\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
             "\"remedy\":\"repair\",\"repair_estimate\":62000,\"covered_amount\":50000,"
             "\"customer_charge\":12000,\"reasons\":[\"cap_exceeded\"],\"use_number\":2,"
             "\"uses_remaining\":0,\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},"
             "\"loaner\":\"android\",\"policy_version\":\"2025-01\"}",
             "example 2");
    down();
}

Test(examples, ex3_exchange_in_a_full_window)
{
    line();
    replay(ex1, "approved");
    replay(ex2, "approved");
    decision(ex3,
             "{\"claim_ref\":\"C-3\",\"subscription_ref\":\"L-1\",\"status\":\"denied\","
             "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
             "\"customer_charge\":0,\"reasons\":[\"frequency_limit\"],\"use_number\":null,"
             "\"uses_remaining\":0,\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},"
             "\"loaner\":null,\"policy_version\":\"2025-01\"}",
             "example 3");
    down();
}

Test(examples, ex4_next_window_natural_failure_expired)
{
    line();
    replay(ex1, "approved");
    replay(ex2, "approved");
    replay(ex3, "denied");
    decision(ex4,
             "{\"claim_ref\":\"C-4\",\"subscription_ref\":\"L-1\",\"status\":\"denied\","
             "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
             "\"customer_charge\":0,\"reasons\":[\"natural_failure_expired\"],"
             "\"use_number\":null,\"uses_remaining\":2,\"window\":{\"start\":\"2025-04-01\","
             "\"end\":\"2026-03-31\"},\"loaner\":null,\"policy_version\":\"2025-01\"}",
             "example 4");
    down();
}

Test(examples, ex5_next_window_water_exchange)
{
    line();
    replay(ex1, "approved");
    replay(ex2, "approved");
    replay(ex3, "denied");
    replay(ex4, "denied");
    decision(ex5,
             "{\"claim_ref\":\"C-5\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
             "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
             "\"customer_charge\":5500,\"reasons\":[],\"use_number\":1,\"uses_remaining\":1,"
             "\"window\":{\"start\":\"2025-04-01\",\"end\":\"2026-03-31\"},\"loaner\":null,"
             "\"policy_version\":\"2025-01\"}",
             "example 5");
    down();
}

Test(examples, ex6_ios_expired_exchange_lists_both_reasons)
{
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    api_sub(&s, "L-6", "2024-04-01", "2024-04-03", true);
    /* Released 2020-09-18: 36 months ended on 2023-09-18. */
    api_device(&s, "L-6", IMEI_IOS, "ios", "2020-09-18", "2024-04-10", "other");
    decision("{\"claim_ref\":\"C-6\",\"subscription_ref\":\"L-6\",\"imei\":\"" IMEI_IOS "\","
             "\"incident_on\":\"2024-05-01\",\"cause\":\"natural_failure\",\"remedy\":"
             "\"exchange\"}",
             "{\"claim_ref\":\"C-6\",\"subscription_ref\":\"L-6\",\"status\":\"denied\","
             "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
             "\"customer_charge\":0,\"reasons\":[\"natural_failure_expired\","
             "\"exchange_not_offered_ios\"],\"use_number\":null,\"uses_remaining\":2,"
             "\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},\"loaner\":null,"
             "\"policy_version\":\"2025-01\"}",
             "example 6");
    down();
}

Test(examples, ex7_registration_day_15_closed_day_14_accepted)
{
    struct reply r = {0};
    daemon_up(&d, NULL);
    sess_open(&s, d.port, d.key);
    api_sub(&s, "L-7", "2024-04-01", "2024-04-03", true);
    sess_problem(&s, 422, "registration_window_closed", "PUT", "/v1/subscriptions/L-7/device",
                 "{\"imei\":\"" IMEI_A "\",\"os\":\"android\",\"model\":\"Pixel 6\","
                 "\"release_date\":\"2022-01-20\",\"purchased_from\":\"other\","
                 "\"registered_on\":\"2024-04-18\"}");
    expect_members(sess_expect(&s, 200, "PUT", "/v1/subscriptions/L-7/device",
                               "{\"imei\":\"" IMEI_A "\",\"os\":\"android\",\"model\":\"Pixel "
                               "6\",\"release_date\":\"2022-01-20\",\"purchased_from\":"
                               "\"other\",\"registered_on\":\"2024-04-17\"}",
                               &r),
                   "{\"device\":{\"imei\":\"" IMEI_A "\",\"registered_on\":\"2024-04-17\"}}",
                   "example 7, day 14");
    reply_free(&r);
    down();
}

Test(examples, ex8_withdrawn_use_is_taken_again)
{
    struct reply r = {0};
    line();
    replay(ex1, "approved");
    replay(ex2, "approved");
    replay(ex3, "denied");
    expect_members(sess_expect(&s, 200, "POST", "/v1/claims/C-2/withdraw", NULL, &r),
                   "{\"claim_ref\":\"C-2\",\"status\":\"withdrawn\",\"use_number\":2}",
                   "withdrawing claim 2");
    decision("{\"claim_ref\":\"C-8\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A "\","
             "\"incident_on\":\"2024-07-01\",\"cause\":\"physical_damage\",\"damage\":"
             "\"screen\",\"remedy\":\"repair\",\"repair_estimate\":10000}",
             "{\"claim_ref\":\"C-8\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
             "\"remedy\":\"repair\",\"repair_estimate\":10000,\"covered_amount\":10000,"
             "\"customer_charge\":0,\"reasons\":[],\"use_number\":2,\"uses_remaining\":0,"
             "\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},\"loaner\":\"android\","
             "\"policy_version\":\"2025-01\"}",
             "example 8");
    reply_free(&r);
    down();
}
