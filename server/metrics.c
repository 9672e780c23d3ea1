/* Counting, and the Prometheus text exposition summed over the loops. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const int statuses[METRICS_STATUSES] = {200, 201, 400, 401, 404, 405, 409,
                                               413, 415, 422, 431, 500, 503, 0};
static const double latency_le[METRICS_LATENCY - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
static const unsigned batch_le[METRICS_BATCH - 1] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000};

static void inc(metric_t *m, uint64_t n)
{
    atomic_fetch_add_explicit(m, n, memory_order_relaxed);
}

static uint64_t get(const metric_t *m)
{
    return atomic_load_explicit(m, memory_order_relaxed);
}

void metrics_register(struct metrics_registry *reg, struct metrics *m)
{
    int i = atomic_fetch_add(&reg->nloops, 1);
    if (i < METRICS_LOOPS_MAX)
        atomic_store(&reg->loops[i], m);
}

static int status_index(int status)
{
    for (int i = 0; i < METRICS_STATUSES - 1; i++) {
        if (statuses[i] == status)
            return i;
    }
    return METRICS_STATUSES - 1; /* "other" */
}

void metrics_request(struct metrics *m, int route, int status, uint64_t ns)
{
    int r = route >= 0 && route < METRICS_ROUTES - 1 ? route : METRICS_ROUTES - 1;
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < METRICS_LATENCY - 1 && s > latency_le[b])
        b++;
    inc(&m->requests[r][status_index(status)], 1);
    inc(&m->latency[r][b], 1);
    inc(&m->latency_sum_us[r], ns / 1000);
}

void metrics_decision(struct metrics *m, enum adj_status status, uint32_t reasons)
{
    inc(&m->decisions[status == ADJ_STATUS_APPROVED ? 0 : 1], 1);
    for (int i = 0; i < ADJ_R_COUNT; i++) {
        if (reasons & (1u << i))
            inc(&m->reasons[i], 1);
    }
}

void metrics_batch(struct metrics *m, size_t n)
{
    int b = 0;
    while (b < METRICS_BATCH - 1 && n > batch_le[b])
        b++;
    inc(&m->batch_sizes[b], 1);
    inc(&m->batch_claims, n);
    inc(&m->batches, 1);
}

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */

static void line(struct jsonw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line(struct jsonw *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    jsonw_raw(w, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* The sum of one counter over every loop; off is its byte offset in struct metrics. */
static uint64_t sum(const struct metrics_registry *reg, size_t off)
{
    uint64_t total = 0;
    int n = atomic_load(&reg->nloops);
    for (int i = 0; i < n && i < METRICS_LOOPS_MAX; i++) {
        const struct metrics *m = atomic_load(&reg->loops[i]);
        if (m != NULL) /* counted, not yet stored: that loop is still starting */
            total += get((const metric_t *)(const void *)((const char *)m + off));
    }
    return total;
}

#define SUM(reg, member) sum(reg, offsetof(struct metrics, member))

static const char *route_name(const struct metrics_registry *reg, int r)
{
    return (size_t)r < reg->nroutes ? reg->routes[r] : "none";
}

static void render_requests(const struct metrics_registry *reg, struct jsonw *w)
{
    line(w, "# HELP claimd_http_requests_total HTTP answers by route template and status.\n"
            "# TYPE claimd_http_requests_total counter\n");
    for (int r = 0; r < METRICS_ROUTES; r++) {
        for (int s = 0; s < METRICS_STATUSES; s++) {
            uint64_t v = SUM(reg, requests[r][s]);
            if (v > 0)
                line(w, "claimd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                     route_name(reg, r), statuses[s], (unsigned long long)v);
        }
    }
}

static void render_latency(const struct metrics_registry *reg, struct jsonw *w)
{
    line(w, "# HELP claimd_http_request_duration_seconds Time from a request's headers to its "
            "answer.\n# TYPE claimd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < METRICS_ROUTES; r++) {
        uint64_t cum = 0, total = 0;
        for (int b = 0; b < METRICS_LATENCY; b++)
            total += SUM(reg, latency[r][b]);
        if (total == 0)
            continue;
        const char *name = route_name(reg, r);
        for (int b = 0; b < METRICS_LATENCY; b++) {
            cum += SUM(reg, latency[r][b]);
            if (b < METRICS_LATENCY - 1)
                line(w,
                     "claimd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                     name, latency_le[b], (unsigned long long)cum);
            else
                line(w,
                     "claimd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                     name, (unsigned long long)cum);
        }
        line(w, "claimd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
             (double)SUM(reg, latency_sum_us[r]) / 1e6);
        line(w, "claimd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
             (unsigned long long)cum);
    }
}

static void render_decisions(const struct metrics_registry *reg, struct jsonw *w)
{
    line(w, "# HELP claimd_decisions_total Claims decided and recorded, by status.\n"
            "# TYPE claimd_decisions_total counter\n");
    line(w, "claimd_decisions_total{status=\"approved\"} %llu\n",
         (unsigned long long)SUM(reg, decisions[0]));
    line(w, "claimd_decisions_total{status=\"denied\"} %llu\n",
         (unsigned long long)SUM(reg, decisions[1]));
    line(w, "# HELP claimd_decision_reasons_total Reasons carried by recorded decisions.\n"
            "# TYPE claimd_decision_reasons_total counter\n");
    for (int i = 0; i < ADJ_R_COUNT; i++)
        line(w, "claimd_decision_reasons_total{reason=\"%s\"} %llu\n",
             adj_reason_name((enum adj_reason)i), (unsigned long long)SUM(reg, reasons[i]));
}

static void render_batches(const struct metrics_registry *reg, struct jsonw *w)
{
    uint64_t cum = 0;
    line(w, "# HELP claimd_batch_size Claims per committed database transaction.\n"
            "# TYPE claimd_batch_size histogram\n");
    for (int b = 0; b < METRICS_BATCH; b++) {
        cum += SUM(reg, batch_sizes[b]);
        if (b < METRICS_BATCH - 1)
            line(w, "claimd_batch_size_bucket{le=\"%u\"} %llu\n", batch_le[b],
                 (unsigned long long)cum);
        else
            line(w, "claimd_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    line(w, "claimd_batch_size_sum %llu\nclaimd_batch_size_count %llu\n",
         (unsigned long long)SUM(reg, batch_claims), (unsigned long long)SUM(reg, batches));
}

static void render_gauges(const struct metrics_registry *reg, struct jsonw *w)
{
    line(w,
         "# HELP claimd_queue_depth Claims waiting for a database transaction.\n"
         "# TYPE claimd_queue_depth gauge\nclaimd_queue_depth %llu\n",
         (unsigned long long)SUM(reg, queue_depth));
    line(w,
         "# HELP claimd_db_connections Database connections by state.\n"
         "# TYPE claimd_db_connections gauge\n"
         "claimd_db_connections{state=\"configured\"} %llu\n"
         "claimd_db_connections{state=\"up\"} %llu\n"
         "claimd_db_connections{state=\"busy\"} %llu\n",
         (unsigned long long)SUM(reg, pool_size), (unsigned long long)SUM(reg, pool_up),
         (unsigned long long)SUM(reg, pool_busy));
    line(w,
         "# HELP claimd_http_connections Open client connections.\n"
         "# TYPE claimd_http_connections gauge\nclaimd_http_connections %llu\n",
         (unsigned long long)SUM(reg, connections));
}

void metrics_render(const struct metrics_registry *reg, struct jsonw *w, const char *version)
{
    line(w,
         "# HELP claimd_build_info The running build.\n# TYPE claimd_build_info gauge\n"
         "claimd_build_info{version=\"%s\"} 1\n",
         version);
    line(w,
         "# HELP claimd_event_loops Event loops serving.\n# TYPE claimd_event_loops gauge\n"
         "claimd_event_loops %d\n",
         atomic_load(&reg->nloops));
    render_requests(reg, w);
    render_latency(reg, w);
    render_decisions(reg, w);
    render_batches(reg, w);
    render_gauges(reg, w);
}
