/*
 * The REST API of one loop: the route table, the checks every request goes
 * through in the contract's order (header size, route, key, body size, media
 * type, JSON and members, existence, rules) and the handlers, which translate
 * between HTTP and the store, the pipeline and the core.
 */
#ifndef CLAIMD_SERVER_API_H
#define CLAIMD_SERVER_API_H

#include <stdint.h>

#include "auth.h"
#include "http.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

struct api {
    uv_loop_t *loop;
    struct store store;
    struct pipeline *pipeline;
    struct auth auth;
    struct policy_set policies;
    int64_t schema_version; /* the migrations this binary carries */
    struct metrics metrics;
    const struct metrics_registry *registry;
    int loop_index;
    const int *access_log; /* the reloadable setting */
    uint64_t requests;     /* request ids are "loop-n" */
};

/** Chooses the route of a request (http_route_fn). */
size_t api_route(struct http_request *req);

/** Answers a request (http_handle_fn); req->conn's server app is the struct api. */
void api_handle(struct http_request *req);

/** Counts an answer in the loop's metrics (http_answered_fn). */
void api_answered(struct http_request *req, int status);

/** The route templates, by route index (metrics labels). */
const char *const *api_route_names(size_t *n);

#endif
