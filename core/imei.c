/* IMEI syntax and Luhn check-digit validation. */
#include "imei.h"

char imei_check_digit(const char digits14[IMEI_LEN - 1])
{
    int sum = 0;
    for (int i = 0; i < IMEI_LEN - 1; i++) {
        int v = digits14[i] - '0';
        /* Every second digit from the left (odd index) is doubled. */
        if (i % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

int imei_validate(const char *s, size_t len)
{
    if (s == NULL || len != IMEI_LEN)
        return CLAIMD_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CLAIMD_EINVAL;
    }
    return imei_check_digit(s) == s[IMEI_LEN - 1] ? CLAIMD_OK : CLAIMD_EINVAL;
}
