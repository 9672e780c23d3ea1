/*
 * IMEI validation: exactly 15 ASCII digits whose last digit is the Luhn check
 * digit of the first 14.
 */
#ifndef CLAIMD_CORE_IMEI_H
#define CLAIMD_CORE_IMEI_H

#include <stddef.h>

#include "error.h"

#define IMEI_LEN 15

/** Returns 0 when s[0..len) is a valid IMEI, CLAIMD_EINVAL otherwise. */
CLAIMD_MUSTCHECK int imei_validate(const char *s, size_t len);

/** The Luhn check digit ('0'-'9') for 14 digits. */
char imei_check_digit(const char digits14[IMEI_LEN - 1]);

#endif
