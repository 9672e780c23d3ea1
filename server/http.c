/*
 * HTTP/1.1 connections. Each struct http_conn embeds its uv_tcp_t, its
 * uv_timer_t (header, body and idle timeouts), its llhttp parser, a fixed
 * read buffer and a ring of request slots; it is freed only from the last
 * close callback, and only once no request of it is still being worked on.
 * Parsing pauses when the ring is full, so a client that pipelines without
 * reading its answers stops being read.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

enum conn_state {
    CONN_READING = 0, /* waiting for or reading requests */
    CONN_DRAINING,    /* answering what it has, reading nothing more */
    CONN_CLOSING,     /* handles closing */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    struct http_server *srv;
    enum conn_state state;
    struct http_conn *next;
    struct http_conn *prev;
    int handles;  /* open handles */
    int working;  /* requests handed to the handler and not answered */
    bool reading; /* uv_read_start is on */
    bool paused;  /* the parser stopped at a message end; rbuf holds the rest */
    bool writing; /* a uv_write is in flight */
    bool continue_sent;
    bool pumping;    /* pump() is running */
    bool pump_again; /* a request became answerable meanwhile */
    uv_write_t wreq;
    uv_buf_t wbufs[2 * HTTP_PIPELINE_MAX];
    unsigned nwritten;        /* slots the write in flight covers */
    unsigned head;            /* oldest slot */
    unsigned count;           /* slots in use */
    struct http_request *cur; /* the slot being parsed */
    uint64_t stream_off;      /* stream offset of exec_base */
    const char *exec_base;
    uint64_t msg_start; /* stream offset of the current request's first byte */
    uint64_t msg_last;  /* stream offset just past its last header byte seen */
    bool msg_started;
    int phase; /* P_IDLE, P_HEAD or P_BODY of the message being parsed */
    bool headers_too_big;
    bool obs_fold;
    char hname[32];
    size_t hname_len;
    bool hname_long; /* the current header name is longer than hname holds */
    int hwant;       /* which header's value is being collected */
    size_t rlen;
    char tail[8]; /* the last bytes parsed before exec_base */
    size_t tail_len;
    char rbuf[HTTP_READ_BUF];
    struct http_request slots[HTTP_PIPELINE_MAX];
};

enum { H_NONE = 0, H_AUTHORIZATION, H_CONTENT_TYPE, H_EXPECT };
enum { P_IDLE = 0, P_HEAD, P_BODY };

static void conn_close(struct http_conn *c);
static void feed(struct http_conn *c);
static void try_write(struct http_conn *c);

/* ------------------------------------------------------------------------
 * Reason phrases and fixed texts
 * ------------------------------------------------------------------------ */

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static const char continue_text[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    c->srv->stats.timeouts++;
    conn_close(c);
}

/*
 * One timer per connection. The header timeout runs from a request's first
 * byte to the end of its headers (trickling bytes do not extend it); the body
 * timeout restarts with every piece of body; the idle timeout runs while
 * nothing is pending; no timer runs while the server works or writes.
 */
static void arm_timer(struct http_conn *c, bool restart)
{
    const struct http_config *cfg = c->srv->cfg;
    int ms = 0;
    if (c->state == CONN_READING) {
        if (c->phase == P_HEAD)
            ms = *cfg->header_timeout_ms;
        else if (c->phase == P_BODY)
            ms = *cfg->body_timeout_ms;
        else if (c->count == 0 && !c->writing)
            ms = *cfg->idle_timeout_ms;
    }
    if (ms == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    if (restart || !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

/* ------------------------------------------------------------------------
 * Request slots
 * ------------------------------------------------------------------------ */

static struct http_conn *conn_of_parser(llhttp_t *p)
{
    return p->data;
}

static void slot_clear(struct http_request *r)
{
    struct arena a = r->arena;
    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->route = -1; /* until the handler's router chose one */
}

/* Bytes at stream offsets: where `at` lies in the data being parsed. */
static uint64_t offset_of(const struct http_conn *c, const char *at)
{
    return c->stream_off + (uint64_t)(at - c->exec_base);
}

/* Every byte of the head moves msg_last; past the limit the request is 431. */
static int head_bytes(struct http_conn *c, const char *at, size_t len)
{
    if (!c->msg_started) {
        c->msg_started = true;
        c->msg_start = offset_of(c, at);
    }
    c->msg_last = offset_of(c, at) + len;
    if (c->msg_last - c->msg_start + 4 > HTTP_HEADERS_MAX) {
        c->headers_too_big = true;
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *c = conn_of_parser(p);
    struct http_request *r = &c->slots[(c->head + c->count) % HTTP_PIPELINE_MAX];
    c->count++;
    slot_clear(r);
    r->conn = c;
    r->start_ns = uv_hrtime();
    c->cur = r;
    c->msg_started = false;
    c->headers_too_big = false;
    c->obs_fold = false;
    c->hwant = H_NONE;
    c->hname_len = 0;
    c->hname_long = false;
    c->phase = P_HEAD;
    c->continue_sent = false;
    arm_timer(c, true);
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    return head_bytes(conn_of_parser(p), at, len);
}

/* Data callbacks may fire several times per token: append. */
static int append(struct http_request *r, char **buf, size_t *len, size_t *cap, const char *at,
                  size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *nb = arena_alloc(&r->arena, ncap);
        if (nb == NULL)
            return HPE_USER;
        if (*len > 0)
            memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, at, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of_parser(p);
    int rc = head_bytes(c, at, len);
    return rc ? rc : append(c->cur, &c->cur->_url, &c->cur->_url_len, &c->cur->_url_cap, at, len);
}

static int on_version(llhttp_t *p, const char *at, size_t len)
{
    return head_bytes(conn_of_parser(p), at, len);
}

/*
 * Keeps the name while it may be one the server reads (all are short); a
 * longer one only sets hname_long, whatever pieces it arrives in.
 */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of_parser(p);
    if (!c->hname_long && len <= sizeof(c->hname) - 1 - c->hname_len) {
        memcpy(c->hname + c->hname_len, at, len);
        c->hname_len += len;
    } else {
        c->hname_long = true;
    }
    return head_bytes(c, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of_parser(p);
    c->hname[c->hname_len] = '\0';
    if (c->hname_long)
        c->hwant = H_NONE;
    else if (strcasecmp(c->hname, "authorization") == 0)
        c->hwant = H_AUTHORIZATION;
    else if (strcasecmp(c->hname, "content-type") == 0)
        c->hwant = H_CONTENT_TYPE;
    else if (strcasecmp(c->hname, "expect") == 0)
        c->hwant = H_EXPECT;
    else
        c->hwant = H_NONE;
    if (c->hwant == H_AUTHORIZATION)
        c->cur->authorization_seen = true;
    c->hname_len = 0;
    c->hname_long = false;
    return 0;
}

static void keep_value(char *buf, size_t *len, const char *at, size_t n)
{
    size_t room = HTTP_HVAL_MAX - 1 - *len;
    size_t k = n < room ? n : room;
    memcpy(buf + *len, at, k);
    *len += k;
    buf[*len] = '\0';
}

/* The byte k places before at, from the buffer or the tail of the last one; -1 if unknown. */
static int byte_before(const struct http_conn *c, const char *at, size_t k)
{
    size_t in_buf = (size_t)(at - c->exec_base);
    if (k <= in_buf)
        return (unsigned char)at[-(ptrdiff_t)k];
    k -= in_buf;
    return k <= c->tail_len ? (unsigned char)c->tail[c->tail_len - k] : -1;
}

/*
 * llhttp passes an obsolete line folding ("\r\n " inside a value) on even in
 * strict mode, as one more piece of the value. Such a piece starts right
 * after a line break (and the folding whitespace); a first piece starts after
 * the colon, and a piece split by a read starts after value bytes.
 */
static bool after_line_break(const struct http_conn *c, const char *at)
{
    for (size_t k = 1; k <= sizeof(c->tail); k++) {
        int b = byte_before(c, at, k);
        if (b != ' ' && b != '\t')
            return b == '\n';
    }
    return false;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of_parser(p);
    struct http_request *r = c->cur;
    /* An empty value comes as a piece of length 0 just past its line's LF: not a fold. */
    if (len > 0 && (after_line_break(c, at) || memchr(at, '\n', len) != NULL))
        c->obs_fold = true;
    if (c->hwant == H_AUTHORIZATION)
        keep_value(r->authorization, &r->authorization_len, at, len);
    else if (c->hwant == H_CONTENT_TYPE)
        keep_value(r->content_type, &r->content_type_len, at, len);
    else if (c->hwant == H_EXPECT && len >= 12 && strncasecmp(at, "100-continue", 12) == 0)
        r->expect_continue = true;
    return head_bytes(c, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of_parser(p);
    if (c->obs_fold) {
        c->cur->early = HTTP_EARLY_BAD_REQUEST;
        return HPE_USER;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Headers, body and message end
 * ------------------------------------------------------------------------ */

/*
 * Whether r may start beside the unanswered requests before it (see enum
 * http_order): none, or all of r's own class, none of them holding the line.
 */
static bool may_start(const struct http_request *r, bool any, bool held, enum http_order cls)
{
    return !any || (r->order != HTTP_ORDER_ALONE && !held && cls == r->order);
}

/* An unanswered request holds the line for later ones of its class. */
static bool holds_line(const struct http_request *r)
{
    return r->order == HTTP_ORDER_ALONE || (r->order == HTTP_ORDER_CLAIMS && !r->_handed_off);
}

/*
 * Hands every request whose turn has come to the handler, in order. A request
 * that must wait holds back every request after it, so a connection's changes
 * happen in the order they were sent.
 */
static void pump(struct http_conn *c)
{
    if (c->pumping) {
        c->pump_again = true;
        return;
    }
    c->pumping = true;
    do {
        c->pump_again = false;
        bool any = false, held = false;
        enum http_order cls = HTTP_ORDER_ALONE;
        for (unsigned i = 0; i < c->count && c->state != CONN_CLOSING; i++) {
            struct http_request *r = &c->slots[(c->head + i) % HTTP_PIPELINE_MAX];
            if (!r->_dispatched) {
                if (!r->_wants || !may_start(r, any, held, cls))
                    break;
                r->_dispatched = true;
                c->working++;
                c->srv->handle(r);
            }
            if (r->_ready)
                continue;
            held = held || (any && cls != r->order) || holds_line(r);
            cls = r->order;
            any = true;
        }
    } while (c->pump_again);
    c->pumping = false;
}

static void dispatch(struct http_request *r)
{
    if (r->_wants)
        return;
    r->_wants = true;
    pump(r->conn);
}

static int split_url(struct http_request *r)
{
    if (r->_url == NULL)
        return HPE_USER;
    char *q = memchr(r->_url, '?', r->_url_len);
    r->path = r->_url;
    r->path_len = q != NULL ? (size_t)(q - r->_url) : r->_url_len;
    r->query = q != NULL ? q + 1 : NULL;
    r->query_len = q != NULL ? r->_url_len - r->path_len - 1 : 0;
    return 0;
}

/*
 * 100 Continue, only at the head of the line with nothing in flight so that
 * answers stay ordered. A client that gets none sends its body after its own
 * wait (RFC 9110 §10.1.1). A partly written interim answer cannot be taken
 * back: the connection is closed.
 */
static void send_continue(struct http_conn *c)
{
    uv_buf_t b = uv_buf_init((char *)continue_text, sizeof(continue_text) - 1);
    if (c->writing || c->cur != &c->slots[c->head])
        return;
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len)
        c->continue_sent = true;
    else if (n > 0)
        conn_close(c);
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of_parser(p);
    struct http_request *r = c->cur;
    if (c->msg_last - c->msg_start + 4 > HTTP_HEADERS_MAX) {
        c->headers_too_big = true;
        return HPE_USER;
    }
    if (split_url(r) != 0)
        return HPE_USER;
    r->method = (llhttp_method_t)llhttp_get_method(p);
    r->head = r->method == HTTP_HEAD;
    r->order = r->method == HTTP_GET || r->method == HTTP_HEAD ? HTTP_ORDER_SAFE : HTTP_ORDER_ALONE;
    r->keep_alive = llhttp_should_keep_alive(p);
    r->body_limit = c->srv->route(r);
    bool has_length = (p->flags & F_CONTENT_LENGTH) != 0, chunked = (p->flags & F_CHUNKED) != 0;
    if (r->early == HTTP_EARLY_NONE && has_length && p->content_length > r->body_limit)
        r->early = HTTP_EARLY_TOO_LARGE;
    if (has_length || chunked) {
        c->phase = P_BODY;
        arm_timer(c, true);
    }
    if (r->early == HTTP_EARLY_TOO_LARGE) {
        r->_close = true;
        dispatch(r);
    } else if (r->early == HTTP_EARLY_NONE && r->expect_continue && (has_length || chunked)) {
        send_continue(c);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of_parser(p);
    struct http_request *r = c->cur;
    arm_timer(c, true);
    if (r->early != HTTP_EARLY_NONE)
        return 0; /* refused already: the bytes are read and dropped */
    if (r->body_len + len > r->body_limit) {
        r->early = HTTP_EARLY_TOO_LARGE;
        r->_close = true;
        dispatch(r);
        return 0;
    }
    return append(r, &r->body, &r->body_len, &r->body_cap, at, len);
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of_parser(p);
    struct http_request *r = c->cur;
    r->_complete = true;
    c->phase = P_IDLE;
    c->cur = NULL;
    c->srv->stats.requests++;
    dispatch(r);
    arm_timer(c, true);
    /* Stop at a message end when the ring is full or nothing more may be read. */
    if (c->count == HTTP_PIPELINE_MAX || r->_close || !r->keep_alive || c->state != CONN_READING)
        return HPE_PAUSED;
    return 0;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

static void stop_reading(struct http_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/*
 * A request the parser refused: answer it (431 or 400) and close. A request
 * already handed to the handler keeps its own answer.
 */
static void parse_error(struct http_conn *c, llhttp_errno_t err)
{
    struct http_request *r = c->cur;
    stop_reading(c);
    c->state = CONN_DRAINING;
    if (r == NULL || r->_wants) {
        /* Between messages: the requests in hand are answered, then it closes. */
        if (c->count == 0 && c->working == 0)
            conn_close(c);
        return;
    }
    r->early = c->headers_too_big ? HTTP_EARLY_HEADERS : HTTP_EARLY_BAD_REQUEST;
    r->_close = true;
    r->_complete = true;
    c->cur = NULL;
    c->phase = P_IDLE;
    dispatch(r);
}

/* Keeps the last bytes of the old tail followed by rbuf[0..used), for byte_before. */
static void keep_tail(struct http_conn *c, size_t used)
{
    char tmp[2 * sizeof(c->tail)];
    size_t cap = sizeof(c->tail);
    size_t n = used < cap ? used : cap;
    size_t old = c->tail_len < cap - n ? c->tail_len : cap - n;
    memcpy(tmp, c->tail + c->tail_len - old, old);
    memcpy(tmp + old, c->rbuf + used - n, n);
    memcpy(c->tail, tmp, old + n);
    c->tail_len = old + n;
}

static void feed(struct http_conn *c)
{
    if (c->paused) {
        llhttp_resume(&c->parser);
        c->paused = false;
    }
    c->exec_base = c->rbuf;
    llhttp_errno_t err = llhttp_execute(&c->parser, c->rbuf, c->rlen);
    if (err == HPE_OK) {
        keep_tail(c, c->rlen);
        c->stream_off += c->rlen;
        c->rlen = 0;
        return;
    }
    if (err == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - c->rbuf);
        keep_tail(c, used);
        c->stream_off += used;
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        c->paused = true;
        stop_reading(c);
        return;
    }
    parse_error(c, err);
}

/* The request being parsed will never be finished: drop its slot. */
static void drop_partial(struct http_conn *c)
{
    if (c->cur == NULL || c->cur->_wants)
        return;
    arena_reset(&c->cur->arena);
    slot_clear(c->cur);
    c->count--;
    c->cur = NULL;
    c->phase = P_IDLE;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    if (nread < 0) {
        stop_reading(c);
        /*
         * EOF may be a half-close after the last request: answer what is in
         * hand, then close. A half-read request is dropped; on a reset the
         * answers could not be written anyway.
         */
        if (nread != UV_EOF || c->state == CONN_CLOSING) {
            conn_close(c);
            return;
        }
        drop_partial(c);
        c->state = CONN_DRAINING;
        if (c->count == 0 && c->working == 0)
            conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->rlen += (size_t)nread;
    feed(c);
}

static void start_reading(struct http_conn *c)
{
    if (c->reading || c->state != CONN_READING || c->paused)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
    else
        conn_close(c);
}

/* ------------------------------------------------------------------------
 * Writing answers in order
 * ------------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    bool close_after = false;
    c->writing = false;
    for (unsigned i = 0; i < c->nwritten; i++) {
        struct http_request *r = &c->slots[c->head];
        close_after = close_after || r->_close;
        arena_reset(&r->arena);
        slot_clear(r);
        c->head = (c->head + 1) % HTTP_PIPELINE_MAX;
        c->count--;
    }
    c->nwritten = 0;
    if (status < 0 || close_after || c->state == CONN_CLOSING) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_DRAINING && c->count == 0) {
        conn_close(c);
        return;
    }
    if (c->paused && c->state == CONN_READING)
        feed(c);
    start_reading(c);
    try_write(c);
    arm_timer(c, true);
}

static void try_write(struct http_conn *c)
{
    unsigned n = 0, nb = 0;
    if (c->writing || c->state == CONN_CLOSING)
        return;
    while (n < c->count) {
        struct http_request *r = &c->slots[(c->head + n) % HTTP_PIPELINE_MAX];
        if (!r->_ready)
            break;
        c->wbufs[nb++] = r->_out[0];
        if (r->_out[1].len > 0)
            c->wbufs[nb++] = r->_out[1];
        n++;
        if (r->_close)
            break;
    }
    if (n == 0)
        return;
    c->nwritten = n;
    c->writing = true;
    c->wreq.data = c;
    uv_timer_stop(&c->timer);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, c->wbufs, nb, on_write) != 0) {
        c->writing = false;
        conn_close(c);
    }
}

void http_request_handed_off(struct http_request *req)
{
    req->_handed_off = true;
    if (req->conn->state != CONN_CLOSING)
        pump(req->conn);
}

void *http_request_app(const struct http_request *req)
{
    return req->conn->srv->app;
}

bool http_request_orphaned(const struct http_request *req)
{
    return req->conn->state == CONN_CLOSING;
}

static void maybe_free(struct http_conn *c);

/* The handler is done with req: count it, and write it when its turn comes. */
static void answered(struct http_request *r)
{
    struct http_conn *c = r->conn;
    r->_ready = true;
    c->working--;
    if (c->state == CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    try_write(c);
    pump(c);
}

void http_respond(struct http_request *req, int status, const char *headers,
                  const char *content_type, const char *body, size_t body_len)
{
    struct http_conn *c = req->conn;
    if (c->srv->answered != NULL)
        c->srv->answered(req, status);
    /* While draining, only the connection's last request closes it: the ones before it
     * are in flight too and must be answered first. */
    bool last = req == &c->slots[(c->head + c->count - 1) % HTTP_PIPELINE_MAX];
    if ((c->state != CONN_READING && last) || !req->keep_alive)
        req->_close = true;
    if (body != NULL && body_len > 0 && !arena_owns(&req->arena, body))
        body = arena_strndup(&req->arena, body, body_len);
    char *head = arena_alloc(&req->arena, 512 + (headers != NULL ? strlen(headers) : 0));
    if (head == NULL || (body_len > 0 && body == NULL)) {
        static char oom[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            "Retry-After: 1\r\nConnection: close\r\n\r\n";
        req->_out[0] = uv_buf_init(oom, sizeof(oom) - 1);
        req->_out[1] = uv_buf_init(NULL, 0);
        req->_close = true;
        answered(req);
        return;
    }
    int n = sprintf(head, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    if (content_type != NULL)
        n += sprintf(head + n, "Content-Type: %s\r\n", content_type);
    n += sprintf(head + n, "Content-Length: %zu\r\n%s%s\r\n", body_len,
                 headers != NULL ? headers : "", req->_close ? "Connection: close\r\n" : "");
    req->_out[0] = uv_buf_init(head, (unsigned)n);
    req->_out[1] = uv_buf_init((char *)body, req->head || body == NULL ? 0 : (unsigned)body_len);
    answered(req);
}

void http_respond_json(struct http_request *req, int status, struct jsonw *w)
{
    if (w->failed) {
        http_problem(req, 503, "overloaded", "the server is short of memory", "Retry-After: 1\r\n");
        return;
    }
    http_respond(req, status, NULL, "application/json", w->buf, w->len);
}

void http_problem_members(struct jsonw *w, int status, const char *code, const char *detail)
{
    jsonw_key(w, "type");
    jsonw_str(w, "about:blank");
    jsonw_key(w, "title");
    jsonw_str(w, http_reason(status));
    jsonw_key(w, "status");
    jsonw_int(w, status);
    jsonw_key(w, "detail");
    jsonw_str(w, detail != NULL ? detail : http_reason(status));
    jsonw_key(w, "code");
    jsonw_str(w, code);
}

void http_problem(struct http_request *req, int status, const char *code, const char *detail,
                  const char *headers)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 256);
    jsonw_begin_object(&w);
    http_problem_members(&w, status, code, detail);
    jsonw_end_object(&w);
    if (w.failed) {
        http_respond(req, status, headers, NULL, NULL, 0);
        return;
    }
    http_respond(req, status, headers, "application/problem+json", w.buf, w.len);
}

/* ------------------------------------------------------------------------
 * Connections: accept, close, free
 * ------------------------------------------------------------------------ */

static void unlink_conn(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->stats.open--;
}

/* Freed only when its handles are closed and no handler still holds a request. */
static void maybe_free(struct http_conn *c)
{
    if (c->handles > 0 || c->working > 0)
        return;
    struct http_server *s = c->srv;
    for (unsigned i = 0; i < HTTP_PIPELINE_MAX; i++)
        arena_reset(&c->slots[i].arena);
    unlink_conn(c);
    free(c);
    if (s->draining && s->conns == NULL && s->drained != NULL) {
        void (*cb)(struct http_server *) = s->drained;
        s->drained = NULL;
        cb(s);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    c->handles--;
    maybe_free(c);
}

static void conn_close(struct http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0)
        return;
    struct http_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = s;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->stats.open++;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    for (unsigned i = 0; i < HTTP_PIPELINE_MAX; i++)
        arena_init(&c->slots[i].arena, &s->arenas);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->_settings);
    c->parser.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->draining ||
        s->stats.open > (size_t)s->cfg->max_connections) {
        s->stats.refused++;
        conn_close(c);
        return;
    }
    s->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    start_reading(c);
    arm_timer(c, true);
}

int http_server_init(struct http_server *s, uv_loop_t *loop, int fd, const struct http_config *cfg,
                     http_route_fn route, http_handle_fn handle, void *app)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->route = route;
    s->handle = handle;
    s->app = app;
    arena_cache_init(&s->arenas, 256, 0);
    llhttp_settings_init(&s->_settings);
    s->_settings.on_message_begin = on_message_begin;
    s->_settings.on_method = on_method;
    s->_settings.on_url = on_url;
    s->_settings.on_version = on_version;
    s->_settings.on_header_field = on_header_field;
    s->_settings.on_header_field_complete = on_header_field_complete;
    s->_settings.on_header_value = on_header_value;
    s->_settings.on_header_value_complete = on_header_value_complete;
    s->_settings.on_headers_complete = on_headers_complete;
    s->_settings.on_body = on_body;
    s->_settings.on_message_complete = on_message_complete;
    int rc = uv_tcp_init(loop, &s->listener);
    if (rc != 0)
        return rc;
    s->listener.data = s;
    rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    return rc;
}

static void on_listener_closed(uv_handle_t *h)
{
}

void http_server_drain(struct http_server *s, void (*drained)(struct http_server *s))
{
    if (s->draining)
        return;
    s->draining = true;
    s->drained = drained;
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct http_conn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        stop_reading(c);
        if (c->state == CONN_READING)
            c->state = CONN_DRAINING;
        drop_partial(c);
        if (c->count == 0 && c->working == 0)
            conn_close(c);
    }
    if (s->conns == NULL && s->drained != NULL) {
        s->drained = NULL;
        drained(s);
    }
}

void http_server_close_all(struct http_server *s)
{
    for (struct http_conn *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
}
