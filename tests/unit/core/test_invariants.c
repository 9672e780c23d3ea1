/*
 * Property tests of the claim decision (core/adj.c): 200,000 generated cases
 * per policy from a fixed-seed xorshift PRNG, each decision checked against
 * policy.md's invariants, its reasons recomputed, and batches replayed.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "adj.h"

#define CASES      200000
#define HIST_MAX   6
#define BATCH_K    6
#define IMEI_POOL  16
#define SEED_PASS1 UINT64_C(0x9e3779b97f4a7c15)
#define SEED_PASS2 UINT64_C(0x2545f4914f6cdd1d)
#define BIT(r)     (1u << (r))

/* ------------------------------------------------------------------------
 * Generator
 * ------------------------------------------------------------------------ */

/* xorshift64* (Vigna): small, fast and the same on every platform. */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

/* A uniform-enough integer in [lo, hi]. */
static int64_t between(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static bool chance(struct rng *r, int percent)
{
    return between(r, 0, 99) < percent;
}

/* The Luhn check digit, computed here independently of core/imei.c. */
static char luhn(const char *d14)
{
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int v = (d14[i] - '0') * (i % 2 ? 2 : 1);
        sum += v > 9 ? v - 9 : v;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

static char imeis[IMEI_POOL][IMEI_LEN];

static void gen_imeis(struct rng *r)
{
    for (int i = 0; i < IMEI_POOL; i++) {
        for (int j = 0; j < IMEI_LEN - 1; j++)
            imeis[i][j] = (char)('0' + between(r, 0, 9));
        imeis[i][IMEI_LEN - 1] = luhn(imeis[i]);
    }
}

/* One case: the facts of a subscription, its history and up to BATCH_K claims. */
struct gen_case {
    struct adj_facts f;
    struct adj_history_entry hist[HIST_MAX];
    size_t hist_len;
    struct adj_claim claims[BATCH_K];
    size_t n_claims;
};

static void gen_sub(struct rng *r, struct adj_subscription *s)
{
    s->option = chance(r, 85);
    s->applied_on = (date_t)between(r, date_from_ymd(2019, 6, 1), date_from_ymd(2025, 12, 31));
    s->activated_on = chance(r, 10) ? DATE_NONE : s->applied_on + (date_t)between(r, 0, 10);
    s->cancelled_on = chance(r, 70) ? DATE_NONE : s->applied_on + (date_t)between(r, 0, 1000);
}

static void gen_device(struct rng *r, const struct adj_subscription *s, struct adj_device *d)
{
    memset(d, 0, sizeof(*d));
    d->present = chance(r, 85);
    memcpy(d->imei, imeis[between(r, 0, IMEI_POOL - 1)], IMEI_LEN);
    d->os = chance(r, 50) ? DEVICE_OS_IOS : DEVICE_OS_ANDROID;
    snprintf(d->model, sizeof(d->model), "model-%d", (int)between(r, 0, 99));
    d->release_date = s->applied_on - (date_t)between(r, 0, 1800);
    date_t base = s->activated_on != DATE_NONE ? s->activated_on : s->applied_on;
    d->registered_on = base + (date_t)between(r, -5, 20);
    d->purchased_from = ADJ_PURCHASED_OTHER;
}

/* Mostly uniform in 0..200000, with the cap's neighbours and the extremes often. */
static int64_t gen_estimate(struct rng *r, const struct adj_facts *f)
{
    int64_t cap = f->policies->v[0].repair_cap;
    switch (between(r, 0, 19)) {
    case 0:
        return cap + between(r, -1, 1);
    case 1:
        return chance(r, 50) ? 0 : ADJ_ESTIMATE_MAX;
    default:
        return between(r, 0, 200000);
    }
}

static void gen_claim(struct rng *r, const struct adj_facts *f, date_t around, struct adj_claim *c)
{
    memset(c, 0, sizeof(*c));
    bool same = f->device.present && chance(r, 80);
    memcpy(c->imei, same ? f->device.imei : imeis[between(r, 0, IMEI_POOL - 1)], IMEI_LEN);
    c->incident_on = around + (date_t)between(r, -40, 40);
    c->cause = chance(r, 50) ? ADJ_CAUSE_PHYSICAL_DAMAGE : ADJ_CAUSE_NATURAL_FAILURE;
    c->damage =
        c->cause == ADJ_CAUSE_PHYSICAL_DAMAGE ? (enum adj_damage)between(r, 1, 4) : ADJ_DAMAGE_NONE;
    c->remedy = chance(r, 50) ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
    c->repair_estimate = c->remedy == ADJ_REMEDY_REPAIR ? gen_estimate(r, f) : -1;
}

static void gen_history(struct rng *r, struct gen_case *g, date_t around)
{
    g->hist_len = (size_t)between(r, 0, HIST_MAX);
    for (size_t i = 0; i < g->hist_len; i++) {
        struct adj_history_entry *e = &g->hist[i];
        e->incident_on = around + (date_t)between(r, -400, 400);
        e->remedy = chance(r, 50) ? ADJ_REMEDY_EXCHANGE : ADJ_REMEDY_REPAIR;
        e->status = chance(r, 70) ? ADJ_STATUS_APPROVED : ADJ_STATUS_DENIED;
        e->withdrawn = e->status == ADJ_STATUS_APPROVED && chance(r, 20);
        e->tag = i;
    }
}

static void gen_case(struct rng *r, const struct policy_set *ps, struct gen_case *g)
{
    memset(g, 0, sizeof(*g));
    g->f.policies = ps;
    gen_sub(r, &g->f.sub);
    gen_device(r, &g->f.sub, &g->f.device);
    date_t around = g->f.sub.applied_on + (date_t)between(r, -200, 1500);
    gen_history(r, g, around);
    g->n_claims = (size_t)between(r, 1, BATCH_K);
    for (size_t i = 0; i < g->n_claims; i++)
        gen_claim(r, &g->f, around, &g->claims[i]);
    g->f.today = g->claims[0].incident_on + (date_t)between(r, -3, 60);
}

/* ------------------------------------------------------------------------
 * Oracle: policy.md recomputed from the inputs
 * ------------------------------------------------------------------------ */

struct ctx {
    uint64_t seed;
    long index; /* case number, for the failure message */
    long approved, denied, refused, batches;
    long reasons[ADJ_R_COUNT];
};

static void count_window(const struct adj_history *h, struct window w, int32_t *uses,
                         int32_t *exchanges)
{
    *uses = 0;
    *exchanges = 0;
    for (size_t i = 0; i < h->len; i++) {
        const struct adj_history_entry *e = &h->entries[i];
        if (e->status != ADJ_STATUS_APPROVED || e->withdrawn)
            continue;
        if (e->incident_on < w.start || e->incident_on > w.end)
            continue;
        ++*uses;
        *exchanges += e->remedy == ADJ_REMEDY_EXCHANGE;
    }
}

static uint32_t device_reasons(const struct adj_facts *f, const struct policy *p,
                               const struct adj_claim *c)
{
    const struct adj_device *d = &f->device;
    uint32_t r = 0;
    if (memcmp(c->imei, d->imei, IMEI_LEN) != 0)
        r |= BIT(ADJ_R_IMEI_MISMATCH);
    if (c->incident_on < d->registered_on)
        r |= BIT(ADJ_R_INCIDENT_BEFORE_COVERAGE);
    if (c->cause == ADJ_CAUSE_NATURAL_FAILURE &&
        c->incident_on >= date_add_months(d->release_date, p->natural_failure_months))
        r |= BIT(ADJ_R_NATURAL_FAILURE_EXPIRED);
    if (c->remedy == ADJ_REMEDY_EXCHANGE && d->os == DEVICE_OS_IOS && !p->ios_exchange)
        r |= BIT(ADJ_R_EXCHANGE_NOT_OFFERED_IOS);
    return r;
}

static uint32_t expected_reasons(const struct adj_facts *f, const struct policy *p,
                                 const struct adj_claim *c, int32_t uses)
{
    uint32_t r = 0;
    if (!f->sub.option)
        r |= BIT(ADJ_R_OPTION_NOT_ENROLLED);
    if (f->sub.cancelled_on != DATE_NONE && f->sub.cancelled_on <= c->incident_on)
        r |= BIT(ADJ_R_OPTION_CANCELLED);
    if (!f->device.present)
        r |= BIT(ADJ_R_DEVICE_NOT_REGISTERED);
    else
        r |= device_reasons(f, p, c);
    if (uses >= p->max_uses)
        r |= BIT(ADJ_R_FREQUENCY_LIMIT);
    return r;
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------ */

/* Fails with the seed and case number in front of the message. */
#define CHECK(ctx, cond, fmt, ...)                                                                 \
    cr_assert((cond), "seed %#" PRIx64 " case %ld: " fmt, (ctx)->seed, (ctx)->index, ##__VA_ARGS__)

static void check_window(struct ctx *x, const struct policy *p, date_t applied_on,
                         const struct adj_claim *c, struct window w)
{
    CHECK(x, w.start <= c->incident_on && c->incident_on <= w.end, "window misses incident");
    if (p->window == POLICY_WINDOW_ROLLING_12_MONTHS) {
        CHECK(x, w.start == date_add_months(c->incident_on, -12) + 1, "rolling start");
        CHECK(x, w.end == c->incident_on, "rolling end");
        return;
    }
    int months = date_months_between(applied_on, w.start);
    CHECK(x, months % 12 == 0, "contract year starts %d months after applied_on", months);
    CHECK(x, w.start == date_add_months(applied_on, months), "start is not an anniversary");
    CHECK(x, w.end + 1 == date_add_months(applied_on, months + 12), "not exactly 12 months");
}

static void check_approval(struct ctx *x, const struct policy *p, const struct adj_claim *c,
                           const struct adj_decision *d, int32_t uses, int32_t exchanges)
{
    CHECK(x, (d->reasons & ~BIT(ADJ_R_CAP_EXCEEDED)) == 0, "approval reasons %#x", d->reasons);
    CHECK(x, d->use_number >= 1 && d->use_number <= p->max_uses, "use %d", d->use_number);
    CHECK(x, d->use_number == uses + 1, "use %d after %d uses", d->use_number, uses);
    CHECK(x, d->uses_remaining == p->max_uses - d->use_number, "remaining %d", d->uses_remaining);
    if (c->remedy == ADJ_REMEDY_REPAIR) {
        bool over = c->repair_estimate > p->repair_cap;
        CHECK(x, d->covered_amount + d->customer_charge == c->repair_estimate, "amounts");
        CHECK(x, d->covered_amount <= p->repair_cap, "covered above cap");
        CHECK(x, d->covered_amount == (over ? p->repair_cap : c->repair_estimate), "covered");
        CHECK(x, over == ((d->reasons & BIT(ADJ_R_CAP_EXCEEDED)) != 0), "cap_exceeded");
        enum adj_loaner want = p->loaner_os == DEVICE_OS_IOS ? ADJ_LOANER_IOS : ADJ_LOANER_ANDROID;
        CHECK(x, d->loaner == want, "loaner %d", d->loaner);
        return;
    }
    CHECK(x, d->reasons == 0, "exchange reasons %#x", d->reasons);
    CHECK(x, d->covered_amount == 0, "exchange covered %" PRId64, d->covered_amount);
    CHECK(x, d->customer_charge == p->exchange_fees[exchanges], "exchange fee %" PRId64,
          d->customer_charge);
    CHECK(x, d->loaner == ADJ_LOANER_NONE, "exchange loaner %d", d->loaner);
}

static void check_denial(struct ctx *x, const struct policy *p, const struct adj_decision *d,
                         int32_t uses)
{
    CHECK(x, d->reasons != 0, "denial without reasons");
    CHECK(x, (d->reasons & BIT(ADJ_R_CAP_EXCEEDED)) == 0, "denial with cap_exceeded");
    CHECK(x, d->covered_amount == 0 && d->customer_charge == 0, "denial with amounts");
    CHECK(x, d->use_number == 0, "denial use_number %d", d->use_number);
    CHECK(x, d->loaner == ADJ_LOANER_NONE, "denial loaner %d", d->loaner);
    int32_t left = uses < p->max_uses ? p->max_uses - uses : 0;
    CHECK(x, d->uses_remaining == left, "denial remaining %d, want %d", d->uses_remaining, left);
}

static void check_decision(struct ctx *x, const struct adj_facts *f, const struct adj_history *h,
                           const struct adj_claim *c, const struct adj_decision *d)
{
    const struct policy *p = policy_in_force(f->policies, c->incident_on);
    int32_t uses, exchanges;
    CHECK(x, d->policy == p, "policy");
    check_window(x, p, f->sub.applied_on, c, d->window);
    count_window(h, d->window, &uses, &exchanges);
    uint32_t want = expected_reasons(f, p, c, uses);
    CHECK(x, (d->reasons & ~BIT(ADJ_R_CAP_EXCEEDED)) == want, "reasons %#x, want %#x", d->reasons,
          want);
    CHECK(x, d->status == (want == 0 ? ADJ_STATUS_APPROVED : ADJ_STATUS_DENIED), "status");
    for (int i = 0; i < ADJ_R_COUNT; i++)
        x->reasons[i] += (d->reasons >> i) & 1;
    if (d->status == ADJ_STATUS_APPROVED) {
        x->approved++;
        check_approval(x, p, c, d, uses, exchanges);
    } else {
        x->denied++;
        check_denial(x, p, d, uses);
    }
}

/* A refusal is exactly the one the inputs call for: future first, then no policy. */
static void check_refusal(struct ctx *x, const struct adj_facts *f, const struct adj_claim *c,
                          int rc)
{
    int want = CLAIMD_OK;
    if (c->incident_on > f->today)
        want = CLAIMD_EFUTURE;
    else if (policy_in_force(f->policies, c->incident_on) == NULL)
        want = CLAIMD_ENOPOLICY;
    CHECK(x, rc == want, "rc %d, want %d", rc, want);
    x->refused += rc != CLAIMD_OK;
}

/* Decides into buffers of opposite fill: every byte must come out the same. */
static int decide_twice(struct ctx *x, const struct adj_facts *f, const struct adj_history *h,
                        const struct adj_claim *c, struct adj_decision *out)
{
    struct adj_decision again;
    struct claimd_error e1, e2;
    memset(out, 0x00, sizeof(*out));
    memset(&again, 0xff, sizeof(again));
    int rc = adj_decide(f, h, c, out, &e1);
    int rc2 = adj_decide(f, h, c, &again, &e2);
    CHECK(x, rc == rc2, "rc %d then %d", rc, rc2);
    if (rc == CLAIMD_OK)
        CHECK(x, memcmp(out, &again, sizeof(again)) == 0, "two decisions differ");
    return rc;
}

/* ------------------------------------------------------------------------
 * Batches: adj_decide_batch against one-by-one decisions
 * ------------------------------------------------------------------------ */

static void append(struct adj_history *h, const struct adj_claim *c, size_t i)
{
    struct adj_history_entry *e = &h->entries[h->len++];
    memset(e, 0, sizeof(*e));
    e->incident_on = c->incident_on;
    e->remedy = c->remedy;
    e->status = ADJ_STATUS_APPROVED;
    e->withdrawn = false;
    e->tag = ADJ_TAG_BATCH | (uint64_t)i;
}

static void same_entries(struct ctx *x, const struct adj_history *a, const struct adj_history *b)
{
    CHECK(x, a->len == b->len, "batch history %zu entries, one by one %zu", a->len, b->len);
    for (size_t i = 0; i < a->len; i++) {
        const struct adj_history_entry *p = &a->entries[i], *q = &b->entries[i];
        CHECK(x,
              p->incident_on == q->incident_on && p->remedy == q->remedy &&
                  p->status == q->status && p->withdrawn == q->withdrawn && p->tag == q->tag,
              "history entry %zu differs", i);
    }
}

static void check_batch(struct ctx *x, const struct gen_case *g)
{
    struct adj_history_entry ea[HIST_MAX + BATCH_K], eb[HIST_MAX + BATCH_K];
    struct adj_outcome out[BATCH_K];
    memcpy(ea, g->hist, sizeof(g->hist));
    memcpy(eb, g->hist, sizeof(g->hist));
    struct adj_history ha = {ea, g->hist_len, g->hist_len + g->n_claims};
    struct adj_history hb = {eb, g->hist_len, g->hist_len + g->n_claims};
    memset(out, 0xee, sizeof(out));
    CHECK(x, adj_decide_batch(&g->f, &ha, g->claims, g->n_claims, out) == CLAIMD_OK, "batch rc");
    for (size_t i = 0; i < g->n_claims; i++) {
        struct adj_decision d;
        struct claimd_error err = {NULL, NULL, NULL};
        memset(&d, 0, sizeof(d));
        int rc = adj_decide(&g->f, &hb, &g->claims[i], &d, &err);
        CHECK(x, out[i].rc == rc, "claim %zu: batch rc %d, alone %d", i, out[i].rc, rc);
        if (rc != CLAIMD_OK) {
            CHECK(x, out[i].err.code == err.code && out[i].err.field == err.field, "error");
            continue;
        }
        CHECK(x, memcmp(&out[i].decision, &d, sizeof(d)) == 0, "claim %zu decision differs", i);
        check_decision(x, &g->f, &hb, &g->claims[i], &d);
        if (d.status == ADJ_STATUS_APPROVED)
            append(&hb, &g->claims[i], i);
    }
    same_entries(x, &ha, &hb);
    x->batches++;
}

/* ------------------------------------------------------------------------
 * Passes
 * ------------------------------------------------------------------------ */

static void report(const struct ctx *x, const char *name)
{
    printf("invariants %s: seed %#" PRIx64 ", %d cases: %ld approved, %ld denied, %ld refused, "
           "%ld batches\n",
           name, x->seed, CASES, x->approved, x->denied, x->refused, x->batches);
    for (int i = 0; i < ADJ_R_COUNT; i++)
        printf("  %-26s %ld\n", adj_reason_name((enum adj_reason)i), x->reasons[i]);
    fflush(stdout);
}

/* Every reason the policy can give must have occurred, or the generator is too narrow. */
static void check_coverage(const struct ctx *x, const struct policy *p)
{
    cr_assert_gt(x->approved, CASES / 20, "too few approvals");
    cr_assert_gt(x->denied, CASES / 20, "too few denials");
    cr_assert_gt(x->refused, 0, "no refusals generated");
    for (int i = 0; i < ADJ_R_COUNT; i++) {
        if (i == ADJ_R_EXCHANGE_NOT_OFFERED_IOS && p->ios_exchange)
            continue;
        cr_assert_gt(x->reasons[i], 0, "reason %s never produced",
                     adj_reason_name((enum adj_reason)i));
    }
}

static void run_pass(const struct policy *p, uint64_t seed, const char *name)
{
    static struct gen_case g;
    struct policy_set ps = {p, 1};
    struct rng r = {seed};
    struct ctx x = {.seed = seed};
    cr_assert_eq(policy_validate(p, NULL), CLAIMD_OK);
    printf("invariants %s: seed %#" PRIx64 "\n", name, seed);
    gen_imeis(&r);
    for (x.index = 0; x.index < CASES; x.index++) {
        struct adj_decision d;
        gen_case(&r, &ps, &g);
        struct adj_history h = {g.hist, g.hist_len, HIST_MAX};
        int rc = decide_twice(&x, &g.f, &h, &g.claims[0], &d);
        check_refusal(&x, &g.f, &g.claims[0], rc);
        if (rc == CLAIMD_OK)
            check_decision(&x, &g.f, &h, &g.claims[0], &d);
        check_batch(&x, &g);
    }
    report(&x, name);
    check_coverage(&x, p);
}

Test(invariants, policy_2025_01)
{
    struct policy p;
    policy_default(&p);
    run_pass(&p, SEED_PASS1, "2025-01");
}

Test(invariants, rolling_three_uses_ios)
{
    struct policy p;
    policy_default(&p);
    strcpy(p.name, "rolling-3");
    p.window = POLICY_WINDOW_ROLLING_12_MONTHS;
    p.max_uses = 3;
    p.exchange_fee_count = 3;
    p.exchange_fees[2] = 11000;
    p.ios_exchange = true;
    p.loaner_os = DEVICE_OS_IOS;
    run_pass(&p, SEED_PASS2, "rolling-3");
}
