/*
 * The shared fixture of the server tests: one libuv loop, one or two pipeline
 * instances (a pool, a pipeline and a store each) on a per-test database, and
 * helpers to decide claims, run store operations and seed rows as the owner.
 */
#ifndef CLAIMD_TESTS_SERVER_LOOPDB_H
#define CLAIMD_TESTS_SERVER_LOOPDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "dbpool.h"
#include "pipeline.h"
#include "store.h"
#include "testdb.h"

#define LOOPDB_INSTANCES 2
/** The IMEI of the device testdb_seed registers on tenant 1's L-1. */
#define LOOPDB_SEED_IMEI "356938035643809"
/** The day every test treats as today (Japan). */
#define LOOPDB_TODAY "2026-11-26"

/** Sizes of a fixture; zero fields take the defaults in brackets. */
struct loopdb_opts {
    size_t instances;   /* pipelines on the loop, each with its own pool [1] */
    size_t nconns;      /* connections per pool [2] */
    size_t max_batch;   /* claims per transaction [64] */
    size_t max_queue;   /* claims waiting in a pipeline [1024] */
    size_t max_jobs;    /* jobs waiting in a pool [64] */
    int backoff_min_ms; /* [20] */
    int backoff_max_ms; /* [200] */
};

/** One "daemon": a pool and the pipeline and store on it. */
struct loopdb_inst {
    struct dbpool pool;
    struct pipeline *pl;
    struct store store;
    bool open;
};

struct loopdb {
    struct testdb db;
    uv_loop_t loop;
    bool loop_open;
    struct pgconn_config cfg;
    char app_url[TESTDB_URL_SIZE];
    char owner_url[TESTDB_URL_SIZE];
    char admin_url[TESTDB_URL_SIZE];
    struct policy policy;
    struct policy_set policies;
    size_t ninst;
    struct loopdb_inst inst[LOOPDB_INSTANCES];
    PGconn *owner;    /* claimd_owner on the test database */
    PGconn *admin;    /* postgres (superuser) on the test database, made on demand */
    uv_timer_t timer; /* deadlines of the run helpers */
    bool fired;
    void *allocs[16]; /* request arrays of loopdb_reqs */
    size_t nallocs;
    int pending; /* claims and operations submitted and not done */
    char val[4096];
};

/** Fills a testdb-free fixture's URLs (a cluster of the test's own). */
void loopdb_urls(struct loopdb *ld, const char *host, const char *dbname);

/** Creates and seeds a database (testdb_seed), then starts the loop (loopdb_start). */
void loopdb_setup(struct loopdb *ld, const struct loopdb_opts *o);

/** Starts the loop and the instances on ld->app_url and waits until every connection is up. */
void loopdb_start(struct loopdb *ld, const struct loopdb_opts *o);

/**
 * Closes every pool, runs the loop until every handle is closed, frees the
 * pipelines, asserts uv_loop_close() == 0, then closes the SQL connections
 * and drops the database.
 */
void loopdb_teardown(struct loopdb *ld);

/** The loop part of loopdb_teardown alone. */
void loopdb_stop(struct loopdb *ld);

/** Runs the loop for ms milliseconds. */
void loopdb_run_ms(struct loopdb *ld, uint64_t ms);

/** Runs the loop until nothing submitted is pending; fails after timeout_ms. */
void loopdb_run_done(struct loopdb *ld, uint64_t timeout_ms);

/** Runs the loop until instance i has n connections up; false after timeout_ms. */
bool loopdb_wait_up(struct loopdb *ld, size_t i, size_t n, uint64_t timeout_ms);

/** A zeroed array of n requests owned by the fixture (freed after the pools close). */
struct pipeline_req *loopdb_reqs(struct loopdb *ld, size_t n);

/** A claim to build with loopdb_claim; zero fields take the defaults in brackets. */
struct loopdb_claim {
    int64_t tenant;       /* [1]; the API key is the tenant's (ids match) */
    const char *ref;      /* claim_ref */
    const char *sub;      /* ["L-1"] */
    const char *imei;     /* [LOOPDB_SEED_IMEI] */
    const char *incident; /* YYYY-MM-DD */
    enum adj_cause cause; /* [natural_failure] */
    enum adj_damage damage;
    enum adj_remedy remedy;
    int64_t estimate; /* a repair's estimate; ignored for an exchange */
};

/** Fills r from c, computes its fingerprint and points done() at the fixture. */
void loopdb_claim(struct loopdb *ld, struct pipeline_req *r, const struct loopdb_claim *c);

/** Submits r to instance i's pipeline; returns pipeline_submit's code. */
int loopdb_submit(struct loopdb *ld, size_t i, struct pipeline_req *r);

/** Submits n requests to instance i (each must be accepted) and runs until all are done. */
void loopdb_decide(struct loopdb *ld, size_t i, struct pipeline_req *reqs, size_t n);

/** Zeroes op and sets its kind, tenant and reference (api key = tenant). */
void loopdb_op(struct store_op *op, enum store_kind kind, int64_t tenant, const char *ref);

/** Submits op to instance i's store without waiting; returns store_submit's code. */
int loopdb_store_submit(struct loopdb *ld, size_t i, struct store_op *op);

/** Runs op on instance i's store until done; returns op->rc. */
int loopdb_store(struct loopdb *ld, size_t i, struct store_op *op);

/** A date from "YYYY-MM-DD" (NULL: DATE_NONE); fails the test on a bad one. */
date_t loopdb_date(const char *s);

/** A valid IMEI (Luhn check digit) "35" + 12 digits of n, in out[16]. */
void loopdb_imei(char out[16], unsigned long n);

/** Runs SQL as the owner and fails the test unless it succeeds. */
void loopdb_sql(struct loopdb *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** One value of a query run as the owner ("" for NULL), in ld->val. */
const char *loopdb_val(struct loopdb *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** The superuser connection to the test database (made on first use). */
PGconn *loopdb_admin(struct loopdb *ld);

/** Inserts a subscription of tenant (activated may be NULL); returns its id. */
long loopdb_add_sub(struct loopdb *ld, int tenant, const char *ref, const char *applied,
                    const char *activated, bool option);

/** Registers an Android device (released 2022-01-20) on a subscription of tenant. */
void loopdb_add_device(struct loopdb *ld, int tenant, const char *sub, const char *imei,
                       const char *registered);

/**
 * Opens a transaction on a new owner connection that holds FOR UPDATE row
 * locks on tenant 1's subscriptions named in refs (a SQL list: 'L-1','L-2').
 */
PGconn *loopdb_lock_subs(struct loopdb *ld, const char *refs);

/** Like loopdb_lock_subs with any SELECT ... FOR UPDATE statement. */
PGconn *loopdb_lock_sql(struct loopdb *ld, const char *sql);

/** Ends a lock holder's transaction (ROLLBACK) and closes its connection. */
void loopdb_unlock(PGconn *holder);

/**
 * Runs the loop until n backends of claimd_app on the test database wait on a
 * lock; fails after 10 s.
 */
void loopdb_wait_lock_waiters(struct loopdb *ld, int n);

/** Asserts that two records hold the same values, field by field. */
void loopdb_assert_record_eq(const struct claim_record *a, const struct claim_record *b);

#endif
