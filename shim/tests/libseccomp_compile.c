/* Compiles seccomp rules through the real libseccomp, the way runc 1.1 does for a
 * container's profile (libcontainer/seccomp/seccomp_linux.go): seccomp_init with the
 * default action, the profile's architectures added, then one seccomp_rule_add_array per
 * (rule, name) -- not the _exact variant, so libseccomp may rewrite a rule for a
 * multiplexed syscall as it does for runc -- and a name unknown to an architecture skipped.
 * Writes the BPF program (seccomp_export_bpf) to stdout.
 *
 * Input on stdin, one item per line:
 *   default ACTION
 *   arch NAME                       (x86_64, x86, x32)
 *   rule ACTION SYSCALL [INDEX OP VALUE VALUE_TWO]...
 * ACTION: allow, notify, errno:N; OP: eq, masked_eq. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "libseccomp_compile: %s: %s\n", what, detail);
    return 2;
}

static int action(const char *text, uint32_t *out) {
    if (strcmp(text, "allow") == 0) *out = SCMP_ACT_ALLOW;
    else if (strcmp(text, "notify") == 0) *out = SCMP_ACT_NOTIFY;
    else if (strncmp(text, "errno:", 6) == 0) *out = SCMP_ACT_ERRNO(atoi(text + 6));
    else return -1;
    return 0;
}

int main(void) {
    char line[4096];
    scmp_filter_ctx ctx = NULL;
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL, *word = strtok_r(line, " \n", &save);
        if (!word) continue;
        if (strcmp(word, "default") == 0) {
            uint32_t act;
            char *text = strtok_r(NULL, " \n", &save);
            if (!text || action(text, &act)) return fail("bad default action", text ? text : "");
            ctx = seccomp_init(act);
            if (!ctx) return fail("seccomp_init", text);
            /* runc keeps the native arch only if the profile names it. */
            seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
        } else if (strcmp(word, "arch") == 0) {
            char *name = strtok_r(NULL, " \n", &save);
            uint32_t arch = !name ? 0 : strcmp(name, "x86_64") == 0 ? SCMP_ARCH_X86_64
                          : strcmp(name, "x86") == 0 ? SCMP_ARCH_X86
                          : strcmp(name, "x32") == 0 ? SCMP_ARCH_X32 : 0;
            if (!ctx || !arch) return fail("bad arch", name ? name : "");
            int rc = seccomp_arch_add(ctx, arch);
            if (rc && rc != -EEXIST) return fail("seccomp_arch_add", strerror(-rc));
        } else if (strcmp(word, "rule") == 0) {
            uint32_t act;
            char *text = strtok_r(NULL, " \n", &save), *name = strtok_r(NULL, " \n", &save);
            if (!ctx || !text || !name || action(text, &act)) return fail("bad rule", name ? name : "");
            struct scmp_arg_cmp args[6];
            unsigned count = 0;
            char *index;
            while ((index = strtok_r(NULL, " \n", &save)) && count < 6) {
                char *op = strtok_r(NULL, " \n", &save), *value = strtok_r(NULL, " \n", &save),
                     *two = strtok_r(NULL, " \n", &save);
                if (!op || !value || !two) return fail("bad condition", name);
                enum scmp_compare cmp = strcmp(op, "masked_eq") == 0 ? SCMP_CMP_MASKED_EQ : SCMP_CMP_EQ;
                args[count++] = (struct scmp_arg_cmp){ (unsigned)atoi(index), cmp,
                                                       strtoull(value, NULL, 0), strtoull(two, NULL, 0) };
            }
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR) continue; /* runc skips names libseccomp does not know */
            int rc = seccomp_rule_add_array(ctx, act, nr, count, args);
            if (rc) return fail("seccomp_rule_add_array", name);
        }
    }
    if (!ctx) return fail("no default action", "");
    int rc = seccomp_export_bpf(ctx, STDOUT_FILENO);
    seccomp_release(ctx);
    return rc ? fail("seccomp_export_bpf", strerror(-rc)) : 0;
}
