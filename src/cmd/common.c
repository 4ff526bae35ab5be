/* common.c — what the commands share: PID parsing, usage errors, the single error line
 * printed when attaching fails, and launching `-- CMD ARGS...` for record and top.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ps_cmd.h"
#include "ps_util.h"

pid_t ps_cmd_parse_pid(const char *cmd, const char *arg)
{
    char *end;
    if (!arg || !*arg) {
        ps_cmd_usage_error(cmd, "missing PID");
        return -1;
    }
    long v = strtol(arg, &end, 10);
    if (*end || v <= 0 || v > 0x3fffffff || arg[0] == '+' || arg[0] == '-' || arg[0] == ' ') {
        ps_cmd_usage_error(cmd, "'%s' is not a process ID (expected a positive number)", arg);
        return -1;
    }
    return (pid_t)v;
}

int ps_cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pysample: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'pysample %s --help')\n", cmd);
    va_end(ap);
    return PS_EXIT_USAGE;
}

int ps_cmd_parse_number(const char *cmd, const char *what, const char *unit, const char *arg,
                        double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    int hex = strpbrk(arg, "xX") != NULL;
    if (errno || end == arg || *end || hex || !(v >= lo) || !(v <= hi))
        return ps_cmd_usage_error(cmd, "invalid %s '%.40s%s' (expected %s from %.10g to %.10g)", what,
                                  arg, strlen(arg) > 40 ? "..." : "", unit, lo, hi);
    *out = v;
    return 0;
}

int ps_cmd_attach_error(pid_t pid, int rc)
{
    const char *d = ps_err_detail();
    if (d)
        fprintf(stderr, "pysample: %s\n", d);
    else
        fprintf(stderr, "pysample: cannot attach to %d: %s\n", (int)pid, ps_strerror(rc));
    return rc == PS_EUSAGE ? PS_EXIT_USAGE : PS_EXIT_FAIL;
}

unsigned long ps_cmd_nofile_soft;
int ps_cmd_nofile_raised;

pid_t ps_cmd_launch(const char *who, char **cmd, int quiet)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        fprintf(stderr, "pysample: %s: pipe: %s\n", who, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "pysample: %s: fork: %s\n", who, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_DFL);
        struct rlimit rl;
        if (ps_cmd_nofile_raised && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = (rlim_t)ps_cmd_nofile_soft;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (quiet) {
            int nul = open("/dev/null", O_RDWR);
            if (nul >= 0) {
                dup2(nul, 0);
                dup2(nul, 1);
                dup2(nul, 2);
            }
        }
        execvp(cmd[0], cmd);
        int e = errno;
        if (write(fds[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(fds[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(fds[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    if (n == (ssize_t)sizeof e) {
        waitpid(pid, NULL, 0);
        fprintf(stderr, "pysample: %s: cannot run '%s': %s\n", who, cmd[0], strerror(e));
        return -1;
    }
    return pid;
}
