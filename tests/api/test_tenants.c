/*
 * Tenant isolation over HTTP: with another tenant's key every endpoint answers 404 for the
 * first tenant's objects (never 403) and changes nothing; references, IMEIs and claim_refs are
 * per tenant, so the second tenant may reuse them all.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(tenants, .fini = daemon_cleanup, .timeout = 60);

static struct daemon d;

/* Everything tenant t1 can see, as JSON text, to compare before and after. */
static char *snapshot(struct sess *s)
{
    static const char *const targets[] = {"/v1/subscriptions/L-1?on=2024-06-01",
                                          "/v1/subscriptions/L-2?on=2024-06-01",
                                          "/v1/subscriptions/L-1/claims",
                                          "/v1/subscriptions/L-2/claims",
                                          "/v1/claims/C-1",
                                          "/v1/claims/C-2",
                                          "/v1/claims/C-3"};
    json_t *all = json_array();
    struct reply r = {0};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
        json_array_append(all, sess_expect(s, 200, "GET", targets[i], NULL, &r));
    char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    reply_free(&r);
    return text;
}

Test(tenants, another_tenants_objects_answer_404_on_every_endpoint)
{
    struct sess s1, s2;
    struct reply r = {0};
    char key2[DAEMON_KEY_SIZE], body[512];
    daemon_up(&d, NULL);
    daemon_key_create(&d, "t2", key2);
    sess_open(&s1, d.port, d.key);
    sess_open(&s2, d.port, key2);

    /* Tenant t1: L-1 with a device and three claims (approved, approved, denied); L-2 bare. */
    api_sub(&s1, "L-1", "2024-04-01", "2024-04-03", true);
    api_device(&s1, "L-1", IMEI_A, "android", "2022-01-20", "2024-04-10", "other");
    api_sub(&s1, "L-2", "2024-04-01", NULL, true);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 30000);
    api_claim(&s1, 201, body, &r);
    claim_json(body, sizeof(body), "C-2", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    api_claim(&s1, 201, body, &r);
    claim_json(body, sizeof(body), "C-3", "L-1", IMEI_A, "2024-07-01", "screen", "exchange", -1);
    expect_members(api_claim(&s1, 201, body, &r), "{\"status\":\"denied\"}", "C-3");
    char *before = snapshot(&s1);
    long long rows = sql_count(&d, "SELECT count(*) FROM claims");

    /* Tenant t2 on each route, with t1's references. */
    sess_problem(&s2, 404, "not_found", "GET", "/v1/subscriptions/L-1", NULL);
    sess_problem(&s2, 404, "not_found", "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL);
    sess_call(&s2, "HEAD", "/v1/subscriptions/L-1", NULL, &r);
    expect_status(&r, 404, "HEAD of another tenant's subscription");
    sess_problem(&s2, 404, "not_found", "POST", "/v1/subscriptions/L-2/activate",
                 "{\"activated_on\":\"2024-04-03\"}");
    sess_problem(&s2, 404, "not_found", "PUT", "/v1/subscriptions/L-2/device",
                 "{\"imei\":\"" IMEI_B "\",\"os\":\"android\",\"model\":\"Pixel 6\","
                 "\"release_date\":\"2022-01-20\",\"purchased_from\":\"other\","
                 "\"registered_on\":\"2024-04-10\"}");
    sess_problem(&s2, 404, "not_found", "POST", "/v1/subscriptions/L-1/cancel",
                 "{\"cancelled_on\":\"2024-06-01\"}");
    sess_problem(&s2, 404, "not_found", "POST", "/v1/subscriptions/L-1/device-protection", NULL);
    sess_problem(&s2, 404, "not_found", "GET", "/v1/subscriptions/L-1/claims", NULL);
    sess_problem(&s2, 404, "not_found", "GET", "/v1/subscriptions/L-1/claims?limit=5", NULL);
    sess_problem(&s2, 404, "not_found", "GET", "/v1/claims/C-1", NULL);
    sess_call(&s2, "HEAD", "/v1/claims/C-1", NULL, &r);
    expect_status(&r, 404, "HEAD of another tenant's claim");
    sess_problem(&s2, 404, "not_found", "POST", "/v1/claims/C-1/withdraw", NULL);
    sess_problem(&s2, 404, "not_found", "POST", "/v1/claims/C-3/withdraw", NULL);
    claim_json(body, sizeof(body), "T2-1", "L-1", IMEI_A, "2024-08-01", NULL, "repair", 100);
    sess_problem(&s2, 404, "not_found", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), NULL, "L-1", IMEI_A, "2024-08-01", NULL, "repair", 100);
    sess_problem(&s2, 404, "not_found", "POST", "/v1/claims/quote", body);
    claim_json(body, sizeof(body), "T2-2", "L-1", IMEI_A, "2024-08-01", NULL, "repair", 100);
    char batch[1024];
    snprintf(batch, sizeof(batch), "{\"claims\":[%s]}", body);
    json_t *res =
        json_object_get(sess_expect(&s2, 200, "POST", "/v1/claims/batch", batch, &r), "results");
    expect_members(json_array_get(res, 0),
                   "{\"status\":404,\"code\":\"not_found\",\"claim_ref\":\"T2-2\"}",
                   "a batch item on another tenant's line");

    /* Nothing of t1 changed, nothing was recorded. */
    char *after = snapshot(&s1);
    cr_assert_str_eq(after, before, "tenant t2 changed tenant t1's objects");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), rows);
    free(before);
    free(after);

    /* The same references, IMEI and claim_ref in t2 are t2's own. */
    sess_expect(&s2, 201, "POST", "/v1/subscriptions",
                "{\"subscription_ref\":\"L-1\",\"applied_on\":\"2025-01-01\","
                "\"activated_on\":\"2025-01-02\",\"device_protection\":true}",
                &r);
    /* IMEI_A is live on t1's L-1: imei_in_use looks at this tenant's lines only. */
    api_device(&s2, "L-1", IMEI_A, "android", "2022-01-20", "2025-01-05", "other");
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2025-02-01", "screen", "exchange", -1);
    expect_members(api_claim(&s2, 201, body, &r),
                   "{\"claim_ref\":\"C-1\",\"status\":\"approved\",\"use_number\":1,"
                   "\"uses_remaining\":1,\"customer_charge\":5500,\"window\":{\"start\":"
                   "\"2025-01-01\",\"end\":\"2025-12-31\"}}",
                   "t2's C-1 sees none of t1's uses");
    expect_members(sess_expect(&s2, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &r),
                   "{\"next_after\":null}", "t2's history");
    cr_assert_eq(json_array_size(json_object_get(r.json, "claims")), 1, "%s", r.body);
    expect_members(sess_expect(&s1, 200, "GET", "/v1/claims/C-1", NULL, &r),
                   "{\"subscription_ref\":\"L-1\",\"status\":\"approved\",\"repair_estimate\":"
                   "30000,\"window\":{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"}}",
                   "t1's C-1 unchanged");

    /* A cancellation in t1 forbids the IMEI in t1 only. */
    api_sub(&s1, "L-3", "2024-04-01", "2024-04-03", true);
    api_device(&s1, "L-3", IMEI_IOS, "ios", "2023-09-22", "2024-04-10", "other");
    sess_expect(&s1, 200, "POST", "/v1/subscriptions/L-3/cancel",
                "{\"cancelled_on\":\"2024-05-01\"}", &r);
    api_sub(&s2, "L-3", "2024-04-01", "2024-04-03", true);
    api_device(&s2, "L-3", IMEI_IOS, "ios", "2023-09-22", "2024-04-10", "other");
    api_sub(&s1, "L-4", "2024-04-01", "2024-04-03", true);
    sess_problem(&s1, 422, "reenrollment_forbidden", "PUT", "/v1/subscriptions/L-4/device",
                 "{\"imei\":\"" IMEI_IOS "\",\"os\":\"ios\",\"model\":\"iPhone 15\","
                 "\"release_date\":\"2023-09-22\",\"purchased_from\":\"other\","
                 "\"registered_on\":\"2024-04-10\"}");

    sess_close(&s1);
    sess_close(&s2);
    reply_free(&r);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* Each tenant's policies view is the same (versions are global); keys are per tenant. */
Test(tenants, every_tenant_reads_the_policies_and_only_its_own_claims)
{
    struct sess s1, s2;
    struct reply r = {0}, r2 = {0};
    char key2[DAEMON_KEY_SIZE], body[512];
    daemon_up(&d, NULL);
    daemon_key_create(&d, "t2", key2);
    sess_open(&s1, d.port, d.key);
    sess_open(&s2, d.port, key2);
    expect_equal(sess_expect(&s2, 200, "GET", "/v1/policies", NULL, &r2),
                 sess_expect(&s1, 200, "GET", "/v1/policies", NULL, &r), "GET /v1/policies");
    /* The same claim_ref in two tenants, with different bodies, is two claims. */
    api_sub(&s1, "L-1", "2024-04-01", "2024-04-03", true);
    api_sub(&s2, "M-1", "2024-04-01", "2024-04-03", true);
    claim_json(body, sizeof(body), "SAME", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 1);
    api_claim(&s1, 201, body, &r);
    claim_json(body, sizeof(body), "SAME", "M-1", IMEI_B, "2024-05-02", NULL, "exchange", -1);
    api_claim(&s2, 201, body, &r);
    expect_members(sess_expect(&s1, 200, "GET", "/v1/claims/SAME", NULL, &r),
                   "{\"subscription_ref\":\"L-1\",\"remedy\":\"repair\"}", "t1's SAME");
    expect_members(sess_expect(&s2, 200, "GET", "/v1/claims/SAME", NULL, &r),
                   "{\"subscription_ref\":\"M-1\",\"remedy\":\"exchange\"}", "t2's SAME");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE claim_ref = 'SAME'"), 2);
    sess_close(&s1);
    sess_close(&s2);
    reply_free(&r);
    reply_free(&r2);
    daemon_stop(&d);
    daemon_destroy(&d);
}
