/*
 * The subscription routes: create, state as of a day, activate, register a
 * device, cancel, the refusal of a late option, and the claim history. Each
 * reads and checks its body, asks the store, and shows the subscription.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"

/* ------------------------------------------------------------------------
 * The subscription as GET shows it
 * ------------------------------------------------------------------------ */

static void write_device(struct jsonw *w, const struct adj_device *d)
{
    if (!d->present) {
        jsonw_null(w);
        return;
    }
    jsonw_begin_object(w);
    jsonw_key(w, "imei");
    jsonw_strn(w, d->imei, IMEI_LEN);
    jsonw_key(w, "os");
    jsonw_str(w, device_os_name(d->os));
    jsonw_key(w, "model");
    jsonw_str(w, d->model);
    jsonw_key(w, "release_date");
    jsonw_date(w, d->release_date);
    jsonw_key(w, "purchased_from");
    jsonw_str(w, adj_purchase_name(d->purchased_from));
    jsonw_key(w, "registered_on");
    jsonw_date(w, d->registered_on);
    jsonw_end_object(w);
}

static void write_billing(struct jsonw *w, const struct sub_state *st)
{
    char month[DATE_MONTH_STR_SIZE];
    jsonw_key(w, "monthly_fee");
    jsonw_int(w, st->monthly_fee);
    jsonw_key(w, "free_months");
    jsonw_begin_array(w);
    for (int i = 0; i < st->free_month_count; i++) {
        date_format_month(st->free_months[i], month);
        jsonw_str(w, month);
    }
    jsonw_end_array(w);
    jsonw_key(w, "fee_for_month");
    jsonw_int(w, st->fee_for_month);
}

/* A subscription as GET /v1/subscriptions/{ref} shows it (api.md's member order). */
static void write_view(struct jsonw *w, const struct store_view *v)
{
    const struct sub_state *st = &v->state;
    jsonw_begin_object(w);
    jsonw_key(w, "subscription_ref");
    jsonw_str(w, v->subscription_ref);
    jsonw_key(w, "applied_on");
    jsonw_date(w, v->sub.applied_on);
    jsonw_key(w, "activated_on");
    jsonw_date(w, v->sub.activated_on);
    jsonw_key(w, "device_protection");
    jsonw_bool(w, v->sub.option);
    jsonw_key(w, "option_status");
    jsonw_str(w, sub_option_status_name(st->option_status));
    jsonw_key(w, "cancelled_on");
    jsonw_date(w, v->sub.cancelled_on);
    jsonw_key(w, "device");
    write_device(w, &v->dev);
    jsonw_key(w, "on");
    jsonw_date(w, v->on);
    jsonw_key(w, "policy_version");
    jsonw_str(w, st->policy->name);
    jsonw_key(w, "window");
    api__write_window(w, st->window);
    jsonw_key(w, "uses");
    jsonw_begin_array(w);
    for (size_t i = 0; i < v->nuses; i++)
        jsonw_str(w, v->uses[i]);
    jsonw_end_array(w);
    jsonw_key(w, "uses_remaining");
    jsonw_int(w, st->uses_remaining);
    jsonw_key(w, "next_exchange_fee");
    if (st->next_exchange_fee < 0)
        jsonw_null(w);
    else
        jsonw_int(w, st->next_exchange_fee);
    write_billing(w, st);
    jsonw_end_object(w);
}

static void respond_view(struct http_request *req, int status, const struct store_view *v)
{
    struct jsonw w;
    jsonw_init(&w, &req->arena, 1024);
    write_view(&w, v);
    http_respond_json(req, status, &w);
}

/* ------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------ */

static void created(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0) {
        api__failed(ctx->req, op->rc);
        return;
    }
    if (op->verdict != SUB_OK && op->verdict != SUB_REPEAT) {
        api__verdict_problem(ctx->req, op->verdict);
        return;
    }
    respond_view(ctx->req, op->created ? 201 : 200, &op->view);
}

/* subscription_ref, applied_on, activated_on, device_protection, in that order. */
static void read_subscription(struct jsonr *r, struct store_op *op)
{
    size_t len = 0;
    bool present;
    const char *ref = jsonr_string(r, "subscription_ref", true, &len);
    bool reserved = (len == 5 && (memcmp(ref, "quote", 5) == 0 || memcmp(ref, "batch", 5) == 0));
    if (ref != NULL && (!pipeline_ref_valid(ref, len) || reserved))
        jsonr_fail(r, "subscription_ref", "invalid_field");
    else if (ref != NULL)
        memcpy(op->ref, ref, len + 1);
    op->sub.applied_on = jsonr_date(r, "applied_on", true, false);
    op->sub.activated_on = jsonr_date(r, "activated_on", false, true);
    op->sub.option = jsonr_bool(r, "device_protection", true, &present);
    op->sub.cancelled_on = DATE_NONE;
    jsonr_finish(r);
}

void api__post_subscriptions(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return;
    jsonr_init(&r, obj);
    read_subscription(&r, &ctx->op);
    if (r.nerrors > 0) {
        api__field_errors(req, &r);
        return;
    }
    enum sub_verdict v = sub_check_create(&ctx->op.sub);
    if (v != SUB_OK) {
        api__verdict_problem(req, v);
        return;
    }
    ctx->op.kind = STORE_CREATE;
    api__submit(ctx, created);
}

/* ------------------------------------------------------------------------
 * Changes: activate, device, cancel, device-protection
 * ------------------------------------------------------------------------ */

/* The answer to activate, register and cancel: 200 with the subscription. */
static void changed(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0) {
        api__failed(ctx->req, op->rc);
        return;
    }
    if (op->verdict != SUB_OK && op->verdict != SUB_REPEAT) {
        api__verdict_problem(ctx->req, op->verdict);
        return;
    }
    respond_view(ctx->req, 200, &op->view);
}

/* Reads a body of one date member; DATE_NONE after answering. */
static date_t read_date_body(struct http_request *req, const char *name)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return DATE_NONE;
    jsonr_init(&r, obj);
    date_t d = jsonr_date(&r, name, true, false);
    jsonr_finish(&r);
    if (r.nerrors > 0) {
        api__field_errors(req, &r);
        return DATE_NONE;
    }
    return d;
}

static void date_change(struct http_request *req, struct api_ctx *ctx, enum store_kind kind,
                        const char *member)
{
    date_t d = read_date_body(req, member);
    if (d == DATE_NONE)
        return;
    ctx->op.kind = kind;
    ctx->op.date = d;
    api__submit(ctx, changed);
}

void api__post_activate(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    date_change(req, ctx, STORE_ACTIVATE, "activated_on");
}

void api__post_cancel(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    date_change(req, ctx, STORE_CANCEL, "cancelled_on");
}

/* imei, os, model, release_date, purchased_from, registered_on, in that order. */
static void read_device(struct jsonr *r, struct adj_device *d)
{
    static const char *const os_names[] = {"android", "ios"};
    static const char *const from_names[] = {"other", "carrier"};
    size_t len = 0;
    const char *imei = jsonr_string(r, "imei", true, &len);
    if (imei != NULL && imei_validate(imei, len) != 0)
        jsonr_fail(r, "imei", "invalid_imei");
    else if (imei != NULL)
        memcpy(d->imei, imei, IMEI_LEN);
    d->os = (enum device_os)jsonr_enum(r, "os", true, os_names, 2);
    const char *model = jsonr_string(r, "model", true, &len);
    if (model != NULL && (len == 0 || len > ADJ_MODEL_MAX || memchr(model, '\0', len) != NULL))
        jsonr_fail(r, "model", "invalid_field");
    else if (model != NULL)
        memcpy(d->model, model, len + 1);
    d->release_date = jsonr_date(r, "release_date", true, false);
    d->purchased_from = (enum adj_purchase)jsonr_enum(r, "purchased_from", true, from_names, 2);
    d->registered_on = jsonr_date(r, "registered_on", true, false);
    d->present = true;
    jsonr_finish(r);
}

void api__put_device(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    struct jsonr r;
    json_t *obj = api__read_json(req);
    if (obj == NULL)
        return;
    jsonr_init(&r, obj);
    read_device(&r, &ctx->op.device);
    if (r.nerrors > 0) {
        api__field_errors(req, &r);
        return;
    }
    ctx->op.kind = STORE_REGISTER;
    api__submit(ctx, changed);
}

static void option_refused(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0)
        api__failed(ctx->req, op->rc);
    else
        api__verdict_problem(ctx->req, op->verdict);
}

void api__post_option(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    if (!api__read_no_body(req))
        return;
    ctx->op.kind = STORE_ADD_OPTION;
    api__submit(ctx, option_refused);
}

/* ------------------------------------------------------------------------
 * Reads: state as of a day, history
 * ------------------------------------------------------------------------ */

static void state_read(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    if (op->rc != 0)
        api__failed(ctx->req, op->rc);
    else
        respond_view(ctx->req, 200, &op->view);
}

static void query_error(struct http_request *req, const char *field, const char *code)
{
    struct jsonr r;
    jsonr_init(&r, NULL);
    jsonr_fail(&r, field, code);
    api__field_errors(req, &r);
}

void api__get_subscription(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    size_t len = 0;
    const char *on = api__query(req, "on", &len);
    date_t day = date_japan_of_unix((int64_t)time(NULL));
    if (on != NULL && date_parse(on, len, &day) != 0) {
        query_error(req, "on", "invalid_field");
        return;
    }
    ctx->op.kind = STORE_STATE;
    ctx->op.date = api->store.today != DATE_NONE && on == NULL ? api->store.today : day;
    api__submit(ctx, state_read);
}

static void history_read(struct store_op *op)
{
    struct api_ctx *ctx = op->data;
    struct jsonw w;
    char cursor[24];
    if (op->rc != 0) {
        api__failed(ctx->req, op->rc);
        return;
    }
    jsonw_init(&w, &ctx->req->arena, 4096);
    jsonw_begin_object(&w);
    jsonw_key(&w, "claims");
    jsonw_begin_array(&w);
    for (size_t i = 0; i < op->nrecords; i++)
        api__write_record(&w, &op->records[i]);
    jsonw_end_array(&w);
    jsonw_key(&w, "next_after");
    if (op->next_after == 0) {
        jsonw_null(&w);
    } else {
        snprintf(cursor, sizeof(cursor), "%lld", (long long)op->next_after);
        jsonw_str(&w, cursor);
    }
    jsonw_end_object(&w);
    http_respond_json(ctx->req, 200, &w);
}

/* ?limit= 1-100 (default 20) and ?after= a cursor from an earlier page. */
void api__get_history(struct api *api, struct http_request *req, struct api_ctx *ctx)
{
    size_t llen = 0, alen = 0;
    const char *limit = api__query(req, "limit", &llen), *after = api__query(req, "after", &alen);
    int64_t n = 20;
    if (limit != NULL && (store_parse_cursor(limit, llen, &n) != 0 || n < 1 || n > 100)) {
        query_error(req, "limit", "invalid_field");
        return;
    }
    if (after != NULL && store_parse_cursor(after, alen, &ctx->op.after) != 0) {
        query_error(req, "after", "invalid_field");
        return;
    }
    ctx->op.records = arena_alloc(&req->arena, (size_t)n * sizeof(*ctx->op.records));
    if (ctx->op.records == NULL) {
        api__failed(req, CLAIMD_EOVERLOAD);
        return;
    }
    ctx->op.kind = STORE_HISTORY;
    ctx->op.limit = (size_t)n;
    api__submit(ctx, history_read);
}
