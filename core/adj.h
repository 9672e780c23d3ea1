/*
 * The claim decision: the facts of one subscription, its history of uses and
 * the policy versions in, a decision (or a refusal that is not a decision)
 * out. Also the interface the storage layer codes against: the history entry,
 * the incident-date range of history a claim or a batch needs, reason codes as
 * stable strings, and the fixed capacity bounds.
 */
#ifndef CLAIMD_CORE_ADJ_H
#define CLAIMD_CORE_ADJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "date.h"
#include "error.h"
#include "imei.h"
#include "policy.h"

/** At most this many history entries are passed for one decision or batch. */
#define ADJ_HISTORY_MAX 4096
/** At most this many claims are decided in one batch. */
#define ADJ_BATCH_MAX 1000
/** Longest device model name, in bytes. */
#define ADJ_MODEL_MAX 64
/** Largest repair estimate a claim may carry, in yen. */
#define ADJ_ESTIMATE_MAX 10000000

enum adj_cause {
    ADJ_CAUSE_NATURAL_FAILURE = 0,
    ADJ_CAUSE_PHYSICAL_DAMAGE,
};

enum adj_damage {
    ADJ_DAMAGE_NONE = 0, /* natural failure carries no damage */
    ADJ_DAMAGE_SCREEN,
    ADJ_DAMAGE_WATER,
    ADJ_DAMAGE_TOTAL_LOSS,
    ADJ_DAMAGE_OTHER,
};

enum adj_remedy {
    ADJ_REMEDY_REPAIR = 0,
    ADJ_REMEDY_EXCHANGE,
};

enum adj_status {
    ADJ_STATUS_APPROVED = 0,
    ADJ_STATUS_DENIED,
};

enum adj_purchase {
    ADJ_PURCHASED_OTHER = 0,
    ADJ_PURCHASED_CARRIER,
};

/*
 * Reasons in the order policy.md lists them; a decision's reasons are a bit
 * set and always come out in this order. cap_exceeded only accompanies an
 * approval.
 */
enum adj_reason {
    ADJ_R_OPTION_NOT_ENROLLED = 0,
    ADJ_R_OPTION_CANCELLED,
    ADJ_R_DEVICE_NOT_REGISTERED,
    ADJ_R_IMEI_MISMATCH,
    ADJ_R_INCIDENT_BEFORE_COVERAGE,
    ADJ_R_NATURAL_FAILURE_EXPIRED,
    ADJ_R_EXCHANGE_NOT_OFFERED_IOS,
    ADJ_R_FREQUENCY_LIMIT,
    ADJ_R_CAP_EXCEEDED,
    ADJ_R_COUNT
};

/** A subscription's dates. activated_on/cancelled_on may be DATE_NONE. */
struct adj_subscription {
    bool option; /* device_protection chosen at application */
    date_t applied_on;
    date_t activated_on;
    date_t cancelled_on;
};

/** The registered device; present is false while none is registered. */
struct adj_device {
    bool present;
    char imei[IMEI_LEN];
    enum device_os os;
    char model[ADJ_MODEL_MAX + 1]; /* NUL-terminated; not a rule input */
    date_t release_date;
    date_t registered_on;
    enum adj_purchase purchased_from;
};

/**
 * One earlier claim of the subscription as storage holds it. Only approved,
 * not withdrawn entries are uses; the core skips the rest, so storage may pass
 * denied or withdrawn claims without filtering. tag is the caller's (a row id
 * or an index) and is never interpreted.
 */
struct adj_history_entry {
    date_t incident_on;
    enum adj_remedy remedy;
    enum adj_status status;
    bool withdrawn;
    uint64_t tag;
};

/**
 * The history of one subscription: entries[0..len) hold earlier claims in any
 * order. A batch appends each approval (tag = ADJ_TAG_BATCH + claim index),
 * so cap must leave room for them.
 */
struct adj_history {
    struct adj_history_entry *entries;
    size_t len;
    size_t cap;
};

#define ADJ_TAG_BATCH (UINT64_C(1) << 63)

/** One claim as the API receives it, already parsed. */
struct adj_claim {
    char imei[IMEI_LEN];
    date_t incident_on;
    enum adj_cause cause;
    enum adj_damage damage;
    enum adj_remedy remedy;
    int64_t repair_estimate; /* -1 for an exchange */
};

/** Everything the decision reads besides the history and the claim. */
struct adj_facts {
    const struct policy_set *policies;
    struct adj_subscription sub;
    struct adj_device device;
    date_t today; /* Japan date the decision is made on */
};

enum adj_loaner {
    ADJ_LOANER_NONE = 0,
    ADJ_LOANER_ANDROID,
    ADJ_LOANER_IOS,
};

/** A decision. use_number is 0 for a denial (null in JSON). */
struct adj_decision {
    enum adj_status status;
    uint32_t reasons; /* bit (1u << enum adj_reason) */
    int64_t covered_amount;
    int64_t customer_charge;
    int32_t use_number;
    int32_t uses_remaining;
    struct window window;
    enum adj_loaner loaner;
    const struct policy *policy;
};

/** The outcome of one claim of a batch: rc 0 and a decision, or a refusal. */
struct adj_outcome {
    int rc;
    struct claimd_error err;
    struct adj_decision decision;
};

/**
 * Checks a claim on its own: valid IMEI, damage given exactly for physical
 * damage, an estimate in [0, ADJ_ESTIMATE_MAX] for a repair and none for an
 * exchange, a valid incident date. Returns 0 or CLAIMD_EINVAL with err set.
 */
CLAIMD_MUSTCHECK int adj_claim_validate(const struct adj_claim *c, struct claimd_error *err);

/**
 * Decides one claim against the history. Returns 0 with *out filled (an
 * approval or a denial), CLAIMD_EINVAL for a claim adj_claim_validate refuses,
 * CLAIMD_EFUTURE when incident_on is after f->today, CLAIMD_ENOPOLICY when no
 * version is in force on incident_on, CLAIMD_ECAPACITY when the history holds
 * more than ADJ_HISTORY_MAX entries. The history is not modified.
 */
CLAIMD_MUSTCHECK int adj_decide(const struct adj_facts *f, const struct adj_history *h,
                                const struct adj_claim *c, struct adj_decision *out,
                                struct claimd_error *err);

/**
 * Decides n claims of one subscription in order; every approval is appended to
 * h and so becomes history for the claims after it. Each out[i] carries its
 * own result; one refused claim does not stop the others. Returns 0, or
 * CLAIMD_ECAPACITY (nothing decided) when n > ADJ_BATCH_MAX or when h could
 * overflow ADJ_HISTORY_MAX or h->cap while appending.
 */
CLAIMD_MUSTCHECK int adj_decide_batch(const struct adj_facts *f, struct adj_history *h,
                                      const struct adj_claim *claims, size_t n,
                                      struct adj_outcome *out);

/**
 * The incident-date range [from, to] of history that deciding these n claims
 * reads: the union of their windows. Claims that would be refused (future,
 * no policy, invalid) are left out; if all are, returns CLAIMD_ENOPOLICY.
 * Storage loads every entry with incident_on in the range (and may load more).
 */
CLAIMD_MUSTCHECK int adj_history_range(const struct adj_facts *f, const struct adj_claim *claims,
                                       size_t n, struct window *out);

/** Counts uses (approved, not withdrawn) in w, and the exchanges among them. */
void adj_count_uses(const struct adj_history *h, struct window w, int32_t *uses,
                    int32_t *exchanges);

/** Stable lower_snake names, as stored and as sent in JSON. */
const char *adj_reason_name(enum adj_reason r);
const char *adj_status_name(enum adj_status s);
const char *adj_cause_name(enum adj_cause c);
const char *adj_damage_name(enum adj_damage d);
const char *adj_remedy_name(enum adj_remedy r);
const char *adj_loaner_name(enum adj_loaner l); /* NULL for ADJ_LOANER_NONE */
const char *adj_purchase_name(enum adj_purchase p);

/**
 * Reverse look-ups of the names above for parsers and storage: return 0 and
 * set *out, or CLAIMD_EINVAL. s need not be NUL-terminated.
 */
CLAIMD_MUSTCHECK int adj_reason_parse(const char *s, size_t len, enum adj_reason *out);
CLAIMD_MUSTCHECK int adj_cause_parse(const char *s, size_t len, enum adj_cause *out);
CLAIMD_MUSTCHECK int adj_damage_parse(const char *s, size_t len, enum adj_damage *out);
CLAIMD_MUSTCHECK int adj_remedy_parse(const char *s, size_t len, enum adj_remedy *out);
CLAIMD_MUSTCHECK int adj_purchase_parse(const char *s, size_t len, enum adj_purchase *out);

#endif
