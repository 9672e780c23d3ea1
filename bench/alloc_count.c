/*
 * alloc_count: an LD_PRELOAD shim that counts the heap calls of a process
 * (malloc, calloc, realloc, free, and the aligned allocators) and forwards
 * them to glibc. glibc 2.36 has no __malloc_hook; interposing the symbols
 * catches libpq's, jansson's and libuv's calls as well as claimd's own.
 *
 *   ALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=build/bench/liballoc_count.so claimd serve ...
 *
 * The totals are appended to $ALLOC_COUNT_FILE (stderr when unset) as one
 * line of key=value pairs when the process exits, and at each delivery of
 * $ALLOC_COUNT_SIGNAL (a signal number, e.g. 12 for SIGUSR2) when set, so
 * that a window can be measured as the difference of two snapshots. With
 * ALLOC_COUNT_CALLERS=1 the allocations are also counted by caller (the
 * return address of malloc/calloc/realloc), and at exit the callers of the
 * window between the first two signals (or of the whole life) are listed,
 * most frequent first: "alloc_count caller n=N obj=FILE off=0xOFFSET sym=NAME+0xDELTA"
 * (NAME is the nearest exported symbol below the address: a large DELTA
 * means a static function after it).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc's own allocator, under names that stay reachable past our definitions. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t alignment, size_t size);

enum { C_MALLOC = 0, C_CALLOC, C_REALLOC, C_FREE, C_ALIGNED, C_COUNT };

static const char *const names[C_COUNT] = {"malloc", "calloc", "realloc", "free", "aligned"};
static uint64_t counts[C_COUNT];
static char out_path[4096]; /* $ALLOC_COUNT_FILE, read once at load */

static void count(int which)
{
    __atomic_fetch_add(&counts[which], 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Counts by caller: an open-addressing table of return addresses, filled
 * lock-free (a slot is claimed by compare-and-swap and never given back)
 * ------------------------------------------------------------------------ */

#define CALLERS     4096
#define CALLERS_TOP 40

static bool by_caller;
static uintptr_t caller_pc[CALLERS];
static uint64_t caller_n[CALLERS];
static uint64_t caller_snap[2][CALLERS]; /* the counts at the first two signals */
static int signals_seen;

static void note_caller(void *ret)
{
    uintptr_t pc = (uintptr_t)ret;
    size_t h = (size_t)((pc >> 2) * 2654435761u) % CALLERS;
    for (int probe = 0; probe < 64; probe++, h = (h + 1) % CALLERS) {
        uintptr_t cur = __atomic_load_n(&caller_pc[h], __ATOMIC_ACQUIRE);
        if (cur == 0) {
            uintptr_t zero = 0;
            if (__atomic_compare_exchange_n(&caller_pc[h], &zero, pc, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                cur = pc;
            else
                cur = zero;
        }
        if (cur == pc) {
            __atomic_fetch_add(&caller_n[h], 1, __ATOMIC_RELAXED);
            return;
        }
    }
}

#define NOTE()                                                                                     \
    do {                                                                                           \
        if (by_caller)                                                                             \
            note_caller(__builtin_return_address(0));                                              \
    } while (0)

/* ------------------------------------------------------------------------
 * The interposed functions
 * ------------------------------------------------------------------------ */

void *malloc(size_t size)
{
    count(C_MALLOC);
    NOTE();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    count(C_CALLOC);
    NOTE();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    count(C_REALLOC);
    NOTE();
    return __libc_realloc(p, size);
}

void free(void *p)
{
    if (p != NULL)
        count(C_FREE);
    __libc_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    count(C_ALIGNED);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL && size > 0)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size)
{
    count(C_ALIGNED);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size)
{
    count(C_ALIGNED);
    return __libc_memalign(alignment, size);
}

/* ------------------------------------------------------------------------
 * Reporting, async-signal-safe: no stdio, no allocation
 * ------------------------------------------------------------------------ */

static size_t put_str(char *out, size_t at, size_t cap, const char *s)
{
    while (*s != '\0' && at + 1 < cap)
        out[at++] = *s++;
    return at;
}

static size_t put_u64(char *out, size_t at, size_t cap, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0 && at + 1 < cap)
        out[at++] = tmp[--n];
    return at;
}

static size_t put_hex(char *out, size_t at, size_t cap, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v > 0);
    at = put_str(out, at, cap, "0x");
    while (n > 0 && at + 1 < cap)
        out[at++] = tmp[--n];
    return at;
}

static int open_out(void)
{
    return out_path[0] != '\0' ? open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
                               : 2;
}

/* "alloc_count event=EXIT pid=P malloc=.. calloc=.. realloc=.. free=.. aligned=.. allocs=..\n" */
static void report(const char *event)
{
    char line[512];
    uint64_t allocs = 0;
    size_t n = put_str(line, 0, sizeof(line), "alloc_count event=");
    n = put_str(line, n, sizeof(line), event);
    n = put_str(line, n, sizeof(line), " pid=");
    n = put_u64(line, n, sizeof(line), (uint64_t)getpid());
    for (int i = 0; i < C_COUNT; i++) {
        uint64_t v = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
        allocs += i != C_FREE ? v : 0;
        n = put_str(line, n, sizeof(line), " ");
        n = put_str(line, n, sizeof(line), names[i]);
        n = put_str(line, n, sizeof(line), "=");
        n = put_u64(line, n, sizeof(line), v);
    }
    n = put_str(line, n, sizeof(line), " allocs=");
    n = put_u64(line, n, sizeof(line), allocs);
    n = put_str(line, n, sizeof(line), "\n");
    int fd = open_out();
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, n);
    (void)w;
    if (fd != 2)
        close(fd);
}

static void on_signal(int sig)
{
    int saved = errno;
    report("SIGNAL");
    if (signals_seen < 2) {
        for (size_t i = 0; i < CALLERS; i++)
            caller_snap[signals_seen][i] = __atomic_load_n(&caller_n[i], __ATOMIC_RELAXED);
    }
    signals_seen++;
    errno = saved;
}

/* The callers of the window (or of the whole life), most frequent first; at exit only. */
static void report_callers(void)
{
    static uint64_t n[CALLERS];
    int fd = open_out();
    if (fd < 0)
        return;
    for (size_t i = 0; i < CALLERS; i++)
        n[i] = signals_seen >= 2 ? caller_snap[1][i] - caller_snap[0][i] : caller_n[i];
    for (int k = 0; k < CALLERS_TOP; k++) {
        size_t best = 0;
        for (size_t i = 1; i < CALLERS; i++)
            best = n[i] > n[best] ? i : best;
        if (n[best] == 0)
            break;
        Dl_info info;
        memset(&info, 0, sizeof(info));
        dladdr((void *)caller_pc[best], &info);
        char line[1024];
        size_t len = put_str(line, 0, sizeof(line), "alloc_count caller n=");
        len = put_u64(line, len, sizeof(line), n[best]);
        len = put_str(line, len, sizeof(line), " obj=");
        len = put_str(line, len, sizeof(line), info.dli_fname ? info.dli_fname : "?");
        len = put_str(line, len, sizeof(line), " off=");
        len = put_hex(line, len, sizeof(line), caller_pc[best] - (uintptr_t)info.dli_fbase);
        len = put_str(line, len, sizeof(line), " sym=");
        len = put_str(line, len, sizeof(line), info.dli_sname ? info.dli_sname : "?");
        if (info.dli_sname != NULL) {
            len = put_str(line, len, sizeof(line), "+");
            len = put_hex(line, len, sizeof(line), caller_pc[best] - (uintptr_t)info.dli_saddr);
        }
        len = put_str(line, len, sizeof(line), "\n");
        ssize_t w = write(fd, line, len);
        (void)w;
        n[best] = 0;
    }
    if (fd != 2)
        close(fd);
}

__attribute__((destructor)) static void at_exit_report(void)
{
    report("EXIT");
    if (by_caller)
        report_callers();
}

__attribute__((constructor)) static void install(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (path != NULL && strlen(path) < sizeof(out_path))
        memcpy(out_path, path, strlen(path) + 1);
    const char *c = getenv("ALLOC_COUNT_CALLERS");
    by_caller = c != NULL && c[0] == '1';
    const char *s = getenv("ALLOC_COUNT_SIGNAL");
    int sig = s != NULL ? atoi(s) : 0;
    if (sig <= 0 || sig >= NSIG)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}
