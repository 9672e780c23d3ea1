/*
 * Unit tests of core/policy.c: the 2025-01 defaults against policy.md, version
 * and set validation, the version in force, look-up by name and the windows.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

static date_t D(const char *s)
{
    date_t d = DATE_NONE;
    cr_assert_eq(date_parse(s, strlen(s), &d), CLAIMD_OK, "bad date %s in test", s);
    return d;
}

static void assert_window(struct window w, const char *start, const char *end)
{
    char a[DATE_STR_SIZE], b[DATE_STR_SIZE];
    date_format(w.start, a);
    date_format(w.end, b);
    cr_assert(strcmp(a, start) == 0 && strcmp(b, end) == 0, "window %s..%s, want %s..%s", a, b,
              start, end);
}

/* Validates p and checks the refusal names field with invalid_field. */
static void assert_refused(const struct policy *p, const char *field)
{
    struct claimd_error err = {NULL, NULL, NULL};
    int rc = policy_validate(p, &err);
    cr_assert_eq(rc, CLAIMD_EINVAL, "accepted; want refusal of %s", field);
    cr_assert_not_null(err.field);
    cr_assert_str_eq(err.field, field);
    cr_assert_str_eq(err.code, "invalid_field");
    cr_assert_not_null(err.message);
    cr_assert_gt(strlen(err.message), 0);
}

static void assert_valid(const struct policy *p)
{
    struct claimd_error err = {NULL, NULL, NULL};
    int rc = policy_validate(p, &err);
    cr_assert_eq(rc, CLAIMD_OK, "refused: %s %s", err.field ? err.field : "-",
                 err.message ? err.message : "-");
}

/* ------------------------------------------------------------------------
 * Defaults
 * ------------------------------------------------------------------------ */

Test(policy_default, matches_the_2025_01_table)
{
    struct policy p;
    memset(&p, 0xa5, sizeof(p));
    policy_default(&p);
    cr_assert_str_eq(p.name, "2025-01");
    cr_assert_eq(p.effective_from, D("2020-01-01"));
    cr_assert_eq(p.monthly_fee, 550);
    cr_assert_eq(p.free_months, 2);
    cr_assert_eq(p.repair_cap, 50000);
    cr_assert_eq(p.exchange_fee_count, 2);
    cr_assert_eq(p.exchange_fees[0], 5500);
    cr_assert_eq(p.exchange_fees[1], 8800);
    cr_assert_eq(p.max_uses, 2);
    cr_assert_eq(p.window, POLICY_WINDOW_CONTRACT_YEAR);
    cr_assert_eq(p.natural_failure_months, 36);
    cr_assert_eq(p.registration_days, 14);
    cr_assert_eq(p.ios_exchange, false);
    cr_assert_eq(p.loaner_os, DEVICE_OS_ANDROID);
    assert_valid(&p);
}

/* ------------------------------------------------------------------------
 * policy_validate
 * ------------------------------------------------------------------------ */

Test(policy_validate, accepts_bounds)
{
    struct policy p;
    policy_default(&p);
    p.max_uses = POLICY_MAX_USES_MAX;
    p.exchange_fee_count = POLICY_MAX_USES_MAX;
    for (int i = 0; i < POLICY_MAX_USES_MAX; i++)
        p.exchange_fees[i] = i % 2 ? 0 : POLICY_YEN_MAX;
    p.free_months = POLICY_FREE_MONTHS_MAX;
    p.natural_failure_months = POLICY_MONTHS_MAX;
    p.registration_days = POLICY_REG_DAYS_MAX;
    p.monthly_fee = POLICY_YEN_MAX;
    p.repair_cap = 0;
    p.window = POLICY_WINDOW_ROLLING_12_MONTHS;
    p.loaner_os = DEVICE_OS_IOS;
    p.ios_exchange = true;
    memset(p.name, 'a', POLICY_NAME_MAX);
    p.name[POLICY_NAME_MAX] = '\0';
    assert_valid(&p);
    p.max_uses = 1;
    p.exchange_fee_count = 1;
    p.free_months = 0;
    p.natural_failure_months = 0;
    p.registration_days = 0;
    p.monthly_fee = 0;
    strcpy(p.name, "A-z_0.9");
    assert_valid(&p);
}

Test(policy_validate, refuses_fee_count_not_max_uses)
{
    struct policy p;
    policy_default(&p);
    p.exchange_fee_count = 1;
    assert_refused(&p, "exchange_fees");
    p.exchange_fee_count = 3;
    p.exchange_fees[2] = 9900;
    assert_refused(&p, "exchange_fees");
    policy_default(&p);
    p.max_uses = 3;
    assert_refused(&p, "exchange_fees");
}

Test(policy_validate, refuses_max_uses_out_of_range)
{
    struct policy p;
    policy_default(&p);
    p.max_uses = 0;
    p.exchange_fee_count = 0;
    assert_refused(&p, "max_uses");
    p.max_uses = POLICY_MAX_USES_MAX + 1;
    p.exchange_fee_count = POLICY_MAX_USES_MAX + 1;
    assert_refused(&p, "max_uses");
    p.max_uses = -1;
    p.exchange_fee_count = -1;
    assert_refused(&p, "max_uses");
}

Test(policy_validate, refuses_bad_amounts)
{
    struct policy p;
    policy_default(&p);
    p.exchange_fees[1] = -1;
    assert_refused(&p, "exchange_fees");
    p.exchange_fees[1] = POLICY_YEN_MAX + 1;
    assert_refused(&p, "exchange_fees");
    policy_default(&p);
    p.monthly_fee = -1;
    assert_refused(&p, "monthly_fee");
    p.monthly_fee = POLICY_YEN_MAX + 1;
    assert_refused(&p, "monthly_fee");
    policy_default(&p);
    p.repair_cap = -1;
    assert_refused(&p, "repair_cap");
    p.repair_cap = POLICY_YEN_MAX + 1;
    assert_refused(&p, "repair_cap");
}

Test(policy_validate, refuses_bad_counts_of_time)
{
    struct policy p;
    policy_default(&p);
    p.free_months = POLICY_FREE_MONTHS_MAX + 1;
    assert_refused(&p, "free_months");
    p.free_months = -1;
    assert_refused(&p, "free_months");
    policy_default(&p);
    p.natural_failure_months = POLICY_MONTHS_MAX + 1;
    assert_refused(&p, "natural_failure_months");
    p.natural_failure_months = -1;
    assert_refused(&p, "natural_failure_months");
    policy_default(&p);
    p.registration_days = POLICY_REG_DAYS_MAX + 1;
    assert_refused(&p, "registration_days");
    p.registration_days = -1;
    assert_refused(&p, "registration_days");
    policy_default(&p);
    p.effective_from = DATE_NONE;
    assert_refused(&p, "effective_from");
}

Test(policy_validate, refuses_bad_enums)
{
    struct policy p;
    policy_default(&p);
    p.window = (enum policy_window)2;
    assert_refused(&p, "window");
    policy_default(&p);
    p.loaner_os = (enum device_os)2;
    assert_refused(&p, "loaner_os");
}

Test(policy_validate, refuses_bad_names)
{
    static const char *const bad[] = {"", "2025 01", "a/b", "v1!", "caf\xc3\xa9", "a\tb", "x+y"};
    struct policy p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        policy_default(&p);
        strcpy(p.name, bad[i]);
        assert_refused(&p, "name");
    }
    /* 33 name bytes and no NUL inside the array. */
    policy_default(&p);
    memset(p.name, 'a', sizeof(p.name));
    assert_refused(&p, "name");
}

Test(policy_validate, names_the_first_failing_member)
{
    struct policy p;
    policy_default(&p);
    p.name[0] = '\0';
    p.monthly_fee = -1;
    p.registration_days = 367;
    assert_refused(&p, "name");
    strcpy(p.name, "ok");
    assert_refused(&p, "monthly_fee");
}

Test(policy_validate, accepts_null_err)
{
    struct policy p;
    policy_default(&p);
    p.max_uses = 0;
    cr_assert_eq(policy_validate(&p, NULL), CLAIMD_EINVAL);
}

/* ------------------------------------------------------------------------
 * Sets
 * ------------------------------------------------------------------------ */

/* Fills v[0..n) with valid versions of distinct names and dates. */
static void fill_versions(struct policy *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        policy_default(&v[i]);
        snprintf(v[i].name, sizeof(v[i].name), "v%zu", i);
        v[i].effective_from = D("2020-01-01") + (date_t)(30 * i);
    }
}

static void assert_set_refused(const struct policy *v, size_t n, const char *field)
{
    struct policy_set s = {v, n};
    struct claimd_error err = {NULL, NULL, NULL};
    cr_assert_eq(policy_set_validate(&s, &err), CLAIMD_EINVAL, "set of %zu accepted", n);
    cr_assert_str_eq(err.field, field);
    cr_assert_str_eq(err.code, "invalid_field");
}

Test(policy_set_validate, accepts_one_to_64)
{
    struct policy v[POLICY_VERSIONS_MAX];
    fill_versions(v, POLICY_VERSIONS_MAX);
    struct policy_set s = {v, 1};
    cr_assert_eq(policy_set_validate(&s, NULL), CLAIMD_OK);
    s.n = POLICY_VERSIONS_MAX;
    cr_assert_eq(policy_set_validate(&s, NULL), CLAIMD_OK);
}

Test(policy_set_validate, refuses_empty_and_too_many)
{
    struct policy v[POLICY_VERSIONS_MAX + 1];
    fill_versions(v, POLICY_VERSIONS_MAX + 1);
    assert_set_refused(v, 0, "");
    assert_set_refused(NULL, 0, "");
    assert_set_refused(v, POLICY_VERSIONS_MAX + 1, "");
}

Test(policy_set_validate, refuses_duplicates)
{
    struct policy v[3];
    fill_versions(v, 3);
    strcpy(v[2].name, v[0].name);
    assert_set_refused(v, 3, "name");
    fill_versions(v, 3);
    v[2].effective_from = v[1].effective_from;
    assert_set_refused(v, 3, "effective_from");
}

Test(policy_set_validate, refuses_an_invalid_member)
{
    struct policy v[3];
    fill_versions(v, 3);
    v[1].repair_cap = -5;
    assert_set_refused(v, 3, "repair_cap");
}

/* ------------------------------------------------------------------------
 * policy_in_force, policy_find
 * ------------------------------------------------------------------------ */

/* Three versions, deliberately not in date order. */
static void unsorted_set(struct policy v[3])
{
    fill_versions(v, 3);
    v[0].effective_from = D("2020-01-01");
    v[1].effective_from = D("2024-04-01");
    v[2].effective_from = D("2022-01-01");
}

Test(policy_in_force, picks_latest_effective)
{
    struct policy v[3];
    unsorted_set(v);
    struct policy_set s = {v, 3};
    cr_assert_null(policy_in_force(&s, D("2019-12-31")));
    cr_assert_eq(policy_in_force(&s, D("2020-01-01")), &v[0]);
    cr_assert_eq(policy_in_force(&s, D("2021-12-31")), &v[0]);
    cr_assert_eq(policy_in_force(&s, D("2022-01-01")), &v[2]);
    cr_assert_eq(policy_in_force(&s, D("2024-03-31")), &v[2]);
    cr_assert_eq(policy_in_force(&s, D("2024-04-01")), &v[1]);
    cr_assert_eq(policy_in_force(&s, D("9999-12-31")), &v[1]);
}

Test(policy_in_force, empty_set_is_null)
{
    struct policy_set s = {NULL, 0};
    cr_assert_null(policy_in_force(&s, D("2024-01-01")));
}

Test(policy_find, by_exact_name)
{
    struct policy v[3];
    unsorted_set(v);
    struct policy_set s = {v, 3};
    cr_assert_eq(policy_find(&s, "v1", 2), &v[1]);
    cr_assert_eq(policy_find(&s, "v2XYZ", 2), &v[2]);
    cr_assert_null(policy_find(&s, "v", 1));
    cr_assert_null(policy_find(&s, "v10", 3));
    cr_assert_null(policy_find(&s, "V1", 2));
    cr_assert_null(policy_find(&s, "", 0));
}

/* ------------------------------------------------------------------------
 * Windows
 * ------------------------------------------------------------------------ */

static struct window cy(const char *applied, const char *d)
{
    struct policy p;
    policy_default(&p);
    return policy_window_of(&p, D(applied), D(d));
}

Test(policy_window_of, contract_year_first_and_last_day)
{
    assert_window(cy("2024-04-01", "2024-04-01"), "2024-04-01", "2025-03-31");
    assert_window(cy("2024-04-01", "2025-03-31"), "2024-04-01", "2025-03-31");
    assert_window(cy("2024-04-01", "2025-04-01"), "2025-04-01", "2026-03-31");
    assert_window(cy("2024-04-15", "2030-04-14"), "2029-04-15", "2030-04-14");
}

Test(policy_window_of, contract_year_before_applied_on)
{
    assert_window(cy("2024-04-01", "2024-03-31"), "2023-04-01", "2024-03-31");
    assert_window(cy("2024-04-01", "2023-04-01"), "2023-04-01", "2024-03-31");
    assert_window(cy("2024-04-01", "2023-03-31"), "2022-04-01", "2023-03-31");
    assert_window(cy("2024-04-10", "2024-04-09"), "2023-04-10", "2024-04-09");
}

Test(policy_window_of, contract_year_from_leap_day)
{
    assert_window(cy("2024-02-29", "2024-02-29"), "2024-02-29", "2025-02-27");
    assert_window(cy("2024-02-29", "2025-02-28"), "2025-02-28", "2026-02-27");
    assert_window(cy("2024-02-29", "2027-03-01"), "2027-02-28", "2028-02-28");
    assert_window(cy("2024-02-29", "2028-02-29"), "2028-02-29", "2029-02-27");
    assert_window(cy("2024-02-29", "2024-02-28"), "2023-02-28", "2024-02-28");
}

Test(policy_window_of, contract_year_from_month_end_keeps_day)
{
    assert_window(cy("2024-01-31", "2025-01-30"), "2024-01-31", "2025-01-30");
    assert_window(cy("2024-01-31", "2025-01-31"), "2025-01-31", "2026-01-30");
    assert_window(cy("2024-01-31", "2029-12-31"), "2029-01-31", "2030-01-30");
    assert_window(cy("2023-03-31", "2024-03-30"), "2023-03-31", "2024-03-30");
}

/*
 * Over three years of application days and twelve years of claim days the
 * window holds d and is [add_months(a, 12k), add_months(a, 12(k+1)) - 1].
 */
Test(policy_window_of, contract_year_property)
{
    struct policy p;
    policy_default(&p);
    for (date_t a = D("2023-01-01"); a <= D("2025-12-31"); a++) {
        for (date_t d = a - 6 * 366; d <= a + 6 * 366; d += 13) {
            struct window w = policy_window_of(&p, a, d);
            cr_assert(w.start <= d && d <= w.end, "a=%d d=%d", a, d);
            int months = date_months_between(a, w.start);
            cr_assert_eq(months % 12, 0, "a=%d d=%d", a, d);
            int k = months / 12;
            cr_assert_eq(w.start, date_add_months(a, 12 * k), "a=%d d=%d", a, d);
            cr_assert_eq(w.end + 1, date_add_months(a, 12 * (k + 1)), "a=%d d=%d", a, d);
        }
    }
}

static struct window rolling(const char *d)
{
    struct policy p;
    policy_default(&p);
    p.window = POLICY_WINDOW_ROLLING_12_MONTHS;
    return policy_window_of(&p, D("2024-04-01"), D(d));
}

Test(policy_window_of, rolling_12_months)
{
    assert_window(rolling("2025-03-31"), "2024-04-01", "2025-03-31");
    assert_window(rolling("2024-02-29"), "2023-03-01", "2024-02-29");
    assert_window(rolling("2025-02-28"), "2024-02-29", "2025-02-28");
    assert_window(rolling("2024-03-01"), "2023-03-02", "2024-03-01");
    assert_window(rolling("2024-01-01"), "2023-01-02", "2024-01-01");
    /* applied_on plays no part, even for a day before it. */
    assert_window(rolling("2020-06-15"), "2019-06-16", "2020-06-15");
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

Test(policy_names, window_round_trip)
{
    enum policy_window w = (enum policy_window)99;
    cr_assert_str_eq(policy_window_name(POLICY_WINDOW_CONTRACT_YEAR), "contract_year");
    cr_assert_str_eq(policy_window_name(POLICY_WINDOW_ROLLING_12_MONTHS), "rolling_12_months");
    cr_assert_eq(policy_window_parse("rolling_12_monthsXX", 17, &w), CLAIMD_OK);
    cr_assert_eq(w, POLICY_WINDOW_ROLLING_12_MONTHS);
    cr_assert_eq(policy_window_parse("contract_year", 13, &w), CLAIMD_OK);
    cr_assert_eq(w, POLICY_WINDOW_CONTRACT_YEAR);
    cr_assert_eq(policy_window_parse("contract_yea", 12, &w), CLAIMD_EINVAL);
    cr_assert_eq(policy_window_parse("Contract_year", 13, &w), CLAIMD_EINVAL);
    cr_assert_eq(policy_window_parse("contract_year ", 14, &w), CLAIMD_EINVAL);
    cr_assert_eq(policy_window_parse(NULL, 0, &w), CLAIMD_EINVAL);
    cr_assert_eq(w, POLICY_WINDOW_CONTRACT_YEAR);
}

Test(policy_names, device_os_round_trip)
{
    enum device_os os = (enum device_os)99;
    cr_assert_str_eq(device_os_name(DEVICE_OS_ANDROID), "android");
    cr_assert_str_eq(device_os_name(DEVICE_OS_IOS), "ios");
    cr_assert_eq(device_os_parse("ios", 3, &os), CLAIMD_OK);
    cr_assert_eq(os, DEVICE_OS_IOS);
    cr_assert_eq(device_os_parse("android", 7, &os), CLAIMD_OK);
    cr_assert_eq(os, DEVICE_OS_ANDROID);
    cr_assert_eq(device_os_parse("iOS", 3, &os), CLAIMD_EINVAL);
    cr_assert_eq(device_os_parse("", 0, &os), CLAIMD_EINVAL);
    cr_assert_eq(os, DEVICE_OS_ANDROID);
}

Test(policy_names, unknown_values)
{
    cr_assert_str_eq(policy_window_name((enum policy_window)2), "unknown");
    cr_assert_str_eq(device_os_name((enum device_os)2), "unknown");
}
