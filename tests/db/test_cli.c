/*
 * The claimd program's command line as an operator meets it: usage errors
 * exit 2, `claimd migrate` takes its URL from the flag or the environment and
 * refuses clearly without one, and reports what it applied.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testdb.h"

#define OUT_SIZE 4096

struct run {
    int status; /* exit code, or -1 when killed */
    char out[OUT_SIZE];
    char err[OUT_SIZE];
};

static void slurp(int fd, char *buf)
{
    ssize_t n = pread(fd, buf, OUT_SIZE - 1, 0);

    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

static int temp_fd(void)
{
    char path[] = "/tmp/claimd-cli-XXXXXX";
    int fd = mkstemp(path);

    cr_assert(fd >= 0);
    unlink(path);
    return fd;
}

/* Runs the claimd binary with argv and only the environment in envp. */
static void run(struct run *r, char *const argv[], char *const envp[])
{
    const char *bin = getenv("CLAIMD_BIN");
    int out = temp_fd(), err = temp_fd(), st;
    pid_t pid;

    cr_assert(bin != NULL, "CLAIMD_BIN is not set: run under ctest");
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(out, 1);
        dup2(err, 2);
        execve(bin, argv, envp);
        _exit(127);
    }
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    slurp(out, r->out);
    slurp(err, r->err);
}

static char *no_env[] = {NULL};

Test(cli, no_command_is_a_usage_error)
{
    struct run r;

    run(&r, (char *[]){"claimd", NULL}, no_env);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "usage: claimd"), "%s", r.err);
}

Test(cli, unknown_command_is_a_usage_error)
{
    struct run r;

    run(&r, (char *[]){"claimd", "frobnicate", NULL}, no_env);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
    cr_assert(strstr(r.err, "usage: claimd"), "%s", r.err);
}

Test(cli, version_and_help)
{
    struct run r;

    run(&r, (char *[]){"claimd", "--version", NULL}, no_env);
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "claimd ", 7) == 0, "%s", r.out);
    run(&r, (char *[]){"claimd", "migrate", "--help", NULL}, no_env);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: claimd migrate"), "%s", r.out);
}

Test(cli, migrate_without_a_url_refuses)
{
    struct run r;

    run(&r, (char *[]){"claimd", "migrate", NULL}, no_env);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "no database URL"), "%s", r.err);
    run(&r, (char *[]){"claimd", "migrate", "--bogus", NULL}, no_env);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "unexpected argument '--bogus'"), "%s", r.err);
}

Test(cli, migrate_applies_then_reports_up_to_date)
{
    struct testdb db;
    char flag[TESTDB_URL_SIZE + 32], env[TESTDB_URL_SIZE + 32];
    struct run r;

    testdb_create_empty(&db);
    snprintf(flag, sizeof(flag), "--database-url=%s", db.owner_url);
    run(&r, (char *[]){"claimd", "migrate", flag, NULL}, no_env);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "applied 0001_schema.sql"), "%s", r.out);
    cr_assert(strstr(r.out, "applied 0003_runtime_role.sql"), "%s", r.out);

    /* The URL from the environment; the owner URL wins over the runtime one. */
    snprintf(env, sizeof(env), "CLAIMD_OWNER_URL=%s", db.owner_url);
    run(&r, (char *[]){"claimd", "migrate", NULL},
        (char *[]){env, "CLAIMD_DATABASE_URL=postgresql:///nowhere?host=/nonexistent", NULL});
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "database is up to date (version 3)"), "%s", r.out);

    /* A failure is one line on stderr and exit 1. */
    snprintf(env, sizeof(env), "CLAIMD_DATABASE_URL=%s", db.app_url);
    run(&r, (char *[]){"claimd", "migrate", NULL}, (char *[]){env, NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "claimd migrate: 42501"), "%s", r.err);
    testdb_drop(&db);
}
