/*
 * The serve command. The main thread owns the signals and the workers; each
 * worker owns its loop. Sockets are made by hand because libuv 1.44 has no
 * SO_REUSEPORT flag: the first is bound (port 0 picks one), the others join
 * the same port.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pgutil.h"
#include "store.h"
#include "worker.h"

#define WORKERS_MAX 256

/* One generation of policy versions; SIGHUP loads a new one. */
struct policy_gen {
    struct policy versions[POLICY_VERSIONS_MAX];
    struct policy_set set;
    struct policy_gen *older;
};

struct serve {
    struct config cfg;
    int argc;
    char **argv;
    struct policy_gen *gen; /* the newest; older ones until no loop uses them */
    struct worker *workers;
    int nworkers;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    bool stopping;
    struct metrics_registry registry;
};

static void usage(FILE *f)
{
    fputs("usage: claimd serve [OPTIONS]\n\n"
          "Runs the daemon. Settings come from the config file (--config FILE, else\n"
          "$CLAIMD_CONFIG, else " CONFIG_DEFAULT_FILE " when it exists), then CLAIMD_*\n"
          "environment variables, then these flags, each overriding the one before:\n\n",
          f);
    config_help(f);
}

/* ------------------------------------------------------------------------
 * Settings and policy versions
 * ------------------------------------------------------------------------ */

static int read_settings(struct config *cfg, int argc, char **argv)
{
    char err[512];
    int rc = config_load(cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        usage(stdout);
        return 1;
    }
    if (rc == 0)
        rc = config_check(cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "claimd serve: %s\n", err);
        return -1;
    }
    if (config_has_password(cfg->database_url))
        log_msg(LOG_WARN, "serve",
                "the database URL carries a password, which other users can read (ps, "
                "/proc): use libpq's passfile (~/.pgpass) or PGPASSWORD instead");
    return 0;
}

int serve_check_config(int argc, char **argv)
{
    static struct config cfg;
    char err[512];
    if (argc == 2 && strcmp(argv[1], "--example") == 0) {
        config_example(stdout);
        return 0;
    }
    int rc = config_load(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        puts("usage: claimd check-config [--config FILE] [serve flags...]\n"
             "       claimd check-config --example\n\n"
             "Prints the effective settings and where each came from (default, file,\n"
             "environment, flag); exits 1 when a setting is invalid. --example prints\n"
             "a fully commented config file with every setting and its default.");
        return 0;
    }
    if (rc == 0)
        rc = config_check(&cfg, err, sizeof(err));
    config_print(&cfg, stdout);
    if (rc != 0) {
        fprintf(stderr, "claimd check-config: %s\n", err);
        return 1;
    }
    return 0;
}

/* Loads every policy version (blocking: start-up and SIGHUP only) into a new generation. */
static struct policy_gen *load_policies(const char *url, char *err, size_t errlen)
{
    PGconn *conn = NULL;
    struct policy_gen *g = calloc(1, sizeof(*g));
    if (g == NULL || pgutil_connect(url, &conn, err, errlen) != 0) {
        free(g);
        return NULL;
    }
    PGresult *res = PQexec(conn, store_policies_sql);
    bool ok = pgutil_result_ok(res);
    size_t n = 0;
    int rc = CLAIMD_EDB;
    if (ok)
        rc = store_read_policies(res, g->versions, POLICY_VERSIONS_MAX, &n);
    else
        pgutil_error_line(conn, res, err, errlen);
    PQclear(res);
    PQfinish(conn);
    g->set = (struct policy_set){g->versions, n};
    if (rc == 0 && policy_set_validate(&g->set, NULL) != 0) {
        snprintf(err, errlen, "the stored versions do not form a valid set");
        rc = CLAIMD_EINVAL;
    } else if (rc != 0 && ok) {
        snprintf(err, errlen, "a stored version cannot be read");
    }
    if (rc != 0) {
        free(g);
        return NULL;
    }
    return g;
}

/* ------------------------------------------------------------------------
 * Sockets
 * ------------------------------------------------------------------------ */

static int bind_one(const struct addrinfo *ai, int port)
{
    struct sockaddr_storage ss;
    int one = 1;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Binds n sockets on the same address and port; returns the port or < 0. */
static int bind_all(const char *listen, int *fds, int n)
{
    char host[256];
    int port;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (config_split_listen(listen, host, sizeof(host), &port) != 0 ||
        getaddrinfo(host, NULL, &hints, &ai) != 0) {
        fprintf(stderr, "claimd serve: --listen '%s' is not a numeric HOST:PORT\n", listen);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        fds[i] = bind_one(ai, port);
        if (fds[i] < 0) {
            fprintf(stderr, "claimd serve: cannot bind %s: %s\n", listen, strerror(-fds[i]));
            freeaddrinfo(ai);
            return -1;
        }
        if (i == 0)
            port = bound_port(fds[0]);
    }
    freeaddrinfo(ai);
    return port;
}

/* ------------------------------------------------------------------------
 * Signals and the workers
 * ------------------------------------------------------------------------ */

static void set_log_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0)
            log_set_level((enum log_level)i);
    }
}

/* Frees the generations below the newest that no loop uses any more. */
static void free_unused_gens(struct serve *s)
{
    struct policy_gen **link = &s->gen->older;
    while (*link != NULL) {
        struct policy_gen *g = *link;
        bool used = false;
        for (int i = 0; i < s->nworkers && !used; i++)
            used = worker_uses(&s->workers[i], g->versions);
        if (used) {
            link = &g->older;
            continue;
        }
        *link = g->older;
        free(g);
    }
}

/*
 * SIGHUP: the settings and the policy versions again. A bad config or an
 * unreachable database keeps what runs now, and says why.
 */
static void on_reload(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    static struct config cfg;
    char err[512];
    if (config_load(&cfg, s->argc, s->argv, err, sizeof(err)) != 0 ||
        config_check(&cfg, err, sizeof(err)) != 0) {
        log_msg(LOG_ERROR, "serve", "reload refused, keeping the running settings: %s", err);
        return;
    }
    struct policy_gen *g = load_policies(cfg.database_url, err, sizeof(err));
    if (g == NULL)
        log_msg(LOG_ERROR, "serve", "reload: keeping the running policy versions: %s", err);
    set_log_level(cfg.log_level);
    for (int i = 0; i < s->nworkers; i++)
        worker_reload(&s->workers[i], &cfg, g != NULL ? &g->set : NULL);
    if (g != NULL) {
        g->older = s->gen;
        s->gen = g;
        log_msg(LOG_INFO, "serve", "reloaded: %zu policy versions", g->set.n);
    }
    free_unused_gens(s);
}

/*
 * SIGTERM/SIGINT: every loop drains. The signal watchers stay installed (a
 * second Ctrl-C or a SIGHUP must not kill a draining daemon) but stop holding
 * the main loop, which returns so that the workers can be joined.
 */
static void on_signal(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    if (s->stopping) {
        log_msg(LOG_INFO, "serve", "signal %d: already draining", signum);
        return;
    }
    s->stopping = true;
    log_msg(LOG_INFO, "serve", "signal %d: draining %d loops", signum, s->nworkers);
    for (int i = 0; i < s->nworkers; i++)
        worker_stop(&s->workers[i]);
    uv_signal_stop(&s->sighup);
    uv_signal_start(&s->sighup, on_signal, SIGHUP);
    uv_unref((uv_handle_t *)&s->sigterm);
    uv_unref((uv_handle_t *)&s->sigint);
    uv_unref((uv_handle_t *)&s->sighup);
}

static int run_workers(struct serve *s, const int *fds)
{
    for (int i = 0; i < s->nworkers; i++) {
        int rc = worker_start(&s->workers[i], i, fds[i], &s->cfg, &s->gen->set, &s->registry);
        if (rc != 0) {
            fprintf(stderr, "claimd serve: event loop %d failed to start: %s\n", i,
                    uv_strerror(rc));
            for (int k = 0; k < i; k++)
                worker_stop(&s->workers[k]);
            for (int k = 0; k < i; k++)
                worker_join(&s->workers[k]);
            return -1;
        }
    }
    return 0;
}

int serve_main(int argc, char **argv)
{
    static struct serve s;
    int fds[WORKERS_MAX];
    int rc = read_settings(&s.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    char err[512];
    set_log_level(s.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    s.argc = argc;
    s.argv = argv;
    s.gen = load_policies(s.cfg.database_url, err, sizeof(err));
    if (s.gen == NULL) {
        fprintf(stderr,
                "claimd serve: cannot load policy versions (did `claimd migrate` run?): %s\n", err);
        return 1;
    }
    s.nworkers = s.cfg.threads > 0 ? s.cfg.threads : (int)uv_available_parallelism();
    if (s.nworkers > WORKERS_MAX)
        s.nworkers = WORKERS_MAX;
    int port = bind_all(s.cfg.listen, fds, s.nworkers);
    if (port < 0)
        return 1;
    s.workers = calloc((size_t)s.nworkers, sizeof(*s.workers));
    s.registry.routes = api_route_names(&s.registry.nroutes);
    arena_set_json(NULL); /* install the jansson hooks before any loop thread runs */
    if (s.workers == NULL || run_workers(&s, fds) != 0)
        return 1;
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_init(main_loop, &s.sigterm);
    uv_signal_init(main_loop, &s.sigint);
    uv_signal_init(main_loop, &s.sighup);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sighup, on_reload, SIGHUP);
    log_msg(LOG_INFO, "serve", "listening on port %d with %d loops", port, s.nworkers);
    printf("listening on port %d\n", port);
    fflush(stdout);
    uv_run(main_loop, UV_RUN_DEFAULT);
    for (int i = 0; i < s.nworkers; i++)
        worker_join(&s.workers[i]);
    uv_close((uv_handle_t *)&s.sigterm, NULL);
    uv_close((uv_handle_t *)&s.sigint, NULL);
    uv_close((uv_handle_t *)&s.sighup, NULL);
    uv_run(main_loop, UV_RUN_DEFAULT);
    free(s.workers);
    while (s.gen != NULL) {
        struct policy_gen *older = s.gen->older;
        free(s.gen);
        s.gen = older;
    }
    uv_loop_close(main_loop);
    log_msg(LOG_INFO, "serve", "stopped");
    return 0;
}
