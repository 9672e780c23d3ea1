/* The strict JSON reader: type checks, error list, unknown members. */
#include "jsonr.h"

#include <string.h>

int jsonr_parse(const char *body, size_t len, json_t **out, bool *not_object)
{
    json_error_t err;
    *not_object = false;
    json_t *v = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &err);
    if (v == NULL)
        return CLAIMD_EINVAL;
    if (!json_is_object(v)) {
        *not_object = true;
        return CLAIMD_EINVAL;
    }
    *out = v;
    return 0;
}

void jsonr_init(struct jsonr *r, json_t *obj)
{
    memset(r, 0, sizeof(*r));
    r->obj = obj;
}

void jsonr_fail(struct jsonr *r, const char *field, const char *code)
{
    if (r->nerrors < JSONR_ERRORS_MAX) {
        r->errors[r->nerrors].field = field;
        r->errors[r->nerrors].code = code;
        r->nerrors++;
    }
}

json_t *jsonr_get(struct jsonr *r, const char *name, bool required)
{
    if (r->nknown < JSONR_KNOWN_MAX)
        r->known[r->nknown++] = name;
    json_t *v = json_object_get(r->obj, name);
    if (v == NULL && required)
        jsonr_fail(r, name, "missing_field");
    return v;
}

const char *jsonr_string(struct jsonr *r, const char *name, bool required, size_t *len)
{
    json_t *v = jsonr_get(r, name, required);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        jsonr_fail(r, name, "invalid_field");
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

date_t jsonr_date(struct jsonr *r, const char *name, bool required, bool nullable)
{
    json_t *v = jsonr_get(r, name, required);
    date_t d;
    if (v == NULL || (nullable && json_is_null(v)))
        return DATE_NONE;
    if (!json_is_string(v) || date_parse(json_string_value(v), json_string_length(v), &d) != 0) {
        jsonr_fail(r, name, "invalid_field");
        return DATE_NONE;
    }
    return d;
}

bool jsonr_bool(struct jsonr *r, const char *name, bool required, bool *present)
{
    json_t *v = jsonr_get(r, name, required);
    *present = false;
    if (v == NULL)
        return false;
    if (!json_is_boolean(v)) {
        jsonr_fail(r, name, "invalid_field");
        return false;
    }
    *present = true;
    return json_is_true(v);
}

int64_t jsonr_int(struct jsonr *r, const char *name, bool required, int64_t min, int64_t max,
                  bool *present)
{
    json_t *v = jsonr_get(r, name, required);
    *present = false;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        jsonr_fail(r, name, "invalid_field");
        return 0;
    }
    *present = true;
    return json_integer_value(v);
}

int jsonr_enum(struct jsonr *r, const char *name, bool required, const char *const *names, int n)
{
    size_t len;
    const char *s = jsonr_string(r, name, required, &len);
    if (s == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (names[i] != NULL && strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return i;
    }
    jsonr_fail(r, name, "invalid_field");
    return -1;
}

static bool is_known(const struct jsonr *r, const char *key)
{
    for (size_t i = 0; i < r->nknown; i++) {
        if (strcmp(r->known[i], key) == 0)
            return true;
    }
    return false;
}

void jsonr_finish(struct jsonr *r)
{
    const char *key;
    json_t *v;
    json_object_foreach(r->obj, key, v)
    {
        if (!is_known(r, key))
            jsonr_fail(r, key, "unknown_field");
    }
}

void jsonr_write_errors(const struct jsonr *r, struct jsonw *w)
{
    jsonw_begin_array(w);
    for (size_t i = 0; i < r->nerrors; i++) {
        jsonw_begin_object(w);
        jsonw_key(w, "field");
        jsonw_str(w, r->errors[i].field);
        jsonw_key(w, "code");
        jsonw_str(w, r->errors[i].code);
        jsonw_end_object(w);
    }
    jsonw_end_array(w);
}
