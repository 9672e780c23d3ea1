/*
 * The rules of a subscription outside a claim: creation, activation,
 * cancellation, device registration (every refusal in the contract's order),
 * the state as of a day and billing.
 */
#ifndef CLAIMD_CORE_SUB_H
#define CLAIMD_CORE_SUB_H

#include <stdbool.h>
#include <stdint.h>

#include "adj.h"
#include "date.h"
#include "error.h"
#include "policy.h"

/*
 * The answer to a change of a subscription. SUB_OK applies it, SUB_REPEAT
 * means exactly this change already took effect (a retry: answer 200, write
 * nothing); every other value is a refusal whose stable code sub_verdict_name
 * gives.
 */
enum sub_verdict {
    SUB_OK = 0,
    SUB_REPEAT,
    SUB_DATE_BEFORE_APPLICATION,        /* 422 */
    SUB_ALREADY_ACTIVATED,              /* 409 */
    SUB_ALREADY_CANCELLED,              /* 409 */
    SUB_INVALID_IMEI,                   /* 400 */
    SUB_OPTION_NOT_ENROLLED,            /* 422 */
    SUB_OPTION_CANCELLED,               /* 422 */
    SUB_NOT_ACTIVATED,                  /* 422 */
    SUB_REGISTRATION_BEFORE_ACTIVATION, /* 422 */
    SUB_REGISTRATION_WINDOW_CLOSED,     /* 422 */
    SUB_CARRIER_PURCHASED_DEVICE,       /* 422 */
    SUB_DEVICE_ALREADY_REGISTERED,      /* 409 */
    SUB_REENROLLMENT_FORBIDDEN,         /* 422 */
    SUB_IMEI_IN_USE,                    /* 409 */
    SUB_NO_POLICY_IN_FORCE,             /* 422 */
    SUB_DUPLICATE_SUBSCRIPTION,         /* 409 */
    SUB_OPTION_ONLY_AT_APPLICATION,     /* 409 */
    SUB_CLAIM_DENIED,                   /* 409 */
    SUB_VERDICT_COUNT
};

/** What storage knows about an IMEI in the tenant, for a registration. */
struct sub_imei_facts {
    bool covered_on_cancelled_option; /* on any cancelled option of the tenant */
    bool live_elsewhere;              /* registered on another live subscription */
};

/** Stable lower_snake code of a verdict ("ok", "repeat", "imei_in_use", ...). */
const char *sub_verdict_name(enum sub_verdict v);

/** HTTP status the contract gives a verdict (200 for SUB_OK and SUB_REPEAT). */
int sub_verdict_http_status(enum sub_verdict v);

/**
 * A new subscription's dates: activated_on (may be DATE_NONE) must not be
 * before applied_on.
 */
enum sub_verdict sub_check_create(const struct adj_subscription *s);

/**
 * A creation whose subscription_ref is taken by `stored`: SUB_REPEAT when the
 * request carries exactly the stored dates and option (an omitted
 * activated_on matches only a subscription never activated), otherwise
 * SUB_DUPLICATE_SUBSCRIPTION.
 */
enum sub_verdict sub_check_create_again(const struct adj_subscription *stored,
                                        const struct adj_subscription *req);

/** Adding the option after application: always SUB_OPTION_ONLY_AT_APPLICATION. */
enum sub_verdict sub_check_add_option(const struct adj_subscription *s);

/**
 * Withdrawal of a claim: SUB_OK for an approved claim, SUB_REPEAT when it is
 * withdrawn already, SUB_CLAIM_DENIED for a denial.
 */
enum sub_verdict sub_check_withdraw(enum adj_status status, bool withdrawn);

/** Activation on day d: SUB_OK, SUB_REPEAT or a refusal. */
enum sub_verdict sub_check_activate(const struct adj_subscription *s, date_t d);

/** Cancellation of the option on day d: SUB_OK, SUB_REPEAT or a refusal. */
enum sub_verdict sub_check_cancel(const struct adj_subscription *s, date_t d);

/**
 * Registration of dev (dev->present ignored) on the subscription whose
 * current device is cur; the first failing check in the contract's order
 * answers. A registration identical to the registered device is SUB_REPEAT.
 * An option with a recorded cancellation refuses every registration
 * (SUB_OPTION_CANCELLED), whatever its dates.
 */
enum sub_verdict sub_check_register(const struct policy_set *ps, const struct adj_subscription *s,
                                    const struct adj_device *cur, const struct adj_device *dev,
                                    const struct sub_imei_facts *facts);

enum sub_option_status {
    SUB_OPT_NONE = 0,
    SUB_OPT_ACTIVE,
    SUB_OPT_CANCELLED,
};

const char *sub_option_status_name(enum sub_option_status s);

/** The subscription as of a day, everything but the claim_refs of the uses. */
struct sub_state {
    enum sub_option_status option_status;
    const struct policy *policy; /* in force on the day */
    struct window window;
    int32_t uses;
    int32_t uses_remaining;
    /* -1 when no exchange could be approved: the option is not active on the
     * day, the window is full, no device is registered, or the device is an
     * iOS one under a version without ios_exchange. */
    int64_t next_exchange_fee;
    int64_t monthly_fee;
    int32_t free_month_count;
    date_t free_months[POLICY_FREE_MONTHS_MAX]; /* first day of each free month */
    int64_t fee_for_month;
};

/**
 * Fills st for day `on`. The window's uses are the approved, not withdrawn
 * entries of h whose incident falls in the window (incidents after `on`
 * included); adj_count_uses and the window let the caller list their tags.
 * Returns 0, CLAIMD_ENOPOLICY when no version is in force on `on`, or
 * CLAIMD_ECAPACITY when h holds more than ADJ_HISTORY_MAX entries.
 */
CLAIMD_MUSTCHECK int sub_state_on(const struct policy_set *ps, const struct adj_subscription *s,
                                  const struct adj_device *dev, const struct adj_history *h,
                                  date_t on, struct sub_state *st);

/**
 * The fee billed for the month that holds day m: 0 without the option, before
 * the month of application, in a free month or after the month of
 * cancellation (which is billed in full); otherwise the monthly_fee of the
 * version in force on the month's first day (0 when none is).
 */
int64_t sub_fee_for_month(const struct policy_set *ps, const struct adj_subscription *s, date_t m);

#endif
