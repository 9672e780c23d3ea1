/* Exact, case-sensitive matching of a string against a table of names. */
#include "names.h"

#include <string.h>

int names_find(const char *const *names, int n, const char *s, size_t len)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (names[i] != NULL && strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return i;
    }
    return -1;
}
