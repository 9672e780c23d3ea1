/*
 * Civil dates of the proleptic Gregorian calendar as day numbers: parsing and
 * formatting YYYY-MM-DD strictly, calendar-month arithmetic with month-end
 * clamping, and the Japan date of a UTC instant.
 */
#ifndef CLAIMD_CORE_DATE_H
#define CLAIMD_CORE_DATE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/** A civil date: days since 1970-01-01. DATE_NONE marks "no date". */
typedef int32_t date_t;

#define DATE_NONE     INT32_MIN
#define DATE_YEAR_MIN 1900
#define DATE_YEAR_MAX 9999
/** Bytes of "YYYY-MM-DD" plus the terminating NUL. */
#define DATE_STR_SIZE 11
/** Bytes of "YYYY-MM" plus the terminating NUL. */
#define DATE_MONTH_STR_SIZE 8

/** Day number of a valid year/month/day (no range check). */
date_t date_from_ymd(int year, int month, int day);

/** Splits a day number into year, month (1-12) and day (1-31). */
void date_to_ymd(date_t d, int *year, int *month, int *day);

/**
 * Parses exactly "YYYY-MM-DD" (len bytes, no NUL needed): four-digit year in
 * [DATE_YEAR_MIN, DATE_YEAR_MAX], a real month and a day that exists in it.
 * Returns 0 or CLAIMD_EINVAL; *out is untouched on failure.
 */
CLAIMD_MUSTCHECK int date_parse(const char *s, size_t len, date_t *out);

/** Writes "YYYY-MM-DD" and a NUL into out (DATE_STR_SIZE bytes). */
void date_format(date_t d, char out[DATE_STR_SIZE]);

/** Writes "YYYY-MM" of the day's month and a NUL into out. */
void date_format_month(date_t d, char out[DATE_MONTH_STR_SIZE]);

/** Days in a month of a year (28-31). */
int date_days_in_month(int year, int month);

/**
 * Moves by n calendar months (n may be negative) and clamps the day to the
 * last day of the target month: 2024-02-29 + 12 = 2025-02-28.
 */
date_t date_add_months(date_t d, int n);

/** First day of the month that holds d. */
date_t date_month_start(date_t d);

/** Whole calendar months from the month of a to the month of b (b - a). */
int date_months_between(date_t a, date_t b);

/** The Japan (UTC+9, no DST) civil date of a Unix time in seconds. */
date_t date_japan_of_unix(int64_t unix_seconds);

#endif
