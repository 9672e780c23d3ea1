/*
 * The runtime role claimd_app on a migrated database: every refusal the
 * issue lists (decision columns, DELETE, key creation, DDL), and the work the
 * daemon does need (insert claims, withdraw, lock subscriptions, register,
 * cancel).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "testdb.h"

static struct testdb db;
static PGconn *app;

static void setup(void)
{
    PGconn *owner;

    testdb_create_migrated(&db);
    owner = testdb_connect(db.owner_url);
    testdb_seed(owner);
    PQfinish(owner);
    app = testdb_connect(db.app_url);
}

static void teardown(void)
{
    if (app)
        PQfinish(app);
    app = NULL;
    testdb_drop(&db);
}

TestSuite(roles, .init = setup, .fini = teardown, .timeout = 120);

#define DENIED "42501"

Test(roles, connects_as_claimd_app)
{
    char got[64];

    testdb_value(app, "SELECT current_user", got, sizeof(got));
    cr_assert_str_eq(got, "claimd_app");
}

Test(roles, decided_claim_cannot_be_changed)
{
    char got[64];

    testdb_fails(app, "UPDATE claims SET status = 'denied' WHERE claim_ref = 'C-1'", DENIED, NULL);
    testdb_fails(app, "UPDATE claims SET covered_amount = 0 WHERE claim_ref = 'C-1'", DENIED, NULL);
    testdb_fails(app, "UPDATE claims SET customer_charge = 1 WHERE claim_ref = 'C-1'", DENIED,
                 NULL);
    testdb_fails(app, "UPDATE claims SET reasons = '{}', use_number = 2", DENIED, NULL);
    testdb_fails(app, "UPDATE claims SET policy_version = '2025-01'", DENIED, NULL);
    testdb_fails(app, "UPDATE claims SET decided_at = now()", DENIED, NULL);
    testdb_value(app, "SELECT status || '/' || covered_amount FROM claims", got, sizeof(got));
    cr_assert_str_eq(got, "approved/30000");
}

Test(roles, claims_cannot_be_deleted)
{
    testdb_fails(app, "DELETE FROM claims WHERE claim_ref = 'C-1'", DENIED, NULL);
    testdb_fails(app, "TRUNCATE claims", DENIED, NULL);
}

Test(roles, api_keys_cannot_be_created_or_changed)
{
    char got[64];

    testdb_fails(app, "INSERT INTO api_keys (tenant_id, key_hash) VALUES (1, sha256('mine'))",
                 DENIED, NULL);
    testdb_fails(app, "UPDATE api_keys SET revoked_at = NULL", DENIED, NULL);
    testdb_fails(app, "DELETE FROM api_keys", DENIED, NULL);
    testdb_fails(app, "INSERT INTO tenants (name) VALUES ('rogue')", DENIED, NULL);
    testdb_fails(app, "SELECT nextval(pg_get_serial_sequence('api_keys', 'id'))", DENIED, NULL);
    /* Authentication reads a key by its hash. */
    testdb_value(app,
                 "SELECT tenant_id FROM api_keys WHERE key_hash = sha256('key-a') "
                 "AND revoked_at IS NULL",
                 got, sizeof(got));
    cr_assert_str_eq(got, "1");
}

Test(roles, no_ddl_and_no_policy_changes)
{
    testdb_fails(app, "CREATE TABLE scratch (x int)", DENIED, NULL);
    testdb_fails(app, "ALTER TABLE claims ADD COLUMN x int", DENIED, NULL);
    testdb_fails(app, "DROP TABLE claims", DENIED, NULL);
    testdb_fails(app, "CREATE INDEX ON claims (imei)", DENIED, NULL);
    testdb_fails(app, "UPDATE policy_versions SET repair_cap = 1", DENIED, NULL);
    testdb_fails(app, "INSERT INTO schema_migrations VALUES (99, 'x', sha256('x'))", DENIED, NULL);
    testdb_fails(app, "UPDATE subscriptions SET device_protection = true", DENIED, NULL);
    testdb_fails(app, "UPDATE subscriptions SET applied_on = '2020-01-01'", DENIED, NULL);
    testdb_fails(app, "DELETE FROM subscriptions", DENIED, NULL);
    testdb_fails(app, "UPDATE devices SET imei = '490154203237518'", DENIED, NULL);
}

Test(roles, decides_and_withdraws_claims)
{
    char sql[2048], got[64];

    /* A batch's decision order, then a set-based insert that skips replays. */
    testdb_value(app, "SELECT nextval(pg_get_serial_sequence('claims', 'seq')) > 0", got,
                 sizeof(got));
    cr_assert_str_eq(got, "t");
    testdb_ok(app, "BEGIN");
    testdb_ok(app, "SELECT id FROM subscriptions WHERE tenant_id = 1 AND id IN (1) "
                   "ORDER BY id FOR UPDATE");
    testdb_claim_sql(sql, sizeof(sql), 1, "C-2", 1, 50000, 12000);
    testdb_ok(app, sql);
    testdb_ok(app, "COMMIT");
    strcat(sql, " ON CONFLICT (tenant_id, claim_ref) DO NOTHING");
    testdb_ok(app, sql);
    testdb_value(app, "SELECT count(*) FROM claims", got, sizeof(got));
    cr_assert_str_eq(got, "2");

    /* The withdrawal columns are the ones it may change. */
    testdb_ok(app, "UPDATE claims SET withdrawn_at = now(), withdrawn_by_key_id = 1 "
                   "WHERE tenant_id = 1 AND claim_ref = 'C-2'");
    testdb_value(app, "SELECT count(*) FROM claims WHERE withdrawn_at IS NOT NULL", got,
                 sizeof(got));
    cr_assert_str_eq(got, "1");
}

Test(roles, manages_subscriptions_and_devices)
{
    testdb_ok(app, "INSERT INTO subscriptions (tenant_id, subscription_ref, applied_on, "
                   "device_protection) VALUES (1, 'L-2', '2024-05-01', true)");
    testdb_ok(app, "UPDATE subscriptions SET activated_on = '2024-05-02' "
                   "WHERE tenant_id = 1 AND subscription_ref = 'L-2'");
    testdb_ok(app, "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, "
                   "release_date, purchased_from, registered_on) SELECT 1, id, "
                   "'490154203237518', 'ios', 'iPhone 15', '2023-09-22', 'other', '2024-05-03' "
                   "FROM subscriptions WHERE tenant_id = 1 AND subscription_ref = 'L-2'");
    testdb_ok(app, "BEGIN;"
                   "UPDATE subscriptions SET cancelled_on = '2024-06-01' WHERE tenant_id = 1 "
                   "AND subscription_ref = 'L-2';"
                   "UPDATE devices d SET live = false FROM subscriptions s WHERE d.tenant_id = 1 "
                   "AND s.tenant_id = 1 AND s.id = d.subscription_id AND s.subscription_ref = "
                   "'L-2';"
                   "INSERT INTO cancelled_imeis (tenant_id, imei, subscription_id, cancelled_on) "
                   "SELECT 1, imei, subscription_id, '2024-06-01' FROM devices "
                   "WHERE tenant_id = 1 AND imei = '490154203237518';"
                   "COMMIT");
    testdb_fails(app, "DELETE FROM cancelled_imeis", DENIED, NULL);
}
