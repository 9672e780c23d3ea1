/*
 * API key authentication of one loop: "Authorization: Bearer KEY" (scheme
 * matched case-insensitively) -> SHA-256 -> key row -> tenant, with a small
 * per-loop cache whose entries live at most auth-cache-ms, so a revoked key
 * stops working within that time. Keys are never logged or kept: only their
 * hashes are.
 */
#ifndef CLAIMD_SERVER_AUTH_H
#define CLAIMD_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store.h"

#define AUTH_CACHE_SLOTS 1024

enum auth_result {
    AUTH_OK = 0,
    AUTH_DENIED,      /* missing, malformed, unknown or revoked: 401 */
    AUTH_PENDING,     /* the database is being asked: cb will run */
    AUTH_UNAVAILABLE, /* the key cannot be checked now: 503 */
};

struct auth_slot {
    uint8_t hash[32];
    bool used;
    bool valid;
    int64_t tenant_id;
    int64_t key_id;
    uint64_t expires; /* uv_now() milliseconds */
};

struct auth {
    uv_loop_t *loop;
    struct store *store;
    const int *ttl_ms;
    struct auth_slot *slots; /* AUTH_CACHE_SLOTS, allocated once */
    uint64_t lookups;
    uint64_t hits;
};

/** One check in progress: lives in the caller's memory until cb runs. */
struct auth_check {
    struct store_op op;
    struct auth *auth;
    uint8_t hash[32];
    enum auth_result result;
    int64_t tenant_id;
    int64_t key_id;
    void (*cb)(struct auth_check *chk);
    void *data;
};

CLAIMD_MUSTCHECK int auth_init(struct auth *a, uv_loop_t *loop, struct store *store,
                               const int *ttl_ms);
void auth_destroy(struct auth *a);

/**
 * Checks an Authorization header value (NULL when absent). Returns AUTH_OK
 * (tenant and key set in chk), AUTH_DENIED, AUTH_UNAVAILABLE, or
 * AUTH_PENDING, after which chk->cb runs with chk->result set.
 */
enum auth_result auth_begin(struct auth *a, const char *header, size_t len, struct auth_check *chk);

/** Parses "Bearer TOKEN": 0 with the token's span, or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int auth_bearer(const char *header, size_t len, const char **token,
                                 size_t *token_len);

#endif
