/*
 * One event loop on its own thread: its listening socket, HTTP server,
 * database pool, pipeline, store and key cache. The main thread starts
 * workers, and asks them to drain through a uv_async_t; each reports
 * liveness through a heartbeat timestamp.
 */
#ifndef CLAIMD_SERVER_WORKER_H
#define CLAIMD_SERVER_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "api.h"
#include "config.h"
#include "dbpool.h"
#include "http.h"

struct worker {
    int index;
    int listen_fd;
    struct config cfg; /* the loop's own copy; reloads update its reloadable members */
    const struct policy_set *policies;
    struct metrics_registry *registry;
    uv_thread_t thread;
    uv_sem_t ready; /* posted once the loop is set up (or failed to be) */
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t heartbeat;
    uv_timer_t drain_timer;
    atomic_uint_fast64_t beat; /* uv_now() of the loop's last heartbeat */
    atomic_int stop;           /* set before wake: drain and exit */
    uv_mutex_t reload_lock;    /* guards the three members below */
    struct config reload_cfg;  /* a copy: the main thread may reload again meanwhile */
    bool has_reload_cfg;
    const struct policy_set *reload_policies;
    _Atomic(const struct policy *) using_policies; /* the versions the loop decides with */
    struct pgconn_config pgcfg;
    struct dbpool pool;
    bool pool_closing;
    struct api api;
    struct http_config httpcfg;
    struct http_server http;
    int rc; /* 0, or why the loop could not start */
};

/**
 * Starts the worker's thread and waits until its loop is set up; the socket
 * must be bound (not yet listening). On an error the thread has exited.
 */
CLAIMD_MUSTCHECK int worker_start(struct worker *w, int index, int listen_fd,
                                  const struct config *cfg, const struct policy_set *policies,
                                  struct metrics_registry *registry);

/**
 * Hands the worker new settings (copied; only the reloadable ones are taken)
 * and policy versions (NULL: unchanged); it switches between two events,
 * without dropping a request. The versions must stay valid while worker_uses
 * says so.
 */
void worker_reload(struct worker *w, const struct config *cfg, const struct policy_set *policies);

/** True while the worker may still read versions (an array of struct policy). */
bool worker_uses(struct worker *w, const struct policy *versions);

/** Asks the worker to stop accepting, finish in-flight requests and exit. */
void worker_stop(struct worker *w);

/** Waits for the worker's thread; returns its rc. */
int worker_join(struct worker *w);

#endif
