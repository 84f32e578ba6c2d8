/* fexec PROGRAM [ARGS...]: runs PROGRAM through execveat(2) on an O_PATH fd, the way
 * fexecve(3) does, so that the end-to-end tests can exercise a seccomp profile's rules for
 * execveat. Prints the error and exits 127 when the exec fails. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fexec PROGRAM [ARGS...]\n");
        return 2;
    }
    int fd = open(argv[1], O_PATH | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "fexec: %s: %s\n", argv[1], strerror(errno));
        return 127;
    }
    syscall(SYS_execveat, fd, "", argv + 1, environ, AT_EMPTY_PATH);
    fprintf(stderr, "fexec: execveat: %s\n", strerror(errno));
    return 127;
}
