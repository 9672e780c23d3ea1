/*
 * The key cache (direct-mapped on the hash's first bytes; a collision just
 * evicts) and the database look-up through the store.
 */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgutil.h"

int auth_init(struct auth *a, uv_loop_t *loop, struct store *store, const int *ttl_ms)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->store = store;
    a->ttl_ms = ttl_ms;
    a->slots = calloc(AUTH_CACHE_SLOTS, sizeof(*a->slots));
    return a->slots != NULL ? 0 : UV_ENOMEM;
}

void auth_destroy(struct auth *a)
{
    free(a->slots);
    a->slots = NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int auth_bearer(const char *h, size_t len, const char **token, size_t *token_len)
{
    if (h == NULL || len < 7 || strncasecmp(h, "bearer", 6) != 0 || !is_space(h[6]))
        return CLAIMD_EINVAL;
    size_t i = 7;
    while (i < len && is_space(h[i]))
        i++;
    size_t end = len;
    while (end > i && is_space(h[end - 1]))
        end--;
    if (end == i || end - i > 256)
        return CLAIMD_EINVAL;
    for (size_t k = i; k < end; k++) {
        if (is_space(h[k]))
            return CLAIMD_EINVAL;
    }
    *token = h + i;
    *token_len = end - i;
    return 0;
}

static struct auth_slot *slot_for(struct auth *a, const uint8_t hash[32])
{
    size_t i = ((size_t)hash[0] | (size_t)hash[1] << 8) % AUTH_CACHE_SLOTS;
    return &a->slots[i];
}

static void remember(struct auth *a, const struct auth_check *chk, bool valid)
{
    struct auth_slot *s = slot_for(a, chk->hash);
    memcpy(s->hash, chk->hash, 32);
    s->used = true;
    s->valid = valid;
    s->tenant_id = chk->tenant_id;
    s->key_id = chk->key_id;
    s->expires = uv_now(a->loop) + (uint64_t)*a->ttl_ms;
}

static void looked_up(struct store_op *op)
{
    struct auth_check *chk = op->data;
    if (op->rc != 0) {
        chk->result = AUTH_UNAVAILABLE;
    } else {
        chk->tenant_id = op->tenant_id;
        chk->key_id = op->api_key_id;
        chk->result = op->found ? AUTH_OK : AUTH_DENIED;
        remember(chk->auth, chk, op->found);
    }
    chk->cb(chk);
}

enum auth_result auth_begin(struct auth *a, const char *header, size_t len, struct auth_check *chk)
{
    const char *token;
    size_t tlen;
    if (auth_bearer(header, len, &token, &tlen) != 0)
        return AUTH_DENIED;
    chk->auth = a;
    if (pgutil_sha256(token, tlen, chk->hash) != 0)
        return AUTH_UNAVAILABLE;
    a->lookups++;
    struct auth_slot *s = slot_for(a, chk->hash);
    if (s->used && memcmp(s->hash, chk->hash, 32) == 0 && s->expires > uv_now(a->loop)) {
        a->hits++;
        chk->tenant_id = s->tenant_id;
        chk->key_id = s->key_id;
        return s->valid ? AUTH_OK : AUTH_DENIED;
    }
    memset(&chk->op, 0, sizeof(chk->op));
    chk->op.kind = STORE_AUTH;
    pgutil_hex(chk->hash, 32, chk->op.ref);
    chk->op.done = looked_up;
    chk->op.data = chk;
    if (store_submit(a->store, &chk->op) != 0)
        return AUTH_UNAVAILABLE;
    return AUTH_PENDING;
}
