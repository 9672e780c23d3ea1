/* IMEI syntax and Luhn check-digit validation. */
#include "imei.h"

/* A digit's contribution when it is doubled: 2d, minus 9 above 9. */
static const unsigned char doubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};

/*
 * Sums the Luhn contributions of 14 digits, doubling every second digit from
 * the left (odd index); -1 when a byte is not a digit.
 */
static int luhn_sum14(const char *s)
{
    int sum = 0;
    for (int i = 0; i < IMEI_LEN - 1; i += 2) {
        unsigned a = (unsigned)(s[i] - '0');
        unsigned b = (unsigned)(s[i + 1] - '0');
        if (a > 9 || b > 9)
            return -1;
        sum += (int)a + doubled[b];
    }
    return sum;
}

char imei_check_digit(const char digits14[IMEI_LEN - 1])
{
    return (char)('0' + (10 - luhn_sum14(digits14) % 10) % 10);
}

int imei_validate(const char *s, size_t len)
{
    if (s == NULL || len != IMEI_LEN)
        return CLAIMD_EINVAL;
    int sum = luhn_sum14(s);
    unsigned check = (unsigned)(s[IMEI_LEN - 1] - '0');
    if (sum < 0 || check > 9)
        return CLAIMD_EINVAL;
    return (sum + (int)check) % 10 == 0 ? CLAIMD_OK : CLAIMD_EINVAL;
}
