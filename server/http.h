/*
 * The HTTP/1.1 connection layer of one loop: accepting on a listener, one
 * state machine per connection (llhttp parser, embedded handles, a fixed read
 * buffer), pipelined requests answered in order whatever order their work
 * completes in, the limits and timeouts, and the response writer. What a
 * request means is the handler's business (api.c).
 */
#ifndef CLAIMD_SERVER_HTTP_H
#define CLAIMD_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "arena.h"
#include "error.h"
#include "jsonw.h"

#define HTTP_READ_BUF     16384
#define HTTP_HEADERS_MAX  8192 /* request line plus header fields, CRLFs included */
#define HTTP_PIPELINE_MAX 16   /* requests of one connection parsed ahead of their answers */
#define HTTP_HVAL_MAX     512  /* longest value kept of a header the server reads */

struct http_server;
struct http_conn;
struct http_request;

/** The server's verdict on a request before its handler may run. */
enum http_early {
    HTTP_EARLY_NONE = 0,
    HTTP_EARLY_NOT_FOUND,
    HTTP_EARLY_METHOD,      /* 405; allow says what is */
    HTTP_EARLY_TOO_LARGE,   /* 413 */
    HTTP_EARLY_BAD_REQUEST, /* 400 bad_request, then close */
    HTTP_EARLY_HEADERS,     /* 431, then close */
};

/*
 * How a request may overlap the requests before it on its connection
 * (RFC 9112 §9.3.2: only safe requests may be processed in parallel).
 * ALONE waits until every earlier request is answered, and holds back every
 * later one; SAFE runs beside earlier SAFE ones; CLAIMS runs beside earlier
 * CLAIMS, which the decision pipeline keeps in order by itself.
 */
enum http_order {
    HTTP_ORDER_ALONE = 0,
    HTTP_ORDER_SAFE,
    HTTP_ORDER_CLAIMS,
};

/*
 * Called at the end of a request's headers: choose the route. Returns the body
 * limit in bytes and sets req->route / req->early (404/405) and req->allow;
 * may change req->order (SAFE for GET and HEAD, ALONE otherwise).
 */
typedef size_t (*http_route_fn)(struct http_request *req);

/*
 * Called when the request may be answered: headers and body are in (or the
 * body was refused). The handler answers now or later with http_respond*.
 */
typedef void (*http_handle_fn)(struct http_request *req);

/** Called with every answer's status as it is made (for metrics); may be NULL. */
typedef void (*http_answered_fn)(struct http_request *req, int status);

/** Settings of the HTTP layer (timeouts are read at every use). */
struct http_config {
    const int *header_timeout_ms;
    const int *body_timeout_ms;
    const int *idle_timeout_ms;
    int max_connections;
};

/** Counters for metrics. */
struct http_stats {
    uint64_t accepted;
    uint64_t refused; /* over max_connections */
    uint64_t requests;
    uint64_t timeouts;
    size_t open;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    const struct http_config *cfg;
    http_route_fn route;
    http_handle_fn handle;
    http_answered_fn answered;
    void *app;
    struct arena_cache arenas;
    struct http_conn *conns; /* every open connection */
    struct http_stats stats;
    bool draining;
    void (*drained)(struct http_server *s); /* the last connection closed while draining */
    llhttp_settings_t _settings;
};

struct http_request {
    struct http_conn *conn;
    struct arena arena;
    llhttp_method_t method;
    bool head; /* HEAD: answered as GET without the body */
    char *path;
    size_t path_len;
    char *query; /* after '?', or NULL */
    size_t query_len;
    char authorization[HTTP_HVAL_MAX];
    size_t authorization_len;
    bool authorization_seen;
    char content_type[HTTP_HVAL_MAX];
    size_t content_type_len;
    bool expect_continue;
    bool keep_alive;
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t body_limit;
    enum http_early early;
    const char *allow; /* for 405 */
    int route;
    enum http_order order;
    uint64_t start_ns; /* uv_hrtime() at the request's first byte */
    uint64_t id;       /* set by the handler, for logs */
    void *ctx;         /* the handler's */

    /* Private to http.c. */
    bool _complete;   /* the whole message is in */
    bool _wants;      /* ready for the handler, waiting for its turn */
    bool _handed_off; /* a CLAIMS request reached the pipeline (http_request_handed_off) */
    bool _dispatched; /* handed to the handler */
    bool _ready;      /* answered; waiting for its turn to be written */
    bool _close;      /* close the connection after this answer */
    uv_buf_t _out[2];
    size_t _url_len;
    size_t _url_cap;
    char *_url;
};

/** Creates the listener on an already bound and listening-ready socket. */
CLAIMD_MUSTCHECK int http_server_init(struct http_server *s, uv_loop_t *loop, int fd,
                                      const struct http_config *cfg, http_route_fn route,
                                      http_handle_fn handle, void *app);

/** Stops accepting; closes idle connections; the rest close after their answers. */
void http_server_drain(struct http_server *s, void (*drained)(struct http_server *s));

/** Closes every connection at once (the drain took too long). */
void http_server_close_all(struct http_server *s);

/**
 * Answers a request: status, extra header lines (each ending in CRLF, or
 * NULL), the content type and body (NULL for none). The body is copied into
 * the request's arena only if it does not already live there.
 */
void http_respond(struct http_request *req, int status, const char *headers,
                  const char *content_type, const char *body, size_t body_len);

/** A problem+json answer (RFC 9457) with a stable code; detail may be NULL. */
void http_problem(struct http_request *req, int status, const char *code, const char *detail,
                  const char *headers);

/**
 * Writes the members every problem has (type, title, status, detail, code)
 * into the object open in w; detail NULL is the status's reason phrase.
 */
void http_problem_members(struct jsonw *w, int status, const char *code, const char *detail);

/** Answers with the JSON text of w (application/json). */
void http_respond_json(struct http_request *req, int status, struct jsonw *w);

/** The standard reason phrase of a status code. */
const char *http_reason(int status);

/**
 * For a CLAIMS request: its claims are queued where their order is kept (the
 * pipeline), so the next CLAIMS request of the connection may start. Until
 * then it waits, even if the key check of this one is still running.
 */
void http_request_handed_off(struct http_request *req);

/** The app pointer given to http_server_init. */
void *http_request_app(const struct http_request *req);

/** True when the request's connection is gone (the answer will be dropped). */
bool http_request_orphaned(const struct http_request *req);

#endif
