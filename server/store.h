/*
 * The database operations of the API besides deciding claims: creating,
 * activating and cancelling subscriptions, registering devices, withdrawing
 * and reading claims, a subscription's state and history, and the policy
 * versions. Each is one transaction on the loop's pool; facts come from the
 * database, every rule from the core.
 */
#ifndef CLAIMD_SERVER_STORE_H
#define CLAIMD_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adj.h"
#include "dbpool.h"
#include "record.h"
#include "sub.h"

#define STORE_USES_MAX    64 /* claim_refs a state lists; more is CLAIMD_ECAPACITY */
#define STORE_HISTORY_MAX 100
#define STORE_ROWS_MAX    128 /* approved claims read around a state's day */

struct store {
    struct dbpool *pool;
    const struct policy_set *policies;
    date_t today; /* DATE_NONE: the clock's Japan date */
};

enum store_kind {
    STORE_CREATE = 0,
    STORE_ACTIVATE,
    STORE_CANCEL,
    STORE_REGISTER,
    STORE_ADD_OPTION,
    STORE_STATE,
    STORE_GET_CLAIM,
    STORE_WITHDRAW,
    STORE_HISTORY,
    STORE_POLICIES,
    STORE_QUOTE, /* the decision a claim would get now; nothing is written */
    STORE_AUTH,  /* ref holds the hex SHA-256 of a presented API key */
    STORE_READY, /* outputs the highest applied migration version */
};

/** A subscription as GET /v1/subscriptions/{ref} shows it. */
struct store_view {
    char subscription_ref[REF_MAX + 1];
    struct adj_subscription sub;
    struct adj_device dev;
    date_t on;
    struct sub_state state;
    size_t nuses;
    char uses[STORE_USES_MAX][REF_MAX + 1];
};

/*
 * One operation. The caller fills the inputs of its kind, keeps the struct
 * until done() runs and reads the outputs there. rc: 0 (see verdict for the
 * rule's answer), CLAIMD_ENOTFOUND, CLAIMD_ENOPOLICY (state on a day before
 * every version), CLAIMD_EUNAVAIL, CLAIMD_EDB or CLAIMD_ECAPACITY.
 */
struct store_op {
    enum store_kind kind;
    int64_t tenant_id;
    int64_t api_key_id;
    char ref[REF_MAX + 1];        /* subscription_ref, claim_ref, or key hash for AUTH */
    struct adj_subscription sub;  /* CREATE */
    date_t date;                  /* ACTIVATE, CANCEL: the day; STATE: `on` */
    struct adj_device device;     /* REGISTER */
    struct adj_claim claim;       /* QUOTE */
    size_t limit;                 /* HISTORY: 1..STORE_HISTORY_MAX */
    int64_t after;                /* HISTORY: cursor (0: from the newest) */
    struct claim_record *records; /* HISTORY: room for limit records */
    struct policy *policies;      /* POLICIES: room for POLICY_VERSIONS_MAX */
    void (*done)(struct store_op *op);
    void *data;

    int rc;
    enum sub_verdict verdict;
    bool created;
    bool found;                   /* AUTH: a live key has this hash (tenant_id, api_key_id set) */
    struct store_view view;       /* subscription operations */
    struct claim_record rec;      /* GET_CLAIM, WITHDRAW */
    struct adj_decision decision; /* QUOTE */
    size_t nrecords;              /* HISTORY */
    int64_t next_after;           /* HISTORY: 0 when there is nothing older */
    size_t npolicies;             /* POLICIES */
    int64_t schema_version;       /* READY */

    struct pgjob _job;
    struct store *_store;
    int _nsent;
    int _query;
    int _nreads;
    bool _writing;
    bool _failed;
    bool _found;
    int _retries;
    char _sqlstate[6];
    unsigned char _kinds[8];
    size_t _nhist;
    struct adj_history_entry _hist[STORE_ROWS_MAX];
    char _hist_refs[STORE_ROWS_MAX][REF_MAX + 1];
    struct sub_imei_facts _imei;
};

/** The statements the store prepares on each connection. */
extern const struct pgconn_statement store_statements[];
extern const size_t store_nstatements;

/**
 * Starts op. Returns 0 (done() will run) or CLAIMD_EUNAVAIL /
 * CLAIMD_EOVERLOAD (it will not).
 */
CLAIMD_MUSTCHECK int store_submit(struct store *st, struct store_op *op);

/** The query whose rows store_read_policies reads (blocking start-up loads use it too). */
extern const char store_policies_sql[];

/** Reads every policy version row of store_policies_sql; 0, CLAIMD_EDB or CLAIMD_ECAPACITY. */
CLAIMD_MUSTCHECK int store_read_policies(const PGresult *res, struct policy *out, size_t cap,
                                         size_t *n);

/** Parses a history cursor; 0 or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int store_parse_cursor(const char *s, size_t len, int64_t *out);

#endif
