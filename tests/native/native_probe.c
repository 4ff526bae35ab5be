/* native_probe.c — test driver for src/native, built by tests/integration/test_native.sh
 * against build/obj: merged native + Python stacks of a live target with the merge's counts,
 * unwind timing, and the ways a tracer lets go of a thread (detach, crash, SIGKILL).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ps_native.h"
#include "ps_python.h"
#include "ps_util.h"

static pid_t g_pid, g_tid;

static int usage(void)
{
    fprintf(stderr, "usage: native_probe dump [--all] PID | bench PID TID N [py] | "
                    "hold PID TID | hold-stopped PID TID | crash-stopped PID TID\n");
    return 64;
}

/* ---- dump ------------------------------------------------------------------------------- */

struct read_py {
    struct ps_py *py;
    struct ps_py_snapshot *snap;
    int rc;
};

static void read_python(void *arg, pid_t tid)
{
    (void)tid;
    struct read_py *r = arg;
    r->rc = ps_py_sample(r->py, r->snap);
}

static const struct ps_py_thread *find_thread(const struct ps_py_snapshot *s, pid_t tid)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i].tid == tid)
            return &s->t[i];
    return NULL;
}

static int cmd_dump(pid_t pid, int show_all)
{
    struct ps_py py;
    int rc = ps_py_attach(&py, pid);
    if (rc < 0) {
        fprintf(stderr, "native_probe: attach %d: %s %s\n", (int)pid, ps_strerror(rc),
                ps_err_detail() ? ps_err_detail() : "");
        return 2;
    }
    struct ps_py_snapshot snap, during;
    ps_py_snapshot_init(&snap);
    ps_py_snapshot_init(&during);
    rc = ps_py_sample(&py, &snap);
    if (rc < 0) {
        fprintf(stderr, "native_probe: sample: %s\n", ps_strerror(rc));
        return 2;
    }
    struct ps_native *n = ps_native_new(pid);
    if (!n) {
        fprintf(stderr, "native_probe: %s\n", ps_err_detail());
        return 2;
    }
    ps_native_set_stop_timeout(n, 1000ull * 1000000ull); /* one look: waiting longer is fine */
    pid_t *tids = ps_xcalloc((size_t)snap.n + 1, sizeof(pid_t));
    int ntids = 0;
    for (int i = snap.n - 1; i >= 0; i--)
        if (snap.t[i].tid)
            tids[ntids++] = snap.t[i].tid;
    struct ps_native_stack *st = ps_xmalloc(sizeof *st);
    struct ps_native_sym *syms = ps_xcalloc(PS_NATIVE_MAX_FRAMES, sizeof *syms);
    int maxm = PS_NATIVE_MAX_FRAMES * (PS_NATIVE_MAX_INLINE + 1) + PS_PY_MAX_DEPTH;
    struct ps_merged_frame *m = ps_xcalloc((size_t)maxm, sizeof *m);
    int status = 0;
    for (int k = 0; k < ntids; k++) {
        pid_t tid = tids[k];
        /* The Python frames are read while the thread is stopped: both views of one moment. */
        struct read_py r = {&py, &during, 0};
        rc = ps_native_unwind_stack(n, tid, st, read_python, &r);
        char name[64] = "";
        const struct ps_py_thread *pt = find_thread(&snap, tid);
        if (pt)
            ps_py_thread_name(&py, pt, name, sizeof name);
        printf("Thread %d \"%s\"\n", (int)tid, name);
        if (rc < 0) {
            printf("    <native stack unavailable: %s: %s>\n\n", ps_strerror(rc),
                   ps_err_detail() ? ps_err_detail() : "");
            status = 1;
            continue;
        }
        const struct ps_py_thread *t = r.rc == 0 ? find_thread(&during, tid) : NULL;
        ps_native_symbolize_stack(n, st, syms);
        struct ps_merge_stats ms;
        int nm = ps_native_merge(syms, st->n, st->complete, t ? t->frames : NULL,
                                 t ? t->nframes : 0, show_all, m, maxm, &ms);
        for (int i = 0; i < nm; i++) {
            char label[1024];
            if (m[i].kind == PS_MERGED_PYTHON) {
                const char *file = ps_py_short_filename(&py, m[i].code->file);
                if (m[i].pyline > 0)
                    printf("    %s (%s:%d)\n", m[i].code->name, file, m[i].pyline);
                else
                    printf("    %s (%s)\n", m[i].code->name, file);
            } else {
                ps_native_merged_label(&m[i], label, sizeof label);
                printf("    %s%s\n", label, m[i].inlined ? " [inlined]" : "");
            }
        }
        printf("# native=%d complete=%d stopped_us=%.1f eval=%d python=%d unmatched_python=%d "
               "unmatched_eval=%d hidden=%d python_err=%s\n\n",
               st->n, st->complete, (double)st->stopped_ns / 1000.0, ms.eval_activations,
               ms.python_activations, ms.unmatched_python, ms.unmatched_eval, ms.hidden,
               !t ? "missing" : t->err ? ps_strerror(t->err) : "none");
    }
    ps_native_free(n);
    free(m);
    free(syms);
    free(st);
    free(tids);
    ps_py_snapshot_release(&snap);
    ps_py_snapshot_release(&during);
    ps_py_detach(&py);
    return status;
}

/* ---- bench ------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(pid_t pid, pid_t tid, int iters, int with_python)
{
    struct ps_py py;
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    struct read_py r = {&py, &snap, 0};
    if (with_python && ps_py_attach(&py, pid) < 0) {
        fprintf(stderr, "native_probe: attach %d: %s\n", (int)pid, ps_err_detail());
        return 2;
    }
    ps_native_stopped_fn fn = with_python ? read_python : NULL;
    struct ps_native *n = ps_native_new(pid);
    if (!n) {
        fprintf(stderr, "native_probe: %s\n", ps_err_detail());
        return 2;
    }
    struct ps_native_stack *st = ps_xmalloc(sizeof *st);
    uint64_t *ns = ps_xcalloc((size_t)iters, sizeof *ns);
    int rc = ps_native_unwind_stack(n, tid, st, fn, &r); /* first: seize, cold caches */
    if (rc < 0) {
        fprintf(stderr, "native_probe: unwind: %s\n", ps_strerror(rc));
        return 2;
    }
    uint64_t first = st->stopped_ns;
    int depth = rc, mismatched = 0;
    uint64_t t0 = ps_now_ns();
    for (int i = 0; i < iters; i++) {
        rc = ps_native_unwind_stack(n, tid, st, fn, &r);
        if (rc < 0 || r.rc < 0) {
            fprintf(stderr, "native_probe: unwind %d: %s\n", i, ps_strerror(rc < 0 ? rc : r.rc));
            return 2;
        }
        mismatched += rc != depth;
        ns[i] = st->stopped_ns;
    }
    uint64_t wall = ps_now_ns() - t0;
    qsort(ns, (size_t)iters, sizeof *ns, cmp_u64);
    printf("unwinds=%d depth=%d complete=%d first_us=%.1f min_us=%.1f median_us=%.1f "
           "p99_us=%.1f max_us=%.1f per_call_us=%.1f depth_changes=%d\n",
           iters, depth, st->complete, first / 1000.0, ns[0] / 1000.0, ns[iters / 2] / 1000.0,
           ns[(iters * 99) / 100] / 1000.0, ns[iters - 1] / 1000.0,
           (double)wall / iters / 1000.0, mismatched);
    ps_native_free(n);
    free(ns);
    free(st);
    if (with_python) {
        ps_py_snapshot_release(&snap);
        ps_py_detach(&py);
    }
    return 0;
}

/* ---- letting go --------------------------------------------------------------------------- */

static void wait_for_eof(void)
{
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
}

static void hold_stopped(void *arg, pid_t tid)
{
    (void)arg;
    printf("held %d\n", (int)tid);
    fflush(stdout);
    wait_for_eof();
}

/* Async-signal-safe: the tracer and state of g_tid, as /proc shows them. */
static void report_task(void)
{
    char path[96], buf[2048], out[160];
    int tracer = -1;
    char state = '?';
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)g_pid, (int)g_tid);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len > 0) {
            buf[len] = '\0';
            char *p = strstr(buf, "TracerPid:");
            if (p)
                tracer = atoi(p + 10);
        }
    }
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)g_pid, (int)g_tid);
    fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len > 0) {
            buf[len] = '\0';
            char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ')
                state = rp[2];
        }
    }
    int len = snprintf(out, sizeof out, "after-emergency tracer=%d state=%c\n", tracer, state);
    if (write(1, out, (size_t)len) < 0)
        _exit(4);
}

static void on_abort(int sig)
{
    (void)sig;
    ps_native_emergency_detach();
    report_task();
    _exit(3);
}

static void crash_while_stopped(void *arg, pid_t tid)
{
    (void)arg;
    (void)tid;
    printf("stopped\n");
    fflush(stdout);
    signal(SIGABRT, on_abort);
    abort();
}

static int cmd_hold(pid_t pid, pid_t tid, int mode)
{
    struct ps_native *n = ps_native_new(pid);
    if (!n) {
        fprintf(stderr, "native_probe: %s\n", ps_err_detail());
        return 2;
    }
    struct ps_native_stack *st = ps_xmalloc(sizeof *st);
    ps_native_stopped_fn fn = mode == 1 ? hold_stopped : mode == 2 ? crash_while_stopped : NULL;
    int rc = ps_native_unwind_stack(n, tid, st, fn, NULL);
    if (rc < 0) {
        fprintf(stderr, "native_probe: unwind: %s\n", ps_strerror(rc));
        return 2;
    }
    if (mode == 0) {
        printf("held %d\n", (int)tid);
        fflush(stdout);
        wait_for_eof();
    }
    ps_native_free(n);
    free(st);
    return 0;
}

/* Usage:
 *   native_probe dump [--all] PID          every Python thread: merged frames, innermost first
 *   native_probe bench PID TID N [py]      N unwinds of TID: stopped time min/median/max; with
 *                                          "py", the Python stack is read during each stop
 *   native_probe hold PID TID              seize TID (left running), print "held", wait for EOF
 *   native_probe hold-stopped PID TID      keep TID stopped, print "held", wait for EOF
 *   native_probe crash-stopped PID TID     abort() while TID is stopped; the SIGABRT handler
 *                                          runs ps_native_emergency_detach() and reports
 *                                          TID's tracer and state, then exits with status 3
 */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc >= 3 && strcmp(argv[1], "dump") == 0) {
        int all = strcmp(argv[2], "--all") == 0;
        if (argc != 3 + all)
            return usage();
        return cmd_dump((pid_t)atoi(argv[2 + all]), all);
    }
    if ((argc == 5 || (argc == 6 && strcmp(argv[5], "py") == 0)) && strcmp(argv[1], "bench") == 0)
        return cmd_bench((pid_t)atoi(argv[2]), (pid_t)atoi(argv[3]), PS_MAX(1, atoi(argv[4])),
                         argc == 6);
    if (argc == 4) {
        g_pid = (pid_t)atoi(argv[2]);
        g_tid = (pid_t)atoi(argv[3]);
        if (strcmp(argv[1], "hold") == 0)
            return cmd_hold(g_pid, g_tid, 0);
        if (strcmp(argv[1], "hold-stopped") == 0)
            return cmd_hold(g_pid, g_tid, 1);
        if (strcmp(argv[1], "crash-stopped") == 0)
            return cmd_hold(g_pid, g_tid, 2);
    }
    return usage();
}
