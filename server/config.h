/*
 * Every setting of claimd in one table: name, type, default, bounds, whether
 * SIGHUP reloads it, and its help text; and the struct the table fills from
 * defaults, CLAIMD_* environment variables and command-line flags, each
 * overriding the one before.
 */
#ifndef CLAIMD_SERVER_CONFIG_H
#define CLAIMD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CONFIG_STR_MAX 1024

struct config {
    char listen[CONFIG_STR_MAX]; /* HOST:PORT */
    char database_url[CONFIG_STR_MAX];
    int threads; /* 0: one per core */
    int db_connections;
    int header_timeout_ms;
    int body_timeout_ms;
    int idle_timeout_ms;
    int statement_timeout_ms;
    int max_connections; /* per loop */
    int max_batch;
    int max_queue;
    int auth_cache_ms;
    int drain_timeout_ms;
    char log_level[16];
};

enum config_type {
    CONFIG_STRING = 0,
    CONFIG_INT,
};

/** Where a setting's value came from, for check-config. */
enum config_source {
    CONFIG_DEFAULT = 0,
    CONFIG_ENV,
    CONFIG_FLAG,
};

struct config_setting {
    const char *name; /* flag --name, environment CLAIMD_NAME (upper case, '_') */
    enum config_type type;
    size_t offset;
    const char *def;
    long min;
    long max;
    bool reloadable;
    const char *help;
};

extern const struct config_setting config_settings[];
extern const size_t config_nsettings;

/** Fills every setting with its default. */
void config_defaults(struct config *c);

/** Sets one setting by name from text; 0 or CLAIMD_EINVAL with a reason in err. */
CLAIMD_MUSTCHECK int config_set(struct config *c, const char *name, const char *value, char *err,
                                size_t errlen);

/** Applies every CLAIMD_* variable the table names; 0 or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int config_from_env(struct config *c, char *err, size_t errlen);

/**
 * Applies --name VALUE and --name=VALUE flags from argv[1..argc). Returns 0,
 * 1 when --help was given, or CLAIMD_EINVAL with a reason in err.
 */
CLAIMD_MUSTCHECK int config_from_args(struct config *c, int argc, char **argv, char *err,
                                      size_t errlen);

/** Writes the settings table as help text. */
void config_help(void *file);

/** Splits "HOST:PORT" ("[::1]:8080" for IPv6); 0 or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int config_split_listen(const char *listen, char *host, size_t hostlen, int *port);

#endif
