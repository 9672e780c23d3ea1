/*
 * The integration-test harness: spawning and stopping claimd serve on a per-test database,
 * raw-socket clients, and a small parser of HTTP/1.1 response streams.
 */
#define _GNU_SOURCE

#include "daemon.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* Daemons of this test process, for daemon_cleanup. */
#define LIVE_MAX 8
static struct daemon *live[LIVE_MAX];

/* What must never appear in a daemon's stderr. */
static const char *const bad_log[] = {"AddressSanitizer", "LeakSanitizer", "runtime error",
                                      "handles still open"};

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------
 * Running commands
 * ------------------------------------------------------------------------ */

const char *daemon_bin(void)
{
    const char *bin = getenv("CLAIMD_BIN");
    if (bin == NULL || bin[0] == '\0')
        cr_assert_fail("CLAIMD_BIN is not set: run the HTTP tests under ctest");
    return bin;
}

static int temp_file(char *path, size_t len)
{
    snprintf(path, len, "/tmp/claimd-http-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    return fd;
}

static void slurp(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

/*
 * In the child after fork: stdin from /dev/null, the given stdout and stderr, nothing
 * else inherited (Criterion's own descriptors included), and death with the test.
 */
static void child_exec(const char *const argv[], int out, int err)
{
    int in = open("/dev/null", O_RDONLY);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(126);
    if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    closefrom(3);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

void daemon_exec(const char *const argv[], struct exec_result *r)
{
    char out_path[64], err_path[64];
    int out = temp_file(out_path, sizeof(out_path));
    int err = temp_file(err_path, sizeof(err_path));
    int st;
    unlink(out_path);
    unlink(err_path);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        child_exec(argv, out, err);
    while (waitpid(pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
    close(out);
    close(err);
}

/* ------------------------------------------------------------------------
 * Databases and keys
 * ------------------------------------------------------------------------ */

void daemon_db_create(struct daemon *d)
{
    testdb_create_migrated(&d->db);
    snprintf(d->owner_url, sizeof(d->owner_url), "%s", d->db.owner_url);
    snprintf(d->app_url, sizeof(d->app_url), "%s", d->db.app_url);
}

void daemon_db_use(struct daemon *d, const char *owner_url, const char *app_url)
{
    d->db.name[0] = '\0';
    snprintf(d->owner_url, sizeof(d->owner_url), "%s", owner_url);
    snprintf(d->app_url, sizeof(d->app_url), "%s", app_url);
}

long daemon_key_create(const struct daemon *d, const char *tenant, char key[DAEMON_KEY_SIZE])
{
    struct exec_result r;
    const char *argv[] = {daemon_bin(), "keys",           "create",     "--tenant",
                          tenant,       "--database-url", d->owner_url, NULL};
    long id = -1;
    daemon_exec(argv, &r);
    cr_assert_eq(r.status, 0, "claimd keys create exited %d: %s", r.status, r.err);
    size_t n = strlen(r.out);
    cr_assert(n > 1 && n < DAEMON_KEY_SIZE && r.out[n - 1] == '\n' &&
                  strchr(r.out, '\n') == r.out + n - 1,
              "claimd keys create must print the key alone on one line, got '%s'", r.out);
    cr_assert(strchr(r.out, ' ') == NULL, "the key holds a space: '%s'", r.out);
    memcpy(key, r.out, n - 1);
    key[n - 1] = '\0';
    const char *at = strstr(r.err, "key id ");
    cr_assert(at != NULL && sscanf(at, "key id %ld", &id) == 1,
              "claimd keys create printed no 'key id N' on stderr: %s", r.err);
    return id;
}

void daemon_sql(const struct daemon *d, const char *sql)
{
    PGconn *conn = testdb_connect(d->owner_url);
    testdb_ok(conn, sql);
    PQfinish(conn);
}

/* ------------------------------------------------------------------------
 * The daemon process
 * ------------------------------------------------------------------------ */

static void remember(struct daemon *d)
{
    for (int i = 0; i < LIVE_MAX; i++) {
        if (live[i] == d)
            return;
    }
    for (int i = 0; i < LIVE_MAX; i++) {
        if (live[i] == NULL) {
            live[i] = d;
            return;
        }
    }
    cr_assert_fail("more than %d daemons in one test", LIVE_MAX);
}

static void forget(struct daemon *d)
{
    for (int i = 0; i < LIVE_MAX; i++) {
        if (live[i] == d)
            live[i] = NULL;
    }
}

/* Reads the daemon's stdout until "listening on port N"; 0 when it never came. */
static int read_port(struct daemon *d, char *got, size_t gotlen)
{
    size_t n = 0;
    int64_t deadline = now_ms() + DAEMON_START_MS;
    got[0] = '\0';
    while (n + 1 < gotlen) {
        struct pollfd p = {d->out_fd, POLLIN, 0};
        int64_t left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return 0;
        ssize_t k = read(d->out_fd, got + n, 1);
        if (k <= 0)
            return 0;
        n += (size_t)k;
        got[n] = '\0';
        int port;
        if (got[n - 1] == '\n' && sscanf(got, "listening on port %d", &port) == 1)
            return port;
        if (got[n - 1] == '\n')
            n = 0; /* another line: keep looking */
    }
    return 0;
}

static void build_argv(const struct daemon *d, const char *const *extra, const char **argv)
{
    int n = 0;
    argv[n++] = daemon_bin();
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--database-url";
    argv[n++] = d->app_url;
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n < DAEMON_ARGS_MAX - 1, "too many daemon arguments");
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
}

void daemon_start(struct daemon *d, const char *const *extra)
{
    const char *argv[DAEMON_ARGS_MAX];
    int pipefd[2];
    char got[256], tail[2048];
    build_argv(d, extra, argv);
    int err = temp_file(d->err_path, sizeof(d->err_path));
    cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        child_exec(argv, pipefd[1], err);
    close(pipefd[1]);
    close(err);
    d->pid = pid;
    d->out_fd = pipefd[0];
    d->status = -1;
    remember(d);
    d->port = read_port(d, got, sizeof(got));
    if (d->port <= 0) {
        daemon_log_tail(d, tail, sizeof(tail));
        cr_assert_fail("claimd serve printed no 'listening on port N' within %d ms (stdout "
                       "'%s'); stderr:\n%s",
                       DAEMON_START_MS, got, tail);
    }
}

void daemon_up(struct daemon *d, const char *const *extra)
{
    daemon_db_create(d);
    d->key_id = daemon_key_create(d, "t1", d->key);
    daemon_start(d, extra);
}

void daemon_signal(const struct daemon *d, int sig)
{
    cr_assert(d->pid > 0, "the daemon is not running");
    cr_assert_eq(kill(d->pid, sig), 0, "kill: %s", strerror(errno));
}

bool daemon_exited(struct daemon *d)
{
    int st;
    if (d->pid <= 0)
        return true;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r != d->pid)
        return false;
    d->status = st;
    d->pid = 0;
    return true;
}

bool daemon_wait(struct daemon *d, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!daemon_exited(d)) {
        if (now_ms() >= deadline)
            return false;
        sleep_ms(5);
    }
    return true;
}

void daemon_stop(struct daemon *d)
{
    char tail[2048];
    daemon_signal(d, SIGTERM);
    bool exited = daemon_wait(d, DAEMON_STOP_MS);
    daemon_log_tail(d, tail, sizeof(tail));
    cr_assert(exited, "the daemon did not exit within %d ms of SIGTERM; stderr:\n%s",
              DAEMON_STOP_MS, tail);
    cr_assert(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0,
              "the daemon's drain did not end in exit 0 (%s %d); stderr:\n%s",
              WIFEXITED(d->status) ? "exit" : "signal",
              WIFEXITED(d->status) ? WEXITSTATUS(d->status) : WTERMSIG(d->status), tail);
    daemon_assert_clean_log(d);
}

static char *read_log(const struct daemon *d, size_t *len)
{
    FILE *f = d->err_path[0] != '\0' ? fopen(d->err_path, "r") : NULL;
    char *buf = NULL;
    *len = 0;
    if (f == NULL)
        return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
    cr_assert(buf != NULL);
    *len = fread(buf, 1, (size_t)(size > 0 ? size : 0), f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

bool daemon_log_contains(const struct daemon *d, const char *s)
{
    size_t len;
    char *log = read_log(d, &len);
    bool found = strstr(log, s) != NULL;
    free(log);
    return found;
}

void daemon_log_tail(const struct daemon *d, char *out, size_t outlen)
{
    size_t len;
    char *log = read_log(d, &len);
    size_t keep = len < outlen - 1 ? len : outlen - 1;
    memcpy(out, log + len - keep, keep);
    out[keep] = '\0';
    free(log);
}

void daemon_assert_clean_log(const struct daemon *d)
{
    size_t len;
    char *log = read_log(d, &len);
    for (size_t i = 0; i < sizeof(bad_log) / sizeof(bad_log[0]); i++) {
        const char *at = strstr(log, bad_log[i]);
        if (at == NULL)
            continue;
        size_t from = (size_t)(at - log) > 200 ? (size_t)(at - log) - 200 : 0;
        char excerpt[4096];
        snprintf(excerpt, sizeof(excerpt), "%s", log + from);
        free(log);
        cr_assert_fail("the daemon's stderr holds \"%s\":\n%s", bad_log[i], excerpt);
    }
    free(log);
}

int daemon_fd_count(const struct daemon *d)
{
    char path[64];
    int n = 0;
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)d->pid);
    DIR *dir = opendir(path);
    cr_assert(dir != NULL, "%s: %s", path, strerror(errno));
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(dir);
    return n;
}

void daemon_destroy(struct daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &d->status, 0);
        d->pid = 0;
    }
    if (d->out_fd > 0) {
        close(d->out_fd);
        d->out_fd = -1;
    }
    if (d->db.name[0] != '\0')
        testdb_drop(&d->db);
    if (d->err_path[0] != '\0') {
        unlink(d->err_path);
        d->err_path[0] = '\0';
    }
    forget(d);
}

void daemon_cleanup(void)
{
    for (int i = 0; i < LIVE_MAX; i++) {
        if (live[i] != NULL)
            daemon_destroy(live[i]);
    }
}

/* ------------------------------------------------------------------------
 * Raw clients
 * ------------------------------------------------------------------------ */

int client_try_open(struct client *c, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    memset(c, 0, sizeof(*c));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c->fd >= 0, "socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    return 0;
}

void client_open(struct client *c, int port)
{
    int rc = client_try_open(c, port);
    cr_assert_eq(rc, 0, "connect to 127.0.0.1:%d: %s", port, strerror(-rc));
}

void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->pos = c->cap = 0;
}

void client_abort(struct client *c)
{
    struct linger lg = {1, 0};
    if (c->fd >= 0)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    client_close(c);
}

int client_send(struct client *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int client_send_str(struct client *c, const char *s)
{
    return client_send(c, s, strlen(s));
}

int client_send_slowly(struct client *c, const void *buf, size_t len, size_t step, int delay_us)
{
    const char *p = buf;
    for (size_t off = 0; off < len; off += step) {
        if (off > 0) {
            struct timespec ts = {delay_us / 1000000, (long)(delay_us % 1000000) * 1000L};
            nanosleep(&ts, NULL);
        }
        int rc = client_send(c, p + off, len - off < step ? len - off : step);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void reserve(struct client *c, size_t more)
{
    if (c->len + more <= c->cap)
        return;
    size_t ncap = c->cap > 0 ? c->cap : 65536;
    while (ncap < c->len + more)
        ncap *= 2;
    c->buf = realloc(c->buf, ncap + 1);
    cr_assert(c->buf != NULL);
    c->cap = ncap;
}

int client_read_some(struct client *c, int timeout_ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    if (c->eof)
        return 0;
    int rc = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc == 0)
        return -ETIMEDOUT;
    cr_assert(rc > 0, "poll: %s", strerror(errno));
    reserve(c, 65536);
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR)
        return client_read_some(c, 0);
    if (n <= 0) {
        c->eof = true;
        c->err = n < 0 ? errno : 0;
        return 0;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return (int)n;
}

int client_response(struct client *c, bool head, int timeout_ms, struct response *r)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ssize_t used =
            c->len > c->pos ? response_parse(c->buf + c->pos, c->len - c->pos, head, r) : 0;
        if (used < 0)
            return -EPROTO;
        if (used > 0) {
            c->pos += (size_t)used;
            return 0;
        }
        if (c->eof)
            return -ECONNRESET;
        int rc = client_read_some(c, (int)(deadline - now_ms()));
        if (rc == -ETIMEDOUT)
            return rc;
    }
}

void client_expect(struct client *c, bool head, int timeout_ms, struct response *r)
{
    int rc = client_response(c, head, timeout_ms, r);
    size_t left = c->len - c->pos;
    cr_assert_eq(rc, 0, "no response within %d ms: %s (%zu unparsed bytes: '%.*s')", timeout_ms,
                 strerror(-rc), left, (int)(left < 300 ? left : 300),
                 c->buf ? c->buf + c->pos : "");
}

bool client_wait_closed(struct client *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!c->eof) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || client_read_some(c, (int)left) == -ETIMEDOUT)
            return c->eof;
    }
    return true;
}

size_t client_unparsed(const struct client *c)
{
    return c->len - c->pos;
}

size_t request_build(char *out, size_t outlen, const char *method, const char *target,
                     const char *key, const char *ctype, const char *extra, const char *body)
{
    char auth[DAEMON_KEY_SIZE + 32] = "", type[160] = "", length[48] = "";
    if (key != NULL)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", key);
    if (ctype != NULL)
        snprintf(type, sizeof(type), "Content-Type: %s\r\n", ctype);
    if (body != NULL)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", strlen(body));
    int n =
        snprintf(out, outlen, "%s %s HTTP/1.1\r\nHost: claimd.test\r\n%s%s%s%s\r\n%s", method,
                 target, auth, type, length, extra != NULL ? extra : "", body != NULL ? body : "");
    cr_assert(n > 0 && (size_t)n < outlen, "request_build: %d bytes do not fit in %zu", n, outlen);
    return (size_t)n;
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

const char *response_head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    }
    return NULL;
}

int response_header_in(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    int count = 0;
    if (outlen > 0)
        out[0] = '\0';
    const char *line = strstr(head, "\r\n");
    while (line != NULL && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            const char *e = end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (count++ == 0 && outlen > 0)
                snprintf(out, outlen, "%.*s", (int)(e - v), v);
        }
        line = end;
    }
    return count;
}

ssize_t response_parse(const char *buf, size_t len, bool head, struct response *r)
{
    char cl[32], *end;
    const char *hend = response_head_end(buf, len);
    if (hend == NULL)
        return len > RESPONSE_HEAD_MAX ? -1 : 0;
    size_t head_len = (size_t)(hend - buf) + 4;
    if (head_len >= RESPONSE_HEAD_MAX || len < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    memset(r, 0, offsetof(struct response, body));
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    r->head_len = head_len;
    r->status = (int)strtol(buf + 9, &end, 10);
    if (end != buf + 12 || (*end != ' ' && *end != '\r') || r->status < 100 || r->status > 599)
        return -1;
    r->body[0] = '\0';
    r->body_len = 0;
    r->content_length = 0;
    if (r->status < 200)
        return (ssize_t)head_len;
    if (response_header(r, "content-length", cl, sizeof(cl)) != 1)
        return -1;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0' || n >= RESPONSE_BODY_MAX)
        return -1;
    r->content_length = (size_t)n;
    if (head)
        return (ssize_t)head_len;
    if (len - head_len < n)
        return 0;
    memcpy(r->body, buf + head_len, (size_t)n);
    r->body[n] = '\0';
    r->body_len = (size_t)n;
    return (ssize_t)(head_len + n);
}

int response_count(const char *buf, size_t len)
{
    struct response *r = malloc(sizeof(*r));
    int n = 0;
    ssize_t used;
    cr_assert(r != NULL);
    while (len > 0 && (used = response_parse(buf, len, false, r)) > 0) {
        buf += used;
        len -= (size_t)used;
        n++;
    }
    free(r);
    return n;
}

int response_header(const struct response *r, const char *name, char *out, size_t outlen)
{
    return response_header_in(r->head, name, out, outlen);
}

const char *response_headers(const struct response *r)
{
    const char *p = strstr(r->head, "\r\n");
    return p != NULL ? p + 2 : r->head;
}

json_t *response_json(const struct response *r)
{
    json_error_t err;
    json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    cr_assert(v != NULL, "the body is not JSON (%s): %s", err.text, r->body);
    return v;
}

static void assert_member_string(json_t *o, const char *name, const struct response *r)
{
    json_t *v = json_object_get(o, name);
    cr_assert(json_is_string(v) && json_string_length(v) > 0,
              "the problem has no string member \"%s\": %s", name, r->body);
}

void response_assert_problem(const struct response *r, int status, const char *code)
{
    char ctype[128];
    cr_assert_eq(r->status, status, "expected %d %s, got:\n%s%s", status, code, r->head, r->body);
    response_header(r, "content-type", ctype, sizeof(ctype));
    cr_assert_str_eq(ctype, "application/problem+json", "%s", r->head);
    json_t *o = response_json(r);
    cr_assert(json_is_object(o), "%s", r->body);
    assert_member_string(o, "type", r);
    assert_member_string(o, "title", r);
    assert_member_string(o, "detail", r);
    assert_member_string(o, "code", r);
    json_t *st = json_object_get(o, "status");
    cr_assert(json_is_integer(st) && json_integer_value(st) == status, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(o, "code")), code, "%s", r->body);
    json_decref(o);
}

void response_assert_errors(const struct response *r, size_t n, const char *const *fields_codes)
{
    json_t *o = response_json(r);
    json_t *errs = json_object_get(o, "errors");
    cr_assert(json_is_array(errs), "no errors array: %s", r->body);
    cr_assert_eq(json_array_size(errs), n, "expected %zu errors: %s", n, r->body);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(errs, i);
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *code = json_string_value(json_object_get(e, "code"));
        cr_assert(field != NULL && code != NULL, "errors[%zu] lacks field or code: %s", i, r->body);
        cr_assert(strcmp(field, fields_codes[2 * i]) == 0 &&
                      strcmp(code, fields_codes[2 * i + 1]) == 0,
                  "errors[%zu]: expected %s/%s, got %s/%s in %s", i, fields_codes[2 * i],
                  fields_codes[2 * i + 1], field, code, r->body);
        cr_assert_eq(json_object_size(e), 2, "errors[%zu] has extra members: %s", i, r->body);
    }
    json_decref(o);
}
