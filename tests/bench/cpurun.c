/* cpurun.c — runs one command and reports the CPU time it used, to the microsecond.
 * The bench's stopwatch: /usr/bin/time and bash's `times` round to 10 ms, too coarse for a
 * profiler that spends a few µs per sample. wait4() returns the child's rusage (including
 * descendants it waited for), whose user + system sum is the scheduler's exact runtime.
 *
 * Usage: cpurun [-o FILE] [-i SECONDS] [-k SECONDS] CMD [ARGS...]
 *   -o FILE     write the report to FILE instead of stderr
 *   -i SECONDS  send SIGINT to CMD after SECONDS (for commands that only stop on Ctrl-C)
 *   -k SECONDS  send SIGKILL to CMD after SECONDS (a hard bound; default 600)
 * Report: one line "user_us=N sys_us=N cpu_us=N maxrss_kib=N wall_us=N status=N" (status: the
 * exit code, or 128 + the signal that ended CMD).
 * cpurun exits with STATUS; SIGTERM, SIGINT and SIGHUP sent to it are passed on to CMD, and CMD
 * is killed if cpurun dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: cpurun [-o FILE] [-i SECONDS] [-k SECONDS] CMD [ARGS...]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    const char *out_path = NULL;
    double int_after = 0, kill_after = 600;
    int opt;
    while ((opt = getopt(argc, argv, "+o:i:k:")) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'o':
            out_path = optarg;
            break;
        case 'i':
            int_after = strtod(optarg, &end);
            if (*end || int_after <= 0)
                usage();
            break;
        case 'k':
            kill_after = strtod(optarg, &end);
            if (*end || kill_after <= 0)
                usage();
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);

    pid_t parent = getpid();
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cpurun: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "cpurun: cannot run %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }

    int status = 0, sent_int = 0, sent_kill = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    for (;;) {
        pid_t r = wait4(pid, &status, WNOHANG, &ru);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "cpurun: wait4: %s\n", strerror(errno));
            return 1;
        }
        double el = now_s() - t0, next = kill_after;
        if (int_after > 0 && !sent_int) {
            if (el >= int_after) {
                kill(pid, SIGINT);
                sent_int = 1;
            } else if (int_after < next) {
                next = int_after;
            }
        }
        if (!sent_kill && el >= kill_after) {
            kill(pid, SIGKILL);
            sent_kill = 1;
        }
        /* Wait for the child to change state, a forwarded signal, or the next deadline. */
        double left = sent_kill ? 1.0 : next - el;
        if (left < 0.001)
            left = 0.001;
        if (left > 1.0)
            left = 1.0;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            kill(pid, sig);
    }
    double wall = now_s() - t0;
    long long user_us = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
    long long sys_us = (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;

    FILE *f = stderr;
    if (out_path && !(f = fopen(out_path, "w"))) {
        fprintf(stderr, "cpurun: cannot write %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    fprintf(f, "user_us=%lld sys_us=%lld cpu_us=%lld maxrss_kib=%ld wall_us=%.0f status=%d\n", user_us,
            sys_us, user_us + sys_us, ru.ru_maxrss, wall * 1e6, code);
    if (f != stderr && fclose(f) != 0) {
        fprintf(stderr, "cpurun: writing %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    return code;
}
