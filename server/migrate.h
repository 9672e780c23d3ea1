/*
 * `claimd migrate`: the SQL migrations compiled into the binary (generated
 * from sql/NNNN_name.sql) and the code that brings a database up to date.
 */
#ifndef CLAIMD_SERVER_MIGRATE_H
#define CLAIMD_SERVER_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/** One migration: sql/NNNN_name.sql as it was when claimd was built. */
struct migration {
    int version;              /* NNNN: 1, 2, 3, ... */
    const char *name;         /* the file name, "0001_schema.sql" */
    const unsigned char *sql; /* the file's bytes, NUL-terminated */
    size_t len;               /* bytes, the NUL excluded */
};

/** The migrations of this binary, versions 1..migrate_builtin_count in order. */
extern const struct migration migrate_builtin[];
extern const size_t migrate_builtin_count;

/** Why a run failed (the message in struct migrate_result says more). */
enum migrate_rc {
    MIGRATE_EDB = -2001,      /* cannot connect, or one of migrate's own statements failed */
    MIGRATE_EFAILED = -2002,  /* a migration's SQL failed; its transaction was rolled back */
    MIGRATE_ECHANGED = -2003, /* an applied migration's file changed (checksum or name) */
    MIGRATE_ENEWER = -2004,   /* the database has migrations this binary does not know */
    MIGRATE_EGAP = -2005,     /* schema_migrations is not exactly versions 1..k */
    MIGRATE_EINVAL = -2006,   /* the migration set itself is not numbered 1..n */
};

/** The advisory lock every migrate run holds: "claimd" in ASCII. */
#define MIGRATE_LOCK_KEY INT64_C(0x636c61696d64)

#define MIGRATE_MESSAGE_SIZE 1024

/** What a run did. */
struct migrate_result {
    int applied;                        /* migrations this run applied */
    int version;                        /* the database's version at the end */
    char message[MIGRATE_MESSAGE_SIZE]; /* one line: why the run failed */
};

/** The checksum recorded for m: SHA-256 of its bytes. Returns 0 or -EIO. */
CLAIMD_MUSTCHECK int migrate_checksum(const struct migration *m, unsigned char out[32]);

/**
 * Brings the database on conn up to the n migrations of set. Takes the
 * advisory lock MIGRATE_LOCK_KEY (concurrent runs wait for each other),
 * creates schema_migrations when absent, refuses a database whose applied
 * migrations changed (MIGRATE_ECHANGED) or that knows migrations the set
 * does not (MIGRATE_ENEWER), then applies each missing migration in its own
 * transaction and records it with its checksum. Prints one line per applied
 * migration to log (may be NULL). Returns 0 or a negative enum migrate_rc
 * with res->message set; res->applied and res->version are always set.
 */
CLAIMD_MUSTCHECK int migrate_apply(PGconn *conn, const struct migration *set, size_t n, FILE *log,
                                   struct migrate_result *res);

/** Connects to url, runs migrate_apply and disconnects. */
CLAIMD_MUSTCHECK int migrate_run(const char *url, const struct migration *set, size_t n, FILE *log,
                                 struct migrate_result *res);

/** Stable name of a result ("ok", "changed", "newer", ...). */
const char *migrate_rc_name(int rc);

#endif
