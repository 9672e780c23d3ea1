/*
 * The claim routes: decide and record one claim (through the pipeline), a
 * quote (decided, not recorded), a batch of up to 1000, a recorded claim,
 * and its withdrawal. Bodies are decoded strictly; decisions come from the
 * core, via the pipeline or the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"

#define BATCH_MAX ADJ_BATCH_MAX

/* A batch in progress: its claims, their results and the count still out. */
struct api_batch {
    struct api_ctx *ctx;
    size_t n;
    size_t pending;
    struct pipeline_req *reqs;
    struct jsonr *errors; /* per claim; nerrors 0 for a claim that went to the pipeline */
    const char **refs;    /* per claim: its claim_ref as sent (even an invalid one), or NULL */
    bool unavailable;     /* a claim met a database failure: the answer is 503 */
};

/* ------------------------------------------------------------------------
 * Reading a claim
 * ------------------------------------------------------------------------ */

static bool reserved(const char *ref, size_t len)
{
    return (len == 5 && memcmp(ref, "quote", 5) == 0) || (len == 5 && memcmp(ref, "batch", 5) == 0);
}

static void read_ref(struct jsonr *r, const char *name, char out[REF_MAX + 1], bool check_reserved)
{
    size_t len = 0;
    const char *ref = jsonr_string(r, name, true, &len);
    if (ref == NULL)
        return;
    if (!pipeline_ref_valid(ref, len) || (check_reserved && reserved(ref, len)))
        jsonr_fail(r, name, "invalid_field");
    else
        memcpy(out, ref, len + 1);
}

static void read_imei(struct jsonr *r, char out[IMEI_LEN])
{
    size_t len = 0;
    const char *imei = jsonr_string(r, "imei", true, &len);
    if (imei != NULL && imei_validate(imei, len) != 0)
        jsonr_fail(r, "imei", "invalid_imei");
    else if (imei != NULL)
        memcpy(out, imei, IMEI_LEN);
}

/* damage: required for physical damage, refused for natural failure (null is absent). */
static void read_damage(struct jsonr *r, struct adj_claim *c, bool cause_ok)
{
    static const char *const names[] = {NULL, "screen", "water", "total_loss", "other"};
    json_t *v = jsonr_get(r, "damage", false);
    bool given = v != NULL && !json_is_null(v);
    c->damage = ADJ_DAMAGE_NONE;
    if (!cause_ok) {
        if (given)
            c->damage = (enum adj_damage)jsonr_enum(r, "damage", false, names, 5);
        return;
    }
    if (c->cause == ADJ_CAUSE_PHYSICAL_DAMAGE && !given) {
        jsonr_fail(r, "damage", "missing_field");
    } else if (c->cause == ADJ_CAUSE_NATURAL_FAILURE && given) {
        jsonr_fail(r, "damage", "invalid_field");
    } else if (given) {
        int d = jsonr_enum(r, "damage", false, names, 5);
        c->damage = d > 0 ? (enum adj_damage)d : ADJ_DAMAGE_NONE;
    }
}

/* repair_estimate: required for a repair (0-10,000,000), refused for an exchange. */
static void read_estimate(struct jsonr *r, struct adj_claim *c, bool remedy_ok)
{
    json_t *v = jsonr_get(r, "repair_estimate", false);
    bool given = v != NULL && !json_is_null(v), present;
    c->repair_estimate = -1;
    if (remedy_ok && c->remedy == ADJ_REMEDY_REPAIR && !given) {
        jsonr_fail(r, "repair_estimate", "missing_field");
    } else if (remedy_ok && c->remedy == ADJ_REMEDY_EXCHANGE && given) {
        jsonr_fail(r, "repair_estimate", "invalid_field");
    } else if (given) {
        int64_t e = jsonr_int(r, "repair_estimate", false, 0, ADJ_ESTIMATE_MAX, &present);
        c->repair_estimate = present ? e : -1;
    }
}

/*
 * The members of a claim body in api.md's order: claim_ref (not for a quote,
 * where it is ignored), subscription_ref, imei, incident_on, cause, damage,
 * remedy, repair_estimate; unknown members last.
 */
static void read_claim(struct jsonr *r, struct pipeline_req *q, bool quote)
{
    static const char *const causes[] = {"natural_failure", "physical_damage"};
    static const char *const remedies[] = {"repair", "exchange"};
    if (quote)
        jsonr_get(r, "claim_ref", false);
    else
        read_ref(r, "claim_ref", q->claim_ref, true);
    read_ref(r, "subscription_ref", q->subscription_ref, false);
    read_imei(r, q->claim.imei);
    q->claim.incident_on = jsonr_date(r, "incident_on", true, false);
    int cause = jsonr_enum(r, "cause", true, causes, 2);
    q->claim.cause = cause == 1 ? ADJ_CAUSE_PHYSICAL_DAMAGE : ADJ_CAUSE_NATURAL_FAILURE;
    read_damage(r, &q->claim, cause >= 0);
    int remedy = jsonr_enum(r, "remedy", true, remedies, 2);
    q->claim.remedy = remedy == 1 ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
    read_estimate(r, &q->claim, remedy >= 0);
    jsonr_finish(r);
}

static date_t today(const struct api *api)
{
    return api->store.today != DATE_NONE ? api->store.today
                                         : date_japan_of_unix((int64_t)time(NULL));
}

/* Members, then the incident date against today in Japan (400 incident_in_future). */
static bool claim_valid(struct api *api, struct jsonr *r, struct pipeline_req *q, bool quote)
{
    read_claim(r, q, quote);
    if (r->nerrors == 0 && q->claim.incident_on > today(api))
        jsonr_fail(r, "incident_on", "incident_in_future");
    return r->nerrors == 0;
}

/* ------------------------------------------------------------------------
 * Writing decisions
 * ------------------------------------------------------------------------ */

static void write_reasons(struct jsonw *w, uint32_t reasons)
{
    jsonw_begin_array(w);
    for (int i = 0; i < ADJ_R_COUNT; i++) {
        if (reasons & (1u << i))
            jsonw_str(w, adj_reason_name((enum adj_reason)i));
    }
    jsonw_end_array(w);
}

static void write_nullable(struct jsonw *w, int64_t v, int64_t null_value)
{
    if (v == null_value)
        jsonw_null(w);
    else
        jsonw_int(w, v);
}

/* The members every decision shows, from "remedy" to "policy_version". */
static void write_outcome(struct jsonw *w, const struct claim_record *rec)
{
    jsonw_key(w, "remedy");
    jsonw_str(w, adj_remedy_name(rec->remedy));
    jsonw_key(w, "repair_estimate");
    write_nullable(w, rec->repair_estimate, -1);
    jsonw_key(w, "covered_amount");
    jsonw_int(w, rec->covered_amount);
    jsonw_key(w, "customer_charge");
    jsonw_int(w, rec->customer_charge);
    jsonw_key(w, "reasons");
    write_reasons(w, rec->reasons);
    jsonw_key(w, "use_number");
    write_nullable(w, rec->use_number, 0);
    jsonw_key(w, "uses_remaining");
    jsonw_int(w, rec->uses_remaining);
    jsonw_key(w, "window");
    api__write_window(w, rec->window);
    jsonw_key(w, "loaner");
    jsonw_str(w, adj_loaner_name(rec->loaner));
    jsonw_key(w, "policy_version");
    jsonw_str(w, rec->policy_version);
}

static const char *status_of(const struct claim_record *rec)
{
    return rec->withdrawn ? "withdrawn" : adj_status_name(rec->status);
}

void api__write_record(struct jsonw *w, const struct claim_record *rec)
{
    jsonw_begin_object(w);
    jsonw_key(w, "claim_ref");
    jsonw_str(w, rec->claim_ref);
    jsonw_key(w, "subscription_ref");
    jsonw_str(w, rec->subscription_ref);
    jsonw_key(w, "status");
    jsonw_str(w, status_of(rec));
    write_outcome(w, rec);
    jsonw_key(w, "decided_at");
    jsonw_str(w, rec->decided_at);
    if (rec->withdrawn) {
        jsonw_key(w, "withdrawn_at");
        jsonw_str(w, rec->withdrawn_at);
    }
    jsonw_end_object(w);
}

static void respond_record(struct http_request *req, int status, const struct claim_record *rec)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 1024);
    api__write_record(&w, rec);
    http_respond_json(req, status, &w);
}

/* A claim's refusal that is not a decision. */
static void claim_failed(struct http_request *req, int rc)
{
    if (rc == CLAIMD_ECONFLICT)
        http_problem(req, 409, "claim_ref_reused", "the claim_ref was used with another body",
                     NULL);
    else if (rc == CLAIMD_EFUTURE)
        http_problem(req, 400, "incident_in_future", "incident_on is after today in Japan", NULL);
    else
        api__failed(req, rc);
}

/* ------------------------------------------------------------------------
 * One claim
 * ------------------------------------------------------------------------ */

/* A decision recorded now (not a replay) counts in the metrics. */
static void count_decision(struct api *api, const struct pipeline_req *q)
{
    if (q->rc == 0 && !q->replayed)
        metrics_decision(&api->metrics, q->rec.status, q->rec.reasons);
}

static void claim_decided(struct pipeline_req *q)
{
    struct api_ctx *ctx = q->data;
    count_decision(ctx->api, q);
    if (q->rc != 0)
        claim_failed(ctx->req, q->rc);
    else
        respond_record(ctx->req, q->replayed ? 200 : 201, &q->rec);
}

static int submit_claim(struct api_ctx *ctx, struct pipeline_req *q,
                        void (*done)(struct pipeline_req *q), void *data)
{
    q->tenant_id = ctx->tenant_id;
    q->api_key_id = ctx->key_id;
    q->done = done;
    q->data = data;
    int rc = pipeline_fingerprint(q);
    return rc != 0 ? rc : pipeline_submit(ctx->api->pipeline, q);
}

void api__post_claim(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return;
    jsonr_init(&r, obj);
    if (!claim_valid(api, &r, &ctx->claim, false)) {
        api__field_errors(req, &r);
        return;
    }
    /*
     * Handed off first: done() may run before pipeline_submit returns (when
     * the database fails meanwhile), and req must not be touched after it.
     */
    http_request_handed_off(req);
    int rc = submit_claim(ctx, &ctx->claim, claim_decided, ctx);
    if (rc != 0)
        claim_failed(req, rc);
}

static void quoted(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    struct claim_record rec;
    struct jsonw w;
    if (op->rc != 0) {
        claim_failed(ctx->req, op->rc);
        return;
    }
    memset(&rec, 0, sizeof(rec));
    record_from_decision(&rec, &op->claim, &op->decision);
    jsonw_init(&w, &ctx->req->arena, 1024);
    jsonw_begin_object(&w);
    jsonw_key(&w, "subscription_ref");
    jsonw_str(&w, op->ref);
    jsonw_key(&w, "status");
    jsonw_str(&w, status_of(&rec));
    write_outcome(&w, &rec);
    jsonw_end_object(&w);
    http_respond_json(ctx->req, 200, &w);
}

void api__post_quote(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return;
    jsonr_init(&r, obj);
    if (!claim_valid(api, &r, &ctx->claim, true)) {
        api__field_errors(req, &r);
        return;
    }
    memcpy(ctx->op.ref, ctx->claim.subscription_ref, sizeof(ctx->op.ref));
    ctx->op.kind = STORE_QUOTE;
    ctx->op.claim = ctx->claim.claim;
    api__submit(ctx, quoted);
}

/* ------------------------------------------------------------------------
 * Reading and withdrawing a recorded claim
 * ------------------------------------------------------------------------ */

static void claim_read(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0)
        api__failed(ctx->req, op->rc);
    else if (op->verdict != SUB_OK && op->verdict != SUB_REPEAT)
        api__verdict_problem(ctx->req, op->verdict);
    else
        respond_record(ctx->req, 200, &op->rec);
}

void api__get_claim(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    ctx->op.kind = STORE_GET_CLAIM;
    api__submit(ctx, claim_read);
}

void api__post_withdraw(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    if (!api__read_no_body(req))
        return;
    ctx->op.kind = STORE_WITHDRAW;
    api__submit(ctx, claim_read);
}

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

/* A per-claim problem: the claim's own answer inside the batch's results. */
static void write_item_problem(struct jsonw *w, int status, const char *code, const char *ref,
                               const struct jsonr *r)
{
    jsonw_begin_object(w);
    http_problem_members(w, status, code,
                         status == 400 ? "the claim has invalid members" : "the claim is refused");
    jsonw_key(w, "claim_ref");
    if (ref != NULL && ref[0] != '\0')
        jsonw_str(w, ref);
    else
        jsonw_null(w);
    if (r != NULL) {
        jsonw_key(w, "errors");
        jsonr_write_errors(r, w);
    }
    jsonw_end_object(w);
}

/* The answer of a claim that went through the pipeline. */
static void write_item(struct jsonw *w, const struct pipeline_req *q)
{
    switch (q->rc) {
    case 0:
        api__write_record(w, &q->rec);
        return;
    case CLAIMD_ENOTFOUND:
        write_item_problem(w, 404, "not_found", q->claim_ref, NULL);
        return;
    case CLAIMD_ECONFLICT:
        write_item_problem(w, 409, "claim_ref_reused", q->claim_ref, NULL);
        return;
    case CLAIMD_ENOPOLICY:
        write_item_problem(w, 422, "no_policy_in_force", q->claim_ref, NULL);
        return;
    case CLAIMD_EFUTURE:
        write_item_problem(w, 400, "incident_in_future", q->claim_ref, NULL);
        return;
    default:
        write_item_problem(w, 500, "internal_error", q->claim_ref, NULL);
        return;
    }
}

static void batch_answer(struct api_batch *b)
{
    struct http_request *req = b->ctx->req;
    struct jsonw w;
    if (b->unavailable) {
        api__failed(req, CLAIMD_EUNAVAIL);
        return;
    }
    jsonw_init(&w, &req->arena, 512 * b->n);
    jsonw_begin_object(&w);
    jsonw_key(&w, "results");
    jsonw_begin_array(&w);
    for (size_t i = 0; i < b->n; i++) {
        const struct jsonr *e = &b->errors[i];
        if (e->nerrors > 0)
            write_item_problem(&w, 400, e->errors[0].code, b->refs[i], e);
        else
            write_item(&w, &b->reqs[i]);
    }
    jsonw_end_array(&w);
    jsonw_end_object(&w);
    http_respond_json(req, 200, &w);
}

static void batch_item_done(struct pipeline_req *q)
{
    struct api_batch *b = q->data;
    count_decision(b->ctx->api, q);
    if (q->rc == CLAIMD_EUNAVAIL || q->rc == CLAIMD_EDB)
        b->unavailable = true;
    if (--b->pending == 0)
        batch_answer(b);
}

/* {"claims": [...]}: the array, or NULL after answering. */
static json_t *batch_claims(struct http_request *req)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return NULL;
    jsonr_init(&r, obj);
    json_t *arr = jsonr_get(&r, "claims", true);
    if (arr != NULL && !json_is_array(arr))
        jsonr_fail(&r, "claims", "invalid_field");
    jsonr_finish(&r);
    if (r.nerrors > 0) {
        api__field_errors(req, &r);
        return NULL;
    }
    size_t n = json_array_size(arr);
    if (n == 0 || n > BATCH_MAX) {
        http_problem(req, 400, "invalid_batch", "a batch holds 1 to 1000 claims", NULL);
        return NULL;
    }
    return arr;
}

static struct api_batch *batch_alloc(struct http_request *req, struct api_ctx *ctx, size_t n)
{
    struct api_batch *b = arena_alloc(&req->arena, sizeof(*b));
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->n = n;
    b->reqs = arena_alloc(&req->arena, n * sizeof(*b->reqs));
    b->errors = arena_alloc(&req->arena, n * sizeof(*b->errors));
    b->refs = arena_alloc(&req->arena, n * sizeof(*b->refs));
    if (b->reqs == NULL || b->errors == NULL || b->refs == NULL)
        return NULL;
    memset(b->reqs, 0, n * sizeof(*b->reqs));
    return b;
}

/* Validates every claim; returns how many go to the pipeline. */
static size_t batch_validate(struct api *api, struct api_batch *b, json_t *arr)
{
    size_t valid = 0;
    for (size_t i = 0; i < b->n; i++) {
        json_t *item = json_array_get(arr, i);
        jsonr_init(&b->errors[i], item);
        b->refs[i] = json_string_value(json_object_get(item, "claim_ref"));
        if (!json_is_object(item)) {
            jsonr_fail(&b->errors[i], "", "invalid_field");
            continue;
        }
        valid += claim_valid(api, &b->errors[i], &b->reqs[i], false);
    }
    return valid;
}

/*
 * Every valid claim goes to the pipeline at once, in order, so that claims of
 * one subscription are decided in the batch's order; the answer waits for
 * the last of them. A queue without room for all of them refuses the batch
 * whole (nothing decided).
 */
void api__post_batch(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    json_t *arr = batch_claims(req);
    if (arr == NULL)
        return;
    struct api_batch *b = batch_alloc(req, ctx, json_array_size(arr));
    if (b == NULL) {
        api__failed(req, CLAIMD_EOVERLOAD);
        return;
    }
    size_t valid = batch_validate(api, b, arr);
    if (valid > pipeline_room(api->pipeline)) {
        api__failed(req, CLAIMD_EOVERLOAD);
        return;
    }
    b->pending = valid + 1; /* held until every claim is submitted */
    for (size_t i = 0; i < b->n; i++) {
        if (b->errors[i].nerrors > 0)
            continue;
        int rc = submit_claim(ctx, &b->reqs[i], batch_item_done, b);
        if (rc != 0) {
            b->reqs[i].rc = rc;
            b->unavailable = b->unavailable || rc == CLAIMD_EUNAVAIL || rc == CLAIMD_EOVERLOAD;
            b->pending--;
        }
    }
    http_request_handed_off(req);
    if (--b->pending == 0)
        batch_answer(b);
}
