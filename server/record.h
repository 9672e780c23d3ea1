/*
 * A stored claim as the API shows it, and its reading from a result row: the
 * one SELECT list every claim read uses (replays, GET, history).
 */
#ifndef CLAIMD_SERVER_RECORD_H
#define CLAIMD_SERVER_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "adj.h"

#define REF_MAX       64 /* bytes of a subscription_ref or claim_ref */
#define TIMESTAMP_MAX 40 /* "2026-11-24T10:00:00.123+09:00" and a NUL */

struct claim_record {
    int64_t seq;
    char claim_ref[REF_MAX + 1];
    char subscription_ref[REF_MAX + 1];
    enum adj_status status;
    bool withdrawn;
    enum adj_remedy remedy;
    int64_t repair_estimate; /* -1: null (an exchange) */
    int64_t covered_amount;
    int64_t customer_charge;
    uint32_t reasons;
    int32_t use_number; /* 0: null */
    int32_t uses_remaining;
    struct window window;
    enum adj_loaner loaner;
    char policy_version[POLICY_NAME_MAX + 1];
    char decided_at[TIMESTAMP_MAX];
    char withdrawn_at[TIMESTAMP_MAX]; /* "" while not withdrawn */
};

/*
 * The columns record_read expects, in order, over `claims c JOIN
 * subscriptions s` (RECORD_COLUMNS of them). Timestamps come out as Japan
 * time with an explicit +09:00 offset, whatever the session's TimeZone.
 */
#define RECORD_SELECT                                                                              \
    "c.seq, c.claim_ref, s.subscription_ref, c.status, c.withdrawn_at IS NOT NULL, c.remedy, "     \
    "c.repair_estimate, c.covered_amount, c.customer_charge, array_to_string(c.reasons, ','), "    \
    "c.use_number, c.uses_remaining, c.window_start, c.window_end, c.loaner, c.policy_version, "   \
    "to_char(c.decided_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+09:00\"'), "  \
    "to_char(c.withdrawn_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+09:00\"')"
#define RECORD_COLUMNS 18

/** SQL for a Japan-time RFC 3339 timestamp of a timestamptz expression. */
#define RECORD_TS(expr)                                                                            \
    "to_char(" expr " AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+09:00\"')"

/*
 * The columns record_read_facts expects over `subscriptions s LEFT JOIN
 * devices d`: the subscription's dates and option, and the device (all NULL
 * while none is registered).
 */
#define FACTS_SELECT                                                                               \
    "s.device_protection, s.applied_on, s.activated_on, s.cancelled_on, d.imei, d.os, d.model, "   \
    "d.release_date, d.purchased_from, d.registered_on"
#define FACTS_COLUMNS 10

/** Reads FACTS_COLUMNS columns from col of row; 0 or CLAIMD_EDB. */
CLAIMD_MUSTCHECK int record_read_facts(const PGresult *res, int row, int col,
                                       struct adj_subscription *sub, struct adj_device *dev);

/** Reads RECORD_COLUMNS columns from col of row into rec; 0 or CLAIMD_EDB. */
CLAIMD_MUSTCHECK int record_read(const PGresult *res, int row, int col, struct claim_record *rec);

/** Reasons "a,b" (as array_to_string gives them) into a bit set; 0 or CLAIMD_EDB. */
CLAIMD_MUSTCHECK int record_parse_reasons(const char *s, uint32_t *out);

/** Fills a record from a fresh decision (decided_at and seq come later). */
void record_from_decision(struct claim_record *rec, const struct adj_claim *c,
                          const struct adj_decision *d);

#endif
