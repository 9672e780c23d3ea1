/*
 * Policy versions: the parameters of the adjudication policy as a fixed struct,
 * their validation, the version in force on a day, and the frequency windows
 * a version defines.
 */
#ifndef CLAIMD_CORE_POLICY_H
#define CLAIMD_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "date.h"
#include "error.h"

/** Upper bounds that keep every policy struct fixed-size. */
#define POLICY_NAME_MAX        32  /* bytes of a version name, NUL excluded */
#define POLICY_MAX_USES_MAX    16  /* largest max_uses a version may set */
#define POLICY_FREE_MONTHS_MAX 24  /* largest free_months a version may set */
#define POLICY_MONTHS_MAX      600 /* largest natural_failure_months */
#define POLICY_REG_DAYS_MAX    366 /* largest registration_days */
#define POLICY_YEN_MAX         10000000
#define POLICY_VERSIONS_MAX    64 /* versions a set may hold */

enum policy_window {
    POLICY_WINDOW_CONTRACT_YEAR = 0,
    POLICY_WINDOW_ROLLING_12_MONTHS,
};

/** The operating system of a device, and of a loaner. */
enum device_os {
    DEVICE_OS_ANDROID = 0,
    DEVICE_OS_IOS,
};

/** One policy version; every parameter of the policy table. */
struct policy {
    char name[POLICY_NAME_MAX + 1];
    date_t effective_from;
    int64_t monthly_fee;
    int32_t free_months;
    int64_t repair_cap;
    int64_t exchange_fees[POLICY_MAX_USES_MAX]; /* max_uses entries are used */
    int32_t exchange_fee_count;
    int32_t max_uses;
    enum policy_window window;
    int32_t natural_failure_months;
    int32_t registration_days;
    bool ios_exchange;
    enum device_os loaner_os;
};

/**
 * The versions known to a deployment. The core never copies or sorts them;
 * the caller owns the array for as long as decisions refer to it.
 */
struct policy_set {
    const struct policy *v;
    size_t n;
};

/** A frequency window by its first and last day inside it. */
struct window {
    date_t start;
    date_t end;
};

/** Fills p with the published terms of version 2025-01 (effective 2020-01-01). */
void policy_default(struct policy *p);

/**
 * Checks one version: a name of [A-Za-z0-9._-], amounts within
 * [0, POLICY_YEN_MAX], 1 <= max_uses <= POLICY_MAX_USES_MAX, exactly max_uses
 * exchange fees, and every other parameter within its bound. Returns 0 or
 * CLAIMD_EINVAL with err naming the first failing member.
 */
CLAIMD_MUSTCHECK int policy_validate(const struct policy *p, struct claimd_error *err);

/**
 * Checks a whole set: 1..POLICY_VERSIONS_MAX versions, each valid, no two with
 * the same name or the same effective_from.
 */
CLAIMD_MUSTCHECK int policy_set_validate(const struct policy_set *s, struct claimd_error *err);

/** The version in force on day d (latest effective_from <= d), or NULL. */
const struct policy *policy_in_force(const struct policy_set *s, date_t d);

/** The version with this name, or NULL. */
const struct policy *policy_find(const struct policy_set *s, const char *name, size_t len);

/**
 * The window of p that contains day d for an option applied on applied_on:
 * the contract year [add_months(applied_on, 12k), add_months(applied_on,
 * 12(k+1))) holding d (k may be negative), or the rolling 12 months ending on d.
 */
struct window policy_window_of(const struct policy *p, date_t applied_on, date_t d);

/** Stable names used in storage and JSON. */
const char *policy_window_name(enum policy_window w);
const char *device_os_name(enum device_os os);

/** Reverse look-ups: 0 and *out set, or CLAIMD_EINVAL. s need not be NUL-terminated. */
CLAIMD_MUSTCHECK int policy_window_parse(const char *s, size_t len, enum policy_window *out);
CLAIMD_MUSTCHECK int device_os_parse(const char *s, size_t len, enum device_os *out);

#endif
