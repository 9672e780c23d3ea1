/*
 * Structured logging: one JSON object per line on stderr, with a level, a
 * component and a message. Never pass keys or full IMEIs to it.
 */
#ifndef CLAIMD_SERVER_LOG_H
#define CLAIMD_SERVER_LOG_H

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

/** Messages below this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);

/** Writes {"ts":..., "level":..., "component":..., "msg":...} and a newline. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * An access log line: {"ts","level":"info","component":"access","request_id",
 * "method","route","status","us","tenant"}. The route is the template, so no
 * reference or key ever reaches the log.
 */
void log_access(const char *request_id, const char *method, const char *route, int status,
                unsigned long long us, long long tenant);

#endif
