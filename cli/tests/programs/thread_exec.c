/* Execs from a second thread, for the supervisor's tests.
 *
 *   thread_exec wait PATH ARGV0 ARGS...   the thread execs; the main thread waits for it
 *   thread_exec die  PATH ARGV0 ARGS...   the thread execs; the main thread ends the whole
 *                                         process after $DIE_US microseconds, while the
 *                                         exec may still be under inspection
 *
 * A failed exec prints "exec failed: REASON" and exits 126.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char **exec_argv;
static const char *exec_path;

static void *exec_in_thread(void *unused) {
    (void)unused;
    execv(exec_path, exec_argv);
    printf("exec failed: %s\n", strerror(errno));
    fflush(stdout);
    _exit(126);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s wait|die PATH ARGV0 [ARGS...]\n", argv[0]);
        return 2;
    }
    exec_path = argv[2];
    exec_argv = argv + 3;
    pthread_t thread;
    if (pthread_create(&thread, NULL, exec_in_thread, NULL) != 0) {
        return 2;
    }
    if (strcmp(argv[1], "die") == 0) {
        const char *delay = getenv("DIE_US");
        usleep(delay ? (useconds_t)atoi(delay) : 0);
        _exit(9);
    }
    pthread_join(thread, NULL);
    return 0;
}
