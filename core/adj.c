/*
 * The claim decision: every check of policy.md evaluated in order, the
 * amounts of an approval, and the ordered decision of a batch of claims for
 * one subscription. Nothing here allocates; all memory is the caller's.
 */
#include "adj.h"

#include <string.h>

#include "names.h"

static const char *const reason_names[ADJ_R_COUNT] = {
    "option_not_enrolled",
    "option_cancelled",
    "device_not_registered",
    "imei_mismatch",
    "incident_before_coverage",
    "natural_failure_expired",
    "exchange_not_offered_ios",
    "frequency_limit",
    "cap_exceeded",
};
static const char *const status_names[] = {"approved", "denied"};
static const char *const cause_names[] = {"natural_failure", "physical_damage"};
static const char *const damage_names[] = {NULL, "screen", "water", "total_loss", "other"};
static const char *const remedy_names[] = {"repair", "exchange"};
static const char *const loaner_names[] = {NULL, "android", "ios"};
static const char *const purchase_names[] = {"other", "carrier"};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

/* damage is given exactly for physical damage; a missing one is missing_field. */
static int check_damage(const struct adj_claim *c, struct claimd_error *err)
{
    if (c->cause == ADJ_CAUSE_NATURAL_FAILURE) {
        if (c->damage != ADJ_DAMAGE_NONE)
            return claimd_error_set(err, CLAIMD_EINVAL, "damage", "invalid_field",
                                    "damage is refused for natural_failure");
        return CLAIMD_OK;
    }
    if (c->damage == ADJ_DAMAGE_NONE)
        return claimd_error_set(err, CLAIMD_EINVAL, "damage", "missing_field",
                                "damage is required for physical_damage");
    if (c->damage < ADJ_DAMAGE_SCREEN || c->damage > ADJ_DAMAGE_OTHER)
        return claimd_error_set(err, CLAIMD_EINVAL, "damage", "invalid_field",
                                "damage is not a known damage");
    return CLAIMD_OK;
}

/* An estimate (-1 when absent) goes with a repair and never with an exchange. */
static int check_estimate(const struct adj_claim *c, struct claimd_error *err)
{
    if (c->remedy == ADJ_REMEDY_REPAIR) {
        if (c->repair_estimate == -1)
            return claimd_error_set(err, CLAIMD_EINVAL, "repair_estimate", "missing_field",
                                    "repair_estimate is required for a repair");
        if (c->repair_estimate < 0 || c->repair_estimate > ADJ_ESTIMATE_MAX)
            return claimd_error_set(err, CLAIMD_EINVAL, "repair_estimate", "invalid_field",
                                    "repair_estimate must be 0-10000000 yen");
        return CLAIMD_OK;
    }
    if (c->remedy != ADJ_REMEDY_EXCHANGE)
        return claimd_error_set(err, CLAIMD_EINVAL, "remedy", "invalid_field",
                                "remedy is not a known remedy");
    if (c->repair_estimate != -1)
        return claimd_error_set(err, CLAIMD_EINVAL, "repair_estimate", "invalid_field",
                                "repair_estimate is refused for an exchange");
    return CLAIMD_OK;
}

int adj_claim_validate(const struct adj_claim *c, struct claimd_error *err)
{
    if (imei_validate(c->imei, IMEI_LEN) != CLAIMD_OK)
        return claimd_error_set(err, CLAIMD_EINVAL, "imei", "invalid_imei",
                                "imei must be 15 digits with a Luhn check digit");
    if (c->incident_on == DATE_NONE)
        return claimd_error_set(err, CLAIMD_EINVAL, "incident_on", "missing_field",
                                "incident_on is required");
    if (c->cause != ADJ_CAUSE_NATURAL_FAILURE && c->cause != ADJ_CAUSE_PHYSICAL_DAMAGE)
        return claimd_error_set(err, CLAIMD_EINVAL, "cause", "invalid_field",
                                "cause is not a known cause");
    int rc = check_damage(c, err);
    return rc != CLAIMD_OK ? rc : check_estimate(c, err);
}

/* ------------------------------------------------------------------------
 * Deciding
 * ------------------------------------------------------------------------ */

static int is_use(const struct adj_history_entry *e)
{
    return e->status == ADJ_STATUS_APPROVED && !e->withdrawn;
}

void adj_count_uses(const struct adj_history *h, struct window w, int32_t *uses, int32_t *exchanges)
{
    int32_t u = 0, x = 0;
    for (size_t i = 0; i < h->len; i++) {
        const struct adj_history_entry *e = &h->entries[i];
        if (!is_use(e) || e->incident_on < w.start || e->incident_on > w.end)
            continue;
        u++;
        if (e->remedy == ADJ_REMEDY_EXCHANGE)
            x++;
    }
    *uses = u;
    *exchanges = x;
}

/* The failing checks of policy.md, as a bit set in their documented order. */
static uint32_t failing_checks(const struct adj_facts *f, const struct policy *p,
                               const struct adj_claim *c, int32_t uses)
{
    const struct adj_device *dev = &f->device;
    uint32_t r = 0;
    if (!f->sub.option)
        r |= 1u << ADJ_R_OPTION_NOT_ENROLLED;
    if (f->sub.cancelled_on != DATE_NONE && f->sub.cancelled_on <= c->incident_on)
        r |= 1u << ADJ_R_OPTION_CANCELLED;
    if (!dev->present) {
        r |= 1u << ADJ_R_DEVICE_NOT_REGISTERED;
    } else {
        if (memcmp(c->imei, dev->imei, IMEI_LEN) != 0)
            r |= 1u << ADJ_R_IMEI_MISMATCH;
        if (c->incident_on < dev->registered_on)
            r |= 1u << ADJ_R_INCIDENT_BEFORE_COVERAGE;
        if (c->cause == ADJ_CAUSE_NATURAL_FAILURE &&
            c->incident_on >= date_add_months(dev->release_date, p->natural_failure_months))
            r |= 1u << ADJ_R_NATURAL_FAILURE_EXPIRED;
        if (c->remedy == ADJ_REMEDY_EXCHANGE && dev->os == DEVICE_OS_IOS && !p->ios_exchange)
            r |= 1u << ADJ_R_EXCHANGE_NOT_OFFERED_IOS;
    }
    if (uses >= p->max_uses)
        r |= 1u << ADJ_R_FREQUENCY_LIMIT;
    return r;
}

static int64_t exchange_fee(const struct policy *p, int32_t exchanges)
{
    int32_t last = p->exchange_fee_count - 1;
    return p->exchange_fees[exchanges < last ? exchanges : last];
}

static void approve(const struct policy *p, const struct adj_claim *c, int32_t uses,
                    int32_t exchanges, struct adj_decision *d)
{
    d->status = ADJ_STATUS_APPROVED;
    d->use_number = uses + 1;
    d->uses_remaining = p->max_uses - d->use_number;
    if (c->remedy == ADJ_REMEDY_REPAIR) {
        int64_t est = c->repair_estimate;
        d->covered_amount = est < p->repair_cap ? est : p->repair_cap;
        d->customer_charge = est - d->covered_amount;
        if (est > p->repair_cap)
            d->reasons |= 1u << ADJ_R_CAP_EXCEEDED;
        d->loaner = p->loaner_os == DEVICE_OS_IOS ? ADJ_LOANER_IOS : ADJ_LOANER_ANDROID;
    } else {
        d->covered_amount = 0;
        d->customer_charge = exchange_fee(p, exchanges);
        d->loaner = ADJ_LOANER_NONE;
    }
}

static void decide_with(const struct adj_facts *f, const struct policy *p,
                        const struct adj_history *h, const struct adj_claim *c,
                        struct adj_decision *d)
{
    int32_t uses, exchanges;
    memset(d, 0, sizeof(*d));
    d->policy = p;
    d->window = policy_window_of(p, f->sub.applied_on, c->incident_on);
    adj_count_uses(h, d->window, &uses, &exchanges);
    d->reasons = failing_checks(f, p, c, uses);
    if (d->reasons == 0) {
        approve(p, c, uses, exchanges, d);
        return;
    }
    d->status = ADJ_STATUS_DENIED;
    d->uses_remaining = uses < p->max_uses ? p->max_uses - uses : 0;
    d->loaner = ADJ_LOANER_NONE;
}

/* The refusals that come before any decision, in the contract's check order. */
static int precheck(const struct adj_facts *f, const struct adj_claim *c, const struct policy **p,
                    struct claimd_error *err)
{
    int rc = adj_claim_validate(c, err);
    if (rc != CLAIMD_OK)
        return rc;
    if (c->incident_on > f->today)
        return claimd_error_set(err, CLAIMD_EFUTURE, "incident_on", "incident_in_future",
                                "incident_on is after today");
    *p = policy_in_force(f->policies, c->incident_on);
    if (*p == NULL)
        return claimd_error_set(err, CLAIMD_ENOPOLICY, "incident_on", "no_policy_in_force",
                                "no policy version is in force on incident_on");
    return CLAIMD_OK;
}

int adj_decide(const struct adj_facts *f, const struct adj_history *h, const struct adj_claim *c,
               struct adj_decision *out, struct claimd_error *err)
{
    const struct policy *p = NULL;
    if (h->len > ADJ_HISTORY_MAX)
        return claimd_error_set(err, CLAIMD_ECAPACITY, "", "capacity_exceeded",
                                "history exceeds ADJ_HISTORY_MAX");
    int rc = precheck(f, c, &p, err);
    if (rc != CLAIMD_OK)
        return rc;
    decide_with(f, p, h, c, out);
    return CLAIMD_OK;
}

int adj_decide_batch(const struct adj_facts *f, struct adj_history *h,
                     const struct adj_claim *claims, size_t n, struct adj_outcome *out)
{
    size_t limit = h->cap < ADJ_HISTORY_MAX ? h->cap : ADJ_HISTORY_MAX;
    if (n > ADJ_BATCH_MAX || h->len > limit || n > limit - h->len)
        return CLAIMD_ECAPACITY;
    for (size_t i = 0; i < n; i++) {
        struct adj_outcome *o = &out[i];
        memset(&o->err, 0, sizeof(o->err));
        o->rc = adj_decide(f, h, &claims[i], &o->decision, &o->err);
        if (o->rc != CLAIMD_OK || o->decision.status != ADJ_STATUS_APPROVED)
            continue;
        struct adj_history_entry *e = &h->entries[h->len++];
        e->incident_on = claims[i].incident_on;
        e->remedy = claims[i].remedy;
        e->status = ADJ_STATUS_APPROVED;
        e->withdrawn = false;
        e->tag = ADJ_TAG_BATCH | (uint64_t)i;
    }
    return CLAIMD_OK;
}

int adj_history_range(const struct adj_facts *f, const struct adj_claim *claims, size_t n,
                      struct window *out)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const struct policy *p = NULL;
        if (precheck(f, &claims[i], &p, NULL) != CLAIMD_OK)
            continue;
        struct window w = policy_window_of(p, f->sub.applied_on, claims[i].incident_on);
        if (!found || w.start < out->start)
            out->start = w.start;
        if (!found || w.end > out->end)
            out->end = w.end;
        found = 1;
    }
    return found ? CLAIMD_OK : CLAIMD_ENOPOLICY;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

#define NAME_OF(table, v) ((unsigned)(v) < (unsigned)COUNT_OF(table) ? (table)[v] : NULL)

const char *adj_reason_name(enum adj_reason r)
{
    return NAME_OF(reason_names, r);
}

const char *adj_status_name(enum adj_status s)
{
    return NAME_OF(status_names, s);
}

const char *adj_cause_name(enum adj_cause c)
{
    return NAME_OF(cause_names, c);
}

const char *adj_damage_name(enum adj_damage d)
{
    return NAME_OF(damage_names, d);
}

const char *adj_remedy_name(enum adj_remedy r)
{
    return NAME_OF(remedy_names, r);
}

const char *adj_loaner_name(enum adj_loaner l)
{
    return NAME_OF(loaner_names, l);
}

const char *adj_purchase_name(enum adj_purchase p)
{
    return NAME_OF(purchase_names, p);
}

#define DEFINE_PARSE(fn, type, table)                                                              \
    int fn(const char *s, size_t len, type *out)                                                   \
    {                                                                                              \
        int i = names_find(table, COUNT_OF(table), s, len);                                        \
        if (i < 0)                                                                                 \
            return CLAIMD_EINVAL;                                                                  \
        *out = (type)i;                                                                            \
        return CLAIMD_OK;                                                                          \
    }

DEFINE_PARSE(adj_reason_parse, enum adj_reason, reason_names)
DEFINE_PARSE(adj_cause_parse, enum adj_cause, cause_names)
DEFINE_PARSE(adj_damage_parse, enum adj_damage, damage_names)
DEFINE_PARSE(adj_remedy_parse, enum adj_remedy, remedy_names)
DEFINE_PARSE(adj_purchase_parse, enum adj_purchase, purchase_names)
