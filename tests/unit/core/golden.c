/*
 * The golden-case loader, runner and comparer shared by test_golden and
 * test_alloc. Three phases: load (jansson, allocates), run (core calls only,
 * into buffers sized at load), check (builds JSON again, allocates).
 */
#define _POSIX_C_SOURCE 200809L

#include "golden.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------
 * Walking the tree
 * ------------------------------------------------------------------------ */

struct path_list {
    char **v;
    size_t n;
    size_t cap;
};

static int path_push(struct path_list *pl, const char *p)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        char **v = realloc(pl->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        pl->v = v;
        pl->cap = cap;
    }
    pl->v[pl->n] = strdup(p);
    return pl->v[pl->n++] == NULL ? -1 : 0;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * A folder holding request.json is a case and is not descended into; any
 * other folder is searched for cases.
 */
static int walk(const char *dir, struct path_list *pl)
{
    char p[GOLDEN_PATH_MAX];
    snprintf(p, sizeof(p), "%s/request.json", dir);
    if (is_file(p))
        return path_push(pl, dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (is_dir(p))
            rc = walk(p, pl);
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------------
 * JSON helpers: each records a load error in the case and returns -1
 * ------------------------------------------------------------------------ */

enum { OPT = 0, REQ = 1, NULLABLE = 2 };

__attribute__((format(printf, 2, 3))) static int fail(struct golden_case *c, const char *fmt, ...)
{
    if (c->load_error[0] != '\0')
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->load_error, sizeof(c->load_error), fmt, ap);
    va_end(ap);
    return -1;
}

static bool in_list(const char *key, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* Unknown members are refused, as the API refuses them, so typos fail loudly. */
static int only_members(struct golden_case *c, json_t *o, const char *what,
                        const char *const *allowed)
{
    if (!json_is_object(o))
        return fail(c, "%s: not an object", what);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (!in_list(key, allowed))
            return fail(c, "%s: unknown member \"%s\"", what, key);
    }
    return 0;
}

/* The member, or NULL when absent (or null and flags allow it); -1 on error. */
static int member(struct golden_case *c, json_t *o, const char *key, int flags, json_t **out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL && (flags & REQ))
        return fail(c, "missing member \"%s\"", key);
    if (json_is_null(v) && !(flags & NULLABLE))
        return fail(c, "member \"%s\" may not be null", key);
    *out = json_is_null(v) ? NULL : v;
    return 0;
}

static int get_str(struct golden_case *c, json_t *o, const char *key, int flags, const char **s,
                   size_t *len)
{
    json_t *v;
    if (member(c, o, key, flags, &v) != 0)
        return -1;
    *s = NULL;
    *len = 0;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return fail(c, "member \"%s\" is not a string", key);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int get_date(struct golden_case *c, json_t *o, const char *key, int flags, date_t *out)
{
    const char *s;
    size_t len;
    *out = DATE_NONE;
    if (get_str(c, o, key, flags, &s, &len) != 0)
        return -1;
    if (s != NULL && date_parse(s, len, out) != 0)
        return fail(c, "member \"%s\": bad date \"%s\"", key, s);
    return 0;
}

static int get_int(struct golden_case *c, json_t *o, const char *key, int flags, int64_t dflt,
                   int64_t *out)
{
    json_t *v;
    if (member(c, o, key, flags, &v) != 0)
        return -1;
    *out = dflt;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return fail(c, "member \"%s\" is not an integer", key);
    *out = json_integer_value(v);
    return 0;
}

static int get_i32(struct golden_case *c, json_t *o, const char *key, int32_t *out)
{
    int64_t v;
    if (get_int(c, o, key, REQ, 0, &v) != 0)
        return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return fail(c, "member \"%s\" out of range", key);
    *out = (int32_t)v;
    return 0;
}

static int get_bool(struct golden_case *c, json_t *o, const char *key, int flags, bool *out)
{
    json_t *v;
    if (member(c, o, key, flags, &v) != 0)
        return -1;
    *out = false;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return fail(c, "member \"%s\" is not a boolean", key);
    *out = json_is_true(v);
    return 0;
}

/*
 * An IMEI that is not 15 characters long cannot be held by the core's
 * char[IMEI_LEN]; it becomes fifteen NULs, which every validator refuses.
 */
static int get_imei(struct golden_case *c, json_t *o, char out[IMEI_LEN])
{
    const char *s;
    size_t len;
    if (get_str(c, o, "imei", REQ, &s, &len) != 0)
        return -1;
    memset(out, 0, IMEI_LEN);
    if (len == IMEI_LEN)
        memcpy(out, s, IMEI_LEN);
    return 0;
}

/* ------------------------------------------------------------------------
 * Inputs: policies, subscription, device, claims, history
 * ------------------------------------------------------------------------ */

static int load_policy_enums(struct golden_case *c, json_t *o, struct policy *p)
{
    const char *s;
    size_t len;
    if (get_str(c, o, "window", REQ, &s, &len) != 0)
        return -1;
    if (policy_window_parse(s, len, &p->window) != 0)
        return fail(c, "policy: bad window \"%s\"", s);
    if (get_str(c, o, "loaner_os", REQ, &s, &len) != 0)
        return -1;
    if (device_os_parse(s, len, &p->loaner_os) != 0)
        return fail(c, "policy: bad loaner_os \"%s\"", s);
    return get_bool(c, o, "ios_exchange", REQ, &p->ios_exchange);
}

static int load_policy_fees(struct golden_case *c, json_t *o, struct policy *p)
{
    json_t *fees = json_object_get(o, "exchange_fees");
    if (!json_is_array(fees) || json_array_size(fees) > POLICY_MAX_USES_MAX)
        return fail(c, "policy: exchange_fees must be an array of at most %d", POLICY_MAX_USES_MAX);
    size_t i;
    json_t *v;
    json_array_foreach(fees, i, v)
    {
        if (!json_is_integer(v))
            return fail(c, "policy: exchange_fees[%zu] is not an integer", i);
        p->exchange_fees[i] = json_integer_value(v);
    }
    p->exchange_fee_count = (int32_t)json_array_size(fees);
    return 0;
}

static int load_policy(struct golden_case *c, json_t *o, struct policy *p)
{
    static const char *const allowed[] = {"name",
                                          "effective_from",
                                          "monthly_fee",
                                          "free_months",
                                          "repair_cap",
                                          "exchange_fees",
                                          "max_uses",
                                          "window",
                                          "natural_failure_months",
                                          "registration_days",
                                          "ios_exchange",
                                          "loaner_os",
                                          NULL};
    const char *name;
    size_t len;
    memset(p, 0, sizeof(*p));
    if (only_members(c, o, "policy", allowed) != 0 || get_str(c, o, "name", REQ, &name, &len) != 0)
        return -1;
    if (len > POLICY_NAME_MAX)
        return fail(c, "policy: name too long");
    memcpy(p->name, name, len);
    if (get_date(c, o, "effective_from", REQ, &p->effective_from) != 0 ||
        get_int(c, o, "monthly_fee", REQ, 0, &p->monthly_fee) != 0 ||
        get_i32(c, o, "free_months", &p->free_months) != 0 ||
        get_int(c, o, "repair_cap", REQ, 0, &p->repair_cap) != 0 ||
        get_i32(c, o, "max_uses", &p->max_uses) != 0 ||
        get_i32(c, o, "natural_failure_months", &p->natural_failure_months) != 0 ||
        get_i32(c, o, "registration_days", &p->registration_days) != 0)
        return -1;
    if (load_policy_fees(c, o, p) != 0)
        return -1;
    return load_policy_enums(c, o, p);
}

/* The request's policies, or the seeded 2025-01 version when it names none. */
static int load_policies(struct golden_case *c, json_t *req)
{
    json_t *arr = json_object_get(req, "policies");
    size_t n = arr == NULL ? 1 : json_array_size(arr);
    if (arr != NULL && (!json_is_array(arr) || n == 0))
        return fail(c, "policies: must be a non-empty array");
    c->policies = calloc(n, sizeof(*c->policies));
    if (c->policies == NULL)
        return fail(c, "out of memory");
    if (arr == NULL)
        policy_default(&c->policies[0]);
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (load_policy(c, json_array_get(arr, i), &c->policies[i]) != 0)
            return -1;
    c->set = (struct policy_set){.v = c->policies, .n = n};
    struct claimd_error err = {0};
    if (policy_set_validate(&c->set, &err) != 0)
        return fail(c, "policies refused by policy_set_validate: %s %s",
                    err.field ? err.field : "?", err.code ? err.code : "?");
    c->facts.policies = &c->set;
    return 0;
}

static int load_subscription(struct golden_case *c, json_t *req)
{
    static const char *const allowed[] = {"subscription_ref",  "applied_on",   "activated_on",
                                          "device_protection", "cancelled_on", NULL};
    json_t *o = json_object_get(req, "subscription");
    struct adj_subscription *s = &c->facts.sub;
    const char *ref;
    size_t len;
    if (o == NULL)
        return fail(c, "missing member \"subscription\"");
    if (only_members(c, o, "subscription", allowed) != 0 ||
        get_str(c, o, "subscription_ref", REQ, &ref, &len) != 0 ||
        get_date(c, o, "applied_on", REQ, &s->applied_on) != 0 ||
        get_date(c, o, "activated_on", NULLABLE, &s->activated_on) != 0 ||
        get_bool(c, o, "device_protection", REQ, &s->option) != 0 ||
        get_date(c, o, "cancelled_on", NULLABLE, &s->cancelled_on) != 0)
        return -1;
    return 0;
}

static int load_device_enums(struct golden_case *c, json_t *o, struct adj_device *d)
{
    const char *s;
    size_t len;
    if (get_str(c, o, "os", REQ, &s, &len) != 0)
        return -1;
    if (device_os_parse(s, len, &d->os) != 0)
        return fail(c, "device: bad os \"%s\"", s);
    if (get_str(c, o, "purchased_from", REQ, &s, &len) != 0)
        return -1;
    if (adj_purchase_parse(s, len, &d->purchased_from) != 0)
        return fail(c, "device: bad purchased_from \"%s\"", s);
    return 0;
}

/* A PUT /v1/subscriptions/{ref}/device body; NULL (JSON null) is no device. */
static int load_device(struct golden_case *c, json_t *o, struct adj_device *d)
{
    static const char *const allowed[] = {
        "imei", "os", "model", "release_date", "purchased_from", "registered_on", NULL};
    const char *model;
    size_t len;
    memset(d, 0, sizeof(*d));
    if (o == NULL || json_is_null(o))
        return 0;
    if (only_members(c, o, "device", allowed) != 0 || get_imei(c, o, d->imei) != 0 ||
        get_str(c, o, "model", REQ, &model, &len) != 0 ||
        get_date(c, o, "release_date", REQ, &d->release_date) != 0 ||
        get_date(c, o, "registered_on", REQ, &d->registered_on) != 0)
        return -1;
    if (len > ADJ_MODEL_MAX)
        return fail(c, "device: model too long");
    memcpy(d->model, model, len);
    d->present = true;
    return load_device_enums(c, o, d);
}

static int load_claim_enums(struct golden_case *c, json_t *o, struct adj_claim *cl)
{
    const char *s;
    size_t len;
    if (get_str(c, o, "cause", REQ, &s, &len) != 0)
        return -1;
    if (adj_cause_parse(s, len, &cl->cause) != 0)
        return fail(c, "claim: bad cause \"%s\"", s);
    if (get_str(c, o, "remedy", REQ, &s, &len) != 0)
        return -1;
    if (adj_remedy_parse(s, len, &cl->remedy) != 0)
        return fail(c, "claim: bad remedy \"%s\"", s);
    if (get_str(c, o, "damage", OPT, &s, &len) != 0)
        return -1;
    cl->damage = ADJ_DAMAGE_NONE;
    if (s != NULL && adj_damage_parse(s, len, &cl->damage) != 0)
        return fail(c, "claim: bad damage \"%s\"", s);
    return 0;
}

/* A POST /v1/claims body; an absent repair_estimate is the core's -1. */
static int load_claim(struct golden_case *c, json_t *o, struct adj_claim *cl)
{
    static const char *const allowed[] = {
        "claim_ref", "subscription_ref", "imei", "incident_on", "cause", "damage",
        "remedy",    "repair_estimate",  NULL};
    const char *ref;
    size_t len;
    memset(cl, 0, sizeof(*cl));
    if (only_members(c, o, "claim", allowed) != 0 ||
        get_str(c, o, "claim_ref", REQ, &ref, &len) != 0 || get_imei(c, o, cl->imei) != 0 ||
        get_date(c, o, "incident_on", REQ, &cl->incident_on) != 0 ||
        get_int(c, o, "repair_estimate", OPT, -1, &cl->repair_estimate) != 0)
        return -1;
    return load_claim_enums(c, o, cl);
}

static int load_status(struct golden_case *c, json_t *o, enum adj_status *out)
{
    const char *s;
    size_t len;
    if (get_str(c, o, "status", REQ, &s, &len) != 0)
        return -1;
    if (strcmp(s, adj_status_name(ADJ_STATUS_APPROVED)) == 0)
        *out = ADJ_STATUS_APPROVED;
    else if (strcmp(s, adj_status_name(ADJ_STATUS_DENIED)) == 0)
        *out = ADJ_STATUS_DENIED;
    else
        return fail(c, "history: bad status \"%s\"", s);
    return 0;
}

static int load_history_entry(struct golden_case *c, json_t *o, size_t i)
{
    static const char *const allowed[] = {
        "claim_ref",       "incident_on", "remedy", "cause",     "damage",
        "repair_estimate", "imei",        "status", "withdrawn", NULL};
    struct adj_history_entry *e = &c->hist[i];
    const char *s;
    size_t len;
    if (only_members(c, o, "history entry", allowed) != 0 ||
        get_str(c, o, "claim_ref", REQ, &s, &len) != 0)
        return -1;
    if (len > GOLDEN_REF_MAX)
        return fail(c, "history: claim_ref too long");
    memcpy(c->hist_refs[i], s, len);
    if (get_date(c, o, "incident_on", REQ, &e->incident_on) != 0 ||
        get_bool(c, o, "withdrawn", OPT, &e->withdrawn) != 0 ||
        load_status(c, o, &e->status) != 0 || get_str(c, o, "remedy", REQ, &s, &len) != 0)
        return -1;
    if (adj_remedy_parse(s, len, &e->remedy) != 0)
        return fail(c, "history: bad remedy \"%s\"", s);
    e->tag = i;
    return 0;
}

static int load_history(struct golden_case *c, json_t *arr)
{
    if (!json_is_array(arr))
        return fail(c, "history.json: not an array");
    c->hist_len = json_array_size(arr);
    c->hist = calloc(c->hist_len + 1, sizeof(*c->hist));
    c->hist_refs = calloc(c->hist_len + 1, sizeof(*c->hist_refs));
    if (c->hist == NULL || c->hist_refs == NULL)
        return fail(c, "out of memory");
    for (size_t i = 0; i < c->hist_len; i++)
        if (load_history_entry(c, json_array_get(arr, i), i) != 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------------
 * The request: its operation and that operation's members
 * ------------------------------------------------------------------------ */

static const char *const op_names[] = {"claim",  "batch",  "register", "activate",
                                       "cancel", "create", "state",    NULL};

/* The op-specific members each operation takes. */
static const char *const op_members[][3] = {
    [GOLDEN_OP_CLAIM] = {"claim", NULL},
    [GOLDEN_OP_BATCH] = {"claims", NULL},
    [GOLDEN_OP_REGISTER] = {"registration", "imei_facts", NULL},
    [GOLDEN_OP_ACTIVATE] = {"activated_on", NULL},
    [GOLDEN_OP_CANCEL] = {"cancelled_on", NULL},
    [GOLDEN_OP_CREATE] = {NULL},
    [GOLDEN_OP_STATE] = {"on", NULL},
};

static int load_op(struct golden_case *c, json_t *req)
{
    static const char *const allowed[] = {
        "note",       "core_only",    "today",        "policies", "subscription",
        "device",     "op",           "claim",        "claims",   "registration",
        "imei_facts", "activated_on", "cancelled_on", "on",       NULL};
    static const char *const op_specific[] = {
        "claim",        "claims",       "registration", "imei_facts",
        "activated_on", "cancelled_on", "on",           NULL};
    const char *s;
    size_t len;
    int op = -1;
    if (only_members(c, req, "request", allowed) != 0 || get_str(c, req, "op", REQ, &s, &len) != 0)
        return -1;
    for (int i = 0; op_names[i] != NULL; i++)
        if (strcmp(s, op_names[i]) == 0)
            op = i;
    if (op < 0)
        return fail(c, "request: unknown op \"%s\"", s);
    c->op = (enum golden_op)op;
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        if (in_list(key, op_specific) && !in_list(key, op_members[c->op]))
            return fail(c, "request: member \"%s\" does not belong to op %s", key, s);
    }
    return 0;
}

static int alloc_claims(struct golden_case *c, size_t n)
{
    c->claim_count = n;
    c->claims = calloc(n + 1, sizeof(*c->claims));
    c->got.outcomes = calloc(n + 1, sizeof(*c->got.outcomes));
    c->work = calloc(c->hist_len + n + 1, sizeof(*c->work));
    c->got.use_idx = calloc(c->hist_len + 1, sizeof(*c->got.use_idx));
    if (c->claims == NULL || c->got.outcomes == NULL || c->work == NULL || c->got.use_idx == NULL)
        return fail(c, "out of memory");
    return 0;
}

static int load_claims(struct golden_case *c, json_t *req)
{
    json_t *one = json_object_get(req, "claim");
    json_t *many = json_object_get(req, "claims");
    if (c->op == GOLDEN_OP_CLAIM && one == NULL)
        return fail(c, "missing member \"claim\"");
    if (c->op == GOLDEN_OP_BATCH && !json_is_array(many))
        return fail(c, "member \"claims\" must be an array");
    size_t n = c->op == GOLDEN_OP_CLAIM ? 1 : json_array_size(many);
    if (alloc_claims(c, n) != 0)
        return -1;
    if (c->op == GOLDEN_OP_CLAIM)
        return load_claim(c, one, &c->claims[0]);
    for (size_t i = 0; i < n; i++)
        if (load_claim(c, json_array_get(many, i), &c->claims[i]) != 0)
            return -1;
    return 0;
}

static int load_registration(struct golden_case *c, json_t *req)
{
    static const char *const allowed[] = {"covered_on_cancelled_option", "live_elsewhere", NULL};
    json_t *reg = json_object_get(req, "registration");
    json_t *facts = json_object_get(req, "imei_facts");
    if (reg == NULL || json_is_null(reg))
        return fail(c, "missing member \"registration\"");
    if (load_device(c, reg, &c->reg) != 0)
        return -1;
    if (facts == NULL)
        return 0;
    if (only_members(c, facts, "imei_facts", allowed) != 0 ||
        get_bool(c, facts, "covered_on_cancelled_option", REQ,
                 &c->imei_facts.covered_on_cancelled_option) != 0 ||
        get_bool(c, facts, "live_elsewhere", REQ, &c->imei_facts.live_elsewhere) != 0)
        return -1;
    return 0;
}

static int load_op_args(struct golden_case *c, json_t *req)
{
    switch (c->op) {
    case GOLDEN_OP_CLAIM:
    case GOLDEN_OP_BATCH:
        return load_claims(c, req);
    case GOLDEN_OP_REGISTER:
        return load_registration(c, req);
    case GOLDEN_OP_ACTIVATE:
        return get_date(c, req, "activated_on", REQ, &c->date_arg);
    case GOLDEN_OP_CANCEL:
        return get_date(c, req, "cancelled_on", REQ, &c->date_arg);
    case GOLDEN_OP_CREATE:
        return 0;
    case GOLDEN_OP_STATE:
        return get_date(c, req, "on", REQ, &c->date_arg);
    }
    return fail(c, "unknown op");
}

static json_t *load_json(struct golden_case *c, const char *name)
{
    char p[GOLDEN_PATH_MAX + 32];
    json_error_t jerr;
    snprintf(p, sizeof(p), "%s/%s", c->path, name);
    json_t *v = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        fail(c, "%s: %s (line %d)", name, jerr.text, jerr.line);
    return v;
}

static int load_request(struct golden_case *c, json_t *req)
{
    if (load_op(c, req) != 0 || get_date(c, req, "today", REQ, &c->facts.today) != 0 ||
        load_policies(c, req) != 0 || load_subscription(c, req) != 0 ||
        load_device(c, json_object_get(req, "device"), &c->facts.device) != 0)
        return -1;
    if (c->op != GOLDEN_OP_CLAIM && c->op != GOLDEN_OP_BATCH && alloc_claims(c, 0) != 0)
        return -1;
    return load_op_args(c, req);
}

static void load_case(struct golden_case *c, const char *dir)
{
    snprintf(c->path, sizeof(c->path), "%s", dir);
    json_t *req = load_json(c, "request.json");
    json_t *hist = load_json(c, "history.json");
    c->expected = load_json(c, "expected.json");
    if (req != NULL && hist != NULL && c->expected != NULL) {
        if (!json_is_object(c->expected))
            fail(c, "expected.json: not an object");
        else if (load_history(c, hist) == 0)
            load_request(c, req);
    }
    json_decref(req);
    json_decref(hist);
}

long golden_load_all(const char *root, struct golden_case **out)
{
    struct path_list pl = {0};
    long n = -1;
    *out = NULL;
    if (walk(root, &pl) != 0)
        goto out;
    qsort(pl.v, pl.n, sizeof(*pl.v), cmp_str);
    *out = calloc(pl.n + 1, sizeof(**out));
    if (*out == NULL)
        goto out;
    for (size_t i = 0; i < pl.n; i++)
        load_case(&(*out)[i], pl.v[i]);
    n = (long)pl.n;
out:
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
    return n;
}

void golden_free_all(struct golden_case *cases, size_t n)
{
    for (size_t i = 0; cases != NULL && i < n; i++) {
        struct golden_case *c = &cases[i];
        json_decref(c->expected);
        free(c->policies);
        free(c->hist);
        free(c->hist_refs);
        free(c->work);
        free(c->claims);
        free(c->got.outcomes);
        free(c->got.use_idx);
    }
    free(cases);
}

/* ------------------------------------------------------------------------
 * Running: core calls only, never an allocation
 * ------------------------------------------------------------------------ */

static void run_batch(struct golden_case *c)
{
    if (c->hist_len > 0)
        memcpy(c->work, c->hist, c->hist_len * sizeof(*c->work));
    c->work_hist = (struct adj_history){
        .entries = c->work, .len = c->hist_len, .cap = c->hist_len + c->claim_count};
    c->got.rc =
        adj_decide_batch(&c->facts, &c->work_hist, c->claims, c->claim_count, c->got.outcomes);
}

/*
 * The state's uses are listed as a caller lists them: the approved, not
 * withdrawn entries whose incident falls in the window sub_state_on chose.
 */
static void run_state(struct golden_case *c)
{
    struct golden_got *g = &c->got;
    struct adj_history h = {.entries = c->hist, .len = c->hist_len, .cap = c->hist_len};
    g->rc = sub_state_on(&c->set, &c->facts.sub, &c->facts.device, &h, c->date_arg, &g->state);
    g->fee_for_month = sub_fee_for_month(&c->set, &c->facts.sub, c->date_arg);
    g->use_count = 0;
    if (g->rc != 0)
        return;
    for (size_t i = 0; i < c->hist_len; i++) {
        const struct adj_history_entry *e = &c->hist[i];
        if (e->status == ADJ_STATUS_APPROVED && !e->withdrawn &&
            e->incident_on >= g->state.window.start && e->incident_on <= g->state.window.end)
            g->use_idx[g->use_count++] = i;
    }
}

void golden_run(struct golden_case *c)
{
    struct golden_got *g = &c->got;
    struct adj_history h = {.entries = c->hist, .len = c->hist_len, .cap = c->hist_len};
    if (c->load_error[0] != '\0')
        return;
    switch (c->op) {
    case GOLDEN_OP_CLAIM:
        g->rc = adj_decide(&c->facts, &h, &c->claims[0], &g->decision, &g->err);
        break;
    case GOLDEN_OP_BATCH:
        run_batch(c);
        break;
    case GOLDEN_OP_REGISTER:
        g->verdict =
            sub_check_register(&c->set, &c->facts.sub, &c->facts.device, &c->reg, &c->imei_facts);
        break;
    case GOLDEN_OP_ACTIVATE:
        g->verdict = sub_check_activate(&c->facts.sub, c->date_arg);
        break;
    case GOLDEN_OP_CANCEL:
        g->verdict = sub_check_cancel(&c->facts.sub, c->date_arg);
        break;
    case GOLDEN_OP_CREATE:
        g->verdict = sub_check_create(&c->facts.sub);
        break;
    case GOLDEN_OP_STATE:
        run_state(c);
        break;
    }
}

/* ------------------------------------------------------------------------
 * Checking: the answer as JSON, compared member by member
 * ------------------------------------------------------------------------ */

static json_t *date_json(date_t d)
{
    char s[DATE_STR_SIZE];
    if (d == DATE_NONE)
        return json_null();
    date_format(d, s);
    return json_string(s);
}

static json_t *str_or_null(const char *s)
{
    return s == NULL ? json_null() : json_string(s);
}

static json_t *window_json(struct window w)
{
    return json_pack("{s:o, s:o}", "start", date_json(w.start), "end", date_json(w.end));
}

static json_t *refusal_json(int rc)
{
    return json_pack("{s:s, s:s}", "result", "refused", "code", claimd_rc_name(rc));
}

static json_t *decision_json(const struct adj_decision *d)
{
    json_t *reasons = json_array();
    for (int r = 0; r < ADJ_R_COUNT; r++)
        if (d->reasons & (1u << r))
            json_array_append_new(reasons, json_string(adj_reason_name((enum adj_reason)r)));
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:o, s:i, s:o, s:o, s:o}", "result", "decision",
                     "status", adj_status_name(d->status), "reasons", reasons, "covered_amount",
                     (json_int_t)d->covered_amount, "customer_charge",
                     (json_int_t)d->customer_charge, "use_number",
                     d->use_number == 0 ? json_null() : json_integer(d->use_number),
                     "uses_remaining", (int)d->uses_remaining, "window", window_json(d->window),
                     "loaner", str_or_null(adj_loaner_name(d->loaner)), "policy_version",
                     str_or_null(d->policy ? d->policy->name : NULL));
}

static json_t *outcome_json(int rc, const struct adj_decision *d)
{
    return rc == 0 ? decision_json(d) : refusal_json(rc);
}

static json_t *state_json(const struct golden_case *c)
{
    const struct golden_got *g = &c->got;
    const struct sub_state *st = &g->state;
    json_t *uses = json_array();
    json_t *free_months = json_array();
    for (size_t i = 0; i < g->use_count; i++)
        json_array_append_new(uses, json_string(c->hist_refs[g->use_idx[i]]));
    for (int32_t i = 0; i < st->free_month_count && i < POLICY_FREE_MONTHS_MAX; i++) {
        char m[DATE_MONTH_STR_SIZE];
        date_format_month(st->free_months[i], m);
        json_array_append_new(free_months, json_string(m));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:o, s:I, s:o, s:I}", "result", "state",
                     "option_status", sub_option_status_name(st->option_status), "policy_version",
                     str_or_null(st->policy ? st->policy->name : NULL), "window",
                     window_json(st->window), "uses", uses, "uses_remaining",
                     (int)st->uses_remaining, "next_exchange_fee",
                     st->next_exchange_fee < 0 ? json_null() : json_integer(st->next_exchange_fee),
                     "monthly_fee", (json_int_t)st->monthly_fee, "free_months", free_months,
                     "fee_for_month", (json_int_t)st->fee_for_month);
}

static json_t *got_json(const struct golden_case *c)
{
    const struct golden_got *g = &c->got;
    switch (c->op) {
    case GOLDEN_OP_CLAIM:
        return outcome_json(g->rc, &g->decision);
    case GOLDEN_OP_BATCH: {
        if (g->rc != 0)
            return refusal_json(g->rc);
        json_t *results = json_array();
        for (size_t i = 0; i < c->claim_count; i++)
            json_array_append_new(results,
                                  outcome_json(g->outcomes[i].rc, &g->outcomes[i].decision));
        return json_pack("{s:o}", "results", results);
    }
    case GOLDEN_OP_STATE:
        return g->rc == 0 ? state_json(c) : refusal_json(g->rc);
    default:
        return json_pack("{s:s}", "verdict", sub_verdict_name(g->verdict));
    }
}

struct diff {
    char *msg;
    size_t len;
    size_t used;
    int count;
};

__attribute__((format(printf, 2, 3))) static void diff_add(struct diff *d, const char *fmt, ...)
{
    d->count++;
    if (d->used + 1 >= d->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(d->msg + d->used, d->len - d->used, fmt, ap);
    va_end(ap);
    if (w > 0)
        d->used += (size_t)w < d->len - d->used ? (size_t)w : d->len - d->used - 1;
}

static void diff_values(struct diff *d, const char *path, json_t *exp, json_t *got)
{
    char *e = json_dumps(exp, JSON_ENCODE_ANY | JSON_COMPACT);
    char *g = got ? json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    diff_add(d, "\n  %s: expected %s, got %s", path, e ? e : "?", g ? g : "(absent)");
    free(e);
    free(g);
}

static bool holds_objects(json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_object(v))
            return true;
    }
    return false;
}

/*
 * Objects compare only the members expected.json names; arrays of objects
 * (batch results) compare element by element, so a message names the member;
 * anything else must be equal as a whole.
 */
static void compare(struct diff *d, const char *path, json_t *exp, json_t *got)
{
    char sub[256];
    if (json_is_object(exp) && json_is_object(got)) {
        const char *key;
        json_t *v;
        json_object_foreach(exp, key, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
            compare(d, sub, v, json_object_get(got, key));
        }
        return;
    }
    if (json_is_array(exp) && json_is_array(got) && holds_objects(exp) &&
        json_array_size(exp) == json_array_size(got)) {
        for (size_t i = 0; i < json_array_size(exp); i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            compare(d, sub, json_array_get(exp, i), json_array_get(got, i));
        }
        return;
    }
    if (got == NULL || !json_equal(exp, got))
        diff_values(d, path, exp, got);
}

/* What the state must agree with besides expected.json. */
static void check_state_consistency(const struct golden_case *c, struct diff *d)
{
    const struct golden_got *g = &c->got;
    if (c->op != GOLDEN_OP_STATE || g->rc != 0)
        return;
    if ((size_t)g->state.uses != g->use_count)
        diff_add(d, "\n  sub_state.uses is %d but the window holds %zu uses", (int)g->state.uses,
                 g->use_count);
    if (g->fee_for_month != g->state.fee_for_month)
        diff_add(d, "\n  sub_fee_for_month gives %lld, sub_state.fee_for_month %lld",
                 (long long)g->fee_for_month, (long long)g->state.fee_for_month);
}

bool golden_check(const struct golden_case *c, char *msg, size_t len)
{
    struct diff d = {.msg = msg, .len = len};
    msg[0] = '\0';
    if (c->load_error[0] != '\0') {
        diff_add(&d, "cannot load: %s", c->load_error);
        return false;
    }
    json_t *got = got_json(c);
    if (got == NULL) {
        diff_add(&d, "cannot build the answer as JSON");
        return false;
    }
    compare(&d, "", c->expected, got);
    check_state_consistency(c, &d);
    json_decref(got);
    return d.count == 0;
}
