/*
 * POST /v1/subscriptions over HTTP: 400 for malformed JSON and bad members (errors lists
 * every failing member in api.md's order, unknown members last), then the rules: 422
 * date_before_application, 409 duplicate_subscription, and 200 for an identical retry.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS 5000

TestSuite(validation, .fini = daemon_cleanup, .timeout = 50);

/* POST body on c with the daemon's key. */
static void post(struct client *c, const struct daemon *d, const char *body, struct response *r)
{
    static char req[8192];
    request_build(req, sizeof(req), "POST", "/v1/subscriptions", d->key, "application/json", NULL,
                  body);
    cr_assert_eq(client_send_str(c, req), 0);
    client_expect(c, false, WAIT_MS, r);
}

/* A 400 whose code is the first entry's, with exactly these errors. */
static void assert_fields(const struct response *r, size_t n, const char *const *fc)
{
    response_assert_problem(r, 400, fc[1]);
    response_assert_errors(r, n, fc);
}

#define FIELDS(...)                                                                                \
    (sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *) / 2), (const char *[])                 \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

Test(validation, malformed_and_non_object_bodies)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    static const char *const malformed[] = {
        "",
        "{",
        "{\"subscription_ref\":",
        "{\"a\":1,}",
        "nul",
        "{'a':1}",
        "{}{}",
        "{} x",
        "\xff\xfe{}",
        /* A duplicate member is refused, not silently last-wins. */
        "{\"subscription_ref\":\"L-1\",\"subscription_ref\":\"L-2\",\"applied_on\":"
        "\"2026-04-01\",\"device_protection\":true}",
    };
    static const char *const not_objects[] = {"[]", "[{}]", "\"L-1\"", "42", "null", "true"};
    daemon_up(&d, NULL);
    client_open(&c, d.port);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        post(&c, &d, malformed[i], &r);
        cr_assert_eq(r.status, 400, "'%s': %s%s", malformed[i], r.head, r.body);
        response_assert_problem(&r, 400, "malformed_json");
    }
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        post(&c, &d, not_objects[i], &r);
        cr_assert_eq(r.status, 400, "'%s': %s%s", not_objects[i], r.head, r.body);
        response_assert_problem(&r, 400, "malformed_json");
    }
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

Test(validation, every_failing_member_in_the_contract_order)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    daemon_up(&d, NULL);
    client_open(&c, d.port);

    post(&c, &d, "{}", &r);
    assert_fields(&r, FIELDS("subscription_ref", "missing_field", "applied_on", "missing_field",
                             "device_protection", "missing_field"));

    /* Wrong types, out-of-range dates and a bad ref: every member, in api.md's order. */
    post(&c, &d,
         "{\"device_protection\":\"yes\",\"activated_on\":20260403,"
         "\"applied_on\":\"2026-02-30\",\"subscription_ref\":\"L 1\"}",
         &r);
    assert_fields(&r,
                  FIELDS("subscription_ref", "invalid_field", "applied_on", "invalid_field",
                         "activated_on", "invalid_field", "device_protection", "invalid_field"));

    /* Missing and invalid together keep the member order; unknown members come last even
     * when they come first in the body. */
    post(&c, &d, "{\"zzz\":1,\"device_protection\":1,\"applied_on\":null,\"extra\":\"x\"}", &r);
    assert_fields(&r, FIELDS("subscription_ref", "missing_field", "applied_on", "invalid_field",
                             "device_protection", "invalid_field", "zzz", "unknown_field", "extra",
                             "unknown_field"));

    /* Only an unknown member wrong: its code is the problem's. */
    post(&c, &d,
         "{\"Subscription_ref\":\"L-9\",\"subscription_ref\":\"L-9\",\"applied_on\":"
         "\"2026-04-01\",\"device_protection\":true}",
         &r);
    assert_fields(&r, FIELDS("Subscription_ref", "unknown_field"));

    /* References: 1-64 characters of [A-Za-z0-9._:-]; quote and batch are reserved. */
    static const char *const bad_refs[] = {"\"\"",
                                           "\"L/1\"",
                                           "\"L-1?\"",
                                           "\"\\u00e9\"",
                                           "\"quote\"",
                                           "\"batch\"",
                                           "\"0123456789012345678901234567890123456789"
                                           "0123456789012345678901234\"",
                                           "12",
                                           "null"};
    for (size_t i = 0; i < sizeof(bad_refs) / sizeof(bad_refs[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"subscription_ref\":%s,\"applied_on\":\"2026-04-01\","
                 "\"device_protection\":true}",
                 bad_refs[i]);
        post(&c, &d, body, &r);
        assert_fields(&r, FIELDS("subscription_ref", "invalid_field"));
    }

    /* The edges that are valid: one character, every punctuation allowed, 64 characters,
     * and a reserved word inside a longer ref. */
    static const char *const good_refs[] = {
        "x", "A.b_c:d-9", "Quote", "quotes",
        "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(good_refs) / sizeof(good_refs[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
                 "\"device_protection\":true}",
                 good_refs[i]);
        post(&c, &d, body, &r);
        cr_assert_eq(r.status, 201, "ref '%s': %s%s", good_refs[i], r.head, r.body);
    }

    /* Dates are YYYY-MM-DD only. */
    static const char *const bad_dates[] = {"\"2026-4-01\"", "\"2026-04-01T00:00:00+09:00\"",
                                            "\"20260401\"", "\"2026-04-31\"", "\"\""};
    for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"subscription_ref\":\"L-1\",\"applied_on\":%s,\"device_protection\":false}",
                 bad_dates[i]);
        post(&c, &d, body, &r);
        assert_fields(&r, FIELDS("applied_on", "invalid_field"));
    }
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* Members are checked before the rules: a body both invalid and breaking a rule is 400. */
Test(validation, rules_after_members)
{
    static struct daemon d;
    static struct response r;
    struct client c;
    static const char body[] = "{\"subscription_ref\":\"R-1\",\"applied_on\":\"2026-04-01\","
                               "\"activated_on\":\"2026-04-03\",\"device_protection\":true}";
    daemon_up(&d, NULL);
    client_open(&c, d.port);

    post(&c, &d,
         "{\"subscription_ref\":\"R-0\",\"applied_on\":\"2026-04-03\","
         "\"activated_on\":\"2026-04-01\",\"device_protection\":true}",
         &r);
    response_assert_problem(&r, 422, "date_before_application");
    post(&c, &d,
         "{\"subscription_ref\":\"R-0\",\"applied_on\":\"2026-04-03\","
         "\"activated_on\":\"2026-04-01\",\"device_protection\":\"x\"}",
         &r);
    assert_fields(&r, FIELDS("device_protection", "invalid_field"));

    post(&c, &d, body, &r);
    cr_assert_eq(r.status, 201, "%s%s", r.head, r.body);
    json_t *first = response_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(first, "subscription_ref")), "R-1");
    cr_assert_str_eq(json_string_value(json_object_get(first, "option_status")), "active");
    cr_assert(json_is_true(json_object_get(first, "device_protection")), "%s", r.body);

    /* The identical retry, and the same JSON value in another member order and spacing. */
    post(&c, &d, body, &r);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    json_t *again = response_json(&r);
    cr_assert(json_equal(first, again), "the retry answered another subscription: %s", r.body);
    json_decref(again);
    post(&c, &d,
         " {\n  \"device_protection\" : true,\n  \"activated_on\":\"2026-04-03\" ,"
         "\"applied_on\":\"2026-04-01\", \"subscription_ref\":\"R-1\"}\n",
         &r);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    json_decref(first);

    /* The same ref with any other value: 409. */
    static const char *const others[] = {
        "{\"subscription_ref\":\"R-1\",\"applied_on\":\"2026-04-01\","
        "\"activated_on\":\"2026-04-03\",\"device_protection\":false}",
        "{\"subscription_ref\":\"R-1\",\"applied_on\":\"2026-04-02\","
        "\"activated_on\":\"2026-04-03\",\"device_protection\":true}",
        "{\"subscription_ref\":\"R-1\",\"applied_on\":\"2026-04-01\","
        "\"device_protection\":true}",
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        post(&c, &d, others[i], &r);
        response_assert_problem(&r, 409, "duplicate_subscription");
    }
    /* A duplicate that is also invalid is 400: members first. */
    post(&c, &d,
         "{\"subscription_ref\":\"R-1\",\"applied_on\":\"2026-04-01\","
         "\"activated_on\":\"2026-04-03\",\"device_protection\":true,\"x\":1}",
         &r);
    assert_fields(&r, FIELDS("x", "unknown_field"));

    /* activated_on may be omitted or null. */
    post(&c, &d,
         "{\"subscription_ref\":\"R-2\",\"applied_on\":\"2026-04-01\","
         "\"device_protection\":false}",
         &r);
    cr_assert_eq(r.status, 201, "%s%s", r.head, r.body);
    cr_assert(strstr(r.body, "\"activated_on\":null") != NULL, "%s", r.body);
    post(&c, &d,
         "{\"subscription_ref\":\"R-2\",\"applied_on\":\"2026-04-01\",\"activated_on\":null,"
         "\"device_protection\":false}",
         &r);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* Another tenant's refs are its own: the same ref is a new subscription there. */
Test(validation, refs_are_per_tenant)
{
    static struct daemon d;
    static struct response r;
    static char req[2048];
    char key2[DAEMON_KEY_SIZE];
    struct client c;
    static const char body[] = "{\"subscription_ref\":\"T-1\",\"applied_on\":\"2026-04-01\","
                               "\"device_protection\":true}";
    daemon_up(&d, NULL);
    daemon_key_create(&d, "t2", key2);
    client_open(&c, d.port);
    post(&c, &d, body, &r);
    cr_assert_eq(r.status, 201, "%s%s", r.head, r.body);
    request_build(req, sizeof(req), "POST", "/v1/subscriptions", key2, "application/json", NULL,
                  body);
    cr_assert_eq(client_send_str(&c, req), 0);
    client_expect(&c, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 201, "the other tenant's T-1: %s%s", r.head, r.body);
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}
