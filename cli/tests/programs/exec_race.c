/* Races the exec gate: the supervisor reads an execve's path and argv, answers CONTINUE,
 * and the kernel reads them again; a partner that shares the memory flips them between an
 * allowed and a blocked program in between. Usage:
 *
 *   exec_race KIND ATTEMPTS ALLOWED BLOCKED ARG...
 *
 * KIND is "thread" (a second thread flips the path), "clone-vm" (a child that shares the
 * address space, without CLONE_THREAD, flips it) or "argv" (a thread flips argv[1] between
 * ALLOWED and BLOCKED, which are then arguments of one program, ARG... being the program
 * and the rest of its argv), or "swap" (a thread swaps two symlinks, ./race-link and
 * ./race-spare, pointing at ALLOWED and BLOCKED, with renameat2(RENAME_EXCHANGE) while
 * ./race-link is exec'd). Each attempt runs in a fresh child; the program prints
 * "attempts=N" and exits 0. What ran, and whether it connected, is the test's to count. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char path[256];
static char arg1[256];
static const char *first, *second;
static char *target; /* path or arg1 */
static pid_t racer;   /* the process that execs */

/* Flips the target until the racer is gone: a thread dies with the exec; a clone-vm
 * partner sees its parent change once the racer (now the exec'd program) has exited. */
static int flip(void *unused) {
    (void)unused;
    for (unsigned i = 0;; i++) {
        strncpy(target, (i & 1) ? second : first, 255);
        if ((i & 1023) == 0 && getppid() != racer && getpid() != racer) return 0;
    }
}

static void *flip_thread(void *unused) {
    flip(unused);
    return NULL;
}

static void *swap_thread(void *unused) {
    (void)unused;
    for (;;) renameat2(AT_FDCWD, "race-link", AT_FDCWD, "race-spare", RENAME_EXCHANGE);
    return NULL;
}

static char stack[64 * 1024];

static void attempt(const char *kind, char **argv) {
    racer = getpid();
    if (strcmp(kind, "clone-vm") == 0) {
        /* The partner shares the memory but is another process: it survives the exec. */
        pid_t partner = clone(flip, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
        if (partner < 0) _exit(2);
        execve(path, argv, environ);
        _exit(126);
    }
    pthread_t thread;
    void *(*partner)(void *) = strcmp(kind, "swap") == 0 ? swap_thread : flip_thread;
    if (pthread_create(&thread, NULL, partner, NULL) != 0) _exit(2);
    execve(path, argv, environ);
    _exit(126);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: exec_race KIND ATTEMPTS ALLOWED BLOCKED ARG...\n");
        return 2;
    }
    const char *kind = argv[1];
    int attempts = atoi(argv[2]);
    first = argv[3];
    second = argv[4];
    char **child_argv = calloc((size_t)argc, sizeof *child_argv);
    if (strcmp(kind, "argv") == 0) {
        /* exec_race argv N ALLOWED-ARG BLOCKED-ARG PROGRAM ARGV0 REST... */
        if (argc < 7) return 2;
        strncpy(path, argv[5], 255);
        child_argv[0] = argv[6];
        child_argv[1] = arg1;
        for (int i = 7; i < argc; i++) child_argv[i - 5] = argv[i];
        target = arg1;
    } else if (strcmp(kind, "swap") == 0) {
        /* exec_race swap N ALLOWED-PATH BLOCKED-PATH ARGV0 REST... */
        unlink("race-link");
        unlink("race-spare");
        if (symlink(first, "race-link") != 0 || symlink(second, "race-spare") != 0) return 2;
        for (int i = 5; i < argc; i++) child_argv[i - 5] = argv[i];
        strcpy(path, "./race-link");
        target = arg1; /* nothing to flip in memory */
    } else {
        /* exec_race thread|clone-vm N ALLOWED-PATH BLOCKED-PATH ARGV0 REST... */
        for (int i = 5; i < argc; i++) child_argv[i - 5] = argv[i];
        target = path;
    }
    if (strcmp(kind, "swap") != 0) strncpy(target, first, 255);
    for (int i = 0; i < attempts; i++) {
        fflush(stdout);
        pid_t child = fork();
        if (child < 0) return 2;
        if (child == 0) attempt(kind, child_argv);
        int status;
        waitpid(child, &status, 0);
    }
    printf("attempts=%d\n", attempts);
    return 0;
}
