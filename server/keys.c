/* The keys command: create, list, revoke. */
#include "keys.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pgutil.h"

#define KEY_BYTES 32
#define KEY_TEXT  (3 + 2 * KEY_BYTES + 1)

static void usage(FILE *f)
{
    fputs("usage: claimd keys create --tenant NAME [--database-url URL]\n"
          "       claimd keys list --tenant NAME [--database-url URL]\n"
          "       claimd keys revoke KEY_ID [--database-url URL]\n\n"
          "create makes the tenant if needed and a new API key for it: the key is\n"
          "printed once, alone on stdout; its id goes to stderr. list shows each key's\n"
          "id, creation time and status, never the key. revoke ends a key; running\n"
          "daemons stop accepting it within their auth-cache-ms. Connects as the owner\n"
          "role: --database-url, else $CLAIMD_OWNER_URL, else $CLAIMD_DATABASE_URL.\n",
          f);
}

static int make_key(char out[KEY_TEXT])
{
    unsigned char raw[KEY_BYTES];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    memcpy(out, "ck_", 3);
    pgutil_hex(raw, sizeof(raw), out + 3);
    return 0;
}

static const char *owner_url(const char *flag)
{
    if (flag != NULL)
        return flag;
    const char *v = getenv("CLAIMD_OWNER_URL");
    if (v == NULL || v[0] == '\0')
        v = getenv("CLAIMD_DATABASE_URL");
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Inserts the tenant (if new) and the key's hash; prints the key and its id. */
static int create(const char *url, const char *tenant)
{
    char key[KEY_TEXT], hash_hex[PGUTIL_SHA256_HEX_SIZE], err[512];
    unsigned char hash[PGUTIL_SHA256_LEN];
    PGconn *conn = NULL;
    if (make_key(key) != 0 || pgutil_sha256(key, strlen(key), hash) != 0) {
        fputs("claimd keys: cannot make a key\n", stderr);
        return 1;
    }
    pgutil_hex(hash, sizeof(hash), hash_hex);
    if (pgutil_connect(url, &conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "claimd keys: %s\n", err);
        return 1;
    }
    const char *params[] = {tenant, hash_hex};
    PGresult *res = PQexecParams(
        conn,
        "WITH t AS (INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO UPDATE "
        "SET name = EXCLUDED.name RETURNING id) "
        "INSERT INTO api_keys (tenant_id, key_hash) SELECT id, decode($2, 'hex') FROM t "
        "RETURNING id",
        2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (!pgutil_result_ok(res) || PQntuples(res) != 1) {
        pgutil_error_line(conn, res, err, sizeof(err));
        fprintf(stderr, "claimd keys: cannot create the key: %s\n", err);
        rc = 1;
    } else {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "key id %s for tenant %s\n", PQgetvalue(res, 0, 0), tenant);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* Runs a one-row-per-line query and prints it; exit code. */
static int run_query(const char *url, const char *sql, const char *const *params, int n,
                     int (*print)(PGresult *res))
{
    char err[512];
    PGconn *conn = NULL;
    if (pgutil_connect(url, &conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "claimd keys: %s\n", err);
        return 1;
    }
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 1;
    if (pgutil_result_ok(res)) {
        rc = print(res);
    } else {
        pgutil_error_line(conn, res, err, sizeof(err));
        fprintf(stderr, "claimd keys: %s\n", err);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int print_list(PGresult *res)
{
    printf("%-8s %-32s %s\n", "id", "created", "status");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-8s %-32s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2));
    return 0;
}

static int print_revoked(PGresult *res)
{
    if (PQntuples(res) != 1) {
        fputs("claimd keys revoke: no such key\n", stderr);
        return 1;
    }
    printf("key %s revoked at %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    return 0;
}

static int list(const char *url, const char *tenant)
{
    const char *params[] = {tenant};
    return run_query(url,
                     "SELECT k.id, k.created_at, CASE WHEN k.revoked_at IS NULL THEN 'active' "
                     "ELSE 'revoked ' || k.revoked_at END FROM api_keys k JOIN tenants t "
                     "ON t.id = k.tenant_id WHERE t.name = $1 ORDER BY k.id",
                     params, 1, print_list);
}

static int revoke(const char *url, const char *id)
{
    const char *params[] = {id};
    char *end;
    strtoll(id, &end, 10);
    if (*id == '\0' || *end != '\0') {
        fprintf(stderr, "claimd keys revoke: '%s' is not a key id\n", id);
        return 2;
    }
    return run_query(url,
                     "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                     "WHERE id = $1::bigint RETURNING id, revoked_at",
                     params, 1, print_revoked);
}

int keys_main(int argc, char **argv)
{
    const char *tenant = NULL, *url = NULL, *id = NULL;
    const char *verb = argc >= 2 ? argv[1] : "";
    bool known =
        strcmp(verb, "create") == 0 || strcmp(verb, "list") == 0 || strcmp(verb, "revoke") == 0;
    if (!known) {
        bool help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(verb, "revoke") == 0 && id == NULL && argv[i][0] != '-') {
            id = argv[i];
        } else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
            tenant = argv[++i];
        } else if (strcmp(argv[i], "--database-url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "claimd keys %s: unexpected argument '%s'\n", verb, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    url = owner_url(url);
    bool revoking = strcmp(verb, "revoke") == 0;
    if (url == NULL || (revoking ? id == NULL : tenant == NULL)) {
        fprintf(stderr, "claimd keys %s: %s\n", verb,
                url == NULL ? "no database URL"
                            : (revoking ? "KEY_ID is required" : "--tenant NAME is required"));
        return 2;
    }
    if (revoking)
        return revoke(url, id);
    return strcmp(verb, "list") == 0 ? list(url, tenant) : create(url, tenant);
}
