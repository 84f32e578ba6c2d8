/* execloop GO LIMIT OUT PROGRAM [ARGS...]: the exec storm of scripts/reliability and the
 * exec loop of scripts/bench. Waits until the file GO exists (so that every container's
 * loop starts at once), then forks and execs PROGRAM as fast as it can, one exec at a
 * time, timing each from fork to reaped exit, for LIMIT: SECONDS (a number), or COUNT
 * execs (a number followed by x: 2000x). Writes what it counted to OUT (through OUT.tmp
 * and a rename, so that a reader never sees half of it) as one line of KEY=VALUE words:
 *
 *   execs        execs attempted (forks that reached execve)
 *   failed       of those, the ones that did not run PROGRAM to a clean exit
 *   first_error  what the first failure was (errno of execve, exit status, signal), or -
 *   elapsed_ms   from the start of the first exec to the end of the last
 *   max_us       the slowest exec, fork to reaped exit
 *   over_2s      execs that took longer than 2 s (execguard's default deadline)
 *   slowest_s    the fewest execs completed in one whole second of the run
 *   fastest_s    the most
 *   p50_us       the median exec, fork to reaped exit
 *   p99_us       the 99th percentile (nearest rank)
 *
 * then sleeps until it is killed, so that the container and its shim (and the shim's
 * metrics file) stay for the caller to read. Static and exec-free apart from PROGRAM: the
 * only execs the supervisor sees from it are its own and PROGRAM's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: execloop GO SECONDS|COUNTx OUT PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *go = argv[1], *out = argv[3];
    char *unit;
    long limit = strtol(argv[2], &unit, 10);
    /* By count, the per-second figures cover the whole seconds the run took. */
    int by_count = strcmp(unit, "x") == 0;
    if (limit <= 0 || (*unit != '\0' && !by_count)) {
        fprintf(stderr, "execloop: LIMIT must be a positive number of seconds or of execs (2000x), not %s\n", argv[2]);
        return 2;
    }
    struct stat st;
    const struct timespec poll = {0, 10 * 1000 * 1000};
    while (stat(go, &st) != 0)
        nanosleep(&poll, NULL);

    /* Execs completed in each second of the run (grown as the run goes on, for the exec
     * that ends past the last second or a count that takes longer), and each exec's
     * duration. */
    long slots = by_count ? 1 : limit + 1, durations_cap = by_count ? limit : 4096;
    long *per_second = calloc(slots, sizeof(long));
    long long *durations = malloc(durations_cap * sizeof *durations);
    if (per_second == NULL || durations == NULL) {
        perror("execloop: calloc");
        return 1;
    }
    long long execs = 0, failed = 0, over_2s = 0, max_ns = 0;
    char first_error[64] = "-";
    long long start = now_ns(), end = start, stop = start + limit * 1000000000LL;
    while (by_count ? execs < limit : end < stop) {
        long long before = now_ns();
        pid_t child = fork();
        if (child < 0) {
            /* No exec was attempted: not counted as one, but as a failure. */
            if (failed++ == 0)
                snprintf(first_error, sizeof first_error, "fork:%s", strerrorname_np(errno));
            end = now_ns();
            continue;
        }
        if (child == 0) {
            execve(argv[4], argv + 4, environ);
            /* 128+errno: PROGRAM (true) exits 0, so any other status is execguard's or the kernel's. */
            _exit(128 + (errno & 0x7f));
        }
        execs++;
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        end = now_ns();
        long long took = end - before;
        if (took > max_ns)
            max_ns = took;
        if (took > 2000000000LL)
            over_2s++;
        if (execs > durations_cap) {
            durations_cap *= 2;
            durations = realloc(durations, durations_cap * sizeof *durations);
            if (durations == NULL) {
                perror("execloop: realloc");
                return 1;
            }
        }
        durations[execs - 1] = took;
        long second = (end - start) / 1000000000LL;
        if (second >= slots) {
            per_second = realloc(per_second, (second + 1) * sizeof(long));
            if (per_second == NULL) {
                perror("execloop: realloc");
                return 1;
            }
            memset(per_second + slots, 0, (second + 1 - slots) * sizeof(long));
            slots = second + 1;
        }
        per_second[second]++;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        if (failed++ == 0) {
            if (WIFSIGNALED(status))
                snprintf(first_error, sizeof first_error, "signal:%d", WTERMSIG(status));
            else if (WEXITSTATUS(status) > 128)
                snprintf(first_error, sizeof first_error, "execve:%s", strerrorname_np(WEXITSTATUS(status) - 128));
            else
                snprintf(first_error, sizeof first_error, "status:%d", WEXITSTATUS(status));
        }
    }
    /* The whole seconds of the run; by count, a run shorter than one second has none (-1). */
    long seconds = by_count ? (end - start) / 1000000000LL : limit;
    long slowest = -1, fastest = 0;
    for (long s = 0; s < seconds; s++) {
        if (slowest < 0 || per_second[s] < slowest)
            slowest = per_second[s];
        if (per_second[s] > fastest)
            fastest = per_second[s];
    }

    long long p50 = 0, p99 = 0;
    if (execs > 0) {
        qsort(durations, execs, sizeof *durations, by_value);
        p50 = durations[(execs + 1) / 2 - 1];
        p99 = durations[(99 * execs + 99) / 100 - 1];
    }

    char staged[4096];
    snprintf(staged, sizeof staged, "%s.tmp", out);
    FILE *f = fopen(staged, "w");
    if (f == NULL) {
        fprintf(stderr, "execloop: %s: %s\n", staged, strerror(errno));
        return 1;
    }
    fprintf(f, "execs=%lld failed=%lld first_error=%s elapsed_ms=%lld max_us=%lld over_2s=%lld slowest_s=%ld fastest_s=%ld p50_us=%lld p99_us=%lld\n",
            execs, failed, first_error, (end - start) / 1000000, max_ns / 1000, over_2s, slowest, fastest, p50 / 1000,
            p99 / 1000);
    if (fclose(f) != 0 || rename(staged, out) != 0) {
        fprintf(stderr, "execloop: writing %s: %s\n", out, strerror(errno));
        return 1;
    }
    for (;;)
        pause();
}
