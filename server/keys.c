/* The keys command: create (more verbs come with the operator issue). */
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
    fputs("usage: claimd keys create --tenant NAME [--database-url URL]\n\n"
          "Creates the tenant if needed and a new API key for it. The key is printed\n"
          "once, alone on stdout; its id goes to stderr. Connects as the owner role:\n"
          "--database-url, else $CLAIMD_OWNER_URL, else $CLAIMD_DATABASE_URL.\n",
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

int keys_main(int argc, char **argv)
{
    const char *tenant = NULL, *url = NULL;
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
            tenant = argv[++i];
        } else if (strcmp(argv[i], "--database-url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "claimd keys create: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    url = owner_url(url);
    if (tenant == NULL || url == NULL) {
        fputs(tenant == NULL ? "claimd keys create: --tenant NAME is required\n"
                             : "claimd keys create: no database URL\n",
              stderr);
        return 2;
    }
    return create(url, tenant);
}
