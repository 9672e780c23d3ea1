/*
 * claimbench's shared state: options, the seeded subscriptions, the claims it
 * sent, one run's counters and the latency histogram. Internal to the bench
 * (claimbench*.c); nothing here is part of claimd.
 */
#ifndef CLAIMD_BENCH_CLAIMBENCH_H
#define CLAIMD_BENCH_CLAIMBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "adj.h"
#include "date.h"
#include "imei.h"

#define CB_SWEEP_MAX    32
#define CB_REF_MAX      64
#define CB_PREFIX_MAX   32
#define CB_BATCH_MAX    1000
#define CB_STATUS_MAX   600 /* HTTP status codes counted one by one below this */
#define CB_EXAMPLES     4   /* error answers kept verbatim for the report */
#define CB_EXAMPLE_LEN  240
#define CB_CHUNK_CLAIMS 65536 /* claims per chunk of the claim table */
#define CB_REPLAY_RING  4096  /* recently stored claims a replay picks from */

/* ------------------------------------------------------------------------
 * The latency histogram: log-linear, in microseconds
 * ------------------------------------------------------------------------ */

/*
 * Values below 128 us have a bucket each; above, every power of two is cut
 * into 64 buckets (a relative error under 1.6 %), up to 2^40 us.
 */
#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 40
#define HIST_BUCKETS                                                                               \
    ((1 << HIST_SUB_BITS) + (HIST_MAX_BITS - HIST_SUB_BITS) * (1 << (HIST_SUB_BITS - 1)))

struct hist {
    uint64_t n;
    uint64_t max;
    double sum;
    uint64_t counts[HIST_BUCKETS];
};

/** Empties h. */
void hist_reset(struct hist *h);

/** Counts one value (microseconds; larger than 2^40 is clamped). */
void hist_record(struct hist *h, uint64_t us);

/** Adds every count of from to into. */
void hist_merge(struct hist *into, const struct hist *from);

/** The value at quantile q (0..1), an upper bound within 1.6 %, never above the maximum. */
uint64_t hist_quantile(const struct hist *h, double q);

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

/* The claim mix, every share in 0..1. */
struct cb_mix {
    double exchange; /* remedy exchange (else repair) */
    double ios;      /* claims on an iOS device (else Android) */
    double physical; /* physical damage (else natural failure) */
    double over_cap; /* repair estimates above the repair cap */
    double hot;      /* claims sent to the hot subscriptions, whose window is soon full */
    double replay;   /* idempotent replays of a claim already answered 201 */
    size_t hot_subs; /* how many subscriptions are hot */
    int64_t cap;     /* the repair cap the estimates are drawn around */
};

struct cb_options {
    char host[64];
    int port;
    const char *key;
    const char *db_url;    /* runtime role: the subscriptions, and the cross-check */
    const char *owner_url; /* owner role: --seed */
    const char *tenant;
    size_t seed; /* subscriptions to seed first (0: none) */
    size_t connections;
    size_t depth; /* requests in flight per connection (HTTP pipelining) */
    size_t batch; /* claims per POST /v1/claims/batch; 0 sends POST /v1/claims */
    double rate;  /* open loop, requests per second; 0 is a closed loop */
    double duration;
    double warmup;
    uint64_t requests; /* closed loop of a fixed count of requests instead of a duration */
    double sweep[CB_SWEEP_MAX];
    size_t nsweep;
    const char *json_path;
    const char *png_path;
    bool verify;
    bool metrics; /* read claimd's batch sizes from /metrics around each window */
    bool quiet;
    long claimd_pid;
    long postmaster_pid;
    uint64_t rng_seed;
    struct cb_mix mix;
};

/* ------------------------------------------------------------------------
 * Subscriptions and claims
 * ------------------------------------------------------------------------ */

struct cb_sub {
    char ref[CB_REF_MAX + 1];
    char imei[IMEI_LEN + 1];
    bool ios;
    date_t first; /* the first day a claim is covered: the later of registration and activation */
};

enum cb_outcome {
    OUT_NONE = 0, /* never sent */
    OUT_SENT,     /* sent, no answer yet (or none ever: the connection died) */
    OUT_STORED,   /* answered as a new decision (201, or a new item of a batch) */
    OUT_REFUSED,  /* answered with an error: not stored */
};

/* One claim sent, by its number (its claim_ref is the prefix and the number). */
struct cb_claim {
    uint32_t sub;
    date_t incident;
    int32_t estimate; /* -1 for an exchange */
    uint8_t cause;    /* enum adj_cause */
    uint8_t damage;   /* enum adj_damage */
    uint8_t remedy;   /* enum adj_remedy */
    uint8_t outcome;  /* enum cb_outcome */
    uint8_t status;   /* enum adj_status, once stored */
    int8_t use_number;
};

/* A claim of a request: a new one, or a replay of an earlier one. */
struct cb_item {
    uint64_t num;
    bool replay;
};

/* ------------------------------------------------------------------------
 * One run's counters
 * ------------------------------------------------------------------------ */

enum cb_error {
    ERR_5XX = 0,    /* any 5xx answer */
    ERR_STATUS,     /* an answer with a status the request cannot get (4xx, 201 for a replay) */
    ERR_MALFORMED,  /* an answer that is not the JSON the contract promises */
    ERR_MISMATCH,   /* a replay whose decision differs from the first answer */
    ERR_ITEM,       /* a problem object inside a batch's results */
    ERR_CONNECTION, /* a connection lost or refused */
    ERR_UNANSWERED, /* requests still unanswered when the drain gave up */
    ERR_COUNT
};

struct cb_cpu {
    double claimd_s;
    double postgres_s;
    double self_s;
    double busy_s; /* the whole machine */
    double total_s;
    double cpu_wait_s; /* PSI: time some task waited for a CPU (/proc/pressure/cpu) */
    double io_wait_s;  /* PSI: time some task waited for I/O */
    bool ok;
};

struct cb_run {
    char label[48];
    double target_rate; /* 0 for a closed loop */
    double seconds;     /* the measured window */
    uint64_t window_start_ns;
    uint64_t window_end_ns;
    uint64_t requests;  /* answered, intended inside the window */
    uint64_t decisions; /* new decisions, intended inside the window */
    uint64_t done_in_window;
    uint64_t decisions_in_window;
    uint64_t replays;
    uint64_t approved;
    uint64_t denied;
    uint64_t reasons[ADJ_R_COUNT];
    uint64_t status[CB_STATUS_MAX];
    uint64_t errors[ERR_COUNT];
    uint64_t backlog_max; /* open loop: most requests due and not yet sent */
    char examples[CB_EXAMPLES][CB_EXAMPLE_LEN];
    size_t nexamples;
    struct hist lat;
    struct cb_cpu cpu0;
    struct cb_cpu cpu1;
    double batch_sum0, batch_count0, batch_sum1, batch_count1;
    bool batch_ok;
};

/* What the cross-check found in the database after the runs. */
struct cb_verify {
    bool done;
    uint64_t answered_stored; /* claims answered as new decisions */
    uint64_t unknown;         /* claims sent and never answered (a connection lost) */
    uint64_t in_db;           /* claims of this process in the database */
    uint64_t missing;         /* answered as stored, not in the database */
    uint64_t differing;       /* in the database with another status or use number */
    uint64_t unknown_stored;  /* never answered, but stored */
    uint64_t unexpected;      /* in the database, never answered as stored (a refused claim) */
    uint64_t over_windows;    /* windows of the tenant holding more live uses than max_uses */
    uint64_t duplicate_uses;  /* two live approvals with one use number in one window */
};

/* ------------------------------------------------------------------------
 * The bench
 * ------------------------------------------------------------------------ */

struct cb_conn;

enum cb_phase {
    PH_IDLE = 0, /* nothing is issued */
    PH_WARMUP,   /* issuing, not measured */
    PH_WINDOW,   /* issuing, measured */
    PH_DRAIN,    /* nothing new; waiting for the answers */
};

struct cb {
    struct cb_options opt;
    uv_loop_t loop;
    uv_timer_t phase_timer;
    uv_timer_t tick_timer;     /* open loop: issues what is due, every millisecond */
    uv_timer_t progress_timer; /* a progress line every second */
    struct sockaddr_storage addr;
    llhttp_settings_t http;
    char prefix[CB_PREFIX_MAX];
    char auth_line[512];
    date_t today;
    uint64_t rng;

    int64_t tenant_id;
    struct cb_sub *subs;
    size_t nsubs;
    uint32_t *cold[2]; /* indices of the subscriptions that are not hot: Android, iOS */
    size_t ncold[2];
    size_t cursor[2];

    struct cb_claim **chunks;
    size_t nchunks;
    uint64_t next_claim;
    uint64_t ring[CB_REPLAY_RING];
    size_t ring_len;
    size_t ring_pos;

    struct cb_conn *conns;
    size_t nconns;
    struct cb_conn *idle; /* connections with room for one more request */
    size_t open;          /* connections up */
    size_t outstanding;   /* requests written and not answered */
    int metrics_pending;

    enum cb_phase phase;
    bool open_loop;
    double rate;
    uint64_t t0_ns;    /* open loop: the first intended send */
    uint64_t due;      /* open loop: requests intended so far */
    uint64_t *backlog; /* open loop: intended times not yet sent */
    size_t backlog_cap, backlog_head, backlog_len;
    uint64_t issued; /* requests issued in this run (-n counts them) */
    bool stuck;

    struct cb_run *run;
    struct hist tick_lat; /* the progress line's second */
    uint64_t tick_done, tick_decisions, tick_errors;
    uint64_t run_start_ns;
    uint64_t stored_total; /* claims answered as stored, every run */
    struct cb_verify verify;
};

/* claimbench.c */
uint64_t cb_now_ns(void);
uint32_t cb_rand(struct cb *b, uint32_t n);
double cb_rand01(struct cb *b);
void cb_example(struct cb_run *run, const char *what, const char *body, size_t len);
/** After each answer: a fixed-count run (-n) ends with its last answer. */
void cb_answered(struct cb *b);

/* claimbench_claims.c: the mix, request bodies and the checks of the answers */
/** The claim record of number num, allocating its chunk; NULL when out of memory. */
struct cb_claim *cb_claim_at(struct cb *b, uint64_t num);

/** Picks the next claim (new or replay) and records it in *it. */
void cb_next_item(struct cb *b, struct cb_item *it);

/** Writes the JSON of a claim at out; returns its length, or 0 when it does not fit. */
size_t cb_claim_json(struct cb *b, const struct cb_item *it, char *out, size_t cap);

/**
 * Checks and counts the answer of a request of n items (errors in the run,
 * the status and decision mix when measured); returns the new decisions it stored.
 */
size_t cb_check_answer(struct cb *b, const struct cb_item *items, size_t n, int status,
                       const char *body, size_t len, bool measured);

/* claimbench_net.c: connections, the HTTP exchange, the loops */
CLAIMD_MUSTCHECK int cb_net_init(struct cb *b);
CLAIMD_MUSTCHECK int cb_connect_all(struct cb *b);
void cb_issue(struct cb *b);
void cb_open_loop_tick(struct cb *b);
CLAIMD_MUSTCHECK int cb_fetch_metrics(struct cb *b, bool end);
void cb_close_all(struct cb *b);
/** True while a connection is up or coming up: the backlog can still be sent. */
bool cb_can_send(const struct cb *b);

/* claimbench_db.c: seeding, the subscriptions, CPU from /proc, the cross-check */
CLAIMD_MUSTCHECK int cb_seed(struct cb *b);
CLAIMD_MUSTCHECK int cb_load_subs(struct cb *b);
void cb_cpu_sample(const struct cb *b, struct cb_cpu *out);
CLAIMD_MUSTCHECK int cb_verify(struct cb *b);

/* claimbench_report.c: the summary, --json and the --sweep plot */
void cb_report(const struct cb *b, const struct cb_run *run);
uint64_t cb_run_errors(const struct cb_run *run);
CLAIMD_MUSTCHECK int cb_write_json(const struct cb *b, const struct cb_run *runs, size_t nruns,
                                   int verify_rc);
CLAIMD_MUSTCHECK int cb_plot(const struct cb *b, const struct cb_run *runs, size_t nruns);

#endif
