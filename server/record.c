/* Reading stored claims from result rows, and records of fresh decisions. */
#include "record.h"

#include <stdlib.h>
#include <string.h>

static int copy_text(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        return CLAIMD_EDB;
    memcpy(out, s, n + 1);
    return 0;
}

static int read_int(const PGresult *res, int row, int col, int64_t null_value, int64_t *out)
{
    if (PQgetisnull(res, row, col)) {
        *out = null_value;
        return 0;
    }
    char *end;
    const char *s = PQgetvalue(res, row, col);
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return CLAIMD_EDB;
    *out = v;
    return 0;
}

static int read_date(const PGresult *res, int row, int col, date_t *out)
{
    const char *s = PQgetvalue(res, row, col);
    return date_parse(s, strlen(s), out) == 0 ? 0 : CLAIMD_EDB;
}

int record_parse_reasons(const char *s, uint32_t *out)
{
    uint32_t bits = 0;
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        enum adj_reason r;
        if (adj_reason_parse(s, len, &r) != 0)
            return CLAIMD_EDB;
        bits |= 1u << r;
        s += len + (comma != NULL);
    }
    *out = bits;
    return 0;
}

static int read_enums(const PGresult *res, int row, int col, struct claim_record *rec)
{
    const char *status = PQgetvalue(res, row, col + 3);
    const char *remedy = PQgetvalue(res, row, col + 5);
    enum adj_remedy rm;
    if (adj_remedy_parse(remedy, strlen(remedy), &rm) != 0)
        return CLAIMD_EDB;
    rec->remedy = rm;
    rec->status = strcmp(status, "approved") == 0 ? ADJ_STATUS_APPROVED : ADJ_STATUS_DENIED;
    rec->withdrawn = PQgetvalue(res, row, col + 4)[0] == 't';
    const char *loaner = PQgetisnull(res, row, col + 14) ? "" : PQgetvalue(res, row, col + 14);
    rec->loaner = strcmp(loaner, "android") == 0 ? ADJ_LOANER_ANDROID
                  : strcmp(loaner, "ios") == 0   ? ADJ_LOANER_IOS
                                                 : ADJ_LOANER_NONE;
    return record_parse_reasons(PQgetvalue(res, row, col + 9), &rec->reasons);
}

int record_read(const PGresult *res, int row, int col, struct claim_record *rec)
{
    int64_t v[5];
    if (PQnfields(res) < col + RECORD_COLUMNS)
        return CLAIMD_EDB;
    memset(rec, 0, sizeof(*rec));
    int rc = read_int(res, row, col, 0, &rec->seq);
    rc = rc ? rc : copy_text(rec->claim_ref, sizeof(rec->claim_ref), PQgetvalue(res, row, col + 1));
    rc = rc ? rc
            : copy_text(rec->subscription_ref, sizeof(rec->subscription_ref),
                        PQgetvalue(res, row, col + 2));
    rc = rc ? rc : read_enums(res, row, col, rec);
    rc = rc ? rc : read_int(res, row, col + 6, -1, &v[0]);
    rc = rc ? rc : read_int(res, row, col + 7, 0, &v[1]);
    rc = rc ? rc : read_int(res, row, col + 8, 0, &v[2]);
    rc = rc ? rc : read_int(res, row, col + 10, 0, &v[3]);
    rc = rc ? rc : read_int(res, row, col + 11, 0, &v[4]);
    rc = rc ? rc : read_date(res, row, col + 12, &rec->window.start);
    rc = rc ? rc : read_date(res, row, col + 13, &rec->window.end);
    rc = rc ? rc
            : copy_text(rec->policy_version, sizeof(rec->policy_version),
                        PQgetvalue(res, row, col + 15));
    rc = rc ? rc
            : copy_text(rec->decided_at, sizeof(rec->decided_at), PQgetvalue(res, row, col + 16));
    rc = rc ? rc
            : copy_text(rec->withdrawn_at, sizeof(rec->withdrawn_at),
                        PQgetvalue(res, row, col + 17));
    if (rc != 0)
        return rc;
    rec->repair_estimate = v[0];
    rec->covered_amount = v[1];
    rec->customer_charge = v[2];
    rec->use_number = (int32_t)v[3];
    rec->uses_remaining = (int32_t)v[4];
    return 0;
}

void record_from_decision(struct claim_record *rec, const struct adj_claim *c,
                          const struct adj_decision *d)
{
    rec->status = d->status;
    rec->withdrawn = false;
    rec->remedy = c->remedy;
    rec->repair_estimate = c->repair_estimate;
    rec->covered_amount = d->covered_amount;
    rec->customer_charge = d->customer_charge;
    rec->reasons = d->reasons;
    rec->use_number = d->use_number;
    rec->uses_remaining = d->uses_remaining;
    rec->window = d->window;
    rec->loaner = d->loaner;
    memcpy(rec->policy_version, d->policy->name, sizeof(rec->policy_version));
    rec->withdrawn_at[0] = '\0';
}

/* A nullable date column: DATE_NONE for NULL; CLAIMD_EDB when malformed. */
static int read_opt_date(const PGresult *res, int row, int col, date_t *out)
{
    if (PQgetisnull(res, row, col)) {
        *out = DATE_NONE;
        return 0;
    }
    return read_date(res, row, col, out);
}

static int read_device(const PGresult *res, int row, int col, struct adj_device *dev)
{
    memset(dev, 0, sizeof(*dev));
    if (PQgetisnull(res, row, col))
        return 0;
    const char *imei = PQgetvalue(res, row, col), *os = PQgetvalue(res, row, col + 1);
    const char *from = PQgetvalue(res, row, col + 4);
    enum device_os o;
    enum adj_purchase pf;
    if (strlen(imei) != IMEI_LEN || device_os_parse(os, strlen(os), &o) != 0 ||
        adj_purchase_parse(from, strlen(from), &pf) != 0)
        return CLAIMD_EDB;
    dev->present = true;
    memcpy(dev->imei, imei, IMEI_LEN);
    dev->os = o;
    dev->purchased_from = pf;
    if (copy_text(dev->model, sizeof(dev->model), PQgetvalue(res, row, col + 2)) != 0)
        return CLAIMD_EDB;
    int rc = read_date(res, row, col + 3, &dev->release_date);
    return rc ? rc : read_date(res, row, col + 5, &dev->registered_on);
}

int record_read_facts(const PGresult *res, int row, int col, struct adj_subscription *sub,
                      struct adj_device *dev)
{
    if (PQnfields(res) < col + FACTS_COLUMNS)
        return CLAIMD_EDB;
    sub->option = PQgetvalue(res, row, col)[0] == 't';
    int rc = read_date(res, row, col + 1, &sub->applied_on);
    rc = rc ? rc : read_opt_date(res, row, col + 2, &sub->activated_on);
    rc = rc ? rc : read_opt_date(res, row, col + 3, &sub->cancelled_on);
    return rc ? rc : read_device(res, row, col + 4, dev);
}
