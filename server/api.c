/*
 * Routing and the checks that precede every handler, and the handlers of the
 * operations routes: health, readiness, policies, subscriptions.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"
#include "log.h"

#define BODY_LIMIT (64 * 1024)

#define BATCH_LIMIT (1024 * 1024)

/* One route: a path template ("{ref}" is one reference segment) and its methods. */
struct route {
    const char *pattern;
    handler_fn get;
    handler_fn post;
    handler_fn put;
    const char *allow;
    bool auth;
    size_t body_limit;
    const char *query; /* the query parameters it takes, comma-separated; NULL: none; "*": any */
};

static void get_healthz(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void get_readyz(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void get_policies(struct api *api, struct http_request *req, struct api_ctx *ctx);
static void get_metrics(struct api *api, struct http_request *req, struct api_ctx *ctx);

/*
 * The routes. Literal paths come before the templates that would also match
 * them, so "quote" and "batch" are never taken for a claim_ref.
 */
static const struct route routes[] = {
    {"/healthz", get_healthz, NULL, NULL, "GET, HEAD", false, BODY_LIMIT, "*"},
    {"/readyz", get_readyz, NULL, NULL, "GET, HEAD", false, BODY_LIMIT, "*"},
    {"/metrics", get_metrics, NULL, NULL, "GET, HEAD", false, BODY_LIMIT, "*"},
    {"/v1/policies", get_policies, NULL, NULL, "GET, HEAD", true, BODY_LIMIT, NULL},
    {"/v1/subscriptions", NULL, api__post_subscriptions, NULL, "POST", true, BODY_LIMIT, NULL},
    {"/v1/subscriptions/{ref}", api__get_subscription, NULL, NULL, "GET, HEAD", true, BODY_LIMIT,
     "on"},
    {"/v1/subscriptions/{ref}/activate", NULL, api__post_activate, NULL, "POST", true, BODY_LIMIT,
     NULL},
    {"/v1/subscriptions/{ref}/device", NULL, NULL, api__put_device, "PUT", true, BODY_LIMIT, NULL},
    {"/v1/subscriptions/{ref}/cancel", NULL, api__post_cancel, NULL, "POST", true, BODY_LIMIT,
     NULL},
    {"/v1/subscriptions/{ref}/device-protection", NULL, api__post_option, NULL, "POST", true,
     BODY_LIMIT, NULL},
    {"/v1/subscriptions/{ref}/claims", api__get_history, NULL, NULL, "GET, HEAD", true, BODY_LIMIT,
     "limit,after"},
    {"/v1/claims", NULL, api__post_claim, NULL, "POST", true, BODY_LIMIT, NULL},
    {"/v1/claims/quote", NULL, api__post_quote, NULL, "POST", true, BODY_LIMIT, NULL},
    {"/v1/claims/batch", NULL, api__post_batch, NULL, "POST", true, BATCH_LIMIT, NULL},
    {"/v1/claims/{ref}", api__get_claim, NULL, NULL, "GET, HEAD", true, BODY_LIMIT, NULL},
    {"/v1/claims/{ref}/withdraw", NULL, api__post_withdraw, NULL, "POST", true, BODY_LIMIT, NULL},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))
_Static_assert(NROUTES < METRICS_ROUTES, "every route needs a metrics slot");

static const char *route_names[NROUTES];

const char *const *api_route_names(size_t *n)
{
    for (size_t i = 0; i < NROUTES; i++)
        route_names[i] = routes[i].pattern;
    *n = NROUTES;
    return route_names;
}

void api_answered(struct http_request *req, int status)
{
    struct api *api = http_request_app(req);
    uint64_t ns = uv_hrtime() - req->start_ns;
    metrics_request(&api->metrics, req->route, status, ns);
    if (api->access_log != NULL && *api->access_log) {
        char id[48];
        const struct api_ctx *ctx = req->ctx;
        snprintf(id, sizeof(id), "%d-%llu", api->loop_index, (unsigned long long)req->id);
        log_access(id, llhttp_method_name(req->method),
                   req->route >= 0 ? routes[req->route].pattern : "none", status, ns / 1000,
                   ctx != NULL ? (long long)ctx->tenant_id : 0);
    }
}

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
        if (h == api__post_claim || h == api__post_batch)
            req->order = HTTP_ORDER_CLAIMS; /* the pipeline keeps their order */
        else if (h == api__post_quote)
            req->order = HTTP_ORDER_SAFE; /* reads only */
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
/* Whether name[0..len) is one of the comma-separated names of allowed. */
static bool allowed_param(const char *allowed, const char *name, size_t len)
{
    if (allowed != NULL && strcmp(allowed, "*") == 0)
        return true;
    while (allowed != NULL && *allowed != '\0') {
        size_t n = strcspn(allowed, ",");
        if (n == len && memcmp(allowed, name, n) == 0)
            return true;
        allowed += n + (allowed[n] == ',');
    }
    return false;
}

/* A query parameter the route does not take is refused, as unknown JSON members are. */
static bool query_ok(struct http_request *req, const char *allowed)
{
    const char *p = req->query, *end = req->query + req->query_len;
    while (req->query != NULL && p < end) {
        const char *stop = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((stop != NULL ? stop : end) - p);
        size_t name_len = strcspn(p, "=&");
        name_len = name_len < len ? name_len : len;
        if (len > 0 && !allowed_param(allowed, p, name_len)) {
            struct jsonr r;
            char *name = arena_strndup(&req->arena, p, name_len);
            jsonr_init(&r, NULL);
            jsonr_fail(&r, name != NULL ? name : "", "unknown_field");
            api__field_errors(req, &r);
            return false;
        }
        p += len + (stop != NULL);
    }
    return true;
}

/* The key is known: the body size, the query's parameters, then the handler. */
static void run_handler(struct api_ctx *ctx)
{
    struct http_request *req = ctx->req;
    if (req->early == HTTP_EARLY_TOO_LARGE) {
        early_answer(req);
        return;
    }
    if (!query_ok(req, ctx->route->query))
        return;
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
    req->id = ++api->requests;
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
    const char *ref = NULL;
    size_t ref_len = 0;
    ctx->api = api;
    ctx->req = req;
    ctx->route = r;
    ctx->handler = handler_for(r, req->method);
    match(r->pattern, req->path, req->path_len, &ref, &ref_len);
    if (ref != NULL) {
        memcpy(ctx->ref, ref, ref_len);
        memcpy(ctx->op.ref, ref, ref_len); /* the store operations name the path's object */
    }
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
json_t *api__read_json(struct http_request *req)
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

bool api__read_no_body(struct http_request *req)
{
    if (req->body_len == 0)
        return true;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return false;
    struct jsonr r;
    jsonr_init(&r, obj);
    jsonr_finish(&r);
    if (r.nerrors > 0) {
        api__field_errors(req, &r);
        return false;
    }
    return true;
}

static bool query_next(const char **p, const char *end, const char **name, size_t *name_len,
                       const char **value, size_t *value_len)
{
    if (*p >= end)
        return false;
    const char *amp = memchr(*p, '&', (size_t)(end - *p));
    const char *stop = amp != NULL ? amp : end;
    const char *eq = memchr(*p, '=', (size_t)(stop - *p));
    *name = *p;
    *name_len = (size_t)((eq != NULL ? eq : stop) - *p);
    *value = eq != NULL ? eq + 1 : stop;
    *value_len = (size_t)(stop - *value);
    *p = amp != NULL ? amp + 1 : end;
    return true;
}

const char *api__query(const struct http_request *req, const char *name, size_t *len)
{
    const char *p = req->query, *end = req->query + req->query_len, *n, *v;
    size_t nl, vl;
    while (req->query != NULL && query_next(&p, end, &n, &nl, &v, &vl)) {
        if (nl == strlen(name) && memcmp(n, name, nl) == 0) {
            *len = vl;
            return v;
        }
    }
    return NULL;
}

void api__write_window(struct jsonw *w, struct window win)
{
    jsonw_begin_object(w);
    jsonw_key(w, "start");
    jsonw_date(w, win.start);
    jsonw_key(w, "end");
    jsonw_date(w, win.end);
    jsonw_end_object(w);
}

/* 400 with the field errors; the first one's code is the problem's code. */
void api__field_errors(struct http_request *req, const struct jsonr *r)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 512);
    jsonw_begin_object(&w);
    http_problem_members(&w, 400, r->errors[0].code, "the request has invalid members");
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
void api__failed(struct http_request *req, int rc)
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
        log_msg(LOG_ERROR, "api", "request %d-%llu failed: %s",
                ((struct api *)http_request_app(req))->loop_index, (unsigned long long)req->id,
                claimd_rc_name(rc));
        http_problem(req, 500, "internal_error", "the request could not be completed", NULL);
        return;
    }
}

/* Submits ctx->op; on a refusal answers at once. */
void api__submit(struct api_ctx *ctx, void (*done)(struct store_op *op))
{
    ctx->op.tenant_id = ctx->tenant_id;
    ctx->op.api_key_id = ctx->key_id;
    ctx->op.done = done;
    ctx->op.data = ctx;
    int rc = store_submit(&ctx->api->store, &ctx->op);
    if (rc != 0)
        api__failed(ctx->req, rc);
}

/* A rule's refusal: its status and stable code. */
void api__verdict_problem(struct http_request *req, enum sub_verdict v)
{
    http_problem(req, sub_verdict_http_status(v), sub_verdict_name(v),
                 "the request is refused by the policy's rules", NULL);
}

/* ------------------------------------------------------------------------
 * Writers
 * ------------------------------------------------------------------------ */

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
    api__submit(ctx, ready_done);
}

#ifndef CLAIMD_VERSION
#define CLAIMD_VERSION "unknown"
#endif

static void get_metrics(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 16384);
    metrics_render(api->registry, &w, CLAIMD_VERSION);
    if (w.failed) {
        api__failed(req, CLAIMD_EOVERLOAD);
        return;
    }
    http_respond(req, 200, NULL, "text/plain; version=0.0.4", w.buf, w.len);
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
