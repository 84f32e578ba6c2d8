/* socketloop COUNT: what a network socket() costs this process, for scripts/bench. Times
 * socket(AF_INET, SOCK_STREAM) and its close once (the process's first network socket,
 * the one execguard's socket gate in enforce mode checks the program of), then COUNT more
 * one after the other, and prints one line of KEY=VALUE words:
 *
 *   first_ns   the first call, socket() to close() returned
 *   p50_ns     the median of the COUNT later calls
 *   p99_ns     their 99th percentile (nearest rank)
 *   count      COUNT
 *
 * Static and exec-free, so that the only exec the supervisor sees from it is its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One socket() and close(), in ns; exits on failure (a refused socket is not a cost). */
static long long one_socket(void) {
    long long before = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "socketloop: socket: %s\n", strerror(errno));
        exit(1);
    }
    close(fd);
    return now_ns() - before;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long count = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    if (count <= 0) {
        fprintf(stderr, "usage: socketloop COUNT (a positive number)\n");
        return 2;
    }
    long long *took = malloc(count * sizeof *took);
    if (took == NULL) {
        perror("socketloop: malloc");
        return 1;
    }
    long long first = one_socket();
    for (long i = 0; i < count; i++)
        took[i] = one_socket();
    qsort(took, count, sizeof *took, by_value);
    long p50 = (count + 1) / 2, p99 = (99 * count + 99) / 100;
    printf("first_ns=%lld p50_ns=%lld p99_ns=%lld count=%ld\n", first, took[p50 - 1], took[p99 - 1], count);
    return 0;
}
