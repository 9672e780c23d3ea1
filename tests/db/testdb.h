/*
 * Per-test databases on the PostgreSQL cluster CTest starts (fixture
 * claimd_pg, tests/pg): an empty database for the migration tests, or a clone
 * of a template migrated once per run with this binary's migrations.
 */
#ifndef CLAIMD_TESTS_DB_TESTDB_H
#define CLAIMD_TESTS_DB_TESTDB_H

#include <stddef.h>

#include <libpq-fe.h>

#define TESTDB_URL_SIZE 512

/** A database of one test, and how to reach it as each role. */
struct testdb {
    char name[64];
    char owner_url[TESTDB_URL_SIZE]; /* claimd_owner: owns the database */
    char app_url[TESTDB_URL_SIZE];   /* claimd_app: the runtime role */
};

/** Creates an empty database owned by claimd_owner; the test fails if it cannot. */
void testdb_create_empty(struct testdb *db);

/**
 * Creates a database cloned from the migrated template (CREATE DATABASE ...
 * TEMPLATE). The template is built by the first test that needs it, under an
 * advisory lock, and named after the migrations' checksums.
 */
void testdb_create_migrated(struct testdb *db);

/** Drops the database (WITH (FORCE)); safe to call twice. */
void testdb_drop(struct testdb *db);

/** The libpq URL of database name as user, on the test cluster. */
void testdb_url(const char *name, const char *user, char out[TESTDB_URL_SIZE]);

/** Connects or fails the test. */
PGconn *testdb_connect(const char *url);

/** Runs sql and fails the test unless it succeeds. */
void testdb_ok(PGconn *conn, const char *sql);

/**
 * Runs sql and fails the test unless it fails with sqlstate and, when
 * constraint is not NULL, names that constraint.
 */
void testdb_fails(PGconn *conn, const char *sql, const char *sqlstate, const char *constraint);

/** Runs a query of one value and copies it into out ("" for NULL). */
void testdb_value(PGconn *conn, const char *sql, char *out, size_t outlen);

/**
 * Inserts, as the owner, two tenants (ids 1 and 2) with one API key each
 * (ids 1 and 2), subscription L-1 in each (ids 1 and 2, option applied
 * 2024-04-01, activated 2024-04-03), an Android device 356938035643809 on
 * subscription 1 and the approved claim C-1 of policy.md's example 1 on it.
 */
void testdb_seed(PGconn *owner);

/**
 * An INSERT of an approved repair claim (incident 2024-05-01, window
 * 2024-04-01..2025-03-31) with the given amounts; estimate = covered + charge.
 */
void testdb_claim_sql(char *out, size_t outlen, int tenant, const char *ref, int subscription,
                      long long covered, long long charge);

#endif
