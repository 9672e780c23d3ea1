/*
 * pipeline_bench: decisions per second of the batched decision pipeline driven
 * directly (no HTTP) with K claims kept in flight over the 'bench' tenant of
 * bench/seed.sql; also mean batch size, retries, errors, latency and CPU split.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <uv.h>

#include "dbpool.h"
#include "log.h"
#include "pipeline.h"
#include "procstat.h"
#include "store.h"

#define SERIES_MAX  16
#define LATENCY_MAX (1u << 22) /* latencies kept per run; later ones are dropped */
#define CODES_MAX   16
#define WINDOW_DAYS 300   /* incidents fall in the last WINDOW_DAYS days (seed.sql) */
#define DRAIN_MS    90000 /* longer than the job timeout: an unanswered claim is a hang */

struct options {
    const char *url;
    const char *tenant;
    size_t connections;
    double seconds;
    double warmup;
    size_t max_batch;
    size_t in_flight[SERIES_MAX];
    size_t nseries;
};

struct bench_sub {
    char ref[REF_MAX + 1];
    char imei[IMEI_LEN];
};

struct slot {
    struct pipeline_req req;
    uint64_t start_ns;
    struct bench *bench;
};

/* CPU time consumed so far: this process, the cluster's processes, the machine. */
struct cpu_sample {
    double self_s;
    double postgres_s;
    double machine_busy_s;
    double machine_total_s;
};

/* What one run counts; reset before each. */
struct run {
    size_t in_flight;
    bool measuring;
    bool submitting;
    bool stuck; /* claims still unanswered DRAIN_MS after the window */
    size_t active;
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t decided; /* rc 0 within the measured window */
    uint64_t approved;
    uint64_t replayed;
    uint64_t errors;
    int codes[CODES_MAX];
    uint64_t code_counts[CODES_MAX];
    size_t ncodes;
    uint32_t *latency_us;
    size_t nlatency;
    struct pipeline_stats stats0;
    struct pipeline_stats stats1;
    struct cpu_sample cpu0;
    struct cpu_sample cpu1;
};

struct bench {
    struct options opt;
    uv_loop_t loop;
    uv_timer_t timer;
    struct dbpool pool;
    struct pgconn_config cfg;
    struct pipeline *pipeline;
    struct policy policies[POLICY_VERSIONS_MAX];
    struct policy_set set;
    int64_t tenant_id;
    int64_t key_id;
    long postmaster; /* pid of the server's postmaster when local, else 0 */
    struct bench_sub *subs;
    size_t nsubs;
    date_t today;
    char prefix[32];
    uint64_t next_ref;
    uint64_t stored; /* claims answered rc 0 and not replayed, over every run */
    uint64_t rng;
    struct slot *slots;
    struct run run;
};

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t rnd(struct bench *b, uint32_t n)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (uint32_t)(b->rng % n);
}

static void usage(void)
{
    fputs("usage: pipeline_bench [options]\n"
          "  --database-url URL   runtime role URL (default $CLAIMD_DATABASE_URL)\n"
          "  --tenant NAME        the seeded tenant (default bench)\n"
          "  --connections N      pool connections = batch slots (default 4)\n"
          "  --in-flight K[,K..]  claims kept in flight, one run each (default 1,8,64,256)\n"
          "  --seconds S          length of each run (default 10)\n"
          "  --warmup S           unreported run at the largest K first (default 1)\n"
          "  --max-batch N        claims per transaction (default 256)\n",
          stderr);
}

static int parse_series(struct options *o, const char *s)
{
    o->nseries = 0;
    while (*s != '\0') {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000 || o->nseries == SERIES_MAX)
            return -1;
        o->in_flight[o->nseries++] = (size_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return -1;
    }
    return o->nseries > 0 ? 0 : -1;
}

static int parse_options(struct options *o, int argc, char **argv)
{
    *o = (struct options){getenv("CLAIMD_DATABASE_URL"), "bench", 4, 10.0, 1.0, 256, {0}, 0};
    int rc = parse_series(o, "1,8,64,256");
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(a, "--database-url") == 0)
            o->url = v;
        else if (strcmp(a, "--tenant") == 0)
            o->tenant = v;
        else if (strcmp(a, "--connections") == 0)
            o->connections = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--in-flight") == 0)
            rc = parse_series(o, v);
        else if (strcmp(a, "--seconds") == 0)
            o->seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = atof(v);
        else if (strcmp(a, "--max-batch") == 0)
            o->max_batch = (size_t)strtoul(v, NULL, 10);
        else
            return -1;
    }
    bool ok = rc == 0 && o->url != NULL && o->url[0] != '\0' && o->connections >= 1 &&
              o->connections <= 64 && o->seconds > 0 && o->warmup >= 0 && o->max_batch >= 1 &&
              o->max_batch <= ADJ_BATCH_MAX;
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * The seeded tenant, read once before the loop starts (blocking libpq)
 * ------------------------------------------------------------------------ */

static PGresult *query(PGconn *c, const char *sql, const char *param)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(c, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pipeline_bench: %s", PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int read_subs(struct bench *b, PGconn *c)
{
    char tenant[24];
    snprintf(tenant, sizeof(tenant), "%lld", (long long)b->tenant_id);
    PGresult *res = query(c,
                          "SELECT s.subscription_ref, d.imei FROM subscriptions s JOIN devices d "
                          "ON d.tenant_id = s.tenant_id AND d.subscription_id = s.id "
                          "WHERE s.tenant_id = $1::bigint AND s.cancelled_on IS NULL ORDER BY s.id",
                          tenant);
    if (res == NULL)
        return -1;
    b->nsubs = (size_t)PQntuples(res);
    b->subs = calloc(b->nsubs > 0 ? b->nsubs : 1, sizeof(*b->subs));
    for (size_t i = 0; b->subs != NULL && i < b->nsubs; i++) {
        snprintf(b->subs[i].ref, sizeof(b->subs[i].ref), "%s", PQgetvalue(res, (int)i, 0));
        memcpy(b->subs[i].imei, PQgetvalue(res, (int)i, 1), IMEI_LEN);
    }
    PQclear(res);
    return b->subs != NULL && b->nsubs > 0 ? 0 : -1;
}

/* The parent of a local backend, read from /proc; 0 when it cannot be seen. */
static long postmaster_of(int backend)
{
    char path[64], line[512];
    long ppid = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", backend);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char *paren = strrchr(line, ')');
    if (paren == NULL || sscanf(paren + 2, "%*c %ld", &ppid) != 1)
        return 0;
    return ppid;
}

/* The tenant's id, its first live API key and its subscriptions with their IMEIs. */
static int load_tenant(struct bench *b)
{
    PGconn *c = PQconnectdb(b->opt.url);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pipeline_bench: %s", PQerrorMessage(c));
        goto out;
    }
    PGresult *res = query(c,
                          "SELECT t.id, (SELECT min(k.id) FROM api_keys k WHERE k.tenant_id = t.id "
                          "AND k.revoked_at IS NULL) FROM tenants t WHERE t.name = $1",
                          b->opt.tenant);
    if (res == NULL)
        goto out;
    b->postmaster = postmaster_of(PQbackendPID(c));
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
        b->tenant_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        b->key_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        rc = read_subs(b, c);
    }
    PQclear(res);
    if (rc != 0)
        fprintf(stderr,
                "pipeline_bench: tenant '%s' with a key and devices not found "
                "(run bench/seed.sql)\n",
                b->opt.tenant);
out:
    PQfinish(c);
    return rc;
}

/* ------------------------------------------------------------------------
 * CPU accounting from /proc (Linux): who burns the two cores
 * ------------------------------------------------------------------------ */

static void cpu_sample(struct cpu_sample *s, long postmaster)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    s->self_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    s->postgres_s = procstat_cluster_seconds(postmaster);
    procstat_machine_seconds(&s->machine_busy_s, &s->machine_total_s);
}

/* ------------------------------------------------------------------------
 * Loop, pool, policies, pipeline
 * ------------------------------------------------------------------------ */

static void policies_done(struct store_op *op)
{
    *(bool *)op->data = true;
}

/* The policy versions from the database (STORE_POLICIES), else policy_default(). */
static void load_policies(struct bench *b)
{
    static struct store_op op;
    struct store st = {&b->pool, NULL, DATE_NONE};
    bool done = false;
    memset(&op, 0, sizeof(op));
    op.kind = STORE_POLICIES;
    op.policies = b->policies;
    op.done = policies_done;
    op.data = &done;
    if (store_submit(&st, &op) == 0) {
        while (!done)
            uv_run(&b->loop, UV_RUN_ONCE);
    }
    if (done && op.rc == 0 && op.npolicies > 0) {
        b->set = (struct policy_set){b->policies, op.npolicies};
        return;
    }
    fprintf(stderr, "pipeline_bench: policies not loaded (%s); using policy_default()\n",
            claimd_rc_name(done ? op.rc : CLAIMD_EUNAVAIL));
    policy_default(&b->policies[0]);
    b->set = (struct policy_set){b->policies, 1};
}

static int start_pool(struct bench *b)
{
    b->cfg = (struct pgconn_config){.conninfo = b->opt.url,
                                    .statement_timeout_ms = 30000,
                                    .connect_timeout_ms = 5000,
                                    .job_timeout_ms = 60000,
                                    .backoff_min_ms = 50,
                                    .backoff_max_ms = 1000};
    b->cfg.statements[0] = (struct pgconn_statements){pipeline_statements, pipeline_nstatements};
    b->cfg.statements[1] = (struct pgconn_statements){store_statements, store_nstatements};
    if (uv_loop_init(&b->loop) != 0 || uv_timer_init(&b->loop, &b->timer) != 0 ||
        dbpool_init(&b->pool, &b->loop, &b->cfg, b->opt.connections, 64) != 0)
        return -1;
    b->timer.data = b;
    dbpool_start(&b->pool);
    uint64_t give_up = now_ns() + 10 * 1000000000ull;
    while (dbpool_up(&b->pool) < b->opt.connections && now_ns() < give_up)
        uv_run(&b->loop, UV_RUN_NOWAIT);
    if (dbpool_up(&b->pool) < b->opt.connections) {
        fprintf(stderr, "pipeline_bench: only %zu of %zu connections came up\n",
                dbpool_up(&b->pool), b->opt.connections);
        return -1;
    }
    load_policies(b);
    struct pipeline_config pc = {
        .max_batch = b->opt.max_batch, .max_queue = 1u << 20, .max_retries = 5};
    return pipeline_create(&b->pipeline, &b->pool, &pc, &b->set) == 0 ? 0 : -1;
}

static void pool_closed(struct dbpool *p)
{
}

static void stop_pool(struct bench *b)
{
    if (b->pipeline != NULL)
        pipeline_destroy(b->pipeline);
    dbpool_close(&b->pool, pool_closed);
    uv_close((uv_handle_t *)&b->timer, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&b->loop) != 0)
        fprintf(stderr, "pipeline_bench: handles left open at exit\n");
}

/* ------------------------------------------------------------------------
 * Claims and the closed loop: each completion submits the next claim
 * ------------------------------------------------------------------------ */

static void claim_done(struct pipeline_req *r);

/*
 * The same mix as bench/naive_claim.sql: a random seeded subscription and its
 * device, an incident in the last WINDOW_DAYS days, half natural failures,
 * half physical damage (any of the four kinds), one exchange in three, repair
 * estimates of 1,000..90,000 yen, and a claim_ref unique to this process.
 */
static void make_claim(struct bench *b, struct slot *s)
{
    struct pipeline_req *r = &s->req;
    const struct bench_sub *sub = &b->subs[rnd(b, (uint32_t)b->nsubs)];
    memset(r, 0, sizeof(*r));
    r->tenant_id = b->tenant_id;
    r->api_key_id = b->key_id;
    snprintf(r->claim_ref, sizeof(r->claim_ref), "%s%llu", b->prefix,
             (unsigned long long)b->next_ref++);
    memcpy(r->subscription_ref, sub->ref, sizeof(r->subscription_ref));
    memcpy(r->claim.imei, sub->imei, IMEI_LEN);
    r->claim.incident_on = b->today - (date_t)rnd(b, WINDOW_DAYS);
    r->claim.cause = rnd(b, 2) == 0 ? ADJ_CAUSE_NATURAL_FAILURE : ADJ_CAUSE_PHYSICAL_DAMAGE;
    r->claim.damage = r->claim.cause == ADJ_CAUSE_PHYSICAL_DAMAGE
                          ? (enum adj_damage)(ADJ_DAMAGE_SCREEN + rnd(b, 4))
                          : ADJ_DAMAGE_NONE;
    r->claim.remedy = rnd(b, 3) == 0 ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
    r->claim.repair_estimate =
        r->claim.remedy == ADJ_REMEDY_REPAIR ? 1000 + (int64_t)rnd(b, 89001) : -1;
    r->done = claim_done;
    r->data = s;
    if (pipeline_fingerprint(r) != 0)
        abort(); /* SHA-256 on a stack context: cannot fail unless memory is corrupt */
}

static void count_code(struct run *run, int rc)
{
    size_t i = 0;
    while (i < run->ncodes && run->codes[i] != rc)
        i++;
    if (i == run->ncodes && run->ncodes < CODES_MAX)
        run->codes[run->ncodes++] = rc;
    if (i < run->ncodes)
        run->code_counts[i]++;
    run->errors++;
}

/* Submits slot s afresh; a refusal is counted and the slot leaves the loop. */
static void submit(struct bench *b, struct slot *s)
{
    make_claim(b, s);
    s->start_ns = now_ns();
    int rc = pipeline_submit(b->pipeline, &s->req);
    if (rc != 0) {
        count_code(&b->run, rc);
        return;
    }
    b->run.active++;
}

static void claim_done(struct pipeline_req *r)
{
    struct slot *s = r->data;
    struct bench *b = s->bench;
    struct run *run = &b->run;
    run->active--;
    if (r->rc == 0 && !r->replayed)
        b->stored++;
    if (run->measuring) {
        if (r->rc != 0) {
            count_code(run, r->rc);
        } else {
            run->decided++;
            run->approved += r->rec.status == ADJ_STATUS_APPROVED;
            run->replayed += r->replayed;
        }
        if (run->nlatency < LATENCY_MAX)
            run->latency_us[run->nlatency++] = (uint32_t)((now_ns() - s->start_ns) / 1000);
    } else if (r->rc != 0) {
        count_code(run, r->rc);
    }
    if (run->submitting)
        submit(b, s);
}

static void drain_over(uv_timer_t *t)
{
    struct bench *b = t->data;
    b->run.stuck = true;
}

/* The end of the measured window: sample everything, stop refilling. */
static void window_over(uv_timer_t *t)
{
    struct bench *b = t->data;
    b->run.end_ns = now_ns();
    b->run.measuring = false;
    b->run.submitting = false;
    pipeline_stats(b->pipeline, &b->run.stats1);
    cpu_sample(&b->run.cpu1, b->postmaster);
    uv_timer_start(&b->timer, drain_over, DRAIN_MS, 0);
}

/* ------------------------------------------------------------------------
 * One run and its report
 * ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(struct run *run, double q)
{
    if (run->nlatency == 0)
        return 0;
    size_t i = (size_t)(q * (double)(run->nlatency - 1) + 0.5);
    return run->latency_us[i] / 1000.0;
}

static void report(struct run *run, const char *label)
{
    double secs = (double)(run->end_ns - run->start_ns) / 1e9;
    uint64_t batches = run->stats1.batches - run->stats0.batches;
    uint64_t claims = run->stats1.claims - run->stats0.claims;
    const struct cpu_sample *c0 = &run->cpu0, *c1 = &run->cpu1;
    double busy = c1->machine_busy_s - c0->machine_busy_s;
    double total = c1->machine_total_s - c0->machine_total_s;
    /* Busy time of the machine that is neither this process nor the cluster. */
    double other = busy - (c1->self_s - c0->self_s) - (c1->postgres_s - c0->postgres_s);
    qsort(run->latency_us, run->nlatency, sizeof(uint32_t), cmp_u32);
    printf("%sin_flight=%zu decisions/s=%.0f mean_batch=%.1f decided=%llu approved=%.1f%% "
           "batches=%llu retries=%llu failed_batches=%llu errors=%llu p50_ms=%.2f "
           "p99_ms=%.2f cpu_bench=%.0f%% cpu_postgres=%.0f%% cpu_other=%.0f%% "
           "machine_busy=%.0f%%\n",
           label, run->in_flight, (double)run->decided / secs,
           batches > 0 ? (double)claims / (double)batches : 0.0, (unsigned long long)run->decided,
           run->decided > 0 ? 100.0 * (double)run->approved / (double)run->decided : 0.0,
           (unsigned long long)batches,
           (unsigned long long)(run->stats1.retries - run->stats0.retries),
           (unsigned long long)(run->stats1.failed - run->stats0.failed),
           (unsigned long long)run->errors, percentile_ms(run, 0.50), percentile_ms(run, 0.99),
           100.0 * (c1->self_s - c0->self_s) / secs,
           100.0 * (c1->postgres_s - c0->postgres_s) / secs, 100.0 * other / secs,
           total > 0 ? 100.0 * busy / total : 0.0);
    for (size_t i = 0; i < run->ncodes; i++)
        printf("  error %s (%d): %llu\n", claimd_rc_name(run->codes[i]), run->codes[i],
               (unsigned long long)run->code_counts[i]);
    if (run->replayed > 0)
        printf("  unexpected replays: %llu\n", (unsigned long long)run->replayed);
    fflush(stdout);
}

/*
 * Keeps k claims in flight for `seconds`, then waits for the last ones. A
 * claim never answered is a pipeline bug: say so and give up (the pool cannot
 * be closed cleanly under a job that never ends).
 */
static void run_series(struct bench *b, size_t k, double seconds, const char *label)
{
    struct run *run = &b->run;
    uint32_t *lat = run->latency_us;
    memset(run, 0, sizeof(*run));
    run->latency_us = lat;
    run->in_flight = k;
    b->today = date_japan_of_unix((int64_t)time(NULL));
    pipeline_stats(b->pipeline, &run->stats0);
    cpu_sample(&run->cpu0, b->postmaster);
    run->start_ns = now_ns();
    run->measuring = run->submitting = true;
    uv_timer_start(&b->timer, window_over, (uint64_t)(seconds * 1000.0), 0);
    for (size_t i = 0; i < k; i++)
        submit(b, &b->slots[i]);
    while ((run->active > 0 && !run->stuck) || run->measuring)
        uv_run(&b->loop, UV_RUN_ONCE);
    uv_timer_stop(&b->timer);
    if (run->stuck) {
        pipeline_stats(b->pipeline, &run->stats1);
        fprintf(stderr,
                "pipeline_bench: HANG: %zu claims unanswered %d s after the window "
                "(queued %zu, batches in flight %zu)\n",
                run->active, DRAIN_MS / 1000, run->stats1.queued, run->stats1.in_flight);
        exit(1);
    }
    report(run, label);
}

/* Every claim answered as stored must be in the database, and no other. */
static int verify(struct bench *b)
{
    char pattern[40];
    PGconn *c = PQconnectdb(b->opt.url);
    snprintf(pattern, sizeof(pattern), "%s%%", b->prefix);
    PGresult *res = PQstatus(c) == CONNECTION_OK
                        ? query(c, "SELECT count(*) FROM claims WHERE claim_ref LIKE $1", pattern)
                        : NULL;
    int rc = -1;
    if (res != NULL) {
        unsigned long long n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        printf("verify: %llu claims stored under %s*, %llu answered as stored: %s\n", n, b->prefix,
               (unsigned long long)b->stored, n == b->stored ? "ok" : "MISMATCH");
        rc = n == b->stored ? 0 : -1;
        PQclear(res);
    }
    PQfinish(c);
    return rc;
}

int main(int argc, char **argv)
{
    static struct bench b;
    if (parse_options(&b.opt, argc, argv) != 0) {
        usage();
        return 2;
    }
    log_set_level(LOG_WARN);
    b.rng = ((uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 32) | 1;
    snprintf(b.prefix, sizeof(b.prefix), "P%ld-%lld-", (long)getpid(), (long long)time(NULL));
    size_t kmax = 0;
    for (size_t i = 0; i < b.opt.nseries; i++)
        kmax = b.opt.in_flight[i] > kmax ? b.opt.in_flight[i] : kmax;
    b.slots = calloc(kmax, sizeof(*b.slots));
    b.run.latency_us = calloc(LATENCY_MAX, sizeof(uint32_t));
    if (b.slots == NULL || b.run.latency_us == NULL || load_tenant(&b) != 0 || start_pool(&b) != 0)
        return 1;
    for (size_t i = 0; i < kmax; i++)
        b.slots[i].bench = &b;
    printf("pipeline_bench: %zu subscriptions, %zu connections, max_batch %zu, %.0f s per run, "
           "policies %zu\n",
           b.nsubs, b.opt.connections, b.opt.max_batch, b.opt.seconds, b.set.n);
    if (b.opt.warmup > 0)
        run_series(&b, kmax, b.opt.warmup, "warmup ");
    for (size_t i = 0; i < b.opt.nseries; i++)
        run_series(&b, b.opt.in_flight[i], b.opt.seconds, "");
    stop_pool(&b);
    int rc = verify(&b);
    free(b.slots);
    free(b.run.latency_us);
    free(b.subs);
    return rc == 0 ? 0 : 1;
}
