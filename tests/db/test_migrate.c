/*
 * migrate_run against a real PostgreSQL: a fresh database, a re-run, a
 * changed checksum, a newer database, concurrent runs, a failing migration,
 * and a run as the wrong role.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "migrate.h"
#include "testdb.h"

static struct testdb db;

static void setup(void)
{
    testdb_create_empty(&db);
}

static void teardown(void)
{
    testdb_drop(&db);
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 120);

static int run_builtin(struct migrate_result *res)
{
    return migrate_run(db.owner_url, migrate_builtin, migrate_builtin_count, NULL, res);
}

static void value(const char *url, const char *sql, char *out, size_t outlen)
{
    PGconn *c = testdb_connect(url);

    testdb_value(c, sql, out, outlen);
    PQfinish(c);
}

Test(migrate, fresh_database_gets_every_migration)
{
    struct migrate_result res;
    char got[256];
    PGconn *app;

    cr_assert(migrate_builtin_count >= 3);
    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    cr_assert_eq(res.applied, (int)migrate_builtin_count);
    cr_assert_eq(res.version, (int)migrate_builtin_count);

    value(db.owner_url,
          "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
          "FROM schema_migrations",
          got, sizeof(got));
    cr_assert_str_eq(got, "1:0001_schema.sql,2:0002_policy_2025_01.sql,3:0003_runtime_role.sql");

    /* Each recorded checksum is the SHA-256 of the file compiled in. */
    for (size_t i = 0; i < migrate_builtin_count; i++) {
        unsigned char sum[32];
        char hex[65], sql[128];

        cr_assert_eq(migrate_checksum(&migrate_builtin[i], sum), 0);
        for (int j = 0; j < 32; j++)
            snprintf(hex + 2 * j, 3, "%02x", sum[j]);
        snprintf(sql, sizeof(sql),
                 "SELECT encode(checksum, 'hex') FROM schema_migrations WHERE version = %zu",
                 i + 1);
        value(db.owner_url, sql, got, sizeof(got));
        cr_assert_str_eq(got, hex);
    }

    value(db.owner_url,
          "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
          "WHERE schemaname = 'public'",
          got, sizeof(got));
    cr_assert_str_eq(got, "api_keys,cancelled_imeis,claims,devices,policy_versions,"
                          "schema_migrations,subscriptions,tenants");

    /* The runtime role reads the policy but may not create even a temporary table. */
    value(db.app_url, "SELECT name FROM policy_versions", got, sizeof(got));
    cr_assert_str_eq(got, "2025-01");
    app = testdb_connect(db.app_url);
    testdb_fails(app, "CREATE TEMP TABLE scratch (x int)", "42501", NULL);
    testdb_fails(app, "CREATE TABLE scratch (x int)", "42501", NULL);
    PQfinish(app);
}

Test(migrate, rerun_is_a_no_op)
{
    struct migrate_result res;
    char before[128], after[128];
    const char *q = "SELECT count(*) || '/' || max(applied_at) FROM schema_migrations";

    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    value(db.owner_url, q, before, sizeof(before));
    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    cr_assert_eq(res.applied, 0);
    cr_assert_eq(res.version, (int)migrate_builtin_count);
    value(db.owner_url, q, after, sizeof(after));
    cr_assert_str_eq(after, before);
}

Test(migrate, changed_checksum_is_refused)
{
    struct migrate_result res;
    PGconn *c;

    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    c = testdb_connect(db.owner_url);
    testdb_ok(c, "UPDATE schema_migrations SET checksum = sha256('tampered') WHERE version = 1");
    PQfinish(c);
    cr_assert_eq(run_builtin(&res), MIGRATE_ECHANGED, "%s", res.message);
    cr_assert(strstr(res.message, "migration 0001_schema.sql was changed after it was applied"),
              "%s", res.message);
    cr_assert_eq(res.applied, 0);
}

Test(migrate, changed_file_in_the_binary_is_refused)
{
    struct migration set[3];
    static const unsigned char edited[] = "CREATE TABLE x (a int);";
    struct migrate_result res;

    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    memcpy(set, migrate_builtin, sizeof(set));
    set[1].sql = edited;
    set[1].len = sizeof(edited) - 1;
    cr_assert_eq(migrate_run(db.owner_url, set, 3, NULL, &res), MIGRATE_ECHANGED);
    cr_assert(strstr(res.message, "0002_policy_2025_01.sql"), "%s", res.message);
}

Test(migrate, newer_database_is_refused)
{
    struct migrate_result res;
    char sql[256];
    PGconn *c;

    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    c = testdb_connect(db.owner_url);
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_migrations (version, name, checksum) "
             "VALUES (%zu, '9999_from_the_future.sql', sha256('x'))",
             migrate_builtin_count + 1);
    testdb_ok(c, sql);
    PQfinish(c);
    cr_assert_eq(run_builtin(&res), MIGRATE_ENEWER, "%s", res.message);
    cr_assert(strstr(res.message, "database schema is newer than this binary"), "%s", res.message);
    cr_assert(strstr(res.message, "9999_from_the_future.sql"), "%s", res.message);
}

Test(migrate, gap_in_schema_migrations_is_refused)
{
    struct migrate_result res;
    PGconn *c;

    cr_assert_eq(run_builtin(&res), 0, "%s", res.message);
    c = testdb_connect(db.owner_url);
    testdb_ok(c, "DELETE FROM schema_migrations WHERE version = 2");
    PQfinish(c);
    cr_assert_eq(run_builtin(&res), MIGRATE_EGAP, "%s", res.message);
}

#define RACERS 4

struct racer {
    pthread_barrier_t *start;
    int rc;
    struct migrate_result res;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->start);
    r->rc = run_builtin(&r->res);
    return NULL;
}

/*
 * Without the advisory lock the racers would all see an empty
 * schema_migrations and collide on CREATE TABLE (or apply a file twice).
 */
Test(migrate, concurrent_runs_apply_each_migration_once)
{
    pthread_barrier_t start;
    pthread_t t[RACERS];
    struct racer r[RACERS];
    int applied = 0;
    char got[64], want[64];

    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.start = &start};
        cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(r[i].rc, 0, "racer %d: %s", i, r[i].res.message);
        cr_assert_eq(r[i].res.version, (int)migrate_builtin_count);
        applied += r[i].res.applied;
    }
    cr_assert_eq(applied, (int)migrate_builtin_count);
    value(db.owner_url, "SELECT count(*) || '/' || count(DISTINCT version) FROM schema_migrations",
          got, sizeof(got));
    snprintf(want, sizeof(want), "%zu/%zu", migrate_builtin_count, migrate_builtin_count);
    cr_assert_str_eq(got, want);
}

static const unsigned char sql_a[] = "CREATE TABLE a (x int);";
static const unsigned char sql_b_bad[] = "CREATE TABLE b (x int); SELECT 1 / 0;";
static const unsigned char sql_b_good[] = "CREATE TABLE b (x int);";
static const unsigned char sql_commit[] = "CREATE TABLE c (x int); COMMIT;";

Test(migrate, failing_migration_is_rolled_back_and_not_recorded)
{
    struct migration set[2] = {
        {1, "0001_a.sql", sql_a, sizeof(sql_a) - 1},
        {2, "0002_b.sql", sql_b_bad, sizeof(sql_b_bad) - 1},
    };
    struct migrate_result res;
    char got[64];

    cr_assert_eq(migrate_run(db.owner_url, set, 2, NULL, &res), MIGRATE_EFAILED);
    cr_assert(strstr(res.message, "0002_b.sql failed") && strstr(res.message, "22012"), "%s",
              res.message);
    cr_assert_eq(res.applied, 1);
    cr_assert_eq(res.version, 1);
    value(db.owner_url, "SELECT count(*) FROM schema_migrations", got, sizeof(got));
    cr_assert_str_eq(got, "1");
    value(db.owner_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'b'", got, sizeof(got));
    cr_assert_str_eq(got, "0");

    /* A fixed (never applied) file then goes through. */
    set[1].sql = sql_b_good;
    set[1].len = sizeof(sql_b_good) - 1;
    cr_assert_eq(migrate_run(db.owner_url, set, 2, NULL, &res), 0, "%s", res.message);
    cr_assert_eq(res.applied, 1);
}

Test(migrate, migration_may_not_commit_itself)
{
    struct migration set[1] = {{1, "0001_c.sql", sql_commit, sizeof(sql_commit) - 1}};
    struct migrate_result res;
    char got[64];

    cr_assert_eq(migrate_run(db.owner_url, set, 1, NULL, &res), MIGRATE_EFAILED);
    cr_assert(strstr(res.message, "BEGIN/COMMIT are not allowed"), "%s", res.message);
    value(db.owner_url, "SELECT count(*) FROM schema_migrations", got, sizeof(got));
    cr_assert_str_eq(got, "0");
}

Test(migrate, runtime_role_cannot_migrate)
{
    struct migrate_result res;

    cr_assert_eq(migrate_run(db.app_url, migrate_builtin, migrate_builtin_count, NULL, &res),
                 MIGRATE_EDB);
    cr_assert(strstr(res.message, "42501") && strstr(res.message, "owner role"), "%s", res.message);
}

Test(migrate, unreachable_database_is_a_clear_error)
{
    struct migrate_result res;
    char url[TESTDB_URL_SIZE];

    testdb_url("no_such_database", "claimd_owner", url);
    cr_assert_eq(migrate_run(url, migrate_builtin, migrate_builtin_count, NULL, &res), MIGRATE_EDB);
    cr_assert(strstr(res.message, "cannot connect to the database") &&
                  strstr(res.message, "no_such_database"),
              "%s", res.message);
}
