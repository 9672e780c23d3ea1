/*
 * The decision pipeline of one loop: claims queue while transactions are in
 * flight and go together into the next one. One batch is one transaction of
 * one tenant: lock its subscriptions in id order, read their facts, the
 * claims already stored under its claim_refs and the history the core needs,
 * decide every claim through the core in arrival order, insert every decision
 * with one statement, commit, and only then report.
 */
#ifndef CLAIMD_SERVER_PIPELINE_H
#define CLAIMD_SERVER_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adj.h"
#include "dbpool.h"
#include "record.h"

#define PIPELINE_FINGERPRINT_LEN 32

struct pipeline;

/**
 * One claim to decide and record. The caller owns the memory and keeps it
 * until done() runs (exactly once, unless pipeline_submit refuses it). rc:
 * 0 with rec filled (replayed says it was stored before), or
 * CLAIMD_ENOTFOUND (no such subscription), CLAIMD_ECONFLICT (claim_ref taken
 * by another body), CLAIMD_ENOPOLICY, CLAIMD_EFUTURE, CLAIMD_EUNAVAIL (the
 * database failed: the claim may or may not be stored, a retry replays it),
 * CLAIMD_EDB.
 */
struct pipeline_req {
    int64_t tenant_id;
    int64_t api_key_id;
    char claim_ref[REF_MAX + 1];
    char subscription_ref[REF_MAX + 1];
    struct adj_claim claim;
    uint8_t fingerprint[PIPELINE_FINGERPRINT_LEN];
    void (*done)(struct pipeline_req *r);
    void *data;

    int rc;
    bool replayed;
    struct claim_record rec;

    uint64_t _sub_hash;
    struct pipeline_req *_next;
    int _retries; /* re-runs of the batches this claim was in */
};

struct pipeline_config {
    size_t max_batch;                       /* claims per transaction, 1..ADJ_BATCH_MAX */
    size_t max_queue;                       /* claims waiting; more answer CLAIMD_EOVERLOAD */
    int max_retries;                        /* re-runs of a batch after a conflict or deadlock */
    void (*committed)(void *arg, size_t n); /* after each committed batch; may be NULL */
    void *committed_arg;
};

/** Counters for metrics and benchmarks. */
struct pipeline_stats {
    uint64_t batches;
    uint64_t claims;  /* claims that went through a committed batch */
    uint64_t retries; /* batches re-run after a conflict or deadlock */
    uint64_t failed;  /* batches that ended in an error */
    size_t queued;    /* claims waiting now */
    size_t in_flight; /* batches in flight now */
};

/**
 * Creates a pipeline on a pool (whose statements must include
 * pipeline_statements). policies must stay valid while the pipeline runs (see
 * pipeline_set_policies). Allocates every buffer now; none later.
 */
CLAIMD_MUSTCHECK int pipeline_create(struct pipeline **out, struct dbpool *pool,
                                     const struct pipeline_config *cfg,
                                     const struct policy_set *policies);

/** Frees a pipeline that has nothing queued or in flight. */
void pipeline_destroy(struct pipeline *p);

/** Replaces the policy versions used from the next batch on. */
void pipeline_set_policies(struct pipeline *p, const struct policy_set *policies);

/** Overrides today's Japan date (tests); DATE_NONE goes back to the clock. */
void pipeline_set_today(struct pipeline *p, date_t today);

/**
 * Queues a claim. Returns 0 (done() will run), CLAIMD_EINVAL for a malformed
 * request, CLAIMD_EOVERLOAD when the queue is full, CLAIMD_EUNAVAIL when the
 * database is down; done() does not run on an error.
 */
CLAIMD_MUSTCHECK int pipeline_submit(struct pipeline *p, struct pipeline_req *r);

/** Fills r->fingerprint: SHA-256 of the claim's canonical fields. 0 or CLAIMD_EDB. */
CLAIMD_MUSTCHECK int pipeline_fingerprint(struct pipeline_req *r);

void pipeline_stats(const struct pipeline *p, struct pipeline_stats *out);

/** How many more claims the queue takes now. */
size_t pipeline_room(const struct pipeline *p);

/** The statements the pipeline prepares on each connection. */
extern const struct pgconn_statement pipeline_statements[];
extern const size_t pipeline_nstatements;

/** True when s[0..len) is 1-64 characters of [A-Za-z0-9._:-]. */
bool pipeline_ref_valid(const char *s, size_t len);

#endif
