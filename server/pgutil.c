/*
 * Blocking libpq helpers for the command-line tools, and SHA-256 through
 * libcrypto (which libpq already depends on).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * SHA256_Init/Update/Final on a stack context allocate nothing, where the
 * one-shot SHA256() and EVP_Digest() of OpenSSL 3 allocate three times a
 * call: the hot path (key checks, claim fingerprints) hashes with them. They
 * are the 1.1.1 API, which OpenSSL 3 still ships.
 */
#define OPENSSL_API_COMPAT 10101
#include <openssl/sha.h>

#include "pgutil.h"

/* Replaces newlines and tabs with spaces and drops trailing blanks. */
static void one_line(char *s)
{
    size_t n;

    for (char *p = s; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
}

int pgutil_connect(const char *url, PGconn **out, char *err, size_t errlen)
{
    PGconn *conn = PQconnectdb(url);

    *out = NULL;
    if (conn == NULL) {
        snprintf(err, errlen, "out of memory");
        return -EIO;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(conn));
        one_line(err);
        PQfinish(conn);
        return -EIO;
    }
    *out = conn;
    return 0;
}

int pgutil_result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);

    return r != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

void pgutil_error_line(const PGconn *conn, const PGresult *r, char *err, size_t errlen)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL;

    if (msg == NULL) {
        snprintf(err, errlen, "%s", conn ? PQerrorMessage(conn) : "no result");
    } else {
        snprintf(err, errlen, "%s %s%s%s%s%s%s", state ? state : "?????", msg,
                 detail || hint ? " (" : "", detail ? detail : "", detail && hint ? "; " : "",
                 hint ? hint : "", detail || hint ? ")" : "");
    }
    one_line(err);
}

int pgutil_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    int rc = 0;

    if (!pgutil_result_ok(r)) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

        pgutil_error_line(conn, r, err, errlen);
        rc = state && strcmp(state, "42501") == 0 ? -EACCES : -EIO;
    }
    PQclear(r);
    return rc;
}

int pgutil_sha256(const void *data, size_t len, unsigned char out[PGUTIL_SHA256_LEN])
{
    SHA256_CTX ctx;

    if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data, len) != 1 ||
        SHA256_Final(out, &ctx) != 1)
        return -EIO;
    return 0;
}

void pgutil_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}
