/*
 * claimbench's connections: each embeds its uv_tcp_t, its llhttp response
 * parser, a ring of request slots with fixed request buffers (HTTP
 * pipelining up to --pipeline) and a fixed answer buffer. Also the open
 * loop's schedule (intended send times, a backlog when every connection is
 * busy) and the /metrics reads around a window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claimbench.h"

#define READ_BUF    16384
#define HEAD_ROOM   768 /* request line and headers, the key included */
#define CLAIM_JSON  512 /* the longest claim body claimbench writes */
#define ANSWER_MIN  16384
#define ANSWER_ITEM 1024 /* answer bytes per claim of a batch */
#define BACKLOG_MAX (1u << 21)
#define RECONNECTS  3

enum conn_state { CONN_CLOSED = 0, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };
enum conn_kind { KIND_CLAIMS = 0, KIND_METRICS };

/* One request written and not yet answered. */
struct cb_slot {
    uint64_t intended_ns; /* open loop: when it was due; closed loop: when it was written */
    bool measured;        /* intended inside the measured window */
    size_t nitems;
    struct cb_item *items;
    char *buf; /* fixed: HEAD_ROOM, then the body */
    size_t cap;
    uv_write_t wr;
};

struct cb_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    llhttp_t parser;
    struct cb *b;
    enum conn_state state;
    enum conn_kind kind;
    bool in_idle;
    int reconnects;
    struct cb_conn *next_idle;
    unsigned head;  /* oldest slot in flight */
    unsigned count; /* slots in flight */
    struct cb_slot *slots;
    char *answer; /* the body of the answer being read */
    size_t answer_len;
    size_t answer_cap;
    bool answer_over;
    struct cb_run *metrics_run; /* KIND_METRICS: the run whose window it samples */
    bool metrics_end;
    char rbuf[READ_BUF];
};

static void conn_lost(struct cb_conn *c, const char *why);
static void conn_ready(struct cb_conn *c);
static void conn_start(struct cb_conn *c);

static void count_error(struct cb *b, enum cb_error e)
{
    if (b->run != NULL)
        b->run->errors[e]++;
    b->tick_errors++;
}

static bool issuing(const struct cb *b)
{
    bool phase = b->phase == PH_WARMUP || b->phase == PH_WINDOW;
    return phase && (b->opt.requests == 0 || b->issued < b->opt.requests);
}

static bool is_measured(const struct cb *b, uint64_t intended)
{
    const struct cb_run *run = b->run;
    return run != NULL && run->window_start_ns != 0 && intended >= run->window_start_ns &&
           (run->window_end_ns == 0 || intended < run->window_end_ns);
}

/* ------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static int alloc_conn(struct cb *b, struct cb_conn *c)
{
    size_t items = b->opt.batch > 0 ? b->opt.batch : 1;
    c->b = b;
    c->slots = calloc(b->opt.depth, sizeof(*c->slots));
    c->answer_cap = ANSWER_MIN + items * ANSWER_ITEM;
    c->answer = malloc(c->answer_cap);
    if (c->slots == NULL || c->answer == NULL)
        return -1;
    for (size_t i = 0; i < b->opt.depth; i++) {
        struct cb_slot *s = &c->slots[i];
        s->cap = HEAD_ROOM + 16 + items * (CLAIM_JSON + 1);
        s->buf = malloc(s->cap);
        s->items = calloc(items, sizeof(*s->items));
        if (s->buf == NULL || s->items == NULL)
            return -1;
    }
    return 0;
}

int cb_net_init(struct cb *b)
{
    int rc = uv_ip4_addr(b->opt.host, b->opt.port, (struct sockaddr_in *)&b->addr);
    if (rc != 0)
        rc = uv_ip6_addr(b->opt.host, b->opt.port, (struct sockaddr_in6 *)&b->addr);
    if (rc != 0) {
        fprintf(stderr, "claimbench: %s is not a numeric address\n", b->opt.host);
        return -1;
    }
    llhttp_settings_init(&b->http);
    b->http.on_body = on_body;
    b->http.on_message_complete = on_message_complete;
    b->nconns = b->opt.connections;
    b->conns = calloc(b->nconns, sizeof(*b->conns));
    b->backlog_cap = BACKLOG_MAX;
    b->backlog = calloc(b->backlog_cap, sizeof(*b->backlog));
    if (b->conns == NULL || b->backlog == NULL)
        return -1;
    for (size_t i = 0; i < b->nconns; i++) {
        if (alloc_conn(b, &b->conns[i]) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Connecting and closing
 * ------------------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
    struct cb_conn *c = h->data;
    struct cb *b = c->b;
    c->state = CONN_CLOSED;
    if (c->kind == KIND_METRICS) {
        free(c->answer);
        free(c);
        return;
    }
    if (issuing(b) && c->reconnects < RECONNECTS) {
        c->reconnects++;
        conn_start(c);
    }
}

static void send_metrics_request(struct cb_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_connect(uv_connect_t *req, int status)
{
    struct cb_conn *c = req->data;
    struct cb *b = c->b;
    if (status < 0 || c->state != CONN_CONNECTING) {
        if (c->state == CONN_CONNECTING)
            conn_lost(c, uv_strerror(status));
        return;
    }
    c->state = CONN_OPEN;
    b->open += c->kind == KIND_CLAIMS;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_lost(c, uv_strerror(rc));
        return;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &b->http);
    c->parser.data = c;
    c->head = c->count = 0;
    c->answer_len = 0;
    c->answer_over = false;
    if (c->kind == KIND_METRICS)
        send_metrics_request(c);
    else
        conn_ready(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cb_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cb_conn *c = s->data;
    if (nread < 0) {
        conn_lost(c, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, c->rbuf, (size_t)nread);
    if (err != HPE_OK && c->state == CONN_OPEN) {
        count_error(c->b, ERR_MALFORMED);
        cb_example(c->b->run, "HTTP parse error", llhttp_errno_name(err),
                   strlen(llhttp_errno_name(err)));
        conn_lost(c, llhttp_errno_name(err));
    }
}

static void conn_start(struct cb_conn *c)
{
    struct cb *b = c->b;
    uv_tcp_init(&b->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->state = CONN_CONNECTING;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&b->addr, on_connect);
    if (rc != 0)
        conn_lost(c, uv_strerror(rc));
}

static void unlink_idle(struct cb_conn *c)
{
    struct cb_conn **link = &c->b->idle;
    while (*link != NULL && *link != c)
        link = &(*link)->next_idle;
    if (*link == c)
        *link = c->next_idle;
    c->in_idle = false;
}

/*
 * The connection is gone. Requests in flight on it have no answer: their
 * claims may or may not be stored (the cross-check allows for them). A
 * connection the server closed while nothing was in flight is no error.
 */
static void conn_lost(struct cb_conn *c, const char *why)
{
    struct cb *b = c->b;
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    if (c->kind == KIND_METRICS) {
        b->metrics_pending--;
        c->metrics_run->batch_ok = false;
    } else if (c->count > 0 || c->state == CONN_CONNECTING) {
        count_error(b, ERR_CONNECTION);
        char what[96];
        snprintf(what, sizeof(what), "connection lost with %u in flight", c->count);
        cb_example(b->run, what, why, strlen(why));
    }
    if (c->kind == KIND_CLAIMS && c->state == CONN_OPEN)
        b->open--;
    b->outstanding -= c->count;
    c->count = 0;
    if (c->in_idle)
        unlink_idle(c);
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int cb_connect_all(struct cb *b)
{
    for (size_t i = 0; i < b->nconns; i++)
        conn_start(&b->conns[i]);
    bool connecting = true;
    while (connecting) {
        uv_run(&b->loop, UV_RUN_ONCE);
        connecting = false;
        for (size_t i = 0; i < b->nconns && !connecting; i++)
            connecting = b->conns[i].state == CONN_CONNECTING;
    }
    if (b->open < b->nconns)
        fprintf(stderr, "claimbench: %zu of %zu connections to %s:%d came up\n", b->open, b->nconns,
                b->opt.host, b->opt.port);
    return b->open > 0 ? 0 : -1;
}

bool cb_can_send(const struct cb *b)
{
    for (size_t i = 0; i < b->nconns; i++) {
        if (b->conns[i].state == CONN_OPEN || b->conns[i].state == CONN_CONNECTING)
            return true;
    }
    return false;
}

void cb_close_all(struct cb *b)
{
    for (size_t i = 0; i < b->nconns; i++) {
        struct cb_conn *c = &b->conns[i];
        if (c->state == CONN_OPEN || c->state == CONN_CONNECTING) {
            c->state = CONN_CLOSING;
            uv_close((uv_handle_t *)&c->tcp, on_closed);
        }
    }
    b->idle = NULL;
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

/* Writes head and body into the slot's fixed buffer: the head goes just before the body. */
static int build_request(struct cb *b, struct cb_slot *s, uv_buf_t *out)
{
    static const char open_batch[] = "{\"claims\":[";
    char *body = s->buf + HEAD_ROOM, *p = body, *end = s->buf + s->cap;
    bool batch = b->opt.batch > 0;
    if (batch) {
        memcpy(p, open_batch, sizeof(open_batch) - 1);
        p += sizeof(open_batch) - 1;
    }
    for (size_t i = 0; i < s->nitems; i++) {
        if (i > 0)
            *p++ = ',';
        size_t n = cb_claim_json(b, &s->items[i], p, (size_t)(end - p) - 3);
        if (n == 0)
            return -1;
        p += n;
    }
    if (batch) {
        *p++ = ']';
        *p++ = '}';
    }
    size_t len = (size_t)(p - body);
    char head[HEAD_ROOM];
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      batch ? "/v1/claims/batch" : "/v1/claims", b->opt.host, b->opt.port,
                      b->auth_line, len);
    if (hl <= 0 || hl >= HEAD_ROOM)
        return -1;
    memcpy(body - hl, head, (size_t)hl);
    *out = uv_buf_init(body - hl, (unsigned)((size_t)hl + len));
    return 0;
}

static void on_write(uv_write_t *w, int status)
{
    struct cb_conn *c = w->data;
    if (status < 0 && c->state == CONN_OPEN)
        conn_lost(c, uv_strerror(status));
}

/* Writes the next request on c, intended at `intended`. */
static void send_one(struct cb_conn *c, uint64_t intended)
{
    struct cb *b = c->b;
    struct cb_slot *s = &c->slots[(c->head + c->count) % b->opt.depth];
    uv_buf_t buf;
    s->nitems = b->opt.batch > 0 ? b->opt.batch : 1;
    for (size_t i = 0; i < s->nitems; i++)
        cb_next_item(b, &s->items[i]);
    if (build_request(b, s, &buf) != 0) {
        fputs("claimbench: a request does not fit its buffer\n", stderr);
        exit(2);
    }
    s->intended_ns = intended;
    s->measured = is_measured(b, intended);
    s->wr.data = c;
    c->count++;
    b->outstanding++;
    b->issued++;
    if (uv_write(&s->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        conn_lost(c, "write refused");
}

static uint64_t backlog_pop(struct cb *b)
{
    uint64_t t = b->backlog[b->backlog_head];
    b->backlog_head = (b->backlog_head + 1) % b->backlog_cap;
    b->backlog_len--;
    return t;
}

/*
 * c has room for more: a closed loop writes the next request now; an open
 * loop takes what is due from the backlog, else waits in the idle list.
 */
static void conn_ready(struct cb_conn *c)
{
    struct cb *b = c->b;
    if (c->state != CONN_OPEN)
        return;
    if (!b->open_loop) {
        while (issuing(b) && c->count < b->opt.depth && c->state == CONN_OPEN)
            send_one(c, cb_now_ns());
        return;
    }
    while (b->backlog_len > 0 && c->count < b->opt.depth && c->state == CONN_OPEN)
        send_one(c, backlog_pop(b));
    if (c->state == CONN_OPEN && c->count < b->opt.depth && !c->in_idle) {
        c->in_idle = true;
        c->next_idle = b->idle;
        b->idle = c;
    }
}

void cb_issue(struct cb *b)
{
    for (size_t i = 0; i < b->nconns; i++) {
        struct cb_conn *c = &b->conns[i];
        if (c->state == CONN_CLOSED) {
            c->reconnects = 0;
            conn_start(c);
        } else {
            conn_ready(c);
        }
    }
}

/*
 * Every millisecond of an open loop: the requests due since the last tick
 * join the backlog with their intended times (i / rate after the start), and
 * idle connections take them. Latency counts from the intended time, so a
 * server that falls behind shows its queue instead of slowing the client.
 */
void cb_open_loop_tick(struct cb *b)
{
    if (b->phase == PH_WARMUP || b->phase == PH_WINDOW) {
        uint64_t now = cb_now_ns();
        uint64_t target = (uint64_t)((double)(now - b->t0_ns) * b->rate / 1e9);
        while (b->due < target && b->backlog_len < b->backlog_cap) {
            size_t tail = (b->backlog_head + b->backlog_len) % b->backlog_cap;
            b->backlog[tail] = b->t0_ns + (uint64_t)((double)b->due * 1e9 / b->rate);
            b->backlog_len++;
            b->due++;
        }
    }
    while (b->backlog_len > 0 && b->idle != NULL) {
        struct cb_conn *c = b->idle;
        b->idle = c->next_idle;
        c->in_idle = false;
        conn_ready(c);
    }
    if (b->run != NULL && b->backlog_len > b->run->backlog_max)
        b->run->backlog_max = b->backlog_len;
}

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct cb_conn *c = p->data;
    if (c->answer_len + len > c->answer_cap && c->kind == KIND_METRICS) {
        size_t cap = (c->answer_len + len) * 2;
        char *n = realloc(c->answer, cap);
        if (n == NULL)
            return HPE_USER;
        c->answer = n;
        c->answer_cap = cap;
    }
    if (c->answer_len + len > c->answer_cap) {
        c->answer_over = true;
        len = c->answer_cap - c->answer_len;
    }
    memcpy(c->answer + c->answer_len, at, len);
    c->answer_len += len;
    return 0;
}

static void metrics_done(struct cb_conn *c);

/* The oldest request of c is answered: check it, count it, send the next. */
static void answered(struct cb_conn *c)
{
    struct cb *b = c->b;
    struct cb_run *run = b->run;
    struct cb_slot *s = &c->slots[c->head];
    if (c->count == 0) {
        count_error(b, ERR_MALFORMED);
        cb_example(run, "an answer to no request", c->answer, c->answer_len);
        return;
    }
    c->head = (c->head + 1) % (unsigned)b->opt.depth;
    c->count--;
    b->outstanding--;
    uint64_t now = cb_now_ns(), us = (now - s->intended_ns) / 1000;
    size_t stored = cb_check_answer(b, s->items, s->nitems, llhttp_get_status_code(&c->parser),
                                    c->answer, c->answer_len, s->measured);
    c->answer_len = 0;
    c->answer_over = false;
    if (s->measured) {
        hist_record(&run->lat, us);
        run->requests++;
        run->decisions += stored;
    }
    if (b->phase == PH_WINDOW) {
        run->done_in_window++;
        run->decisions_in_window += stored;
    }
    hist_record(&b->tick_lat, us);
    b->tick_done++;
    b->tick_decisions += stored;
    conn_ready(c);
    cb_answered(b);
}

static int on_message_complete(llhttp_t *p)
{
    struct cb_conn *c = p->data;
    if (c->kind == KIND_METRICS)
        metrics_done(c);
    else
        answered(c);
    return c->state == CONN_OPEN ? 0 : HPE_PAUSED;
}

/* ------------------------------------------------------------------------
 * claimd's /metrics: the batch sizes of the window
 * ------------------------------------------------------------------------ */

static void send_metrics_request(struct cb_conn *c)
{
    static char req[256];
    struct cb *b = c->b;
    int n = snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: %s:%d\r\n\r\n", b->opt.host,
                     b->opt.port);
    uv_buf_t buf = uv_buf_init(req, (unsigned)n);
    if (uv_try_write((uv_stream_t *)&c->tcp, &buf, 1) != n)
        conn_lost(c, "cannot write the /metrics request");
}

/* The value of a sample line "name value" of the Prometheus text, or -1. */
static double sample(const char *text, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = text; p != NULL && p < text + len;) {
        if ((size_t)(text + len - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == ' ')
            return strtod(p + nlen + 1, NULL);
        p = memchr(p, '\n', (size_t)(text + len - p));
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static void metrics_done(struct cb_conn *c)
{
    struct cb *b = c->b;
    struct cb_run *run = c->metrics_run;
    double sum = -1, count = -1;
    if (llhttp_get_status_code(&c->parser) == 200) {
        sum = sample(c->answer, c->answer_len, "claimd_batch_size_sum");
        count = sample(c->answer, c->answer_len, "claimd_batch_size_count");
    }
    if (sum < 0 || count < 0)
        run->batch_ok = false;
    else if (c->metrics_end)
        run->batch_sum1 = sum, run->batch_count1 = count;
    else
        run->batch_sum0 = sum, run->batch_count0 = count;
    b->metrics_pending--;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int cb_fetch_metrics(struct cb *b, bool end)
{
    struct cb_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->b = b;
    c->kind = KIND_METRICS;
    c->metrics_run = b->run;
    c->metrics_end = end;
    c->answer_cap = 65536;
    c->answer = malloc(c->answer_cap);
    if (c->answer == NULL) {
        free(c);
        return -1;
    }
    b->metrics_pending++;
    conn_start(c);
    return 0;
}
