/*
 * Civil-date arithmetic on day numbers (days since 1970-01-01), after Howard
 * Hinnant's days_from_civil / civil_from_days: branch-light and exact over the
 * whole proleptic Gregorian calendar.
 */
#include "date.h"

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int date_days_in_month(int year, int month)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && is_leap(year))
        return 29;
    return days[month - 1];
}

date_t date_from_ymd(int year, int month, int day)
{
    int y = month <= 2 ? year - 1 : year;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int mp = month > 2 ? month - 3 : month + 9;
    int doy = (153 * mp + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void date_to_ymd(date_t d, int *year, int *month, int *day)
{
    int z = d + 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    int m = mp < 10 ? mp + 3 : mp - 9;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = m;
    *year = yoe + era * 400 + (m <= 2);
}

/* Reads n ASCII digits; -1 when any byte is not a digit. */
static int read_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int date_parse(const char *s, size_t len, date_t *out)
{
    if (s == NULL || len != 10 || s[4] != '-' || s[7] != '-')
        return CLAIMD_EINVAL;
    int y = read_digits(s, 4);
    int m = read_digits(s + 5, 2);
    int d = read_digits(s + 8, 2);
    if (y < DATE_YEAR_MIN || y > DATE_YEAR_MAX || m < 1 || m > 12)
        return CLAIMD_EINVAL;
    if (d < 1 || d > date_days_in_month(y, m))
        return CLAIMD_EINVAL;
    *out = date_from_ymd(y, m, d);
    return CLAIMD_OK;
}

/* Writes v as exactly n digits, zero-padded; v must fit. */
static void put_digits(char *out, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/*
 * Years outside 0..9999 cannot be written as four digits; they only arise
 * from arithmetic on parsed dates far past the parse range, so clamp the
 * printed year rather than write past the buffer.
 */
static int printable_year(int y)
{
    return y < 0 ? 0 : (y > 9999 ? 9999 : y);
}

void date_format(date_t d, char out[DATE_STR_SIZE])
{
    int y, m, dd;
    date_to_ymd(d, &y, &m, &dd);
    put_digits(out, printable_year(y), 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, dd, 2);
    out[10] = '\0';
}

void date_format_month(date_t d, char out[DATE_MONTH_STR_SIZE])
{
    int y, m, dd;
    date_to_ymd(d, &y, &m, &dd);
    put_digits(out, printable_year(y), 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '\0';
}

date_t date_add_months(date_t d, int n)
{
    int y, m, dd;
    date_to_ymd(d, &y, &m, &dd);
    int idx = y * 12 + (m - 1) + n;
    int ny = idx >= 0 ? idx / 12 : -((-idx + 11) / 12);
    int nm = idx - ny * 12 + 1;
    int last = date_days_in_month(ny, nm);
    return date_from_ymd(ny, nm, dd > last ? last : dd);
}

date_t date_month_start(date_t d)
{
    int y, m, dd;
    date_to_ymd(d, &y, &m, &dd);
    return d - (dd - 1);
}

int date_months_between(date_t a, date_t b)
{
    int ya, ma, da, yb, mb, db;
    date_to_ymd(a, &ya, &ma, &da);
    date_to_ymd(b, &yb, &mb, &db);
    return (yb * 12 + mb) - (ya * 12 + ma);
}

date_t date_japan_of_unix(int64_t unix_seconds)
{
    int64_t local = unix_seconds + 9 * 3600;
    int64_t days = local / 86400;
    if (local % 86400 < 0)
        days -= 1;
    return (date_t)days;
}
