/*
 * The claimd program: dispatches its subcommands. This file owns the command
 * line only; each subcommand's work lives in its own module (migrate.c, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "migrate.h"
#include "policyfile.h"
#include "serve.h"

#ifndef CLAIMD_VERSION
#define CLAIMD_VERSION "unknown"
#endif

/* Exit codes: 0 done, 1 the command failed, 2 the command line is wrong. */
enum { EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fputs("usage: claimd COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  migrate [--database-url URL]   apply the database migrations built into claimd\n"
          "  serve [OPTIONS]                run the daemon (claimd serve --help)\n"
          "  keys create --tenant NAME      create an API key (printed once)\n"
          "  keys list --tenant NAME        list a tenant's keys (never the keys)\n"
          "  keys revoke KEY_ID             revoke a key\n"
          "  check-config [OPTIONS]         print the effective settings and their sources\n"
          "  policy add FILE.json           store a new policy version (SIGHUP reloads)\n"
          "\n"
          "  claimd --help | --version\n",
          f);
}

static void migrate_usage(FILE *f)
{
    fputs("usage: claimd migrate [--database-url URL]\n"
          "\n"
          "Applies the migrations built into this binary, in order, each in its own\n"
          "transaction. Connect as the owner role. The URL (a libpq URI or conninfo\n"
          "string) comes from --database-url, else $CLAIMD_OWNER_URL, else\n"
          "$CLAIMD_DATABASE_URL.\n",
          f);
}

/* The first non-empty environment variable of the two, or NULL. */
static const char *env_url(void)
{
    const char *names[] = {"CLAIMD_OWNER_URL", "CLAIMD_DATABASE_URL"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = getenv(names[i]);

        if (v != NULL && v[0] != '\0')
            return v;
    }
    return NULL;
}

/* Parses migrate's options into *url; returns 0, 1 for --help or -1. */
static int migrate_args(int argc, char **argv, const char **url)
{
    static const char flag[] = "--database-url";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
        if (strcmp(argv[i], flag) == 0 && i + 1 < argc) {
            *url = argv[++i];
        } else if (strncmp(argv[i], flag, sizeof(flag) - 1) == 0 &&
                   argv[i][sizeof(flag) - 1] == '=') {
            *url = argv[i] + sizeof(flag);
        } else {
            fprintf(stderr, "claimd migrate: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static int cmd_migrate(int argc, char **argv)
{
    const char *url = NULL;
    struct migrate_result res;
    int rc = migrate_args(argc, argv, &url);

    if (rc != 0) {
        migrate_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? EXIT_SUCCESS : EXIT_USAGE;
    }
    if (url == NULL)
        url = env_url();
    if (url == NULL || url[0] == '\0') {
        fputs("claimd migrate: no database URL: pass --database-url URL or set "
              "CLAIMD_OWNER_URL (or CLAIMD_DATABASE_URL)\n",
              stderr);
        return EXIT_USAGE;
    }
    rc = migrate_run(url, migrate_builtin, migrate_builtin_count, stdout, &res);
    if (rc < 0) {
        fprintf(stderr, "claimd migrate: %s\n", res.message);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"migrate", cmd_migrate},    {"serve", serve_main},
    {"keys", keys_main},         {"check-config", serve_check_config},
    {"policy", policyfile_main},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("claimd %s\n", CLAIMD_VERSION);
        return EXIT_SUCCESS;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "claimd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
