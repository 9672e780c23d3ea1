/*
 * claimbench's claims: the configured mix, the JSON bodies it sends, and the
 * checks of every answer against the contract (api.md) and policy 2025-01.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "claimbench.h"

#define WINDOW_DAYS 300 /* cold claims fall in the last WINDOW_DAYS days, as in naive_claim.sql */
#define HOT_DAYS    7   /* hot claims fall in the last week: one window fills up */
#define EST_MIN     1000

/* ------------------------------------------------------------------------
 * The claim table: chunks, numbered in the order the claims were made
 * ------------------------------------------------------------------------ */

struct cb_claim *cb_claim_at(struct cb *b, uint64_t num)
{
    size_t chunk = (size_t)(num / CB_CHUNK_CLAIMS);
    if (chunk >= b->nchunks) {
        size_t n = b->nchunks > 0 ? b->nchunks : 64;
        while (n <= chunk)
            n *= 2;
        struct cb_claim **c = realloc(b->chunks, n * sizeof(struct cb_claim *));
        if (c == NULL)
            goto oom;
        memset(c + b->nchunks, 0, (n - b->nchunks) * sizeof(struct cb_claim *));
        b->chunks = c;
        b->nchunks = n;
    }
    if (b->chunks[chunk] == NULL) {
        b->chunks[chunk] = calloc(CB_CHUNK_CLAIMS, sizeof(struct cb_claim));
        if (b->chunks[chunk] == NULL)
            goto oom;
    }
    return &b->chunks[chunk][num % CB_CHUNK_CLAIMS];
oom:
    fputs("claimbench: out of memory for the claim table\n", stderr);
    exit(2);
}

/* ------------------------------------------------------------------------
 * The mix
 * ------------------------------------------------------------------------ */

/* The next cold subscription of that OS, round robin, so that each gets few claims. */
static uint32_t pick_cold(struct cb *b, int ios)
{
    if (b->ncold[ios] == 0)
        ios = !ios;
    if (b->ncold[ios] == 0)
        return cb_rand(b, (uint32_t)b->nsubs);
    uint32_t s = b->cold[ios][b->cursor[ios]];
    b->cursor[ios] = (b->cursor[ios] + 1) % b->ncold[ios];
    return s;
}

/* An incident on a covered day: within the last WINDOW_DAYS, never before `first`. */
static date_t pick_incident(struct cb *b, const struct cb_sub *s, bool hot)
{
    date_t lo = b->today - (hot ? HOT_DAYS : WINDOW_DAYS);
    if (lo < s->first)
        lo = s->first;
    if (lo > b->today)
        lo = b->today;
    return lo + (date_t)cb_rand(b, (uint32_t)(b->today - lo + 1));
}

static void make_claim(struct cb *b, struct cb_claim *c)
{
    const struct cb_mix *m = &b->opt.mix;
    bool hot = m->hot_subs > 0 && cb_rand01(b) < m->hot;
    size_t hot_n = m->hot_subs < b->nsubs ? m->hot_subs : b->nsubs;
    c->sub = hot ? cb_rand(b, (uint32_t)hot_n) : pick_cold(b, cb_rand01(b) < m->ios);
    c->incident = pick_incident(b, &b->subs[c->sub], hot);
    bool physical = cb_rand01(b) < m->physical;
    c->cause = physical ? ADJ_CAUSE_PHYSICAL_DAMAGE : ADJ_CAUSE_NATURAL_FAILURE;
    c->damage = physical ? (uint8_t)(ADJ_DAMAGE_SCREEN + cb_rand(b, 4)) : ADJ_DAMAGE_NONE;
    c->remedy = cb_rand01(b) < m->exchange ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
    int64_t cap = m->cap > EST_MIN ? m->cap : EST_MIN;
    if (c->remedy == ADJ_REMEDY_EXCHANGE)
        c->estimate = -1;
    else if (cb_rand01(b) < m->over_cap)
        c->estimate = (int32_t)(cap + 1 + cb_rand(b, (uint32_t)(2 * cap)));
    else
        c->estimate = (int32_t)(EST_MIN + cb_rand(b, (uint32_t)(cap - EST_MIN + 1)));
    c->outcome = OUT_SENT;
}

void cb_next_item(struct cb *b, struct cb_item *it)
{
    if (b->ring_len > 0 && cb_rand01(b) < b->opt.mix.replay) {
        it->num = b->ring[cb_rand(b, (uint32_t)b->ring_len)];
        it->replay = true;
        return;
    }
    it->num = b->next_claim++;
    it->replay = false;
    make_claim(b, cb_claim_at(b, it->num));
}

size_t cb_claim_json(struct cb *b, const struct cb_item *it, char *out, size_t cap)
{
    const struct cb_claim *c = cb_claim_at(b, it->num);
    const struct cb_sub *s = &b->subs[c->sub];
    char date[DATE_STR_SIZE], damage[48] = "", estimate[48] = "";
    date_format(c->incident, date);
    if (c->damage != ADJ_DAMAGE_NONE)
        snprintf(damage, sizeof(damage), ",\"damage\":\"%s\"",
                 adj_damage_name((enum adj_damage)c->damage));
    if (c->estimate >= 0)
        snprintf(estimate, sizeof(estimate), ",\"repair_estimate\":%" PRId32, c->estimate);
    int n = snprintf(out, cap,
                     "{\"claim_ref\":\"%s%" PRIu64 "\",\"subscription_ref\":\"%s\",\"imei\":\"%s\","
                     "\"incident_on\":\"%s\",\"cause\":\"%s\"%s,\"remedy\":\"%s\"%s}",
                     b->prefix, it->num, s->ref, s->imei, date,
                     adj_cause_name((enum adj_cause)c->cause), damage,
                     adj_remedy_name((enum adj_remedy)c->remedy), estimate);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ------------------------------------------------------------------------
 * Checking a decision
 * ------------------------------------------------------------------------ */

static bool is_int(json_t *v)
{
    return v != NULL && json_is_integer(v);
}

/* The reasons as a bit set; false when one is not a reason code. */
static bool read_reasons(json_t *arr, uint32_t *bits)
{
    size_t i;
    json_t *v;
    *bits = 0;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, v)
    {
        enum adj_reason r;
        if (!json_is_string(v) ||
            adj_reason_parse(json_string_value(v), json_string_length(v), &r) != 0)
            return false;
        *bits |= 1u << r;
    }
    return true;
}

static bool window_ok(json_t *w)
{
    return json_is_object(w) && json_is_string(json_object_get(w, "start")) &&
           json_is_string(json_object_get(w, "end"));
}

/* The amounts of policy 2025-01's rules: the cap on repairs, fees on exchanges. */
static bool amounts_ok(const struct cb *b, const struct cb_claim *c, bool approved,
                       uint32_t reasons, json_int_t covered, json_int_t charge)
{
    if (!approved)
        return covered == 0 && charge == 0;
    if (c->remedy == ADJ_REMEDY_EXCHANGE)
        return covered == 0 && charge > 0;
    json_int_t cap = b->opt.mix.cap;
    json_int_t want = c->estimate < cap ? c->estimate : cap;
    bool over = (reasons & (1u << ADJ_R_CAP_EXCEEDED)) != 0;
    return covered == want && charge == c->estimate - want && over == (c->estimate > cap);
}

/*
 * One decision object against the claim it answers. Returns false when a
 * member is missing or wrong; fills *status, *use_number and *reasons.
 */
static bool decision_ok(struct cb *b, uint64_t num, json_t *o, enum adj_status *status,
                        int *use_number, uint32_t *reasons)
{
    char ref[CB_REF_MAX + 1];
    const struct cb_claim *c = cb_claim_at(b, num);
    snprintf(ref, sizeof(ref), "%s%" PRIu64, b->prefix, num);
    json_t *st = json_object_get(o, "status"), *use = json_object_get(o, "use_number");
    json_t *cov = json_object_get(o, "covered_amount"),
           *chg = json_object_get(o, "customer_charge");
    const char *cref = json_string_value(json_object_get(o, "claim_ref"));
    if (cref == NULL || strcmp(cref, ref) != 0 || !json_is_string(st) || !is_int(cov) ||
        !is_int(chg) || !is_int(json_object_get(o, "uses_remaining")) ||
        !window_ok(json_object_get(o, "window")) ||
        !json_is_string(json_object_get(o, "decided_at")) ||
        !json_is_string(json_object_get(o, "policy_version")) ||
        !read_reasons(json_object_get(o, "reasons"), reasons))
        return false;
    bool approved = strcmp(json_string_value(st), "approved") == 0;
    if (!approved && strcmp(json_string_value(st), "denied") != 0)
        return false;
    *status = approved ? ADJ_STATUS_APPROVED : ADJ_STATUS_DENIED;
    if (approved ? !is_int(use) || json_integer_value(use) < 1 : !json_is_null(use))
        return false;
    *use_number = approved ? (int)json_integer_value(use) : 0;
    if (!approved && (*reasons & ~(1u << ADJ_R_CAP_EXCEEDED)) == 0)
        return false; /* a denial names at least one failed rule */
    return amounts_ok(b, c, approved, *reasons, json_integer_value(cov), json_integer_value(chg));
}

static void count_error(struct cb *b, enum cb_error e)
{
    b->run->errors[e]++;
    b->tick_errors++;
}

/* A decision for one item: stored now, or a replay that must match what was stored. */
static size_t take_decision(struct cb *b, const struct cb_item *it, json_t *o, bool measured)
{
    enum adj_status status;
    int use;
    uint32_t reasons;
    struct cb_run *run = b->run;
    if (!decision_ok(b, it->num, o, &status, &use, &reasons)) {
        char *s = json_dumps(o, JSON_COMPACT);
        cb_example(run, "wrong decision", s != NULL ? s : "?", s != NULL ? strlen(s) : 1);
        free(s);
        count_error(b, ERR_MALFORMED);
        return 0;
    }
    struct cb_claim *c = cb_claim_at(b, it->num);
    if (it->replay) {
        if (c->status != status || c->use_number != use) {
            cb_example(run, "replay differs", json_string_value(json_object_get(o, "status")),
                       strlen(json_string_value(json_object_get(o, "status"))));
            count_error(b, ERR_MISMATCH);
        }
        run->replays += measured;
        return 0;
    }
    c->outcome = OUT_STORED;
    c->status = (uint8_t)status;
    c->use_number = (int8_t)use;
    b->ring[b->ring_pos] = it->num;
    b->ring_pos = (b->ring_pos + 1) % CB_REPLAY_RING;
    b->ring_len += b->ring_len < CB_REPLAY_RING;
    b->stored_total++;
    if (measured) {
        run->approved += status == ADJ_STATUS_APPROVED;
        run->denied += status == ADJ_STATUS_DENIED;
        for (int r = 0; r < ADJ_R_COUNT; r++)
            run->reasons[r] += (reasons >> r) & 1u;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Checking an answer
 * ------------------------------------------------------------------------ */

static void refuse_items(struct cb *b, const struct cb_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!items[i].replay)
            cb_claim_at(b, items[i].num)->outcome = OUT_REFUSED;
    }
}

/* A batch's results: one decision or one problem object per claim, in order. */
static size_t take_batch(struct cb *b, const struct cb_item *items, size_t n, json_t *doc,
                         bool measured, const char *body, size_t len)
{
    json_t *results = json_object_get(doc, "results");
    size_t stored = 0;
    if (!json_is_array(results) || json_array_size(results) != n) {
        cb_example(b->run, "batch answer", body, len);
        count_error(b, ERR_MALFORMED);
        refuse_items(b, items, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(results, i);
        if (json_is_object(o) && json_object_get(o, "code") != NULL) {
            char *s = json_dumps(o, JSON_COMPACT);
            cb_example(b->run, "batch item problem", s != NULL ? s : "?", s ? strlen(s) : 1);
            free(s);
            count_error(b, ERR_ITEM);
            refuse_items(b, &items[i], 1);
        } else if (json_is_object(o)) {
            stored += take_decision(b, &items[i], o, measured);
        } else {
            count_error(b, ERR_MALFORMED);
        }
    }
    return stored;
}

/* The status a request of these items must get. */
static int expected_status(const struct cb *b, const struct cb_item *items)
{
    if (b->opt.batch > 0)
        return 200;
    return items[0].replay ? 200 : 201;
}

/*
 * Every answer is parsed. A 2xx must carry the decisions; anything else is
 * an error, counted by kind (5xx, unexpected status, malformed). Returns the
 * number of new decisions the answer stored.
 */
size_t cb_check_answer(struct cb *b, const struct cb_item *items, size_t n, int status,
                       const char *body, size_t len, bool measured)
{
    struct cb_run *run = b->run;
    json_error_t jerr;
    if (measured && status >= 0 && status < CB_STATUS_MAX)
        run->status[status]++;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    size_t stored = 0;
    if (doc == NULL || !json_is_object(doc)) {
        cb_example(run, status >= 500 ? "5xx, not JSON" : "not a JSON object", body, len);
        count_error(b, status >= 500 ? ERR_5XX : ERR_MALFORMED);
        refuse_items(b, items, n);
    } else if (status != expected_status(b, items)) {
        char what[32];
        snprintf(what, sizeof(what), "status %d", status);
        cb_example(run, what, body, len);
        count_error(b, status >= 500 ? ERR_5XX : ERR_STATUS);
        refuse_items(b, items, n);
    } else if (b->opt.batch > 0) {
        stored = take_batch(b, items, n, doc, measured, body, len);
    } else {
        stored = take_decision(b, &items[0], doc, measured);
    }
    json_decref(doc);
    return stored;
}
