// LD_PRELOAD malloc counter for measuring heap allocations per request on the serving path.
// Counts calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and free in the whole
// process (every thread), forwarding to glibc. On SIGUSR2 it writes one line to stderr:
//   malloc-count: allocs=N frees=M
// It also exports malloc_count_allocs(), which a program can find with dlsym(RTLD_DEFAULT, ...)
// to read the count around a measured section (encore-microbench does, for scripts/bench-quick.sh).
// Used by scripts/count-allocations.sh and scripts/bench-quick.sh; not part of the server.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocs, frees;

void *malloc(size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void free(void *p) { if (p) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed); __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    void *p = __libc_memalign(align, n);
    if (!p) return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_memalign(align, n); }
void *memalign(size_t align, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_memalign(align, n); }

/// Allocations so far in this process (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign).
unsigned long malloc_count_allocs(void) { return atomic_load_explicit(&allocs, memory_order_relaxed); }

static size_t put_number(char *out, unsigned long v) {
    char tmp[24];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static void report(int sig) {
    (void)sig;
    char line[96];
    size_t n = 0;
    const char *a = "malloc-count: allocs=", *f = " frees=";
    memcpy(line + n, a, strlen(a)); n += strlen(a);
    n += put_number(line + n, atomic_load(&allocs));
    memcpy(line + n, f, strlen(f)); n += strlen(f);
    n += put_number(line + n, atomic_load(&frees));
    line[n++] = '\n';
    ssize_t ignored = write(2, line, n);
    (void)ignored;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, 0);
}
