/* The policy command: decode, validate with the stored set, insert. */
#include "policyfile.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgutil.h"
#include "store.h"

static int bad(struct claimd_error *err, const char *field, const char *message)
{
    return claimd_error_set(err, CLAIMD_EINVAL, field, "invalid_field", message);
}

static int get_int(json_t *obj, const char *name, int64_t *out, struct claimd_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v))
        return bad(err, name, "must be an integer");
    *out = json_integer_value(v);
    return 0;
}

static int get_str(json_t *obj, const char *name, const char **out, struct claimd_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return bad(err, name, "must be a string");
    *out = json_string_value(v);
    return 0;
}

static int decode_fees(json_t *obj, struct policy *p, struct claimd_error *err)
{
    json_t *fees = json_object_get(obj, "exchange_fees");
    if (!json_is_array(fees) || json_array_size(fees) > POLICY_MAX_USES_MAX)
        return bad(err, "exchange_fees", "must be an array of at most 16 integers");
    p->exchange_fee_count = (int32_t)json_array_size(fees);
    for (size_t i = 0; i < json_array_size(fees); i++) {
        json_t *f = json_array_get(fees, i);
        if (!json_is_integer(f))
            return bad(err, "exchange_fees", "must hold integers");
        p->exchange_fees[i] = json_integer_value(f);
    }
    return 0;
}

static const char *const members[] = {
    "name",
    "effective_from",
    "monthly_fee",
    "free_months",
    "repair_cap",
    "exchange_fees",
    "max_uses",
    "window",
    "natural_failure_months",
    "registration_days",
    "ios_exchange",
    "loaner_os",
};

static int decode_strings(json_t *obj, struct policy *p, struct claimd_error *err)
{
    const char *name = NULL, *from = NULL, *window = NULL, *loaner = NULL;
    int rc = get_str(obj, "name", &name, err);
    rc = rc ? rc : get_str(obj, "effective_from", &from, err);
    rc = rc ? rc : get_str(obj, "window", &window, err);
    rc = rc ? rc : get_str(obj, "loaner_os", &loaner, err);
    if (rc != 0)
        return rc;
    if (strlen(name) > POLICY_NAME_MAX)
        return bad(err, "name", "is longer than 32 characters");
    memcpy(p->name, name, strlen(name) + 1);
    if (date_parse(from, strlen(from), &p->effective_from) != 0)
        return bad(err, "effective_from", "must be YYYY-MM-DD");
    if (policy_window_parse(window, strlen(window), &p->window) != 0)
        return bad(err, "window", "must be contract_year or rolling_12_months");
    if (device_os_parse(loaner, strlen(loaner), &p->loaner_os) != 0)
        return bad(err, "loaner_os", "must be android or ios");
    if (!json_is_boolean(json_object_get(obj, "ios_exchange")))
        return bad(err, "ios_exchange", "must be true or false");
    p->ios_exchange = json_is_true(json_object_get(obj, "ios_exchange"));
    return 0;
}

/* The integer parameters, in the order decode reads them. */
static const char *const int_members[] = {
    "monthly_fee",      "free_months", "repair_cap", "max_uses", "natural_failure_months",
    "registration_days"};

int policyfile_decode(json_t *obj, struct policy *p, struct claimd_error *err)
{
    int64_t v[6];
    const char *key;
    json_t *value;
    memset(p, 0, sizeof(*p));
    if (!json_is_object(obj))
        return bad(err, "", "a policy version is a JSON object");
    json_object_foreach(obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(members) / sizeof(members[0]) && !known; i++)
            known = strcmp(key, members[i]) == 0;
        if (!known)
            return claimd_error_set(err, CLAIMD_EINVAL, key, "unknown_field", "unknown member");
    }
    int rc = decode_strings(obj, p, err);
    for (int i = 0; i < 6 && rc == 0; i++) {
        rc = get_int(obj, int_members[i], &v[i], err);
        if (rc == 0 && (v[i] < 0 || v[i] > POLICY_YEN_MAX))
            rc = bad(err, int_members[i], "is out of range");
    }
    rc = rc ? rc : decode_fees(obj, p, err);
    if (rc != 0)
        return rc;
    p->monthly_fee = v[0];
    p->free_months = (int32_t)v[1];
    p->repair_cap = v[2];
    p->max_uses = (int32_t)v[3];
    p->natural_failure_months = (int32_t)v[4];
    p->registration_days = (int32_t)v[5];
    return policy_validate(p, err);
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: claimd policy add FILE.json [--database-url URL]\n\n"
          "Validates a policy version (every parameter of the policy, nothing else)\n"
          "together with the stored versions and stores it. Running daemons pick it\n"
          "up on SIGHUP. Connects as the owner role: --database-url, else\n"
          "$CLAIMD_OWNER_URL, else $CLAIMD_DATABASE_URL.\n",
          f);
}

/* The stored versions plus p must form a valid set. */
static int check_with_stored(PGconn *conn, const struct policy *p, char *err, size_t errlen)
{
    static struct policy all[POLICY_VERSIONS_MAX + 1];
    struct claimd_error e = {0};
    size_t n = 0;
    PGresult *res = PQexec(conn, store_policies_sql);
    int rc = pgutil_result_ok(res) ? store_read_policies(res, all, POLICY_VERSIONS_MAX, &n) : -1;
    if (rc != 0)
        pgutil_error_line(conn, res, err, errlen);
    PQclear(res);
    if (rc != 0)
        return -1;
    all[n++] = *p;
    struct policy_set set = {all, n};
    if (policy_set_validate(&set, &e) != 0) {
        snprintf(err, errlen, "%s: %s (with the stored versions)", e.field, e.message);
        return -1;
    }
    return 0;
}

static int insert(PGconn *conn, const struct policy *p, char *err, size_t errlen)
{
    char ints[6][24], from[DATE_STR_SIZE], fees[POLICY_MAX_USES_MAX * 12 + 4];
    int64_t v[6] = {
        p->monthly_fee,      p->free_months, p->repair_cap, p->max_uses, p->natural_failure_months,
        p->registration_days};
    size_t len = (size_t)snprintf(fees, sizeof(fees), "{");
    for (int i = 0; i < p->exchange_fee_count; i++)
        len += (size_t)snprintf(fees + len, sizeof(fees) - len, "%s%lld", i ? "," : "",
                                (long long)p->exchange_fees[i]);
    snprintf(fees + len, sizeof(fees) - len, "}");
    for (int i = 0; i < 6; i++)
        snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)v[i]);
    date_format(p->effective_from, from);
    const char *params[] = {p->name,
                            from,
                            ints[0],
                            ints[1],
                            ints[2],
                            fees,
                            ints[3],
                            policy_window_name(p->window),
                            ints[4],
                            ints[5],
                            p->ios_exchange ? "true" : "false",
                            device_os_name(p->loaner_os)};
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO policy_versions (name, effective_from, monthly_fee, free_months, "
        "repair_cap, exchange_fees, max_uses, frequency_window, natural_failure_months, "
        "registration_days, ios_exchange, loaner_os) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, $12)",
        12, NULL, params, NULL, NULL, 0);
    int rc = pgutil_result_ok(res) ? 0 : -1;
    if (rc != 0)
        pgutil_error_line(conn, res, err, errlen);
    PQclear(res);
    return rc;
}

static int add(const char *path, const char *url)
{
    json_error_t jerr;
    struct claimd_error e = {0};
    struct policy p;
    char err[512];
    json_t *obj = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL) {
        fprintf(stderr, "claimd policy add: %s:%d: %s\n", path, jerr.line, jerr.text);
        return 1;
    }
    int rc = policyfile_decode(obj, &p, &e);
    json_decref(obj);
    if (rc != 0) {
        fprintf(stderr, "claimd policy add: %s: %s: %s\n", path, e.field, e.message);
        return 1;
    }
    PGconn *conn = NULL;
    if (pgutil_connect(url, &conn, err, sizeof(err)) != 0 ||
        check_with_stored(conn, &p, err, sizeof(err)) != 0 ||
        insert(conn, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "claimd policy add: %s\n", err);
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    char from[DATE_STR_SIZE];
    date_format(p.effective_from, from);
    printf("policy %s stored, effective from %s; send SIGHUP to running daemons\n", p.name, from);
    return 0;
}

int policyfile_main(int argc, char **argv)
{
    const char *file = NULL, *url = NULL;
    if (argc < 2 || strcmp(argv[1], "add") != 0) {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--database-url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(stdout), 0;
        else if (file == NULL && argv[i][0] != '-')
            file = argv[i];
        else
            return usage(stderr), 2;
    }
    if (url == NULL)
        url = getenv("CLAIMD_OWNER_URL");
    if (url == NULL || url[0] == '\0')
        url = getenv("CLAIMD_DATABASE_URL");
    if (file == NULL || url == NULL || url[0] == '\0') {
        fputs(file == NULL ? "claimd policy add: FILE.json is required\n"
                           : "claimd policy add: no database URL\n",
              stderr);
        return 2;
    }
    return add(file, url);
}
