/*
 * Subscription rules outside a claim: the dates of creation, activation and
 * cancellation, device registration in the contract's refusal order, the
 * state as of a day and monthly billing.
 */
#include "sub.h"

#include <string.h>

static const char *const verdict_names[SUB_VERDICT_COUNT] = {
    "ok",
    "repeat",
    "date_before_application",
    "already_activated",
    "already_cancelled",
    "invalid_imei",
    "option_not_enrolled",
    "option_cancelled",
    "not_activated",
    "registration_before_activation",
    "registration_window_closed",
    "carrier_purchased_device",
    "device_already_registered",
    "reenrollment_forbidden",
    "imei_in_use",
    "no_policy_in_force",
    "duplicate_subscription",
    "option_only_at_application",
    "claim_denied",
};

static const short verdict_status[SUB_VERDICT_COUNT] = {
    200, 200, 422, 409, 409, 400, 422, 422, 422, 422, 422, 422, 409, 422, 409, 422, 409, 409, 409,
};

static const char *const option_status_names[] = {"none", "active", "cancelled"};

const char *sub_verdict_name(enum sub_verdict v)
{
    return (unsigned)v < SUB_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

int sub_verdict_http_status(enum sub_verdict v)
{
    return (unsigned)v < SUB_VERDICT_COUNT ? verdict_status[v] : 500;
}

const char *sub_option_status_name(enum sub_option_status s)
{
    return (unsigned)s < 3 ? option_status_names[s] : "unknown";
}

/* ------------------------------------------------------------------------
 * Creation, activation, cancellation
 * ------------------------------------------------------------------------ */

enum sub_verdict sub_check_create(const struct adj_subscription *s)
{
    if (s->activated_on != DATE_NONE && s->activated_on < s->applied_on)
        return SUB_DATE_BEFORE_APPLICATION;
    return SUB_OK;
}

enum sub_verdict sub_check_create_again(const struct adj_subscription *stored,
                                        const struct adj_subscription *req)
{
    bool same = stored->option == req->option && stored->applied_on == req->applied_on &&
                stored->activated_on == req->activated_on;
    return same ? SUB_REPEAT : SUB_DUPLICATE_SUBSCRIPTION;
}

enum sub_verdict sub_check_add_option(const struct adj_subscription *s)
{
    return SUB_OPTION_ONLY_AT_APPLICATION;
}

enum sub_verdict sub_check_withdraw(enum adj_status status, bool withdrawn)
{
    if (status != ADJ_STATUS_APPROVED)
        return SUB_CLAIM_DENIED;
    return withdrawn ? SUB_REPEAT : SUB_OK;
}

enum sub_verdict sub_check_activate(const struct adj_subscription *s, date_t d)
{
    if (s->activated_on != DATE_NONE)
        return d == s->activated_on ? SUB_REPEAT : SUB_ALREADY_ACTIVATED;
    if (d < s->applied_on)
        return SUB_DATE_BEFORE_APPLICATION;
    return SUB_OK;
}

enum sub_verdict sub_check_cancel(const struct adj_subscription *s, date_t d)
{
    if (!s->option)
        return SUB_OPTION_NOT_ENROLLED;
    if (s->cancelled_on != DATE_NONE)
        return d == s->cancelled_on ? SUB_REPEAT : SUB_ALREADY_CANCELLED;
    if (d < s->applied_on)
        return SUB_DATE_BEFORE_APPLICATION;
    return SUB_OK;
}

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */

static int same_device(const struct adj_device *a, const struct adj_device *b)
{
    return memcmp(a->imei, b->imei, IMEI_LEN) == 0 && a->os == b->os &&
           strncmp(a->model, b->model, sizeof(a->model)) == 0 &&
           a->release_date == b->release_date && a->registered_on == b->registered_on &&
           a->purchased_from == b->purchased_from;
}

/* The checks that depend on the subscription's dates, in the contract's order. */
/*
 * A cancelled option takes no device, whatever day the registration names:
 * once a cancellation is recorded the option is over (api.md: "registering on
 * a cancelled option" is refused), even when registered_on lies before it.
 */
static enum sub_verdict check_dates(const struct policy_set *ps, const struct adj_subscription *s,
                                    date_t on)
{
    if (!s->option)
        return SUB_OPTION_NOT_ENROLLED;
    if (s->cancelled_on != DATE_NONE)
        return SUB_OPTION_CANCELLED;
    if (s->activated_on == DATE_NONE)
        return SUB_NOT_ACTIVATED;
    if (on < s->activated_on)
        return SUB_REGISTRATION_BEFORE_ACTIVATION;
    const struct policy *p = policy_in_force(ps, on);
    if (p == NULL)
        return SUB_NO_POLICY_IN_FORCE;
    if (on - s->activated_on > p->registration_days)
        return SUB_REGISTRATION_WINDOW_CLOSED;
    return SUB_OK;
}

enum sub_verdict sub_check_register(const struct policy_set *ps, const struct adj_subscription *s,
                                    const struct adj_device *cur, const struct adj_device *dev,
                                    const struct sub_imei_facts *facts)
{
    if (imei_validate(dev->imei, IMEI_LEN) != CLAIMD_OK)
        return SUB_INVALID_IMEI;
    enum sub_verdict v = check_dates(ps, s, dev->registered_on);
    if (v != SUB_OK)
        return v;
    if (dev->purchased_from == ADJ_PURCHASED_CARRIER)
        return SUB_CARRIER_PURCHASED_DEVICE;
    if (cur->present)
        return same_device(cur, dev) ? SUB_REPEAT : SUB_DEVICE_ALREADY_REGISTERED;
    if (facts->covered_on_cancelled_option)
        return SUB_REENROLLMENT_FORBIDDEN;
    if (facts->live_elsewhere)
        return SUB_IMEI_IN_USE;
    return SUB_OK;
}

/* ------------------------------------------------------------------------
 * State and billing
 * ------------------------------------------------------------------------ */

/* Month index of m counted from the month of application (0 = that month). */
static int month_index(const struct adj_subscription *s, date_t m)
{
    return date_months_between(s->applied_on, m);
}

static int is_free_month(const struct policy *p, const struct adj_subscription *s, date_t m)
{
    int i = month_index(s, m);
    return i >= 0 && i < p->free_months;
}

int64_t sub_fee_for_month(const struct policy_set *ps, const struct adj_subscription *s, date_t m)
{
    date_t first = date_month_start(m);
    if (!s->option || month_index(s, first) < 0)
        return 0;
    if (s->cancelled_on != DATE_NONE && first > date_month_start(s->cancelled_on))
        return 0;
    const struct policy *p = policy_in_force(ps, first);
    if (p == NULL || is_free_month(p, s, first))
        return 0;
    return p->monthly_fee;
}

/* The months of application onwards that are free under their own version. */
static void list_free_months(const struct policy_set *ps, const struct adj_subscription *s,
                             struct sub_state *st)
{
    date_t app = date_month_start(s->applied_on);
    st->free_month_count = 0;
    if (!s->option)
        return;
    for (int i = 0; i < POLICY_FREE_MONTHS_MAX; i++) {
        date_t m = date_add_months(app, i);
        const struct policy *p = policy_in_force(ps, m);
        if (p != NULL && is_free_month(p, s, m))
            st->free_months[st->free_month_count++] = m;
    }
}

static enum sub_option_status option_status_on(const struct adj_subscription *s, date_t on)
{
    if (!s->option)
        return SUB_OPT_NONE;
    if (s->cancelled_on != DATE_NONE && s->cancelled_on <= on)
        return SUB_OPT_CANCELLED;
    return SUB_OPT_ACTIVE;
}

static int64_t next_exchange_fee(const struct sub_state *st, const struct adj_device *dev,
                                 int32_t exchanges)
{
    const struct policy *p = st->policy;
    if (st->option_status != SUB_OPT_ACTIVE || st->uses >= p->max_uses)
        return -1;
    if (!dev->present || (dev->os == DEVICE_OS_IOS && !p->ios_exchange))
        return -1;
    int32_t last = p->exchange_fee_count - 1;
    return p->exchange_fees[exchanges < last ? exchanges : last];
}

int sub_state_on(const struct policy_set *ps, const struct adj_subscription *s,
                 const struct adj_device *dev, const struct adj_history *h, date_t on,
                 struct sub_state *st)
{
    int32_t exchanges;
    if (h->len > ADJ_HISTORY_MAX)
        return CLAIMD_ECAPACITY;
    memset(st, 0, sizeof(*st));
    st->policy = policy_in_force(ps, on);
    if (st->policy == NULL)
        return CLAIMD_ENOPOLICY;
    st->option_status = option_status_on(s, on);
    st->window = policy_window_of(st->policy, s->applied_on, on);
    adj_count_uses(h, st->window, &st->uses, &exchanges);
    st->uses_remaining = st->uses < st->policy->max_uses ? st->policy->max_uses - st->uses : 0;
    st->next_exchange_fee = next_exchange_fee(st, dev, exchanges);
    const struct policy *billing = policy_in_force(ps, date_month_start(on));
    st->monthly_fee = s->option && billing != NULL ? billing->monthly_fee : 0;
    list_free_months(ps, s, st);
    st->fee_for_month = sub_fee_for_month(ps, s, on);
    return CLAIMD_OK;
}
