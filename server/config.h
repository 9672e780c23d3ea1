/*
 * Every setting of claimd in one table: name, type, default, bounds, whether
 * SIGHUP reloads it, and its help text; and the struct the table fills from
 * defaults, the config file, CLAIMD_* environment variables and command-line
 * flags, each overriding the one before.
 */
#ifndef CLAIMD_SERVER_CONFIG_H
#define CLAIMD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CONFIG_STR_MAX      1024
#define CONFIG_SETTINGS_MAX 32
#define CONFIG_DEFAULT_FILE "/etc/claimd/claimd.conf"

/** Where a setting's value came from, for check-config. */
enum config_source {
    CONFIG_DEFAULT = 0,
    CONFIG_FILE,
    CONFIG_ENV,
    CONFIG_FLAG,
};

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
    int access_log;
    char config_file[CONFIG_STR_MAX];               /* "" when none was read */
    enum config_source source[CONFIG_SETTINGS_MAX]; /* per config_settings[] row */
};

enum config_type {
    CONFIG_STRING = 0,
    CONFIG_INT,
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

/**
 * Reads a config file: "name = value" lines, '#' comments, blank lines.
 * Returns 0, or CLAIMD_EINVAL with "FILE:LINE: reason" in err.
 */
CLAIMD_MUSTCHECK int config_from_file(struct config *c, const char *path, char *err, size_t errlen);

/**
 * The whole precedence: defaults, then the file (--config FILE in argv, else
 * CLAIMD_CONFIG, else CONFIG_DEFAULT_FILE when it exists), then CLAIMD_*
 * variables, then flags. Returns 0, 1 for --help, or CLAIMD_EINVAL.
 */
CLAIMD_MUSTCHECK int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);

/** Checks what no single setting can: a database URL is set, listen parses. */
CLAIMD_MUSTCHECK int config_check(const struct config *c, char *err, size_t errlen);

/** Prints every setting with its value and where it came from (check-config). */
void config_print(const struct config *c, void *file);

/** Applies every CLAIMD_* variable the table names; 0 or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int config_from_env(struct config *c, char *err, size_t errlen);

/**
 * Applies --name VALUE and --name=VALUE flags from argv[1..argc). Returns 0,
 * 1 when --help was given, or CLAIMD_EINVAL with a reason in err.
 */
CLAIMD_MUSTCHECK int config_from_args(struct config *c, int argc, char **argv, char *err,
                                      size_t errlen);

/** True when a database URL carries a password (claimd warns: use a passfile). */
bool config_has_password(const char *url);

/** Writes a fully commented example config file: every setting, commented out. */
void config_example(void *file);

/** Writes the settings table as help text. */
void config_help(void *file);

/** Splits "HOST:PORT" ("[::1]:8080" for IPv6); 0 or CLAIMD_EINVAL. */
CLAIMD_MUSTCHECK int config_split_listen(const char *listen, char *host, size_t hostlen, int *port);

#endif
