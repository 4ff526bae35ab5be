/* readcost.c — the floor under pysample's cost per sample: what one remote read costs here.
 * Forks a child that holds a 4 KiB buffer and waits, then times batches of single reads of the
 * child's memory (process_vm_readv of 8 and 4096 bytes, one call gathering 8 scattered 8-byte
 * pieces, pread on /proc/PID/mem) and of a local syscall for scale, then the sampler's other
 * fixed cost: a sleep to an absolute deadline at 1 kHz and 50 kHz; and one 8-byte read taken
 * after each 1 ms sleep, timed like a sample (cold caches). Built and run by
 * tests/bench/run_bench.sh; it prints, per method, the median of the batches' per-call cost.
 *
 * Usage: readcost [N [BATCHES]]   (default 20000 reads per batch, 5 batches)
 * Output: one line per method: "METHOD BYTES CPU_US WALL_US" (CPU: this thread's CPU time,
 * user + system, per call; WALL: monotonic clock per call, for the sleeps the period achieved).
 * Exit status 0, or 1 with a message on stderr when a read fails or the child cannot be started.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 4096
#define MAX_BATCHES 64

enum method { M_LOCAL, M_PVR8, M_PVR4096, M_PVR8X8, M_PREAD8, M_PREAD4096, M__COUNT };

static const struct {
    const char *name;
    size_t bytes;
} methods[M__COUNT] = {
    [M_LOCAL] = {"local_syscall", 0},
    [M_PVR8] = {"process_vm_readv", 8},
    [M_PVR4096] = {"process_vm_readv", 4096},
    [M_PVR8X8] = {"process_vm_readv_8iov", 64},
    [M_PREAD8] = {"pread_proc_mem", 8},
    [M_PREAD4096] = {"pread_proc_mem", 4096},
};

static _Alignas(4096) unsigned char shared_buf[BUF_SIZE];

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The sampler's other fixed cost per tick: one clock_nanosleep to an absolute deadline
 * `interval_ns` after the previous one (re-aligned when late, as the sampler does). Returns the
 * CPU and wall µs per sleep over `n` sleeps. */
static void sleep_batch(long n, long interval_ns, double *cpu_us, double *wall_us)
{
    struct timespec dl;
    double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), w0 = now_s(CLOCK_MONOTONIC);
    clock_gettime(CLOCK_MONOTONIC, &dl);
    for (long i = 0; i < n; i++) {
        dl.tv_nsec += interval_ns;
        while (dl.tv_nsec >= 1000000000L) {
            dl.tv_nsec -= 1000000000L;
            dl.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR)
            ;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec > dl.tv_nsec + interval_ns))
            dl = now;
    }
    *cpu_us = (now_s(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e6 / (double)n;
    *wall_us = (now_s(CLOCK_MONOTONIC) - w0) * 1e6 / (double)n;
}

/* One read by method m; returns 0 or -1 with errno set. */
static int read_once(enum method m, pid_t pid, int memfd, unsigned char *dst)
{
    struct iovec local[8], remote[8];
    ssize_t want, got;
    switch (m) {
    case M_LOCAL:
        return syscall(SYS_getppid) < 0 ? -1 : 0;
    case M_PVR8:
    case M_PVR4096:
        local[0] = (struct iovec){dst, methods[m].bytes};
        remote[0] = (struct iovec){shared_buf, methods[m].bytes};
        want = (ssize_t)methods[m].bytes;
        got = process_vm_readv(pid, local, 1, remote, 1, 0);
        break;
    case M_PVR8X8:
        for (int i = 0; i < 8; i++) {
            local[i] = (struct iovec){dst + 8 * i, 8};
            remote[i] = (struct iovec){shared_buf + 512 * i, 8};
        }
        want = 64;
        got = process_vm_readv(pid, local, 8, remote, 8, 0);
        break;
    case M_PREAD8:
    case M_PREAD4096:
        want = (ssize_t)methods[m].bytes;
        got = pread(memfd, dst, methods[m].bytes, (off_t)(unsigned long)shared_buf);
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (got != want) {
        if (got >= 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    long batches = argc > 2 ? strtol(argv[2], NULL, 10) : 5;
    if (n < 1 || batches < 1 || batches > MAX_BATCHES) {
        fprintf(stderr, "usage: readcost [N [BATCHES]] (N >= 1, 1 <= BATCHES <= %d)\n", MAX_BATCHES);
        return 64;
    }
    for (size_t i = 0; i < sizeof shared_buf; i++)
        shared_buf[i] = (unsigned char)i;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "readcost: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        /* The child: keeps its copy of shared_buf mapped and waits to be killed. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        for (;;)
            pause();
    }

    int status = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int memfd = open(path, O_RDONLY | O_CLOEXEC);
    if (memfd < 0) {
        fprintf(stderr, "readcost: open %s: %s\n", path, strerror(errno));
        status = 1;
        goto out;
    }
    static _Alignas(64) unsigned char dst[BUF_SIZE];
    for (int m = 0; m < M__COUNT && status == 0; m++) {
        double cpu[MAX_BATCHES], wall[MAX_BATCHES];
        /* Warm-up: page tables, caches, the first-call paths in the kernel. */
        for (long i = 0; i < 100; i++) {
            if (read_once((enum method)m, pid, memfd, dst) < 0) {
                fprintf(stderr, "readcost: %s of %zu bytes from pid %d: %s\n", methods[m].name,
                        methods[m].bytes, (int)pid, strerror(errno));
                status = 1;
                break;
            }
        }
        if (status)
            break;
        if (m != M_LOCAL && memcmp(dst, shared_buf, 8) != 0) {
            fprintf(stderr, "readcost: %s read wrong bytes\n", methods[m].name);
            status = 1;
            break;
        }
        for (long b = 0; b < batches; b++) {
            double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), w0 = now_s(CLOCK_MONOTONIC);
            for (long i = 0; i < n; i++) {
                if (read_once((enum method)m, pid, memfd, dst) < 0) {
                    fprintf(stderr, "readcost: %s: %s\n", methods[m].name, strerror(errno));
                    status = 1;
                    break;
                }
            }
            double c1 = now_s(CLOCK_THREAD_CPUTIME_ID), w1 = now_s(CLOCK_MONOTONIC);
            cpu[b] = (c1 - c0) * 1e6 / (double)n;
            wall[b] = (w1 - w0) * 1e6 / (double)n;
            if (status)
                break;
        }
        if (status)
            break;
        printf("%s %zu %.3f %.3f\n", methods[m].name, methods[m].bytes, median(cpu, (int)batches),
               median(wall, (int)batches));
    }
    /* One 8-byte read after each 1 ms sleep, timed like a sample (pysample's sample_cpu_us):
     * this thread's CPU clock read just before and just after it. A read at 1 kHz finds the
     * caches and TLBs cold, as a sample does; the median over all reads is printed. */
    if (status == 0) {
        enum { COLD_N = 200 };
        static double cold[COLD_N * MAX_BATCHES], cold_wall[COLD_N * MAX_BATCHES];
        int nc = 0;
        for (long b = 0; b < batches && status == 0; b++) {
            struct timespec dl;
            clock_gettime(CLOCK_MONOTONIC, &dl);
            for (int i = 0; i < COLD_N; i++) {
                dl.tv_nsec += 1000000L;
                if (dl.tv_nsec >= 1000000000L) {
                    dl.tv_nsec -= 1000000000L;
                    dl.tv_sec++;
                }
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR)
                    ;
                double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), w0 = now_s(CLOCK_MONOTONIC);
                if (read_once(M_PVR8, pid, memfd, dst) < 0) {
                    fprintf(stderr, "readcost: process_vm_readv at 1 kHz: %s\n", strerror(errno));
                    status = 1;
                    break;
                }
                cold_wall[nc] = (now_s(CLOCK_MONOTONIC) - w0) * 1e6;
                cold[nc++] = (now_s(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e6;
                clock_gettime(CLOCK_MONOTONIC, &dl); /* the next deadline 1 ms from now */
            }
        }
        if (status == 0)
            printf("process_vm_readv_1khz 8 %.3f %.3f\n", median(cold, nc), median(cold_wall, nc));
    }
    /* Sleeps at 1 kHz and 50 kHz: CPU per tick spent sleeping and waking, and the period the
     * timer really delivers (timer slack and wake-up latency included). */
    static const struct {
        const char *name;
        long interval_ns, n;
    } sleeps[] = {{"sleep_abs_1000us", 1000000, 200}, {"sleep_abs_20us", 20000, 2000}};
    for (size_t k = 0; k < sizeof sleeps / sizeof sleeps[0] && status == 0; k++) {
        double cpu[MAX_BATCHES], wall[MAX_BATCHES];
        for (long b = 0; b < batches; b++)
            sleep_batch(sleeps[k].n, sleeps[k].interval_ns, &cpu[b], &wall[b]);
        printf("%s 0 %.3f %.3f\n", sleeps[k].name, median(cpu, (int)batches), median(wall, (int)batches));
    }
    if (memfd >= 0)
        close(memfd);
out:
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "readcost: writing output: %s\n", strerror(errno));
        status = 1;
    }
    return status;
}
