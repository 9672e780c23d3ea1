/*
 * Brings a database up to the migrations compiled into claimd: checks what it
 * already has, then applies the rest in order, each in its own transaction,
 * while holding an advisory lock so that concurrent runs serialise.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate.h"
#include "pgutil.h"

/*
 * The bookkeeping table exists before migration 1 can run, so migrate creates
 * it itself. The runtime role's SELECT on it is granted by a migration.
 */
static const char create_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 " version integer PRIMARY KEY CHECK (version > 0),"
                                 " name text NOT NULL,"
                                 " checksum bytea NOT NULL CHECK (octet_length(checksum) = 32),"
                                 " applied_at timestamptz NOT NULL DEFAULT now())";

static const char select_sql[] =
    "SELECT version, name, encode(checksum, 'hex') FROM schema_migrations ORDER BY version";

static const char record_sql[] =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::integer, $2, "
    "decode($3, 'hex'))";

static int fail(struct migrate_result *res, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct migrate_result *res, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    return rc;
}

const char *migrate_rc_name(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case MIGRATE_EDB:
        return "database_error";
    case MIGRATE_EFAILED:
        return "migration_failed";
    case MIGRATE_ECHANGED:
        return "migration_changed";
    case MIGRATE_ENEWER:
        return "database_newer";
    case MIGRATE_EGAP:
        return "migration_gap";
    case MIGRATE_EINVAL:
        return "invalid_migrations";
    default:
        return "unknown";
    }
}

int migrate_checksum(const struct migration *m, unsigned char out[32])
{
    return pgutil_sha256(m->sql, m->len, out);
}

static int checksum_hex(const struct migration *m, char hex[PGUTIL_SHA256_HEX_SIZE])
{
    unsigned char sum[PGUTIL_SHA256_LEN];

    if (migrate_checksum(m, sum) < 0)
        return -EIO;
    pgutil_hex(sum, sizeof(sum), hex);
    return 0;
}

/* The set must be versions 1..n in order, each with its bytes. */
static int check_set(const struct migration *set, size_t n, struct migrate_result *res)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i].version != (int)i + 1 || set[i].name == NULL || set[i].sql == NULL)
            return fail(res, MIGRATE_EINVAL, "migration #%zu of this binary is not version %zu",
                        i + 1, i + 1);
    }
    return 0;
}

/* Runs one of migrate's own statements; a failure is MIGRATE_EDB. */
static int exec_own(PGconn *conn, const char *sql, struct migrate_result *res)
{
    char err[MIGRATE_MESSAGE_SIZE - 64];
    int rc = pgutil_exec(conn, sql, err, sizeof(err));

    if (rc == -EACCES)
        return fail(res, MIGRATE_EDB,
                    "%s (migrate must connect as the owner role, e.g. "
                    "claimd_owner, not the runtime role)",
                    err);
    if (rc < 0)
        return fail(res, MIGRATE_EDB, "%s", err);
    return 0;
}

/*
 * Compares one row of schema_migrations, at position i of the ordered rows,
 * with the set. The database must hold exactly versions 1..k, each with the
 * name and checksum of this binary's file.
 */
static int check_row(const PGresult *r, int i, const struct migration *set,
                     struct migrate_result *res)
{
    long version = strtol(PQgetvalue(r, i, 0), NULL, 10);
    const char *name = PQgetvalue(r, i, 1);
    const char *sum = PQgetvalue(r, i, 2);
    char want[PGUTIL_SHA256_HEX_SIZE];
    const struct migration *m;

    if (version != i + 1)
        return fail(res, MIGRATE_EGAP,
                    "schema_migrations holds version %ld where %d was "
                    "expected: the table was edited by hand",
                    version, i + 1);
    m = &set[i];
    if (checksum_hex(m, want) < 0)
        return fail(res, MIGRATE_EDB, "cannot compute a SHA-256 checksum");
    if (strcmp(name, m->name) != 0)
        return fail(res, MIGRATE_ECHANGED,
                    "migration %d was applied as %s but this binary "
                    "calls it %s: restore the file name",
                    m->version, name, m->name);
    if (strcmp(sum, want) != 0)
        return fail(res, MIGRATE_ECHANGED,
                    "migration %s was changed after it was applied "
                    "(checksum %.12s... in the database, %.12s... in this binary): restore "
                    "the file and put the change in a new migration",
                    m->name, sum, want);
    return 0;
}

/* Reads schema_migrations and sets res->version to the number applied. */
static int check_applied(PGconn *conn, const struct migration *set, size_t n,
                         struct migrate_result *res)
{
    PGresult *r = PQexec(conn, select_sql);
    int rows, rc = 0;
    long last;

    if (!pgutil_result_ok(r)) {
        pgutil_error_line(conn, r, res->message, sizeof(res->message));
        rc = MIGRATE_EDB;
        goto out;
    }
    rows = PQntuples(r);
    last = rows > 0 ? strtol(PQgetvalue(r, rows - 1, 0), NULL, 10) : 0;
    if (last > (long)n) {
        rc = fail(res, MIGRATE_ENEWER,
                  "database schema is newer than this binary: it has "
                  "migration %ld (%s) applied, this binary knows migrations up to %zu; run a "
                  "newer claimd",
                  last, PQgetvalue(r, rows - 1, 1), n);
        goto out;
    }
    for (int i = 0; i < rows && rc == 0; i++)
        rc = check_row(r, i, set, res);
    if (rc == 0)
        res->version = rows;
out:
    PQclear(r);
    return rc;
}

/* Inserts the schema_migrations row of m (inside its transaction). */
static int record(PGconn *conn, const struct migration *m, struct migrate_result *res)
{
    char version[16], sum[PGUTIL_SHA256_HEX_SIZE];
    const char *params[3] = {version, m->name, sum};
    PGresult *r;
    int rc = 0;

    snprintf(version, sizeof(version), "%d", m->version);
    if (checksum_hex(m, sum) < 0)
        return fail(res, MIGRATE_EDB, "cannot compute a SHA-256 checksum");
    r = PQexecParams(conn, record_sql, 3, NULL, params, NULL, NULL, 0);
    if (!pgutil_result_ok(r)) {
        pgutil_error_line(conn, r, res->message, sizeof(res->message));
        rc = MIGRATE_EDB;
    }
    PQclear(r);
    return rc;
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * Applies one migration in its own transaction. A migration may not end the
 * transaction itself: the build refuses such a file (embed_migrations.cmake),
 * and should one slip through anyway it is caught here and never recorded.
 */
static int apply_one(PGconn *conn, const struct migration *m, FILE *log, struct migrate_result *res)
{
    char err[MIGRATE_MESSAGE_SIZE - 128];
    struct timespec t0;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = exec_own(conn, "BEGIN", res);
    if (rc < 0)
        return rc;
    if (pgutil_exec(conn, (const char *)m->sql, err, sizeof(err)) < 0) {
        rc =
            fail(res, MIGRATE_EFAILED, "migration %s failed and was rolled back: %s", m->name, err);
        goto rollback;
    }
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        rc = fail(res, MIGRATE_EFAILED,
                  "migration %s ended its transaction itself (BEGIN/COMMIT are not "
                  "allowed in a migration): it was not recorded, but what it ran before "
                  "that was committed",
                  m->name);
        goto rollback;
    }
    rc = record(conn, m, res);
    if (rc < 0)
        goto rollback;
    rc = exec_own(conn, "COMMIT", res);
    if (rc < 0)
        return rc;
    res->applied++;
    res->version = m->version;
    if (log)
        fprintf(log, "applied %s (%.0f ms)\n", m->name, elapsed_ms(&t0));
    return 0;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}

/* Holds or releases the advisory lock for the whole run. */
static int advisory(PGconn *conn, const char *fn, struct migrate_result *res)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "SELECT %s(%" PRId64 ")", fn, MIGRATE_LOCK_KEY);
    return exec_own(conn, sql, res);
}

int migrate_apply(PGconn *conn, const struct migration *set, size_t n, FILE *log,
                  struct migrate_result *res)
{
    struct migrate_result scratch;
    int rc;

    memset(res, 0, sizeof(*res));
    rc = check_set(set, n, res);
    if (rc < 0)
        return rc;
    rc = exec_own(conn, "SET client_min_messages = warning", res);
    if (rc < 0)
        return rc;
    rc = advisory(conn, "pg_advisory_lock", res);
    if (rc < 0)
        return rc;
    rc = exec_own(conn, create_sql, res);
    if (rc < 0)
        goto unlock;
    rc = check_applied(conn, set, n, res);
    for (size_t i = (size_t)res->version; rc == 0 && i < n; i++)
        rc = apply_one(conn, &set[i], log, res);
    if (rc == 0 && log && res->applied == 0)
        fprintf(log, "database is up to date (version %d)\n", res->version);
    else if (rc == 0 && log)
        fprintf(log, "database migrated to version %d (%d applied)\n", res->version, res->applied);
unlock:
    /* Best effort: closing the session releases the lock as well. */
    if (advisory(conn, "pg_advisory_unlock", &scratch) < 0 && rc == 0)
        rc = fail(res, MIGRATE_EDB, "%s", scratch.message);
    return rc;
}

int migrate_run(const char *url, const struct migration *set, size_t n, FILE *log,
                struct migrate_result *res)
{
    char err[MIGRATE_MESSAGE_SIZE - 64];
    PGconn *conn;
    int rc;

    memset(res, 0, sizeof(*res));
    if (pgutil_connect(url, &conn, err, sizeof(err)) < 0)
        return fail(res, MIGRATE_EDB, "cannot connect to the database: %s", err);
    rc = migrate_apply(conn, set, n, log, res);
    PQfinish(conn);
    return rc;
}
