/*
 * claimbench's figures: the log-linear latency histogram, the summary of a
 * run (text, and one "result" line of key=value pairs for scripts), --json,
 * and the latency-versus-throughput plot of a sweep (gnuplot).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "claimbench.h"

static const char *const error_names[ERR_COUNT] = {
    "5xx",        "unexpected_status", "malformed", "replay_mismatch", "batch_item_problem",
    "connection", "unanswered",
};

/* ------------------------------------------------------------------------
 * The histogram
 * ------------------------------------------------------------------------ */

#define HIST_LINEAR (1u << HIST_SUB_BITS)
#define HIST_HALF   (1u << (HIST_SUB_BITS - 1))

static unsigned bucket_of(uint64_t v)
{
    if (v >= (1ull << HIST_MAX_BITS))
        v = (1ull << HIST_MAX_BITS) - 1;
    if (v < HIST_LINEAR)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* HIST_SUB_BITS..HIST_MAX_BITS-1 */
    unsigned shift = msb - (HIST_SUB_BITS - 1);        /* v >> shift is in [HALF, 2 HALF) */
    return HIST_LINEAR + (msb - HIST_SUB_BITS) * HIST_HALF + (unsigned)((v >> shift) - HIST_HALF);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned j = i - HIST_LINEAR, shift = j / HIST_HALF + 1;
    uint64_t m = HIST_HALF + j % HIST_HALF;
    return ((m + 1) << shift) - 1;
}

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_record(struct hist *h, uint64_t us)
{
    h->counts[bucket_of(us)]++;
    h->n++;
    h->sum += (double)us;
    if (us > h->max)
        h->max = us;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->n += from->n;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return bucket_top(i) < h->max ? bucket_top(i) : h->max;
    }
    return h->max;
}

/* ------------------------------------------------------------------------
 * Derived figures
 * ------------------------------------------------------------------------ */

uint64_t cb_run_errors(const struct cb_run *run)
{
    uint64_t n = 0;
    for (int i = 0; i < ERR_COUNT; i++)
        n += run->errors[i];
    return n;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static double per_second(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static double mean_batch(const struct cb_run *run)
{
    double claims = run->batch_sum1 - run->batch_sum0;
    double batches = run->batch_count1 - run->batch_count0;
    return run->batch_ok && batches > 0 ? claims / batches : -1;
}

/*
 * CPU of the window in % of one core: claimd, postgres, claimbench, the rest;
 * then machine busy %, and the share of the window in which some task waited
 * for a CPU, and for I/O (pressure stall information).
 */
static void cpu_split(const struct cb_run *run, double out[7])
{
    const struct cb_cpu *a = &run->cpu0, *z = &run->cpu1;
    double s = run->seconds > 0 ? run->seconds : 1;
    out[0] = 100 * (z->claimd_s - a->claimd_s) / s;
    out[1] = 100 * (z->postgres_s - a->postgres_s) / s;
    out[2] = 100 * (z->self_s - a->self_s) / s;
    out[3] = 100 * (z->busy_s - a->busy_s) / s - out[0] - out[1] - out[2];
    out[4] =
        z->total_s > a->total_s ? 100 * (z->busy_s - a->busy_s) / (z->total_s - a->total_s) : 0;
    out[5] = 100 * (z->cpu_wait_s - a->cpu_wait_s) / s;
    out[6] = 100 * (z->io_wait_s - a->io_wait_s) / s;
}

/* ------------------------------------------------------------------------
 * The text report
 * ------------------------------------------------------------------------ */

static void report_mix(const struct cb_run *run)
{
    uint64_t decided = run->approved + run->denied;
    printf("  status:");
    for (int s = 0; s < CB_STATUS_MAX; s++) {
        if (run->status[s] > 0)
            printf(" %d=%" PRIu64, s, run->status[s]);
    }
    printf("\n  decisions: %" PRIu64 " new (approved %.1f %%, denied %.1f %%), %" PRIu64
           " replays answered\n  reasons:",
           decided, decided ? 100.0 * (double)run->approved / (double)decided : 0.0,
           decided ? 100.0 * (double)run->denied / (double)decided : 0.0, run->replays);
    for (int r = 0; r < ADJ_R_COUNT; r++) {
        if (run->reasons[r] > 0)
            printf(" %s=%" PRIu64, adj_reason_name((enum adj_reason)r), run->reasons[r]);
    }
    printf("\n");
}

static void report_errors(const struct cb_run *run)
{
    printf("  errors: %" PRIu64, cb_run_errors(run));
    for (int i = 0; i < ERR_COUNT; i++) {
        if (run->errors[i] > 0)
            printf(" %s=%" PRIu64, error_names[i], run->errors[i]);
    }
    printf("\n");
    for (size_t i = 0; i < run->nexamples; i++)
        printf("    e.g. %s\n", run->examples[i]);
}

/* The machine-readable line: every figure of the run as key=value. */
static void report_result_line(const struct cb_run *run, const double cpu[7])
{
    const struct hist *h = &run->lat;
    printf(
        "result label=%s target_rate=%.0f seconds=%.2f decisions_per_s=%.1f answers_per_s=%.1f "
        "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%" PRIu64
        " mean_batch=%.2f cpu_claimd=%.1f cpu_postgres=%.1f cpu_claimbench=%.1f "
        "cpu_other=%.1f machine_busy=%.1f cpu_pressure=%.1f io_pressure=%.1f backlog_max=%" PRIu64
        "\n",
        run->target_rate > 0 ? "open" : "closed", run->target_rate, run->seconds,
        per_second(run->decisions_in_window, run->seconds),
        per_second(run->done_in_window, run->seconds), ms(hist_quantile(h, 0.5)),
        ms(hist_quantile(h, 0.9)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
        ms(h->max), cb_run_errors(run), mean_batch(run), cpu[0], cpu[1], cpu[2], cpu[3], cpu[4],
        cpu[5], cpu[6], run->backlog_max);
}

void cb_report(const struct cb *b, const struct cb_run *run)
{
    const struct hist *h = &run->lat;
    double cpu[7] = {0};
    cpu_split(run, cpu);
    printf("== %s: %zu connections x %zu in flight%s, %.1f s window\n", run->label, b->nconns,
           b->opt.depth, b->opt.batch > 0 ? " (batches)" : "", run->seconds);
    printf("  throughput: %.0f decisions/s (new, durable), %.0f answers/s\n",
           per_second(run->decisions_in_window, run->seconds),
           per_second(run->done_in_window, run->seconds));
    printf("  latency ms (%s, n=%" PRIu64 "): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
           run->target_rate > 0 ? "from the intended send time" : "closed loop", h->n,
           ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.9)), ms(hist_quantile(h, 0.99)),
           ms(hist_quantile(h, 0.999)), ms(h->max));
    report_mix(run);
    report_errors(run);
    if (run->cpu0.ok)
        printf("  cpu %% of one core: claimd %.0f, postgres %.0f, claimbench %.0f, other %.0f; "
               "machine busy %.0f %%; some task waited for a cpu %.0f %% of the time, for "
               "i/o %.0f %%\n",
               cpu[0], cpu[1], cpu[2], cpu[3], cpu[4], cpu[5], cpu[6]);
    if (mean_batch(run) >= 0)
        printf("  claimd mean batch: %.1f claims per transaction\n", mean_batch(run));
    report_result_line(run, cpu);
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * --json
 * ------------------------------------------------------------------------ */

static json_t *latency_json(const struct hist *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->n, "p50_ms",
                     ms(hist_quantile(h, 0.5)), "p90_ms", ms(hist_quantile(h, 0.9)), "p99_ms",
                     ms(hist_quantile(h, 0.99)), "p999_ms", ms(hist_quantile(h, 0.999)), "max_ms",
                     ms(h->max), "mean_ms", h->n ? h->sum / (double)h->n / 1000 : 0.0);
}

static json_t *mix_json(const struct cb_run *run)
{
    json_t *status = json_object(), *reasons = json_object(), *errors = json_object();
    char key[8];
    for (int s = 0; s < CB_STATUS_MAX; s++) {
        snprintf(key, sizeof(key), "%d", s);
        if (run->status[s] > 0)
            json_object_set_new(status, key, json_integer((json_int_t)run->status[s]));
    }
    for (int r = 0; r < ADJ_R_COUNT; r++)
        json_object_set_new(reasons, adj_reason_name((enum adj_reason)r),
                            json_integer((json_int_t)run->reasons[r]));
    for (int i = 0; i < ERR_COUNT; i++)
        json_object_set_new(errors, error_names[i], json_integer((json_int_t)run->errors[i]));
    return json_pack("{s:o, s:I, s:I, s:I, s:o, s:I, s:o}", "status", status, "approved",
                     (json_int_t)run->approved, "denied", (json_int_t)run->denied, "replays",
                     (json_int_t)run->replays, "reasons", reasons, "errors_total",
                     (json_int_t)cb_run_errors(run), "errors", errors);
}

static json_t *run_json(const struct cb_run *run)
{
    double cpu[7] = {0};
    cpu_split(run, cpu);
    json_t *ex = json_array();
    for (size_t i = 0; i < run->nexamples; i++)
        json_array_append_new(ex, json_string(run->examples[i]));
    json_t *o =
        json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:o, s:o, s:f, s:I, s:o}", "label",
                  run->label, "loop", run->target_rate > 0 ? "open" : "closed", "target_rate",
                  run->target_rate, "seconds", run->seconds, "decisions_per_s",
                  per_second(run->decisions_in_window, run->seconds), "answers_per_s",
                  per_second(run->done_in_window, run->seconds), "requests",
                  (json_int_t)run->requests, "decisions", (json_int_t)run->decisions, "latency",
                  latency_json(&run->lat), "mix", mix_json(run), "mean_batch", mean_batch(run),
                  "backlog_max", (json_int_t)run->backlog_max, "error_examples", ex);
    if (run->cpu0.ok)
        json_object_set_new(o, "cpu_percent_of_one_core",
                            json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "claimd", cpu[0],
                                      "postgres", cpu[1], "claimbench", cpu[2], "other", cpu[3],
                                      "machine_busy_percent", cpu[4], "cpu_pressure_percent",
                                      cpu[5], "io_pressure_percent", cpu[6]));
    return o;
}

static json_t *options_json(const struct cb *b)
{
    const struct cb_options *o = &b->opt;
    const struct cb_mix *m = &o->mix;
    return json_pack("{s:s, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:f, s:f, "
                     "s:f, s:f, s:I, s:I}}",
                     "host", o->host, "port", o->port, "connections", (json_int_t)o->connections,
                     "pipeline", (json_int_t)o->depth, "batch", (json_int_t)o->batch, "rate",
                     o->rate, "duration", o->duration, "warmup", o->warmup, "requests",
                     (json_int_t)o->requests, "subscriptions", (json_int_t)b->nsubs, "mix",
                     "exchange", m->exchange, "ios", m->ios, "physical", m->physical, "over_cap",
                     m->over_cap, "hot", m->hot, "replay", m->replay, "hot_subs",
                     (json_int_t)m->hot_subs, "cap", (json_int_t)m->cap);
}

static json_t *verify_json(const struct cb *b, int verify_rc)
{
    const struct cb_verify *v = &b->verify;
    if (!b->opt.verify)
        return json_null();
    return json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "checked", v->done,
                     "ok", verify_rc == 0, "answered_stored", (json_int_t)v->answered_stored,
                     "in_db", (json_int_t)v->in_db, "missing", (json_int_t)v->missing, "differing",
                     (json_int_t)v->differing, "unexpected", (json_int_t)v->unexpected,
                     "unanswered", (json_int_t)v->unknown, "unanswered_stored",
                     (json_int_t)v->unknown_stored, "over_windows", (json_int_t)v->over_windows,
                     "duplicate_use_numbers", (json_int_t)v->duplicate_uses);
}

int cb_write_json(const struct cb *b, const struct cb_run *runs, size_t nruns, int verify_rc)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < nruns; i++)
        json_array_append_new(arr, run_json(&runs[i]));
    json_t *doc = json_pack("{s:s, s:o, s:o, s:o}", "claim_ref_prefix", b->prefix, "options",
                            options_json(b), "runs", arr, "verify", verify_json(b, verify_rc));
    int rc =
        doc != NULL ? json_dump_file(doc, b->opt.json_path, JSON_INDENT(2) | JSON_SORT_KEYS) : -1;
    if (rc != 0)
        fprintf(stderr, "claimbench: cannot write %s\n", b->opt.json_path);
    json_decref(doc);
    return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * The sweep's plot
 * ------------------------------------------------------------------------ */

static int write_plot_data(const char *path, const struct cb_run *runs, size_t nruns)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "# target_rate decisions_per_s answers_per_s p50_ms p90_ms p99_ms p999_ms max_ms\n");
    for (size_t i = 0; i < nruns; i++) {
        const struct cb_run *r = &runs[i];
        const struct hist *h = &r->lat;
        fprintf(f, "%.0f %.1f %.1f %.3f %.3f %.3f %.3f %.3f\n", r->target_rate,
                per_second(r->decisions_in_window, r->seconds),
                per_second(r->done_in_window, r->seconds), ms(hist_quantile(h, 0.5)),
                ms(hist_quantile(h, 0.9)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
                ms(h->max));
    }
    return fclose(f) == 0 ? 0 : -1;
}

/*
 * Latency (log scale) against the achieved answer rate, one point per open-
 * loop rate; the data file stays beside the PNG (FILE.dat) for other plots.
 */
int cb_plot(const struct cb *b, const struct cb_run *runs, size_t nruns)
{
    char dat[1024], cmd[4096];
    snprintf(dat, sizeof(dat), "%s.dat", b->opt.png_path);
    if (write_plot_data(dat, runs, nruns) != 0)
        return -1;
    FILE *p = popen("gnuplot", "w");
    if (p == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "set terminal pngcairo size 960,600 font ',10'\nset output '%s'\n"
             "set title 'claimd: latency vs throughput, open loop (POST /v1/claims%s, %zu "
             "connections, durable commits)'\n"
             "set xlabel 'answers/s (achieved)'\nset ylabel 'latency from the intended send (ms)'\n"
             "set logscale y\nset grid\nset key top left\nset xrange [0:*]\n"
             "set arrow from graph 0, first 10 to graph 1, first 10 nohead dt 2 lc rgb 'red'\n"
             "set label 'p99 target, 10 ms' at graph 0.98, first 11 right tc rgb 'red'\n"
             "plot '%s' using 3:4 with linespoints title 'p50', '' using 3:6 with linespoints "
             "title 'p99', '' using 3:7 with linespoints title 'p99.9', '' using 3:8 with points "
             "title 'max'\n",
             b->opt.png_path, b->opt.batch > 0 ? "/batch" : "", b->nconns, dat);
    fputs(cmd, p);
    int st = pclose(p);
    if (st != 0)
        fprintf(stderr, "claimbench: gnuplot failed (is gnuplot-nox installed?)\n");
    return st == 0 ? 0 : -1;
}
