/* clockns: prints CLOCK_MONOTONIC in nanoseconds, for timing a shell loop from inside a
 * container (scripts/bench): the image's date is busybox's, which has no %N. Static, so
 * that its own exec is as short as an exec gets. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clockns: clock_gettime");
        return 1;
    }
    printf("%lld\n", ts.tv_sec * 1000000000LL + ts.tv_nsec);
    return 0;
}
