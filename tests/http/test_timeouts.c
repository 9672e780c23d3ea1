/*
 * Timeouts and misbehaving clients: header timeout vs. a trickling client, clients that vanish
 * mid-body, the idle timeout, and SIGTERM answering what is in flight before exit 0.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "daemon.h"

#define WAIT_MS 5000

TestSuite(timeouts, .fini = daemon_cleanup, .timeout = 50);

static const char healthz_req[] = "GET /healthz HTTP/1.1\r\nHost: claimd.test\r\n\r\n";

static void healthz_on(struct client *c)
{
    static struct response r;
    cr_assert_eq(client_send_str(c, healthz_req), 0);
    client_expect(c, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
}

static size_t sub_request(char *out, size_t outlen, const char *key, const char *ref)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"subscription_ref\":\"%s\",\"applied_on\":\"2026-04-01\","
             "\"activated_on\":\"2026-04-03\",\"device_protection\":true}",
             ref);
    return request_build(out, outlen, "POST", "/v1/subscriptions", key, "application/json", NULL,
                         body);
}

/* ------------------------------------------------------------------------
 * Header timeout
 * ------------------------------------------------------------------------ */

#define HEADER_TIMEOUT_MS 1000
#define TRICKLE_MS        100
#define OTHERS            4

static int cmp_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * One byte every 100 ms of a long head: the header timeout counts from the request's first
 * byte, so the daemon must close at about 1 s, long before the head is complete. Between
 * the bytes, four other connections (so that some share the slow client's loop) each send a
 * request and must be answered with normal latency.
 */
Test(timeouts, slow_header_sender_is_cut_while_others_proceed)
{
    static struct daemon d;
    static char slow_req[512];
    struct client slow, others[OTHERS];
    int64_t lat[128], worst = 0;
    int nlat = 0;
    daemon_up(&d, (const char *[]){"--header-timeout-ms", "1000", NULL});
    int n = snprintf(slow_req, sizeof(slow_req),
                     "GET /healthz HTTP/1.1\r\nHost: claimd.test\r\nX-Slow: %060d\r\n\r\n", 0);
    client_open(&slow, d.port);
    for (int i = 0; i < OTHERS; i++)
        client_open(&others[i], d.port);
    int64_t start = now_ms(), closed_at = -1;
    for (int i = 0; i < n; i++) {
        if (client_send(&slow, slow_req + i, 1) != 0 || client_read_some(&slow, 0) == 0) {
            closed_at = now_ms() - start;
            break;
        }
        int64_t t0 = now_ms();
        healthz_on(&others[i % OTHERS]);
        lat[nlat] = now_ms() - t0;
        worst = lat[nlat] > worst ? lat[nlat] : worst;
        nlat++;
        int64_t next = start + (int64_t)(i + 1) * TRICKLE_MS;
        if (next > now_ms())
            sleep_ms((int)(next - now_ms()));
    }
    if (closed_at < 0 && client_wait_closed(&slow, WAIT_MS))
        closed_at = now_ms() - start;
    cr_assert(closed_at >= 0, "the slow client was never closed");
    cr_assert(closed_at >= HEADER_TIMEOUT_MS - 50 && closed_at <= HEADER_TIMEOUT_MS + 1000,
              "the slow client was closed after %lld ms; the header timeout is %d ms",
              (long long)closed_at, HEADER_TIMEOUT_MS);
    cr_assert_eq(response_count(slow.buf, slow.len), 0, "the slow client got an answer");
    /* Served as usual: a stall behind the slow client would cost 100 ms (a trickle step)
     * to 1 s (the header timeout) per request. */
    qsort(lat, (size_t)nlat, sizeof(lat[0]), cmp_ms);
    cr_assert(nlat >= 8, "only %d requests of the other clients", nlat);
    cr_assert(lat[nlat / 2] < 20 && worst < 250,
              "the other clients waited %lld ms (median), %lld ms (worst)",
              (long long)lat[nlat / 2], (long long)worst);
    for (int i = 0; i < OTHERS; i++) {
        healthz_on(&others[i]);
        client_close(&others[i]);
    }
    client_close(&slow);
    cr_log_info("slow client closed after %lld ms; others' latency %lld ms median, %lld worst",
                (long long)closed_at, (long long)lat[nlat / 2], (long long)worst);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Clients that vanish
 * ------------------------------------------------------------------------ */

/* The daemon's descriptors once it settles back to base (or the last count seen). */
static int settled_fds(const struct daemon *d, int base)
{
    int n = daemon_fd_count(d);
    for (int i = 0; i < 100 && n > base; i++) {
        sleep_ms(20);
        n = daemon_fd_count(d);
    }
    return n;
}

/*
 * Fifty clients send the head and half the body of a creation and go away (half with FIN,
 * half with a reset), and twenty more send a whole creation and leave before the answer,
 * while a steady client keeps being served. Afterwards the daemon holds no more
 * descriptors than before, still creates, and its drain and exit are clean (under ASan,
 * LeakSanitizer would report a leaked connection at exit).
 */
Test(timeouts, clients_vanishing_mid_body_disturb_no_one)
{
    static struct daemon d;
    static struct response r;
    char req[1024], ref[32];
    struct client steady, gone;
    daemon_up(&d, NULL);
    client_open(&steady, d.port);
    healthz_on(&steady);
    int base = daemon_fd_count(&d);
    for (int i = 0; i < 50; i++) {
        snprintf(ref, sizeof(ref), "V-%02d", i);
        size_t len = sub_request(req, sizeof(req), d.key, ref);
        client_open(&gone, d.port);
        cr_assert_eq(client_send(&gone, req, len - 50), 0);
        sleep_ms(2);
        if (i % 2 == 0)
            client_close(&gone);
        else
            client_abort(&gone);
        healthz_on(&steady);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(ref, sizeof(ref), "W-%02d", i);
        size_t len = sub_request(req, sizeof(req), d.key, ref);
        client_open(&gone, d.port);
        cr_assert_eq(client_send(&gone, req, len), 0);
        client_abort(&gone);
    }
    healthz_on(&steady);
    size_t len = sub_request(req, sizeof(req), d.key, "V-after");
    cr_assert_eq(client_send(&steady, req, len), 0);
    client_expect(&steady, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 201, "%s%s", r.head, r.body);
    /* No half body became a subscription. */
    len = sub_request(req, sizeof(req), d.key, "V-01");
    cr_assert_eq(client_send(&steady, req, len), 0);
    client_expect(&steady, false, WAIT_MS, &r);
    cr_assert_eq(r.status, 201, "a half-sent creation took effect: %s%s", r.head, r.body);
    int after = settled_fds(&d, base);
    cr_assert(after <= base, "the daemon held %d descriptors before and %d after", base, after);
    client_close(&steady);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * Idle timeout
 * ------------------------------------------------------------------------ */

#define IDLE_MS 500

Test(timeouts, idle_keep_alive_connection_is_closed)
{
    static struct daemon d;
    struct client c, quiet;
    daemon_up(&d, (const char *[]){"--idle-timeout-ms", "500", NULL});

    /* After an answer, the connection is closed once idle for the idle timeout. */
    client_open(&c, d.port);
    healthz_on(&c);
    int64_t t0 = now_ms();
    cr_assert(client_wait_closed(&c, WAIT_MS), "the idle connection stayed open");
    int64_t idle = now_ms() - t0;
    cr_assert(idle >= IDLE_MS - 50 && idle <= IDLE_MS + 1000,
              "closed after %lld ms idle; the idle timeout is %d ms", (long long)idle, IDLE_MS);
    cr_assert_eq(client_unparsed(&c), 0, "bytes sent on an idle close");
    client_close(&c);

    /* A connection that never sends is closed the same way. */
    client_open(&quiet, d.port);
    t0 = now_ms();
    cr_assert(client_wait_closed(&quiet, WAIT_MS), "the silent connection stayed open");
    idle = now_ms() - t0;
    cr_assert(idle >= IDLE_MS - 50 && idle <= IDLE_MS + 1000, "silent: closed after %lld ms",
              (long long)idle);
    client_close(&quiet);

    /* Requests every 300 ms keep a connection open well past the idle timeout. */
    client_open(&c, d.port);
    for (int i = 0; i < 5; i++) {
        healthz_on(&c);
        sleep_ms(300);
    }
    healthz_on(&c);
    client_close(&c);
    daemon_stop(&d);
    daemon_destroy(&d);
}

/* ------------------------------------------------------------------------
 * SIGTERM with requests in flight
 * ------------------------------------------------------------------------ */

/* Backends waiting for a lock: the daemon's creations stuck behind the test's lock. */
static int lock_waiters(PGconn *conn)
{
    char v[32];
    testdb_value(conn, "SELECT count(*) FROM pg_locks WHERE NOT granted", v, sizeof(v));
    return atoi(v);
}

#define INFLIGHT_CONNS 4
#define PIPELINED      3

/*
 * Creations are held in the database by a lock on their table, so they are in flight for
 * certain when SIGTERM comes: the daemon must keep running, refuse new connections, close
 * the idle one, and once the lock goes answer every request (in order, with Connection:
 * close) and exit 0 with no handle left open.
 */
Test(timeouts, sigterm_answers_requests_in_flight_then_exits_0)
{
    static struct daemon d;
    static struct response r;
    static char req[PIPELINED * 1024];
    char ref[32], conn_hdr[32];
    struct client busy[INFLIGHT_CONNS], idle, late;
    daemon_up(&d, NULL);
    client_open(&idle, d.port);
    healthz_on(&idle);
    PGconn *lock = testdb_connect(d.owner_url);
    testdb_ok(lock, "BEGIN; LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE");
    PGconn *watch = testdb_connect(d.owner_url);
    for (int i = 0; i < INFLIGHT_CONNS; i++) {
        size_t n = 0;
        for (int k = 0; k < PIPELINED; k++) {
            snprintf(ref, sizeof(ref), "S-%d-%d", i, k);
            n += sub_request(req + n, sizeof(req) - n, d.key, ref);
        }
        client_open(&busy[i], d.port);
        cr_assert_eq(client_send(&busy[i], req, n), 0);
    }
    int64_t deadline = now_ms() + WAIT_MS;
    while (lock_waiters(watch) == 0 && now_ms() < deadline)
        sleep_ms(10);
    cr_assert(lock_waiters(watch) > 0, "no creation reached the database");
    sleep_ms(500); /* every request is read by now */
    daemon_signal(&d, SIGTERM);

    cr_assert(client_wait_closed(&idle, WAIT_MS), "the idle connection was not closed");
    sleep_ms(300);
    cr_assert(!daemon_exited(&d), "the daemon exited with requests in flight");
    for (int i = 0; i < INFLIGHT_CONNS; i++)
        cr_assert_eq(client_read_some(&busy[i], 0), -ETIMEDOUT, "an answer came under the lock");
    int rc = client_try_open(&late, d.port);
    if (rc == 0) { /* accepted by the kernel backlog at most; never served */
        client_send_str(&late, healthz_req);
        cr_assert(client_wait_closed(&late, WAIT_MS), "a new connection was served while draining");
        cr_assert_eq(response_count(late.buf, late.len), 0, "a new connection got an answer");
    }
    client_close(&late);

    testdb_ok(lock, "ROLLBACK");
    PQfinish(lock);
    PQfinish(watch);
    for (int i = 0; i < INFLIGHT_CONNS; i++) {
        for (int k = 0; k < PIPELINED; k++) {
            snprintf(ref, sizeof(ref), "S-%d-%d", i, k);
            client_expect(&busy[i], false, WAIT_MS, &r);
            cr_assert_eq(r.status, 201, "%s: %s%s", ref, r.head, r.body);
            cr_assert(strstr(r.body, ref) != NULL, "%s answered out of order: %s", ref, r.body);
        }
        response_header(&r, "connection", conn_hdr, sizeof(conn_hdr));
        cr_assert_str_eq(conn_hdr, "close", "the last answer of a draining connection");
        cr_assert(client_wait_closed(&busy[i], WAIT_MS), "not closed after its answers");
        client_close(&busy[i]);
    }
    client_close(&idle);
    cr_assert(daemon_wait(&d, DAEMON_STOP_MS), "the daemon did not exit after the drain");
    cr_assert(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0, "wait status %d", d.status);
    daemon_assert_clean_log(&d);
    daemon_destroy(&d);
}
