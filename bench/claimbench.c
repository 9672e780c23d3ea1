/*
 * claimbench: the HTTP load generator of claimd. It drives POST /v1/claims
 * (or /v1/claims/batch) in a closed or an open loop, checks every answer and
 * cross-checks the database afterwards. This file owns the command line and
 * the runs (warm-up, measured window, drain); the other claimbench_*.c files
 * own the claims, the connections, the database and the report.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claimbench.h"

#define DRAIN_MS    60000 /* longer than claimd's job timeout: an unanswered request is a hang */
#define PROGRESS_MS 1000

/* ------------------------------------------------------------------------
 * Small helpers shared by the other files
 * ------------------------------------------------------------------------ */

uint64_t cb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64: cheap, and good enough to pick claims. */
uint32_t cb_rand(struct cb *b, uint32_t n)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return n > 0 ? (uint32_t)(b->rng % n) : 0;
}

double cb_rand01(struct cb *b)
{
    return (double)cb_rand(b, 1u << 30) / (double)(1u << 30);
}

/* Keeps the first few wrong answers verbatim (one line each) for the report. */
void cb_example(struct cb_run *run, const char *what, const char *body, size_t len)
{
    if (run == NULL || run->nexamples >= CB_EXAMPLES)
        return;
    char *out = run->examples[run->nexamples++];
    int n = snprintf(out, CB_EXAMPLE_LEN, "%s: ", what);
    size_t k = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < len && k + 1 < CB_EXAMPLE_LEN; i++)
        out[k++] = body[i] == '\n' || body[i] == '\r' ? ' ' : body[i];
    out[k < CB_EXAMPLE_LEN ? k : CB_EXAMPLE_LEN - 1] = '\0';
}

/* ------------------------------------------------------------------------
 * The command line
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: claimbench --url http://127.0.0.1:PORT --database-url URL [options]\n"
          "\n"
          "load:\n"
          "  -c N                connections (default 64)\n"
          "  --pipeline K        requests in flight per connection (default 1)\n"
          "  --rate R            open loop: R requests/s, latency from the intended send time\n"
          "                      (default: closed loop, each answer sends the next request)\n"
          "  -d S, --duration S  measured window in seconds (default 10)\n"
          "  --warmup S          unmeasured load before the window (default 2)\n"
          "  -n N                closed loop of exactly N requests instead of a duration\n"
          "  --batch B           send POST /v1/claims/batch with B claims (default: one claim\n"
          "                      per POST /v1/claims)\n"
          "  --sweep R1,R2,...   one open-loop run per rate; with --png, latency vs throughput\n"
          "mix (shares 0..1):\n"
          "  --exchange P (0.3)  --ios P (0.4)  --physical P (0.5)  --over-cap P (0.2)\n"
          "  --hot P (0.05) of the claims go to --hot-subs N (100) subscriptions, whose\n"
          "                      window fills up (frequency_limit)\n"
          "  --replay P (0.05)   idempotent replays of claims already answered 201\n"
          "  --cap YEN           the policy's repair cap (default 50000)\n"
          "database:\n"
          "  --database-url URL  runtime role: reads the subscriptions; --verify cross-checks\n"
          "  --tenant NAME       the seeded tenant (default bench)\n"
          "  --seed N            first seed N subscriptions 'bench-1'..'bench-N' with devices\n"
          "                      (COPY as --owner-url, the same rows as bench/seed.sql)\n"
          "  --owner-url URL     owner role, for --seed\n"
          "  --verify            after the runs, check the database against the answers\n"
          "output:\n"
          "  --key KEY           API key (default $CLAIMBENCH_KEY)\n"
          "  --json FILE         every figure of every run, as JSON\n"
          "  --png FILE          with --sweep: the plot (gnuplot)\n"
          "  --claimd-pid PID, --postmaster-pid PID   CPU split of the measured window\n"
          "  --no-metrics        do not read claimd's /metrics (mean batch size)\n"
          "  --rng-seed N        --quiet (no progress line)\n",
          f);
}

static int parse_url(struct cb_options *o, const char *url)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -1;
    const char *host = url + sizeof(scheme) - 1;
    const char *colon = strrchr(host, ':');
    if (colon == NULL || (size_t)(colon - host) >= sizeof(o->host) || colon == host)
        return -1;
    memcpy(o->host, host, (size_t)(colon - host));
    o->host[colon - host] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if ((*end != '\0' && strcmp(end, "/") != 0) || port < 1 || port > 65535)
        return -1;
    o->port = (int)port;
    return 0;
}

static int parse_sweep(struct cb_options *o, const char *s)
{
    o->nsweep = 0;
    while (*s != '\0') {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v <= 0 || o->nsweep == CB_SWEEP_MAX)
            return -1;
        o->sweep[o->nsweep++] = v;
        if (*end != ',' && *end != '\0')
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return o->nsweep > 0 ? 0 : -1;
}

static int parse_share(double *out, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || d < 0 || d > 1)
        return -1;
    *out = d;
    return 0;
}

static int parse_number(double *out, const char *v, double min)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || d < min)
        return -1;
    *out = d;
    return 0;
}

static void default_options(struct cb_options *o)
{
    memset(o, 0, sizeof(*o));
    o->key = getenv("CLAIMBENCH_KEY");
    o->db_url = getenv("CLAIMD_DATABASE_URL");
    o->owner_url = getenv("CLAIMD_OWNER_URL");
    o->tenant = "bench";
    o->connections = 64;
    o->depth = 1;
    o->duration = 10;
    o->warmup = 2;
    o->metrics = true;
    o->rng_seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 32;
    o->mix = (struct cb_mix){.exchange = 0.3,
                             .ios = 0.4,
                             .physical = 0.5,
                             .over_cap = 0.2,
                             .hot = 0.05,
                             .replay = 0.05,
                             .hot_subs = 100,
                             .cap = 50000};
}

/* Options without a value; returns 1 when a is one of them. */
static int parse_flag(struct cb_options *o, const char *a)
{
    if (strcmp(a, "--verify") == 0)
        o->verify = true;
    else if (strcmp(a, "--no-metrics") == 0)
        o->metrics = false;
    else if (strcmp(a, "--quiet") == 0)
        o->quiet = true;
    else
        return 0;
    return 1;
}

/* The shares of the mix; returns 1 when a is one of them, -1 on a bad value. */
static int parse_mix(struct cb_mix *m, const char *a, const char *v)
{
    static const struct {
        const char *name;
        size_t off;
    } shares[] = {
        {"--exchange", offsetof(struct cb_mix, exchange)},
        {"--ios", offsetof(struct cb_mix, ios)},
        {"--physical", offsetof(struct cb_mix, physical)},
        {"--over-cap", offsetof(struct cb_mix, over_cap)},
        {"--hot", offsetof(struct cb_mix, hot)},
        {"--replay", offsetof(struct cb_mix, replay)},
    };
    for (size_t i = 0; i < sizeof(shares) / sizeof(shares[0]); i++) {
        if (strcmp(a, shares[i].name) == 0)
            return parse_share((double *)(void *)((char *)m + shares[i].off), v) == 0 ? 1 : -1;
    }
    double d = 0;
    if (strcmp(a, "--hot-subs") == 0) {
        if (parse_number(&d, v, 0) != 0)
            return -1;
        m->hot_subs = (size_t)d;
        return 1;
    }
    if (strcmp(a, "--cap") == 0) {
        if (parse_number(&d, v, 0) != 0)
            return -1;
        m->cap = (int64_t)d;
        return 1;
    }
    return 0;
}

/* Options that take a number; returns 1 when a is one of them, -1 on a bad value. */
static int parse_numeric(struct cb_options *o, const char *a, const char *v)
{
    double d = 0;
    int rc = 0;
    if (strcmp(a, "-c") == 0 || strcmp(a, "--connections") == 0) {
        rc = parse_number(&d, v, 1);
        o->connections = (size_t)d;
    } else if (strcmp(a, "--pipeline") == 0) {
        rc = parse_number(&d, v, 1);
        o->depth = (size_t)d;
    } else if (strcmp(a, "--batch") == 0) {
        rc = parse_number(&d, v, 0);
        o->batch = (size_t)d;
    } else if (strcmp(a, "--rate") == 0) {
        rc = parse_number(&o->rate, v, 0);
    } else if (strcmp(a, "-d") == 0 || strcmp(a, "--duration") == 0) {
        rc = parse_number(&o->duration, v, 0.1);
    } else if (strcmp(a, "--warmup") == 0) {
        rc = parse_number(&o->warmup, v, 0);
    } else if (strcmp(a, "-n") == 0) {
        rc = parse_number(&d, v, 1);
        o->requests = (uint64_t)d;
    } else if (strcmp(a, "--seed") == 0) {
        rc = parse_number(&d, v, 1);
        o->seed = (size_t)d;
    } else if (strcmp(a, "--claimd-pid") == 0) {
        rc = parse_number(&d, v, 1);
        o->claimd_pid = (long)d;
    } else if (strcmp(a, "--postmaster-pid") == 0) {
        rc = parse_number(&d, v, 1);
        o->postmaster_pid = (long)d;
    } else if (strcmp(a, "--rng-seed") == 0) {
        rc = parse_number(&d, v, 0);
        o->rng_seed = (uint64_t)d;
    } else {
        return 0;
    }
    return rc == 0 ? 1 : -1;
}

/* Options that take a string; returns 1 when a is one of them, -1 on a bad value. */
static int parse_string(struct cb_options *o, const char *a, const char *v)
{
    if (strcmp(a, "--url") == 0)
        return parse_url(o, v) == 0 ? 1 : -1;
    if (strcmp(a, "--sweep") == 0)
        return parse_sweep(o, v) == 0 ? 1 : -1;
    const char **dst = strcmp(a, "--key") == 0            ? &o->key
                       : strcmp(a, "--database-url") == 0 ? &o->db_url
                       : strcmp(a, "--owner-url") == 0    ? &o->owner_url
                       : strcmp(a, "--tenant") == 0       ? &o->tenant
                       : strcmp(a, "--json") == 0         ? &o->json_path
                       : strcmp(a, "--png") == 0          ? &o->png_path
                                                          : NULL;
    if (dst == NULL)
        return 0;
    *dst = v;
    return 1;
}

static int check_options(const struct cb_options *o)
{
    const char *why = NULL;
    bool seed_only = o->port == 0 && o->seed > 0;
    if (o->seed > 0 && (o->owner_url == NULL || o->owner_url[0] == '\0'))
        why = "--seed needs --owner-url (or $CLAIMD_OWNER_URL)";
    else if (seed_only)
        why = NULL;
    else if (o->port == 0)
        why = "--url http://HOST:PORT is required (or --seed N alone)";
    else if (o->key == NULL || o->key[0] == '\0' || strlen(o->key) > 300)
        why = "--key (or $CLAIMBENCH_KEY) is required";
    else if (o->db_url == NULL || o->db_url[0] == '\0')
        why = "--database-url (or $CLAIMD_DATABASE_URL) is required";
    else if (o->batch > CB_BATCH_MAX || o->depth > 64 || o->connections > 20000)
        why = "--batch is at most 1000, --pipeline 64, -c 20000";
    else if (o->requests > 0 && (o->rate > 0 || o->nsweep > 0))
        why = "-n is a closed loop: not with --rate or --sweep";
    if (why != NULL)
        fprintf(stderr, "claimbench: %s\n", why);
    return why == NULL ? 0 : -1;
}

static int parse_options(struct cb_options *o, int argc, char **argv)
{
    default_options(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (parse_flag(o, a))
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "claimbench: %s: unknown option or missing value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int rc = parse_numeric(o, a, v);
        if (rc == 0)
            rc = parse_string(o, a, v);
        if (rc == 0)
            rc = parse_mix(&o->mix, a, v);
        if (rc <= 0) {
            fprintf(stderr, "claimbench: %s %s: %s\n", a, v,
                    rc == 0 ? "unknown option" : "bad value");
            return -1;
        }
    }
    return check_options(o);
}

/* ------------------------------------------------------------------------
 * One run: warm-up, measured window, drain
 * ------------------------------------------------------------------------ */

static void progress(uv_timer_t *t)
{
    struct cb *b = t->data;
    double secs = PROGRESS_MS / 1000.0;
    if (!b->opt.quiet) {
        static const char *const names[] = {"idle", "warmup", "window", "drain"};
        fprintf(stderr,
                "[%6.1f s %-6s] %8.0f answers/s %8.0f decisions/s  p99 %8.2f ms  errors %" PRIu64
                "  in flight %zu  backlog %zu\n",
                (double)(cb_now_ns() - b->run_start_ns) / 1e9, names[b->phase],
                (double)b->tick_done / secs, (double)b->tick_decisions / secs,
                (double)hist_quantile(&b->tick_lat, 0.99) / 1000.0, b->tick_errors, b->outstanding,
                b->backlog_len);
    }
    hist_reset(&b->tick_lat);
    b->tick_done = b->tick_decisions = b->tick_errors = 0;
}

static void drain_over(uv_timer_t *t)
{
    struct cb *b = t->data;
    b->stuck = true;
}

/* The end of the measured window: sample, and stop issuing. */
static void end_window(struct cb *b)
{
    struct cb_run *run = b->run;
    if (b->phase != PH_WINDOW)
        return;
    run->window_end_ns = cb_now_ns();
    run->seconds = (double)(run->window_end_ns - run->window_start_ns) / 1e9;
    cb_cpu_sample(b, &run->cpu1);
    if (b->opt.metrics && cb_fetch_metrics(b, true) != 0)
        run->batch_ok = false;
    b->phase = PH_DRAIN;
    uv_timer_start(&b->phase_timer, drain_over, DRAIN_MS, 0);
}

static void window_over(uv_timer_t *t)
{
    end_window(t->data);
}

static void begin_window(struct cb *b)
{
    struct cb_run *run = b->run;
    run->window_start_ns = cb_now_ns();
    cb_cpu_sample(b, &run->cpu0);
    run->batch_ok = b->opt.metrics && cb_fetch_metrics(b, false) == 0;
    b->phase = PH_WINDOW;
    if (b->opt.requests == 0)
        uv_timer_start(&b->phase_timer, window_over, (uint64_t)(b->opt.duration * 1000.0), 0);
}

static void warmup_over(uv_timer_t *t)
{
    begin_window(t->data);
}

void cb_answered(struct cb *b)
{
    if (b->opt.requests > 0 && b->phase == PH_WINDOW && b->issued >= b->opt.requests &&
        b->outstanding == 0)
        end_window(b);
}

static void open_loop_tick(uv_timer_t *t)
{
    cb_open_loop_tick(t->data);
}

static bool run_done(const struct cb *b)
{
    return b->phase == PH_DRAIN && b->outstanding == 0 && b->backlog_len == 0 &&
           b->metrics_pending == 0;
}

static void start_run(struct cb *b, struct cb_run *run, double rate, const char *label)
{
    memset(run, 0, sizeof(*run));
    snprintf(run->label, sizeof(run->label), "%s", label);
    run->target_rate = rate;
    b->run = run;
    b->open_loop = rate > 0;
    b->rate = rate;
    b->issued = b->due = 0;
    b->backlog_head = b->backlog_len = 0;
    b->stuck = false;
    b->today = date_japan_of_unix((int64_t)time(NULL));
    b->run_start_ns = b->t0_ns = cb_now_ns();
    hist_reset(&b->tick_lat);
    b->tick_done = b->tick_decisions = b->tick_errors = 0;
    uv_timer_start(&b->progress_timer, progress, PROGRESS_MS, PROGRESS_MS);
    if (b->open_loop)
        uv_timer_start(&b->tick_timer, open_loop_tick, 1, 1);
    if (b->opt.warmup > 0 && b->opt.requests == 0) {
        b->phase = PH_WARMUP;
        uv_timer_start(&b->phase_timer, warmup_over, (uint64_t)(b->opt.warmup * 1000.0), 0);
    } else {
        begin_window(b);
    }
    cb_issue(b);
}

/*
 * Runs one closed-loop (rate 0) or open-loop run to its end: the window, then
 * every answer of what was intended inside it. Returns -1 when answers never
 * came (a hang of the server: the report says how many).
 */
static int run_once(struct cb *b, struct cb_run *run, double rate, const char *label)
{
    if (!b->opt.quiet)
        fprintf(stderr, "claimbench: %s\n", label);
    start_run(b, run, rate, label);
    while (!run_done(b) && !b->stuck) {
        uv_run(&b->loop, UV_RUN_ONCE);
        if (b->phase == PH_DRAIN && b->outstanding == 0 && b->backlog_len > 0 && !cb_can_send(b)) {
            fprintf(stderr, "claimbench: every connection is gone; %zu requests never sent\n",
                    b->backlog_len);
            run->errors[ERR_UNANSWERED] += b->backlog_len;
            b->backlog_len = 0;
        }
    }
    uv_timer_stop(&b->phase_timer);
    uv_timer_stop(&b->tick_timer);
    uv_timer_stop(&b->progress_timer);
    b->phase = PH_IDLE;
    if (b->stuck) {
        run->errors[ERR_UNANSWERED] += b->outstanding + b->backlog_len;
        b->backlog_len = 0;
        fprintf(stderr, "claimbench: HANG: %zu requests unanswered %d s after the window\n",
                b->outstanding, DRAIN_MS / 1000);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static int init(struct cb *b, int argc, char **argv)
{
    int rc = parse_options(&b->opt, argc, argv);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 1 : -1;
    }
    b->rng = b->opt.rng_seed | 1;
    snprintf(b->prefix, sizeof(b->prefix), "CB%ld-%lld-", (long)getpid(), (long long)time(NULL));
    snprintf(b->auth_line, sizeof(b->auth_line), "Authorization: Bearer %s\r\n", b->opt.key);
    if (uv_loop_init(&b->loop) != 0)
        return -1;
    uv_timer_init(&b->loop, &b->phase_timer);
    uv_timer_init(&b->loop, &b->tick_timer);
    uv_timer_init(&b->loop, &b->progress_timer);
    b->phase_timer.data = b->tick_timer.data = b->progress_timer.data = b;
    if (b->opt.seed > 0 && cb_seed(b) != 0)
        return -1;
    if (b->opt.port == 0)
        return 1; /* seeding was all */
    if (cb_load_subs(b) != 0 || cb_net_init(b) != 0 || cb_connect_all(b) != 0)
        return -1;
    return 0;
}

static size_t run_all(struct cb *b, struct cb_run *runs, int *hang)
{
    char label[48];
    size_t n = 0;
    *hang = 0;
    if (b->opt.nsweep == 0) {
        if (b->opt.rate > 0)
            snprintf(label, sizeof(label), "open loop %.0f/s", b->opt.rate);
        else
            snprintf(label, sizeof(label), "closed loop");
        *hang = run_once(b, &runs[n++], b->opt.rate, label);
        return n;
    }
    for (size_t i = 0; i < b->opt.nsweep && *hang == 0; i++) {
        snprintf(label, sizeof(label), "sweep %.0f/s", b->opt.sweep[i]);
        *hang = run_once(b, &runs[n++], b->opt.sweep[i], label);
    }
    return n;
}

static void shutdown_loop(struct cb *b)
{
    cb_close_all(b);
    uv_close((uv_handle_t *)&b->phase_timer, NULL);
    uv_close((uv_handle_t *)&b->tick_timer, NULL);
    uv_close((uv_handle_t *)&b->progress_timer, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&b->loop) != 0)
        fprintf(stderr, "claimbench: handles left open at exit\n");
}

int main(int argc, char **argv)
{
    static struct cb b;
    static struct cb_run runs[CB_SWEEP_MAX];
    int hang, rc = init(&b, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    size_t n = run_all(&b, runs, &hang);
    uint64_t errors = 0;
    for (size_t i = 0; i < n; i++) {
        cb_report(&b, &runs[i]);
        errors += cb_run_errors(&runs[i]);
    }
    if (hang == 0)
        shutdown_loop(&b);
    int verify_rc = b.opt.verify ? cb_verify(&b) : 0;
    if (b.opt.json_path != NULL && cb_write_json(&b, runs, n, verify_rc) != 0)
        rc = -1;
    if (b.opt.png_path != NULL && n > 1 && cb_plot(&b, runs, n) != 0)
        rc = -1;
    return rc == 0 && errors == 0 && verify_rc == 0 && hang == 0 ? 0 : 1;
}
