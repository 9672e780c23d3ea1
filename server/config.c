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
};
const size_t config_nsettings = sizeof(config_settings) / sizeof(config_settings[0]);

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

int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
    const struct config_setting *s = find(name, strlen(name));
    if (s == NULL) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return CLAIMD_EINVAL;
    }
    if (strcmp(s->name, "log-level") == 0 && strcmp(value, "debug") != 0 &&
        strcmp(value, "info") != 0 && strcmp(value, "warn") != 0 && strcmp(value, "error") != 0) {
        snprintf(err, errlen, "log-level: '%s' is not debug, info, warn or error", value);
        return CLAIMD_EINVAL;
    }
    return apply(c, s, value, err, errlen);
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
        if (v != NULL && config_set(c, config_settings[i].name, v, err, errlen) != 0)
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
