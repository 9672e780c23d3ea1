/*
 * What the schema enforces by itself, as the owner on a migrated database:
 * the seeded policy, claim_ref uniqueness per tenant, amounts, decision
 * shapes, tenancy of references and one live subscription per IMEI.
 */
#include <stdio.h>

#include <criterion/criterion.h>

#include "testdb.h"

static struct testdb db;
static PGconn *conn;

static void setup(void)
{
    testdb_create_migrated(&db);
    conn = testdb_connect(db.owner_url);
    testdb_seed(conn);
}

static void teardown(void)
{
    if (conn)
        PQfinish(conn);
    conn = NULL;
    testdb_drop(&db);
}

TestSuite(constraints, .init = setup, .fini = teardown, .timeout = 120);

Test(constraints, policy_2025_01_is_seeded_as_policy_md)
{
    char got[512];

    testdb_value(conn,
                 "SELECT concat_ws('|', name, effective_from, monthly_fee, free_months, "
                 "repair_cap, exchange_fees, max_uses, frequency_window, "
                 "natural_failure_months, registration_days, ios_exchange, loaner_os) "
                 "FROM policy_versions",
                 got, sizeof(got));
    cr_assert_str_eq(got, "2025-01|2020-01-01|550|2|50000|{5500,8800}|2|contract_year|36|14|f|"
                          "android");
}

Test(constraints, policy_exchange_fees_match_max_uses)
{
    testdb_fails(conn,
                 "INSERT INTO policy_versions (name, effective_from, monthly_fee, free_months, "
                 "repair_cap, exchange_fees, max_uses, frequency_window, natural_failure_months, "
                 "registration_days, ios_exchange, loaner_os) VALUES ('2026-01', '2026-01-01', "
                 "550, 2, 50000, '{5500}', 2, 'contract_year', 36, 14, false, 'android')",
                 "23514", "policy_versions_exchange_fees_check");
    testdb_fails(conn,
                 "INSERT INTO policy_versions (name, effective_from, monthly_fee, free_months, "
                 "repair_cap, exchange_fees, max_uses, frequency_window, natural_failure_months, "
                 "registration_days, ios_exchange, loaner_os) VALUES ('2026-01', '2026-01-01', "
                 "-1, 2, 50000, '{5500,8800}', 2, 'contract_year', 36, 14, false, 'android')",
                 "23514", "policy_versions_monthly_fee_check");
}

Test(constraints, duplicate_claim_ref_in_a_tenant_is_refused)
{
    char sql[2048];

    testdb_claim_sql(sql, sizeof(sql), 1, "C-1", 1, 1000, 0);
    testdb_fails(conn, sql, "23505", "claims_tenant_id_claim_ref_key");
}

Test(constraints, same_claim_ref_in_two_tenants_is_allowed)
{
    char sql[2048], got[16];

    testdb_claim_sql(sql, sizeof(sql), 2, "C-1", 2, 1000, 0);
    testdb_ok(conn, sql);
    testdb_value(conn, "SELECT count(*) FROM claims WHERE claim_ref = 'C-1'", got, sizeof(got));
    cr_assert_str_eq(got, "2");
}

Test(constraints, negative_amounts_are_refused)
{
    char sql[2048];

    testdb_claim_sql(sql, sizeof(sql), 1, "C-2", 1, -100, 30100);
    testdb_fails(conn, sql, "23514", "claims_covered_amount_check");
    testdb_claim_sql(sql, sizeof(sql), 1, "C-2", 1, 30100, -100);
    testdb_fails(conn, sql, "23514", "claims_customer_charge_check");
    /* (as a denial, so that no approval rule about the estimate fails first) */
    testdb_fails(conn,
                 "UPDATE claims SET status = 'denied', reasons = '{frequency_limit}', "
                 "covered_amount = 0, customer_charge = 0, use_number = NULL, loaner = NULL, "
                 "repair_estimate = -1",
                 "23514", "claims_repair_estimate_check");
}

Test(constraints, decision_shapes_are_checked)
{
    /* The same update with a known reason is a well-formed denial. */
    testdb_ok(conn, "BEGIN");
    testdb_ok(conn, "UPDATE claims SET status = 'denied', reasons = '{frequency_limit}', "
                    "covered_amount = 0, customer_charge = 0, use_number = NULL, loaner = NULL");
    testdb_ok(conn, "ROLLBACK");
    /* A denial with a use number, money or no reason. */
    testdb_fails(conn,
                 "UPDATE claims SET status = 'denied', reasons = '{frequency_limit}', "
                 "covered_amount = 0, customer_charge = 30000, loaner = NULL",
                 "23514", "claims_denied_check");
    testdb_fails(conn,
                 "UPDATE claims SET status = 'denied', reasons = '{}', covered_amount = 0, "
                 "customer_charge = 30000, use_number = NULL, loaner = NULL",
                 "23514", "claims_denied_check");
    /* Unknown reason, status and enum values. */
    testdb_fails(conn,
                 "UPDATE claims SET status = 'denied', reasons = '{frequency_limit,lost_in_mail}', "
                 "covered_amount = 0, customer_charge = 0, use_number = NULL, loaner = NULL",
                 "23514", "claims_reasons_check");
    testdb_fails(conn, "UPDATE claims SET status = 'pending'", "23514", "claims_status_check");
    testdb_fails(conn, "UPDATE claims SET loaner = 'windows'", "23514", "claims_loaner_check");
    /* An approved repair whose amounts do not add up to the estimate. */
    testdb_fails(conn, "UPDATE claims SET covered_amount = 1", "23514",
                 "claims_approved_repair_check");
    /* cap_exceeded without an excess. */
    testdb_fails(conn, "UPDATE claims SET reasons = '{cap_exceeded}'", "23514",
                 "claims_approved_repair_check");
    /* Damage only for physical damage; an incident outside its window. */
    testdb_fails(conn, "UPDATE claims SET damage = 'screen'", "23514", "claims_damage_cause_check");
    testdb_fails(conn, "UPDATE claims SET incident_on = '2025-04-01'", "23514",
                 "claims_window_check");
    testdb_fails(conn, "UPDATE claims SET fingerprint = '\\x00'", "23514",
                 "claims_fingerprint_check");
}

Test(constraints, only_an_approved_claim_is_withdrawn)
{
    testdb_ok(conn, "UPDATE claims SET withdrawn_at = now(), withdrawn_by_key_id = 1 "
                    "WHERE claim_ref = 'C-1'");
    testdb_fails(conn,
                 "UPDATE claims SET status = 'denied', reasons = '{frequency_limit}', "
                 "covered_amount = 0, customer_charge = 0, use_number = NULL, loaner = NULL",
                 "23514", "claims_denied_check");
    testdb_fails(conn, "UPDATE claims SET withdrawn_by_key_id = NULL", "23514",
                 "claims_withdrawal_check");
}

Test(constraints, references_never_cross_tenants)
{
    char sql[2048];

    /* Tenant 2's claim on tenant 1's subscription, or with tenant 1's key. */
    testdb_claim_sql(sql, sizeof(sql), 2, "C-9", 1, 1000, 0);
    testdb_fails(conn, sql, "23503", "claims_tenant_id_subscription_id_fkey");
    testdb_fails(conn, "UPDATE claims SET api_key_id = 2 WHERE claim_ref = 'C-1'", "23503",
                 "claims_tenant_id_api_key_id_fkey");
    testdb_fails(conn,
                 "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, "
                 "release_date, purchased_from, registered_on) VALUES (2, 1, '490154203237518', "
                 "'ios', 'iPhone 15', '2023-09-22', 'other', '2024-04-10')",
                 "23503", "devices_tenant_id_subscription_id_live_fkey");
}

Test(constraints, unique_refs_per_tenant)
{
    testdb_fails(conn,
                 "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                 "device_protection) VALUES (1, 'L-1', '2024-05-01', false)",
                 "23505", "subscriptions_tenant_id_subscription_ref_key");
    testdb_fails(conn, "INSERT INTO tenants (name) VALUES ('mvno-a')", "23505", "tenants_name_key");
    testdb_fails(conn,
                 "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                 "activated_on, device_protection) VALUES (1, 'L-7', '2024-05-01', "
                 "'2024-04-30', true)",
                 "23514", "subscriptions_activated_on_check");
}

Test(constraints, one_live_subscription_per_imei)
{
    testdb_ok(conn, "INSERT INTO subscriptions (tenant_id, id, subscription_ref, applied_on, "
                    "activated_on, device_protection) OVERRIDING SYSTEM VALUE VALUES "
                    "(1, 3, 'L-3', '2024-05-01', '2024-05-02', true)");
    testdb_fails(conn,
                 "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, "
                 "release_date, purchased_from, registered_on) VALUES (1, 3, '356938035643809', "
                 "'android', 'Pixel 6', '2022-01-20', 'other', '2024-05-03')",
                 "23505", "devices_live_imei_key");

    /* Cancelling the option without clearing the device's live flag fails at commit. */
    testdb_fails(conn, "UPDATE subscriptions SET cancelled_on = '2024-06-01' WHERE id = 1", "23503",
                 "devices_tenant_id_subscription_id_live_fkey");

    /* The whole cancellation: the IMEI is no longer live anywhere. */
    testdb_ok(conn, "BEGIN;"
                    "UPDATE subscriptions SET cancelled_on = '2024-06-01' WHERE id = 1;"
                    "UPDATE devices SET live = false WHERE tenant_id = 1 AND subscription_id = 1;"
                    "INSERT INTO cancelled_imeis (tenant_id, imei, subscription_id, cancelled_on) "
                    "VALUES (1, '356938035643809', 1, '2024-06-01');"
                    "COMMIT");
    testdb_fails(conn,
                 "INSERT INTO cancelled_imeis (tenant_id, imei, subscription_id, "
                 "cancelled_on) VALUES (1, '356938035643809', 1, '2024-07-01')",
                 "23505", "cancelled_imeis_pkey");
    /* A device that was never on the subscription is not a cancelled IMEI of it. */
    testdb_fails(conn,
                 "INSERT INTO cancelled_imeis (tenant_id, imei, subscription_id, "
                 "cancelled_on) VALUES (1, '490154203237518', 1, '2024-06-01')",
                 "23503", "cancelled_imeis_tenant_id_subscription_id_imei_fkey");
    /* Another tenant may cover the same IMEI. */
    testdb_ok(conn, "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, "
                    "release_date, purchased_from, registered_on) VALUES (2, 2, "
                    "'356938035643809', 'android', 'Pixel 6', '2022-01-20', 'other', "
                    "'2024-04-10')");
}

Test(constraints, option_is_chosen_at_application)
{
    testdb_ok(conn, "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                    "device_protection) VALUES (1, 'L-5', '2024-05-01', false)");
    testdb_fails(conn,
                 "UPDATE subscriptions SET cancelled_on = '2024-06-01' "
                 "WHERE subscription_ref = 'L-5'",
                 "23514", "subscriptions_option_check");
}
