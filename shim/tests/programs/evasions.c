/* Every way this program knows to run a file without naming it plainly, for the tests of
 * what a block holds against. Usage: evasions PATH ARG...
 *
 * For each method a child tries to exec PATH with argv {"nc", ARG...}; the parent prints
 * "METHOD exit=N" with the child's exit status. A refused exec prints
 * "METHOD refused: REASON" and exits 126.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *target;
static char **args;

static void refused(const char *method) {
    printf("%s refused: %s\n", method, strerror(errno));
    fflush(stdout);
    _exit(126);
}

static int open_copy_in_memfd(void) {
    int source = open(target, O_RDONLY);
    struct stat st;
    int memfd = memfd_create("payload", 0);
    if (source < 0 || memfd < 0 || fstat(source, &st) != 0) return -1;
    if (sendfile(memfd, source, NULL, (size_t)st.st_size) != st.st_size) return -1;
    close(source);
    return memfd;
}

/* execve through the i386 entry point (int 0x80), with 32-bit pointers. */
static void exec_i386(void) {
    char *low = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) refused("i386");
    uint32_t *argv32 = (uint32_t *)low;
    char *strings = low + 256;
    size_t n = 0;
    for (; args[n]; n++) {
        strcpy(strings, args[n]);
        argv32[n] = (uint32_t)(uintptr_t)strings;
        strings += strlen(args[n]) + 1;
    }
    argv32[n] = 0;
    strcpy(strings, target);
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(11), "b"((uint32_t)(uintptr_t)strings), "c"((uint32_t)(uintptr_t)argv32), "d"(0)
                     : "memory");
    errno = (int)-ret;
    refused("i386");
}

static void attempt(const char *method) {
    char path[64];
    int fd;
    if (strcmp(method, "execveat") == 0) {
        syscall(SYS_execveat, AT_FDCWD, target, args, environ, 0);
    } else if (strcmp(method, "fexecve") == 0) {
        fd = open(target, O_RDONLY);
        fexecve(fd, args, environ);
    } else if (strcmp(method, "memfd") == 0) {
        fd = open_copy_in_memfd();
        fexecve(fd, args, environ);
    } else if (strcmp(method, "proc-self-fd") == 0) {
        fd = open_copy_in_memfd();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        execv(path, args);
    } else if (strcmp(method, "i386") == 0) {
        exec_i386();
    } else if (strcmp(method, "loader") == 0) {
        size_t n = 0;
        while (args[n]) n++;
        char **loader_args = calloc(n + 2, sizeof *loader_args);
        loader_args[0] = "ld.so";
        loader_args[1] = target;
        for (size_t i = 1; i < n; i++) loader_args[i + 1] = args[i];
        execv("/lib64/ld-linux-x86-64.so.2", loader_args);
    }
    refused(method);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH ARG...\n", argv[0]);
        return 2;
    }
    target = argv[1];
    args = argv + 1;
    args[0] = "nc";
    const char *methods[] = {"execveat", "fexecve", "memfd", "proc-self-fd", "i386", "loader"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) attempt(methods[i]);
        int status = 0;
        waitpid(child, &status, 0);
        printf("%s exit=%d\n", methods[i], WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    return 0;
}
