/*
 * Routing and the checks that precede every handler, and the handlers of the
 * operations routes: health, readiness, policies, subscriptions.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonr.h"
#include "log.h"

#define BODY_LIMIT (64 * 1024)

struct api_ctx;
typedef void (*handler_fn)(struct api *api, struct http_request *req, struct api_ctx *ctx);

/* One route: a path template ("{ref}" is one reference segment) and its methods. */
struct route {
    const char *pattern;
    handler_fn get;
    handler_fn post;
    handler_fn put;
    const char *allow;
    bool auth;
    size_t body_limit;
};

/* Per request, in its arena: the key check and the store operation. */
struct api_ctx {
    struct api *api;
    struct http_request *req;
    handler_fn handler;
    const struct route *route;
    struct auth_check chk;
    int64_t tenant_id;
    int64_t key_id;
    const char *ref; /* the {ref} segment */
    size_t ref_len;
    struct store_op op;
};

static void get_healthz(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void get_readyz(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void get_policies(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void post_subscriptions(struct api *api, struct http_request *req, struct api_ctx *ctx);

static const struct route routes[] = {
    {"/healthz", get_healthz, NULL, NULL, "GET, HEAD", false, 0},
    {"/readyz", get_readyz, NULL, NULL, "GET, HEAD", false, 0},
    {"/v1/policies", get_policies, NULL, NULL, "GET, HEAD", true, 0},
    {"/v1/subscriptions", NULL, post_subscriptions, NULL, "POST", true, BODY_LIMIT},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* ------------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------------ */

static bool ref_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

/* Matches path against pattern; the {ref} segment's span goes to ref. */
static bool match(const char *pattern, const char *path, size_t len, const char **ref,
                  size_t *ref_len)
{
    size_t i = 0;
    for (const char *p = pattern; *p != '\0'; p++) {
        if (strncmp(p, "{ref}", 5) == 0) {
            size_t start = i;
            while (i < len && path[i] != '/') {
                if (!ref_char(path[i]))
                    return false;
                i++;
            }
            if (i == start || i - start > REF_MAX)
                return false;
            *ref = path + start;
            *ref_len = i - start;
            p += 4;
        } else if (i >= len || path[i++] != *p) {
            return false;
        }
    }
    return i == len;
}

static handler_fn handler_for(const struct route *r, llhttp_method_t m)
{
    switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
        return r->get;
    case HTTP_POST:
        return r->post;
    case HTTP_PUT:
        return r->put;
    default:
        return NULL;
    }
}

size_t api_route(struct http_request *req)
{
    const char *ref = NULL;
    size_t ref_len = 0;
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(routes[i].pattern, req->path, req->path_len, &ref, &ref_len))
            continue;
        req->route = (int)i;
        handler_fn h = handler_for(&routes[i], req->method);
        if (h == NULL) {
            req->early = HTTP_EARLY_METHOD;
            req->allow = routes[i].allow;
            return 0;
        }
        return routes[i].body_limit;
    }
    req->route = -1;
    req->early = HTTP_EARLY_NOT_FOUND;
    return 0;
}

/* ------------------------------------------------------------------------
 * The checks before a handler, in the contract's order
 * ------------------------------------------------------------------------ */

static void early_answer(struct http_request *req)
{
    char allow[96];
    switch (req->early) {
    case HTTP_EARLY_HEADERS:
        http_problem(req, 431, "headers_too_large", "request line and headers exceed 8 KiB", NULL);
        return;
    case HTTP_EARLY_BAD_REQUEST:
        http_problem(req, 400, "bad_request", "the request is not valid HTTP/1.1", NULL);
        return;
    case HTTP_EARLY_NOT_FOUND:
        http_problem(req, 404, "not_found", "no such resource", NULL);
        return;
    case HTTP_EARLY_METHOD:
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", req->allow);
        http_problem(req, 405, "method_not_allowed", "the resource does not allow this method",
                     allow);
        return;
    default:
        http_problem(req, 413, "payload_too_large", "the request body is too large", NULL);
        return;
    }
}

static void unauthorized(struct http_request *req)
{
    http_problem(req, 401, "unauthorized", "a valid API key is required",
                 "WWW-Authenticate: Bearer\r\n");
}

static void unavailable(struct http_request *req)
{
    http_problem(req, 503, "database_unavailable", "the database cannot be reached",
                 "Retry-After: 1\r\n");
}

/* The key is known: the body size, then the handler. */
static void run_handler(struct api_ctx *ctx)
{
    struct http_request *req = ctx->req;
    if (req->early == HTTP_EARLY_TOO_LARGE) {
        early_answer(req);
        return;
    }
    ctx->handler(ctx->api, req, ctx);
}

static void key_checked(struct auth_check *chk)
{
    struct api_ctx *ctx = chk->data;
    if (chk->result == AUTH_OK) {
        ctx->tenant_id = chk->tenant_id;
        ctx->key_id = chk->key_id;
        run_handler(ctx);
    } else if (chk->result == AUTH_DENIED) {
        unauthorized(ctx->req);
    } else {
        unavailable(ctx->req);
    }
}

void api_handle(struct http_request *req)
{
    struct api *api = http_request_app(req);
    if (req->early != HTTP_EARLY_NONE && req->early != HTTP_EARLY_TOO_LARGE) {
        early_answer(req);
        return;
    }
    const struct route *r = &routes[req->route];
    struct api_ctx *ctx = arena_alloc(&req->arena, sizeof(*ctx));
    if (ctx == NULL) {
        http_problem(req, 503, "overloaded", "the server is short of memory", "Retry-After: 1\r\n");
        return;
    }
    memset(ctx, 0, sizeof(*ctx));
    ctx->api = api;
    ctx->req = req;
    ctx->route = r;
    ctx->handler = handler_for(r, req->method);
    match(r->pattern, req->path, req->path_len, &ctx->ref, &ctx->ref_len);
    req->ctx = ctx;
    if (!r->auth) {
        run_handler(ctx);
        return;
    }
    ctx->chk.cb = key_checked;
    ctx->chk.data = ctx;
    enum auth_result res =
        auth_begin(&api->auth, req->authorization_seen ? req->authorization : NULL,
                   req->authorization_len, &ctx->chk);
    if (res == AUTH_PENDING)
        return;
    ctx->chk.result = res;
    key_checked(&ctx->chk);
}

/* Content-Type is application/json, parameters (charset) allowed. */
static bool json_media(const struct http_request *req)
{
    const char *t = req->content_type;
    size_t n = strlen("application/json");
    if (req->content_type_len < n || strncasecmp(t, "application/json", n) != 0)
        return false;
    return t[n] == '\0' || t[n] == ';' || t[n] == ' ' || t[n] == '\t';
}

/*
 * Media type, then JSON: 415, malformed_json, or the decoded object (values
 * in the request's arena). Returns NULL when it answered.
 */
static json_t *read_json(struct http_request *req)
{
    json_t *obj = NULL;
    bool not_object;
    if (!json_media(req)) {
        http_problem(req, 415, "unsupported_media_type", "the body must be application/json", NULL);
        return NULL;
    }
    arena_set_json(&req->arena);
    int rc = jsonr_parse(req->body, req->body_len, &obj, &not_object);
    arena_set_json(NULL);
    if (rc != 0) {
        http_problem(req, 400, "malformed_json",
                     not_object ? "the body must be a JSON object" : "the body is not valid JSON",
                     NULL);
        return NULL;
    }
    return obj;
}

/* 400 with the field errors; the first one's code is the problem's code. */
static void field_errors(struct http_request *req, const struct jsonr *r)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 512);
    jsonw_begin_object(&w);
    jsonw_key(&w, "type");
    jsonw_str(&w, "about:blank");
    jsonw_key(&w, "title");
    jsonw_str(&w, http_reason(400));
    jsonw_key(&w, "status");
    jsonw_int(&w, 400);
    jsonw_key(&w, "detail");
    jsonw_str(&w, "the request body has invalid members");
    jsonw_key(&w, "code");
    jsonw_str(&w, r->errors[0].code);
    jsonw_key(&w, "errors");
    jsonr_write_errors(r, &w);
    jsonw_end_object(&w);
    if (w.failed) {
        http_problem(req, 400, r->errors[0].code, NULL, NULL);
        return;
    }
    http_respond(req, 400, NULL, "application/problem+json", w.buf, w.len);
}

/* A store operation failed before any rule: 404, 503, or 500. */
static void store_failed(struct http_request *req, int rc)
{
    switch (rc) {
    case CLAIMD_ENOTFOUND:
        http_problem(req, 404, "not_found", "no such resource", NULL);
        return;
    case CLAIMD_EUNAVAIL:
        unavailable(req);
        return;
    case CLAIMD_EOVERLOAD:
        http_problem(req, 503, "overloaded", "too much work queued", "Retry-After: 1\r\n");
        return;
    case CLAIMD_ENOPOLICY:
        http_problem(req, 422, "no_policy_in_force", "no policy version is in force on the day",
                     NULL);
        return;
    default:
        log_msg(LOG_ERROR, "api", "store operation failed: %s", claimd_rc_name(rc));
        http_problem(req, 500, "internal_error", "the request could not be completed", NULL);
        return;
    }
}

/* Submits ctx->op; on a refusal answers at once. */
static void submit(struct api_ctx *ctx, void (*done)(struct store_op *op))
{
    ctx->op.tenant_id = ctx->tenant_id;
    ctx->op.api_key_id = ctx->key_id;
    ctx->op.done = done;
    ctx->op.data = ctx;
    int rc = store_submit(&ctx->api->store, &ctx->op);
    if (rc != 0)
        store_failed(ctx->req, rc);
}

/* A rule's refusal: its status and stable code. */
static void verdict_problem(struct http_request *req, enum sub_verdict v)
{
    http_problem(req, sub_verdict_http_status(v), sub_verdict_name(v),
                 "the request is refused by the policy's rules", NULL);
}

/* ------------------------------------------------------------------------
 * Writers
 * ------------------------------------------------------------------------ */

static void write_window(struct jsonw *w, struct window win)
{
    jsonw_begin_object(w);
    jsonw_key(w, "start");
    jsonw_date(w, win.start);
    jsonw_key(w, "end");
    jsonw_date(w, win.end);
    jsonw_end_object(w);
}

static void write_device(struct jsonw *w, const struct adj_device *d)
{
    if (!d->present) {
        jsonw_null(w);
        return;
    }
    jsonw_begin_object(w);
    jsonw_key(w, "imei");
    jsonw_strn(w, d->imei, IMEI_LEN);
    jsonw_key(w, "os");
    jsonw_str(w, device_os_name(d->os));
    jsonw_key(w, "model");
    jsonw_str(w, d->model);
    jsonw_key(w, "release_date");
    jsonw_date(w, d->release_date);
    jsonw_key(w, "purchased_from");
    jsonw_str(w, adj_purchase_name(d->purchased_from));
    jsonw_key(w, "registered_on");
    jsonw_date(w, d->registered_on);
    jsonw_end_object(w);
}

static void write_billing(struct jsonw *w, const struct sub_state *st)
{
    char month[DATE_MONTH_STR_SIZE];
    jsonw_key(w, "monthly_fee");
    jsonw_int(w, st->monthly_fee);
    jsonw_key(w, "free_months");
    jsonw_begin_array(w);
    for (int i = 0; i < st->free_month_count; i++) {
        date_format_month(st->free_months[i], month);
        jsonw_str(w, month);
    }
    jsonw_end_array(w);
    jsonw_key(w, "fee_for_month");
    jsonw_int(w, st->fee_for_month);
}

/* A subscription as GET /v1/subscriptions/{ref} shows it (api.md's member order). */
static void write_view(struct jsonw *w, const struct store_view *v)
{
    const struct sub_state *st = &v->state;
    jsonw_begin_object(w);
    jsonw_key(w, "subscription_ref");
    jsonw_str(w, v->subscription_ref);
    jsonw_key(w, "applied_on");
    jsonw_date(w, v->sub.applied_on);
    jsonw_key(w, "activated_on");
    jsonw_date(w, v->sub.activated_on);
    jsonw_key(w, "device_protection");
    jsonw_bool(w, v->sub.option);
    jsonw_key(w, "option_status");
    jsonw_str(w, sub_option_status_name(st->option_status));
    jsonw_key(w, "cancelled_on");
    jsonw_date(w, v->sub.cancelled_on);
    jsonw_key(w, "device");
    write_device(w, &v->dev);
    jsonw_key(w, "on");
    jsonw_date(w, v->on);
    jsonw_key(w, "policy_version");
    jsonw_str(w, st->policy->name);
    jsonw_key(w, "window");
    write_window(w, st->window);
    jsonw_key(w, "uses");
    jsonw_begin_array(w);
    for (size_t i = 0; i < v->nuses; i++)
        jsonw_str(w, v->uses[i]);
    jsonw_end_array(w);
    jsonw_key(w, "uses_remaining");
    jsonw_int(w, st->uses_remaining);
    jsonw_key(w, "next_exchange_fee");
    if (st->next_exchange_fee < 0)
        jsonw_null(w);
    else
        jsonw_int(w, st->next_exchange_fee);
    write_billing(w, st);
    jsonw_end_object(w);
}

static void respond_view(struct http_request *req, int status, const struct store_view *v)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 1024);
    write_view(&w, v);
    http_respond_json(req, status, &w);
}

static void write_policy(struct jsonw *w, const struct policy *p)
{
    jsonw_begin_object(w);
    jsonw_key(w, "name");
    jsonw_str(w, p->name);
    jsonw_key(w, "effective_from");
    jsonw_date(w, p->effective_from);
    jsonw_key(w, "monthly_fee");
    jsonw_int(w, p->monthly_fee);
    jsonw_key(w, "free_months");
    jsonw_int(w, p->free_months);
    jsonw_key(w, "repair_cap");
    jsonw_int(w, p->repair_cap);
    jsonw_key(w, "exchange_fees");
    jsonw_begin_array(w);
    for (int i = 0; i < p->exchange_fee_count; i++)
        jsonw_int(w, p->exchange_fees[i]);
    jsonw_end_array(w);
    jsonw_key(w, "max_uses");
    jsonw_int(w, p->max_uses);
    jsonw_key(w, "window");
    jsonw_str(w, policy_window_name(p->window));
    jsonw_key(w, "natural_failure_months");
    jsonw_int(w, p->natural_failure_months);
    jsonw_key(w, "registration_days");
    jsonw_int(w, p->registration_days);
    jsonw_key(w, "ios_exchange");
    jsonw_bool(w, p->ios_exchange);
    jsonw_key(w, "loaner_os");
    jsonw_str(w, device_os_name(p->loaner_os));
    jsonw_end_object(w);
}

/* ------------------------------------------------------------------------
 * Operations routes
 * ------------------------------------------------------------------------ */

static void get_healthz(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(req, 200, NULL, "application/json", body, sizeof(body) - 1);
}

static void ready_done(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    static const char body[] = "{\"status\":\"ready\"}";
    if (op->rc != 0) {
        unavailable(ctx->req);
    } else if (op->schema_version != ctx->api->schema_version) {
        http_problem(ctx->req, 503, "migrations_pending",
                     "the database schema is not the one this binary expects",
                     "Retry-After: 5\r\n");
    } else {
        http_respond(ctx->req, 200, NULL, "application/json", body, sizeof(body) - 1);
    }
}

static void get_readyz(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    ctx->op.kind = STORE_READY;
    submit(ctx, ready_done);
}

static void get_policies(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 1024);
    jsonw_begin_object(&w);
    jsonw_key(&w, "policies");
    jsonw_begin_array(&w);
    for (size_t i = 0; i < api->policies.n; i++)
        write_policy(&w, &api->policies.v[i]);
    jsonw_end_array(&w);
    jsonw_end_object(&w);
    http_respond_json(req, 200, &w);
}

/* ------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------ */

static void created(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0) {
        store_failed(ctx->req, op->rc);
        return;
    }
    if (op->verdict != SUB_OK && op->verdict != SUB_REPEAT) {
        verdict_problem(ctx->req, op->verdict);
        return;
    }
    respond_view(ctx->req, op->created ? 201 : 200, &op->view);
}

/* subscription_ref, applied_on, activated_on, device_protection, in that order. */
static void read_subscription(struct jsonr *r, struct store_op *op)
{
    size_t len = 0;
    bool present;
    const char *ref = jsonr_string(r, "subscription_ref", true, &len);
    if (ref != NULL && !pipeline_ref_valid(ref, len))
        jsonr_fail(r, "subscription_ref", "invalid_field");
    else if (ref != NULL)
        memcpy(op->ref, ref, len + 1);
    op->sub.applied_on = jsonr_date(r, "applied_on", true, false);
    op->sub.activated_on = jsonr_date(r, "activated_on", false, true);
    op->sub.option = jsonr_bool(r, "device_protection", true, &present);
    op->sub.cancelled_on = DATE_NONE;
    jsonr_finish(r);
}

static void post_subscriptions(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonr r;
    json_t *obj = read_json(req);
    if (obj == NULL)
        return;
    jsonr_init(&r, obj);
    read_subscription(&r, &ctx->op);
    if (r.nerrors > 0) {
        field_errors(req, &r);
        return;
    }
    enum sub_verdict v = sub_check_create(&ctx->op.sub);
    if (v != SUB_OK) {
        verdict_problem(req, v);
        return;
    }
    ctx->op.kind = STORE_CREATE;
    submit(ctx, created);
}
