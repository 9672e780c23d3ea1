/*
 * Per-request memory: a bump allocator over fixed-size blocks lent by a
 * per-loop cache, reset (blocks back to the cache) when the response is done.
 * Requests larger than a block get a dedicated chunk, freed at reset. Also
 * the jansson allocator hooks that route JSON values into the current
 * thread's arena.
 */
#ifndef CLAIMD_SERVER_ARENA_H
#define CLAIMD_SERVER_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#define ARENA_BLOCK_SIZE (64 * 1024)

struct arena_block;

/** The blocks a loop keeps for reuse; at most max_free stay cached. */
struct arena_cache {
    struct arena_block *free;
    size_t nfree;
    size_t max_free;
    size_t in_use; /* bytes lent now, big chunks included */
    size_t limit;  /* lending past this fails (0: no limit) */
};

struct arena {
    struct arena_cache *cache;
    struct arena_block *blocks; /* newest first */
    char *cur;
    char *end;
};

void arena_cache_init(struct arena_cache *c, size_t max_free, size_t limit);
void arena_cache_destroy(struct arena_cache *c);

void arena_init(struct arena *a, struct arena_cache *c);

/** n bytes aligned for any type, or NULL when the cache's limit is reached. */
void *arena_alloc(struct arena *a, size_t n);

/** Copies s[0..len) and a NUL into the arena. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/** Returns every block; the arena is empty and reusable. */
void arena_reset(struct arena *a);

/** True when p points into one of the arena's blocks. */
bool arena_owns(const struct arena *a, const void *p);

/**
 * Makes a the thread's current arena (NULL: none). While one is current,
 * jansson allocates from it; values made then must never be json_decref'd
 * after the arena is reset. Installs the jansson hooks on first use.
 */
void arena_set_json(struct arena *a);

#endif
