/* Sets up an io_uring instance (which can create sockets without socket(2)) and prints
 * "io_uring=ok" or "io_uring=ERRNO-NAME". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    unsigned char params[120] = {0}; /* struct io_uring_params, zeroed */
    long fd = syscall(SYS_io_uring_setup, 4, params);
    if (fd < 0) {
        printf("io_uring=%s\n", strerrorname_np(errno));
        return 1;
    }
    printf("io_uring=ok\n");
    return 0;
}
