/*
 * The claim routes of api.md over HTTP: decide and record (201), replay (200), claim_ref_reused,
 * recorded denials, incident_in_future, no_policy_in_force, quotes that record nothing, reading
 * and withdrawing a claim, the history's pages, the reference grammar and the protocol codes.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(claims, .fini = daemon_cleanup, .timeout = 60);

static struct daemon d;

/* Every member of a recorded claim (api.md), before any withdrawal. */
static const char claim_keys[] =
    "claim_ref,subscription_ref,status,remedy,repair_estimate,covered_amount,customer_charge,"
    "reasons,use_number,uses_remaining,window,loaner,policy_version,decided_at";

/* policy.md's worked examples' line: option applied 2024-04-01, activated 2024-04-03. */
static void up(struct sess *s)
{
    daemon_up(&d, NULL);
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

static long long claim_rows(const char *ref)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM claims WHERE claim_ref = '%s'", ref);
    return sql_count(&d, sql);
}

/* A 400 for a claim body with exactly these errors; nothing recorded. */
static void invalid_claim(struct sess *s, const char *body, const char *code, const char *errors)
{
    struct reply r = {0};
    long long before = sql_count(&d, "SELECT count(*) FROM claims");
    sess_call(s, "POST", "/v1/claims", body, &r);
    expect_problem(&r, 400, code);
    if (errors != NULL)
        expect_errors(&r, errors);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), before,
                 "a refused claim was recorded: %s", body);
    reply_free(&r);
}

/* ------------------------------------------------------------------------
 * Decide, replay, reuse
 * ------------------------------------------------------------------------ */

Test(claims, claim_201_replay_200_same_json_value_claim_ref_reused_409)
{
    struct sess s;
    struct reply r = {0}, again = {0}, g = {0};
    char body[512], ctype[64];
    up(&s);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    json_t *v = api_claim(&s, 201, body, &r);
    reply_header(&r, "content-type", ctype, sizeof(ctype));
    cr_assert_str_eq(ctype, "application/json");
    expect_keys(v, claim_keys, "a decision");
    expect_members(v,
                   "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"status\":\"approved\","
                   "\"remedy\":\"repair\",\"repair_estimate\":62000,\"covered_amount\":50000,"
                   "\"customer_charge\":12000,\"reasons\":[\"cap_exceeded\"],\"use_number\":1,"
                   "\"uses_remaining\":1,\"window\":{\"start\":\"2024-04-01\",\"end\":"
                   "\"2025-03-31\"},\"loaner\":\"android\",\"policy_version\":\"2025-01\"}",
                   "the decision");
    expect_timestamp(json_object_get(v, "decided_at"), "decided_at");

    /* The same JSON value: members reordered, other whitespace. */
    static const char reordered[] =
        "{\n  \"repair_estimate\" : 62000,\n  \"remedy\" : \"repair\",\n  \"damage\" : "
        "\"screen\",\n  \"cause\" : \"physical_damage\",\n  \"incident_on\" : \"2024-06-01\",\n"
        "  \"imei\" : \"" IMEI_A "\",\n  \"subscription_ref\" : \"L-1\",\n  \"claim_ref\" : "
        "\"C-1\"\n}\n";
    expect_equal(api_claim(&s, 200, reordered, &again), v, "the replay (members reordered)");
    expect_equal(api_claim(&s, 200, body, &again), v, "the replay (the same bytes)");
    /* Escapes spell the same strings: the same JSON value. */
    expect_equal(api_claim(&s, 200,
                           "{\"claim_ref\":\"C\\u002d1\",\"subscription_ref\":\"\\u004c-1\","
                           "\"imei\":\"" IMEI_A "\",\"incident_on\":\"2024-06-01\",\"cause\":"
                           "\"physical_damage\",\"damage\":\"scr\\u0065en\",\"remedy\":"
                           "\"repair\",\"repair_estimate\":62000}",
                           &again),
                 v, "the replay (escaped characters)");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/claims/C-1", NULL, &g), v, "GET /v1/claims/C-1");

    /* The same claim_ref with another body. */
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62001);
    sess_problem(&s, 409, "claim_ref_reused", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-02", "screen", "repair", 62000);
    sess_problem(&s, 409, "claim_ref_reused", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-01", "water", "repair", 62000);
    sess_problem(&s, 409, "claim_ref_reused", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-01", "screen", "exchange", -1);
    sess_problem(&s, 409, "claim_ref_reused", "POST", "/v1/claims", body);
    api_sub(&s, "L-2", "2024-04-01", "2024-04-03", true);
    claim_json(body, sizeof(body), "C-1", "L-2", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    sess_problem(&s, 409, "claim_ref_reused", "POST", "/v1/claims", body);

    /* Never decided twice, never counted twice. */
    cr_assert_eq(claim_rows("C-1"), 1);
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &g),
                   "{\"uses\":[\"C-1\"],\"uses_remaining\":1}", "the window after the replays");
    json_t *h = sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &g);
    cr_assert_eq(json_array_size(json_object_get(h, "claims")), 1, "%s", jtext(h));
    expect_equal(json_array_get(json_object_get(h, "claims"), 0), v, "the history's entry");
    reply_free(&r);
    reply_free(&again);
    reply_free(&g);
    down(&s);
}

Test(claims, a_denial_is_a_recorded_decision_listing_every_failed_rule)
{
    struct sess s;
    struct reply r = {0}, g = {0};
    char body[512];
    up(&s);
    /* A valid IMEI that is not the registered one: 201 denied, not an error. */
    claim_json(body, sizeof(body), "C-MM", "L-1", IMEI_B, "2024-07-02", NULL, "exchange", -1);
    json_t *v = api_claim(&s, 201, body, &r);
    expect_keys(v, claim_keys, "a denial");
    expect_members(v,
                   "{\"claim_ref\":\"C-MM\",\"subscription_ref\":\"L-1\",\"status\":\"denied\","
                   "\"remedy\":\"exchange\",\"repair_estimate\":null,\"covered_amount\":0,"
                   "\"customer_charge\":0,\"reasons\":[\"imei_mismatch\"],\"use_number\":null,"
                   "\"uses_remaining\":2,\"window\":{\"start\":\"2024-04-01\",\"end\":"
                   "\"2025-03-31\"},\"loaner\":null,\"policy_version\":\"2025-01\"}",
                   "imei_mismatch");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/claims/C-MM", NULL, &g), v, "GET the denial");
    expect_equal(api_claim(&s, 200, body, &g), v, "the denial's replay");

    /* An iOS line with its window full: every rule but the option's fails. */
    api_sub(&s, "I-1", "2024-04-01", "2024-04-03", true);
    api_device(&s, "I-1", IMEI_IOS, "ios", "2020-01-01", "2024-04-10", "other");
    claim_json(body, sizeof(body), "I-C1", "I-1", IMEI_IOS, "2024-05-01", "screen", "repair", 100);
    expect_members(api_claim(&s, 201, body, &r), "{\"status\":\"approved\",\"use_number\":1}",
                   "first use");
    claim_json(body, sizeof(body), "I-C2", "I-1", IMEI_IOS, "2024-05-02", "water", "repair", 100);
    expect_members(api_claim(&s, 201, body, &r), "{\"status\":\"approved\",\"use_number\":2}",
                   "second use");
    claim_json(body, sizeof(body), "I-C3", "I-1", IMEI_A, "2024-04-05", NULL, "exchange", -1);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"imei_mismatch\","
                   "\"incident_before_coverage\",\"natural_failure_expired\","
                   "\"exchange_not_offered_ios\",\"frequency_limit\"],\"use_number\":null,"
                   "\"uses_remaining\":0,\"covered_amount\":0,\"customer_charge\":0,"
                   "\"loaner\":null}",
                   "five failed rules");
    /* A denied repair echoes its estimate; it pays nothing. */
    claim_json(body, sizeof(body), "I-C4", "I-1", IMEI_IOS, "2024-06-01", "screen", "repair",
               62000);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"frequency_limit\"],"
                   "\"repair_estimate\":62000,\"covered_amount\":0,\"customer_charge\":0,"
                   "\"loaner\":null}",
                   "a full window, no cap_exceeded on a denial");
    sess_expect(&s, 200, "POST", "/v1/subscriptions/I-1/cancel",
                "{\"cancelled_on\":\"2024-04-04\"}", &r);
    claim_json(body, sizeof(body), "I-C5", "I-1", IMEI_A, "2024-04-05", NULL, "exchange", -1);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"option_cancelled\",\"imei_mismatch\","
                   "\"incident_before_coverage\",\"natural_failure_expired\","
                   "\"exchange_not_offered_ios\",\"frequency_limit\"]}",
                   "six failed rules");

    /* No device: the device's checks are skipped. */
    api_sub(&s, "D-1", "2024-04-01", "2024-04-03", true);
    claim_json(body, sizeof(body), "D-C1", "D-1", IMEI_IOS, "2024-04-05", NULL, "exchange", -1);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"device_not_registered\"],"
                   "\"uses_remaining\":2}",
                   "no device");
    api_sub(&s, "N-1", "2024-04-01", "2024-04-03", false);
    claim_json(body, sizeof(body), "N-C1", "N-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"option_not_enrolled\","
                   "\"device_not_registered\"],\"policy_version\":\"2025-01\"}",
                   "no option");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE status = 'denied'"), 6);
    reply_free(&r);
    reply_free(&g);
    down(&s);
}

Test(claims, invalid_claims_are_400_and_never_recorded)
{
    struct sess s;
    struct reply r = {0};
    char body[512];
    up(&s);
    static const char *const bad_imeis[] = {"35693803564380", "3569380356438090", "35693803564380A",
                                            "356938035643808"};
    for (size_t i = 0; i < sizeof(bad_imeis) / sizeof(bad_imeis[0]); i++) {
        claim_json(body, sizeof(body), "C-1", "L-1", bad_imeis[i], "2024-05-01", NULL, "repair",
                   100);
        invalid_claim(&s, body, "invalid_imei", "[{\"field\":\"imei\",\"code\":\"invalid_imei\"}]");
    }
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C-1", NULL);

    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", "screen", "exchange", 100);
    invalid_claim(&s, body, "invalid_field",
                  "[{\"field\":\"repair_estimate\",\"code\":\"invalid_field\"}]");
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", "screen", "repair", -1);
    invalid_claim(&s, body, "missing_field",
                  "[{\"field\":\"repair_estimate\",\"code\":\"missing_field\"}]");
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 10000001);
    invalid_claim(&s, body, "invalid_field",
                  "[{\"field\":\"repair_estimate\",\"code\":\"invalid_field\"}]");
    invalid_claim(&s,
                  "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A "\","
                  "\"incident_on\":\"2024-05-01\",\"cause\":\"physical_damage\",\"remedy\":"
                  "\"repair\",\"repair_estimate\":-1}",
                  "missing_field",
                  "[{\"field\":\"damage\",\"code\":\"missing_field\"},"
                  "{\"field\":\"repair_estimate\",\"code\":\"invalid_field\"}]");
    invalid_claim(&s,
                  "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A "\","
                  "\"incident_on\":\"2024-05-01\",\"cause\":\"natural_failure\",\"damage\":"
                  "\"screen\",\"remedy\":\"repair\",\"repair_estimate\":1.5}",
                  "invalid_field",
                  "[{\"field\":\"damage\",\"code\":\"invalid_field\"},"
                  "{\"field\":\"repair_estimate\",\"code\":\"invalid_field\"}]");
    invalid_claim(&s,
                  "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A "\","
                  "\"incident_on\":\"2024-02-30\",\"cause\":\"fire\",\"remedy\":\"refund\","
                  "\"note\":\"x\"}",
                  "invalid_field",
                  "[{\"field\":\"incident_on\",\"code\":\"invalid_field\"},"
                  "{\"field\":\"cause\",\"code\":\"invalid_field\"},"
                  "{\"field\":\"remedy\",\"code\":\"invalid_field\"},"
                  "{\"field\":\"note\",\"code\":\"unknown_field\"}]");
    invalid_claim(&s, "{}", "missing_field",
                  "[{\"field\":\"claim_ref\",\"code\":\"missing_field\"},"
                  "{\"field\":\"subscription_ref\",\"code\":\"missing_field\"},"
                  "{\"field\":\"imei\",\"code\":\"missing_field\"},"
                  "{\"field\":\"incident_on\",\"code\":\"missing_field\"},"
                  "{\"field\":\"cause\",\"code\":\"missing_field\"},"
                  "{\"field\":\"remedy\",\"code\":\"missing_field\"}]");

    /* The estimate's bounds: 0 and 10,000,000 are decided. */
    claim_json(body, sizeof(body), "C-0", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 0);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"covered_amount\":0,\"customer_charge\":0,"
                   "\"reasons\":[]}",
                   "estimate 0");
    claim_json(body, sizeof(body), "C-M", "L-1", IMEI_A, "2024-05-02", "total_loss", "repair",
               10000000);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"covered_amount\":50000,\"customer_charge\":9950000,"
                   "\"reasons\":[\"cap_exceeded\"],\"use_number\":2}",
                   "estimate 10,000,000");
    reply_free(&r);
    down(&s);
}

/*
 * api.md's order of checks: members (400), then the referenced objects (404), then the rules
 * (409/422); the first failure answers.
 */
Test(claims, checks_run_in_the_documented_order)
{
    struct sess s;
    struct reply r = {0};
    char body[512], tomorrow[11];
    up(&s);
    japan_date(1, tomorrow);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    api_claim(&s, 201, body, &r);
    /* 400 before 404. */
    claim_json(body, sizeof(body), "C-9", "L-404", "123", "2024-06-01", NULL, "repair", 1);
    sess_problem(&s, 400, "invalid_imei", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), "C-9", "L-404", IMEI_A, tomorrow, NULL, "repair", 1);
    sess_problem(&s, 400, "incident_in_future", "POST", "/v1/claims", body);
    sess_problem(&s, 400, "invalid_imei", "PUT", "/v1/subscriptions/L-404/device",
                 "{\"imei\":\"123\",\"os\":\"android\",\"model\":\"Pixel 6\",\"release_date\":"
                 "\"2022-01-20\",\"purchased_from\":\"other\",\"registered_on\":\"2024-04-10\"}");
    sess_problem(&s, 400, "invalid_field", "POST", "/v1/subscriptions/L-404/activate",
                 "{\"activated_on\":\"soon\"}");
    sess_problem(&s, 400, "unknown_field", "POST", "/v1/claims/C-404/withdraw", "{\"x\":1}");
    /* 404 before the rules' 409 and 422. */
    claim_json(body, sizeof(body), "C-1", "L-404", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims", body);
    claim_json(body, sizeof(body), "C-9", "L-404", IMEI_A, "2019-06-01", NULL, "repair", 1);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims", body);
    sess_problem(&s, 404, "not_found", "POST", "/v1/subscriptions/L-404/activate",
                 "{\"activated_on\":\"2020-01-01\"}");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 1);
    reply_free(&r);
    down(&s);
}

/* ------------------------------------------------------------------------
 * The day of the incident
 * ------------------------------------------------------------------------ */

Test(claims, incident_in_future_400_today_is_decided)
{
    struct sess s;
    struct reply r = {0};
    char body[512], today[11], tomorrow[11];
    up(&s);
    japan_date(0, today);
    japan_date(1, tomorrow);
    claim_json(body, sizeof(body), "C-F", "L-1", IMEI_A, tomorrow, "screen", "repair", 1000);
    sess_problem(&s, 400, "incident_in_future", "POST", "/v1/claims", body);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C-F", NULL);
    cr_assert_eq(claim_rows("C-F"), 0);
    claim_json(body, sizeof(body), NULL, "L-1", IMEI_A, tomorrow, "screen", "repair", 1000);
    sess_problem(&s, 400, "incident_in_future", "POST", "/v1/claims/quote", body);
    claim_json(body, sizeof(body), "C-F", "L-1", IMEI_A, "2999-01-01", "screen", "repair", 1000);
    sess_problem(&s, 400, "incident_in_future", "POST", "/v1/claims", body);

    claim_json(body, sizeof(body), "C-T", "L-1", IMEI_A, today, "screen", "repair", 1000);
    expect_members(api_claim(&s, 201, body, &r), "{\"status\":\"approved\",\"use_number\":1}",
                   "an incident today in Japan");
    reply_free(&r);
    down(&s);
}

/*
 * A claim is decided under the version in force on its incident_on: none before 2020-01-01
 * (422 no_policy_in_force, nothing recorded), and a version added later (as the owner, then
 * a restart) from its effective_from on.
 */
Test(claims, no_policy_in_force_422_and_the_version_in_force)
{
    struct sess s;
    struct reply r = {0};
    char body[512];
    up(&s);
    claim_json(body, sizeof(body), "C-OLD", "L-1", IMEI_A, "2019-12-31", "screen", "repair", 1000);
    sess_problem(&s, 422, "no_policy_in_force", "POST", "/v1/claims", body);
    cr_assert_eq(claim_rows("C-OLD"), 0);
    claim_json(body, sizeof(body), NULL, "L-1", IMEI_A, "2019-12-31", "screen", "repair", 1000);
    sess_problem(&s, 422, "no_policy_in_force", "POST", "/v1/claims/quote", body);
    sess_problem(&s, 422, "no_policy_in_force", "GET", "/v1/subscriptions/L-1?on=2019-12-31", NULL);

    daemon_sql(&d, "INSERT INTO policy_versions (name, effective_from, monthly_fee, free_months, "
                   "repair_cap, exchange_fees, max_uses, frequency_window, "
                   "natural_failure_months, registration_days, ios_exchange, loaner_os) VALUES "
                   "('2024-10', '2024-10-01', 660, 1, 30000, '{6600,9900,13200}', 3, "
                   "'contract_year', 24, 7, true, 'ios')");
    sess_close(&s);
    daemon_stop(&d);
    unlink(d.err_path);
    daemon_start(&d, NULL);
    sess_open(&s, d.port, d.key);

    /* Every version with every parameter (in any order). */
    json_t *want = jparse(
        "[{\"name\":\"2025-01\",\"effective_from\":\"2020-01-01\",\"monthly_fee\":550,"
        "\"free_months\":2,\"repair_cap\":50000,\"exchange_fees\":[5500,8800],\"max_uses\":2,"
        "\"window\":\"contract_year\",\"natural_failure_months\":36,\"registration_days\":14,"
        "\"ios_exchange\":false,\"loaner_os\":\"android\"},{\"name\":\"2024-10\","
        "\"effective_from\":\"2024-10-01\",\"monthly_fee\":660,\"free_months\":1,\"repair_cap\":"
        "30000,\"exchange_fees\":[6600,9900,13200],\"max_uses\":3,\"window\":\"contract_year\","
        "\"natural_failure_months\":24,\"registration_days\":7,\"ios_exchange\":true,"
        "\"loaner_os\":\"ios\"}]");
    json_t *pol = sess_expect(&s, 200, "GET", "/v1/policies", NULL, &r);
    expect_keys(pol, "policies", "GET /v1/policies");
    json_t *got = json_object_get(pol, "policies");
    cr_assert_eq(json_array_size(got), 2, "%s", jtext(pol));
    for (size_t i = 0; i < 2; i++) {
        json_t *w = json_array_get(want, i);
        bool found = false;
        for (size_t j = 0; j < 2; j++)
            found = found || json_equal(json_array_get(got, j), w);
        cr_assert(found, "GET /v1/policies lacks %s: %s", jtext(w), jtext(pol));
    }
    json_decref(want);

    claim_json(body, sizeof(body), "C-A", "L-1", IMEI_A, "2024-09-30", "screen", "repair", 40000);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"policy_version\":\"2025-01\",\"covered_amount\":"
                   "40000,\"customer_charge\":0,\"use_number\":1,\"uses_remaining\":1,"
                   "\"loaner\":\"android\"}",
                   "the day before the new version");
    claim_json(body, sizeof(body), "C-B", "L-1", IMEI_A, "2024-10-01", "screen", "repair", 40000);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"policy_version\":\"2024-10\",\"covered_amount\":"
                   "30000,\"customer_charge\":10000,\"reasons\":[\"cap_exceeded\"],"
                   "\"use_number\":2,\"uses_remaining\":1,\"loaner\":\"ios\"}",
                   "the new version's first day");
    /* Natural failure: 24 months from 2022-01-20 ended on 2024-01-20 under the new version. */
    claim_json(body, sizeof(body), "C-C", "L-1", IMEI_A, "2024-10-02", NULL, "exchange", -1);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"natural_failure_expired\"],"
                   "\"policy_version\":\"2024-10\"}",
                   "the new version's natural failure months");
    claim_json(body, sizeof(body), "C-D", "L-1", IMEI_A, "2024-10-03", "water", "exchange", -1);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"customer_charge\":6600,\"use_number\":3,"
                   "\"uses_remaining\":0,\"policy_version\":\"2024-10\"}",
                   "the third use the new version allows");
    sess_problem(&s, 422, "no_policy_in_force", "POST", "/v1/claims",
                 "{\"claim_ref\":\"C-OLD\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
                 "\",\"incident_on\":\"2019-12-31\",\"cause\":\"physical_damage\",\"damage\":"
                 "\"screen\",\"remedy\":\"repair\",\"repair_estimate\":1000}");
    reply_free(&r);
    down(&s);
}

/* ------------------------------------------------------------------------
 * Quotes
 * ------------------------------------------------------------------------ */

Test(claims, quote_200_records_nothing)
{
    struct sess s;
    struct reply r = {0}, h0 = {0}, h1 = {0}, st0 = {0}, st1 = {0}, again = {0};
    char body[512];
    up(&s);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 30000);
    api_claim(&s, 201, body, &r);
    sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &h0);
    sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &st0);

    /* Example 2 as a quote: use 2, without claim_ref and decided_at. */
    claim_json(body, sizeof(body), NULL, "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    json_t *q = sess_expect(&s, 200, "POST", "/v1/claims/quote", body, &r);
    json_t *want =
        jparse("{\"subscription_ref\":\"L-1\",\"status\":\"approved\",\"remedy\":\"repair\","
               "\"repair_estimate\":62000,\"covered_amount\":50000,\"customer_charge\":12000,"
               "\"reasons\":[\"cap_exceeded\"],\"use_number\":2,\"uses_remaining\":0,\"window\":"
               "{\"start\":\"2024-04-01\",\"end\":\"2025-03-31\"},\"loaner\":\"android\","
               "\"policy_version\":\"2025-01\"}");
    expect_equal(q, want, "the quote");
    json_decref(want);
    /* Quoted again: the same answer, since nothing was recorded. */
    expect_equal(sess_expect(&s, 200, "POST", "/v1/claims/quote", body, &again), q,
                 "the quote again");
    /* A claim_ref in a quote body is ignored, and nothing is recorded under it. */
    claim_json(body, sizeof(body), "Q-1", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    expect_equal(sess_expect(&s, 200, "POST", "/v1/claims/quote", body, &again), q,
                 "a quote with a claim_ref");
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/Q-1", NULL);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &h1), h0.json,
                 "the history after the quotes");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-06-01", NULL, &st1),
                 st0.json, "the state after the quotes");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 1);

    /* The decision it would get now: denials too, for every reason. */
    claim_json(body, sizeof(body), NULL, "L-1", IMEI_B, "2024-06-01", NULL, "exchange", -1);
    expect_members(sess_expect(&s, 200, "POST", "/v1/claims/quote", body, &r),
                   "{\"status\":\"denied\",\"reasons\":[\"imei_mismatch\"],\"use_number\":null,"
                   "\"uses_remaining\":1,\"covered_amount\":0,\"customer_charge\":0,"
                   "\"repair_estimate\":null,\"loaner\":null}",
                   "a denied quote");
    claim_json(body, sizeof(body), NULL, "L-1", "1234", "2024-06-01", NULL, "exchange", -1);
    sess_problem(&s, 400, "invalid_imei", "POST", "/v1/claims/quote", body);
    claim_json(body, sizeof(body), NULL, "L-404", IMEI_A, "2024-06-01", NULL, "exchange", -1);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/quote", body);
    sess_call(&s, "POST", "/v1/claims/quote", "{\"subscription_ref\":\"L-1\"}", &r);
    expect_problem(&r, 400, "missing_field");
    expect_errors(&r, "[{\"field\":\"imei\",\"code\":\"missing_field\"},"
                      "{\"field\":\"incident_on\",\"code\":\"missing_field\"},"
                      "{\"field\":\"cause\",\"code\":\"missing_field\"},"
                      "{\"field\":\"remedy\",\"code\":\"missing_field\"}]");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 1);
    reply_free(&r);
    reply_free(&again);
    reply_free(&h0);
    reply_free(&h1);
    reply_free(&st0);
    reply_free(&st1);
    down(&s);
}

/* ------------------------------------------------------------------------
 * Reading and withdrawing
 * ------------------------------------------------------------------------ */

Test(claims, withdraw_200_twice_a_no_op_denied_409_replay_shows_withdrawn)
{
    struct sess s;
    struct reply r = {0}, c2 = {0}, w = {0}, g = {0};
    char body1[512], body2[512], body3[512], body[512];
    up(&s);
    claim_json(body1, sizeof(body1), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 30000);
    claim_json(body2, sizeof(body2), "C-2", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    claim_json(body3, sizeof(body3), "C-3", "L-1", IMEI_A, "2024-07-01", "screen", "exchange", -1);
    api_claim(&s, 201, body1, &r);
    json_t *orig = api_claim(&s, 201, body2, &c2);
    expect_members(api_claim(&s, 201, body3, &r), "{\"status\":\"denied\"}", "C-3");

    json_t *v = sess_expect(&s, 200, "POST", "/v1/claims/C-2/withdraw", NULL, &w);
    expect_keys(v,
                "claim_ref,subscription_ref,status,remedy,repair_estimate,covered_amount,"
                "customer_charge,reasons,use_number,uses_remaining,window,loaner,"
                "policy_version,decided_at,withdrawn_at",
                "a withdrawn claim");
    expect_timestamp(json_object_get(v, "withdrawn_at"), "withdrawn_at");
    cr_assert(strcmp(json_string_value(json_object_get(v, "withdrawn_at")),
                     json_string_value(json_object_get(orig, "decided_at"))) >= 0,
              "withdrawn before it was decided: %s", jtext(v));
    /* Everything else is the original decision. */
    json_t *same = json_deep_copy(orig);
    json_object_set_new(same, "status", json_string("withdrawn"));
    json_object_set(same, "withdrawn_at", json_object_get(v, "withdrawn_at"));
    expect_equal(v, same, "the withdrawn claim");
    json_decref(same);

    expect_equal(sess_expect(&s, 200, "POST", "/v1/claims/C-2/withdraw", "{}", &g), v,
                 "withdrawing twice");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/claims/C-2", NULL, &g), v,
                 "GET of the withdrawn claim");
    expect_equal(api_claim(&s, 200, body2, &g), v, "the replay of a withdrawn claim");
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims WHERE withdrawn_at IS NOT NULL"), 1);

    /* A denied claim cannot be withdrawn. */
    sess_expect(&s, 200, "GET", "/v1/claims/C-3", NULL, &r);
    sess_problem(&s, 409, "claim_denied", "POST", "/v1/claims/C-3/withdraw", NULL);
    expect_equal(sess_expect(&s, 200, "GET", "/v1/claims/C-3", NULL, &g), r.json,
                 "the denied claim after the refusal");
    sess_call(&s, "POST", "/v1/claims/C-1/withdraw", "{\"reason\":\"changed mind\"}", &g);
    expect_problem(&g, 400, "unknown_field");
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/C-404/withdraw", NULL);
    sess_call(&s, "GET", "/v1/claims/C-1/withdraw", NULL, &g);
    expect_problem(&g, 405, "method_not_allowed");
    char allow[64];
    reply_header(&g, "allow", allow, sizeof(allow));
    cr_assert_str_eq(allow, "POST");

    /* The freed use goes to a later claim (example 8); C-2 keeps its use number. */
    claim_json(body, sizeof(body), "C-4", "L-1", IMEI_A, "2024-07-01", "other", "repair", 10000);
    expect_members(api_claim(&s, 201, body, &r),
                   "{\"status\":\"approved\",\"use_number\":2,\"uses_remaining\":0,"
                   "\"covered_amount\":10000}",
                   "the freed use");
    expect_members(sess_expect(&s, 200, "GET", "/v1/claims/C-2", NULL, &g),
                   "{\"status\":\"withdrawn\",\"use_number\":2}", "C-2 as it was decided");
    expect_members(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1?on=2024-07-01", NULL, &g),
                   "{\"uses\":[\"C-1\",\"C-4\"],\"uses_remaining\":0}", "the window");
    reply_free(&r);
    reply_free(&c2);
    reply_free(&w);
    reply_free(&g);
    down(&s);
}

/* ------------------------------------------------------------------------
 * History
 * ------------------------------------------------------------------------ */

/* Follows every page at limit (0: the default) and returns the claim_refs in order. */
static size_t history_refs(struct sess *s, const char *sub, int limit, char refs[][16], size_t max,
                           int *pages)
{
    struct reply r = {0};
    char target[256], cursor[64] = "";
    size_t n = 0;
    *pages = 0;
    for (;;) {
        int k = snprintf(target, sizeof(target), "/v1/subscriptions/%s/claims", sub);
        if (limit > 0)
            k += snprintf(target + k, sizeof(target) - (size_t)k, "?limit=%d", limit);
        if (cursor[0] != '\0')
            snprintf(target + k, sizeof(target) - (size_t)k, "%cafter=%s", limit > 0 ? '&' : '?',
                     cursor);
        json_t *page = sess_expect(s, 200, "GET", target, NULL, &r);
        expect_keys(page, "claims,next_after", "a history page");
        json_t *claims = json_object_get(page, "claims");
        size_t want = (size_t)(limit > 0 ? limit : 20);
        json_t *next = json_object_get(page, "next_after");
        cr_assert(json_array_size(claims) <= want, "%s: more than %zu claims", target, want);
        cr_assert(json_is_null(next) || json_array_size(claims) == want,
                  "%s: a short page must be the last: %s", target, jtext(next));
        for (size_t i = 0; i < json_array_size(claims); i++) {
            cr_assert(n < max);
            snprintf(refs[n++], 16, "%s",
                     json_string_value(json_object_get(json_array_get(claims, i), "claim_ref")));
        }
        (*pages)++;
        if (json_is_null(next))
            break;
        cr_assert(json_is_string(next), "next_after: %s", jtext(next));
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
    }
    reply_free(&r);
    return n;
}

Test(claims, history_newest_first_with_cursor_pages)
{
    struct sess s;
    struct reply r = {0}, g = {0};
    char body[512], ref[16], refs[64][16];
    static char batch[16384];
    int pages;
    up(&s);
    json_t *empty = jparse("{\"claims\":[],\"next_after\":null}");
    expect_equal(sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims", NULL, &r), empty,
                 "an empty history");
    json_decref(empty);

    /* 30 claims, a batch of 10, 5 more: H-00 .. H-44 in the order decided. */
    for (int i = 0; i < 30; i++) {
        snprintf(ref, sizeof(ref), "H-%02d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100 + i);
        api_claim(&s, 201, body, &r);
    }
    int k = snprintf(batch, sizeof(batch), "{\"claims\":[");
    for (int i = 30; i < 40; i++) {
        snprintf(ref, sizeof(ref), "H-%02d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100 + i);
        k += snprintf(batch + k, sizeof(batch) - (size_t)k, "%s%s", i > 30 ? "," : "", body);
    }
    snprintf(batch + k, sizeof(batch) - (size_t)k, "]}");
    sess_expect(&s, 200, "POST", "/v1/claims/batch", batch, &r);
    for (int i = 40; i < 45; i++) {
        snprintf(ref, sizeof(ref), "H-%02d", i);
        claim_json(body, sizeof(body), ref, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100 + i);
        api_claim(&s, 201, body, &r);
    }

    static const int limits[] = {0, 1, 7, 20, 44, 45, 100};
    static const int want_pages[] = {3, 45, 7, 3, 2, 1, 1};
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        size_t n = history_refs(&s, "L-1", limits[l], refs, 64, &pages);
        cr_assert_eq(n, 45, "limit %d: %zu claims", limits[l], n);
        cr_assert_eq(pages, want_pages[l], "limit %d: %d pages", limits[l], pages);
        for (size_t i = 0; i < n; i++) {
            snprintf(ref, sizeof(ref), "H-%02zu", 44 - i);
            cr_assert_str_eq(refs[i], ref, "limit %d: entry %zu", limits[l], i);
        }
    }
    /* A full last page ends the list too (45 = 3 x 15). */
    history_refs(&s, "L-1", 15, refs, 64, &pages);
    cr_assert_eq(pages, 3);

    /* A cursor stays where it was while newer claims are decided. */
    json_t *p1 = sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims?limit=5", NULL, &g);
    char cursor[128];
    snprintf(cursor, sizeof(cursor), "/v1/subscriptions/L-1/claims?limit=5&after=%s",
             json_string_value(json_object_get(p1, "next_after")));
    claim_json(body, sizeof(body), "H-NEW", "L-1", IMEI_A, "2024-05-02", NULL, "repair", 1);
    api_claim(&s, 201, body, &r);
    json_t *p2 = json_object_get(sess_expect(&s, 200, "GET", cursor, NULL, &r), "claims");
    cr_assert_eq(json_array_size(p2), 5);
    for (size_t i = 0; i < 5; i++) {
        snprintf(ref, sizeof(ref), "H-%02zu", 39 - i);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(p2, i), "claim_ref")),
                         ref, "the second page after a new claim");
    }

    /* Each entry is the claim as GET shows it. */
    json_t *page = sess_expect(&s, 200, "GET", "/v1/subscriptions/L-1/claims?limit=100", NULL, &r);
    json_t *claims = json_object_get(page, "claims");
    for (size_t i = 0; i < json_array_size(claims); i++) {
        json_t *e = json_array_get(claims, i);
        char target[64];
        snprintf(target, sizeof(target), "/v1/claims/%s",
                 json_string_value(json_object_get(e, "claim_ref")));
        expect_equal(sess_expect(&s, 200, "GET", target, NULL, &g), e, target);
    }

    /* limit 1-100, a cursor from a page. */
    static const char *const bad_limits[] = {"0", "101", "-1", "abc", "", "1.5", "20x"};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
        char target[96];
        snprintf(target, sizeof(target), "/v1/subscriptions/L-1/claims?limit=%s", bad_limits[i]);
        sess_call(&s, "GET", target, NULL, &r);
        expect_problem(&r, 400, "invalid_field");
        expect_errors(&r, "[{\"field\":\"limit\",\"code\":\"invalid_field\"}]");
    }
    static const char *const bad_after[] = {"abc", "", "-5", "1.5", "9999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_after) / sizeof(bad_after[0]); i++) {
        char target[96];
        snprintf(target, sizeof(target), "/v1/subscriptions/L-1/claims?after=%s", bad_after[i]);
        sess_call(&s, "GET", target, NULL, &r);
        expect_problem(&r, 400, "invalid_field");
        expect_errors(&r, "[{\"field\":\"after\",\"code\":\"invalid_field\"}]");
    }
    sess_call(&s, "HEAD", "/v1/subscriptions/L-1/claims?limit=5", NULL, &r);
    expect_status(&r, 200, "HEAD of a history page");
    sess_problem(&s, 404, "not_found", "GET", "/v1/subscriptions/L-404/claims", NULL);
    reply_free(&r);
    reply_free(&g);
    down(&s);
}

/* ------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------ */

Test(claims, claim_ref_grammar_and_the_reserved_quote_and_batch)
{
    struct sess s;
    struct reply r = {0};
    char body[512], ref64[65], ref65[66], target[128];
    up(&s);
    memset(ref64, 'c', 64);
    ref64[64] = '\0';
    memset(ref65, 'c', 65);
    ref65[65] = '\0';
    claim_json(body, sizeof(body), ref64, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    api_claim(&s, 201, body, &r);
    snprintf(target, sizeof(target), "/v1/claims/%s", ref64);
    expect_members(sess_expect(&s, 200, "GET", target, NULL, &r), "{\"status\":\"approved\"}",
                   "the 64-character claim_ref");
    claim_json(body, sizeof(body), "aZ09._:-", "L-1", IMEI_A, "2024-05-02", NULL, "repair", 100);
    api_claim(&s, 201, body, &r);
    sess_expect(&s, 200, "GET", "/v1/claims/aZ09._:-", NULL, &r);

    static const char *const bad[] = {"", "C 1", "C/1", "C!1", "C?1", "C\\u00e9", "quote", "batch"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        claim_json(body, sizeof(body), bad[i], "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
        invalid_claim(&s, body, "invalid_field",
                      "[{\"field\":\"claim_ref\",\"code\":\"invalid_field\"}]");
    }
    claim_json(body, sizeof(body), ref65, "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    invalid_claim(&s, body, "invalid_field",
                  "[{\"field\":\"claim_ref\",\"code\":\"invalid_field\"}]");
    claim_json(body, sizeof(body), "C-9", "L 1", IMEI_A, "2024-05-01", NULL, "repair", 100);
    invalid_claim(&s, body, "invalid_field",
                  "[{\"field\":\"subscription_ref\",\"code\":\"invalid_field\"}]");
    invalid_claim(&s,
                  "{\"claim_ref\":7,\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A "\","
                  "\"incident_on\":\"2024-05-01\",\"cause\":\"natural_failure\",\"remedy\":"
                  "\"repair\",\"repair_estimate\":100}",
                  "invalid_field", "[{\"field\":\"claim_ref\",\"code\":\"invalid_field\"}]");

    /* In a path, a malformed reference is an unknown resource. */
    snprintf(target, sizeof(target), "/v1/claims/%s", ref65);
    sess_problem(&s, 404, "not_found", "GET", target, NULL);
    snprintf(target, sizeof(target), "/v1/claims/%s/withdraw", ref65);
    sess_problem(&s, 404, "not_found", "POST", target, NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C!1", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C%201", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/C~1", NULL);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/C!1/withdraw", NULL);
    sess_problem(&s, 404, "not_found", "GET", "/v1/claims/", NULL);
    /* quote and batch are routes of their own, POST only. */
    static const char *const reserved[] = {"/v1/claims/quote", "/v1/claims/batch"};
    for (size_t i = 0; i < 2; i++) {
        char allow[64];
        sess_call(&s, "GET", reserved[i], NULL, &r);
        expect_problem(&r, 405, "method_not_allowed");
        reply_header(&r, "allow", allow, sizeof(allow));
        cr_assert_str_eq(allow, "POST", "%s", reserved[i]);
    }
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/quote/withdraw", NULL);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/batch/withdraw", NULL);
    reply_free(&r);
    down(&s);
}

/* ------------------------------------------------------------------------
 * The protocol's codes on the claim routes
 * ------------------------------------------------------------------------ */

Test(claims, protocol_codes_on_the_claim_routes)
{
    struct sess s, anon;
    struct reply r = {0};
    char body[512], www[64], allow[64];
    up(&s);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 100);

    sess_open(&anon, d.port, NULL);
    sess_call(&anon, "POST", "/v1/claims", body, &r);
    expect_problem(&r, 401, "unauthorized");
    cr_assert_eq(reply_header(&r, "www-authenticate", www, sizeof(www)), 1);
    cr_assert_str_eq(www, "Bearer");
    sess_close(&anon);
    sess_open(&anon, d.port, "ck_not_a_key");
    sess_problem(&anon, 401, "unauthorized", "GET", "/v1/claims/C-1", NULL);
    sess_problem(&anon, 401, "unauthorized", "POST", "/v1/claims/batch", "{\"claims\":[]}");
    sess_close(&anon);

    /* Media type, JSON, then members. */
    struct client c;
    static char req[4096];
    client_open(&c, d.port);
    request_build(req, sizeof(req), "POST", "/v1/claims", d.key, "text/plain", NULL, body);
    cr_assert_eq(client_send_str(&c, req), 0);
    cr_assert_eq(client_reply(&c, false, API_WAIT_MS, &r), 0);
    expect_problem(&r, 415, "unsupported_media_type");
    client_close(&c);
    sess_problem(&s, 400, "malformed_json", "POST", "/v1/claims", "{\"claim_ref\": ");
    sess_problem(&s, 400, "malformed_json", "POST", "/v1/claims", "[1,2]");

    /* 64 KiB of body at most (1 MiB for a batch). */
    size_t big = 64 * 1024 + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    sess_problem(&s, 413, "payload_too_large", "POST", "/v1/claims", huge);
    huge[64 * 1024 - 1] = '}';
    huge[64 * 1024] = '\0';
    sess_problem(&s, 400, "missing_field", "POST", "/v1/claims", huge);
    sess_problem(&s, 400, "missing_field", "POST", "/v1/claims/batch", huge);
    free(huge);

    /* Methods and paths. */
    sess_call(&s, "DELETE", "/v1/claims/C-1", NULL, &r);
    expect_problem(&r, 405, "method_not_allowed");
    reply_header(&r, "allow", allow, sizeof(allow));
    cr_assert_str_eq(allow, "GET, HEAD");
    sess_call(&s, "PUT", "/v1/claims", body, &r);
    expect_problem(&r, 405, "method_not_allowed");
    reply_header(&r, "allow", allow, sizeof(allow));
    cr_assert_str_eq(allow, "POST");
    sess_problem(&s, 404, "not_found", "GET", "/v1/claim", NULL);
    sess_problem(&s, 404, "not_found", "POST", "/v1/claims/C-1/withdraw/now", NULL);

    /* Over 8 KiB of request line and headers; Content-Length with Transfer-Encoding. */
    static char pad[9000], raw[16384];
    memset(pad, 'a', sizeof(pad) - 1);
    snprintf(raw, sizeof(raw),
             "POST /v1/claims HTTP/1.1\r\nHost: claimd.test\r\nX-Pad: "
             "%s\r\n\r\n",
             pad);
    client_open(&c, d.port);
    cr_assert_eq(client_send_str(&c, raw), 0);
    cr_assert_eq(client_reply(&c, false, API_WAIT_MS, &r), 0);
    expect_problem(&r, 431, "headers_too_large");
    client_close(&c);
    snprintf(raw, sizeof(raw),
             "POST /v1/claims HTTP/1.1\r\nHost: claimd.test\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n"
             "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
             d.key);
    client_open(&c, d.port);
    cr_assert_eq(client_send_str(&c, raw), 0);
    cr_assert_eq(client_reply(&c, false, API_WAIT_MS, &r), 0);
    expect_problem(&r, 400, "bad_request");
    client_close(&c);
    cr_assert_eq(sql_count(&d, "SELECT count(*) FROM claims"), 0);
    reply_free(&r);
    down(&s);
}

/* A metrics line "name value" must be there exactly. */
static void metric(const struct reply *r, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    cr_assert(strstr(r->body, want) != NULL, "/metrics lacks \"%s\":\n%s", line, r->body);
}

Test(claims, operations_routes_need_no_key_and_count_the_decisions)
{
    struct sess s, anon;
    struct reply r = {0};
    char body[512], ctype[64];
    up(&s);
    claim_json(body, sizeof(body), "C-1", "L-1", IMEI_A, "2024-05-01", NULL, "repair", 30000);
    api_claim(&s, 201, body, &r);
    api_claim(&s, 200, body, &r);
    claim_json(body, sizeof(body), "C-2", "L-1", IMEI_A, "2024-06-01", "screen", "repair", 62000);
    api_claim(&s, 201, body, &r);
    claim_json(body, sizeof(body), "C-3", "L-1", IMEI_A, "2024-07-01", "screen", "exchange", -1);
    api_claim(&s, 201, body, &r);

    sess_open(&anon, d.port, NULL);
    json_t *want = jparse("{\"status\":\"ok\"}");
    expect_equal(sess_expect(&anon, 200, "GET", "/healthz", NULL, &r), want, "/healthz");
    json_decref(want);
    want = jparse("{\"status\":\"ready\"}");
    expect_equal(sess_expect(&anon, 200, "GET", "/readyz", NULL, &r), want, "/readyz");
    json_decref(want);
    sess_call(&anon, "GET", "/metrics", NULL, &r);
    expect_status(&r, 200, "/metrics");
    reply_header(&r, "content-type", ctype, sizeof(ctype));
    cr_assert(strncmp(ctype, "text/plain", 10) == 0, "%s", r.head);
    /* Decisions by status and reason: a replay is not a decision. */
    metric(&r, "claimd_decisions_total{status=\"approved\"} 2");
    metric(&r, "claimd_decisions_total{status=\"denied\"} 1");
    metric(&r, "claimd_decision_reasons_total{reason=\"frequency_limit\"} 1");
    metric(&r, "claimd_http_requests_total{route=\"/v1/claims\",status=\"201\"} 3");
    metric(&r, "claimd_http_requests_total{route=\"/v1/claims\",status=\"200\"} 1");
    cr_assert(strstr(r.body, "claimd_http_request_duration_seconds_bucket{route=\"/v1/claims\"") !=
                  NULL,
              "no latency histogram of /v1/claims");
    cr_assert(strstr(r.body, "\nclaimd_db_connections{state=\"up\"} ") != NULL,
              "no database pool state");
    sess_problem(&anon, 401, "unauthorized", "GET", "/v1/policies", NULL);
    sess_close(&anon);
    reply_free(&r);
    down(&s);
}
