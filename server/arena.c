/*
 * The arena and its block cache. A block is a header followed by its payload;
 * a big chunk is a block of its own size, never cached.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct arena_block {
    struct arena_block *next;
    size_t size; /* payload bytes */
    _Alignas(max_align_t) char data[];
};

#define ALIGN(n) (((n) + (_Alignof(max_align_t) - 1)) & ~(size_t)(_Alignof(max_align_t) - 1))

void arena_cache_init(struct arena_cache *c, size_t max_free, size_t limit)
{
    c->free = NULL;
    c->nfree = 0;
    c->max_free = max_free;
    c->in_use = 0;
    c->limit = limit;
}

void arena_cache_destroy(struct arena_cache *c)
{
    while (c->free != NULL) {
        struct arena_block *b = c->free;
        c->free = b->next;
        free(b);
    }
    c->nfree = 0;
}

static struct arena_block *take(struct arena_cache *c, size_t size)
{
    if (c->limit != 0 && c->in_use + size > c->limit)
        return NULL;
    struct arena_block *b;
    if (size == ARENA_BLOCK_SIZE && c->free != NULL) {
        b = c->free;
        c->free = b->next;
        c->nfree--;
    } else {
        b = malloc(sizeof(*b) + size);
        if (b == NULL)
            return NULL;
        b->size = size;
    }
    c->in_use += size;
    return b;
}

static void give_back(struct arena_cache *c, struct arena_block *b)
{
    c->in_use -= b->size;
    if (b->size == ARENA_BLOCK_SIZE && c->nfree < c->max_free) {
        b->next = c->free;
        c->free = b;
        c->nfree++;
        return;
    }
    free(b);
}

void arena_init(struct arena *a, struct arena_cache *c)
{
    a->cache = c;
    a->blocks = NULL;
    a->cur = a->end = NULL;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = ALIGN(n == 0 ? 1 : n);
    if (a->cur != NULL && (size_t)(a->end - a->cur) >= n) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    size_t size = n > ARENA_BLOCK_SIZE / 4 ? n : ARENA_BLOCK_SIZE;
    struct arena_block *b = take(a->cache, size);
    if (b == NULL)
        return NULL;
    if (size == ARENA_BLOCK_SIZE || a->blocks == NULL) {
        b->next = a->blocks;
        a->blocks = b;
        a->cur = b->data + n;
        a->end = b->data + size;
    } else {
        /* A big chunk goes behind the current block, which stays in use. */
        b->next = a->blocks->next;
        a->blocks->next = b;
    }
    return b->data;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void arena_reset(struct arena *a)
{
    while (a->blocks != NULL) {
        struct arena_block *b = a->blocks;
        a->blocks = b->next;
        give_back(a->cache, b);
    }
    a->cur = a->end = NULL;
}

bool arena_owns(const struct arena *a, const void *p)
{
    const char *q = p;
    for (const struct arena_block *b = a->blocks; b != NULL; b = b->next) {
        if (q >= b->data && q < b->data + b->size)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------
 * jansson hooks
 * ------------------------------------------------------------------------ */

static _Thread_local struct arena *current;

static void *json_alloc(size_t n)
{
    return current != NULL ? arena_alloc(current, n) : malloc(n);
}

static void json_free(void *p)
{
    if (p == NULL || (current != NULL && arena_owns(current, p)))
        return;
    free(p);
}

void arena_set_json(struct arena *a)
{
    static _Atomic int installed;
    if (!installed) {
        json_set_alloc_funcs(json_alloc, json_free);
        installed = 1;
    }
    current = a;
}
