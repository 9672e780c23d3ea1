/*
 * The connection pool of one loop: owns its pgconn array and the queue of jobs
 * waiting for a connection; hands a queued job to each connection that turns
 * idle, and fails the queue when no connection is left to serve it.
 */
#include "dbpool.h"

#include <stdlib.h>

static void conn_idle(struct pgconn *c);
static void conn_down(struct pgconn *c);
static void conn_closed(struct pgconn *c);

static const struct pgconn_hooks hooks = {conn_idle, conn_down, conn_closed};

int dbpool_init(struct dbpool *p, uv_loop_t *loop, const struct pgconn_config *cfg, size_t nconns,
                size_t max_queue)
{
    p->loop = loop;
    p->nconns = 0;
    p->max_queue = max_queue;
    p->queued = 0;
    p->_head = p->_tail = NULL;
    p->_change_cb = NULL;
    p->_closing = 0;
    p->conns = calloc(nconns, sizeof(*p->conns));
    if (p->conns == NULL)
        return UV_ENOMEM;
    for (size_t i = 0; i < nconns; i++) {
        int rc = pgconn_init(&p->conns[i], loop, cfg, &hooks, p);
        if (rc != 0)
            return rc;
        p->nconns++;
    }
    return 0;
}

void dbpool_start(struct dbpool *p)
{
    for (size_t i = 0; i < p->nconns; i++)
        pgconn_start(&p->conns[i]);
}

void dbpool_on_change(struct dbpool *p, dbpool_change_cb cb, void *arg)
{
    p->_change_cb = cb;
    p->_change_arg = arg;
}

static struct pgjob *pop(struct dbpool *p)
{
    struct pgjob *job = p->_head;
    if (job != NULL) {
        p->_head = job->_next;
        if (p->_head == NULL)
            p->_tail = NULL;
        job->_next = NULL;
        p->queued--;
    }
    return job;
}

struct pgconn *dbpool_idle_conn(struct dbpool *p)
{
    for (size_t i = 0; i < p->nconns; i++) {
        if (p->conns[i].state == PGCONN_IDLE)
            return &p->conns[i];
    }
    return NULL;
}

size_t dbpool_up(const struct dbpool *p)
{
    size_t up = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        enum pgconn_state s = p->conns[i].state;
        up += s == PGCONN_IDLE || s == PGCONN_BUSY;
    }
    return up;
}

bool dbpool_can_serve(const struct dbpool *p)
{
    for (size_t i = 0; i < p->nconns; i++) {
        enum pgconn_state s = p->conns[i].state;
        if (s == PGCONN_IDLE || s == PGCONN_BUSY || s == PGCONN_CONNECTING || s == PGCONN_PREPARING)
            return true;
    }
    return false;
}

/* Runs queued jobs on the idle connection c until one starts. */
static void feed(struct dbpool *p, struct pgconn *c)
{
    struct pgjob *job;
    while (c->state == PGCONN_IDLE && (job = pop(p)) != NULL) {
        if (pgconn_run(c, job) != 0)
            job->ops->done(job, CLAIMD_EUNAVAIL);
    }
}

int dbpool_submit(struct dbpool *p, struct pgjob *job)
{
    if (p->_closing > 0 || !dbpool_can_serve(p))
        return CLAIMD_EUNAVAIL;
    struct pgconn *c = dbpool_idle_conn(p);
    if (c != NULL && p->_head == NULL)
        return pgconn_run(c, job);
    if (p->queued >= p->max_queue)
        return CLAIMD_EOVERLOAD;
    job->_next = NULL;
    if (p->_tail != NULL)
        p->_tail->_next = job;
    else
        p->_head = job;
    p->_tail = job;
    p->queued++;
    return 0;
}

static void fail_queue(struct dbpool *p)
{
    struct pgjob *job;
    while ((job = pop(p)) != NULL)
        job->ops->done(job, CLAIMD_EUNAVAIL);
}

static void conn_idle(struct pgconn *c)
{
    struct dbpool *p = c->owner;
    feed(p, c);
    if (c->state == PGCONN_IDLE && p->_change_cb != NULL && p->_closing == 0)
        p->_change_cb(p, p->_change_arg);
}

static void conn_down(struct pgconn *c)
{
    struct dbpool *p = c->owner;
    if (!dbpool_can_serve(p))
        fail_queue(p);
    if (p->_change_cb != NULL && p->_closing == 0)
        p->_change_cb(p, p->_change_arg);
}

static void conn_closed(struct pgconn *c)
{
    struct dbpool *p = c->owner;
    if (--p->_closing > 0)
        return;
    free(p->conns);
    p->conns = NULL;
    p->nconns = 0;
    if (p->_closed_cb != NULL)
        p->_closed_cb(p);
}

void dbpool_close(struct dbpool *p, void (*cb)(struct dbpool *p))
{
    p->_closed_cb = cb;
    p->_closing = p->nconns;
    fail_queue(p);
    if (p->nconns == 0) {
        if (cb != NULL)
            cb(p);
        return;
    }
    for (size_t i = 0; i < p->nconns; i++)
        pgconn_close(&p->conns[i]);
}
