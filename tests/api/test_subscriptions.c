/*
 * The subscription routes of api.md over HTTP: creation and its retry, the option only at
 * application, activation, device registration with every refusal in the documented order,
 * cancellation, the state as of a day with api.md's example, and 404 for unknown references.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(subscriptions, .fini = daemon_cleanup, .timeout = 60);

static struct daemon d;

static void up(struct sess *s)
{
    daemon_up(&d, NULL);
    sess_open(s, d.port, d.key);
}

static void down(struct sess *s)
{
    sess_close(s);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* Every member of a subscription as GET shows it (api.md). */
static const char sub_keys[] =
    "subscription_ref,applied_on,activated_on,device_protection,option_status,cancelled_on,"
    "device,on,policy_version,window,uses,uses_remaining,next_exchange_fee,monthly_fee,"
    "free_months,fee_for_month";

/* The contract-year window of an option applied on YYYY-04-01 that holds today in Japan. */
static void window_of_today(char start[16], char end[16])
{
    char today[11];
    japan_date(0, today);
    int y = atoi(today), m = atoi(today + 5);
    if (m < 4)
        y--;
    snprintf(start, 16, "%04d-04-01", y % 10000);
    snprintf(end, 16, "%04d-03-31", (y + 1) % 10000);
}

static void device_body(char *out, size_t len, const char *imei, const char *from,
                        const char *registered)
{
    snprintf(out, len,
             "{\"imei\":\"%s\",\"os\":\"android\",\"model\":\"Pixel 8\",\"release_date\":"
             "\"2023-10-12\",\"purchased_from\":\"%s\",\"registered_on\":\"%s\"}",
             imei, from, registered);
}

/* PUT device and assert a refusal; the subscription is unchanged afterwards. */
static void refused_device(struct sess *s, const char *ref, const char *body, int status,
                           const char *code)
{
    char target[128], what[128];
    struct reply before = {0}, after = {0};
    snprintf(target, sizeof(target), "/v1/subscriptions/%s", ref);
    sess_expect(s, 200, "GET", target, NULL, &before);
    snprintf(target, sizeof(target), "/v1/subscriptions/%s/device", ref);
    sess_problem(s, status, code, "PUT", target, body);
    snprintf(target, sizeof(target), "/v1/subscriptions/%s", ref);
    snprintf(what, sizeof(what), "%s after a refused registration (%s)", ref, code);
    expect_equal(sess_expect(s, 200, "GET", target, NULL, &after), before.json, what);
    reply_free(&before);
    reply_free(&after);
}

/* ------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------ */

Test(subscriptions, create_201_then_identical_retry_200_then_duplicate_409)
{
    struct sess s;
    struct reply r = {0}, g = {0}, again = {0};
    char today[11], start[16], end[16], want[1024], ctype[64];
    static const char body[] = "{\"subscription_ref\": \"L-1001\", \"applied_on\": \"2026-04-01\","
                               " \"activated_on\": \"2026-04-03\", \"device_protection\": true}";
    up(&s);
    japan_date(0, today);
    window_of_today(start, end);

    json_t *v = sess_expect(&s, 201, "POST", "/v1/subscriptions", body, &r);
    reply_header(&r, "content-type", ctype, sizeof(ctype));
    cr_assert_str_eq(ctype, "application/json");
    expect_keys(v, sub_keys, "the created subscription");
    snprintf(want, sizeof(want),
             "{\"subscription_ref\":\"L-1001\",\"applied_on\":\"2026-04-01\","
             "\"activated_on\":\"2026-04-03\",\"device_protection\":true,"
             "\"option_status\":\"active\",\"cancelled_on\":null,\"device\":null,\"on\":\"%s\","
             "\"policy_version\":\"2025-01\",\"window\":{\"start\":\"%s\",\"end\":\"%s\"},"
             "\"uses\":[],\"uses_remaining\":2,\"next_exchange_fee\":null,\"monthly_fee\":550,"
             "\"free_months\":[\"2026-04\",\"2026-05\"]}",
             today, start, end);
    expect_members(v, want, "201 of POST /v1/subscriptions");

    /* The subscription as GET shows it. */
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001", NULL, &g), v,
                 "GET after the creation");

    /* The same JSON value, members reordered, other whitespace: a retry. */
    expect_equal(sess_expect(&s, 200, "POST", "/v1/subscriptions",
                             "{\"device_protection\":true,\"activated_on\":\"2026-04-03\",\n"
                             "\t\"applied_on\":\"2026-04-01\",\"subscription_ref\":\"L-1001\"}",
                             &again),
                 v, "the identical retry");

    /* Any other body with the same ref. */
    sess_problem(&s, 409, "duplicate_subscription", "POST", "/v1/subscriptions",
                 "{\"subscription_ref\":\"L-1001\",\"applied_on\":\"2026-04-02\","
                 "\"activated_on\":\"2026-04-03\",\"device_protection\":true}");
    sess_problem(&s, 409, "duplicate_subscription", "POST", "/v1/subscriptions",
                 "{\"subscription_ref\":\"L-1001\",\"applied_on\":\"2026-04-01\","
                 "\"activated_on\":\"2026-04-03\",\"device_protection\":false}");
    sess_problem(&s, 409, "duplicate_subscription", "POST", "/v1/subscriptions",
                 "{\"subscription_ref\":\"L-1001\",\"applied_on\":\"2026-04-01\","
                 "\"device_protection\":true}");
    reply_free(&g);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001", NULL, &g), v,
                 "GET after the refused duplicates");
    reply_free(&r);
    reply_free(&g);
    reply_free(&again);
    down(&s);
}

Test(subscriptions, create_refusals_and_the_reference_grammar)
{
    struct sess s;
    struct reply r = {0};
    char body[512], ref65[66], ref64[65], target[128];
    up(&s);

    /* activated_on before applied_on: a rule's refusal, nothing created. */
    sess_problem(&s, 422, "date_before_application", "POST", "/v1/subscriptions",
                 "{\"subscription_ref\":\"L-1\",\"applied_on\":\"2026-04-01\","
                 "\"activated_on\":\"2026-03-31\",\"device_protection\":true}");
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L-1", NULL);

    /* device_protection is required; members are checked before the rules. */
    sess_call(&s, "POST", "/v1/subscriptions",
              "{\"subscription_ref\":\"L-1\",\"applied_on\":\"2026-04-01\"}", &r);
    expect_problem(&r, 400, "missing_field");
    expect_errors(&r, "[{\"field\":\"device_protection\",\"code\":\"missing_field\"}]");
    sess_call(&s, "POST", "/v1/subscriptions",
              "{\"subscription_ref\":\"L-1\",\"applied_on\":\"2026-02-30\",\"activated_on\":"
              "\"2026-01-01\",\"device_protection\":\"yes\",\"x\":1}",
              &r);
    expect_problem(&r, 400, "invalid_field");
    expect_errors(&r, "[{\"field\":\"applied_on\",\"code\":\"invalid_field\"},"
                      "{\"field\":\"device_protection\",\"code\":\"invalid_field\"},"
                      "{\"field\":\"x\",\"code\":\"unknown_field\"}]");

    /* References: 1-64 of [A-Za-z0-9._:-], quote and batch reserved. */
    memset(ref64, 'r', 64);
    ref64[64] = '\0';
    memset(ref65, 'r', 65);
    ref65[65] = '\0';
    static const char *const bad[] = {"",    "L 1",       "L/1",   "L#1",
                                      "L%1", "L\\u00e91", "quote", "batch"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
                 "\"device_protection\":true}",
                 bad[i]);
        sess_call(&s, "POST", "/v1/subscriptions", body, &r);
        expect_problem(&r, 400, "invalid_field");
        expect_errors(&r, "[{\"field\":\"subscription_ref\",\"code\":\"invalid_field\"}]");
    }
    snprintf(body, sizeof(body),
             "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
             "\"device_protection\":true}",
             ref65);
    sess_call(&s, "POST", "/v1/subscriptions", body, &r);
    expect_problem(&r, 400, "invalid_field");
    snprintf(target, sizeof(target), "/v1/subscriptions/%s", ref65);
    sess_problem(&s, 404, "not_found", "GET", target, NULL);

    api_sub(&s, ref64, "2026-04-01", NULL, true);
    snprintf(target, sizeof(target), "/v1/subscriptions/%s", ref64);
    expect_members(sess_expect(&s, 200, "GET", target, NULL, &r), "{\"activated_on\":null}",
                   "the 64-character reference");
    api_sub(&s, "aZ09._:-", "2026-04-01", "2026-04-01", false);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/aZ09._:-", NULL, &r),
                   "{\"subscription_ref\":\"aZ09._:-\",\"device_protection\":false,"
                   "\"option_status\":\"none\"}",
                   "every reference character");
    /* A malformed reference in a path is an unknown resource. */
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L%201", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L!1", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/quote", NULL);
    reply_free(&r);
    down(&s);
}

Test(subscriptions, the_option_only_at_application)
{
    struct sess s;
    struct reply r = {0};
    up(&s);
    api_sub(&s, "L-1", "2026-04-01", "2026-04-03", true);
    api_sub(&s, "L-2", "2026-04-01", "2026-04-03", false);
    sess_problem(&s, 409, "option_only_at_application", "POST",
                 "/v1/subscriptions/L-1/device-protection", NULL);
    sess_problem(&s, 409, "option_only_at_application", "POST",
                 "/v1/subscriptions/L-2/device-protection", NULL);
    sess_problem(&s, 409, "option_only_at_application", "POST",
                 "/v1/subscriptions/L-2/device-protection", "{}");
    sess_call(&s, "POST", "/v1/subscriptions/L-2/device-protection", "{\"device_protection\":true}",
              &r);
    expect_problem(&r, 400, "unknown_field");
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-3/device-protection", NULL);
    sess_problem(&s, 405, "method_not_allowed", "GET", "/v1/subscriptions/L-2/device-protection",
                 NULL);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-2?on=2026-05-01", NULL, &r),
                   "{\"device_protection\":false,\"option_status\":\"none\",\"monthly_fee\":0,"
                   "\"fee_for_month\":0,\"next_exchange_fee\":null}",
                   "a line without the option");
    reply_free(&r);
    down(&s);
}

/* ------------------------------------------------------------------------
 * Activation
 * ------------------------------------------------------------------------ */

Test(subscriptions, activate_200_retry_200_other_date_409_early_date_422)
{
    struct sess s;
    struct reply r = {0}, g = {0}, again = {0};
    up(&s);
    api_sub(&s, "L-1", "2026-04-01", NULL, true);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1", NULL, &r),
                   "{\"activated_on\":null}", "before activation");

    json_t *v = sess_expect(&s, 200, "POST", "/v1/subscriptions/L-1/activate",
                            "{\"activated_on\":\"2026-04-03\"}", &r);
    expect_keys(v, sub_keys, "the activated subscription");
    expect_members(v, "{\"subscription_ref\":\"L-1\",\"activated_on\":\"2026-04-03\"}", "activate");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1", NULL, &g), v,
                 "activate answers the subscription as GET shows it");
    expect_equal(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-1/activate",
                             " { \"activated_on\" : \"2026-04-03\" } ", &again),
                 v, "the identical retry");
    sess_problem(&s, 409, "already_activated", "POST", "/v1/subscriptions/L-1/activate",
                 "{\"activated_on\":\"2026-04-04\"}");
    sess_problem(&s, 409, "already_activated", "POST", "/v1/subscriptions/L-1/activate",
                 "{\"activated_on\":\"2026-04-02\"}");
    reply_free(&g);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1", NULL, &g), v,
                 "unchanged by the refusals");

    /* Before the application: 422, and nothing stored. */
    api_sub(&s, "L-2", "2026-04-01", NULL, true);
    sess_problem(&s, 422, "date_before_application", "POST", "/v1/subscriptions/L-2/activate",
                 "{\"activated_on\":\"2026-03-31\"}");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-2", NULL, &r),
                   "{\"activated_on\":null}", "after the refused activation");
    /* The application day itself is fine, and so is a line without the option. */
    expect_members(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-2/activate",
                               "{\"activated_on\":\"2026-04-01\"}", &r),
                   "{\"activated_on\":\"2026-04-01\"}", "activation on the application day");
    api_sub(&s, "L-3", "2026-04-01", NULL, false);
    expect_members(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-3/activate",
                               "{\"activated_on\":\"2026-04-05\"}", &r),
                   "{\"activated_on\":\"2026-04-05\",\"option_status\":\"none\"}",
                   "a line without the option");

    /* Activated at creation: the same date is a retry however it was set. */
    api_sub(&s, "L-4", "2026-04-01", "2026-04-03", true);
    expect_members(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-4/activate",
                               "{\"activated_on\":\"2026-04-03\"}", &r),
                   "{\"activated_on\":\"2026-04-03\"}", "the date set at creation");
    sess_problem(&s, 409, "already_activated", "POST", "/v1/subscriptions/L-4/activate",
                 "{\"activated_on\":\"2026-04-05\"}");

    /* The body. */
    sess_call(&s, "POST", "/v1/subscriptions/L-4/activate", "{}", &r);
    expect_problem(&r, 400, "missing_field");
    expect_errors(&r, "[{\"field\":\"activated_on\",\"code\":\"missing_field\"}]");
    sess_call(&s, "POST", "/v1/subscriptions/L-4/activate", "{\"activated_on\":\"2026-4-3\"}", &r);
    expect_problem(&r, 400, "invalid_field");
    sess_call(&s, "POST", "/v1/subscriptions/L-4/activate",
              "{\"activated_on\":\"2026-04-03\",\"note\":1}", &r);
    expect_problem(&r, 400, "unknown_field");
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-9/activate",
                 "{\"activated_on\":\"2026-04-03\"}");
    reply_free(&r);
    reply_free(&g);
    reply_free(&again);
    down(&s);
}

/* ------------------------------------------------------------------------
 * Device registration
 * ------------------------------------------------------------------------ */

Test(subscriptions, register_200_identical_retry_200_then_409)
{
    struct sess s;
    struct reply r = {0}, g = {0}, again = {0};
    char body[512];
    up(&s);
    api_sub(&s, "L-1001", "2026-04-01", "2026-04-03", true);
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-10");
    json_t *v = sess_expect(&s, 200, "PUT", "/v1/subscriptions/L-1001/device", body, &r);
    expect_keys(v, sub_keys, "the subscription after registration");
    json_t *want = jparse(body);
    expect_equal(json_object_get(v, "device"), want, "the registered device");
    json_decref(want);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001", NULL, &g), v,
                 "PUT device answers the subscription as GET shows it");
    expect_equal(sess_expect(&s, 200, "PUT", "/v1/subscriptions/L-1001/device",
                             "{\"registered_on\":\"2026-04-10\",\"purchased_from\":\"other\","
                             "\"release_date\":\"2023-10-12\",\"model\":\"Pixel 8\",\"os\":"
                             "\"android\",\"imei\":\"" IMEI_A "\"}",
                             &again),
                 v, "the identical retry");

    /* The same call with a different value: device_already_registered. */
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-11");
    sess_problem(&s, 409, "device_already_registered", "PUT", "/v1/subscriptions/L-1001/device",
                 body);
    device_body(body, sizeof(body), IMEI_B, "other", "2026-04-10");
    sess_problem(&s, 409, "device_already_registered", "PUT", "/v1/subscriptions/L-1001/device",
                 body);
    sess_problem(&s, 409, "device_already_registered", "PUT", "/v1/subscriptions/L-1001/device",
                 "{\"imei\":\"" IMEI_A "\",\"os\":\"android\",\"model\":\"Pixel 9\","
                 "\"release_date\":\"2023-10-12\",\"purchased_from\":\"other\","
                 "\"registered_on\":\"2026-04-10\"}");
    reply_free(&g);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001", NULL, &g), v,
                 "unchanged by the refusals");
    reply_free(&r);
    reply_free(&g);
    reply_free(&again);
    down(&s);
}

Test(subscriptions, register_each_refusal_alone)
{
    struct sess s;
    char body[512];
    struct reply r = {0};
    up(&s);
    api_sub(&s, "L-1", "2026-04-01", "2026-04-03", true);

    /* invalid_imei: not 15 digits, or failing the Luhn check. */
    static const char *const bad[] = {"35693803564380", "3569380356438090", "3569380356438O9",
                                      "356938035643808", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        device_body(body, sizeof(body), bad[i], "other", "2026-04-10");
        sess_call(&s, "PUT", "/v1/subscriptions/L-1/device", body, &r);
        expect_problem(&r, 400, "invalid_imei");
        expect_errors(&r, "[{\"field\":\"imei\",\"code\":\"invalid_imei\"}]");
    }

    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-10");
    api_sub(&s, "N-1", "2026-04-01", "2026-04-03", false);
    refused_device(&s, "N-1", body, 422, "option_not_enrolled");

    api_sub(&s, "X-1", "2026-04-01", "2026-04-03", true);
    expect_members(sess_expect(&s, 200, "POST", "/v1/subscriptions/X-1/cancel",
                               "{\"cancelled_on\":\"2026-04-12\"}", &r),
                   "{\"cancelled_on\":\"2026-04-12\",\"device\":null}", "cancel");
    refused_device(&s, "X-1", body, 422, "option_cancelled");

    api_sub(&s, "A-1", "2026-04-01", NULL, true);
    refused_device(&s, "A-1", body, 422, "not_activated");

    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-02");
    refused_device(&s, "L-1", body, 422, "registration_before_activation");

    /* Day 14 after activation is the last day. */
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-18");
    refused_device(&s, "L-1", body, 422, "registration_window_closed");

    device_body(body, sizeof(body), IMEI_A, "carrier", "2026-04-10");
    refused_device(&s, "L-1", body, 422, "carrier_purchased_device");

    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-17");
    expect_members(sess_expect(&s, 200, "PUT", "/v1/subscriptions/L-1/device", body, &r),
                   "{\"device\":{\"imei\":\"" IMEI_A "\",\"registered_on\":\"2026-04-17\"}}",
                   "registration on day 14");

    /* IMEI_A is live on L-1. */
    api_sub(&s, "L-2", "2026-04-01", "2026-04-03", true);
    refused_device(&s, "L-2", body, 409, "imei_in_use");

    /* IMEI_B covered on a cancelled option: never again for this tenant. */
    api_sub(&s, "C-1", "2026-04-01", "2026-04-03", true);
    device_body(body, sizeof(body), IMEI_B, "other", "2026-04-10");
    sess_expect(&s, 200, "PUT", "/v1/subscriptions/C-1/device", body, &r);
    sess_expect(&s, 200, "POST", "/v1/subscriptions/C-1/cancel",
                "{\"cancelled_on\":\"2026-05-01\"}", &r);
    refused_device(&s, "L-2", body, 422, "reenrollment_forbidden");

    sess_call(&s, "PUT", "/v1/subscriptions/L-2/device",
              "{\"imei\":\"" IMEI_IOS "\",\"os\":\"windows\",\"model\":\"\",\"release_date\":"
              "\"2023-10-12\",\"purchased_from\":\"shop\",\"registered_on\":\"2026-04-10\"}",
              &r);
    expect_problem(&r, 400, "invalid_field");
    expect_errors(&r, "[{\"field\":\"os\",\"code\":\"invalid_field\"},"
                      "{\"field\":\"model\",\"code\":\"invalid_field\"},"
                      "{\"field\":\"purchased_from\",\"code\":\"invalid_field\"}]");
    sess_call(&s, "PUT", "/v1/subscriptions/L-2/device", "{\"imei\":\"" IMEI_IOS "\"}", &r);
    expect_problem(&r, 400, "missing_field");
    expect_errors(&r, "[{\"field\":\"os\",\"code\":\"missing_field\"},"
                      "{\"field\":\"model\",\"code\":\"missing_field\"},"
                      "{\"field\":\"release_date\",\"code\":\"missing_field\"},"
                      "{\"field\":\"purchased_from\",\"code\":\"missing_field\"},"
                      "{\"field\":\"registered_on\",\"code\":\"missing_field\"}]");
    device_body(body, sizeof(body), IMEI_IOS, "other", "2026-04-10");
    sess_problem(&s, 404, "not_found", "PUT", "/v1/subscriptions/L-404/device", body);
    sess_problem(&s, 405, "method_not_allowed", "POST", "/v1/subscriptions/L-2/device", body);
    reply_free(&r);
    down(&s);
}

/*
 * When several refusals apply, the first in api.md's order answers: each step below is a
 * state where two (or more) apply, and the earlier one must answer.
 */
Test(subscriptions, register_refusals_in_the_documented_order)
{
    struct sess s;
    char body[512];
    struct reply r = {0};
    up(&s);
    /* IMEI_B is live on LIVE; IMEI_A was covered on CANC, which is cancelled. */
    api_sub(&s, "LIVE", "2026-04-01", "2026-04-03", true);
    api_device(&s, "LIVE", IMEI_B, "android", "2023-10-12", "2026-04-10", "other");
    api_sub(&s, "CANC", "2026-04-01", "2026-04-03", true);
    api_device(&s, "CANC", IMEI_A, "android", "2023-10-12", "2026-04-10", "other");
    sess_expect(&s, 200, "POST", "/v1/subscriptions/CANC/cancel",
                "{\"cancelled_on\":\"2026-05-01\"}", &r);

    /* invalid_imei over option_not_enrolled. */
    api_sub(&s, "N-1", "2026-04-01", NULL, false);
    device_body(body, sizeof(body), "356938035643808", "carrier", "2026-04-02");
    refused_device(&s, "N-1", body, 400, "invalid_imei");
    /* option_not_enrolled over not_activated, carrier_purchased_device and imei_in_use. */
    device_body(body, sizeof(body), IMEI_B, "carrier", "2026-04-02");
    refused_device(&s, "N-1", body, 422, "option_not_enrolled");
    /* option_cancelled over not_activated, carrier_purchased_device, reenrollment_forbidden. */
    api_sub(&s, "X-1", "2026-04-01", NULL, true);
    sess_expect(&s, 200, "POST", "/v1/subscriptions/X-1/cancel",
                "{\"cancelled_on\":\"2026-04-08\"}", &r);
    device_body(body, sizeof(body), IMEI_A, "carrier", "2026-04-10");
    refused_device(&s, "X-1", body, 422, "option_cancelled");
    /* not_activated over carrier_purchased_device, reenrollment_forbidden, imei_in_use. */
    api_sub(&s, "A-1", "2026-04-01", NULL, true);
    refused_device(&s, "A-1", body, 422, "not_activated");
    device_body(body, sizeof(body), IMEI_B, "carrier", "2026-04-10");
    refused_device(&s, "A-1", body, 422, "not_activated");
    /* registration_before_activation over carrier_purchased_device and imei_in_use. */
    api_sub(&s, "L-1", "2026-04-01", "2026-04-03", true);
    device_body(body, sizeof(body), IMEI_B, "carrier", "2026-04-02");
    refused_device(&s, "L-1", body, 422, "registration_before_activation");
    /* registration_window_closed over carrier_purchased_device and reenrollment_forbidden. */
    device_body(body, sizeof(body), IMEI_A, "carrier", "2026-04-18");
    refused_device(&s, "L-1", body, 422, "registration_window_closed");
    /* carrier_purchased_device over reenrollment_forbidden and imei_in_use. */
    device_body(body, sizeof(body), IMEI_A, "carrier", "2026-04-10");
    refused_device(&s, "L-1", body, 422, "carrier_purchased_device");
    device_body(body, sizeof(body), IMEI_B, "carrier", "2026-04-10");
    refused_device(&s, "L-1", body, 422, "carrier_purchased_device");
    /* reenrollment_forbidden: CANC is not live, so its IMEI is not "in use" elsewhere. */
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-10");
    refused_device(&s, "L-1", body, 422, "reenrollment_forbidden");
    device_body(body, sizeof(body), IMEI_B, "other", "2026-04-10");
    refused_device(&s, "L-1", body, 409, "imei_in_use");

    /* With a device on L-1: carrier over device_already_registered, which is over the rest. */
    api_device(&s, "L-1", IMEI_IOS, "ios", "2023-09-22", "2026-04-10", "other");
    device_body(body, sizeof(body), IMEI_B, "carrier", "2026-04-10");
    refused_device(&s, "L-1", body, 422, "carrier_purchased_device");
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-10");
    refused_device(&s, "L-1", body, 409, "device_already_registered");
    device_body(body, sizeof(body), IMEI_B, "other", "2026-04-10");
    refused_device(&s, "L-1", body, 409, "device_already_registered");
    reply_free(&r);
    down(&s);
}

/* ------------------------------------------------------------------------
 * Cancellation
 * ------------------------------------------------------------------------ */

Test(subscriptions, cancel_200_retry_200_other_date_409_early_date_422)
{
    struct sess s;
    struct reply r = {0}, g = {0}, again = {0};
    char body[512];
    up(&s);
    api_sub(&s, "L-1", "2026-04-01", "2026-04-03", true);
    api_device(&s, "L-1", IMEI_A, "android", "2023-10-12", "2026-04-10", "other");
    json_t *v = sess_expect(&s, 200, "POST", "/v1/subscriptions/L-1/cancel",
                            "{\"cancelled_on\":\"2026-06-01\"}", &r);
    expect_keys(v, sub_keys, "the cancelled subscription");
    expect_members(v,
                   "{\"cancelled_on\":\"2026-06-01\",\"option_status\":\"cancelled\","
                   "\"device_protection\":true,\"device\":{\"imei\":\"" IMEI_A "\"}}",
                   "cancel");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1", NULL, &g), v,
                 "cancel answers the subscription as GET shows it");
    expect_equal(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-1/cancel",
                             "{ \"cancelled_on\": \"2026-06-01\" }", &again),
                 v, "the identical retry");
    sess_problem(&s, 409, "already_cancelled", "POST", "/v1/subscriptions/L-1/cancel",
                 "{\"cancelled_on\":\"2026-06-02\"}");
    sess_problem(&s, 409, "already_cancelled", "POST", "/v1/subscriptions/L-1/cancel",
                 "{\"cancelled_on\":\"2026-05-31\"}");

    /* Cancelled from cancelled_on on; the month of cancellation is billed in full. */
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2026-05-31", NULL, &g),
                   "{\"option_status\":\"active\",\"fee_for_month\":0}", "the day before");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2026-06-01", NULL, &g),
                   "{\"option_status\":\"cancelled\",\"fee_for_month\":550,"
                   "\"next_exchange_fee\":null}",
                   "the day of cancellation");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2026-07-01", NULL, &g),
                   "{\"option_status\":\"cancelled\",\"fee_for_month\":0}", "the month after");

    /* The IMEI can never be covered again by this tenant. */
    api_sub(&s, "L-2", "2026-06-01", "2026-06-02", true);
    device_body(body, sizeof(body), IMEI_A, "other", "2026-06-03");
    refused_device(&s, "L-2", body, 422, "reenrollment_forbidden");

    api_sub(&s, "L-3", "2026-04-01", NULL, true);
    sess_problem(&s, 422, "date_before_application", "POST", "/v1/subscriptions/L-3/cancel",
                 "{\"cancelled_on\":\"2026-03-31\"}");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-3", NULL, &g),
                   "{\"cancelled_on\":null,\"option_status\":\"active\"}", "after the refusal");
    /* Before activation is allowed: the application day is enough. */
    expect_members(sess_expect(&s, 200, "POST", "/v1/subscriptions/L-3/cancel",
                               "{\"cancelled_on\":\"2026-04-01\"}", &g),
                   "{\"cancelled_on\":\"2026-04-01\",\"activated_on\":null}",
                   "a cancellation on the application day");
    api_sub(&s, "N-1", "2026-04-01", "2026-04-03", false);
    sess_problem(&s, 422, "option_not_enrolled", "POST", "/v1/subscriptions/N-1/cancel",
                 "{\"cancelled_on\":\"2026-06-01\"}");
    sess_call(&s, "POST", "/v1/subscriptions/L-3/cancel", "{\"cancelled\":\"2026-06-01\"}", &g);
    expect_problem(&g, 400, "missing_field");
    expect_errors(&g, "[{\"field\":\"cancelled_on\",\"code\":\"missing_field\"},"
                      "{\"field\":\"cancelled\",\"code\":\"unknown_field\"}]");
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-9/cancel",
                 "{\"cancelled_on\":\"2026-06-01\"}");
    reply_free(&r);
    reply_free(&g);
    reply_free(&again);
    down(&s);
}

/* ------------------------------------------------------------------------
 * State as of a day
 * ------------------------------------------------------------------------ */

/* api.md's example subscription, device, claim and state, member for member. */
Test(subscriptions, state_as_of_a_day_is_api_md_example)
{
    struct sess s;
    struct reply r = {0}, c = {0}, h = {0};
    up(&s);
    api_sub(&s, "L-1001", "2026-04-01", "2026-04-03", true);
    sess_expect(&s, 200, "PUT", "/v1/subscriptions/L-1001/device",
                "{\"imei\": \"356938035643809\", \"os\": \"android\", \"model\": \"Pixel 8\","
                " \"release_date\": \"2023-10-12\", \"purchased_from\": \"other\","
                " \"registered_on\": \"2026-04-10\"}",
                &r);
    json_t *claim =
        api_claim(&s, 201,
                  "{\"claim_ref\": \"C-77\", \"subscription_ref\": \"L-1001\", \"imei\": "
                  "\"356938035643809\", \"incident_on\": \"2026-11-20\", \"cause\": "
                  "\"physical_damage\", \"damage\": \"screen\", \"remedy\": \"repair\", "
                  "\"repair_estimate\": 62000}",
                  &c);
    expect_timestamp(json_object_get(claim, "decided_at"), "decided_at");
    json_t *want_claim =
        jparse("{\"claim_ref\": \"C-77\", \"subscription_ref\": \"L-1001\", \"status\": "
               "\"approved\", \"remedy\": \"repair\", \"repair_estimate\": 62000, "
               "\"covered_amount\": 50000, \"customer_charge\": 12000, \"reasons\": "
               "[\"cap_exceeded\"], \"use_number\": 1, \"uses_remaining\": 1, \"window\": "
               "{\"start\": \"2026-04-01\", \"end\": \"2027-03-31\"}, \"loaner\": \"android\", "
               "\"policy_version\": \"2025-01\"}");
    json_object_set(want_claim, "decided_at", json_object_get(claim, "decided_at"));
    expect_equal(claim, want_claim, "api.md's claim example");
    json_decref(want_claim);

    json_t *want = jparse(
        "{\"subscription_ref\": \"L-1001\", \"applied_on\": \"2026-04-01\", \"activated_on\": "
        "\"2026-04-03\", \"device_protection\": true, \"option_status\": \"active\", "
        "\"cancelled_on\": null, \"device\": {\"imei\": \"356938035643809\", \"os\": "
        "\"android\", \"model\": \"Pixel 8\", \"release_date\": \"2023-10-12\", "
        "\"purchased_from\": \"other\", \"registered_on\": \"2026-04-10\"}, \"on\": "
        "\"2026-11-24\", \"policy_version\": \"2025-01\", \"window\": {\"start\": "
        "\"2026-04-01\", \"end\": \"2027-03-31\"}, \"uses\": [\"C-77\"], \"uses_remaining\": 1, "
        "\"next_exchange_fee\": 5500, \"monthly_fee\": 550, \"free_months\": [\"2026-04\", "
        "\"2026-05\"], \"fee_for_month\": 550}");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001?on=2026-11-24", NULL, &r),
                 want, "api.md's state example");
    json_decref(want);

    /* HEAD answers the same head without a body. */
    char len_get[32], len_head[32];
    reply_header(&r, "content-length", len_get, sizeof(len_get));
    sess_call(&s, "HEAD", "/v1/subscriptions/L-1001?on=2026-11-24", NULL, &h);
    expect_status(&h, 200, "HEAD");
    reply_header(&h, "content-length", len_head, sizeof(len_head));
    cr_assert_str_eq(len_head, len_get);
    cr_assert_eq(h.body_len, 0);

    /* The incident after `on` still counts among the window's uses as recorded now. */
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001?on=2026-04-01", NULL, &r),
                   "{\"on\":\"2026-04-01\",\"uses\":[\"C-77\"],\"uses_remaining\":1,"
                   "\"fee_for_month\":0}",
                   "as of the first day");
    /* The previous window (k = -1) and the next one. */
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001?on=2026-03-31", NULL, &r),
                   "{\"window\":{\"start\":\"2025-04-01\",\"end\":\"2026-03-31\"},\"uses\":[],"
                   "\"uses_remaining\":2,\"fee_for_month\":0}",
                   "the day before the application");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1001?on=2027-04-01", NULL, &r),
                   "{\"window\":{\"start\":\"2027-04-01\",\"end\":\"2028-03-31\"},\"uses\":[],"
                   "\"uses_remaining\":2,\"next_exchange_fee\":5500,\"fee_for_month\":550}",
                   "the next window");
    /* ?on= must be a date. */
    sess_call(&s, "GET", "/v1/subscriptions/L-1001?on=2026-13-01", NULL, &r);
    expect_problem(&r, 400, "invalid_field");
    expect_errors(&r, "[{\"field\":\"on\",\"code\":\"invalid_field\"}]");
    sess_call(&s, "GET", "/v1/subscriptions/L-1001?on=tomorrow", NULL, &r);
    expect_problem(&r, 400, "invalid_field");
    reply_free(&r);
    reply_free(&c);
    reply_free(&h);
    down(&s);
}

Test(subscriptions, state_window_full_and_ios_have_no_exchange_fee)
{
    struct sess s;
    struct reply r = {0};
    char body[512];
    up(&s);
    api_sub(&s, "L-1", "2024-04-01", "2024-04-03", true);
    api_device(&s, "L-1", IMEI_A, "android", "2022-01-20", "2024-04-10", "other");
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", "screen", "exchange", -1);
    api_claim(&s, 201, body, &r);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &r),
                   "{\"uses\":[\"C-1\"],\"uses_remaining\":1,\"next_exchange_fee\":8800,"
                   "\"fee_for_month\":550}",
                   "one exchange used");
    claim_json(body, sizeof(body), "C-2", "L-1", IMEI_A, "2024-06-01", NULL, "repair", 1000);
    api_claim(&s, 201, body, &r);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &r),
                   "{\"uses\":[\"C-1\",\"C-2\"],\"uses_remaining\":0,\"next_exchange_fee\":null}",
                   "a full window");
    /* Withdrawn and denied claims are not uses. */
    sess_expect(&s, 200, "POST", "/v1/claims/C-1/withdraw", NULL, &r);
    claim_json(body, sizeof(body), "C-3", "L-1", IMEI_B, "2024-06-02", NULL, "repair", 1000);
    expect_members(api_claim(&s, 201, body, &r), "{\"status\":\"denied\"}", "a mismatch");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &r),
                   "{\"uses\":[\"C-2\"],\"uses_remaining\":1,\"next_exchange_fee\":5500}",
                   "after the withdrawal");

    api_sub(&s, "I-1", "2024-04-01", "2024-04-03", true);
    api_device(&s, "I-1", IMEI_IOS, "ios", "2023-09-22", "2024-04-10", "other");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/I-1?on=2024-06-01", NULL, &r),
                   "{\"uses\":[],\"uses_remaining\":2,\"next_exchange_fee\":null,"
                   "\"device\":{\"os\":\"ios\"}}",
                   "an iOS device under ios_exchange false");
    reply_free(&r);
    down(&s);
}

Test(subscriptions, unknown_subscription_is_404_on_every_route)
{
    struct sess s;
    struct reply r = {0};
    char body[512];
    up(&s);
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L-404", NULL);
    sess_call(&s, "HEAD", "/v1/subscriptions/L-404", NULL, &r);
    expect_status(&r, 404, "HEAD of an unknown subscription");
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-404/activate",
                 "{\"activated_on\":\"2026-04-03\"}");
    device_body(body, sizeof(body), IMEI_A, "other", "2026-04-10");
    sess_problem(&s, 404, "not_found", "PUT", "/v1/subscriptions/L-404/device", body);
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-404/cancel",
                 "{\"cancelled_on\":\"2026-04-03\"}");
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-404/device-protection", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L-404/claims", NULL);
    claim_json(body, sizeof(body), "C-1", "L-404", IMEI_A, "2026-04-10", NULL, "repair", 100);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims", body);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C-1", NULL);
    claim_json(body, sizeof(body), NULL, "L-404", IMEI_A, "2026-04-10", NULL, "repair", 100);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/quote", body);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/C-404/withdraw", NULL);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 0);
    reply_free(&r);
    down(&s);
}
