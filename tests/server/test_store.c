/*
 * The store's operations against a real database, one test each (create ...
 * policies, auth, ready) and tenant isolation; registration refusals via DB facts.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "loopdb.h"

static struct loopdb ld;
static struct store_op op;
static struct claim_record records[STORE_HISTORY_MAX];
static struct policy loaded[POLICY_VERSIONS_MAX];

static void setup(void)
{
    loopdb_setup(&ld, &(struct loopdb_opts){.nconns = 2});
}

static void teardown(void)
{
    loopdb_teardown(&ld);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int run(void)
{
    return loopdb_store(&ld, 0, &op);
}

/* Runs one operation of kind on ref and asserts its rc and verdict. */
static void expect(enum store_kind kind, int tenant, const char *ref, int rc,
                   enum sub_verdict verdict)
{
    op.kind = kind;
    op.tenant_id = op.api_key_id = tenant;
    snprintf(op.ref, sizeof(op.ref), "%s", ref);
    int got = run();
    cr_assert_eq(got, rc, "%s: rc %s, expected %s", ref, claimd_rc_name(got), claimd_rc_name(rc));
    if (rc == 0)
        cr_assert_eq(op.verdict, verdict, "%s: verdict %s, expected %s", ref,
                     sub_verdict_name(op.verdict), sub_verdict_name(verdict));
}

static struct adj_subscription sub_of(bool option, const char *applied, const char *activated)
{
    return (struct adj_subscription){option, loopdb_date(applied), loopdb_date(activated),
                                     DATE_NONE};
}

static struct adj_device device_of(const char *imei, const char *registered)
{
    struct adj_device d = {.present = true,
                           .os = DEVICE_OS_ANDROID,
                           .release_date = loopdb_date("2023-10-12"),
                           .registered_on = loopdb_date(registered),
                           .purchased_from = ADJ_PURCHASED_OTHER};
    memcpy(d.imei, imei, IMEI_LEN);
    snprintf(d.model, sizeof(d.model), "Pixel 8");
    return d;
}

static void create(int tenant, const char *ref, struct adj_subscription s, enum sub_verdict v)
{
    loopdb_op(&op, STORE_CREATE, tenant, ref);
    op.sub = s;
    expect(STORE_CREATE, tenant, ref, 0, v);
}

static void dated(enum store_kind kind, int tenant, const char *ref, const char *day, int rc,
                  enum sub_verdict v)
{
    loopdb_op(&op, kind, tenant, ref);
    op.date = loopdb_date(day);
    expect(kind, tenant, ref, rc, v);
}

static void reg(int tenant, const char *ref, struct adj_device d, int rc, enum sub_verdict v)
{
    loopdb_op(&op, STORE_REGISTER, tenant, ref);
    op.device = d;
    expect(STORE_REGISTER, tenant, ref, rc, v);
}

static void decide(struct pipeline_req *r, const char *ref, const char *incident,
                   enum adj_remedy remedy, int64_t estimate)
{
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.ref = ref,
                                        .incident = incident,
                                        .cause = ADJ_CAUSE_PHYSICAL_DAMAGE,
                                        .damage = ADJ_DAMAGE_SCREEN,
                                        .remedy = remedy,
                                        .estimate = estimate});
    loopdb_decide(&ld, 0, r, 1);
    cr_assert_eq(r->rc, 0);
}

static void assert_date(date_t d, const char *want)
{
    char s[DATE_STR_SIZE] = "NONE";
    if (d != DATE_NONE)
        date_format(d, s);
    cr_assert_str_eq(s, want != NULL ? want : "NONE");
}

/* ------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------ */

Test(store, create)
{
    struct adj_subscription s = sub_of(true, "2026-04-01", "2026-04-03");
    create(1, "L-10", s, SUB_OK);
    cr_assert(op.created);
    struct store_view *v = &op.view;
    cr_assert_str_eq(v->subscription_ref, "L-10");
    cr_assert(v->sub.option);
    assert_date(v->sub.applied_on, "2026-04-01");
    assert_date(v->sub.activated_on, "2026-04-03");
    assert_date(v->sub.cancelled_on, NULL);
    cr_assert(!v->dev.present);
    assert_date(v->on, LOOPDB_TODAY);
    cr_assert_eq(v->state.option_status, SUB_OPT_ACTIVE);
    assert_date(v->state.window.start, "2026-04-01");
    assert_date(v->state.window.end, "2027-03-31");
    cr_assert_eq(v->state.uses_remaining, 2);
    cr_assert_eq(v->state.next_exchange_fee, -1, "no device, no exchange");
    cr_assert_eq(v->state.monthly_fee, 550);
    cr_assert_eq(v->state.fee_for_month, 550);
    cr_assert_eq(v->state.free_month_count, 2);
    assert_date(v->state.free_months[0], "2026-04-01");
    assert_date(v->state.free_months[1], "2026-05-01");
    cr_assert_eq(v->nuses, 0);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT concat_ws('|', applied_on, activated_on, "
                                     "device_protection, coalesce(cancelled_on::text, '-'), live) "
                                     "FROM subscriptions WHERE tenant_id = 1 AND "
                                     "subscription_ref = 'L-10'"),
                     "2026-04-01|2026-04-03|t|-|t");

    /* The same body again: a retry, nothing written. */
    create(1, "L-10", s, SUB_REPEAT);
    cr_assert(!op.created);
    cr_assert_str_eq(op.view.subscription_ref, "L-10");
    assert_date(op.view.sub.activated_on, "2026-04-03");

    /* Another body under the same reference. */
    create(1, "L-10", sub_of(true, "2026-04-01", "2026-04-04"), SUB_DUPLICATE_SUBSCRIPTION);
    cr_assert(!op.created);
    create(1, "L-10", sub_of(false, "2026-04-01", "2026-04-03"), SUB_DUPLICATE_SUBSCRIPTION);
    create(1, "L-10", sub_of(true, "2026-04-01", NULL), SUB_DUPLICATE_SUBSCRIPTION);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) || ' ' || max(activated_on) FROM "
                                     "subscriptions WHERE subscription_ref = 'L-10'"),
                     "1 2026-04-03");

    /* Not activated yet; its retry without activated_on is a repeat. */
    create(1, "L-11", sub_of(false, "2026-04-01", NULL), SUB_OK);
    cr_assert_eq(op.view.state.option_status, SUB_OPT_NONE);
    cr_assert_eq(op.view.state.monthly_fee, 0);
    cr_assert_eq(op.view.state.fee_for_month, 0);
    create(1, "L-11", sub_of(false, "2026-04-01", NULL), SUB_REPEAT);

    /* References are per tenant. */
    create(2, "L-10", sub_of(true, "2026-05-01", NULL), SUB_OK);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(tenant_id || ':' || applied_on, ',' "
                                     "ORDER BY tenant_id) FROM subscriptions WHERE "
                                     "subscription_ref = 'L-10'"),
                     "1:2026-04-01,2:2026-05-01");
}

Test(store, activate)
{
    loopdb_add_sub(&ld, 1, "L-11", "2026-04-01", NULL, true);
    dated(STORE_ACTIVATE, 1, "L-11", "2026-04-05", 0, SUB_OK);
    assert_date(op.view.sub.activated_on, "2026-04-05");
    cr_assert_str_eq(op.view.subscription_ref, "L-11");
    cr_assert_str_eq(
        loopdb_val(&ld, "SELECT activated_on FROM subscriptions WHERE subscription_ref = 'L-11'"),
        "2026-04-05");
    dated(STORE_ACTIVATE, 1, "L-11", "2026-04-05", 0, SUB_REPEAT);
    assert_date(op.view.sub.activated_on, "2026-04-05");
    dated(STORE_ACTIVATE, 1, "L-11", "2026-04-06", 0, SUB_ALREADY_ACTIVATED);
    cr_assert_str_eq(
        loopdb_val(&ld, "SELECT activated_on FROM subscriptions WHERE subscription_ref = 'L-11'"),
        "2026-04-05");
    /* The seed's L-1 was activated at creation: the same date is a repeat. */
    dated(STORE_ACTIVATE, 1, "L-1", "2024-04-03", 0, SUB_REPEAT);

    loopdb_add_sub(&ld, 1, "L-12", "2026-04-01", NULL, true);
    dated(STORE_ACTIVATE, 1, "L-12", "2026-03-31", 0, SUB_DATE_BEFORE_APPLICATION);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT coalesce(activated_on::text, '-') FROM "
                                     "subscriptions WHERE subscription_ref = 'L-12'"),
                     "-");
    dated(STORE_ACTIVATE, 1, "L-404", "2026-04-05", CLAIMD_ENOTFOUND, SUB_OK);
}

Test(store, cancel)
{
    dated(STORE_CANCEL, 1, "L-1", "2025-06-01", 0, SUB_OK);
    assert_date(op.view.sub.cancelled_on, "2025-06-01");
    cr_assert_eq(op.view.state.option_status, SUB_OPT_CANCELLED);
    cr_assert_eq(op.view.state.fee_for_month, 0, "months after the cancellation are free");
    cr_assert_eq(op.view.state.next_exchange_fee, -1);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT concat_ws('|', s.cancelled_on, s.live, d.live) "
                                     "FROM subscriptions s JOIN devices d ON d.tenant_id = "
                                     "s.tenant_id AND d.subscription_id = s.id WHERE s.id = 1"),
                     "2025-06-01|f|f");
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(concat_ws('|', tenant_id, imei, "
                                     "subscription_id, cancelled_on), ',') FROM cancelled_imeis"),
                     "1|356938035643809|1|2025-06-01");

    dated(STORE_CANCEL, 1, "L-1", "2025-06-01", 0, SUB_REPEAT);
    dated(STORE_CANCEL, 1, "L-1", "2025-07-01", 0, SUB_ALREADY_CANCELLED);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT cancelled_on || ' ' || (SELECT count(*) FROM "
                                     "cancelled_imeis) FROM subscriptions WHERE id = 1"),
                     "2025-06-01 1");

    /* Tenant 2's L-1: no device, so no IMEI is recorded. */
    dated(STORE_CANCEL, 2, "L-1", "2024-03-31", 0, SUB_DATE_BEFORE_APPLICATION);
    dated(STORE_CANCEL, 2, "L-1", "2024-12-01", 0, SUB_OK);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM cancelled_imeis WHERE tenant_id = 2"),
                     "0");
    /* The month of cancellation is billed in full. */
    loopdb_op(&op, STORE_STATE, 2, "L-1");
    op.date = loopdb_date("2024-12-20");
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.view.state.option_status, SUB_OPT_CANCELLED);
    cr_assert_eq(op.view.state.fee_for_month, 550);

    dated(STORE_CANCEL, 1, "L-404", "2025-06-01", CLAIMD_ENOTFOUND, SUB_OK);
}

/* Register, its repeat, and the refusals that come from other rows. */
Test(store, register_and_db_refusals)
{
    char i20[16], i21[16], i23[16];
    loopdb_imei(i20, 20);
    loopdb_imei(i21, 21);
    loopdb_imei(i23, 23);
    loopdb_add_sub(&ld, 1, "L-20", "2026-04-01", "2026-04-03", true);
    reg(1, "L-20", device_of(i20, "2026-04-10"), 0, SUB_OK);
    cr_assert(op.view.dev.present);
    cr_assert_eq(memcmp(op.view.dev.imei, i20, IMEI_LEN), 0);
    cr_assert_str_eq(op.view.dev.model, "Pixel 8");
    cr_assert_eq(op.view.dev.os, DEVICE_OS_ANDROID);
    assert_date(op.view.dev.registered_on, "2026-04-10");
    assert_date(op.view.dev.release_date, "2023-10-12");
    cr_assert_eq(op.view.state.next_exchange_fee, 5500);
    char want[256];
    snprintf(want, sizeof(want), "%s|android|Pixel 8|2023-10-12|other|2026-04-10|t", i20);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT concat_ws('|', d.imei, d.os, d.model, "
                                     "d.release_date, d.purchased_from, d.registered_on, d.live) "
                                     "FROM devices d JOIN subscriptions s ON s.id = "
                                     "d.subscription_id WHERE s.subscription_ref = 'L-20'"),
                     want);

    reg(1, "L-20", device_of(i20, "2026-04-10"), 0, SUB_REPEAT);
    reg(1, "L-20", device_of(i21, "2026-04-10"), 0, SUB_DEVICE_ALREADY_REGISTERED);
    reg(1, "L-20", device_of(i20, "2026-04-11"), 0, SUB_DEVICE_ALREADY_REGISTERED);

    /* Live on another subscription of the tenant (the seed's L-1). */
    loopdb_add_sub(&ld, 1, "L-21", "2026-04-01", "2026-04-03", true);
    reg(1, "L-21", device_of(LOOPDB_SEED_IMEI, "2026-04-10"), 0, SUB_IMEI_IN_USE);
    /* Another tenant's live device does not count. */
    reg(2, "L-1", device_of(LOOPDB_SEED_IMEI, "2024-04-10"), 0, SUB_OK);

    /* Covered on a cancelled option of the tenant: never again. */
    dated(STORE_CANCEL, 1, "L-20", "2026-06-01", 0, SUB_OK);
    reg(1, "L-21", device_of(i20, "2026-04-10"), 0, SUB_REENROLLMENT_FORBIDDEN);

    /* Both facts at once: reenrollment_forbidden comes first. */
    loopdb_add_sub(&ld, 1, "L-23", "2026-04-01", "2026-04-03", true);
    loopdb_add_device(&ld, 1, "L-23", i23, "2026-04-10");
    loopdb_sql(&ld, "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                    "activated_on, device_protection, cancelled_on) VALUES (1, 'L-24', "
                    "'2025-04-01', '2025-04-03', true, '2025-09-01')");
    loopdb_sql(&ld,
               "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, release_date, "
               "purchased_from, registered_on, live) SELECT 1, id, '%s', 'android', 'P', "
               "'2022-01-20', 'other', '2025-04-10', false FROM subscriptions WHERE "
               "subscription_ref = 'L-24'; INSERT INTO cancelled_imeis SELECT 1, '%s', id, "
               "'2025-09-01' FROM subscriptions WHERE subscription_ref = 'L-24'",
               i23, i23);
    reg(1, "L-21", device_of(i23, "2026-04-10"), 0, SUB_REENROLLMENT_FORBIDDEN);

    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM devices d JOIN subscriptions s ON "
                                     "s.id = d.subscription_id WHERE s.subscription_ref = 'L-21'"),
                     "0");
    reg(1, "L-404", device_of(i21, "2026-04-10"), CLAIMD_ENOTFOUND, SUB_OK);
    reg(1, "L-21", device_of(i21, "2026-04-10"), 0, SUB_OK);
}

/* The refusals that come from the subscription's own row, in the contract's order. */
Test(store, register_refusals_from_the_subscription)
{
    char imei[16];
    loopdb_imei(imei, 30);
    loopdb_add_sub(&ld, 1, "L-NO", "2026-04-01", "2026-04-03", false);
    loopdb_add_sub(&ld, 1, "L-NA", "2026-04-01", NULL, true);
    loopdb_add_sub(&ld, 1, "L-OK", "2026-04-01", "2026-04-03", true);
    loopdb_sql(&ld, "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                    "activated_on, device_protection, cancelled_on) VALUES (1, 'L-CX', "
                    "'2026-04-01', '2026-04-03', true, '2026-04-05')");
    reg(1, "L-NO", device_of(imei, "2026-04-10"), 0, SUB_OPTION_NOT_ENROLLED);
    reg(1, "L-CX", device_of(imei, "2026-04-10"), 0, SUB_OPTION_CANCELLED);
    reg(1, "L-NA", device_of(imei, "2026-04-10"), 0, SUB_NOT_ACTIVATED);
    reg(1, "L-OK", device_of(imei, "2026-04-02"), 0, SUB_REGISTRATION_BEFORE_ACTIVATION);
    reg(1, "L-OK", device_of(imei, "2026-04-18"), 0, SUB_REGISTRATION_WINDOW_CLOSED);
    struct adj_device carrier = device_of(imei, "2026-04-17");
    carrier.purchased_from = ADJ_PURCHASED_CARRIER;
    reg(1, "L-OK", carrier, 0, SUB_CARRIER_PURCHASED_DEVICE);
    struct adj_device bad = device_of(imei, "2026-04-17");
    bad.imei[14] = (char)(bad.imei[14] == '9' ? '0' : bad.imei[14] + 1);
    reg(1, "L-OK", bad, 0, SUB_INVALID_IMEI);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM devices"), "1");
    /* Day 14 after activation is the last allowed day (example 7). */
    reg(1, "L-OK", device_of(imei, "2026-04-17"), 0, SUB_OK);
}

Test(store, add_option)
{
    loopdb_add_sub(&ld, 1, "L-NO", "2026-04-01", "2026-04-03", false);
    loopdb_op(&op, STORE_ADD_OPTION, 1, "L-NO");
    expect(STORE_ADD_OPTION, 1, "L-NO", 0, SUB_OPTION_ONLY_AT_APPLICATION);
    expect(STORE_ADD_OPTION, 1, "L-1", 0, SUB_OPTION_ONLY_AT_APPLICATION);
    expect(STORE_ADD_OPTION, 1, "L-404", CLAIMD_ENOTFOUND, SUB_OK);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(subscription_ref || ':' || "
                                     "device_protection, ',' ORDER BY id) FROM subscriptions "
                                     "WHERE tenant_id = 1"),
                     "L-1:true,L-NO:false");
}

static void state_on(int tenant, const char *ref, const char *day)
{
    loopdb_op(&op, STORE_STATE, tenant, ref);
    op.date = loopdb_date(day);
    cr_assert_eq(run(), 0, "state of %s on %s: %s", ref, day, claimd_rc_name(op.rc));
}

Test(store, state)
{
    state_on(1, "L-1", "2024-11-24");
    struct store_view *v = &op.view;
    cr_assert_str_eq(v->subscription_ref, "L-1");
    assert_date(v->on, "2024-11-24");
    cr_assert_eq(v->state.option_status, SUB_OPT_ACTIVE);
    cr_assert_str_eq(v->state.policy->name, "2025-01");
    assert_date(v->state.window.start, "2024-04-01");
    assert_date(v->state.window.end, "2025-03-31");
    cr_assert_eq(v->state.uses, 1);
    cr_assert_eq(v->state.uses_remaining, 1);
    cr_assert_eq(v->state.next_exchange_fee, 5500);
    cr_assert_eq(v->state.monthly_fee, 550);
    cr_assert_eq(v->state.fee_for_month, 550);
    cr_assert_eq(v->state.free_month_count, 2);
    assert_date(v->state.free_months[0], "2024-04-01");
    assert_date(v->state.free_months[1], "2024-05-01");
    cr_assert_eq(v->nuses, 1);
    cr_assert_str_eq(v->uses[0], "C-1");
    cr_assert(v->dev.present);
    cr_assert_eq(memcmp(v->dev.imei, LOOPDB_SEED_IMEI, IMEI_LEN), 0);
    cr_assert_str_eq(v->dev.model, "Pixel 6");
    assert_date(v->sub.activated_on, "2024-04-03");

    state_on(1, "L-1", "2024-05-10");
    cr_assert_eq(op.view.state.fee_for_month, 0, "May 2024 is a free month");

    /* An exchange in June: on 2024-05-15 the window already holds it. */
    struct pipeline_req *r = loopdb_reqs(&ld, 1);
    decide(r, "C-2", "2024-06-01", ADJ_REMEDY_EXCHANGE, 0);
    cr_assert_eq(r->rec.status, ADJ_STATUS_APPROVED);
    state_on(1, "L-1", "2024-05-15");
    cr_assert_eq(op.view.nuses, 2);
    cr_assert_str_eq(op.view.uses[0], "C-1");
    cr_assert_str_eq(op.view.uses[1], "C-2");
    cr_assert_eq(op.view.state.uses_remaining, 0);
    cr_assert_eq(op.view.state.next_exchange_fee, -1, "window full");

    /* Without C-1 one use is left, and it would be the second exchange. */
    loopdb_op(&op, STORE_WITHDRAW, 1, "C-1");
    cr_assert_eq(run(), 0);
    state_on(1, "L-1", "2024-11-24");
    cr_assert_eq(op.view.nuses, 1);
    cr_assert_str_eq(op.view.uses[0], "C-2");
    cr_assert_eq(op.view.state.uses_remaining, 1);
    cr_assert_eq(op.view.state.next_exchange_fee, 8800);

    state_on(1, "L-1", "2025-04-01");
    assert_date(op.view.state.window.start, "2025-04-01");
    assert_date(op.view.state.window.end, "2026-03-31");
    cr_assert_eq(op.view.nuses, 0);
    cr_assert_eq(op.view.state.uses_remaining, 2);
    cr_assert_eq(op.view.state.next_exchange_fee, 5500);

    /* Tenant 2's L-1: no device yet. */
    state_on(2, "L-1", "2024-11-24");
    cr_assert(!op.view.dev.present);
    cr_assert_eq(op.view.nuses, 0);
    cr_assert_eq(op.view.state.next_exchange_fee, -1);

    loopdb_op(&op, STORE_STATE, 1, "L-1");
    op.date = loopdb_date("2019-12-31");
    cr_assert_eq(run(), CLAIMD_ENOPOLICY);
    loopdb_op(&op, STORE_STATE, 1, "L-404");
    op.date = loopdb_date("2024-11-24");
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
}

/* ------------------------------------------------------------------------
 * Claims
 * ------------------------------------------------------------------------ */

Test(store, get_claim)
{
    loopdb_op(&op, STORE_GET_CLAIM, 1, "C-1");
    cr_assert_eq(run(), 0);
    struct claim_record *c = &op.rec;
    cr_assert_eq(c->seq, 1);
    cr_assert_str_eq(c->claim_ref, "C-1");
    cr_assert_str_eq(c->subscription_ref, "L-1");
    cr_assert_eq(c->status, ADJ_STATUS_APPROVED);
    cr_assert(!c->withdrawn);
    cr_assert_eq(c->remedy, ADJ_REMEDY_REPAIR);
    cr_assert_eq(c->repair_estimate, 30000);
    cr_assert_eq(c->covered_amount, 30000);
    cr_assert_eq(c->customer_charge, 0);
    cr_assert_eq(c->reasons, 0);
    cr_assert_eq(c->use_number, 1);
    cr_assert_eq(c->uses_remaining, 1);
    assert_date(c->window.start, "2024-04-01");
    assert_date(c->window.end, "2025-03-31");
    cr_assert_eq(c->loaner, ADJ_LOANER_ANDROID);
    cr_assert_str_eq(c->policy_version, "2025-01");
    cr_assert_str_eq(
        c->decided_at,
        loopdb_val(&ld, "SELECT " RECORD_TS("decided_at") " FROM claims WHERE seq = 1"));
    cr_assert_str_eq(c->withdrawn_at, "");

    loopdb_op(&op, STORE_GET_CLAIM, 1, "C-404");
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
}

/* Withdrawal, its repeat, a denial, and worked example 8 (the freed slot). */
Test(store, withdraw)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 3);
    decide(&r[0], "C-2", "2024-06-01", ADJ_REMEDY_REPAIR, 62000);
    cr_assert_eq(r[0].rec.use_number, 2);
    decide(&r[1], "C-3", "2024-07-01", ADJ_REMEDY_EXCHANGE, 0);
    cr_assert_eq(r[1].rec.status, ADJ_STATUS_DENIED);

    loopdb_op(&op, STORE_WITHDRAW, 1, "C-2");
    expect(STORE_WITHDRAW, 1, "C-2", 0, SUB_OK);
    cr_assert(op.rec.withdrawn);
    cr_assert_eq(op.rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(op.rec.use_number, 2);
    cr_assert_eq(strlen(op.rec.withdrawn_at), 29, "withdrawn_at %s", op.rec.withdrawn_at);
    cr_assert_str_eq(op.rec.decided_at, r[0].rec.decided_at);
    char at[TIMESTAMP_MAX];
    memcpy(at, op.rec.withdrawn_at, sizeof(at));
    char want[64];
    snprintf(want, sizeof(want), "1 %s", at);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT withdrawn_by_key_id || ' ' || " RECORD_TS(
                                         "withdrawn_at") " FROM claims WHERE claim_ref = 'C-2'"),
                     want);

    expect(STORE_WITHDRAW, 1, "C-2", 0, SUB_REPEAT);
    cr_assert(op.rec.withdrawn);
    cr_assert_str_eq(op.rec.withdrawn_at, at, "a repeat changes nothing");

    expect(STORE_WITHDRAW, 1, "C-3", 0, SUB_CLAIM_DENIED);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT coalesce(withdrawn_at::text, '-') FROM claims "
                                     "WHERE claim_ref = 'C-3'"),
                     "-");
    expect(STORE_WITHDRAW, 1, "C-404", CLAIMD_ENOTFOUND, SUB_OK);

    /* Example 8: the freed slot is taken again, as use 2; C-2 keeps its number. */
    decide(&r[2], "C-4", "2024-07-01", ADJ_REMEDY_REPAIR, 10000);
    cr_assert_eq(r[2].rec.status, ADJ_STATUS_APPROVED);
    cr_assert_eq(r[2].rec.use_number, 2);
    cr_assert_eq(r[2].rec.uses_remaining, 0);
    cr_assert_eq(r[2].rec.covered_amount, 10000);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(claim_ref || ':' || coalesce(use_number, "
                                     "0) || ':' || array_to_string(counted_uses, ','), ' ' "
                                     "ORDER BY seq) FROM claims"),
                     "C-1:1: C-2:2:1 C-3:0:1,2 C-4:2:1");
}

static void history(int tenant, const char *ref, size_t limit, int64_t after)
{
    loopdb_op(&op, STORE_HISTORY, tenant, ref);
    op.limit = limit;
    op.after = after;
    op.records = records;
}

Test(store, history)
{
    struct pipeline_req *r = loopdb_reqs(&ld, 5);
    char ref[8];
    for (int i = 0; i < 5; i++) {
        snprintf(ref, sizeof(ref), "H-%d", i + 1);
        loopdb_claim(&ld, &r[i],
                     &(struct loopdb_claim){.ref = ref,
                                            .incident = "2024-08-01",
                                            .remedy = ADJ_REMEDY_REPAIR,
                                            .estimate = 1000 * (i + 1)});
    }
    /* H-1 goes alone, H-2..H-5 wait for it and go as one batch. */
    loopdb_decide(&ld, 0, r, 5);
    const char *newest_first[6] = {"H-5", "H-4", "H-3", "H-2", "H-1", "C-1"};

    int64_t after = 0;
    for (int page = 0; page < 3; page++) {
        history(1, "L-1", 2, after);
        cr_assert_eq(run(), 0);
        cr_assert_eq(op.nrecords, 2, "page %d", page);
        for (int k = 0; k < 2; k++) {
            int i = page * 2 + k;
            cr_assert_str_eq(records[k].claim_ref, newest_first[i], "page %d row %d", page, k);
            if (i < 5)
                loopdb_assert_record_eq(&records[k], &r[4 - i].rec);
        }
        cr_assert_eq(op.next_after, page < 2 ? records[1].seq : 0, "page %d", page);
        after = op.next_after;
    }
    cr_assert_eq(records[1].seq, 1);

    history(1, "L-1", STORE_HISTORY_MAX, 0);
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.nrecords, 6);
    cr_assert_eq(op.next_after, 0);
    for (int i = 1; i < 6; i++)
        cr_assert_lt(records[i].seq, records[i - 1].seq);

    history(1, "L-1", 3, r[2].rec.seq);
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.nrecords, 3);
    cr_assert_str_eq(records[0].claim_ref, "H-2");
    cr_assert_str_eq(records[2].claim_ref, "C-1");
    cr_assert_eq(op.next_after, 0);

    history(2, "L-1", 20, 0);
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.nrecords, 0);
    cr_assert_eq(op.next_after, 0);
    history(1, "L-404", 20, 0);
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
    history(1, "L-1", 0, 0);
    cr_assert_eq(run(), CLAIMD_EINVAL);
    history(1, "L-1", STORE_HISTORY_MAX + 1, 0);
    cr_assert_eq(run(), CLAIMD_EINVAL);

    int64_t cursor = 0;
    cr_assert_eq(store_parse_cursor("42", 2, &cursor), 0);
    cr_assert_eq(cursor, 42);
    cr_assert_eq(store_parse_cursor("0", 1, &cursor), CLAIMD_EINVAL);
    cr_assert_eq(store_parse_cursor("4x", 2, &cursor), CLAIMD_EINVAL);
    cr_assert_eq(store_parse_cursor("", 0, &cursor), CLAIMD_EINVAL);
}

/* ------------------------------------------------------------------------
 * Policies, keys, readiness, tenants
 * ------------------------------------------------------------------------ */

Test(store, policies)
{
    loopdb_op(&op, STORE_POLICIES, 1, NULL);
    op.policies = loaded;
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.npolicies, 1);
    struct policy want;
    policy_default(&want);
    const struct policy *p = &loaded[0];
    cr_assert_str_eq(p->name, "2025-01");
    assert_date(p->effective_from, "2020-01-01");
    cr_assert_eq(p->monthly_fee, 550);
    cr_assert_eq(p->free_months, 2);
    cr_assert_eq(p->repair_cap, 50000);
    cr_assert_eq(p->exchange_fee_count, 2);
    cr_assert_eq(p->exchange_fees[0], 5500);
    cr_assert_eq(p->exchange_fees[1], 8800);
    cr_assert_eq(p->max_uses, 2);
    cr_assert_eq(p->window, POLICY_WINDOW_CONTRACT_YEAR);
    cr_assert_eq(p->natural_failure_months, 36);
    cr_assert_eq(p->registration_days, 14);
    cr_assert(!p->ios_exchange);
    cr_assert_eq(p->loaner_os, DEVICE_OS_ANDROID);
    cr_assert_eq(memcmp(p, &want, sizeof(want)), 0, "equal to policy_default()");
}

static void key_hash(const char *key, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

Test(store, auth_and_ready)
{
    char hash[65];
    key_hash("key-b", hash);
    loopdb_op(&op, STORE_AUTH, 0, hash);
    cr_assert_eq(run(), 0);
    cr_assert(op.found);
    cr_assert_eq(op.tenant_id, 2);
    cr_assert_eq(op.api_key_id, 2);

    loopdb_sql(&ld, "UPDATE api_keys SET revoked_at = now() WHERE id = 2");
    loopdb_op(&op, STORE_AUTH, 0, hash);
    cr_assert_eq(run(), 0);
    cr_assert(!op.found);
    key_hash("key-z", hash);
    loopdb_op(&op, STORE_AUTH, 0, hash);
    cr_assert_eq(run(), 0);
    cr_assert(!op.found);

    loopdb_op(&op, STORE_READY, 0, NULL);
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.schema_version,
                 atoll(loopdb_val(&ld, "SELECT max(version) FROM schema_migrations")));
    cr_assert_eq(op.schema_version, 3);
}

/* Tenant 2 sees none of tenant 1's objects, even under references it also uses. */
Test(store, tenant_isolation)
{
    loopdb_add_sub(&ld, 1, "L-T1", "2024-04-01", "2024-04-03", true);
    loopdb_op(&op, STORE_GET_CLAIM, 2, "C-1");
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
    expect(STORE_WITHDRAW, 2, "C-1", CLAIMD_ENOTFOUND, SUB_OK);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT coalesce(withdrawn_at::text, '-') FROM claims "
                                     "WHERE claim_ref = 'C-1'"),
                     "-");
    state_on(1, "L-T1", "2024-11-24");
    loopdb_op(&op, STORE_STATE, 2, "L-T1");
    op.date = loopdb_date("2024-11-24");
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
    history(2, "L-T1", 20, 0);
    cr_assert_eq(run(), CLAIMD_ENOTFOUND);
    dated(STORE_ACTIVATE, 2, "L-T1", "2024-04-03", CLAIMD_ENOTFOUND, SUB_OK);
    dated(STORE_CANCEL, 2, "L-T1", "2024-12-01", CLAIMD_ENOTFOUND, SUB_OK);
    expect(STORE_ADD_OPTION, 2, "L-T1", CLAIMD_ENOTFOUND, SUB_OK);
    char imei[16];
    loopdb_imei(imei, 99);
    reg(2, "L-T1", device_of(imei, "2024-04-10"), CLAIMD_ENOTFOUND, SUB_OK);

    /* The same references name tenant 2's own objects. */
    state_on(2, "L-1", "2024-11-24");
    cr_assert(!op.view.dev.present);
    cr_assert_eq(op.view.nuses, 0);
    history(2, "L-1", 20, 0);
    cr_assert_eq(run(), 0);
    cr_assert_eq(op.nrecords, 0);
    struct pipeline_req *r = loopdb_reqs(&ld, 1);
    loopdb_claim(&ld, r,
                 &(struct loopdb_claim){.tenant = 2, .ref = "C-1", .incident = "2024-05-01"});
    loopdb_decide(&ld, 0, r, 1);
    cr_assert_eq(r->rc, 0);
    cr_assert(!r->replayed, "tenant 1's C-1 is not tenant 2's");
    cr_assert_eq(r->rec.reasons, 1u << ADJ_R_DEVICE_NOT_REGISTERED);
    cr_assert_str_eq(loopdb_val(&ld, "SELECT string_agg(tenant_id::text, ',' ORDER BY tenant_id) "
                                     "FROM claims WHERE claim_ref = 'C-1'"),
                     "1,2");
    cr_assert_str_eq(loopdb_val(&ld, "SELECT count(*) FROM subscriptions WHERE tenant_id = 2"),
                     "1");
}
