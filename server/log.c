/*
 * The log writer: formats into a stack buffer, escapes it as a JSON string and
 * writes the whole line with one write(2), so lines from several loop threads
 * never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static atomic_int min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    atomic_store(&min_level, (int)level);
}

/* Appends formatted text, never past cap - 1 and never moving *len past it. */
__attribute__((format(printf, 4, 5))) static void appendf(char *out, size_t *len, size_t cap,
                                                          const char *fmt, ...)
{
    if (*len >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap - 1 ? *len + (size_t)n : cap - 1;
}

/* Appends s as JSON string content (no quotes) into out[*len..cap). */
static void append_escaped(char *out, size_t *len, size_t cap, const char *s)
{
    for (; *s != '\0' && *len + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)ch;
        } else if (ch < 0x20) {
            appendf(out, len, cap, "\\u%04x", ch);
        } else {
            out[(*len)++] = (char)ch;
        }
    }
}

static size_t format_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    return n + (size_t)snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    char msg[LINE_MAX_BYTES / 2], line[LINE_MAX_BYTES], ts[40];
    if ((int)level < atomic_load(&min_level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    format_time(ts, sizeof(ts));
    size_t len =
        (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                         level_names[level]);
    append_escaped(line, &len, sizeof(line), component);
    appendf(line, &len, sizeof(line), "\",\"msg\":\"");
    append_escaped(line, &len, sizeof(line), msg);
    appendf(line, &len, sizeof(line), "\"}\n");
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_access(const char *request_id, const char *method, const char *route, int status,
                unsigned long long us, long long tenant)
{
    char line[LINE_MAX_BYTES], ts[40];
    size_t len = 0;
    format_time(ts, sizeof(ts));
    appendf(line, &len, sizeof(line),
            "{\"ts\":\"%s\",\"level\":\"info\",\"component\":\"access\",\"request_id\":\"", ts);
    append_escaped(line, &len, sizeof(line), request_id);
    appendf(line, &len, sizeof(line), "\",\"method\":\"");
    append_escaped(line, &len, sizeof(line), method);
    appendf(line, &len, sizeof(line), "\",\"route\":\"");
    append_escaped(line, &len, sizeof(line), route);
    appendf(line, &len, sizeof(line), "\",\"status\":%d,\"us\":%llu,\"tenant\":%lld}\n", status, us,
            tenant);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
