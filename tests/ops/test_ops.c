/*
 * Running claimd (issue 8): SIGHUP reloads policy versions and live settings
 * (and keeps the running ones on a bad config), /metrics, logs that never
 * hold a key or a full IMEI, and the keys, policy and version commands.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

#define IMEI_A "356938035643809"
#define IMEI_B "490154203237518"

TestSuite(ops, .fini = daemon_cleanup, .timeout = 60);

/* One request on a fresh connection; the response in r. */
static void ask(const struct daemon *d, const char *method, const char *target, const char *key,
                const char *body, struct response *r)
{
    char req[8192];
    struct client c;
    size_t n = request_build(req, sizeof(req), method, target, key,
                             body != NULL ? "application/json" : NULL, NULL, body);
    client_open(&c, d->port);
    cr_assert_eq(client_send(&c, req, n), 0);
    client_expect(&c, strcmp(method, "HEAD") == 0, 10000, r);
    client_close(&c);
}

static size_t policy_count(const struct daemon *d)
{
    static struct response r;
    ask(d, "GET", "/v1/policies", d->key, NULL, &r);
    cr_assert_eq(r.status, 200);
    json_t *v = response_json(&r);
    size_t n = json_array_size(json_object_get(v, "policies"));
    json_decref(v);
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void policy_file(const char *path, const char *name, const char *from, const char *fees)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"name\":\"%s\",\"effective_from\":\"%s\",\"monthly_fee\":600,\"free_months\":1,"
             "\"repair_cap\":60000,\"exchange_fees\":%s,\"max_uses\":2,\"window\":"
             "\"contract_year\",\"natural_failure_months\":36,\"registration_days\":14,"
             "\"ios_exchange\":false,\"loaner_os\":\"android\"}",
             name, from, fees);
    write_file(path, text);
}

static int policy_add(const struct daemon *d, const char *path, struct exec_result *r)
{
    const char *argv[] = {daemon_bin(),     "policy",     "add", path,
                          "--database-url", d->owner_url, NULL};
    daemon_exec(argv, r);
    return r->status;
}

Test(ops, sighup_loads_a_new_policy_version_on_every_loop)
{
    static struct daemon d;
    static struct exec_result x;
    char path[64];
    daemon_up(&d, NULL);
    cr_assert_eq(policy_count(&d), 1);
    snprintf(path, sizeof(path), "/tmp/claimd-ops-%d.json", (int)getpid());
    policy_file(path, "2031-01", "2031-01-01", "[6000,9000]");
    cr_assert_eq(policy_add(&d, path, &x), 0, "policy add: %s", x.err);
    cr_assert(strstr(x.out, "2031-01") != NULL);
    cr_assert_eq(policy_count(&d), 1, "a running daemon changes nothing before SIGHUP");
    daemon_signal(&d, SIGHUP);
    int64_t until = now_ms() + 5000;
    while (policy_count(&d) != 2 && now_ms() < until)
        sleep_ms(50);
    /* Two loops: ask enough times that both have answered with the new set. */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(policy_count(&d), 2);
    cr_assert(daemon_log_contains(&d, "reloaded: 2 policy versions"));
    unlink(path);
    daemon_stop(&d);
}

Test(ops, policy_add_refuses_what_the_core_refuses)
{
    static struct daemon d;
    static struct exec_result x;
    char path[64];
    daemon_db_create(&d);
    snprintf(path, sizeof(path), "/tmp/claimd-ops-bad-%d.json", (int)getpid());
    policy_file(path, "2031-02", "2031-02-01", "[6000]");
    cr_assert_eq(policy_add(&d, path, &x), 1);
    cr_assert(strstr(x.err, "exchange_fees") != NULL, "%s", x.err);
    policy_file(path, "2025-01", "2031-03-01", "[6000,9000]");
    cr_assert_eq(policy_add(&d, path, &x), 1, "a second version named 2025-01");
    cr_assert(strstr(x.err, "name") != NULL, "%s", x.err);
    policy_file(path, "2031-04", "2020-01-01", "[6000,9000]");
    cr_assert_eq(policy_add(&d, path, &x), 1, "a second version from 2020-01-01");
    unlink(path);
}

Test(ops, sighup_with_a_bad_config_keeps_the_running_one)
{
    static struct daemon d;
    static struct response r;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/claimd-ops-%d.conf", (int)getpid());
    write_file(path, "log-level = info\n");
    const char *extra[] = {"--config", path, NULL};
    daemon_up(&d, extra);
    write_file(path, "log-level = shout\n");
    daemon_signal(&d, SIGHUP);
    int64_t until = now_ms() + 5000;
    while (!daemon_log_contains(&d, "reload refused") && now_ms() < until)
        sleep_ms(50);
    cr_assert(daemon_log_contains(&d, "reload refused"));
    ask(&d, "GET", "/healthz", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(policy_count(&d), 1);
    unlink(path);
    daemon_stop(&d);
}

Test(ops, sighup_applies_a_live_setting)
{
    static struct daemon d;
    struct client c;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/claimd-ops-live-%d.conf", (int)getpid());
    write_file(path, "idle-timeout-ms = 60000\n");
    const char *extra[] = {"--config", path, NULL};
    daemon_up(&d, extra);
    write_file(path, "idle-timeout-ms = 300\n");
    daemon_signal(&d, SIGHUP);
    sleep_ms(500); /* both loops take the reload between two events */
    client_open(&c, d.port);
    int64_t t0 = now_ms();
    cr_assert(client_wait_closed(&c, 5000), "an idle connection closes at the reloaded timeout");
    cr_assert_lt(now_ms() - t0, 3000);
    client_close(&c);
    unlink(path);
    daemon_stop(&d);
}

static void register_device(const struct daemon *d, const char *sub, const char *imei, int want)
{
    static struct response r;
    char body[512], target[128];
    snprintf(body, sizeof(body),
             "{\"subscription_ref\":\"%s\",\"applied_on\":\"2024-04-01\",\"activated_on\":"
             "\"2024-04-03\",\"device_protection\":true}",
             sub);
    ask(d, "POST", "/v1/subscriptions", d->key, body, &r);
    cr_assert_eq(r.status, 201);
    snprintf(body, sizeof(body),
             "{\"imei\":\"%s\",\"os\":\"android\",\"model\":\"Pixel\",\"release_date\":"
             "\"2022-01-20\",\"purchased_from\":\"other\",\"registered_on\":\"2024-04-10\"}",
             imei);
    snprintf(target, sizeof(target), "/v1/subscriptions/%s/device", sub);
    ask(d, "PUT", target, d->key, body, &r);
    cr_assert_eq(r.status, want, "%s", r.body);
}

/*
 * Debug logging and the access log on, then every path that sees a key or an
 * IMEI: a good and a bad key, registrations, a conflict the database reports
 * (its DETAIL quotes the IMEI), claims. The log must hold none of them.
 */
Test(ops, logs_never_hold_a_key_or_a_full_imei)
{
    static struct daemon d;
    static struct response r;
    const char *extra[] = {"--log-level", "debug", "--access-log", "1", NULL};
    daemon_up(&d, extra);
    ask(&d, "GET", "/v1/policies", "ck_not_a_real_key_0123456789", NULL, &r);
    cr_assert_eq(r.status, 401);
    register_device(&d, "L-1", IMEI_A, 200);
    register_device(&d, "L-2", IMEI_A, 409);
    register_device(&d, "L-3", IMEI_B, 200);
    ask(&d, "POST", "/v1/claims", d.key,
        "{\"claim_ref\":\"C-1\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_B
        "\",\"incident_on\":\"2024-05-01\",\"cause\":\"natural_failure\",\"remedy\":\"repair\","
        "\"repair_estimate\":1000}",
        &r);
    cr_assert_eq(r.status, 201);
    daemon_stop(&d);
    cr_assert(daemon_log_contains(&d, "\"component\":\"access\""), "the access log is on");
    cr_assert(!daemon_log_contains(&d, d.key), "the API key is in the log");
    cr_assert(!daemon_log_contains(&d, "ck_not_a_real_key"), "a presented key is in the log");
    cr_assert(!daemon_log_contains(&d, IMEI_A), "an IMEI is in the log");
    cr_assert(!daemon_log_contains(&d, IMEI_B), "an IMEI is in the log");
    cr_assert(!daemon_log_contains(&d, "C-1"), "a claim_ref is in the log");
}

/* The value of one metrics line (name with its labels), or -1. */
static long long metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    }
    return -1;
}

Test(ops, metrics_count_requests_and_decisions_by_bounded_labels)
{
    static struct daemon d;
    static struct response r;
    daemon_up(&d, NULL);
    register_device(&d, "L-9", IMEI_A, 200);
    ask(&d, "POST", "/v1/claims", d.key,
        "{\"claim_ref\":\"MX-1\",\"subscription_ref\":\"L-9\",\"imei\":\"" IMEI_A
        "\",\"incident_on\":\"2024-06-01\",\"cause\":\"physical_damage\",\"damage\":\"screen\","
        "\"remedy\":\"repair\",\"repair_estimate\":62000}",
        &r);
    cr_assert_eq(r.status, 201);
    ask(&d, "GET", "/v1/claims/MX-1", d.key, NULL, &r);
    cr_assert_eq(r.status, 200);
    sleep_ms(1200); /* gauges are published once a second */
    ask(&d, "GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    char ctype[128];
    response_header(&r, "Content-Type", ctype, sizeof(ctype));
    cr_assert(strncmp(ctype, "text/plain", 10) == 0, "%s", ctype);
    cr_assert_eq(metric(r.body, "claimd_decisions_total{status=\"approved\"}"), 1, "%s", r.body);
    cr_assert_eq(metric(r.body, "claimd_decision_reasons_total{reason=\"cap_exceeded\"}"), 1);
    cr_assert_eq(metric(r.body, "claimd_http_requests_total{route=\"/v1/claims\",status=\"201\"}"),
                 1);
    cr_assert_eq(
        metric(r.body, "claimd_http_requests_total{route=\"/v1/claims/{ref}\",status=\"200\"}"), 1);
    cr_assert_eq(metric(r.body, "claimd_batch_size_count"), 1);
    cr_assert_eq(metric(r.body, "claimd_db_connections{state=\"configured\"}"), 8);
    cr_assert_geq(metric(r.body, "claimd_event_loops"), 2);
    cr_assert(strstr(r.body, "claimd_build_info{version=") != NULL);
    cr_assert(strstr(r.body, "MX-1") == NULL, "a claim_ref in a label");
    cr_assert(strstr(r.body, "L-9") == NULL, "a subscription_ref in a label");
    daemon_stop(&d);
}

static int run(const char *const *argv, struct exec_result *x)
{
    daemon_exec(argv, x);
    return x->status;
}

Test(ops, keys_list_never_shows_a_key_and_revoke_ends_it)
{
    static struct daemon d;
    static struct exec_result x;
    static struct response r;
    char id[32];
    const char *extra[] = {"--auth-cache-ms", "200", NULL};
    daemon_up(&d, extra);
    snprintf(id, sizeof(id), "%ld", d.key_id);
    const char *list[] = {daemon_bin(), "keys",           "list",      "--tenant",
                          "t1",         "--database-url", d.owner_url, NULL};
    cr_assert_eq(run(list, &x), 0, "%s", x.err);
    cr_assert(strstr(x.out, "active") != NULL, "%s", x.out);
    cr_assert(strstr(x.out, d.key) == NULL && strstr(x.out, "ck_") == NULL, "a key was listed");
    ask(&d, "GET", "/v1/policies", d.key, NULL, &r);
    cr_assert_eq(r.status, 200);
    const char *revoke[] = {daemon_bin(),     "keys",      "revoke", id,
                            "--database-url", d.owner_url, NULL};
    cr_assert_eq(run(revoke, &x), 0, "%s", x.err);
    sleep_ms(400); /* past auth-cache-ms */
    for (int i = 0; i < 4; i++) {
        ask(&d, "GET", "/v1/policies", d.key, NULL, &r);
        response_assert_problem(&r, 401, "unauthorized");
    }
    cr_assert_eq(run(list, &x), 0);
    cr_assert(strstr(x.out, "revoked") != NULL, "%s", x.out);
    const char *missing[] = {daemon_bin(),     "keys",      "revoke", "999999",
                             "--database-url", d.owner_url, NULL};
    cr_assert_eq(run(missing, &x), 1);
    daemon_stop(&d);
}

Test(ops, version_and_help)
{
    static struct exec_result x;
    const char *version[] = {daemon_bin(), "--version", NULL};
    cr_assert_eq(run(version, &x), 0);
    cr_assert(strncmp(x.out, "claimd ", 7) == 0, "%s", x.out);
    const char *cmds[][3] = {{"--help", NULL, NULL},      {"serve", "--help", NULL},
                             {"migrate", "--help", NULL}, {"keys", "--help", NULL},
                             {"policy", "--help", NULL},  {"check-config", "--help", NULL}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *argv[] = {daemon_bin(), cmds[i][0], cmds[i][1], NULL};
        cr_assert_eq(run(argv, &x), 0, "%s %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "");
        cr_assert(strstr(x.out, "usage") != NULL, "%s: %s", cmds[i][0], x.out);
    }
    const char *bad[] = {daemon_bin(), "frobnicate", NULL};
    cr_assert_eq(run(bad, &x), 2);
}

/* ------------------------------------------------------------------------
 * SIGTERM with requests in flight, SIGHUP under load, the exposition format
 * ------------------------------------------------------------------------ */

#define IN_FLIGHT 200

static const char claim_fmt[] =
    "{\"claim_ref\":\"%s\",\"subscription_ref\":\"L-1\",\"imei\":\"" IMEI_A
    "\",\"incident_on\":\"%s\",\"cause\":\"physical_damage\",\"damage\":\"screen\","
    "\"remedy\":\"repair\",\"repair_estimate\":65000}";

static void send_claim(struct client *c, const struct daemon *d, const char *ref,
                       const char *incident)
{
    char body[512], req[2048];
    snprintf(body, sizeof(body), claim_fmt, ref, incident);
    size_t n = request_build(req, sizeof(req), "POST", "/v1/claims", d->key, "application/json",
                             NULL, body);
    cr_assert_eq(client_send(c, req, n), 0);
}

/*
 * 200 claims on 200 connections wait behind a table lock when SIGTERM comes:
 * the daemon stops accepting, answers every one of them once the lock goes,
 * and exits 0.
 */
Test(ops, sigterm_answers_every_request_in_flight)
{
    static struct daemon d;
    static struct client c[IN_FLIGHT];
    static struct response r;
    char ref[32];
    daemon_up(&d, NULL);
    register_device(&d, "L-1", IMEI_A, 200);
    PGconn *lock = testdb_connect(d.owner_url);
    testdb_ok(lock, "BEGIN");
    testdb_ok(lock, "LOCK TABLE subscriptions IN EXCLUSIVE MODE");
    for (int i = 0; i < IN_FLIGHT; i++) {
        snprintf(ref, sizeof(ref), "T-%d", i);
        client_open(&c[i], d.port);
        send_claim(&c[i], &d, ref, "2024-06-01");
    }
    sleep_ms(500);
    daemon_signal(&d, SIGTERM);
    sleep_ms(500);
    cr_assert(!daemon_exited(&d), "the daemon left before answering");
    testdb_ok(lock, "COMMIT");
    PQfinish(lock);
    int approved = 0;
    for (int i = 0; i < IN_FLIGHT; i++) {
        client_expect(&c[i], false, 15000, &r);
        cr_assert_eq(r.status, 201, "claim %d: %d %s", i, r.status, r.body);
        approved += strstr(r.body, "\"status\":\"approved\"") != NULL;
        client_close(&c[i]);
    }
    cr_assert_eq(approved, 2, "two uses a window, whatever the drain");
    cr_assert(daemon_wait(&d, DAEMON_STOP_MS));
    cr_assert(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0, "status %d", d.status);
    daemon_assert_clean_log(&d);
}

static const char *policy_version_of(const struct response *r, char *out, size_t outlen)
{
    json_t *v = response_json(r);
    snprintf(out, outlen, "%s", json_string_value(json_object_get(v, "policy_version")));
    json_decref(v);
    return out;
}

/*
 * Claims flow on four connections while SIGHUP loads a version in force from
 * 2024-09-01 with a 70,000 yen cap: none fails, and once every loop has it,
 * claims of incidents since then are decided under it.
 */
Test(ops, sighup_under_load_then_claims_use_the_new_version)
{
    static struct daemon d;
    static struct exec_result x;
    static struct client c[4];
    static struct response r;
    char path[64], ref[32], version[32];
    daemon_up(&d, NULL);
    register_device(&d, "L-1", IMEI_A, 200);
    snprintf(path, sizeof(path), "/tmp/claimd-ops-hup-%d.json", (int)getpid());
    write_file(path, "{\"name\":\"2024-09\",\"effective_from\":\"2024-09-01\",\"monthly_fee\":550,"
                     "\"free_months\":2,\"repair_cap\":70000,\"exchange_fees\":[5500,8800],"
                     "\"max_uses\":2,\"window\":\"contract_year\",\"natural_failure_months\":36,"
                     "\"registration_days\":14,\"ios_exchange\":false,\"loaner_os\":\"android\"}");
    cr_assert_eq(policy_add(&d, path, &x), 0, "%s", x.err);
    for (int i = 0; i < 4; i++)
        client_open(&c[i], d.port);
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 4; i++) {
            snprintf(ref, sizeof(ref), "H-%d-%d", round, i);
            send_claim(&c[i], &d, ref, "2024-10-01");
        }
        if (round == 4)
            daemon_signal(&d, SIGHUP);
        for (int i = 0; i < 4; i++) {
            client_expect(&c[i], false, 10000, &r);
            cr_assert_eq(r.status, 201, "round %d: %d %s", round, r.status, r.body);
        }
    }
    int64_t until = now_ms() + 5000;
    while (policy_count(&d) != 2 && now_ms() < until)
        sleep_ms(50);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(policy_count(&d), 2);
    for (int i = 0; i < 4; i++) {
        snprintf(ref, sizeof(ref), "N-%d", i);
        send_claim(&c[i], &d, ref, "2024-10-02");
        client_expect(&c[i], false, 10000, &r);
        cr_assert_eq(r.status, 201);
        cr_assert_str_eq(policy_version_of(&r, version, sizeof(version)), "2024-09");
        client_close(&c[i]);
    }
    unlink(path);
    daemon_stop(&d);
}

/* ------------------------------------------------------------------------
 * A small checker of the Prometheus text exposition format (0.0.4)
 * ------------------------------------------------------------------------ */

static bool metric_name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
                  (i > 0 && ch >= '0' && ch <= '9');
        if (!ok)
            return false;
    }
    return n > 0;
}

/* {name="value",...}: returns the length, or 0 when malformed. */
static size_t labels_len(const char *s)
{
    size_t i = 1;
    if (s[0] != '{')
        return 0;
    while (s[i] != '}') {
        size_t n = 0;
        while (metric_name_ok(s + i, n + 1))
            n++;
        if (n == 0 || s[i + n] != '=' || s[i + n + 1] != '"')
            return 0;
        i += n + 2;
        while (s[i] != '"' && s[i] != '\0' && s[i] != '\n')
            i += s[i] == '\\' ? 2 : 1;
        if (s[i] != '"')
            return 0;
        i++;
        if (s[i] == ',')
            i++;
        else if (s[i] != '}')
            return 0;
    }
    return i + 1;
}

/* Checks one sample line: NAME[{labels}] VALUE, and that its family was typed. */
static void check_sample(const char *line, size_t len, const char *typed)
{
    size_t n = 0;
    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    cr_assert(metric_name_ok(line, n), "bad metric name: %.*s", (int)len, line);
    char family[128];
    snprintf(family, sizeof(family), "%.*s", (int)n, line);
    char *suffix = strstr(family, "_bucket");
    suffix = suffix != NULL ? suffix : strstr(family, "_sum");
    suffix = suffix != NULL ? suffix : strstr(family, "_count");
    if (suffix != NULL && strstr(typed, family) == NULL)
        *suffix = '\0';
    char needle[140];
    snprintf(needle, sizeof(needle), " %s ", family);
    cr_assert(strstr(typed, needle) != NULL, "no # TYPE before %s", family);
    size_t i = n;
    if (line[i] == '{') {
        size_t l = labels_len(line + i);
        cr_assert(l > 0, "bad labels: %.*s", (int)len, line);
        i += l;
    }
    cr_assert_eq(line[i], ' ', "%.*s", (int)len, line);
    char *end;
    strtod(line + i + 1, &end);
    cr_assert(end > line + i + 1 && (size_t)(end - line) == len, "bad value: %.*s", (int)len, line);
}

static void check_exposition(const char *text)
{
    static char typed[16384];
    typed[0] = ' ';
    typed[1] = '\0';
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "the exposition must end with a newline");
        size_t len = (size_t)(nl - p);
        if (strncmp(p, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            cr_assert_eq(sscanf(p + 7, "%127s %31s", name, type), 2);
            cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                          strcmp(type, "histogram") == 0,
                      "%s", type);
            strncat(typed, name, sizeof(typed) - strlen(typed) - 3);
            strcat(typed, " ");
        } else if (strncmp(p, "# HELP ", 7) != 0) {
            cr_assert(len > 0 && p[0] != '#', "stray line: %.*s", (int)len, p);
            check_sample(p, len, typed);
        }
        p = nl + 1;
    }
}

Test(ops, metrics_follow_the_exposition_format)
{
    static struct daemon d;
    static struct response r;
    daemon_up(&d, NULL);
    register_device(&d, "L-5", IMEI_A, 200);
    ask(&d, "GET", "/nowhere", NULL, NULL, &r);
    ask(&d, "GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    check_exposition(r.body);
    cr_assert(strstr(r.body,
                     "claimd_http_request_duration_seconds_bucket{route=\"/v1/subscriptions\","
                     "le=\"+Inf\"}") != NULL);
    daemon_stop(&d);
}
