/* memexec PATH-FORMAT PROGRAM [ARGS...]: copies PROGRAM into a memfd and execs it through
 * the path PATH-FORMAT names it by, with the memfd's number for %d ("/proc/self/fd/%d",
 * "/dev/fd/%d", ...): fileless execution, as a dropper does it. Prints the error and exits
 * 126 when the exec fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: memexec PATH-FORMAT PROGRAM [ARGS...]\n");
        return 2;
    }
    int source = open(argv[2], O_RDONLY);
    int memfd = memfd_create("payload", 0);
    struct stat st;
    if (source < 0 || memfd < 0 || fstat(source, &st) != 0 ||
        sendfile(memfd, source, NULL, (size_t)st.st_size) != st.st_size) {
        fprintf(stderr, "memexec: copying %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    char path[256];
    snprintf(path, sizeof path, argv[1], memfd);
    execv(path, argv + 2);
    fprintf(stderr, "memexec: %s: %s\n", path, strerror(errno));
    return 126;
}
