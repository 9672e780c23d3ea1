/* Names of the core's result codes and the filling of an error record. */
#include "error.h"

#include <stddef.h>

const char *claimd_rc_name(int rc)
{
    switch (rc) {
    case CLAIMD_OK:
        return "ok";
    case CLAIMD_EINVAL:
        return "invalid";
    case CLAIMD_ENOPOLICY:
        return "no_policy_in_force";
    case CLAIMD_EFUTURE:
        return "incident_in_future";
    case CLAIMD_ECAPACITY:
        return "capacity_exceeded";
    case CLAIMD_EUNAVAIL:
        return "database_unavailable";
    case CLAIMD_EOVERLOAD:
        return "overloaded";
    case CLAIMD_ENOTFOUND:
        return "not_found";
    case CLAIMD_ECONFLICT:
        return "conflict";
    case CLAIMD_EDB:
        return "database_error";
    default:
        return "unknown";
    }
}

int claimd_error_set(struct claimd_error *err, int rc, const char *field, const char *code,
                     const char *message)
{
    if (err != NULL) {
        err->field = field;
        err->code = code;
        err->message = message;
    }
    return rc;
}
