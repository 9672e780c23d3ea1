/*
 * What the API's files share: the per-request context, the handler type, the
 * handlers of each route and the helpers every handler uses (api__*). Only
 * api*.c include this header.
 */
#ifndef CLAIMD_SERVER_API_INTERNAL_H
#define CLAIMD_SERVER_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "jsonr.h"
#include "jsonw.h"

struct api_ctx;
typedef void (*handler_fn)(struct api *api, struct http_request *req, struct api_ctx *ctx);

struct api_batch;
struct route;

/* Per request, in its arena: the key check and the work of the handler. */
struct api_ctx {
    struct api *api;
    struct http_request *req;
    handler_fn handler;
    const struct route *route;
    struct auth_check chk;
    int64_t tenant_id;
    int64_t key_id;
    char ref[REF_MAX + 1]; /* the {ref} segment of the path */
    struct store_op op;
    struct pipeline_req claim;
    struct api_batch *batch;
};

/* Subscriptions (api_subs.c). */
void api__post_subscriptions(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__get_subscription(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_activate(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__put_device(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_cancel(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_option(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__get_history(struct api *api, struct http_request *req, struct api_ctx *ctx);

/* Claims (api_claims.c). */
void api__post_claim(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_quote(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_batch(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__get_claim(struct api *api, struct http_request *req, struct api_ctx *ctx);
void api__post_withdraw(struct api *api, struct http_request *req, struct api_ctx *ctx);

/* Helpers (api.c). */

/**
 * Media type, then JSON: answers 415 or 400 malformed_json and returns NULL,
 * or returns the object (values in the request's arena).
 */
json_t *api__read_json(struct http_request *req);

/**
 * For routes that take no body: none, or an empty object. Answers and
 * returns false when the body is something else.
 */
bool api__read_no_body(struct http_request *req);

/** 400 with the field errors of r; the first error's code is the problem's. */
void api__field_errors(struct http_request *req, const struct jsonr *r);

/** The answer to a store, pipeline or auth failure code (404, 422, 503, 500). */
void api__failed(struct http_request *req, int rc);

/** A rule's refusal (422/409) with its stable code. */
void api__verdict_problem(struct http_request *req, enum sub_verdict v);

/** Submits ctx->op with the caller's key and tenant; answers at once on a refusal. */
void api__submit(struct api_ctx *ctx, void (*done)(struct store_op *op));

/** The value of query parameter name (its span, not decoded), or NULL. */
const char *api__query(const struct http_request *req, const char *name, size_t *len);

/** A stored claim as GET /v1/claims/{ref} shows it. */
void api__write_record(struct jsonw *w, const struct claim_record *rec);

/** A window as {"start": ..., "end": ...}. */
void api__write_window(struct jsonw *w, struct window win);

#endif
