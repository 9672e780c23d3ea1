/*
 * Proves that the core never allocates (style §7): this binary defines its
 * own malloc family, counting calls while counting is on, and runs every
 * golden case's core calls inside the counted region.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

#include "golden.h"

#define MIN_CASES 100

/* glibc's own entry points, which the definitions below forward to. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t alignment, size_t size);

/*
 * Per thread, so that a helper thread of the test framework allocating at the
 * same moment is not blamed on the core.
 */
static _Thread_local bool counting;
static _Thread_local unsigned long alloc_calls;

static void count(void)
{
    if (counting)
        alloc_calls++;
}

void *malloc(size_t size)
{
    count();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    count();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    count();
    return __libc_realloc(p, size);
}

void free(void *p)
{
    count();
    __libc_free(p);
}

void *memalign(size_t alignment, size_t size)
{
    count();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    count();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    count();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

/* Runs every loaded case's core calls with counting on; returns how many ran. */
static long run_counted(struct golden_case *cases, long n, unsigned long *calls)
{
    long ran = 0;
    alloc_calls = 0;
    counting = true;
    for (long i = 0; i < n; i++) {
        if (cases[i].load_error[0] != '\0')
            continue;
        golden_run(&cases[i]);
        ran++;
    }
    counting = false;
    *calls = alloc_calls;
    return ran;
}

Test(alloc, core_never_allocates_across_golden_cases)
{
    struct golden_case *cases = NULL;
    long n = golden_load_all(CLAIMD_CASES_DIR, &cases);
    cr_assert_geq(n, 0, "cannot read %s", CLAIMD_CASES_DIR);
    for (long i = 0; i < n; i++)
        cr_expect_str_empty(cases[i].load_error, "%s: %s", cases[i].path, cases[i].load_error);

    unsigned long calls = 0;
    long ran = run_counted(cases, n, &calls);

    golden_free_all(cases, (size_t)n);
    cr_assert_eq(calls, 0, "the core called the allocator %lu times across %ld cases", calls, ran);
    cr_assert_gt(ran, MIN_CASES, "only %ld golden cases ran", ran);
}
