/*
 * The PostgreSQL connection state machine. It owns the PGconn, its uv_poll_t
 * and a uv_timer_t (connect timeout, job timeout, reconnection backoff); the
 * owner (a pool) is told when the connection becomes idle or goes down. The
 * uv_poll_t is closed before PQfinish closes the socket it watches.
 */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static void on_poll(uv_poll_t *h, int status, int events);
static void fail(struct pgconn *c, const char *why);

static void set_state(struct pgconn *c, enum pgconn_state s)
{
    c->state = s;
}

static void ignore_notice(void *arg, const char *message)
{
}

int pgconn_init(struct pgconn *c, uv_loop_t *loop, const struct pgconn_config *cfg,
                const struct pgconn_hooks *hooks, void *owner)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->cfg = cfg;
    c->hooks = hooks;
    c->owner = owner;
    c->_poll_fd = -1;
    c->_backoff_ms = cfg->backoff_min_ms;
    int rc = uv_timer_init(loop, &c->_timer);
    if (rc != 0)
        return rc;
    c->_timer.data = c;
    c->_handles_open = 1;
    set_state(c, PGCONN_DOWN);
    return 0;
}

/* ------------------------------------------------------------------------
 * Polling the socket
 * ------------------------------------------------------------------------ */

static void closed_handle(uv_handle_t *h)
{
    struct pgconn *c = h->data;
    c->_handles_open--;
    if (c->state == PGCONN_CLOSING && c->_handles_open == 0) {
        set_state(c, PGCONN_CLOSED);
        if (c->hooks->closed != NULL)
            c->hooks->closed(c);
    }
}

static void poll_close(struct pgconn *c)
{
    if (!c->_poll_open)
        return;
    c->_poll_open = false;
    c->_poll_fd = -1;
    uv_close((uv_handle_t *)&c->_poll, closed_handle);
}

/*
 * Watches the connection's socket for `events`. libpq may switch sockets while
 * connecting; uv_poll_t cannot follow, so the old handle is closed and a new
 * one is started in the same struct once libuv has let go of it (a closing
 * handle's memory stays in use until its close callback). uv_is_closing()
 * cannot tell: it stays true after the callback too. _handles_open can: it
 * counts the timer, plus the poll handle until its close callback has run.
 */
static void poll_want(struct pgconn *c, int events)
{
    int fd = PQsocket(c->_pg);
    if (c->_poll_open && fd != c->_poll_fd)
        poll_close(c);
    if (!c->_poll_open) {
        if (c->_handles_open > 1 || fd < 0 || uv_poll_init(c->loop, &c->_poll, fd) != 0) {
            fail(c, "cannot watch the database socket");
            return;
        }
        c->_poll.data = c;
        c->_poll_open = true;
        c->_poll_fd = fd;
        c->_handles_open++;
        c->_poll_events = 0;
    }
    if (events != c->_poll_events && uv_poll_start(&c->_poll, events, on_poll) != 0) {
        fail(c, "cannot watch the database socket");
        return;
    }
    c->_poll_events = events;
}

/* Flushes libpq's output; watches for writability while some is left. */
static int flush(struct pgconn *c)
{
    int rc = PQflush(c->_pg);
    if (rc < 0)
        return CLAIMD_EUNAVAIL;
    poll_want(c, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return 0;
}

/* ------------------------------------------------------------------------
 * Losing and re-making the connection
 * ------------------------------------------------------------------------ */

static void on_reconnect_timer(uv_timer_t *t)
{
    pgconn_start(t->data);
}

static void finish_job(struct pgconn *c, int rc)
{
    struct pgjob *job = c->_job;
    c->_job = NULL;
    c->_queries = 0;
    c->_syncs = 0;
    if (job != NULL)
        job->ops->done(job, rc);
}

/*
 * Drops the PGconn. The poll handle is closed first: PQfinish closes the
 * socket, and libuv must not be watching a closed (or reused) descriptor.
 */
static void drop(struct pgconn *c)
{
    poll_close(c);
    uv_timer_stop(&c->_timer);
    if (c->_pg != NULL) {
        PQfinish(c->_pg);
        c->_pg = NULL;
    }
}

static void fail(struct pgconn *c, const char *why)
{
    if (c->state == PGCONN_CLOSING || c->state == PGCONN_CLOSED || c->state == PGCONN_DOWN)
        return;
    bool was_up = c->state == PGCONN_IDLE || c->state == PGCONN_BUSY;
    log_msg(was_up ? LOG_WARN : LOG_INFO, "db", "connection %s: %s; retrying in %d ms",
            was_up ? "lost" : "failed", why, c->_backoff_ms);
    drop(c);
    set_state(c, PGCONN_DOWN);
    uv_timer_start(&c->_timer, on_reconnect_timer, (uint64_t)c->_backoff_ms, 0);
    c->_backoff_ms =
        c->_backoff_ms * 2 > c->cfg->backoff_max_ms ? c->cfg->backoff_max_ms : c->_backoff_ms * 2;
    finish_job(c, CLAIMD_EUNAVAIL);
    if (c->hooks->down != NULL && c->state == PGCONN_DOWN)
        c->hooks->down(c);
}

void pgconn_reset(struct pgconn *c)
{
    fail(c, "reset by its owner");
}

static void on_timeout(uv_timer_t *t)
{
    struct pgconn *c = t->data;
    fail(c, c->state == PGCONN_BUSY ? "job timed out" : "connection attempt timed out");
}

/* ------------------------------------------------------------------------
 * Connecting and preparing
 * ------------------------------------------------------------------------ */

static int prepare_all(struct pgconn *c)
{
    for (size_t set = 0; set < PGCONN_STATEMENT_SETS; set++) {
        const struct pgconn_statements *ss = &c->cfg->statements[set];
        for (size_t i = 0; i < ss->n; i++) {
            if (!PQsendPrepare(c->_pg, ss->v[i].name, ss->v[i].sql, 0, NULL))
                return CLAIMD_EUNAVAIL;
            c->_queries++;
        }
    }
    return pgconn_sync(c);
}

static void connected(struct pgconn *c)
{
    if (PQsetnonblocking(c->_pg, 1) != 0 || !PQenterPipelineMode(c->_pg)) {
        fail(c, PQerrorMessage(c->_pg));
        return;
    }
    PQsetNoticeProcessor(c->_pg, ignore_notice, NULL);
    set_state(c, PGCONN_PREPARING);
    c->_failed = false;
    if (prepare_all(c) != 0 || flush(c) != 0)
        fail(c, PQerrorMessage(c->_pg));
}

static void connect_step(struct pgconn *c)
{
    switch (PQconnectPoll(c->_pg)) {
    case PGRES_POLLING_READING:
        poll_want(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        poll_want(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        connected(c);
        break;
    default:
        fail(c, PQerrorMessage(c->_pg));
        break;
    }
}

void pgconn_start(struct pgconn *c)
{
    char options[128];
    if (c->state != PGCONN_DOWN)
        return;
    /*
     * Every prepared statement is a keyed look-up or a set-based write whose
     * best plan does not depend on its parameters: a generic plan spares the
     * re-planning of each execution (about 0.3-0.6 ms per batch otherwise).
     */
    snprintf(options, sizeof(options),
             "-c statement_timeout=%d -c plan_cache_mode=force_generic_plan",
             c->cfg->statement_timeout_ms);
    const char *keys[] = {"dbname", "options", "application_name", NULL};
    const char *values[] = {c->cfg->conninfo, options, "claimd", NULL};
    c->_pg = PQconnectStartParams(keys, values, 1);
    set_state(c, PGCONN_CONNECTING);
    if (c->_pg == NULL || PQstatus(c->_pg) == CONNECTION_BAD) {
        fail(c, c->_pg != NULL ? PQerrorMessage(c->_pg) : "out of memory");
        return;
    }
    uv_timer_start(&c->_timer, on_timeout, (uint64_t)c->cfg->connect_timeout_ms, 0);
    poll_want(c, UV_WRITABLE);
}

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */

/* During PREPARING the only results are the prepares' (and their errors). */
static void prepare_result(struct pgconn *c, const PGresult *res)
{
    if (res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_msg(LOG_ERROR, "db", "cannot prepare statements: %s", pgconn_error(c, res));
        c->_failed = true;
    }
}

static void deliver(struct pgconn *c, const PGresult *res)
{
    if (c->state == PGCONN_PREPARING)
        prepare_result(c, res);
    else if (c->_job != NULL)
        c->_job->ops->result(c->_job, c, res);
}

/* A sync point: the end of preparing, or a step of the running job. */
static int reached_sync(struct pgconn *c)
{
    if (c->state == PGCONN_PREPARING)
        return c->_failed ? CLAIMD_EDB : 0;
    if (c->_job != NULL && c->_job->ops->sync != NULL)
        return c->_job->ops->sync(c->_job, c);
    return 0;
}

/* Everything sent has come back: the job is over, or preparing is. */
static void became_quiet(struct pgconn *c)
{
    if (c->state != PGCONN_BUSY && c->state != PGCONN_PREPARING)
        return; /* a callback dropped the connection: its reconnection timer runs */
    uv_timer_stop(&c->_timer);
    if (c->state == PGCONN_BUSY)
        finish_job(c, 0);
    if (c->state == PGCONN_BUSY || c->state == PGCONN_PREPARING) {
        set_state(c, PGCONN_IDLE);
        c->_backoff_ms = c->cfg->backoff_min_ms;
        if (c->hooks->idle != NULL)
            c->hooks->idle(c);
    }
}

/*
 * Reads every complete result. In pipeline mode PQgetResult returns NULL at
 * the end of each command's results and a PGRES_PIPELINE_SYNC result at each
 * sync point; the counts of both say when the pipeline is empty. A NULL that
 * no command accounts for is tolerated once before waiting for more input.
 */
static void drain(struct pgconn *c)
{
    int stray = 0;
    while (c->_queries > 0 || c->_syncs > 0) {
        if (PQisBusy(c->_pg))
            return;
        PGresult *res = PQgetResult(c->_pg);
        if (res == NULL) {
            if (c->_queries > 0) {
                c->_queries--;
                deliver(c, NULL);
                if (c->state != PGCONN_BUSY && c->state != PGCONN_PREPARING)
                    return;
            } else if (++stray > 1) {
                return;
            }
            continue;
        }
        stray = 0;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            c->_syncs--;
            int rc = reached_sync(c);
            if (rc != 0) {
                fail(c, rc == CLAIMD_EDB ? "statements could not be prepared" : "job failed");
                return;
            }
            if (c->state != PGCONN_BUSY && c->state != PGCONN_PREPARING)
                return;
            continue;
        }
        deliver(c, res);
        PQclear(res);
        if (c->state != PGCONN_BUSY && c->state != PGCONN_PREPARING)
            return;
    }
    became_quiet(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct pgconn *c = h->data;
    if (status < 0) {
        fail(c, uv_strerror(status));
        return;
    }
    if (c->state == PGCONN_CONNECTING) {
        connect_step(c);
        return;
    }
    if ((events & UV_WRITABLE) && flush(c) != 0) {
        fail(c, PQerrorMessage(c->_pg));
        return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->_pg)) {
            fail(c, PQerrorMessage(c->_pg));
            return;
        }
        drain(c);
    }
    /* Callbacks may have sent more; push it out (this also picks the events). */
    if ((c->state == PGCONN_BUSY || c->state == PGCONN_PREPARING) && flush(c) != 0)
        fail(c, PQerrorMessage(c->_pg));
}

/* ------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------ */

int pgconn_run(struct pgconn *c, struct pgjob *job)
{
    if (c->state != PGCONN_IDLE)
        return CLAIMD_EUNAVAIL;
    set_state(c, PGCONN_BUSY);
    c->_job = job;
    int rc = job->ops->start(job, c);
    if (rc == 0)
        rc = flush(c);
    if (rc != 0) {
        c->_job = NULL;
        fail(c, "job could not be sent");
        return rc;
    }
    if (c->cfg->job_timeout_ms > 0)
        uv_timer_start(&c->_timer, on_timeout, (uint64_t)c->cfg->job_timeout_ms, 0);
    return 0;
}

int pgconn_send(struct pgconn *c, const char *stmt, int nparams, const char *const *values)
{
    if (!PQsendQueryPrepared(c->_pg, stmt, nparams, values, NULL, NULL, 0))
        return CLAIMD_EUNAVAIL;
    c->_queries++;
    return 0;
}

int pgconn_flush_request(struct pgconn *c)
{
    if (!PQsendFlushRequest(c->_pg))
        return CLAIMD_EUNAVAIL;
    return flush(c);
}

int pgconn_sync(struct pgconn *c)
{
    if (!PQpipelineSync(c->_pg))
        return CLAIMD_EUNAVAIL;
    c->_syncs++;
    return 0;
}

int pgconn_failure_rc(const char *sqlstate)
{
    static const char *const transient[] = {"57014", "55P03", "57P01", "57P02", "57P03",
                                            "40001", "40P01", "23505", "53"};
    if (sqlstate == NULL || strncmp(sqlstate, "08", 2) == 0)
        return CLAIMD_EUNAVAIL;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        if (strncmp(sqlstate, transient[i], strlen(transient[i])) == 0)
            return CLAIMD_EUNAVAIL;
    }
    return CLAIMD_EDB;
}

const char *pgconn_error(const struct pgconn *c, const PGresult *res)
{
    /* The primary message only: DETAIL lines can quote a row's values (an IMEI). */
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL || msg[0] == '\0')
        msg = c->_pg != NULL ? PQerrorMessage(c->_pg) : "not connected";
    return msg;
}

void pgconn_close(struct pgconn *c)
{
    if (c->state == PGCONN_CLOSING || c->state == PGCONN_CLOSED)
        return;
    drop(c);
    set_state(c, PGCONN_CLOSING);
    finish_job(c, CLAIMD_EUNAVAIL);
    uv_close((uv_handle_t *)&c->_timer, closed_handle);
}
