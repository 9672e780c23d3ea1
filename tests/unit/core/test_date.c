/*
 * Unit tests of core/date.c: strict YYYY-MM-DD parsing, formatting round trips,
 * calendar-month arithmetic with clamping, and the Japan date of a Unix time.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "date.h"

/* Parses a NUL-terminated string; the test fails when it does not parse. */
static date_t D(const char *s)
{
    date_t d = DATE_NONE;
    int rc = date_parse(s, strlen(s), &d);
    cr_assert_eq(rc, CLAIMD_OK, "date_parse(\"%s\") = %d", s, rc);
    return d;
}

static void assert_date(date_t got, const char *want)
{
    char buf[DATE_STR_SIZE];
    date_format(got, buf);
    cr_assert_str_eq(buf, want);
    cr_assert_eq(got, D(want));
}

/* ------------------------------------------------------------------------
 * date_parse
 * ------------------------------------------------------------------------ */

Test(date_parse, accepts_leap_day_and_bounds)
{
    date_t d = DATE_NONE;
    cr_assert_eq(date_parse("2024-02-29", 10, &d), CLAIMD_OK);
    cr_assert_eq(d, date_from_ymd(2024, 2, 29));
    cr_assert_eq(date_parse("1900-01-01", 10, &d), CLAIMD_OK);
    cr_assert_eq(d, date_from_ymd(1900, 1, 1));
    cr_assert_eq(date_parse("9999-12-31", 10, &d), CLAIMD_OK);
    cr_assert_eq(d, date_from_ymd(9999, 12, 31));
    cr_assert_eq(date_parse("2000-02-29", 10, &d), CLAIMD_OK);
}

Test(date_parse, needs_no_terminating_nul)
{
    date_t d = DATE_NONE;
    cr_assert_eq(date_parse("2024-05-17XYZ", 10, &d), CLAIMD_OK);
    cr_assert_eq(d, date_from_ymd(2024, 5, 17));
}

Test(date_parse, rejects_malformed_and_leaves_out_untouched)
{
    static const char *const bad[] = {
        "2023-02-29", "2024-13-01",  "2024-00-10", "2024-1-01",   "2024-01-01 ", "24-01-01",
        "2024/01/01", "+024-01-01",  "1899-12-31", "10000-01-01", "2024-01-1",   "2024-01-00",
        "2024-04-31", "1900-02-29",  "2a24-01-01", "2024-0b-01",  "2024-01-0c",  "2024-01-01\n",
        "",           " 2024-01-01", "2024-01-32", "-024-01-01",  "2024--1-01",  "2024-01- 1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        date_t d = 12345;
        int rc = date_parse(bad[i], strlen(bad[i]), &d);
        cr_assert_eq(rc, CLAIMD_EINVAL, "date_parse(\"%s\") = %d, want EINVAL", bad[i], rc);
        cr_assert_eq(d, 12345, "date_parse(\"%s\") wrote *out", bad[i]);
    }
}

Test(date_parse, rejects_wrong_length_of_a_valid_prefix)
{
    date_t d = 7;
    const char *s = "2024-01-015";
    for (size_t len = 0; len <= 11; len++) {
        if (len == 10)
            continue;
        cr_assert_eq(date_parse(s, len, &d), CLAIMD_EINVAL, "len %zu accepted", len);
    }
    cr_assert_eq(date_parse(NULL, 10, &d), CLAIMD_EINVAL);
    cr_assert_eq(d, 7);
}

Test(date_parse, rejects_embedded_nul)
{
    date_t d = 7;
    cr_assert_eq(date_parse("2024-01-\0"
                            "1",
                            10, &d),
                 CLAIMD_EINVAL);
    cr_assert_eq(d, 7);
}

/* ------------------------------------------------------------------------
 * Day numbers and formatting
 * ------------------------------------------------------------------------ */

Test(date_numbers, known_day_numbers)
{
    cr_assert_eq(D("1970-01-01"), 0);
    cr_assert_eq(D("1970-01-02"), 1);
    cr_assert_eq(D("1969-12-31"), -1);
    cr_assert_eq(D("2000-03-01"), 11017);
    cr_assert_eq(D("2000-01-01"), 10957);
    cr_assert_eq(D("1900-01-01"), -25567);
    cr_assert_eq(D("2100-12-31"), 47846);
}

Test(date_numbers, round_trip_every_day_1900_to_2100)
{
    date_t first = D("1900-01-01");
    date_t last = D("2100-12-31");
    date_t prev = first - 1;
    int y = 1900, m = 1, dd = 1;
    for (date_t d = first; d <= last; d++) {
        char buf[DATE_STR_SIZE];
        date_t back = DATE_NONE;
        date_format(d, buf);
        cr_assert_eq(strlen(buf), 10);
        cr_assert_eq(date_parse(buf, 10, &back), CLAIMD_OK, "%s does not parse", buf);
        cr_assert_eq(back, d, "%s parses to %d, want %d", buf, back, d);
        cr_assert_eq(back, prev + 1);
        cr_assert_eq(date_from_ymd(y, m, dd), d, "%04d-%02d-%02d", y, m, dd);
        prev = back;
        if (++dd > date_days_in_month(y, m)) {
            dd = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    cr_assert_eq(y, 2101);
}

Test(date_numbers, to_ymd_splits)
{
    int y = 0, m = 0, d = 0;
    date_to_ymd(11017, &y, &m, &d);
    cr_assert_eq(y, 2000);
    cr_assert_eq(m, 3);
    cr_assert_eq(d, 1);
    date_to_ymd(-1, &y, &m, &d);
    cr_assert_eq(y, 1969);
    cr_assert_eq(m, 12);
    cr_assert_eq(d, 31);
}

Test(date_numbers, days_in_month)
{
    static const int want[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int m = 1; m <= 12; m++)
        cr_assert_eq(date_days_in_month(2023, m), want[m - 1], "2023-%02d", m);
    cr_assert_eq(date_days_in_month(2024, 2), 29);
    cr_assert_eq(date_days_in_month(1900, 2), 28);
    cr_assert_eq(date_days_in_month(2000, 2), 29);
    cr_assert_eq(date_days_in_month(2100, 2), 28);
}

Test(date_format, format_month)
{
    char buf[DATE_MONTH_STR_SIZE];
    memset(buf, 'x', sizeof(buf));
    date_format_month(D("2024-02-29"), buf);
    cr_assert_str_eq(buf, "2024-02");
    date_format_month(D("1900-01-01"), buf);
    cr_assert_str_eq(buf, "1900-01");
    date_format_month(D("9999-12-31"), buf);
    cr_assert_str_eq(buf, "9999-12");
}

Test(date_format, writes_exactly_eleven_bytes)
{
    char buf[DATE_STR_SIZE + 1];
    memset(buf, 'x', sizeof(buf));
    date_format(D("2024-07-04"), buf);
    cr_assert_str_eq(buf, "2024-07-04");
    cr_assert_eq(buf[DATE_STR_SIZE], 'x');
}

/* ------------------------------------------------------------------------
 * Calendar months
 * ------------------------------------------------------------------------ */

Test(date_add_months, clamps_to_month_end)
{
    assert_date(date_add_months(D("2024-02-29"), 12), "2025-02-28");
    assert_date(date_add_months(D("2023-01-31"), 1), "2023-02-28");
    assert_date(date_add_months(D("2024-01-31"), 1), "2024-02-29");
    assert_date(date_add_months(D("2024-03-31"), -1), "2024-02-29");
    assert_date(date_add_months(D("2024-05-31"), 1), "2024-06-30");
    assert_date(date_add_months(D("2024-02-29"), 48), "2028-02-29");
    assert_date(date_add_months(D("2024-01-31"), 2), "2024-03-31");
}

Test(date_add_months, crosses_years_both_ways)
{
    assert_date(date_add_months(D("2024-01-15"), -1), "2023-12-15");
    assert_date(date_add_months(D("2024-01-15"), -12), "2023-01-15");
    assert_date(date_add_months(D("2024-01-15"), -13), "2022-12-15");
    assert_date(date_add_months(D("2024-03-31"), -25), "2022-02-28");
    assert_date(date_add_months(D("2024-02-29"), -12), "2023-02-28");
    assert_date(date_add_months(D("2023-12-31"), 2), "2024-02-29");
    assert_date(date_add_months(D("2024-11-30"), 14), "2026-01-30");
    assert_date(date_add_months(D("1970-01-01"), -1), "1969-12-01");
}

Test(date_add_months, zero_is_identity)
{
    static const char *const days[] = {"2024-02-29", "2023-01-31", "1900-01-01", "9999-12-31"};
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++)
        assert_date(date_add_months(D(days[i]), 0), days[i]);
}

Test(date_month_start, first_day_of_month)
{
    assert_date(date_month_start(D("2024-02-29")), "2024-02-01");
    assert_date(date_month_start(D("2024-02-01")), "2024-02-01");
    assert_date(date_month_start(D("1969-12-31")), "1969-12-01");
    assert_date(date_month_start(D("2023-12-31")), "2023-12-01");
}

Test(date_months_between, counts_calendar_months)
{
    cr_assert_eq(date_months_between(D("2024-01-31"), D("2024-02-01")), 1);
    cr_assert_eq(date_months_between(D("2024-02-01"), D("2024-02-29")), 0);
    cr_assert_eq(date_months_between(D("2024-04-01"), D("2025-03-31")), 11);
    cr_assert_eq(date_months_between(D("2024-04-01"), D("2025-04-01")), 12);
    cr_assert_eq(date_months_between(D("2025-04-01"), D("2024-04-30")), -12);
    cr_assert_eq(date_months_between(D("2024-01-01"), D("2023-12-31")), -1);
    cr_assert_eq(date_months_between(D("1900-01-01"), D("2100-12-31")), 2411);
}

/* ------------------------------------------------------------------------
 * Japan date of a Unix time
 * ------------------------------------------------------------------------ */

Test(date_japan_of_unix, switches_at_15_utc)
{
    /* 2023-11-14T14:59:59Z is 23:59:59 in Tokyo; one second later is the 15th. */
    assert_date(date_japan_of_unix(1699973999), "2023-11-14");
    assert_date(date_japan_of_unix(1699974000), "2023-11-15");
    assert_date(date_japan_of_unix(0), "1970-01-01");
    assert_date(date_japan_of_unix(15 * 3600 - 1), "1970-01-01");
    assert_date(date_japan_of_unix(15 * 3600), "1970-01-02");
}

Test(date_japan_of_unix, negative_times_floor)
{
    assert_date(date_japan_of_unix(-9 * 3600), "1970-01-01");
    assert_date(date_japan_of_unix(-9 * 3600 - 1), "1969-12-31");
    assert_date(date_japan_of_unix(-86400 - 9 * 3600), "1969-12-31");
    assert_date(date_japan_of_unix(-86400 - 9 * 3600 - 1), "1969-12-30");
    assert_date(date_japan_of_unix(-1), "1970-01-01");
    /* 1900-01-01T00:00:00+09:00 */
    assert_date(date_japan_of_unix(-2208988800LL - 9 * 3600), "1900-01-01");
    cr_assert_eq(date_japan_of_unix(-2208988800LL - 9 * 3600 - 1), date_from_ymd(1899, 12, 31));
}
