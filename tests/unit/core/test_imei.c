/*
 * Unit tests of core/imei.c: 15 ASCII digits with a Luhn check digit, every
 * single-digit corruption refused, and the check digit itself.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "imei.h"

static const char *const valid[] = {"356938035643809", "490154203237518", "000000000000000",
                                    "123456789012347", "999999999999994"};

Test(imei_validate, accepts_valid)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        cr_assert_eq(imei_validate(valid[i], IMEI_LEN), CLAIMD_OK, "%s refused", valid[i]);
}

Test(imei_validate, needs_no_terminating_nul)
{
    cr_assert_eq(imei_validate("356938035643809XYZ", IMEI_LEN), CLAIMD_OK);
}

/* Luhn catches every single-digit error: each position, each other digit. */
Test(imei_validate, refuses_every_single_digit_change)
{
    for (size_t v = 0; v < 2; v++) {
        for (int pos = 0; pos < IMEI_LEN; pos++) {
            for (char c = '0'; c <= '9'; c++) {
                char buf[IMEI_LEN + 1];
                memcpy(buf, valid[v], sizeof(buf));
                if (buf[pos] == c)
                    continue;
                buf[pos] = c;
                cr_assert_eq(imei_validate(buf, IMEI_LEN), CLAIMD_EINVAL, "%s accepted", buf);
            }
        }
    }
}

Test(imei_validate, refuses_wrong_lengths)
{
    cr_assert_eq(imei_validate("35693803564380", 14), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate("3569380356438090", 16), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate("356938035643809", 14), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate("356938035643809", 16), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate("", 0), CLAIMD_EINVAL);
    /* 16 digits whose first 15 are valid, and a valid 16-digit Luhn number. */
    cr_assert_eq(imei_validate("4901542032375186", 16), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate("4111111111111111", 16), CLAIMD_EINVAL);
}

Test(imei_validate, refuses_non_digits_and_null)
{
    static const char *const bad[] = {
        "35693803564380a",
        "a56938035643809",
        "3569380356438O9",
        " 35693803564380",
        "35693803564380 ",
        "35693803-643809",
        "+35693803564380",
        "3569380356438\xd9"
        "9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(imei_validate(bad[i], IMEI_LEN), CLAIMD_EINVAL, "\"%s\" accepted", bad[i]);
    cr_assert_eq(imei_validate(NULL, IMEI_LEN), CLAIMD_EINVAL);
    cr_assert_eq(imei_validate(NULL, 0), CLAIMD_EINVAL);
}

/*
 * A non-digit whose value minus '0' lands on a digit's Luhn contribution must
 * still be refused: ':' (10) and '/' (-1) next to a valid sum.
 */
Test(imei_validate, refuses_bytes_next_to_digits)
{
    char buf[IMEI_LEN + 1];
    memcpy(buf, "356938035643809", sizeof(buf));
    for (int pos = 0; pos < IMEI_LEN; pos++) {
        for (int c = 0; c < 256; c++) {
            if (c >= '0' && c <= '9')
                continue;
            char saved = buf[pos];
            buf[pos] = (char)c;
            cr_assert_eq(imei_validate(buf, IMEI_LEN), CLAIMD_EINVAL, "byte %d at %d", c, pos);
            buf[pos] = saved;
        }
    }
}

Test(imei_check_digit, known_values)
{
    cr_assert_eq(imei_check_digit("35693803564380"), '9');
    cr_assert_eq(imei_check_digit("49015420323751"), '8');
    cr_assert_eq(imei_check_digit("00000000000000"), '0');
    cr_assert_eq(imei_check_digit("12345678901234"), '7');
    cr_assert_eq(imei_check_digit("99999999999999"), '4');
}

/* The check digit makes any 14 digits valid, and exactly one digit does. */
Test(imei_check_digit, agrees_with_validate)
{
    char buf[IMEI_LEN + 1] = "00000000000000x";
    unsigned x = 12345;
    for (int n = 0; n < 2000; n++) {
        for (int i = 0; i < IMEI_LEN - 1; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (char)('0' + (x >> 16) % 10);
        }
        char want = imei_check_digit(buf);
        cr_assert(want >= '0' && want <= '9');
        for (char c = '0'; c <= '9'; c++) {
            buf[IMEI_LEN - 1] = c;
            int rc = imei_validate(buf, IMEI_LEN);
            cr_assert_eq(rc, c == want ? CLAIMD_OK : CLAIMD_EINVAL, "%s", buf);
        }
    }
}
