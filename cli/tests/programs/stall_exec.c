/* Execs with an argument the supervisor cannot read in time, for the deadline tests.
 *
 *   stall_exec MILLISECONDS PATH ARGV0 ARG
 *
 * ARG is placed in a page registered with userfaultfd: every read of it, the supervisor's
 * process_vm_readv and the kernel's own copy in execve alike, waits until a thread of
 * this program fills the page, MILLISECONDS after the start. This is how a process with
 * CAP_SYS_PTRACE can stall its own inspection. A failed exec prints
 * "exec failed: REASON" and exits 126.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static long page_size;
static int uffd;
static char *stalled_page;
static const char *arg_text;
static int delay_ms;

static void *fill_later(void *unused) {
    (void)unused;
    usleep((useconds_t)delay_ms * 1000);
    char *source = aligned_alloc((size_t)page_size, (size_t)page_size);
    memset(source, 0, (size_t)page_size);
    strncpy(source, arg_text, (size_t)page_size - 1);
    struct uffdio_copy copy = {
        .dst = (unsigned long)stalled_page, .src = (unsigned long)source, .len = (unsigned long)page_size, .mode = 0};
    ioctl(uffd, UFFDIO_COPY, &copy);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MILLISECONDS PATH ARGV0 ARG\n", argv[0]);
        return 2;
    }
    delay_ms = atoi(argv[1]);
    arg_text = argv[4];
    page_size = sysconf(_SC_PAGESIZE);
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) {
        perror("userfaultfd");
        return 2;
    }
    stalled_page = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg = {
        .range = {.start = (unsigned long)stalled_page, .len = (unsigned long)page_size},
        .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (stalled_page == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
        perror("UFFDIO_REGISTER");
        return 2;
    }
    pthread_t filler;
    pthread_create(&filler, NULL, fill_later, NULL);
    char *exec_argv[] = {argv[3], stalled_page, NULL};
    execv(argv[2], exec_argv);
    printf("exec failed: %s\n", strerror(errno));
    fflush(stdout);
    _exit(126);
}
