/*
 * Blocking libpq helpers for claimd's command-line tools (migrate, and later
 * keys): connect, run a statement, turn a failure into one line of text; and
 * SHA-256 through libcrypto.
 */
#ifndef CLAIMD_SERVER_PGUTIL_H
#define CLAIMD_SERVER_PGUTIL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"

#define PGUTIL_SHA256_LEN      32
#define PGUTIL_SHA256_HEX_SIZE (2 * PGUTIL_SHA256_LEN + 1)

/**
 * Opens a blocking connection to url (a libpq URI or conninfo string).
 * Returns 0 and *out, or -EIO with a one-line reason in err (*out is NULL).
 */
CLAIMD_MUSTCHECK int pgutil_connect(const char *url, PGconn **out, char *err, size_t errlen);

/**
 * Runs one statement (or several, with the simple protocol) and discards the
 * result. Returns 0, -EACCES when the server answered SQLSTATE 42501
 * (insufficient privilege) or -EIO for any other failure, with err set.
 */
CLAIMD_MUSTCHECK int pgutil_exec(PGconn *conn, const char *sql, char *err, size_t errlen);

/**
 * True when r is a successful command or query result. A NULL r (out of
 * memory, lost connection) is a failure.
 */
int pgutil_result_ok(const PGresult *r);

/**
 * Writes a failed result as one line, "SQLSTATE message (detail; hint)", or
 * the connection's error when r carries none. Newlines become spaces.
 */
void pgutil_error_line(const PGconn *conn, const PGresult *r, char *err, size_t errlen);

/** SHA-256 of len bytes, allocating nothing. Returns 0, or -EIO when libcrypto fails. */
CLAIMD_MUSTCHECK int pgutil_sha256(const void *data, size_t len,
                                   unsigned char out[PGUTIL_SHA256_LEN]);

/** Lower-case hex of n bytes and a NUL into out (2n + 1 bytes). */
void pgutil_hex(const unsigned char *in, size_t n, char *out);

#endif
