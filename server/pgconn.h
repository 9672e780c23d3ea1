/*
 * One PostgreSQL connection driven by a libuv loop: non-blocking libpq in
 * pipeline mode watched by an embedded uv_poll_t, prepared statements created
 * on connect, reconnection with backoff, and jobs that pipeline commands and
 * get every result back through callbacks.
 */
#ifndef CLAIMD_SERVER_PGCONN_H
#define CLAIMD_SERVER_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <uv.h>

#include "error.h"

struct pgconn;
struct pgjob;

/** A statement prepared on every connection when it comes up. */
struct pgconn_statement {
    const char *name;
    const char *sql;
};

/** A list of statements (one per module that prepares some). */
struct pgconn_statements {
    const struct pgconn_statement *v;
    size_t n;
};

#define PGCONN_STATEMENT_SETS 4

/** Connection settings; the struct and its strings outlive the connection. */
struct pgconn_config {
    const char *conninfo;     /* libpq URI or key=value string */
    int statement_timeout_ms; /* server-side SET statement_timeout */
    int connect_timeout_ms;   /* a connection attempt longer than this fails */
    int job_timeout_ms;       /* a job longer than this drops the connection */
    int backoff_min_ms;       /* first reconnection delay, doubled per failure */
    int backoff_max_ms;       /* ceiling of the reconnection delay */
    struct pgconn_statements statements[PGCONN_STATEMENT_SETS];
};

/*
 * A job is a short conversation on one connection. start() sends commands
 * (pgconn_send*, then pgconn_sync or pgconn_flush_request); result() sees each
 * result, and NULL at the end of every command's results; sync() runs at each
 * sync point and may send more. done() runs exactly once: rc 0 when every
 * command and sync came back, CLAIMD_EUNAVAIL when the connection was lost,
 * or the error start()/sync() returned. Results are cleared by the connection
 * after result() returns.
 */
struct pgjob_ops {
    int (*start)(struct pgjob *job, struct pgconn *c);
    void (*result)(struct pgjob *job, struct pgconn *c, const PGresult *res);
    int (*sync)(struct pgjob *job, struct pgconn *c);
    void (*done)(struct pgjob *job, int rc);
};

struct pgjob {
    const struct pgjob_ops *ops;
    struct pgjob *_next; /* queue link, owned by whoever queues the job */
};

enum pgconn_state {
    PGCONN_DOWN = 0,   /* not connected; a reconnection timer may be armed */
    PGCONN_CONNECTING, /* PQconnectPoll in progress */
    PGCONN_PREPARING,  /* connected, statements being prepared */
    PGCONN_IDLE,       /* ready for a job */
    PGCONN_BUSY,       /* running a job */
    PGCONN_CLOSING,    /* handles closing for good */
    PGCONN_CLOSED,
};

/** Hooks of the connection's owner (a pool); each may be NULL. */
struct pgconn_hooks {
    void (*idle)(struct pgconn *c);   /* became ready for a job */
    void (*down)(struct pgconn *c);   /* lost or failed to make the connection */
    void (*closed)(struct pgconn *c); /* pgconn_close finished; memory may go */
};

struct pgconn {
    uv_loop_t *loop;
    const struct pgconn_config *cfg;
    const struct pgconn_hooks *hooks;
    void *owner;
    enum pgconn_state state;
    PGconn *_pg;
    uv_poll_t _poll;
    uv_timer_t _timer;
    int _poll_fd;
    int _poll_events;
    bool _poll_open;
    int _handles_open;
    struct pgjob *_job;
    int _queries; /* commands sent whose results have not ended */
    int _syncs;   /* sync points sent and not yet reached */
    int _backoff_ms;
    bool _failed; /* a prepare failed; the connection is dropped */
};

/** Sets up the handles; nothing connects until pgconn_start. */
CLAIMD_MUSTCHECK int pgconn_init(struct pgconn *c, uv_loop_t *loop, const struct pgconn_config *cfg,
                                 const struct pgconn_hooks *hooks, void *owner);

/** Starts connecting (and reconnecting after every loss). */
void pgconn_start(struct pgconn *c);

/**
 * Runs a job on an idle connection. Returns 0 (done() will be called) or a
 * negative code (done() will not be called; the connection is dropped if the
 * job could not be sent).
 */
CLAIMD_MUSTCHECK int pgconn_run(struct pgconn *c, struct pgjob *job);

/** Drops the connection for good: a running job ends with CLAIMD_EUNAVAIL. */
void pgconn_close(struct pgconn *c);

/** Drops the current connection (as if lost) and reconnects after backoff. */
void pgconn_reset(struct pgconn *c);

/** Sends a prepared statement with text parameters (values may hold NULLs). */
CLAIMD_MUSTCHECK int pgconn_send(struct pgconn *c, const char *stmt, int nparams,
                                 const char *const *values);

/** Asks the server to send what it has without ending the transaction. */
CLAIMD_MUSTCHECK int pgconn_flush_request(struct pgconn *c);

/** Ends the pipeline's implicit transaction (commit, or rollback after an error). */
CLAIMD_MUSTCHECK int pgconn_sync(struct pgconn *c);

/**
 * What a failed transaction means for its caller: CLAIMD_EUNAVAIL (answer
 * 503, a retry may succeed) for timeouts, lock waits, shutdowns, lost
 * connections, exhausted resources and conflicts retried to the end;
 * CLAIMD_EDB for anything else. sqlstate may be NULL or "" (no server error).
 */
int pgconn_failure_rc(const char *sqlstate);

/**
 * The server's primary message for a failed result (never its DETAIL, which
 * may quote values), or the connection's last error.
 */
const char *pgconn_error(const struct pgconn *c, const PGresult *res);

#endif
