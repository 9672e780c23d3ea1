/*
 * Strict decoding of a JSON request body into fixed structs: members read in
 * the order the contract names them, each wrong one recorded as a field error
 * (missing_field, invalid_field, invalid_imei, ...), then every member nobody
 * asked for as unknown_field. Parsing uses jansson with duplicate keys
 * refused; values live in the current arena.
 */
#ifndef CLAIMD_SERVER_JSONR_H
#define CLAIMD_SERVER_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "date.h"
#include "jsonw.h"

#define JSONR_ERRORS_MAX 32
#define JSONR_KNOWN_MAX  16

struct jsonr_error {
    const char *field;
    const char *code;
};

struct jsonr {
    json_t *obj;
    struct jsonr_error errors[JSONR_ERRORS_MAX];
    size_t nerrors;
    const char *known[JSONR_KNOWN_MAX];
    size_t nknown;
};

/**
 * Parses body as a JSON object. Returns 0, or CLAIMD_EINVAL when it is not
 * JSON (malformed_json) or not an object (*not_object set).
 */
CLAIMD_MUSTCHECK int jsonr_parse(const char *body, size_t len, json_t **out, bool *not_object);

void jsonr_init(struct jsonr *r, json_t *obj);

/** Records an error for a member. */
void jsonr_fail(struct jsonr *r, const char *field, const char *code);

/** The member, or NULL (a missing_field error when required). */
json_t *jsonr_get(struct jsonr *r, const char *name, bool required);

/** A string member; NULL when absent or wrong (error recorded). */
const char *jsonr_string(struct jsonr *r, const char *name, bool required, size_t *len);

/** A date member ("YYYY-MM-DD"); DATE_NONE when absent, null or wrong. */
date_t jsonr_date(struct jsonr *r, const char *name, bool required, bool nullable);

/** A boolean member; *present false when absent or wrong. */
bool jsonr_bool(struct jsonr *r, const char *name, bool required, bool *present);

/** An integer member in [min, max]; *present false when absent or wrong. */
int64_t jsonr_int(struct jsonr *r, const char *name, bool required, int64_t min, int64_t max,
                  bool *present);

/**
 * A string member that must be one of names[0..n) (NULL entries skipped);
 * returns its index, or -1 when absent or wrong.
 */
int jsonr_enum(struct jsonr *r, const char *name, bool required, const char *const *names, int n);

/** Records unknown_field for every member not read (in the body's order). */
void jsonr_finish(struct jsonr *r);

/** Writes the RFC 9457 "errors" member's array. */
void jsonr_write_errors(const struct jsonr *r, struct jsonw *w);

#endif
