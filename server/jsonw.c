/* The JSON writer: buffer growth in the arena, escaping, separators. */
#include "jsonw.h"

#include <stdio.h>
#include <string.h>

void jsonw_init(struct jsonw *w, struct arena *a, size_t initial)
{
    w->arena = a;
    w->len = 0;
    w->failed = false;
    w->comma = false;
    w->buf = arena_alloc(a, initial);
    w->cap = w->buf != NULL ? initial : 0;
    w->failed = w->buf == NULL;
}

static bool reserve(struct jsonw *w, size_t n)
{
    if (w->failed)
        return false;
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap * 2 > w->len + n ? w->cap * 2 : w->len + n + 256;
    char *nb = arena_alloc(w->arena, cap);
    if (nb == NULL) {
        w->failed = true;
        return false;
    }
    memcpy(nb, w->buf, w->len);
    w->buf = nb;
    w->cap = cap;
    return true;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void value_start(struct jsonw *w)
{
    if (w->comma)
        jsonw_raw(w, ",", 1);
    w->comma = true;
}

void jsonw_begin_object(struct jsonw *w)
{
    value_start(w);
    jsonw_raw(w, "{", 1);
    w->comma = false;
}

void jsonw_end_object(struct jsonw *w)
{
    jsonw_raw(w, "}", 1);
    w->comma = true;
}

void jsonw_begin_array(struct jsonw *w)
{
    value_start(w);
    jsonw_raw(w, "[", 1);
    w->comma = false;
}

void jsonw_end_array(struct jsonw *w)
{
    jsonw_raw(w, "]", 1);
    w->comma = true;
}

static void put_escaped(struct jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jsonw_raw(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jsonw_raw(w, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jsonw_raw(w, e, 6);
        } else {
            size_t run = 1;
            while (i + run < n && (unsigned char)s[i + run] >= 0x20 && s[i + run] != '"' &&
                   s[i + run] != '\\')
                run++;
            jsonw_raw(w, s + i, run);
            i += run - 1;
        }
    }
    jsonw_raw(w, "\"", 1);
}

void jsonw_key(struct jsonw *w, const char *name)
{
    value_start(w);
    put_escaped(w, name, strlen(name));
    jsonw_raw(w, ":", 1);
    w->comma = false;
}

void jsonw_strn(struct jsonw *w, const char *s, size_t n)
{
    value_start(w);
    put_escaped(w, s, n);
}

void jsonw_str(struct jsonw *w, const char *s)
{
    if (s == NULL)
        jsonw_null(w);
    else
        jsonw_strn(w, s, strlen(s));
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    value_start(w);
    jsonw_raw(w, tmp, (size_t)n);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    value_start(w);
    jsonw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(struct jsonw *w)
{
    value_start(w);
    jsonw_raw(w, "null", 4);
}

void jsonw_date(struct jsonw *w, date_t d)
{
    char tmp[DATE_STR_SIZE];
    if (d == DATE_NONE) {
        jsonw_null(w);
        return;
    }
    date_format(d, tmp);
    jsonw_strn(w, tmp, DATE_STR_SIZE - 1);
}
