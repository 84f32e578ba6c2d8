/* A process whose exec the kernel refuses after the supervisor let it through, which
 * then starts a child, for the supervisor's tests of the process table.
 *
 *   exec_fails IMPOSTOR PATH ARGV0 ARGS...
 *
 * execs IMPOSTOR (a file without execute permission: the kernel fails the exec with
 * EACCES, and the process goes on as what it was), prints "exec failed: ERRNO", then runs
 * PATH with ARGV0 ARGS... as its child and waits for it.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    char *impostor_argv[] = {"impostor", NULL};
    execv(argv[1], impostor_argv);
    printf("exec failed: %d\n", errno);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        execv(argv[2], argv + 3);
        _exit(127);
    }
    int status;
    waitpid(child, &status, 0);
    return 0;
}
