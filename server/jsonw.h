/*
 * A JSON writer into an arena-backed buffer: the response bodies are written
 * straight as text, escaping strings, with no intermediate JSON values.
 */
#ifndef CLAIMD_SERVER_JSONW_H
#define CLAIMD_SERVER_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "date.h"

struct jsonw {
    struct arena *arena;
    char *buf;
    size_t len;
    size_t cap;
    bool failed; /* the arena ran out: the text is incomplete */
    bool comma;  /* a value was written at this nesting level */
};

void jsonw_init(struct jsonw *w, struct arena *a, size_t initial);

/** Raw text, written as is. */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);

void jsonw_begin_object(struct jsonw *w);
void jsonw_end_object(struct jsonw *w);
void jsonw_begin_array(struct jsonw *w);
void jsonw_end_array(struct jsonw *w);

/** An object member's name (a comma first when needed). */
void jsonw_key(struct jsonw *w, const char *name);

void jsonw_str(struct jsonw *w, const char *s);
void jsonw_strn(struct jsonw *w, const char *s, size_t n);
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/** A date as "YYYY-MM-DD", or null for DATE_NONE. */
void jsonw_date(struct jsonw *w, date_t d);

#endif
