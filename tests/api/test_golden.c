/*
 * The core's golden cases (tests/cases, walked at run time) replayed through the REST API: each
 * case gets a tenant of its own, its line, device and history are built with API calls, then
 * its op is sent and the answer compared with expected.json member by member.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "apitest.h"

TestSuite(golden, .fini = daemon_cleanup, .timeout = 110);

/* Below these the tree was not found, emptied, or most of it skipped by mistake. */
#define MIN_RUN_DEFAULT 190
#define MIN_RUN_CUSTOM  30
#define MAX_CASES       1024
#define MSG_SIZE        2048

/* One case: its files, its tenant, and how its replay went. */
struct gcase {
    char path[256]; /* rule/case */
    json_t *req, *hist, *exp;
    char *group; /* the policies as canonical JSON; "" for the seeded version */
    char key[48];
    const char *skip;    /* why the API cannot reproduce it, or NULL */
    const char *note;    /* a remark for the report, or NULL */
    bool device_pending; /* the device is registered under the case's own policies */
    bool failed;
    int unreproducible; /* denied history entries the API cannot reproduce (not replayed) */
};

static struct daemon d;
static struct sess s;
static struct gcase cases[MAX_CASES];
static size_t ncases;

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of dir's entries that are directories (not "." or ".."). */
static size_t subdirs(const char *dir, char **names, size_t max)
{
    DIR *dp = opendir(dir);
    size_t n = 0;
    cr_assert(dp != NULL, "cannot open %s", dir);
    for (struct dirent *e; (e = readdir(dp)) != NULL;) {
        if (e->d_name[0] != '.' && e->d_type == DT_DIR && n < max)
            names[n++] = strdup(e->d_name);
    }
    closedir(dp);
    qsort(names, n, sizeof(*names), cmp_name);
    return n;
}

static json_t *load(const char *root, const char *path, const char *file)
{
    char full[1024];
    json_error_t err;
    snprintf(full, sizeof(full), "%s/%s/%s", root, path, file);
    json_t *v = json_load_file(full, JSON_REJECT_DUPLICATES, &err);
    cr_assert(v != NULL, "%s: %s (line %d)", full, err.text, err.line);
    return v;
}

static void load_case(const char *root, const char *rule, const char *name)
{
    cr_assert(ncases < MAX_CASES);
    struct gcase *c = &cases[ncases++];
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s/%s", rule, name);
    c->req = load(root, c->path, "request.json");
    c->hist = load(root, c->path, "history.json");
    c->exp = load(root, c->path, "expected.json");
    json_t *pol = json_object_get(c->req, "policies");
    c->group = pol != NULL ? json_dumps(pol, JSON_COMPACT | JSON_SORT_KEYS) : strdup("");
}

static void load_all(void)
{
    const char *root = getenv("CLAIMD_CASES_DIR");
    char *rules[256], *names[512], dir[1024];
    cr_assert(root != NULL && root[0] != '\0', "CLAIMD_CASES_DIR is not set: run under ctest");
    size_t nr = subdirs(root, rules, 256);
    for (size_t i = 0; i < nr; i++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, rules[i]);
        size_t nn = subdirs(dir, names, 512);
        for (size_t k = 0; k < nn; k++) {
            load_case(root, rules[i], names[k]);
            free(names[k]);
        }
        free(rules[i]);
    }
}

static void free_all(void)
{
    for (size_t i = 0; i < ncases; i++) {
        json_decref(cases[i].req);
        json_decref(cases[i].hist);
        json_decref(cases[i].exp);
        free(cases[i].group);
    }
    ncases = 0;
}

/* ------------------------------------------------------------------------
 * What the API cannot reproduce
 * ------------------------------------------------------------------------ */

static const char *str(json_t *o, const char *name)
{
    const char *v = json_string_value(json_object_get(o, name));
    return v != NULL ? v : "";
}

/* The latest incident_on of the op's claims, or "" when the op has none. */
static const char *latest_incident(json_t *req)
{
    const char *latest = str(json_object_get(req, "claim"), "incident_on");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(req, "claims"), i, c)
    {
        if (strcmp(str(c, "incident_on"), latest) > 0)
            latest = str(c, "incident_on");
    }
    return latest;
}

static bool fact(json_t *req, const char *name)
{
    return json_is_true(json_object_get(json_object_get(req, "imei_facts"), name));
}

static void classify(struct gcase *c, const char *real_today)
{
    json_t *req = c->req, *dev = json_object_get(req, "device");
    const char *reg_imei = str(json_object_get(req, "registration"), "imei");
    const char *latest = latest_incident(req);
    size_t i;
    json_t *h;
    json_array_foreach(c->hist, i, h)
    {
        if (strcmp(str(h, "incident_on"), latest) > 0)
            latest = str(h, "incident_on");
    }
    if (json_is_true(json_object_get(req, "core_only")))
        c->skip = "core_only: the API cannot reach the state";
    else if (strcmp(latest_incident(req), str(req, "today")) > 0)
        c->skip = "an incident after the case's today (incident_in_future needs the daemon's "
                  "clock, which cannot be set)";
    else if (strcmp(latest, real_today) > 0)
        c->skip = "an incident after the real today in Japan";
    else if (fact(req, "covered_on_cancelled_option") && fact(req, "live_elsewhere"))
        c->skip = "both imei_facts: an IMEI covered on a cancelled option can never become live "
                  "on another line of the tenant through the API";
    else if ((fact(req, "covered_on_cancelled_option") || fact(req, "live_elsewhere")) &&
             json_is_object(dev) && strcmp(str(dev, "imei"), reg_imei) == 0)
        c->skip = "an imei_fact about the line's own device cannot be set up through the API";
}

/* ------------------------------------------------------------------------
 * Calls that record a failure instead of stopping the test
 * ------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void fail(struct gcase *c, const char *fmt, ...)
{
    char msg[MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!c->failed)
        cr_log_error("golden %s: %s", c->path, msg);
    c->failed = true;
}

/* Sends method target with the JSON value body (or none) as the case's tenant. */
static void call(struct gcase *c, const char *method, const char *target, json_t *body,
                 struct reply *r)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    s.key = c->key;
    sess_call(&s, method, target, text, r);
    free(text);
}

/* A call that must answer status; false (and the case failed) otherwise. */
static bool call_ok(struct gcase *c, const char *what, const char *method, const char *target,
                    json_t *body, int status, struct reply *r)
{
    call(c, method, target, body, r);
    if (r->status == status)
        return true;
    fail(c, "%s: %s %s %s answered %d: %s", what, method, target, jtext(body), r->status,
         r->body ? r->body : "");
    return false;
}

static void target_of(char *out, size_t len, const char *ref, const char *tail)
{
    snprintf(out, len, "/v1/subscriptions/%s%s", ref, tail);
}

/* ------------------------------------------------------------------------
 * Set-up (phase 1 under the seeded version, phase 2 under the case's own)
 * ------------------------------------------------------------------------ */

/* The creation body of the case's subscription: activated_on only when set. */
static json_t *creation(json_t *sub)
{
    json_t *b = json_pack("{s:O,s:O}", "subscription_ref", json_object_get(sub, "subscription_ref"),
                          "applied_on", json_object_get(sub, "applied_on"));
    json_t *act = json_object_get(sub, "activated_on");
    if (json_is_string(act))
        json_object_set(b, "activated_on", act);
    json_object_set(b, "device_protection", json_object_get(sub, "device_protection"));
    return b;
}

/* Another line of the tenant holding imei, live, or cancelled when cancel is true. */
static bool other_line(struct gcase *c, const char *ref, const char *imei, json_t *sub, bool cancel)
{
    struct reply r = {0};
    char target[128];
    const char *day = str(sub, "applied_on");
    json_t *b = json_pack("{s:s,s:s,s:s,s:b}", "subscription_ref", ref, "applied_on", day,
                          "activated_on", day, "device_protection", 1);
    json_t *dev =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "imei", imei, "os", "android", "model", "Other",
                  "release_date", "2021-01-01", "purchased_from", "other", "registered_on", day);
    json_t *cb = json_pack("{s:s}", "cancelled_on", day);
    bool ok = call_ok(c, "imei_facts line", "POST", "/v1/subscriptions", b, 201, &r);
    target_of(target, sizeof(target), ref, "/device");
    ok = ok && call_ok(c, "imei_facts device", "PUT", target, dev, 200, &r);
    target_of(target, sizeof(target), ref, "/cancel");
    ok = ok && (!cancel || call_ok(c, "imei_facts cancel", "POST", target, cb, 200, &r));
    json_decref(b);
    json_decref(dev);
    json_decref(cb);
    reply_free(&r);
    return ok;
}

/* 15 digits with a Luhn check digit. */
static bool imei_valid(const char *imei)
{
    int sum = 0;
    if (strlen(imei) != 15 || strspn(imei, "0123456789") != 15)
        return false;
    for (int i = 0; i < 15; i++) {
        int v = imei[i] - '0';
        if (i % 2 == 1 && (v *= 2) > 9)
            v -= 9;
        sum += v;
    }
    return sum % 10 == 0;
}

/* The IMEI facts of a registration case, on other lines of the same tenant. */
static void imei_facts(struct gcase *c, json_t *sub)
{
    const char *imei = str(json_object_get(c->req, "registration"), "imei");
    bool canc = fact(c->req, "covered_on_cancelled_option"), live = fact(c->req, "live_elsewhere");
    if (!canc && !live)
        return;
    if (!imei_valid(imei)) {
        /* An invalid IMEI is never registered anywhere: the fact cannot hold. */
        c->note = "imei_facts not set up: the registration's IMEI is invalid, so no line can "
                  "ever have held it";
        return;
    }
    if (canc)
        other_line(c, "ZZ-CANCELLED", imei, sub, true);
    if (live)
        other_line(c, "ZZ-LIVE", imei, sub, false);
}

static void phase1(struct gcase *c)
{
    struct reply r = {0};
    char target[128];
    json_t *sub = json_object_get(c->req, "subscription"), *dev = json_object_get(c->req, "device");
    if (strcmp(str(c->req, "op"), "create") == 0)
        return;
    json_t *b = creation(sub);
    bool ok = call_ok(c, "the line", "POST", "/v1/subscriptions", b, 201, &r);
    json_decref(b);
    if (ok && strcmp(str(c->req, "op"), "register") == 0)
        imei_facts(c, sub);
    if (ok && json_is_object(dev)) {
        target_of(target, sizeof(target), str(sub, "subscription_ref"), "/device");
        call(c, "PUT", target, dev, &r);
        c->device_pending = r.status != 200;
    }
    reply_free(&r);
}

/* The body of a history entry: the claim as posted, on the case's line. */
static json_t *entry_body(json_t *entry, json_t *sub)
{
    json_t *b = json_deep_copy(entry);
    json_object_del(b, "status");
    json_object_del(b, "withdrawn");
    json_object_set(b, "subscription_ref", json_object_get(sub, "subscription_ref"));
    return b;
}

/*
 * The history is replayed in its order. When a withdrawal or the cancellation happened is not
 * recorded, so both wait until an entry needs them: before posting an entry, its quote must
 * give the status the history records; if not, the pending withdrawals are made, then the
 * cancellation, and the entry quoted again. An approved entry that still differs fails the
 * case; a denied one that the API would approve (say device_not_registered on a line that has
 * its device) is not posted: denials never count, so the case's answer does not depend on it.
 */
struct pending {
    const char *withdraw[64];
    size_t nwithdraw;
    bool cancel; /* the line's cancellation is still to be made */
};

static void make_pending(struct gcase *c, struct pending *p, bool cancel_too)
{
    struct reply r = {0};
    char target[128];
    json_t *sub = json_object_get(c->req, "subscription");
    for (size_t i = 0; i < p->nwithdraw && !c->failed; i++) {
        snprintf(target, sizeof(target), "/v1/claims/%s/withdraw", p->withdraw[i]);
        call_ok(c, "a withdrawal", "POST", target, NULL, 200, &r);
    }
    p->nwithdraw = 0;
    if (cancel_too && p->cancel && !c->failed) {
        json_t *b = json_pack("{s:O}", "cancelled_on", json_object_get(sub, "cancelled_on"));
        target_of(target, sizeof(target), str(sub, "subscription_ref"), "/cancel");
        call_ok(c, "the cancellation", "POST", target, b, 200, &r);
        json_decref(b);
        p->cancel = false;
    }
    reply_free(&r);
}

/* The status a quote of the entry's body gives now ("" when refused). */
static const char *quoted(struct gcase *c, json_t *body, struct reply *r)
{
    json_t *q = json_deep_copy(body);
    json_object_del(q, "claim_ref");
    call(c, "POST", "/v1/claims/quote", q, r);
    json_decref(q);
    return r->status == 200 ? str(r->json, "status") : "";
}

static void replay_entry(struct gcase *c, json_t *h, struct pending *p)
{
    struct reply r = {0};
    const char *want = str(h, "status");
    json_t *b = entry_body(h, json_object_get(c->req, "subscription"));
    for (int step = 0; step < 3 && strcmp(quoted(c, b, &r), want) != 0; step++)
        make_pending(c, p, step > 0);
    if (!c->failed && strcmp(quoted(c, b, &r), want) != 0) {
        if (strcmp(want, "approved") == 0)
            fail(c, "history entry %s: expected approved, the API answers %d %s",
                 str(h, "claim_ref"), r.status, r.body);
        else
            c->unreproducible++;
    } else if (!c->failed && call_ok(c, "a history entry", "POST", "/v1/claims", b, 201, &r) &&
               strcmp(str(r.json, "status"), want) != 0) {
        fail(c, "history entry %s: expected %s, got %s", str(h, "claim_ref"), want, r.body);
    } else if (!c->failed && json_is_true(json_object_get(h, "withdrawn"))) {
        cr_assert(p->nwithdraw < 64);
        p->withdraw[p->nwithdraw++] = str(h, "claim_ref");
    }
    json_decref(b);
    reply_free(&r);
}

static void replay_history(struct gcase *c)
{
    struct pending p = {.cancel = json_is_string(json_object_get(
                            json_object_get(c->req, "subscription"), "cancelled_on"))};
    size_t i;
    json_t *h;
    json_array_foreach(c->hist, i, h)
    {
        if (!c->failed)
            replay_entry(c, h, &p);
    }
    make_pending(c, &p, true);
}

static void phase2_setup(struct gcase *c)
{
    struct reply r = {0};
    char target[128];
    json_t *sub = json_object_get(c->req, "subscription");
    if (strcmp(str(c->req, "op"), "create") == 0)
        return;
    if (c->device_pending) {
        target_of(target, sizeof(target), str(sub, "subscription_ref"), "/device");
        call_ok(c, "the device (under the case's policies)", "PUT", target,
                json_object_get(c->req, "device"), 200, &r);
    }
    if (!c->failed)
        replay_history(c);
    reply_free(&r);
}

/* ------------------------------------------------------------------------
 * The op and its comparison
 * ------------------------------------------------------------------------ */

struct verdict {
    const char *code;
    int status;
};

static const struct verdict verdicts[] = {
    {"date_before_application", 422},
    {"already_activated", 409},
    {"already_cancelled", 409},
    {"duplicate_subscription", 409},
    {"option_not_enrolled", 422},
    {"option_cancelled", 422},
    {"not_activated", 422},
    {"registration_before_activation", 422},
    {"registration_window_closed", 422},
    {"carrier_purchased_device", 422},
    {"device_already_registered", 409},
    {"reenrollment_forbidden", 422},
    {"imei_in_use", 409},
    {"invalid_imei", 400},
    {"no_policy_in_force", 422},
    {"incident_in_future", 400},
};

static int status_of_code(const char *code)
{
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
        if (strcmp(verdicts[i].code, code) == 0)
            return verdicts[i].status;
    }
    return -1;
}

/* A refusal (the problem object got, whole answer or batch item) against the expected code. */
static bool refusal_matches(json_t *got, int status, const char *code, char *why, size_t len)
{
    const char *gcode = str(got, "code");
    if (strcmp(code, "invalid") == 0) {
        bool ok = status == 400 &&
                  (strcmp(gcode, "invalid_imei") == 0 || strcmp(gcode, "invalid_field") == 0 ||
                   strcmp(gcode, "missing_field") == 0);
        snprintf(why, len, "expected a 400 validation problem, got %d %s", status, jtext(got));
        return ok;
    }
    snprintf(why, len, "expected %d %s, got %d %s", status_of_code(code), code, status, jtext(got));
    return status == status_of_code(code) && strcmp(gcode, code) == 0;
}

/* One outcome: a decision (status 201 or 200) or a refusal, as expected.json says. */
static bool outcome_matches(json_t *got, int status, json_t *want, int decided_status, char *why,
                            size_t len)
{
    if (strcmp(str(want, "result"), "refused") == 0)
        return refusal_matches(got, status, str(want, "code"), why, len);
    if (status != decided_status) {
        snprintf(why, len, "expected a decision (%d), got %d %s", decided_status, status,
                 jtext(got));
        return false;
    }
    json_t *w = json_deep_copy(want);
    json_object_del(w, "result");
    bool ok = json_match(got, w, why, len);
    json_decref(w);
    return ok;
}

static void op_claim(struct gcase *c)
{
    struct reply r = {0}, again = {0};
    char why[MSG_SIZE];
    json_t *claim = json_object_get(c->req, "claim");
    call(c, "POST", "/v1/claims", claim, &r);
    if (!outcome_matches(r.json, r.status, c->exp, 201, why, sizeof(why))) {
        fail(c, "claim: %s", why);
    } else if (r.status == 201) {
        /* A decision is recorded: the same body again replays it. */
        call(c, "POST", "/v1/claims", claim, &again);
        if (again.status != 200 || !json_equal(again.json, r.json))
            fail(c, "the replay answered %d %s, not 200 %s", again.status, again.body, r.body);
    }
    reply_free(&r);
    reply_free(&again);
}

static void op_batch(struct gcase *c)
{
    struct reply r = {0};
    char why[MSG_SIZE];
    json_t *claims = json_object_get(c->req, "claims"), *want = json_object_get(c->exp, "results");
    json_t *b = json_pack("{s:O}", "claims", claims);
    bool ok = call_ok(c, "the batch", "POST", "/v1/claims/batch", b, 200, &r);
    json_decref(b);
    json_t *res = json_object_get(r.json, "results");
    if (ok && json_array_size(res) != json_array_size(want))
        fail(c, "%zu results, expected %zu: %s", json_array_size(res), json_array_size(want),
             r.body);
    for (size_t i = 0; !c->failed && i < json_array_size(want); i++) {
        json_t *it = json_array_get(res, i);
        json_t *st = json_object_get(it, "status");
        int status = json_is_integer(st) ? (int)json_integer_value(st) : 201;
        const char *ref = str(json_array_get(claims, i), "claim_ref");
        if (!outcome_matches(it, status, json_array_get(want, i), 201, why, sizeof(why)))
            fail(c, "results[%zu]: %s", i, why);
        else if (strcmp(str(it, "claim_ref"), ref) != 0)
            fail(c, "results[%zu] carries claim_ref %s, not %s", i, jtext(it), ref);
    }
    reply_free(&r);
}

/* register, activate, cancel and create: a verdict. */
static void op_verdict(struct gcase *c, const char *method, const char *target, json_t *body,
                       int ok_status)
{
    struct reply r = {0};
    const char *want = str(c->exp, "verdict");
    call(c, method, target, body, &r);
    if (strcmp(want, "ok") == 0 || strcmp(want, "repeat") == 0) {
        int st = strcmp(want, "ok") == 0 ? ok_status : 200;
        if (r.status != st)
            fail(c, "verdict %s: expected %d, got %d %s", want, st, r.status, r.body);
    } else if (r.status != status_of_code(want) || strcmp(str(r.json, "code"), want) != 0) {
        fail(c, "verdict %s: expected %d %s, got %d %s", want, status_of_code(want), want, r.status,
             r.body);
    }
    reply_free(&r);
}

static void op_state(struct gcase *c)
{
    struct reply r = {0};
    char target[160], why[MSG_SIZE];
    json_t *sub = json_object_get(c->req, "subscription");
    snprintf(target, sizeof(target), "/v1/subscriptions/%s?on=%s", str(sub, "subscription_ref"),
             str(c->req, "on"));
    call(c, "GET", target, NULL, &r);
    bool refused = strcmp(str(c->exp, "result"), "refused") == 0;
    if (refused && !refusal_matches(r.json, r.status, str(c->exp, "code"), why, sizeof(why)))
        fail(c, "state: %s", why);
    else if (!refused && r.status != 200)
        fail(c, "state: %d %s", r.status, r.body);
    else if (!refused && !json_match(r.json, c->exp, why, sizeof(why)))
        fail(c, "state: %s", why);
    reply_free(&r);
}

static void run_op(struct gcase *c)
{
    const char *op = str(c->req, "op");
    json_t *sub = json_object_get(c->req, "subscription");
    const char *ref = str(sub, "subscription_ref");
    char target[128];
    if (strcmp(op, "claim") == 0) {
        op_claim(c);
    } else if (strcmp(op, "batch") == 0) {
        op_batch(c);
    } else if (strcmp(op, "state") == 0) {
        op_state(c);
    } else if (strcmp(op, "register") == 0) {
        target_of(target, sizeof(target), ref, "/device");
        op_verdict(c, "PUT", target, json_object_get(c->req, "registration"), 200);
    } else if (strcmp(op, "activate") == 0 || strcmp(op, "cancel") == 0) {
        const char *member = op[0] == 'a' ? "activated_on" : "cancelled_on";
        json_t *b = json_pack("{s:O}", member, json_object_get(c->req, member));
        target_of(target, sizeof(target), ref, op[0] == 'a' ? "/activate" : "/cancel");
        op_verdict(c, "POST", target, b, 200);
        json_decref(b);
    } else if (strcmp(op, "create") == 0) {
        json_t *b = creation(sub);
        op_verdict(c, "POST", "/v1/subscriptions", b, 201);
        json_decref(b);
    } else {
        fail(c, "unknown op %s", op);
    }
}

/* ------------------------------------------------------------------------
 * Groups: a database, tenants, policies, a daemon
 * ------------------------------------------------------------------------ */

/* One tenant per case (keys stored as the SHA-256 of the key, as claimd keys does). */
static void tenants(void)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO tenants (name) SELECT 'g' || i FROM generate_series(0, %zu) i; "
             "INSERT INTO api_keys (tenant_id, key_hash) SELECT id, "
             "sha256(convert_to('gkey-' || name, 'UTF8')) FROM tenants WHERE name ~ '^g[0-9]+$'",
             ncases);
    daemon_sql(&d, sql);
    for (size_t i = 0; i < ncases; i++)
        snprintf(cases[i].key, sizeof(cases[i].key), "gkey-g%zu", i);
}

static void restart(void)
{
    sess_close(&s);
    daemon_stop(&d);
    unlink(d.err_path);
    daemon_start(&d, NULL);
    sess_open(&s, d.port, NULL);
}

/* Replaces the policy versions with the group's (claims of earlier groups go first). */
static void install_policies(const char *group)
{
    json_t *arr = jparse(group);
    size_t i;
    json_t *p;
    daemon_sql(&d, "DELETE FROM claims; DELETE FROM policy_versions");
    json_array_foreach(arr, i, p)
    {
        char sql[1024], list[256] = "";
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(p, "exchange_fees"), k, f)
        {
            size_t n = strlen(list);
            snprintf(list + n, sizeof(list) - n, "%s%lld", k ? "," : "",
                     (long long)json_integer_value(f));
        }
        snprintf(sql, sizeof(sql),
                 "INSERT INTO policy_versions (name, effective_from, monthly_fee, free_months, "
                 "repair_cap, exchange_fees, max_uses, frequency_window, natural_failure_months, "
                 "registration_days, ios_exchange, loaner_os) VALUES ('%s', '%s', %lld, %lld, "
                 "%lld, '{%s}', %lld, '%s', %lld, %lld, %s, '%s')",
                 str(p, "name"), str(p, "effective_from"),
                 (long long)json_integer_value(json_object_get(p, "monthly_fee")),
                 (long long)json_integer_value(json_object_get(p, "free_months")),
                 (long long)json_integer_value(json_object_get(p, "repair_cap")), list,
                 (long long)json_integer_value(json_object_get(p, "max_uses")), str(p, "window"),
                 (long long)json_integer_value(json_object_get(p, "natural_failure_months")),
                 (long long)json_integer_value(json_object_get(p, "registration_days")),
                 json_is_true(json_object_get(p, "ios_exchange")) ? "true" : "false",
                 str(p, "loaner_os"));
        daemon_sql(&d, sql);
    }
    json_decref(arr);
    restart();
}

static bool in_run(const struct gcase *c, bool custom)
{
    return c->skip == NULL && (c->group[0] != '\0') == custom;
}

/* The report: what ran, what was skipped and why, and the remarks. */
static void report(bool custom, size_t run, size_t failed)
{
    size_t skipped = 0, entries = 0;
    for (size_t i = 0; i < ncases; i++) {
        const struct gcase *c = &cases[i];
        if ((c->group[0] != '\0') != custom)
            continue;
        if (c->skip != NULL) {
            skipped++;
            cr_log_info("golden: skipped %s: %s", c->path, c->skip);
        }
        if (c->skip == NULL && c->note != NULL)
            cr_log_info("golden: %s: %s", c->path, c->note);
        if (c->skip == NULL && c->unreproducible > 0)
            cr_log_info("golden: %s: %d denied history entr%s not replayed (the API would "
                        "approve it on this line)",
                        c->path, c->unreproducible, c->unreproducible > 1 ? "ies" : "y");
        entries += c->skip == NULL ? (size_t)c->unreproducible : 0;
    }
    cr_log_info("golden (%s): %zu cases ran, %zu failed, %zu skipped; %zu denied history "
                "entries not replayed",
                custom ? "custom policies" : "the seeded policy", run, failed, skipped, entries);
}

/* Phase 1 for every case of the run, then phase 2 and the op group by group. */
static void run_cases(bool custom)
{
    char real_today[11];
    size_t run = 0, failed = 0;
    japan_date(0, real_today);
    load_all();
    for (size_t i = 0; i < ncases; i++)
        classify(&cases[i], real_today);
    daemon_db_create(&d);
    tenants();
    daemon_start(&d, NULL);
    sess_open(&s, d.port, NULL);
    for (size_t i = 0; i < ncases; i++) {
        if (in_run(&cases[i], custom))
            phase1(&cases[i]);
    }
    for (size_t g = 0; g < ncases; g++) {
        /* The first case of each group (in walk order) runs the group. */
        if (!in_run(&cases[g], custom))
            continue;
        bool first = true;
        for (size_t i = 0; i < g && first; i++)
            first = !(in_run(&cases[i], custom) && strcmp(cases[i].group, cases[g].group) == 0);
        if (!first)
            continue;
        if (custom)
            install_policies(cases[g].group);
        for (size_t i = g; i < ncases; i++) {
            struct gcase *c = &cases[i];
            if (!in_run(c, custom) || strcmp(c->group, cases[g].group) != 0)
                continue;
            if (!c->failed)
                phase2_setup(c);
            if (!c->failed)
                run_op(c);
            run++;
            failed += c->failed;
        }
    }
    report(custom, run, failed);
    sess_close(&s);
    daemon_stop(&d);
    daemon_destroy(&d);
    cr_expect_eq(failed, 0, "%zu of %zu golden cases failed through the API (listed above)", failed,
                 run);
    cr_assert_geq(run, custom ? MIN_RUN_CUSTOM : MIN_RUN_DEFAULT,
                  "only %zu golden cases ran through the API", run);
    free_all();
}

Test(golden, cases_under_the_seeded_policy)
{
    run_cases(false);
}

Test(golden, cases_with_policies_of_their_own)
{
    run_cases(true);
}
