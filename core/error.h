/*
 * Result codes shared by the adjudication core and everything built on it, and
 * the fixed-size error record that validation fills in.
 */
#ifndef CLAIMD_CORE_ERROR_H
#define CLAIMD_CORE_ERROR_H

#ifdef __GNUC__
#define CLAIMD_MUSTCHECK __attribute__((warn_unused_result))
#else
#define CLAIMD_MUSTCHECK
#endif

/*
 * 0 means success; every failure is negative. Core codes live below -1000 so
 * that they never collide with negated errno values used by the server.
 */
enum claimd_rc {
    CLAIMD_OK = 0,
    CLAIMD_EINVAL = -1001,    /* an input is malformed or out of range */
    CLAIMD_ENOPOLICY = -1002, /* no policy version is in force on the day */
    CLAIMD_EFUTURE = -1003,   /* the incident lies after today (Japan) */
    CLAIMD_ECAPACITY = -1004, /* a fixed bound (history, batch) would be exceeded */
    /* Codes the core never returns, raised by the layers around it. */
    CLAIMD_EUNAVAIL = -1005,  /* the database cannot be reached */
    CLAIMD_EOVERLOAD = -1006, /* a bounded queue is full */
    CLAIMD_ENOTFOUND = -1007, /* a referenced object does not exist */
    CLAIMD_ECONFLICT = -1008, /* an identifier is taken by something else */
    CLAIMD_EDB = -1009,       /* the database answered something unexpected */
};

/**
 * What failed in a validation, all three strings static: the member's name (or
 * "" for the whole object), the stable lower_snake reason code and a sentence
 * for humans. Filled by the core, never allocated.
 */
struct claimd_error {
    const char *field;
    const char *code;
    const char *message;
};

/**
 * Fills err (when not NULL) and returns rc, so a refusal is one statement:
 * return claimd_error_set(err, CLAIMD_EINVAL, "imei", "invalid_imei", "...").
 */
int claimd_error_set(struct claimd_error *err, int rc, const char *field, const char *code,
                     const char *message);

/** The stable name of a result code ("ok", "invalid", "no_policy_in_force", ...). */
const char *claimd_rc_name(int rc);

#endif
