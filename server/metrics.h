/*
 * Counters for /metrics in the Prometheus text format. Each loop owns one
 * struct metrics and is its only writer (relaxed atomics, so that the loop
 * answering /metrics may read the others); gauges are published by each loop
 * once a second. Labels are route templates, status codes, decision statuses
 * and reasons: never a claim_ref or any other unbounded value.
 */
#ifndef CLAIMD_SERVER_METRICS_H
#define CLAIMD_SERVER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "adj.h"
#include "jsonw.h"

#define METRICS_ROUTES    20 /* route indexes, plus one for "no route" */
#define METRICS_STATUSES  14
#define METRICS_LATENCY   14 /* buckets, +Inf included */
#define METRICS_BATCH     12
#define METRICS_LOOPS_MAX 256

typedef atomic_uint_fast64_t metric_t;

struct metrics {
    metric_t requests[METRICS_ROUTES][METRICS_STATUSES];
    metric_t latency[METRICS_ROUTES][METRICS_LATENCY]; /* cumulative at render time */
    metric_t latency_sum_us[METRICS_ROUTES];
    metric_t decisions[2]; /* approved, denied */
    metric_t reasons[ADJ_R_COUNT];
    metric_t batch_sizes[METRICS_BATCH];
    metric_t batch_claims;
    metric_t batches;
    metric_t queue_depth; /* gauge */
    metric_t pool_up;     /* gauge: connections up */
    metric_t pool_busy;   /* gauge */
    metric_t pool_size;   /* gauge */
    metric_t connections; /* gauge: open client connections */
};

/** Every loop's metrics, for the loop that renders them. */
struct metrics_registry {
    _Atomic(struct metrics *) loops[METRICS_LOOPS_MAX]; /* NULL until a loop registered */
    atomic_int nloops;
    const char *const *routes; /* route templates, by index */
    size_t nroutes;
};

/** Registers a loop's metrics (before it serves). */
void metrics_register(struct metrics_registry *reg, struct metrics *m);

/** Counts an answer: route index (-1: none), status, seconds spent. */
void metrics_request(struct metrics *m, int route, int status, uint64_t nanoseconds);

/** Counts a decision that was recorded now (not a replay). */
void metrics_decision(struct metrics *m, enum adj_status status, uint32_t reasons);

/** Counts a committed batch of n claims. */
void metrics_batch(struct metrics *m, size_t n);

/** Writes the text exposition of every registered loop into w. */
void metrics_render(const struct metrics_registry *reg, struct jsonw *w, const char *version);

#endif
