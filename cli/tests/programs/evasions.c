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
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
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

/* Copies the target into NAME in the working directory. */
static void copy_here(const char *name) {
    int source = open(target, O_RDONLY);
    int copy = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    struct stat st;
    if (source < 0 || copy < 0 || fstat(source, &st) != 0) refused(name);
    if (sendfile(copy, source, NULL, (size_t)st.st_size) != st.st_size) refused(name);
    close(source);
    close(copy);
}

/* The memfd copy run through a path into procfs written as FORMAT (with the fd). */
static void exec_memfd_as(const char *format) {
    char path[128];
    int fd = open_copy_in_memfd();
    snprintf(path, sizeof path, format, fd);
    execv(path, args);
}

static void attempt(const char *method) {
    char path[128];
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
    } else if (strcmp(method, "proc-slashes") == 0) {
        exec_memfd_as("//proc//self///fd/%d");
    } else if (strcmp(method, "proc-dots") == 0) {
        exec_memfd_as("/proc/./self/../self/fd/./%d");
    } else if (strcmp(method, "dev-fd") == 0) {
        exec_memfd_as("/dev/fd/%d");
    } else if (strcmp(method, "thread-self") == 0) {
        exec_memfd_as("/proc/thread-self/fd/%d");
    } else if (strcmp(method, "proc-pid-fd") == 0) {
        fd = open_copy_in_memfd();
        snprintf(path, sizeof path, "/proc/%d/fd/%d", getpid(), fd);
        execv(path, args);
    } else if (strcmp(method, "dev-stdin") == 0) {
        dup2(open_copy_in_memfd(), 0);
        execv("/dev/stdin", args);
    } else if (strcmp(method, "symlink-to-proc") == 0) {
        fd = open_copy_in_memfd();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        unlink("proc-link");
        if (symlink(path, "proc-link") != 0) refused(method);
        execv("./proc-link", args);
    } else if (strcmp(method, "proc-root") == 0) {
        snprintf(path, sizeof path, "/proc/self/root%s", target);
        execv(path, args);
    } else if (strcmp(method, "proc-cwd") == 0) {
        copy_here("cwd-copy");
        execv("/proc/self/cwd/cwd-copy", args);
    } else if (strcmp(method, "deep-cwd") == 0) {
        /* Deeper than PATH_MAX: 25 levels of 200 characters. */
        char level[201];
        memset(level, 'd', 200);
        level[200] = 0;
        for (int i = 0; i < 25; i++) {
            mkdir(level, 0755);
            if (chdir(level) != 0) refused(method);
        }
        copy_here("deep-copy");
        execv("./deep-copy", args);
    } else if (strcmp(method, "detached-cwd") == 0) {
        /* A working directory on a mount detached after the cd. */
        mkdir("detached", 0755);
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("detached", "detached", NULL, MS_BIND, NULL) != 0 || chdir("detached") != 0)
            refused(method);
        copy_here("detached-copy");
        if (umount2("../detached", MNT_DETACH) != 0) refused(method);
        execv("./detached-copy", args);
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
    const char *methods[] = {"execveat",    "fexecve",         "memfd",     "proc-self-fd", "proc-slashes",
                             "proc-dots",   "dev-fd",          "thread-self", "proc-pid-fd", "dev-stdin",
                             "symlink-to-proc", "proc-root",   "proc-cwd",  "deep-cwd",     "detached-cwd",
                             "i386",        "loader"};
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
