/*
 * The settings table and the parsers that apply text to it. Adding a setting
 * is one row here and one member in struct config.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(m) offsetof(struct config, m)

const struct config_setting config_settings[] = {
    {"listen", CONFIG_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, false,
     "address to listen on, HOST:PORT"},
    {"database-url", CONFIG_STRING, OFF(database_url), "", 0, 0, false,
     "libpq URI or conninfo of the runtime role (required by serve)"},
    {"threads", CONFIG_INT, OFF(threads), "0", 0, 256, false,
     "event loops, each with its own listener and pool (0: one per core)"},
    {"db-connections", CONFIG_INT, OFF(db_connections), "4", 1, 64, false,
     "database connections per event loop"},
    {"header-timeout-ms", CONFIG_INT, OFF(header_timeout_ms), "10000", 100, 600000, true,
     "longest wait for a request's line and headers"},
    {"body-timeout-ms", CONFIG_INT, OFF(body_timeout_ms), "30000", 100, 600000, true,
     "longest pause while a request body arrives"},
    {"idle-timeout-ms", CONFIG_INT, OFF(idle_timeout_ms), "60000", 100, 3600000, true,
     "an idle keep-alive connection is closed after this"},
    {"statement-timeout-ms", CONFIG_INT, OFF(statement_timeout_ms), "5000", 100, 600000, false,
     "PostgreSQL statement_timeout of every connection"},
    {"max-connections", CONFIG_INT, OFF(max_connections), "4096", 1, 1000000, false,
     "client connections per event loop; more are closed at accept"},
    {"max-batch", CONFIG_INT, OFF(max_batch), "256", 1, 1000, false,
     "claims decided in one database transaction"},
    {"max-queue", CONFIG_INT, OFF(max_queue), "8192", 1, 1000000, false,
     "claims waiting per event loop; more answer 503 overloaded"},
    {"auth-cache-ms", CONFIG_INT, OFF(auth_cache_ms), "5000", 0, 60000, true,
     "how long a checked API key is trusted (a revoked key works this long at most)"},
    {"drain-timeout-ms", CONFIG_INT, OFF(drain_timeout_ms), "10000", 0, 600000, true,
     "on SIGTERM, longest wait for in-flight requests"},
    {"log-level", CONFIG_STRING, OFF(log_level), "info", 0, 0, true, "debug, info, warn or error"},
    {"access-log", CONFIG_INT, OFF(access_log), "0", 0, 1, true,
     "1: one JSON line per answered request on stderr (request id, route, status, time)"},
};
const size_t config_nsettings = sizeof(config_settings) / sizeof(config_settings[0]);
_Static_assert(sizeof(config_settings) / sizeof(config_settings[0]) <= CONFIG_SETTINGS_MAX,
               "struct config's source[] must have a slot per setting");

static const struct config_setting *find(const char *name, size_t len)
{
    for (size_t i = 0; i < config_nsettings; i++) {
        if (strlen(config_settings[i].name) == len &&
            memcmp(config_settings[i].name, name, len) == 0)
            return &config_settings[i];
    }
    return NULL;
}

static int apply(struct config *c, const struct config_setting *s, const char *value, char *err,
                 size_t errlen)
{
    char *field = (char *)c + s->offset;
    if (strcmp(s->name, "log-level") == 0 && strcmp(value, "debug") != 0 &&
        strcmp(value, "info") != 0 && strcmp(value, "warn") != 0 && strcmp(value, "error") != 0) {
        snprintf(err, errlen, "log-level: '%s' is not debug, info, warn or error", value);
        return CLAIMD_EINVAL;
    }
    if (s->type == CONFIG_STRING) {
        if (strlen(value) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "%s: value too long", s->name);
            return CLAIMD_EINVAL;
        }
        strcpy(field, value);
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < s->min || v > s->max) {
        snprintf(err, errlen, "%s: '%s' is not a whole number from %ld to %ld", s->name, value,
                 s->min, s->max);
        return CLAIMD_EINVAL;
    }
    *(int *)(void *)field = (int)v;
    return 0;
}

void config_defaults(struct config *c)
{
    char err[64];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < config_nsettings; i++) {
        if (apply(c, &config_settings[i], config_settings[i].def, err, sizeof(err)) != 0)
            abort(); /* a default outside its own bounds is a bug in the table */
    }
}

static int set_from(struct config *c, const char *name, const char *value, enum config_source src,
                    char *err, size_t errlen)
{
    const struct config_setting *s = find(name, strlen(name));
    if (s == NULL) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return CLAIMD_EINVAL;
    }
    int rc = apply(c, s, value, err, errlen);
    if (rc == 0)
        c->source[s - config_settings] = src;
    return rc;
}

int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
    return set_from(c, name, value, CONFIG_FLAG, err, errlen);
}

/* CLAIMD_ and the name in upper case with '-' as '_'. */
static void env_name(const char *name, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "CLAIMD_");
    for (; *name != '\0' && n + 1 < outlen; name++)
        out[n++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[n] = '\0';
}

int config_from_env(struct config *c, char *err, size_t errlen)
{
    char var[64];
    for (size_t i = 0; i < config_nsettings; i++) {
        env_name(config_settings[i].name, var, sizeof(var));
        const char *v = getenv(var);
        if (v != NULL && set_from(c, config_settings[i].name, v, CONFIG_ENV, err, errlen) != 0)
            return CLAIMD_EINVAL;
    }
    return 0;
}

int config_from_args(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return CLAIMD_EINVAL;
        }
        const char *eq = strchr(a + 2, '=');
        size_t len = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len == 6 && strncmp(a + 2, "config", 6) == 0) {
            i += eq == NULL; /* read by config_load */
            continue;
        }
        const struct config_setting *s = find(a + 2, len);
        if (s == NULL || (eq == NULL && i + 1 >= argc)) {
            snprintf(err, errlen, s == NULL ? "unknown option '%s'" : "option '%s' needs a value",
                     a);
            return CLAIMD_EINVAL;
        }
        if (config_set(c, s->name, eq != NULL ? eq + 1 : argv[++i], err, errlen) != 0)
            return CLAIMD_EINVAL;
    }
    return 0;
}

void config_help(void *file)
{
    FILE *f = file;
    char var[64];
    for (size_t i = 0; i < config_nsettings; i++) {
        const struct config_setting *s = &config_settings[i];
        env_name(s->name, var, sizeof(var));
        fprintf(f, "  --%-22s %s\n  %-24s (default \"%s\"; %s%s)\n", s->name, s->help, "", s->def,
                var, s->reloadable ? "; SIGHUP reloads it" : "");
    }
}

int config_split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen)
        return CLAIMD_EINVAL;
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hl == 0 || hl >= hostlen || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        return CLAIMD_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* Trims spaces and tabs from both ends of s[0..*len); returns the new start. */
static char *trim(char *s, size_t *len)
{
    while (*len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        (*len)--;
    }
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t' || s[*len - 1] == '\r'))
        (*len)--;
    s[*len] = '\0';
    return s;
}

static int file_line(struct config *c, char *line, const char *path, int lineno, char *err,
                     size_t errlen)
{
    char msg[256];
    size_t len = strlen(line);
    char *s = trim(line, &len);
    if (len == 0 || s[0] == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "%s:%d: expected name = value", path, lineno);
        return CLAIMD_EINVAL;
    }
    *eq = '\0';
    size_t nl = strlen(s), vl = strlen(eq + 1);
    char *name = trim(s, &nl), *value = trim(eq + 1, &vl);
    if (set_from(c, name, value, CONFIG_FILE, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
        return CLAIMD_EINVAL;
    }
    return 0;
}

int config_from_file(struct config *c, const char *path, char *err, size_t errlen)
{
    char line[CONFIG_STR_MAX + 64];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return CLAIMD_EINVAL;
    }
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        rc = file_line(c, line, path, lineno, err, errlen);
    }
    fclose(f);
    if (rc == 0 && strlen(path) < sizeof(c->config_file))
        strcpy(c->config_file, path);
    return rc;
}

/* --config FILE / --config=FILE in argv, else CLAIMD_CONFIG, else the default if it exists. */
static const char *config_path(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    const char *env = getenv("CLAIMD_CONFIG");
    if (env != NULL && env[0] != '\0')
        return env;
    FILE *f = fopen(CONFIG_DEFAULT_FILE, "r");
    if (f == NULL)
        return NULL;
    fclose(f);
    return CONFIG_DEFAULT_FILE;
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(c);
    const char *path = config_path(argc, argv);
    if (path != NULL && config_from_file(c, path, err, errlen) != 0)
        return CLAIMD_EINVAL;
    if (config_from_env(c, err, errlen) != 0)
        return CLAIMD_EINVAL;
    return config_from_args(c, argc, argv, err, errlen);
}

static const char *source_name(enum config_source s)
{
    static const char *const names[] = {"default", "file", "environment", "flag"};
    return names[s];
}

/* A libpq URL or conninfo with its password replaced by ***. */
static void redact(const char *url, char *out, size_t outlen)
{
    const char *pw = strstr(url, "password=");
    const char *scheme = strstr(url, "://");
    const char *user = scheme != NULL ? scheme + 3 : NULL;
    const char *at = user != NULL ? strchr(user, '@') : NULL;
    const char *colon = at != NULL ? memchr(user, ':', (size_t)(at - user)) : NULL;
    if (pw != NULL) {
        const char *end = pw + 9 + strcspn(pw + 9, " &");
        snprintf(out, outlen, "%.*s***%s", (int)(pw + 9 - url), url, end);
    } else if (colon != NULL) {
        snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - url), url, at);
    } else {
        snprintf(out, outlen, "%s", url);
    }
}

void config_print(const struct config *c, void *file)
{
    FILE *f = file;
    char value[CONFIG_STR_MAX + 8];
    fprintf(f, "# config file: %s\n", c->config_file[0] != '\0' ? c->config_file : "(none)");
    for (size_t i = 0; i < config_nsettings; i++) {
        const struct config_setting *s = &config_settings[i];
        const char *field = (const char *)c + s->offset;
        if (s->type == CONFIG_STRING && strcmp(s->name, "database-url") == 0)
            redact(field, value, sizeof(value));
        else if (s->type == CONFIG_STRING)
            snprintf(value, sizeof(value), "%s", field);
        else
            snprintf(value, sizeof(value), "%d", *(const int *)(const void *)field);
        fprintf(f, "%-22s = %-32s # %s%s\n", s->name, value, source_name(c->source[i]),
                s->reloadable ? ", reloads on SIGHUP" : "");
    }
}

bool config_has_password(const char *url)
{
    char tmp[CONFIG_STR_MAX + 8];
    redact(url, tmp, sizeof(tmp));
    return strcmp(tmp, url) != 0;
}

int config_check(const struct config *c, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (c->database_url[0] == '\0') {
        snprintf(err, errlen,
                 "database-url: not set: pass --database-url URL or set "
                 "CLAIMD_DATABASE_URL (claimd never starts a database of its own)");
        return CLAIMD_EINVAL;
    }
    if (config_split_listen(c->listen, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "listen: '%s' is not HOST:PORT", c->listen);
        return CLAIMD_EINVAL;
    }
    return 0;
}

void config_example(void *file)
{
    FILE *f = file;
    fputs("# claimd configuration: every setting with its default. A line \"name = value\"\n"
          "# sets one; CLAIMD_NAME environment variables and --name flags override\n"
          "# this file, in that order. Settings marked \"SIGHUP\" take effect on\n"
          "# `systemctl reload claimd` (SIGHUP) without a restart.\n"
          "# Keep passwords out of database-url: use libpq's passfile (~/.pgpass).\n",
          f);
    for (size_t i = 0; i < config_nsettings; i++) {
        const struct config_setting *s = &config_settings[i];
        fprintf(f, "\n# %s%s\n", s->help, s->reloadable ? " (SIGHUP)" : "");
        if (s->type == CONFIG_INT)
            fprintf(f, "# %s, from %ld to %ld\n", "whole number", s->min, s->max);
        fprintf(f, "#%s = %s\n", s->name, s->def);
    }
}
