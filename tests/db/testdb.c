/*
 * Per-test databases on the test cluster: creation (empty, or cloned from a
 * migrated template), dropping, and the assertions the DB tests share.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "migrate.h"
#include "pgutil.h"
#include "testdb.h"

/* Serialises the template's creation across test processes. */
#define TEMPLATE_LOCK_KEY 4242020401

static const char *pg_host(void)
{
    const char *h = getenv("CLAIMD_TEST_PGHOST");

    if (h == NULL || h[0] == '\0')
        cr_assert_fail("CLAIMD_TEST_PGHOST is not set: run the DB tests with ctest, whose "
                       "fixture claimd_pg starts the cluster (tests/pg/pg-private)");
    return h;
}

void testdb_url(const char *name, const char *user, char out[TESTDB_URL_SIZE])
{
    snprintf(out, TESTDB_URL_SIZE, "postgresql:///%s?host=%s&user=%s", name, pg_host(), user);
}

PGconn *testdb_connect(const char *url)
{
    char err[512];
    PGconn *conn;

    if (pgutil_connect(url, &conn, err, sizeof(err)) < 0)
        cr_assert_fail("cannot connect to %s: %s", url, err);
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    return conn;
}

void testdb_ok(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    char err[512] = "";

    if (!pgutil_result_ok(r))
        pgutil_error_line(conn, r, err, sizeof(err));
    PQclear(r);
    cr_assert(err[0] == '\0', "%s\nfailed: %s", sql, err);
}

void testdb_fails(PGconn *conn, const char *sql, const char *sqlstate, const char *constraint)
{
    PGresult *r = PQexec(conn, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *cons = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    char got_state[8], got_cons[128], err[512] = "";

    snprintf(got_state, sizeof(got_state), "%s", state ? state : "none");
    snprintf(got_cons, sizeof(got_cons), "%s", cons ? cons : "none");
    if (!pgutil_result_ok(r))
        pgutil_error_line(conn, r, err, sizeof(err));
    PQclear(r);
    cr_assert_str_eq(got_state, sqlstate, "%s\nexpected SQLSTATE %s, got %s (%s)", sql, sqlstate,
                     got_state, err);
    if (constraint)
        cr_assert_str_eq(got_cons, constraint, "%s\nexpected constraint %s, got %s (%s)", sql,
                         constraint, got_cons, err);
}

void testdb_value(PGconn *conn, const char *sql, char *out, size_t outlen)
{
    PGresult *r = PQexec(conn, sql);
    char err[512] = "";
    int rows = -1;

    if (!pgutil_result_ok(r))
        pgutil_error_line(conn, r, err, sizeof(err));
    else
        rows = PQntuples(r);
    if (rows == 1 && PQnfields(r) == 1)
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    cr_assert(err[0] == '\0', "%s\nfailed: %s", sql, err);
    cr_assert_eq(rows, 1, "%s\nreturned %d rows, expected one value", sql, rows);
}

static void admin_exec(const char *sql)
{
    char url[TESTDB_URL_SIZE];
    PGconn *conn;

    testdb_url("postgres", "postgres", url);
    conn = testdb_connect(url);
    testdb_ok(conn, sql);
    PQfinish(conn);
}

static void name_db(struct testdb *db)
{
    static unsigned counter;

    snprintf(db->name, sizeof(db->name), "t_%ld_%u", (long)getpid(), counter++);
    testdb_url(db->name, "claimd_owner", db->owner_url);
    testdb_url(db->name, "claimd_app", db->app_url);
}

void testdb_create_empty(struct testdb *db)
{
    char sql[256];

    name_db(db);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER claimd_owner", db->name);
    admin_exec(sql);
}

/* claimd_tmpl_ and the first 12 hex digits of the SHA-256 of all checksums. */
static void template_name(char *out, size_t outlen)
{
    unsigned char sums[64][PGUTIL_SHA256_LEN], digest[PGUTIL_SHA256_LEN];
    char hex[PGUTIL_SHA256_HEX_SIZE];
    size_t n = migrate_builtin_count;

    cr_assert(n <= 64, "more migrations than the template name digest expects");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(migrate_checksum(&migrate_builtin[i], sums[i]), 0);
    cr_assert_eq(pgutil_sha256(sums, n * PGUTIL_SHA256_LEN, digest), 0);
    pgutil_hex(digest, sizeof(digest), hex);
    snprintf(out, outlen, "claimd_tmpl_%.12s", hex);
}

/*
 * Builds the template under its work-in-progress name and renames it only
 * once migrated, so a test that dies half-way never leaves a broken template
 * behind. Connections are then refused: a clone needs an idle template.
 */
static void build_template(PGconn *admin, const char *name)
{
    char sql[512], url[TESTDB_URL_SIZE], wip[96];
    struct migrate_result res;
    int rc;

    snprintf(wip, sizeof(wip), "%s_wip", name);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", wip);
    testdb_ok(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER claimd_owner", wip);
    testdb_ok(admin, sql);
    testdb_url(wip, "claimd_owner", url);
    rc = migrate_run(url, migrate_builtin, migrate_builtin_count, NULL, &res);
    cr_assert_eq(rc, 0, "migrating the template failed: %s", res.message);
    snprintf(sql, sizeof(sql),
             "ALTER DATABASE %s RENAME TO %s; "
             "ALTER DATABASE %s WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
             wip, name, name);
    testdb_ok(admin, sql);
}

void testdb_create_migrated(struct testdb *db)
{
    char url[TESTDB_URL_SIZE], tmpl[64], sql[512], exists[8];
    PGconn *admin;

    template_name(tmpl, sizeof(tmpl));
    testdb_url("postgres", "postgres", url);
    admin = testdb_connect(url);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%ld)", (long)TEMPLATE_LOCK_KEY);
    testdb_ok(admin, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE datname = '%s'", tmpl);
    testdb_value(admin, sql, exists, sizeof(exists));
    if (strcmp(exists, "0") == 0)
        build_template(admin, tmpl);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%ld)", (long)TEMPLATE_LOCK_KEY);
    testdb_ok(admin, sql);

    name_db(db);
    snprintf(sql, sizeof(sql),
             "DROP DATABASE IF EXISTS %s WITH (FORCE); "
             "CREATE DATABASE %s TEMPLATE %s OWNER claimd_owner",
             db->name, db->name, tmpl);
    /* DROP/CREATE DATABASE cannot run in a transaction: one statement each. */
    *strchr(sql, ';') = '\0';
    testdb_ok(admin, sql);
    testdb_ok(admin, sql + strlen(sql) + 2);
    PQfinish(admin);
}

void testdb_drop(struct testdb *db)
{
    char sql[128];

    if (db->name[0] == '\0')
        return;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    admin_exec(sql);
    db->name[0] = '\0';
}

void testdb_claim_sql(char *out, size_t outlen, int tenant, const char *ref, int subscription,
                      long long covered, long long charge)
{
    snprintf(out, outlen,
             "INSERT INTO claims (tenant_id, claim_ref, subscription_id, fingerprint, imei, "
             "incident_on, cause, remedy, repair_estimate, status, reasons, covered_amount, "
             "customer_charge, use_number, uses_remaining, window_start, window_end, loaner, "
             "policy_version, api_key_id, subscription_snapshot, device_snapshot) VALUES "
             "(%d, '%s', %d, sha256('%s'), '356938035643809', '2024-05-01', 'natural_failure', "
             "'repair', %lld, 'approved', '%s', %lld, %lld, 1, 1, '2024-04-01', '2025-03-31', "
             "'android', '2025-01', %d, '{}', '{}')",
             tenant, ref, subscription, ref, covered + charge, charge > 0 ? "{cap_exceeded}" : "{}",
             covered, charge, tenant);
}

void testdb_seed(PGconn *owner)
{
    char claim[2048];

    testdb_ok(owner,
              "INSERT INTO tenants (id, name) OVERRIDING SYSTEM VALUE VALUES (1, 'mvno-a'), "
              "(2, 'mvno-b');"
              "INSERT INTO api_keys (id, tenant_id, key_hash) OVERRIDING SYSTEM VALUE VALUES "
              "(1, 1, sha256('key-a')), (2, 2, sha256('key-b'));"
              "INSERT INTO subscriptions (tenant_id, id, subscription_ref, applied_on, "
              "activated_on, device_protection) OVERRIDING SYSTEM VALUE VALUES "
              "(1, 1, 'L-1', '2024-04-01', '2024-04-03', true), "
              "(2, 2, 'L-1', '2024-04-01', '2024-04-03', true);"
              "INSERT INTO devices (tenant_id, subscription_id, imei, os, model, release_date, "
              "purchased_from, registered_on) VALUES (1, 1, '356938035643809', 'android', "
              "'Pixel 6', '2022-01-20', 'other', '2024-04-10');"
              /* Explicit ids do not advance the identities: move them past. */
              "SELECT setval(pg_get_serial_sequence('tenants', 'id'), 100);"
              "SELECT setval(pg_get_serial_sequence('api_keys', 'id'), 100);"
              "SELECT setval(pg_get_serial_sequence('subscriptions', 'id'), 100)");
    testdb_claim_sql(claim, sizeof(claim), 1, "C-1", 1, 30000, 0);
    testdb_ok(owner, claim);
}
