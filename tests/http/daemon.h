/*
 * The integration-test harness: a real claimd daemon on a database of its own (spawned, its
 * port read from stdout, stopped with SIGTERM and checked), and raw-socket clients that send
 * exact bytes and parse the response stream. See tests/http/README.md for the conventions.
 */
#ifndef CLAIMD_TESTS_HTTP_DAEMON_H
#define CLAIMD_TESTS_HTTP_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "testdb.h"

#define DAEMON_KEY_SIZE   128
#define DAEMON_ARGS_MAX   32
#define DAEMON_START_MS   30000 /* longest wait for "listening on port N" (ASan is slow) */
#define DAEMON_STOP_MS    20000 /* longest wait for the exit after SIGTERM */
#define RESPONSE_HEAD_MAX 4096
#define RESPONSE_BODY_MAX 16384

/** One claimd serve process and the database it talks to. */
struct daemon {
    struct testdb db;                /* made by daemon_db_create; name "" otherwise */
    char owner_url[TESTDB_URL_SIZE]; /* claimd_owner: migrate, keys, test SQL */
    char app_url[TESTDB_URL_SIZE];   /* claimd_app: what serve connects as */
    char key[DAEMON_KEY_SIZE];       /* the key daemon_up creates (tenant "t1") */
    long key_id;                     /* its id in api_keys */
    pid_t pid;                       /* 0 when no process runs */
    int port;                        /* the port it listens on (127.0.0.1) */
    int out_fd;                      /* the read end of its stdout */
    char err_path[64];               /* its stderr, a file kept until daemon_destroy */
    int status;                      /* wait status once it exited */
};

/** The result of a command run to completion by daemon_exec. */
struct exec_result {
    int status; /* exit code, or 128 + signal when killed */
    char out[4096];
    char err[4096];
};

/** A raw client connection with the bytes received and not yet consumed. */
struct client {
    int fd;
    char *buf;
    size_t len; /* bytes in buf */
    size_t pos; /* bytes of buf already parsed into responses */
    size_t cap;
    bool eof; /* the server closed (FIN or reset) */
    int err;  /* errno of a reset, else 0 */
};

/** One parsed response: the head and body are copies, so it outlives the client. */
struct response {
    int status;
    char head[RESPONSE_HEAD_MAX]; /* status line and header lines, NUL-terminated */
    size_t head_len;              /* up to and including the empty line's CRLF */
    char body[RESPONSE_BODY_MAX];
    size_t body_len;       /* body[body_len] is NUL */
    size_t content_length; /* the Content-Length header (also for a HEAD answer) */
};

/* ------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------ */

/** $CLAIMD_BIN, the claimd binary under test (set by CTest); fails the test without it. */
const char *daemon_bin(void);

/**
 * Runs argv[0] (a path) with argv, the test's environment and no stdin, waits for it and
 * captures stdout and stderr (first 4 KiB each).
 */
void daemon_exec(const char *const argv[], struct exec_result *r);

/** A database of its own, cloned from the migrated template (testdb). */
void daemon_db_create(struct daemon *d);

/** Uses an existing database (say a private cluster's); nothing is dropped at the end. */
void daemon_db_use(struct daemon *d, const char *owner_url, const char *app_url);

/**
 * `claimd keys create --tenant NAME --database-url OWNER`: asserts exit 0, the key alone on
 * one line of stdout and "key id N" on stderr. Copies the key and returns N.
 */
long daemon_key_create(const struct daemon *d, const char *tenant, char key[DAEMON_KEY_SIZE]);

/**
 * Spawns `claimd serve --listen 127.0.0.1:0 --database-url APP --threads 2 EXTRA...` (extra
 * is NULL-terminated, or NULL) and waits for "listening on port N" on its stdout. The process
 * dies with the test (PR_SET_PDEATHSIG) and daemon_cleanup kills it after a failed test.
 */
void daemon_start(struct daemon *d, const char *const *extra);

/** daemon_db_create, a key for tenant "t1" in d->key, then daemon_start. */
void daemon_up(struct daemon *d, const char *const *extra);

/** Sends a signal to the running daemon. */
void daemon_signal(const struct daemon *d, int sig);

/** True once the process has exited (d->status then holds its wait status); never blocks. */
bool daemon_exited(struct daemon *d);

/**
 * Waits up to timeout_ms for the exit. Returns true when it exited (d->status is set),
 * false on timeout (the process still runs).
 */
bool daemon_wait(struct daemon *d, int timeout_ms);

/**
 * SIGTERM, then asserts the drain: exit status 0 within DAEMON_STOP_MS and a clean stderr
 * (daemon_assert_clean_log).
 */
void daemon_stop(struct daemon *d);

/**
 * Asserts the daemon's stderr holds no sanitizer report ("AddressSanitizer",
 * "LeakSanitizer", "runtime error") and no "handles still open" from a loop closed early.
 */
void daemon_assert_clean_log(const struct daemon *d);

/** True when the daemon's stderr so far contains s. */
bool daemon_log_contains(const struct daemon *d, const char *s);

/** Copies the last outlen-1 bytes of the daemon's stderr into out (for messages). */
void daemon_log_tail(const struct daemon *d, char *out, size_t outlen);

/** The number of descriptors the running daemon holds open (/proc/PID/fd). */
int daemon_fd_count(const struct daemon *d);

/** Kills the process if it still runs, drops its database, removes its stderr file. */
void daemon_destroy(struct daemon *d);

/**
 * Destroys every daemon started in this test process: a Criterion .fini, so that a failed
 * assertion leaves no process or database behind.
 */
void daemon_cleanup(void);

/** Runs sql as the database owner and fails the test unless it succeeds. */
void daemon_sql(const struct daemon *d, const char *sql);

/* ------------------------------------------------------------------------
 * Raw clients
 * ------------------------------------------------------------------------ */

/** Milliseconds of CLOCK_MONOTONIC. */
int64_t now_ms(void);

/** Sleeps ms milliseconds. */
void sleep_ms(int ms);

/** Connects to 127.0.0.1:port (TCP_NODELAY on) or fails the test. */
void client_open(struct client *c, int port);

/** Tries to connect: 0, or a negative errno (say -ECONNREFUSED). */
int client_try_open(struct client *c, int port);

/** Closes the socket (FIN) and frees the buffer. Safe to call twice. */
void client_close(struct client *c);

/** Closes with SO_LINGER 0, so the server sees a reset. */
void client_abort(struct client *c);

/**
 * Sends every byte. Returns 0, or a negative errno when the server has closed (EPIPE,
 * ECONNRESET); never raises SIGPIPE.
 */
int client_send(struct client *c, const void *buf, size_t len);

/** client_send of a string. */
int client_send_str(struct client *c, const char *s);

/**
 * Sends buf step bytes at a time with delay_us microseconds between the writes. Stops and
 * returns a negative errno as soon as the server has closed.
 */
int client_send_slowly(struct client *c, const void *buf, size_t len, size_t step, int delay_us);

/**
 * Waits up to timeout_ms for bytes and appends them. Returns the number read, 0 at EOF or
 * reset (c->eof is set), -ETIMEDOUT when none came.
 */
int client_read_some(struct client *c, int timeout_ms);

/**
 * Reads the next response of the stream (head: it answers a HEAD, so no body), waiting up
 * to timeout_ms in all. Returns 0, -ETIMEDOUT, -ECONNRESET when the stream ended first, or
 * -EPROTO when the bytes are not an HTTP/1.1 response.
 */
int client_response(struct client *c, bool head, int timeout_ms, struct response *r);

/** client_response that fails the test unless a response came. */
void client_expect(struct client *c, bool head, int timeout_ms, struct response *r);

/**
 * Reads until the server closes, for at most timeout_ms. True when it closed; bytes that
 * came meanwhile stay in the buffer.
 */
bool client_wait_closed(struct client *c, int timeout_ms);

/** Bytes received and not yet parsed into responses. */
size_t client_unparsed(const struct client *c);

/**
 * Formats a request with Host and, when body is not NULL, Content-Length (and Content-Type
 * when ctype is not NULL); key adds "Authorization: Bearer KEY"; extra (NULL or lines each
 * ending in CRLF) goes after the other headers. Returns the length; fails the test when
 * outlen is too small.
 */
size_t request_build(char *out, size_t outlen, const char *method, const char *target,
                     const char *key, const char *ctype, const char *extra, const char *body);

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

/**
 * Parses one response at buf (head: no body whatever Content-Length says; a 1xx has none
 * either). Returns its length, 0 when incomplete, -1 when malformed (no Content-Length on
 * a final answer counts as malformed: claimd always sends one).
 */
ssize_t response_parse(const char *buf, size_t len, bool head, struct response *r);

/** Counts the complete responses in a stream (none of them to a HEAD). */
int response_count(const char *buf, size_t len);

/**
 * Copies the value of header name (case-insensitive, surrounding whitespace trimmed) into
 * out. Returns the number of such header lines (0: absent; out is then "").
 */
int response_header(const struct response *r, const char *name, char *out, size_t outlen);

/** The "\r\n\r\n" that ends a response head in buf[0..len), or NULL. */
const char *response_head_end(const char *buf, size_t len);

/**
 * The value of header name in a NUL-terminated head (status line and header
 * lines), as response_header does; returns how many lines carry it.
 */
int response_header_in(const char *head, const char *name, char *out, size_t outlen);

/** The header lines, without the status line, as received (for HEAD/GET comparisons). */
const char *response_headers(const struct response *r);

/** The body as JSON, or fails the test. The caller json_decref()s it. */
json_t *response_json(const struct response *r);

/**
 * Asserts an RFC 9457 problem: the status, Content-Type application/problem+json, a body
 * with type, title, status (equal to the status line's), detail and this code.
 */
void response_assert_problem(const struct response *r, int status, const char *code);

/**
 * Asserts the problem's errors array: n entries, each {"field", "code"} in this order
 * (fields_codes holds field, code, field, code ...).
 */
void response_assert_errors(const struct response *r, size_t n, const char *const *fields_codes);

#endif
