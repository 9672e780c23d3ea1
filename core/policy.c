/*
 * Policy versions: the published defaults, validation of a version and of a
 * set, the version in force on a day, and the windows a version defines.
 */
#include "policy.h"

#include <string.h>

#include "names.h"

static const char *const window_names[] = {"contract_year", "rolling_12_months"};
static const char *const os_names[] = {"android", "ios"};

void policy_default(struct policy *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->name, "2025-01", sizeof("2025-01"));
    p->effective_from = date_from_ymd(2020, 1, 1);
    p->monthly_fee = 550;
    p->free_months = 2;
    p->repair_cap = 50000;
    p->exchange_fees[0] = 5500;
    p->exchange_fees[1] = 8800;
    p->exchange_fee_count = 2;
    p->max_uses = 2;
    p->window = POLICY_WINDOW_CONTRACT_YEAR;
    p->natural_failure_months = 36;
    p->registration_days = 14;
    p->ios_exchange = false;
    p->loaner_os = DEVICE_OS_ANDROID;
}

/* Length of a NUL-terminated name, looking at most max + 1 bytes. */
static size_t name_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] != '\0')
        n++;
    return n;
}

/* Every policy refusal is an invalid_field of one member. */
static int bad(struct claimd_error *err, const char *field, const char *message)
{
    return claimd_error_set(err, CLAIMD_EINVAL, field, "invalid_field", message);
}

static int name_ok(const char *name)
{
    size_t len = name_len(name, POLICY_NAME_MAX);
    if (len == 0 || len > POLICY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static int yen_ok(int64_t v)
{
    return v >= 0 && v <= POLICY_YEN_MAX;
}

static int fees_ok(const struct policy *p)
{
    if (p->exchange_fee_count != p->max_uses)
        return 0;
    for (int i = 0; i < p->exchange_fee_count; i++) {
        if (!yen_ok(p->exchange_fees[i]))
            return 0;
    }
    return 1;
}

int policy_validate(const struct policy *p, struct claimd_error *err)
{
    if (!name_ok(p->name))
        return bad(err, "name", "name must be 1-32 characters of [A-Za-z0-9._-]");
    if (p->effective_from == DATE_NONE)
        return bad(err, "effective_from", "effective_from is required");
    if (!yen_ok(p->monthly_fee))
        return bad(err, "monthly_fee", "monthly_fee must be 0-10000000 yen");
    if (p->free_months < 0 || p->free_months > POLICY_FREE_MONTHS_MAX)
        return bad(err, "free_months", "free_months must be 0-24");
    if (!yen_ok(p->repair_cap))
        return bad(err, "repair_cap", "repair_cap must be 0-10000000 yen");
    if (p->max_uses < 1 || p->max_uses > POLICY_MAX_USES_MAX)
        return bad(err, "max_uses", "max_uses must be 1-16");
    if (!fees_ok(p))
        return bad(err, "exchange_fees", "exchange_fees must hold max_uses fees of 0-10000000");
    if (p->window != POLICY_WINDOW_CONTRACT_YEAR && p->window != POLICY_WINDOW_ROLLING_12_MONTHS)
        return bad(err, "window", "window must be contract_year or rolling_12_months");
    if (p->natural_failure_months < 0 || p->natural_failure_months > POLICY_MONTHS_MAX)
        return bad(err, "natural_failure_months", "natural_failure_months must be 0-600");
    if (p->registration_days < 0 || p->registration_days > POLICY_REG_DAYS_MAX)
        return bad(err, "registration_days", "registration_days must be 0-366");
    if (p->loaner_os != DEVICE_OS_ANDROID && p->loaner_os != DEVICE_OS_IOS)
        return bad(err, "loaner_os", "loaner_os must be android or ios");
    return CLAIMD_OK;
}

int policy_set_validate(const struct policy_set *s, struct claimd_error *err)
{
    if (s->v == NULL || s->n == 0 || s->n > POLICY_VERSIONS_MAX)
        return bad(err, "", "a policy set holds 1-64 versions");
    for (size_t i = 0; i < s->n; i++) {
        int rc = policy_validate(&s->v[i], err);
        if (rc != CLAIMD_OK)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->v[i].name, s->v[j].name) == 0)
                return bad(err, "name", "two versions share a name");
            if (s->v[i].effective_from == s->v[j].effective_from)
                return bad(err, "effective_from", "two versions share an effective_from");
        }
    }
    return CLAIMD_OK;
}

const struct policy *policy_in_force(const struct policy_set *s, date_t d)
{
    const struct policy *best = NULL;
    for (size_t i = 0; i < s->n; i++) {
        const struct policy *p = &s->v[i];
        if (p->effective_from <= d && (best == NULL || p->effective_from > best->effective_from))
            best = p;
    }
    return best;
}

const struct policy *policy_find(const struct policy_set *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *n = s->v[i].name;
        if (name_len(n, POLICY_NAME_MAX) == len && memcmp(n, name, len) == 0)
            return &s->v[i];
    }
    return NULL;
}

/* Floor division of a possibly negative month count by 12. */
static int floor_div12(int months)
{
    return months >= 0 ? months / 12 : -((-months + 11) / 12);
}

/* The day `day` of month/year, clamped to the month's last day. */
static date_t clamped(int year, int month, int day)
{
    int last = date_days_in_month(year, month);
    return date_from_ymd(year, month, day < last ? day : last);
}

/*
 * Contract years are computed from applied_on each time (never by stepping
 * from the previous anniversary), so that a start on the 29th/31st keeps its
 * day in the months that have it. k = floor(months / 12) is exact unless d
 * falls in the anniversary's month before its day; then it is one less.
 */
static struct window contract_year_of(date_t applied_on, date_t d)
{
    int ay, am, ad, y, m, dd;
    date_to_ymd(applied_on, &ay, &am, &ad);
    date_to_ymd(d, &y, &m, &dd);
    int k = floor_div12((y * 12 + m) - (ay * 12 + am));
    date_t start = clamped(ay + k, am, ad);
    if (start > d) {
        k--;
        start = clamped(ay + k, am, ad);
    }
    struct window w = {start, clamped(ay + k + 1, am, ad) - 1};
    return w;
}

struct window policy_window_of(const struct policy *p, date_t applied_on, date_t d)
{
    if (p->window == POLICY_WINDOW_ROLLING_12_MONTHS) {
        struct window w = {date_add_months(d, -12) + 1, d};
        return w;
    }
    return contract_year_of(applied_on, d);
}

const char *policy_window_name(enum policy_window w)
{
    return (unsigned)w < 2 ? window_names[w] : "unknown";
}

const char *device_os_name(enum device_os os)
{
    return (unsigned)os < 2 ? os_names[os] : "unknown";
}

int policy_window_parse(const char *s, size_t len, enum policy_window *out)
{
    int i = names_find(window_names, 2, s, len);
    if (i < 0)
        return CLAIMD_EINVAL;
    *out = (enum policy_window)i;
    return CLAIMD_OK;
}

int device_os_parse(const char *s, size_t len, enum device_os *out)
{
    int i = names_find(os_names, 2, s, len);
    if (i < 0)
        return CLAIMD_EINVAL;
    *out = (enum device_os)i;
    return CLAIMD_OK;
}
