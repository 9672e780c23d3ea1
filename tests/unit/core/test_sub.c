/*
 * Unit tests of core/sub.c: the verdicts of creation, activation, cancellation
 * and registration (in the contract's order), their HTTP statuses, the state
 * of a subscription on a day and monthly billing.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sub.h"

#define IMEI_A "356938035643809"
#define IMEI_B "490154203237518"

static struct policy versions[2];
static struct policy_set one_version = {versions, 1};
static struct policy_set two_versions = {versions, 2};

static date_t D(const char *s)
{
    date_t d = DATE_NONE;
    cr_assert_eq(date_parse(s, strlen(s), &d), CLAIMD_OK, "bad date %s in test", s);
    return d;
}

/* api.md's subscription L-1001: applied 2026-04-01, activated 2026-04-03. */
static struct adj_subscription sub(void)
{
    policy_default(&versions[0]);
    struct adj_subscription s = {true, D("2026-04-01"), D("2026-04-03"), DATE_NONE};
    return s;
}

static struct adj_device device(void)
{
    struct adj_device d;
    memset(&d, 0, sizeof(d));
    d.present = true;
    memcpy(d.imei, IMEI_A, IMEI_LEN);
    d.os = DEVICE_OS_ANDROID;
    strcpy(d.model, "Pixel 8");
    d.release_date = D("2023-10-12");
    d.registered_on = D("2026-04-10");
    d.purchased_from = ADJ_PURCHASED_OTHER;
    return d;
}

static const struct adj_device no_device = {.present = false};
static const struct sub_imei_facts clean = {false, false};

static enum sub_verdict reg(const struct adj_subscription *s, const struct adj_device *cur,
                            const struct adj_device *dev, const struct sub_imei_facts *facts)
{
    return sub_check_register(&one_version, s, cur, dev, facts);
}

/* ------------------------------------------------------------------------
 * Verdict names and statuses
 * ------------------------------------------------------------------------ */

/* Every code api.md gives a subscription or withdrawal refusal, with its status. */
static const struct {
    const char *code;
    int status;
} api_codes[] = {
    {"ok", 200},
    {"repeat", 200},
    {"date_before_application", 422},
    {"already_activated", 409},
    {"already_cancelled", 409},
    {"invalid_imei", 400},
    {"option_not_enrolled", 422},
    {"option_cancelled", 422},
    {"not_activated", 422},
    {"registration_before_activation", 422},
    {"registration_window_closed", 422},
    {"carrier_purchased_device", 422},
    {"device_already_registered", 409},
    {"reenrollment_forbidden", 422},
    {"imei_in_use", 409},
    {"no_policy_in_force", 422},
    {"duplicate_subscription", 409},
    {"option_only_at_application", 409},
    {"claim_denied", 409},
};

static int api_status_of(const char *code)
{
    for (size_t i = 0; i < sizeof(api_codes) / sizeof(api_codes[0]); i++) {
        if (strcmp(api_codes[i].code, code) == 0)
            return api_codes[i].status;
    }
    return -1;
}

Test(sub_verdict, every_verdict_has_its_api_status)
{
    for (int v = 0; v < SUB_VERDICT_COUNT; v++) {
        const char *name = sub_verdict_name((enum sub_verdict)v);
        int want = api_status_of(name);
        cr_assert_neq(want, -1, "verdict %d \"%s\" is not an api.md code", v, name);
        cr_assert_eq(sub_verdict_http_status((enum sub_verdict)v), want, "%s", name);
    }
    cr_assert_str_eq(sub_verdict_name(SUB_VERDICT_COUNT), "unknown");
    cr_assert_eq(sub_verdict_http_status(SUB_VERDICT_COUNT), 500);
}

Test(sub_verdict, names_of_the_rule_verdicts)
{
    static const struct {
        enum sub_verdict v;
        const char *name;
    } table[] = {
        {SUB_OK, "ok"},
        {SUB_REPEAT, "repeat"},
        {SUB_DATE_BEFORE_APPLICATION, "date_before_application"},
        {SUB_ALREADY_ACTIVATED, "already_activated"},
        {SUB_ALREADY_CANCELLED, "already_cancelled"},
        {SUB_INVALID_IMEI, "invalid_imei"},
        {SUB_OPTION_NOT_ENROLLED, "option_not_enrolled"},
        {SUB_OPTION_CANCELLED, "option_cancelled"},
        {SUB_NOT_ACTIVATED, "not_activated"},
        {SUB_REGISTRATION_BEFORE_ACTIVATION, "registration_before_activation"},
        {SUB_REGISTRATION_WINDOW_CLOSED, "registration_window_closed"},
        {SUB_CARRIER_PURCHASED_DEVICE, "carrier_purchased_device"},
        {SUB_DEVICE_ALREADY_REGISTERED, "device_already_registered"},
        {SUB_REENROLLMENT_FORBIDDEN, "reenrollment_forbidden"},
        {SUB_IMEI_IN_USE, "imei_in_use"},
        {SUB_NO_POLICY_IN_FORCE, "no_policy_in_force"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        cr_assert_str_eq(sub_verdict_name(table[i].v), table[i].name);
        cr_assert_eq(sub_verdict_http_status(table[i].v), api_status_of(table[i].name));
    }
}

Test(sub_verdict, option_status_names)
{
    cr_assert_str_eq(sub_option_status_name(SUB_OPT_NONE), "none");
    cr_assert_str_eq(sub_option_status_name(SUB_OPT_ACTIVE), "active");
    cr_assert_str_eq(sub_option_status_name(SUB_OPT_CANCELLED), "cancelled");
    cr_assert_str_eq(sub_option_status_name((enum sub_option_status)3), "unknown");
}

/* ------------------------------------------------------------------------
 * Creation, activation, cancellation
 * ------------------------------------------------------------------------ */

Test(sub_check_create, activation_not_before_application)
{
    struct adj_subscription s = sub();
    cr_assert_eq(sub_check_create(&s), SUB_OK);
    s.activated_on = s.applied_on;
    cr_assert_eq(sub_check_create(&s), SUB_OK);
    s.activated_on = DATE_NONE;
    cr_assert_eq(sub_check_create(&s), SUB_OK);
    s.activated_on = s.applied_on - 1;
    cr_assert_eq(sub_check_create(&s), SUB_DATE_BEFORE_APPLICATION);
    s.option = false;
    cr_assert_eq(sub_check_create(&s), SUB_DATE_BEFORE_APPLICATION);
}

Test(sub_check_activate, first_repeat_and_other_date)
{
    struct adj_subscription s = sub();
    s.activated_on = DATE_NONE;
    cr_assert_eq(sub_check_activate(&s, D("2026-04-01")), SUB_OK);
    cr_assert_eq(sub_check_activate(&s, D("2026-05-20")), SUB_OK);
    cr_assert_eq(sub_check_activate(&s, D("2026-03-31")), SUB_DATE_BEFORE_APPLICATION);
    s.activated_on = D("2026-04-03");
    cr_assert_eq(sub_check_activate(&s, D("2026-04-03")), SUB_REPEAT);
    cr_assert_eq(sub_check_activate(&s, D("2026-04-04")), SUB_ALREADY_ACTIVATED);
    cr_assert_eq(sub_check_activate(&s, D("2026-03-01")), SUB_ALREADY_ACTIVATED);
}

Test(sub_check_cancel, first_repeat_and_other_date)
{
    struct adj_subscription s = sub();
    cr_assert_eq(sub_check_cancel(&s, D("2026-12-01")), SUB_OK);
    cr_assert_eq(sub_check_cancel(&s, D("2026-04-01")), SUB_OK);
    cr_assert_eq(sub_check_cancel(&s, D("2026-03-31")), SUB_DATE_BEFORE_APPLICATION);
    s.cancelled_on = D("2026-12-01");
    cr_assert_eq(sub_check_cancel(&s, D("2026-12-01")), SUB_REPEAT);
    cr_assert_eq(sub_check_cancel(&s, D("2026-12-02")), SUB_ALREADY_CANCELLED);
    cr_assert_eq(sub_check_cancel(&s, D("2026-01-01")), SUB_ALREADY_CANCELLED);
}

Test(sub_check_cancel, without_option_is_refused)
{
    struct adj_subscription s = sub();
    s.option = false;
    enum sub_verdict v = sub_check_cancel(&s, D("2026-12-01"));
    cr_assert(v != SUB_OK && v != SUB_REPEAT, "verdict %s", sub_verdict_name(v));
    cr_assert_eq(v, SUB_OPTION_NOT_ENROLLED);
}

Test(sub_check_cancel, before_activation_is_allowed)
{
    struct adj_subscription s = sub();
    s.activated_on = DATE_NONE;
    cr_assert_eq(sub_check_cancel(&s, D("2026-04-02")), SUB_OK);
}

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */

Test(sub_check_register, accepted)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OK);
    d.present = false; /* ignored */
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OK);
}

/* policy.md example 7: activated 2024-04-03; 04-17 is day 14, 04-18 day 15. */
Test(sub_check_register, registration_window)
{
    struct adj_subscription s = sub();
    s.applied_on = D("2024-04-01");
    s.activated_on = D("2024-04-03");
    struct adj_device d = device();
    d.registered_on = D("2024-04-03");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OK);
    d.registered_on = D("2024-04-17");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OK);
    d.registered_on = D("2024-04-18");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_REGISTRATION_WINDOW_CLOSED);
    d.registered_on = D("2024-04-02");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_REGISTRATION_BEFORE_ACTIVATION);
}

Test(sub_check_register, window_of_version_in_force_on_registered_on)
{
    struct adj_subscription s = sub();
    versions[1] = versions[0];
    strcpy(versions[1].name, "long");
    versions[1].effective_from = D("2026-04-15");
    versions[1].registration_days = 30;
    struct adj_device d = device();
    d.registered_on = D("2026-04-20");
    cr_assert_eq(sub_check_register(&two_versions, &s, &no_device, &d, &clean), SUB_OK);
    d.registered_on = D("2026-05-03");
    cr_assert_eq(sub_check_register(&two_versions, &s, &no_device, &d, &clean), SUB_OK);
    d.registered_on = D("2026-05-04");
    cr_assert_eq(sub_check_register(&two_versions, &s, &no_device, &d, &clean),
                 SUB_REGISTRATION_WINDOW_CLOSED);
}

Test(sub_check_register, no_policy_in_force)
{
    struct adj_subscription s = {true, D("2019-01-01"), D("2019-01-02"), DATE_NONE};
    policy_default(&versions[0]);
    struct adj_device d = device();
    d.registered_on = D("2019-01-05");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_NO_POLICY_IN_FORCE);
}

Test(sub_check_register, any_recorded_cancellation)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    s.cancelled_on = d.registered_on;
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OPTION_CANCELLED);
    s.cancelled_on = D("2026-04-05");
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OPTION_CANCELLED);
    s.cancelled_on = d.registered_on + 1; /* scheduled after the registration day */
    cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OPTION_CANCELLED);
}

/*
 * Everything fails at first; fixing the refusals one by one walks api.md's
 * order: invalid_imei, option_not_enrolled, option_cancelled, not_activated,
 * registration_before_activation, registration_window_closed,
 * carrier_purchased_device, device_already_registered, reenrollment_forbidden,
 * imei_in_use.
 */
Test(sub_check_register, refusals_in_contract_order)
{
    struct adj_subscription s = {false, D("2026-04-01"), DATE_NONE, D("2026-04-02")};
    policy_default(&versions[0]);
    struct adj_device cur = device(), d = device();
    memcpy(cur.imei, IMEI_B, IMEI_LEN);
    struct sub_imei_facts facts = {true, true};
    d.imei[14] = '0';
    d.purchased_from = ADJ_PURCHASED_CARRIER;
    d.registered_on = D("2026-04-30");
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_INVALID_IMEI);
    d.imei[14] = '9';
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_OPTION_NOT_ENROLLED);
    s.option = true;
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_OPTION_CANCELLED);
    s.cancelled_on = DATE_NONE;
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_NOT_ACTIVATED);
    s.activated_on = D("2026-05-01");
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_REGISTRATION_BEFORE_ACTIVATION);
    s.activated_on = D("2026-04-15");
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_REGISTRATION_WINDOW_CLOSED);
    d.registered_on = D("2026-04-29");
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_CARRIER_PURCHASED_DEVICE);
    d.purchased_from = ADJ_PURCHASED_OTHER;
    cr_assert_eq(reg(&s, &cur, &d, &facts), SUB_DEVICE_ALREADY_REGISTERED);
    cr_assert_eq(reg(&s, &no_device, &d, &facts), SUB_REENROLLMENT_FORBIDDEN);
    facts.covered_on_cancelled_option = false;
    cr_assert_eq(reg(&s, &no_device, &d, &facts), SUB_IMEI_IN_USE);
    facts.live_elsewhere = false;
    cr_assert_eq(reg(&s, &no_device, &d, &facts), SUB_OK);
}

/* Changes field i (0-4) of a device. */
static void change_field(struct adj_device *d, int i)
{
    switch (i) {
    case 0:
        memcpy(d->imei, IMEI_B, IMEI_LEN);
        break;
    case 1:
        d->os = DEVICE_OS_IOS;
        break;
    case 2:
        strcpy(d->model, "Pixel 8a");
        break;
    case 3:
        d->release_date += 1;
        break;
    default:
        d->registered_on += 1;
        break;
    }
}

Test(sub_check_register, repeat_needs_every_field_equal)
{
    struct adj_subscription s = sub();
    struct adj_device cur = device(), d = device();
    struct sub_imei_facts live_here = {false, true}; /* the IMEI is live on this line */
    d.present = false;
    cr_assert_eq(reg(&s, &cur, &d, &live_here), SUB_REPEAT);
    for (int i = 0; i < 5; i++) {
        d = device();
        change_field(&d, i);
        cr_assert_eq(reg(&s, &no_device, &d, &clean), SUB_OK, "field %d", i);
        cr_assert_eq(reg(&s, &cur, &d, &clean), SUB_DEVICE_ALREADY_REGISTERED, "field %d", i);
    }
    /* purchased_from: a carrier device is refused earlier, so vary the current one. */
    cur.purchased_from = ADJ_PURCHASED_CARRIER;
    d = device();
    cr_assert_eq(reg(&s, &cur, &d, &clean), SUB_DEVICE_ALREADY_REGISTERED);
}

Test(sub_check_register, repeat_ignores_bytes_after_model_nul)
{
    struct adj_subscription s = sub();
    struct adj_device cur = device(), d = device();
    memset(cur.model + 8, 'x', sizeof(cur.model) - 9);
    cr_assert_eq(reg(&s, &cur, &d, &clean), SUB_REPEAT);
}

/* ------------------------------------------------------------------------
 * State on a day
 * ------------------------------------------------------------------------ */

static struct adj_history_entry hist[8];

static struct adj_history history(size_t n)
{
    struct adj_history h = {hist, n, 8};
    return h;
}

static void set_use(size_t i, const char *on, enum adj_remedy r)
{
    struct adj_history_entry e = {D(on), r, ADJ_STATUS_APPROVED, false, 100 + i};
    hist[i] = e;
}

static struct sub_state state_on(const struct adj_subscription *s, const struct adj_device *d,
                                 size_t n, const char *on)
{
    struct sub_state st;
    struct adj_history h = history(n);
    memset(&st, 0x5a, sizeof(st));
    int rc = sub_state_on(&one_version, s, d, &h, D(on), &st);
    cr_assert_eq(rc, CLAIMD_OK, "sub_state_on = %d", rc);
    return st;
}

/* api.md's GET example: one use (C-77) on 2026-11-20, asked on 2026-11-24. */
Test(sub_state_on, api_example)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    set_use(0, "2026-11-20", ADJ_REMEDY_REPAIR);
    struct sub_state st = state_on(&s, &d, 1, "2026-11-24");
    cr_assert_eq(st.option_status, SUB_OPT_ACTIVE);
    cr_assert_eq(st.policy, &versions[0]);
    cr_assert_eq(st.window.start, D("2026-04-01"));
    cr_assert_eq(st.window.end, D("2027-03-31"));
    cr_assert_eq(st.uses, 1);
    cr_assert_eq(st.uses_remaining, 1);
    cr_assert_eq(st.next_exchange_fee, 5500);
    cr_assert_eq(st.monthly_fee, 550);
    cr_assert_eq(st.free_month_count, 2);
    cr_assert_eq(st.free_months[0], D("2026-04-01"));
    cr_assert_eq(st.free_months[1], D("2026-05-01"));
    cr_assert_eq(st.fee_for_month, 550);
}

Test(sub_state_on, counts_later_incidents_and_exchanges)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    set_use(0, "2027-01-10", ADJ_REMEDY_EXCHANGE);
    hist[1] = hist[0];
    hist[1].withdrawn = true;
    struct sub_state st = state_on(&s, &d, 2, "2026-06-15");
    cr_assert_eq(st.uses, 1);
    cr_assert_eq(st.uses_remaining, 1);
    cr_assert_eq(st.next_exchange_fee, 8800);
    cr_assert_eq(st.fee_for_month, 550);
    set_use(1, "2026-04-01", ADJ_REMEDY_REPAIR);
    st = state_on(&s, &d, 2, "2026-06-15");
    cr_assert_eq(st.uses, 2);
    cr_assert_eq(st.uses_remaining, 0);
    cr_assert_eq(st.next_exchange_fee, -1);
}

Test(sub_state_on, ios_device_has_no_exchange_fee)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    d.os = DEVICE_OS_IOS;
    struct sub_state st = state_on(&s, &d, 0, "2026-05-15");
    cr_assert_eq(st.next_exchange_fee, -1);
    cr_assert_eq(st.uses_remaining, 2);
    cr_assert_eq(st.fee_for_month, 0);
    versions[0].ios_exchange = true;
    cr_assert_eq(state_on(&s, &d, 0, "2026-05-15").next_exchange_fee, 5500);
}

Test(sub_state_on, no_device_has_no_exchange_fee)
{
    struct adj_subscription s = sub();
    struct sub_state st = state_on(&s, &no_device, 0, "2026-04-05");
    cr_assert_eq(st.option_status, SUB_OPT_ACTIVE);
    cr_assert_eq(st.uses_remaining, 2);
    cr_assert_eq(st.next_exchange_fee, -1);
}

Test(sub_state_on, cancelled_from_cancelled_on)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    s.cancelled_on = D("2026-08-10");
    struct sub_state st = state_on(&s, &d, 0, "2026-08-09");
    cr_assert_eq(st.option_status, SUB_OPT_ACTIVE);
    cr_assert_eq(st.next_exchange_fee, 5500);
    st = state_on(&s, &d, 0, "2026-08-10");
    cr_assert_eq(st.option_status, SUB_OPT_CANCELLED);
    cr_assert_eq(st.next_exchange_fee, -1);
    cr_assert_eq(st.fee_for_month, 550);
    st = state_on(&s, &d, 0, "2026-09-01");
    cr_assert_eq(st.fee_for_month, 0);
}

Test(sub_state_on, without_option)
{
    struct adj_subscription s = sub();
    s.option = false;
    struct sub_state st = state_on(&s, &no_device, 0, "2026-11-24");
    cr_assert_eq(st.option_status, SUB_OPT_NONE);
    cr_assert_eq(st.monthly_fee, 0);
    cr_assert_eq(st.fee_for_month, 0);
    cr_assert_eq(st.free_month_count, 0);
    cr_assert_eq(st.next_exchange_fee, -1);
    cr_assert_eq(st.window.start, D("2026-04-01"));
    cr_assert_eq(st.window.end, D("2027-03-31"));
}

Test(sub_state_on, refusals)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    struct sub_state st;
    struct adj_history h = history(0);
    cr_assert_eq(sub_state_on(&one_version, &s, &d, &h, D("2019-12-31"), &st), CLAIMD_ENOPOLICY);
    h.len = ADJ_HISTORY_MAX + 1;
    cr_assert_eq(sub_state_on(&one_version, &s, &d, &h, D("2026-11-24"), &st), CLAIMD_ECAPACITY);
}

Test(sub_state_on, rolling_window)
{
    struct adj_subscription s = sub();
    struct adj_device d = device();
    versions[0].window = POLICY_WINDOW_ROLLING_12_MONTHS;
    set_use(0, "2026-05-01", ADJ_REMEDY_REPAIR);
    struct sub_state st = state_on(&s, &d, 1, "2027-04-30");
    cr_assert_eq(st.window.start, D("2026-05-01"));
    cr_assert_eq(st.window.end, D("2027-04-30"));
    cr_assert_eq(st.uses, 1);
    st = state_on(&s, &d, 1, "2027-05-01");
    cr_assert_eq(st.uses, 0);
}

/* ------------------------------------------------------------------------
 * Billing
 * ------------------------------------------------------------------------ */

static int64_t fee(const struct policy_set *ps, const struct adj_subscription *s, const char *m)
{
    return sub_fee_for_month(ps, s, D(m));
}

Test(sub_fee_for_month, free_months_count_from_application)
{
    struct adj_subscription s = sub();
    s.applied_on = D("2026-04-30");
    cr_assert_eq(fee(&one_version, &s, "2026-03-31"), 0);
    cr_assert_eq(fee(&one_version, &s, "2026-04-01"), 0);
    cr_assert_eq(fee(&one_version, &s, "2026-05-31"), 0);
    cr_assert_eq(fee(&one_version, &s, "2026-06-01"), 550);
    cr_assert_eq(fee(&one_version, &s, "2030-12-31"), 550);
    s.option = false;
    cr_assert_eq(fee(&one_version, &s, "2026-06-01"), 0);
}

Test(sub_fee_for_month, cancellation_month_billed_in_full)
{
    struct adj_subscription s = sub();
    s.cancelled_on = D("2026-08-01");
    cr_assert_eq(fee(&one_version, &s, "2026-08-31"), 550);
    cr_assert_eq(fee(&one_version, &s, "2026-09-01"), 0);
    s.cancelled_on = D("2026-05-20");
    cr_assert_eq(fee(&one_version, &s, "2026-05-01"), 0);
    cr_assert_eq(fee(&one_version, &s, "2026-06-01"), 0);
}

Test(sub_fee_for_month, version_on_the_month_first_day)
{
    struct adj_subscription s = sub();
    versions[1] = versions[0];
    strcpy(versions[1].name, "2026-07");
    versions[1].effective_from = D("2026-07-15");
    versions[1].monthly_fee = 770;
    versions[1].free_months = 5;
    cr_assert_eq(fee(&two_versions, &s, "2026-07-20"), 550);
    cr_assert_eq(fee(&two_versions, &s, "2026-08-01"), 0); /* month index 4 < 5 */
    cr_assert_eq(fee(&two_versions, &s, "2026-09-01"), 770);
    struct adj_subscription old = {true, D("2019-11-10"), D("2019-11-10"), DATE_NONE};
    cr_assert_eq(fee(&two_versions, &old, "2019-12-31"), 0);
    cr_assert_eq(fee(&two_versions, &old, "2020-01-01"), 550);
}
