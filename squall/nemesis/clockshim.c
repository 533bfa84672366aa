/*
 * squall-clock: shifts one process's wall clock by an offset read from a file.
 *
 * LD_PRELOADed into the node process by the clock nemesis. It replaces
 * libfaketime, which was measured here to make every GIL hand-off of a
 * Python node read its timestamp file: libfaketime wraps
 * pthread_cond_timedwait, so two busy threads ran 12x slower with
 * FAKETIME_NO_CACHE and 2x slower with a one-second cache, and the scheduler
 * workload starved (write p50 0.4 s) from the first second of every run that
 * had the clock fault in it, with no skew active.
 *
 * What it fakes, and why only that: CLOCK_REALTIME (and its coarse and TAI
 * variants) through clock_gettime, gettimeofday and time. The monotonic
 * clocks, sleeps and timed waits stay real, as after an NTP step: timers
 * keep working, timestamps lie.
 *
 * The offset ("+5.000", seconds) is re-read at most every RECHECK_NS of
 * real time, so a strobe of 100 ms or more is followed within 10 ms, and a
 * busy process pays one small tmpfs read per 10 ms instead of one per call.
 * The file is replaced atomically (write + rename) by the nemesis; a missing
 * or unreadable file means offset 0.
 *
 * Portability: every libc symbol it uses is bound to version GLIBC_2.2.5
 * (dlsym too, which newer glibc versions 2.34), so a shim compiled on a
 * newer host loads in any x86-64 glibc container. The real clock is libc's
 * (vDSO, no syscall); the raw syscall is the fallback if dlsym fails.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RECHECK_NS 10000000LL
#define NS 1000000000LL

static _Atomic long long offset_ns;
static _Atomic long long checked_at_ns; /* real wall time of the last read; 0 = never */

__asm__(".symver dlsym, dlsym@GLIBC_2.2.5");

typedef int (*clock_fn)(clockid_t, struct timespec *);
static _Atomic(clock_fn) libc_clock;

static int raw_clock(clockid_t clock, struct timespec *ts) {
    return (int)syscall(SYS_clock_gettime, clock, ts);
}

static int real_clock(clockid_t clock, struct timespec *ts) {
    clock_fn fn = atomic_load_explicit(&libc_clock, memory_order_relaxed);
    if (fn == NULL) {
        fn = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
        if (fn == NULL) fn = raw_clock;
        atomic_store_explicit(&libc_clock, fn, memory_order_relaxed);
    }
    return fn(clock, ts);
}

static long long read_offset(void) {
    const char *path = getenv("SQUALL_CLOCK_FILE");
    if (path == NULL) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end = NULL;
    double seconds = strtod(buf, &end);
    if (end == buf) return 0;
    return (long long)(seconds * (double)NS);
}

/* The offset in effect at real wall time `now` (re-read when stale). */
static long long offset_at(long long now) {
    long long last = atomic_load_explicit(&checked_at_ns, memory_order_relaxed);
    /* A real clock that stepped back also forces a re-read. */
    if (last == 0 || now - last >= RECHECK_NS || now < last) {
        atomic_store_explicit(&offset_ns, read_offset(), memory_order_relaxed);
        atomic_store_explicit(&checked_at_ns, now, memory_order_relaxed);
    }
    return atomic_load_explicit(&offset_ns, memory_order_relaxed);
}

static int faked(clockid_t clock) {
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI;
}

static void shift(struct timespec *ts, long long by) {
    long long total = (long long)ts->tv_sec * NS + ts->tv_nsec + by;
    long long sec = total / NS, nsec = total % NS;
    if (nsec < 0) {
        nsec += NS;
        sec -= 1;
    }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)nsec;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int rc = real_clock(clock, ts);
    if (rc == 0 && faked(clock)) {
        struct timespec now = *ts;
        if (clock != CLOCK_REALTIME) real_clock(CLOCK_REALTIME, &now);
        shift(ts, offset_at((long long)now.tv_sec * NS + now.tv_nsec));
    }
    return rc;
}

/* glibc declares tv nonnull; callers passing NULL exist, and must not crash. */
#pragma GCC diagnostic ignored "-Wnonnull-compare"
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}
