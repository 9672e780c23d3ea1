/*
 * A loop's pool of PostgreSQL connections and its bounded FIFO of jobs
 * waiting for one. A job never waits on a pool with no connection up: it is
 * refused at once, or failed when the last connection goes down.
 */
#ifndef CLAIMD_SERVER_DBPOOL_H
#define CLAIMD_SERVER_DBPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgconn.h"

struct dbpool;

/**
 * Called when a connection turns idle with no job queued (the owner may
 * submit) and when a connection goes down (the owner may fail its waiters).
 */
typedef void (*dbpool_change_cb)(struct dbpool *p, void *arg);

struct dbpool {
    uv_loop_t *loop;
    struct pgconn *conns; /* allocated once by dbpool_init */
    size_t nconns;
    size_t max_queue;
    size_t queued;
    struct pgjob *_head;
    struct pgjob *_tail;
    dbpool_change_cb _change_cb;
    void *_change_arg;
    size_t _closing;
    void (*_closed_cb)(struct dbpool *p);
};

/** Allocates nconns connections (start-up only) with the given settings. */
CLAIMD_MUSTCHECK int dbpool_init(struct dbpool *p, uv_loop_t *loop, const struct pgconn_config *cfg,
                                 size_t nconns, size_t max_queue);

/** Starts every connection. */
void dbpool_start(struct dbpool *p);

/** Sets the hook run when a connection has nothing to do or goes down. */
void dbpool_on_change(struct dbpool *p, dbpool_change_cb cb, void *arg);

/**
 * Runs job on an idle connection, or queues it. Returns 0 (done() will run),
 * CLAIMD_EUNAVAIL when no connection is up or connecting, CLAIMD_EOVERLOAD when
 * the queue is full; done() does not run on an error.
 */
CLAIMD_MUSTCHECK int dbpool_submit(struct dbpool *p, struct pgjob *job);

/** An idle connection, or NULL. */
struct pgconn *dbpool_idle_conn(struct dbpool *p);

/** Connections ready for work or running it. */
size_t dbpool_up(const struct dbpool *p);

/** True while some connection is up or on its way up (a job can be served). */
bool dbpool_can_serve(const struct dbpool *p);

/** Closes every connection; queued jobs fail with CLAIMD_EUNAVAIL; cb when done. */
void dbpool_close(struct dbpool *p, void (*cb)(struct dbpool *p));

#endif
