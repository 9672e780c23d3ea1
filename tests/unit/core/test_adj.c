/*
 * Unit tests of core/adj.c: claim validation, the refusals of adj_decide and
 * their order, decisions against policy.md, batches, history ranges, use
 * counting and the stable names.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "adj.h"

#define IMEI_A "356938035643809"
#define IMEI_B "490154203237518"
#define R(x)   (1u << ADJ_R_##x)

static struct policy versions[2];
static struct policy_set one_version = {versions, 1};

static date_t D(const char *s)
{
    date_t d = DATE_NONE;
    cr_assert_eq(date_parse(s, strlen(s), &d), CLAIMD_OK, "bad date %s in test", s);
    return d;
}

/* The worked examples' subscription: option applied 2024-04-01, Android device. */
static struct adj_facts facts(void)
{
    struct adj_facts f;
    memset(&f, 0, sizeof(f));
    policy_default(&versions[0]);
    f.policies = &one_version;
    f.sub.option = true;
    f.sub.applied_on = D("2024-04-01");
    f.sub.activated_on = D("2024-04-03");
    f.sub.cancelled_on = DATE_NONE;
    f.device.present = true;
    memcpy(f.device.imei, IMEI_A, IMEI_LEN);
    f.device.os = DEVICE_OS_ANDROID;
    strcpy(f.device.model, "Pixel 6");
    f.device.release_date = D("2022-01-20");
    f.device.registered_on = D("2024-04-10");
    f.device.purchased_from = ADJ_PURCHASED_OTHER;
    f.today = D("2026-01-01");
    return f;
}

static struct adj_claim repair(const char *on, enum adj_cause cause, int64_t estimate)
{
    struct adj_claim c;
    memset(&c, 0, sizeof(c));
    memcpy(c.imei, IMEI_A, IMEI_LEN);
    c.incident_on = D(on);
    c.cause = cause;
    c.damage = cause == ADJ_CAUSE_PHYSICAL_DAMAGE ? ADJ_DAMAGE_SCREEN : ADJ_DAMAGE_NONE;
    c.remedy = ADJ_REMEDY_REPAIR;
    c.repair_estimate = estimate;
    return c;
}

static struct adj_claim exchange(const char *on, enum adj_cause cause)
{
    struct adj_claim c = repair(on, cause, -1);
    c.remedy = ADJ_REMEDY_EXCHANGE;
    return c;
}

static struct adj_history_entry use(const char *on, enum adj_remedy r, enum adj_status s,
                                    bool withdrawn)
{
    struct adj_history_entry e = {D(on), r, s, withdrawn, 0};
    return e;
}

struct want {
    enum adj_status status;
    uint32_t reasons;
    int64_t covered, charge;
    int32_t use, remaining;
    const char *start, *end;
    enum adj_loaner loaner;
};

static void assert_decision(const struct adj_decision *d, struct want w)
{
    char a[DATE_STR_SIZE], b[DATE_STR_SIZE];
    cr_assert_eq(d->status, w.status, "status %d, want %d", d->status, w.status);
    cr_assert_eq(d->reasons, w.reasons, "reasons %#x, want %#x", d->reasons, w.reasons);
    cr_assert_eq(d->covered_amount, w.covered, "covered %lld", (long long)d->covered_amount);
    cr_assert_eq(d->customer_charge, w.charge, "charge %lld", (long long)d->customer_charge);
    cr_assert_eq(d->use_number, w.use, "use_number %d, want %d", d->use_number, w.use);
    cr_assert_eq(d->uses_remaining, w.remaining, "remaining %d", d->uses_remaining);
    date_format(d->window.start, a);
    date_format(d->window.end, b);
    cr_assert_str_eq(a, w.start);
    cr_assert_str_eq(b, w.end);
    cr_assert_eq(d->loaner, w.loaner, "loaner %d, want %d", d->loaner, w.loaner);
}

/* Decides c against entries[0..n) and expects success. */
static struct adj_decision decide(const struct adj_facts *f, struct adj_history_entry *entries,
                                  size_t n, const struct adj_claim *c)
{
    struct adj_history h = {entries, n, n};
    struct adj_decision d;
    struct claimd_error err = {NULL, NULL, NULL};
    memset(&d, 0x5a, sizeof(d));
    int rc = adj_decide(f, &h, c, &d, &err);
    cr_assert_eq(rc, CLAIMD_OK, "adj_decide = %d (%s)", rc, err.code ? err.code : "-");
    return d;
}

static void assert_refusal(int rc, const struct claimd_error *err, int want_rc, const char *field,
                           const char *code)
{
    cr_assert_eq(rc, want_rc, "rc %d, want %d", rc, want_rc);
    cr_assert_not_null(err->field);
    cr_assert_str_eq(err->field, field);
    cr_assert_str_eq(err->code, code);
    cr_assert_not_null(err->message);
}

/* ------------------------------------------------------------------------
 * adj_claim_validate
 * ------------------------------------------------------------------------ */

static void assert_claim_refused(const struct adj_claim *c, const char *field, const char *code)
{
    struct claimd_error err = {NULL, NULL, NULL};
    assert_refusal(adj_claim_validate(c, &err), &err, CLAIMD_EINVAL, field, code);
}

Test(adj_claim_validate, accepts_well_formed)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 0);
    cr_assert_eq(adj_claim_validate(&c, NULL), CLAIMD_OK);
    c.repair_estimate = ADJ_ESTIMATE_MAX;
    cr_assert_eq(adj_claim_validate(&c, NULL), CLAIMD_OK);
    for (int dmg = ADJ_DAMAGE_SCREEN; dmg <= ADJ_DAMAGE_OTHER; dmg++) {
        c = exchange("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
        c.damage = (enum adj_damage)dmg;
        cr_assert_eq(adj_claim_validate(&c, NULL), CLAIMD_OK, "damage %d", dmg);
    }
}

Test(adj_claim_validate, refuses_invalid_imei)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    memcpy(c.imei, "356938035643808", IMEI_LEN);
    assert_claim_refused(&c, "imei", "invalid_imei");
    memcpy(c.imei, "35693803564380a", IMEI_LEN);
    assert_claim_refused(&c, "imei", "invalid_imei");
}

Test(adj_claim_validate, refuses_damage_with_natural_failure)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    c.damage = ADJ_DAMAGE_WATER;
    assert_claim_refused(&c, "damage", "invalid_field");
}

Test(adj_claim_validate, refuses_bad_estimates)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, ADJ_ESTIMATE_MAX + 1);
    assert_claim_refused(&c, "repair_estimate", "invalid_field");
    c.repair_estimate = -2;
    assert_claim_refused(&c, "repair_estimate", "invalid_field");
    c = exchange("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
    c.repair_estimate = 0;
    assert_claim_refused(&c, "repair_estimate", "invalid_field");
    c.repair_estimate = 5000;
    assert_claim_refused(&c, "repair_estimate", "invalid_field");
}

/*
 * api.md: "a missing required member -> 400 missing_field", and damage is
 * required for physical_damage, repair_estimate for a repair. The structs
 * encode absence as ADJ_DAMAGE_NONE and repair_estimate -1.
 */
/* Expects (not asserts) the code, so that both members are reported. */
static void expect_missing(const struct adj_claim *c, const char *field)
{
    struct claimd_error err = {NULL, NULL, NULL};
    cr_assert_eq(adj_claim_validate(c, &err), CLAIMD_EINVAL, "%s: accepted", field);
    cr_assert_str_eq(err.field, field);
    cr_expect_str_eq(err.code, "missing_field", "%s: code %s, want missing_field", field, err.code);
}

Test(adj_claim_validate, missing_required_members_are_missing_field)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, -1);
    expect_missing(&c, "repair_estimate");
    c = repair("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE, 100);
    c.damage = ADJ_DAMAGE_NONE;
    expect_missing(&c, "damage");
}

Test(adj_claim_validate, refuses_missing_date_and_bad_enums)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    c.incident_on = DATE_NONE;
    assert_claim_refused(&c, "incident_on", "missing_field");
    c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    c.cause = (enum adj_cause)2;
    assert_claim_refused(&c, "cause", "invalid_field");
    c = repair("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE, 100);
    c.damage = (enum adj_damage)5;
    assert_claim_refused(&c, "damage", "invalid_field");
    c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    c.remedy = (enum adj_remedy)2;
    assert_claim_refused(&c, "remedy", "invalid_field");
}

/* Members are checked in the order api.md names them: imei, ..., repair_estimate. */
Test(adj_claim_validate, first_failing_member_in_contract_order)
{
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, -7);
    c.damage = ADJ_DAMAGE_SCREEN;
    memcpy(c.imei, "000000000000001", IMEI_LEN);
    assert_claim_refused(&c, "imei", "invalid_imei");
    memcpy(c.imei, IMEI_A, IMEI_LEN);
    assert_claim_refused(&c, "damage", "invalid_field");
    c.damage = ADJ_DAMAGE_NONE;
    assert_claim_refused(&c, "repair_estimate", "invalid_field");
}

/* ------------------------------------------------------------------------
 * adj_decide: refusals
 * ------------------------------------------------------------------------ */

Test(adj_decide, refusal_order_invalid_future_no_policy)
{
    struct adj_facts f = facts();
    struct adj_history h = {NULL, 0, 0};
    struct adj_decision d;
    struct claimd_error err;
    f.today = D("2019-01-01");
    /* Invalid, in the future and before every version: invalid wins. */
    struct adj_claim c = repair("2019-06-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    c.imei[0] = 'x';
    assert_refusal(adj_decide(&f, &h, &c, &d, &err), &err, CLAIMD_EINVAL, "imei", "invalid_imei");
    /* In the future and before every version: future wins. */
    c = repair("2019-06-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_refusal(adj_decide(&f, &h, &c, &d, &err), &err, CLAIMD_EFUTURE, "incident_on",
                   "incident_in_future");
    /* Before every version only. */
    c = repair("2018-12-31", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_refusal(adj_decide(&f, &h, &c, &d, &err), &err, CLAIMD_ENOPOLICY, "incident_on",
                   "no_policy_in_force");
}

Test(adj_decide, today_is_not_future)
{
    struct adj_facts f = facts();
    struct adj_history h = {NULL, 0, 0};
    struct adj_decision d;
    struct claimd_error err;
    f.today = D("2024-05-01");
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    cr_assert_eq(adj_decide(&f, &h, &c, &d, &err), CLAIMD_OK);
    c.incident_on = D("2024-05-02");
    assert_refusal(adj_decide(&f, &h, &c, &d, &err), &err, CLAIMD_EFUTURE, "incident_on",
                   "incident_in_future");
}

Test(adj_decide, history_capacity)
{
    static struct adj_history_entry many[ADJ_HISTORY_MAX + 1];
    struct adj_facts f = facts();
    for (size_t i = 0; i < ADJ_HISTORY_MAX + 1; i++)
        many[i] = use("2023-01-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_DENIED, false);
    struct adj_history h = {many, ADJ_HISTORY_MAX, ADJ_HISTORY_MAX + 1};
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    struct adj_decision d;
    struct claimd_error err = {NULL, NULL, NULL};
    cr_assert_eq(adj_decide(&f, &h, &c, &d, &err), CLAIMD_OK);
    h.len = ADJ_HISTORY_MAX + 1;
    cr_assert_eq(adj_decide(&f, &h, &c, &d, &err), CLAIMD_ECAPACITY);
    cr_assert_str_eq(err.code, "capacity_exceeded");
}

Test(adj_decide, does_not_modify_history)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[2] = {
        use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-06-01", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_DENIED, false),
    };
    struct adj_history_entry copy[2];
    memcpy(copy, e, sizeof(e));
    struct adj_claim c = repair("2024-07-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    struct adj_decision d = decide(&f, e, 2, &c);
    cr_assert_eq(d.use_number, 2);
    cr_assert_eq(memcmp(copy, e, sizeof(e)), 0);
}

/* ------------------------------------------------------------------------
 * adj_decide: policy.md's worked examples
 * ------------------------------------------------------------------------ */

#define WINDOW_1 "2024-04-01", "2025-03-31"
#define WINDOW_2 "2025-04-01", "2026-03-31"

Test(adj_decide, example_1_natural_failure_repair)
{
    struct adj_facts f = facts();
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 30000);
    struct adj_decision d = decide(&f, NULL, 0, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 30000, 0, 1, 1, WINDOW_1, ADJ_LOANER_ANDROID});
    cr_assert_eq(d.policy, &versions[0]);
}

Test(adj_decide, example_2_cap_exceeded)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, 0)};
    struct adj_claim c = repair("2024-06-01", ADJ_CAUSE_PHYSICAL_DAMAGE, 62000);
    struct adj_decision d = decide(&f, e, 1, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_APPROVED, R(CAP_EXCEEDED), 50000, 12000, 2, 0,
                                      WINDOW_1, ADJ_LOANER_ANDROID});
}

Test(adj_decide, example_3_frequency_limit)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {
        use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-06-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2024-07-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
    struct adj_decision d = decide(&f, e, 2, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_DENIED, R(FREQUENCY_LIMIT), 0, 0, 0, 0, WINDOW_1,
                                      ADJ_LOANER_NONE});
}

Test(adj_decide, example_4_natural_failure_expired)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {
        use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-06-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2025-04-01", ADJ_CAUSE_NATURAL_FAILURE);
    struct adj_decision d = decide(&f, e, 2, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_DENIED, R(NATURAL_FAILURE_EXPIRED), 0, 0, 0, 2,
                                      WINDOW_2, ADJ_LOANER_NONE});
}

Test(adj_decide, example_5_exchange_in_next_window)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {
        use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-06-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2025-04-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
    c.damage = ADJ_DAMAGE_WATER;
    struct adj_decision d = decide(&f, e, 2, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 0, 5500, 1, 1, WINDOW_2, ADJ_LOANER_NONE});
}

Test(adj_decide, example_6_ios_exchange_natural_failure_expired)
{
    struct adj_facts f = facts();
    f.device.os = DEVICE_OS_IOS;
    struct adj_claim c = exchange("2025-04-01", ADJ_CAUSE_NATURAL_FAILURE);
    struct adj_decision d = decide(&f, NULL, 0, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_DENIED,
                                      R(NATURAL_FAILURE_EXPIRED) | R(EXCHANGE_NOT_OFFERED_IOS), 0,
                                      0, 0, 2, WINDOW_2, ADJ_LOANER_NONE});
}

Test(adj_decide, example_8_withdrawal_frees_the_slot)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {
        use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-06-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, true),
    };
    struct adj_claim c = repair("2024-07-01", ADJ_CAUSE_NATURAL_FAILURE, 10000);
    struct adj_decision d = decide(&f, e, 2, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 10000, 0, 2, 0, WINDOW_1, ADJ_LOANER_ANDROID});
}

/* ------------------------------------------------------------------------
 * adj_decide: each check and its boundary
 * ------------------------------------------------------------------------ */

Test(adj_decide, device_checks_skipped_without_device)
{
    struct adj_facts f = facts();
    f.sub.option = false;
    f.sub.cancelled_on = D("2024-05-01");
    f.device.present = false;
    f.device.os = DEVICE_OS_IOS;
    struct adj_history_entry e[] = {
        use("2024-04-05", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-04-06", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE);
    memcpy(c.imei, IMEI_B, IMEI_LEN);
    struct adj_decision d = decide(&f, e, 2, &c);
    uint32_t want = R(OPTION_NOT_ENROLLED) | R(OPTION_CANCELLED) | R(DEVICE_NOT_REGISTERED) |
                    R(FREQUENCY_LIMIT);
    assert_decision(&d,
                    (struct want){ADJ_STATUS_DENIED, want, 0, 0, 0, 0, WINDOW_1, ADJ_LOANER_NONE});
}

Test(adj_decide, every_device_check_fails_together)
{
    struct adj_facts f = facts();
    f.device.os = DEVICE_OS_IOS;
    f.device.release_date = D("2020-01-01");
    f.device.registered_on = D("2024-06-01");
    struct adj_history_entry e[] = {
        use("2024-04-05", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
        use("2024-04-06", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE);
    memcpy(c.imei, IMEI_B, IMEI_LEN);
    struct adj_decision d = decide(&f, e, 2, &c);
    uint32_t want = R(IMEI_MISMATCH) | R(INCIDENT_BEFORE_COVERAGE) | R(NATURAL_FAILURE_EXPIRED) |
                    R(EXCHANGE_NOT_OFFERED_IOS) | R(FREQUENCY_LIMIT);
    assert_decision(&d,
                    (struct want){ADJ_STATUS_DENIED, want, 0, 0, 0, 0, WINDOW_1, ADJ_LOANER_NONE});
}

static uint32_t reasons_on(const struct adj_facts *f, const struct adj_claim *c)
{
    return decide(f, NULL, 0, c).reasons;
}

Test(adj_decide, cancellation_boundary)
{
    struct adj_facts f = facts();
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    f.sub.cancelled_on = D("2024-05-02");
    cr_assert_eq(reasons_on(&f, &c), 0);
    f.sub.cancelled_on = D("2024-05-01");
    cr_assert_eq(reasons_on(&f, &c), R(OPTION_CANCELLED));
    f.sub.cancelled_on = D("2024-04-20");
    cr_assert_eq(reasons_on(&f, &c), R(OPTION_CANCELLED));
}

Test(adj_decide, coverage_starts_on_registration_day)
{
    struct adj_facts f = facts();
    struct adj_claim c = repair("2024-04-10", ADJ_CAUSE_NATURAL_FAILURE, 100);
    cr_assert_eq(reasons_on(&f, &c), 0);
    c.incident_on = D("2024-04-09");
    cr_assert_eq(reasons_on(&f, &c), R(INCIDENT_BEFORE_COVERAGE));
}

Test(adj_decide, natural_failure_boundary_and_physical_without_age_limit)
{
    struct adj_facts f = facts();
    f.device.release_date = D("2021-05-31");
    /* add_months(2021-05-31, 36) = 2024-05-31: the last covered day is the 30th. */
    struct adj_claim c = repair("2024-05-30", ADJ_CAUSE_NATURAL_FAILURE, 100);
    cr_assert_eq(reasons_on(&f, &c), 0);
    c.incident_on = D("2024-05-31");
    cr_assert_eq(reasons_on(&f, &c), R(NATURAL_FAILURE_EXPIRED));
    f.device.release_date = D("2010-01-01");
    c = repair("2024-05-31", ADJ_CAUSE_PHYSICAL_DAMAGE, 100);
    cr_assert_eq(reasons_on(&f, &c), 0);
}

Test(adj_decide, ios_exchange_allowed_by_policy)
{
    struct adj_facts f = facts();
    f.device.os = DEVICE_OS_IOS;
    struct adj_claim c = exchange("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
    cr_assert_eq(reasons_on(&f, &c), R(EXCHANGE_NOT_OFFERED_IOS));
    versions[0].ios_exchange = true;
    cr_assert_eq(reasons_on(&f, &c), 0);
    c = repair("2024-05-01", ADJ_CAUSE_PHYSICAL_DAMAGE, 100);
    versions[0].ios_exchange = false;
    cr_assert_eq(reasons_on(&f, &c), 0);
}

Test(adj_decide, cap_boundary)
{
    struct adj_facts f = facts();
    struct adj_claim c = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 50000);
    struct adj_decision d = decide(&f, NULL, 0, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 50000, 0, 1, 1, WINDOW_1, ADJ_LOANER_ANDROID});
    c.repair_estimate = 50001;
    d = decide(&f, NULL, 0, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_APPROVED, R(CAP_EXCEEDED), 50000, 1, 1, 1,
                                      WINDOW_1, ADJ_LOANER_ANDROID});
    c.repair_estimate = 0;
    d = decide(&f, NULL, 0, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 0, 0, 1, 1, WINDOW_1, ADJ_LOANER_ANDROID});
}

Test(adj_decide, denial_has_no_amounts_nor_cap_exceeded)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {use("2024-05-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, 0)};
    struct adj_claim c = repair("2024-06-01", ADJ_CAUSE_PHYSICAL_DAMAGE, 62000);
    memcpy(c.imei, IMEI_B, IMEI_LEN);
    struct adj_decision d = decide(&f, e, 1, &c);
    assert_decision(&d, (struct want){ADJ_STATUS_DENIED, R(IMEI_MISMATCH), 0, 0, 0, 1, WINDOW_1,
                                      ADJ_LOANER_NONE});
}

Test(adj_decide, exchange_fee_counts_exchanges_in_window)
{
    struct adj_facts f = facts();
    struct adj_history_entry e[] = {
        use("2024-04-30", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, true),
        use("2024-03-31", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, false),
        use("2024-05-01", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_DENIED, false),
        use("2024-05-02", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),
    };
    struct adj_claim c = exchange("2024-06-01", ADJ_CAUSE_PHYSICAL_DAMAGE);
    struct adj_decision d = decide(&f, e, 4, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 0, 5500, 2, 0, WINDOW_1, ADJ_LOANER_NONE});
    e[3].remedy = ADJ_REMEDY_EXCHANGE;
    d = decide(&f, e, 4, &c);
    assert_decision(
        &d, (struct want){ADJ_STATUS_APPROVED, 0, 0, 8800, 2, 0, WINDOW_1, ADJ_LOANER_NONE});
}

Test(adj_decide, loaner_follows_policy_and_version_by_incident)
{
    struct adj_facts f = facts();
    struct policy_set two = {versions, 2};
    f.policies = &two;
    versions[1] = versions[0];
    strcpy(versions[1].name, "2025-07");
    versions[1].effective_from = D("2025-07-01");
    versions[1].loaner_os = DEVICE_OS_IOS;
    versions[1].repair_cap = 20000;
    struct adj_claim c = repair("2025-06-30", ADJ_CAUSE_PHYSICAL_DAMAGE, 30000);
    struct adj_decision d = decide(&f, NULL, 0, &c);
    cr_assert_eq(d.policy, &versions[0]);
    cr_assert_eq(d.loaner, ADJ_LOANER_ANDROID);
    cr_assert_eq(d.covered_amount, 30000);
    c.incident_on = D("2025-07-01");
    d = decide(&f, NULL, 0, &c);
    cr_assert_eq(d.policy, &versions[1]);
    assert_decision(&d, (struct want){ADJ_STATUS_APPROVED, R(CAP_EXCEEDED), 20000, 10000, 1, 1,
                                      WINDOW_2, ADJ_LOANER_IOS});
}

/* ------------------------------------------------------------------------
 * adj_decide_batch
 * ------------------------------------------------------------------------ */

static struct adj_outcome outcomes[ADJ_BATCH_MAX + 1];
static struct adj_claim claims[ADJ_BATCH_MAX + 1];
static struct adj_history_entry hist_buf[ADJ_HISTORY_MAX + 8];

/* Fills n claims and checks that a batch over them is refused untouched. */
static void assert_batch_refused(const struct adj_facts *f, struct adj_history *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        claims[i] = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    memset(outcomes, 0x77, sizeof(outcomes));
    size_t len = h->len;
    cr_assert_eq(adj_decide_batch(f, h, claims, n, outcomes), CLAIMD_ECAPACITY, "n=%zu", n);
    cr_assert_eq(h->len, len);
    const unsigned char *bytes = (const unsigned char *)outcomes;
    size_t i = 0;
    while (i < sizeof(outcomes) && bytes[i] == 0x77)
        i++;
    cr_assert_eq(i, sizeof(outcomes), "outcome byte %zu written", i);
}

Test(adj_decide_batch, capacity_refusals_decide_nothing)
{
    struct adj_facts f = facts();
    struct adj_history h = {hist_buf, 0, ADJ_HISTORY_MAX + 8};
    assert_batch_refused(&f, &h, ADJ_BATCH_MAX + 1);
    h.cap = 2;
    assert_batch_refused(&f, &h, 3);
    h.len = 1;
    assert_batch_refused(&f, &h, 2);
    h.cap = ADJ_HISTORY_MAX + 8;
    h.len = ADJ_HISTORY_MAX - 1;
    assert_batch_refused(&f, &h, 2);
}

Test(adj_decide_batch, exact_fit_and_empty_batch)
{
    struct adj_facts f = facts();
    struct adj_history h = {hist_buf, 1, 3};
    hist_buf[0] = use("2023-01-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_DENIED, false);
    claims[0] = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    claims[1] = repair("2024-05-02", ADJ_CAUSE_NATURAL_FAILURE, 100);
    cr_assert_eq(adj_decide_batch(&f, &h, claims, 0, outcomes), CLAIMD_OK);
    cr_assert_eq(h.len, 1);
    cr_assert_eq(adj_decide_batch(&f, &h, claims, 2, outcomes), CLAIMD_OK);
    cr_assert_eq(h.len, 3);
    cr_assert_eq(outcomes[1].decision.use_number, 2);
}

/* Claim 0 approved, 1 denied, 2 invalid, 3 in the future, 4 approved, 5 over the limit. */
static void mixed_batch(void)
{
    claims[0] = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 62000);
    claims[1] = repair("2024-05-02", ADJ_CAUSE_NATURAL_FAILURE, 100);
    memcpy(claims[1].imei, IMEI_B, IMEI_LEN);
    claims[2] = repair("2024-05-03", ADJ_CAUSE_NATURAL_FAILURE, 100);
    claims[2].imei[3] = 'z';
    claims[3] = repair("2027-01-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    claims[4] = exchange("2024-05-05", ADJ_CAUSE_PHYSICAL_DAMAGE);
    claims[5] = exchange("2024-05-06", ADJ_CAUSE_PHYSICAL_DAMAGE);
}

Test(adj_decide_batch, decides_in_order_and_appends_approvals)
{
    struct adj_facts f = facts();
    struct adj_history h = {hist_buf, 1, 16};
    hist_buf[0] = use("2024-04-20", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, true);
    mixed_batch();
    cr_assert_eq(adj_decide_batch(&f, &h, claims, 6, outcomes), CLAIMD_OK);
    static const int want_rc[6] = {0, 0, CLAIMD_EINVAL, CLAIMD_EFUTURE, 0, 0};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(outcomes[i].rc, want_rc[i], "claim %d rc %d", i, outcomes[i].rc);
    assert_decision(&outcomes[0].decision,
                    (struct want){ADJ_STATUS_APPROVED, R(CAP_EXCEEDED), 50000, 12000, 1, 1,
                                  WINDOW_1, ADJ_LOANER_ANDROID});
    assert_decision(&outcomes[1].decision, (struct want){ADJ_STATUS_DENIED, R(IMEI_MISMATCH), 0, 0,
                                                         0, 1, WINDOW_1, ADJ_LOANER_NONE});
    cr_assert_str_eq(outcomes[2].err.field, "imei");
    cr_assert_str_eq(outcomes[2].err.code, "invalid_imei");
    cr_assert_str_eq(outcomes[3].err.code, "incident_in_future");
    assert_decision(&outcomes[4].decision, (struct want){ADJ_STATUS_APPROVED, 0, 0, 5500, 2, 0,
                                                         WINDOW_1, ADJ_LOANER_NONE});
    assert_decision(&outcomes[5].decision, (struct want){ADJ_STATUS_DENIED, R(FREQUENCY_LIMIT), 0,
                                                         0, 0, 0, WINDOW_1, ADJ_LOANER_NONE});
}

Test(adj_decide_batch, appended_entries_carry_batch_tags)
{
    struct adj_facts f = facts();
    struct adj_history h = {hist_buf, 1, 16};
    hist_buf[0] = use("2024-04-20", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, true);
    hist_buf[0].tag = 42;
    mixed_batch();
    cr_assert_eq(adj_decide_batch(&f, &h, claims, 6, outcomes), CLAIMD_OK);
    cr_assert_eq(h.len, 3);
    cr_assert_eq(hist_buf[0].tag, 42);
    cr_assert_eq(hist_buf[1].tag, ADJ_TAG_BATCH | 0);
    cr_assert_eq(hist_buf[1].incident_on, D("2024-05-01"));
    cr_assert_eq(hist_buf[1].remedy, ADJ_REMEDY_REPAIR);
    cr_assert_eq(hist_buf[1].status, ADJ_STATUS_APPROVED);
    cr_assert_eq(hist_buf[1].withdrawn, false);
    cr_assert_eq(hist_buf[2].tag, ADJ_TAG_BATCH | 4);
    cr_assert_eq(hist_buf[2].incident_on, D("2024-05-05"));
    cr_assert_eq(hist_buf[2].remedy, ADJ_REMEDY_EXCHANGE);
    cr_assert_eq(hist_buf[2].status, ADJ_STATUS_APPROVED);
    cr_assert_eq(hist_buf[2].withdrawn, false);
}

/* ------------------------------------------------------------------------
 * adj_history_range
 * ------------------------------------------------------------------------ */

static void assert_range(const struct adj_facts *f, size_t n, const char *from, const char *to)
{
    struct window w = {0, 0};
    char a[DATE_STR_SIZE], b[DATE_STR_SIZE];
    cr_assert_eq(adj_history_range(f, claims, n, &w), CLAIMD_OK);
    date_format(w.start, a);
    date_format(w.end, b);
    cr_assert(strcmp(a, from) == 0 && strcmp(b, to) == 0, "range %s..%s, want %s..%s", a, b, from,
              to);
}

Test(adj_history_range, union_of_windows)
{
    struct adj_facts f = facts();
    claims[0] = repair("2025-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_range(&f, 1, WINDOW_2);
    claims[1] = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    claims[2] = repair("2025-01-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_range(&f, 3, "2024-04-01", "2026-03-31");
}

Test(adj_history_range, refused_claims_left_out)
{
    struct adj_facts f = facts();
    claims[0] = repair("2027-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100); /* future */
    claims[1] = repair("2019-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100); /* no policy */
    claims[2] = repair("2021-05-01", ADJ_CAUSE_NATURAL_FAILURE, -5);  /* invalid */
    claims[3] = repair("2024-05-01", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_range(&f, 4, WINDOW_1);
    struct window w = {123, 456};
    cr_assert_eq(adj_history_range(&f, claims, 3, &w), CLAIMD_ENOPOLICY);
    cr_assert_eq(adj_history_range(&f, claims, 0, &w), CLAIMD_ENOPOLICY);
}

Test(adj_history_range, rolling_windows)
{
    struct adj_facts f = facts();
    versions[0].window = POLICY_WINDOW_ROLLING_12_MONTHS;
    claims[0] = repair("2025-01-10", ADJ_CAUSE_NATURAL_FAILURE, 100);
    claims[1] = repair("2024-06-15", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_range(&f, 2, "2023-06-16", "2025-01-10");
    claims[0] = repair("2024-02-29", ADJ_CAUSE_NATURAL_FAILURE, 100);
    assert_range(&f, 1, "2023-03-01", "2024-02-29");
}

/* ------------------------------------------------------------------------
 * adj_count_uses
 * ------------------------------------------------------------------------ */

Test(adj_count_uses, skips_denied_and_withdrawn_and_is_inclusive)
{
    struct adj_history_entry e[] = {
        use("2024-03-31", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),   /* before */
        use("2024-04-01", ADJ_REMEDY_REPAIR, ADJ_STATUS_APPROVED, false),   /* first day */
        use("2025-03-31", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, false), /* last day */
        use("2025-04-01", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, false), /* after */
        use("2024-06-01", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_DENIED, false),
        use("2024-06-02", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, true),
        use("2024-06-03", ADJ_REMEDY_REPAIR, ADJ_STATUS_DENIED, true),
        use("2024-06-04", ADJ_REMEDY_EXCHANGE, ADJ_STATUS_APPROVED, false),
    };
    struct adj_history h = {e, 8, 8};
    struct window w = {D("2024-04-01"), D("2025-03-31")};
    int32_t uses = -1, exchanges = -1;
    adj_count_uses(&h, w, &uses, &exchanges);
    cr_assert_eq(uses, 3);
    cr_assert_eq(exchanges, 2);
    h.len = 0;
    adj_count_uses(&h, w, &uses, &exchanges);
    cr_assert_eq(uses, 0);
    cr_assert_eq(exchanges, 0);
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

/* policy.md's reason table, in its order, then cap_exceeded. */
static const char *const reason_table[] = {
    "option_not_enrolled",
    "option_cancelled",
    "device_not_registered",
    "imei_mismatch",
    "incident_before_coverage",
    "natural_failure_expired",
    "exchange_not_offered_ios",
    "frequency_limit",
    "cap_exceeded",
};

Test(adj_names, reasons_in_policy_table_order)
{
    cr_assert_eq(ADJ_R_COUNT, 9);
    for (int r = 0; r < ADJ_R_COUNT; r++) {
        enum adj_reason back = ADJ_R_COUNT;
        cr_assert_str_eq(adj_reason_name((enum adj_reason)r), reason_table[r]);
        cr_assert_eq(adj_reason_parse(reason_table[r], strlen(reason_table[r]), &back), 0);
        cr_assert_eq(back, (enum adj_reason)r);
    }
    cr_assert_null(adj_reason_name(ADJ_R_COUNT));
}

/* Each name parses back to its value; n values, the first may be unnamed. */
#define ROUND_TRIP(type, name_fn, parse_fn, n)                                                     \
    for (int i_ = 0; i_ < (n); i_++) {                                                             \
        const char *s_ = name_fn((type)i_);                                                        \
        if (s_ == NULL)                                                                            \
            continue;                                                                              \
        type back_ = (type)99;                                                                     \
        cr_assert_eq(parse_fn(s_, strlen(s_), &back_), CLAIMD_OK, "%s", s_);                       \
        cr_assert_eq(back_, (type)i_);                                                             \
    }

Test(adj_names, every_name)
{
    cr_assert_str_eq(adj_status_name(ADJ_STATUS_APPROVED), "approved");
    cr_assert_str_eq(adj_status_name(ADJ_STATUS_DENIED), "denied");
    cr_assert_str_eq(adj_cause_name(ADJ_CAUSE_NATURAL_FAILURE), "natural_failure");
    cr_assert_str_eq(adj_cause_name(ADJ_CAUSE_PHYSICAL_DAMAGE), "physical_damage");
    cr_assert_null(adj_damage_name(ADJ_DAMAGE_NONE));
    cr_assert_str_eq(adj_damage_name(ADJ_DAMAGE_SCREEN), "screen");
    cr_assert_str_eq(adj_damage_name(ADJ_DAMAGE_WATER), "water");
    cr_assert_str_eq(adj_damage_name(ADJ_DAMAGE_TOTAL_LOSS), "total_loss");
    cr_assert_str_eq(adj_damage_name(ADJ_DAMAGE_OTHER), "other");
    cr_assert_str_eq(adj_remedy_name(ADJ_REMEDY_REPAIR), "repair");
    cr_assert_str_eq(adj_remedy_name(ADJ_REMEDY_EXCHANGE), "exchange");
    cr_assert_null(adj_loaner_name(ADJ_LOANER_NONE));
    cr_assert_str_eq(adj_loaner_name(ADJ_LOANER_ANDROID), "android");
    cr_assert_str_eq(adj_loaner_name(ADJ_LOANER_IOS), "ios");
    cr_assert_str_eq(adj_purchase_name(ADJ_PURCHASED_OTHER), "other");
    cr_assert_str_eq(adj_purchase_name(ADJ_PURCHASED_CARRIER), "carrier");
    cr_assert_null(adj_status_name((enum adj_status)2));
    cr_assert_null(adj_damage_name((enum adj_damage)5));
    cr_assert_null(adj_loaner_name((enum adj_loaner)3));
}

Test(adj_names, parse_round_trips)
{
    ROUND_TRIP(enum adj_cause, adj_cause_name, adj_cause_parse, 2);
    ROUND_TRIP(enum adj_damage, adj_damage_name, adj_damage_parse, 5);
    ROUND_TRIP(enum adj_remedy, adj_remedy_name, adj_remedy_parse, 2);
    ROUND_TRIP(enum adj_purchase, adj_purchase_name, adj_purchase_parse, 2);
}

Test(adj_names, parse_refuses_near_misses)
{
    enum adj_damage dmg = ADJ_DAMAGE_WATER;
    enum adj_cause cause = ADJ_CAUSE_PHYSICAL_DAMAGE;
    enum adj_reason r = ADJ_R_CAP_EXCEEDED;
    cr_assert_eq(adj_damage_parse("", 0, &dmg), CLAIMD_EINVAL);
    cr_assert_eq(adj_damage_parse("Screen", 6, &dmg), CLAIMD_EINVAL);
    cr_assert_eq(adj_damage_parse("scree", 5, &dmg), CLAIMD_EINVAL);
    cr_assert_eq(adj_damage_parse("screen", 6, &dmg), CLAIMD_OK);
    cr_assert_eq(dmg, ADJ_DAMAGE_SCREEN);
    cr_assert_eq(adj_cause_parse("natural_failure_", 16, &cause), CLAIMD_EINVAL);
    cr_assert_eq(adj_cause_parse(NULL, 0, &cause), CLAIMD_EINVAL);
    cr_assert_eq(cause, ADJ_CAUSE_PHYSICAL_DAMAGE);
    cr_assert_eq(adj_reason_parse("approved", 8, &r), CLAIMD_EINVAL);
    cr_assert_eq(r, ADJ_R_CAP_EXCEEDED);
}

Test(adj_names, result_code_names)
{
    cr_assert_str_eq(claimd_rc_name(CLAIMD_OK), "ok");
    cr_assert_str_eq(claimd_rc_name(CLAIMD_EINVAL), "invalid");
    cr_assert_str_eq(claimd_rc_name(CLAIMD_ENOPOLICY), "no_policy_in_force");
    cr_assert_str_eq(claimd_rc_name(CLAIMD_EFUTURE), "incident_in_future");
    cr_assert_str_eq(claimd_rc_name(CLAIMD_ECAPACITY), "capacity_exceeded");
    cr_assert_str_eq(claimd_rc_name(-5), "unknown");
    cr_assert_eq(claimd_error_set(NULL, CLAIMD_EINVAL, "a", "b", "c"), CLAIMD_EINVAL);
}
