/* sampler.c — the sampling loop: absolute-deadline clock, per-tick walk of every target
 * (python/), interning of frames and stacks (intern.c) and counting (profile.c), plus the
 * session's self-statistics.
 *
 * Sits between cmd/attach|record and python/; prints nothing except the optional progress line.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ps_arch.h"
#include "ps_sampler.h"
#include "ps_util.h"

#define PS_SCAN_INTERVAL_NS 100000000ull /* look for new subprocesses every 100 ms */
#define PS_SPIN_BELOW_NS 50000ull     /* shorter intervals are waited out by spinning */
#define PS_CPU_MEASURE_EVERY 8          /* ticks per measurement of a tick's CPU time */
#define PS_MAX_TARGETS 1024
#define PS_WATCH_TRUST_NS 2000000ull /* a wait's pidfd watch vouches for a walk ending within 2 ms */
#define PS_EXEC_WAIT_NS 1000000000ull /* an exec'd program not Python within 1 s is let go */

void ps_sampler_init(struct ps_sampler *s, const struct ps_sampler_opts *o, struct ps_profile *p,
                     volatile sig_atomic_t *stop)
{
    memset(s, 0, sizeof *s);
    s->opts = *o;
    s->prof = p;
    s->stop = stop;
    s->child_status = -1;
    p->interval_s = 1.0 / o->rate_hz;
    p->stats.rate_hz = o->rate_hz;
    ps_hist_init(&s->hist);
    ps_hist_init(&s->cpu_hist);
    ps_hist_init(&s->stop_hist);
    if (o->native) {
        s->nst = ps_xmalloc(sizeof *s->nst);
        s->nsyms = ps_xcalloc(PS_NATIVE_MAX_FRAMES, sizeof *s->nsyms);
        s->nmerged_max = PS_NATIVE_MAX_FRAMES * (PS_NATIVE_MAX_INLINE + 1) + PS_PY_MAX_DEPTH;
        s->merged = ps_xcalloc((size_t)s->nmerged_max, sizeof *s->merged);
    }
}

/* Has the process we attached to exited? A pidfd names that process, not its PID number, so a
 * recycled PID never passes for the target. Without pidfd support, fall back to the start time. */
static int ps_target_exited(struct ps_target *t)
{
    if (t->pidfd >= 0) {
        struct pollfd p = {t->pidfd, POLLIN, 0};
        return poll(&p, 1, 0) > 0;
    }
    uint64_t st = 0;
    return ps_proc_starttime(t->pid, &st) < 0 || st != t->starttime;
}

static void ps_target_free(struct ps_target *t)
{
    ps_native_free(t->nat); /* lets every seized thread go */
    ps_py_snapshot_release(&t->nsnap);
    if (t->pidfd >= 0)
        close(t->pidfd);
    ps_py_snapshot_release(&t->snap);
    ps_py_detach(&t->py);
    free(t->cmdline);
    free(t->exec_into);
    for (int i = 0; i < t->memo_cap; i++)
        free(t->memo[i].ids);
    free(t->memo);
    free(t);
}

void ps_sampler_release(struct ps_sampler *s)
{
    for (int i = 0; i < s->nnotes; i++)
        free(s->notes[i]);
    free(s->notes);
    for (int i = 0; i < s->ntargets; i++)
        ps_target_free(s->targets[i]);
    free(s->targets);
    free(s->troots);
    free(s->nst);
    free(s->nsyms);
    free(s->merged);
    free(s->pcmap);
    free(s->stack);
    memset(s, 0, sizeof *s);
}

static struct ps_target *ps_find_target(struct ps_sampler *s, pid_t pid)
{
    for (int i = 0; i < s->ntargets; i++)
        if (s->targets[i]->pid == pid)
            return s->targets[i];
    return NULL;
}

/* A note for the user about target t. Subprocesses come and go in numbers (every fork() and
 * exec() of a worker): their notes are -v log lines; those of the process named are kept. */
static void ps_sampler_note(struct ps_sampler *s, const struct ps_target *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ps_sampler_note(struct ps_sampler *s, const struct ps_target *t, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (s->ntargets && t != s->targets[0]) {
        ps_log(1, "%s", buf);
        return;
    }
    if (s->nnotes >= 64)
        return;
    s->notes = ps_xrealloc(s->notes, sizeof *s->notes * (size_t)(s->nnotes + 1));
    s->notes[s->nnotes++] = ps_xstrdup(buf);
}

/* The `process PID:"cmdline"` root frame of t (--subprocesses). */
static void ps_process_root(struct ps_sampler *s, struct ps_target *t)
{
    char root[4400];
    int n = snprintf(root, sizeof root, "process %d:\"%s\"", (int)t->pid, t->cmdline);
    /* Stack separators and newlines cannot appear inside a frame. */
    for (int i = 0; i < n && i < (int)sizeof root; i++)
        if (root[i] == ';' || root[i] == '\n')
            root[i] = ' ';
    uint32_t name = ps_intern_str(s->prof->in, root, strlen(root));
    t->root_frame = ps_intern_frame(s->prof->in, name, 0, 0);
}

/* Has t exec'd another program since it was attached? Marks it for re-attaching. */
static int ps_target_check_exec(struct ps_target *t)
{
    if (t->exec_ns)
        return 1;
    struct ps_proc_image img;
    if (ps_proc_image(t->pid, &img) < 0 || !ps_proc_image_changed(&t->image, &img))
        return 0;
    t->image = img;
    t->exec_ns = ps_now_ns();
    t->exec_retry_ns = t->exec_ns;
    t->exec_pause_ns = 1000000;
    return 1;
}

/* t exec'd: attach to its new program when it is Python. Returns 1 when t is sampled again,
 * 0 while it may still become Python (libraries are loaded after the exec), -1 when its
 * sampling ended (with a note). Attempts are spaced 1 ms, doubling to 50 ms while the program
 * image stays the same. */
static int ps_target_reattach(struct ps_sampler *s, struct ps_target *t)
{
    uint64_t now = ps_now_ns();
    if (now < t->exec_retry_ns)
        return 0;
    struct ps_proc_image img;
    if (ps_proc_image(t->pid, &img) == 0 && ps_proc_image_changed(&t->image, &img)) {
        t->image = img; /* exec'd again meanwhile */
        t->exec_pause_ns = 1000000;
    }
    char *cmdline = NULL, *exe = NULL;
    ps_proc_cmdline(t->pid, &cmdline);
    ps_proc_link(t->pid, "exe", &exe);
    struct ps_py py;
    int rc = ps_py_attach(&py, t->pid);
    if (rc == 0 && s->opts.gil_only && ps_py_gil_disabled(&py) == 1) {
        /* as at attach: no thread holds a GIL that is disabled */
        ps_err_set("it runs a free-threaded Python %s with the GIL disabled, and --gil counts "
                   "only a GIL holder", py.version);
        rc = PS_EUSAGE;
    }
    if (rc == 0 && s->opts.native) {
        /* The old program's tracees are let go before the new one's threads are seized. */
        ps_native_free(t->nat);
        if (!(t->nat = ps_native_new(t->pid)))
            rc = PS_ENOTSUP;
    }
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof why, "%s", ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
        ps_py_detach(&py);
        int wait = rc == PS_ENOTPY || rc == PS_EELF || rc == PS_EFAULT;
        if (rc == PS_ENOPROC || rc == PS_EZOMBIE) {
            t->alive = 0; /* it exited: the exit ends it as usual */
        } else if (wait && now - t->exec_ns < PS_EXEC_WAIT_NS) {
            t->exec_retry_ns = now + t->exec_pause_ns;
            t->exec_pause_ns = PS_MIN(t->exec_pause_ns * 2, 50000000ull);
            rc = 0;
        } else {
            t->alive = 0;
            if (rc == PS_ENOTPY)
                ps_sampler_note(s, t, "process %d ran exec() into %s, which is not Python: its "
                                   "sampling ended there (%llu samples kept)",
                                (int)t->pid, exe ? exe : "another program",
                                (unsigned long long)t->samples);
            else
                ps_sampler_note(s, t, "process %d ran exec() into %s: %s; its sampling ended there "
                                   "(%llu samples kept)",
                                (int)t->pid, exe ? exe : "another program", why,
                                (unsigned long long)t->samples);
        }
        free(cmdline);
        free(exe);
        return rc == 0 ? 0 : -1;
    }
    free(t->exec_into);
    t->exec_into = ps_xstrdup(exe ? exe : py.exe ? py.exe : "?");
    int before = s->nnotes;
    ps_sampler_note(s, t, "process %d ran exec() into %s (Python %s): sampled on", (int)t->pid,
                    t->exec_into, py.version);
    t->exec_note = s->nnotes > before ? s->nnotes : 0;
    ps_py_snapshot_release(&t->snap); /* its frames point into the old code cache */
    ps_py_snapshot_release(&t->nsnap);
    ps_py_detach(&t->py);
    t->py = py;
    t->space = ++s->spaces;
    ps_py_snapshot_init(&t->snap);
    ps_py_snapshot_init(&t->nsnap);
    for (int i = 0; i < t->memo_cap; i++)
        t->memo[i].walk = 0;
    if (cmdline) {
        free(t->cmdline);
        t->cmdline = cmdline;
        if (s->opts.subprocesses)
            ps_process_root(s, t);
    }
    free(exe);
    t->exec_ns = 0;
    return 1;
}

/* Attaches one process. Returns 0, or PS_E* (target not added). */
static int ps_add_target(struct ps_sampler *s, pid_t pid)
{
    if (s->ntargets >= PS_MAX_TARGETS)
        return PS_ERANGE;
    struct ps_target *t = ps_xcalloc(1, sizeof *t);
    t->pid = pid;
    t->pidfd = -1;
    int rc = ps_py_attach(&t->py, pid);
    if (rc < 0) {
        ps_py_detach(&t->py);
        free(t);
        return rc;
    }
    ps_log(1, "attached to %d: Python %s (%s)", (int)pid, t->py.version, t->py.lib);
    if (ps_verbose)
        fprintf(stderr, "%s", t->py.how);
    if (s->opts.gil_only && ps_py_gil_disabled(&t->py) == 1) {
        ps_err_set("--gil: process %d runs a free-threaded Python %s with the GIL disabled, so no "
                   "thread holds a GIL — leave out --gil (the table then shows the share of "
                   "samples whose thread was attached), or run it with PYTHON_GIL=1",
                   (int)pid, t->py.version);
        ps_py_detach(&t->py);
        free(t);
        return PS_EUSAGE;
    }
    t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    t->space = ++s->spaces;
    ps_proc_starttime(pid, &t->starttime);
    ps_proc_image(pid, &t->image);
    if (ps_target_exited(t)) {
        ps_target_free(t);
        return PS_ENOPROC;
    }
    ps_py_snapshot_init(&t->snap);
    ps_py_snapshot_init(&t->nsnap);
    if (s->opts.native) {
        t->nat = ps_native_new(pid);
        if (!t->nat) {
            char why[400];
            snprintf(why, sizeof why, "%s", ps_err_detail() ? ps_err_detail() : "unknown error");
            ps_err_set("cannot read C stacks of %d: %s", (int)pid, why);
            ps_target_free(t);
            return PS_ENOTSUP;
        }
    }
    ps_proc_cmdline(pid, &t->cmdline);
    if (!t->cmdline)
        t->cmdline = ps_xstrdup("?");
    t->alive = 1;
    if (s->opts.subprocesses)
        ps_process_root(s, t);
    if (s->ntargets == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->targets = ps_xrealloc(s->targets, sizeof(*s->targets) * (size_t)s->cap);
    }
    s->targets[s->ntargets++] = t;
    return 0;
}

/* Finds Python descendants of every live target (and of the root, even when it is not
 * Python), attaching new ones; non-Python children are skipped quietly. */
static void ps_scan_children(struct ps_sampler *s, pid_t root)
{
    pid_t queue[4096];
    int qh = 0, qt = 0;
    queue[qt++] = root;
    for (int i = 0; i < s->ntargets && qt < (int)PS_ARRAY_LEN(queue); i++)
        if (s->targets[i]->alive && s->targets[i]->pid != root)
            queue[qt++] = s->targets[i]->pid;
    while (qh < qt) {
        pid_t p = queue[qh++];
        pid_t *kids;
        int nk;
        if (ps_proc_children(p, &kids, &nk) < 0)
            continue;
        for (int k = 0; k < nk; k++) {
            int seen = 0;
            for (int j = 0; j < qt && !seen; j++)
                seen = queue[j] == kids[k];
            if (seen)
                continue;
            if (qt < (int)PS_ARRAY_LEN(queue))
                queue[qt++] = kids[k];
            struct ps_target *t = ps_find_target(s, kids[k]);
            uint64_t st = 0;
            ps_proc_starttime(kids[k], &st);
            if (t && t->alive && t->starttime == st)
                continue;
            if (t && t->starttime != st)
                t->alive = 0; /* the PID was reused: a new process */
            if (t && !t->alive && t->starttime == st)
                continue;
            int rc = ps_add_target(s, kids[k]);
            if (rc < 0)
                ps_log(2, "subprocess %d not sampled: %s", (int)kids[k],
                       ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
            if (rc < 0 && rc != PS_ENOTPY && rc != PS_ENOPROC && rc != PS_EZOMBIE &&
                !s->child_err[0]) {
                s->child_rc = rc;
                snprintf(s->child_err, sizeof s->child_err, "%s",
                         ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
            }
        }
        free(kids);
    }
}

int ps_sampler_add_root(struct ps_sampler *s, pid_t pid)
{
    s->child_err[0] = '\0';
    int rc = ps_add_target(s, pid);
    if (rc < 0 && s->opts.subprocesses && rc == PS_ENOTPY) {
        /* A non-Python parent (a shell, a supervisor) with Python children is fine. */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ps_err_detail() ? ps_err_detail() : "");
        ps_scan_children(s, pid);
        if (s->ntargets > 0)
            return 0;
        if (s->child_err[0]) {
            /* Python children that could not be read: that is the cause to name. */
            char why[sizeof s->child_err];
            snprintf(why, sizeof why, "%s", s->child_err);
            ps_err_set("%d is not Python, and its subprocesses could not be sampled: %s", (int)pid,
                       why);
            return s->child_rc;
        }
        ps_err_set("%s (and it has no Python subprocesses)", detail);
        return rc;
    }
    if (rc == 0 && s->opts.subprocesses)
        ps_scan_children(s, pid);
    return rc;
}

static uint32_t ps_thread_root(struct ps_sampler *s, struct ps_target *t,
                               const struct ps_py_thread *th)
{
    for (int i = 0; i < s->ntroots; i++)
        if (s->troots[i].pid == t->pid && s->troots[i].tid == th->tid)
            return s->troots[i].frame;
    char name[64], text[128];
    ps_py_thread_name(&t->py, th, name, sizeof name);
    if (name[0])
        snprintf(text, sizeof text, "thread (%d): %s", (int)th->tid, name);
    else
        snprintf(text, sizeof text, "thread (%d)", (int)th->tid);
    for (char *p = text; *p; p++)
        if (*p == ';' || *p == '\n')
            *p = ' ';
    uint32_t id = ps_intern_frame(s->prof->in, ps_intern_str(s->prof->in, text, strlen(text)), 0, 0);
    if (s->ntroots == s->troots_cap) {
        s->troots_cap = s->troots_cap ? s->troots_cap * 2 : 16;
        s->troots = ps_xrealloc(s->troots, sizeof(*s->troots) * (size_t)s->troots_cap);
    }
    s->troots[s->ntroots].pid = t->pid;
    s->troots[s->ntroots].tid = th->tid;
    s->troots[s->ntroots].frame = id;
    s->ntroots++;
    return id;
}

static uint32_t ps_code_frame(struct ps_sampler *s, struct ps_target *t, struct ps_code *c,
                              int32_t line)
{
    struct ps_intern *in = s->prof->in;
    if (!c->ids[0]) {
        c->ids[0] = ps_intern_str(in, c->name, strlen(c->name));
        const char *f = s->opts.full_filenames ? c->file : ps_py_short_filename(&t->py, c->file);
        c->ids[1] = ps_intern_str(in, f, strlen(f));
    }
    if (s->opts.by_function || line <= 0)
        line = c->firstlineno; /* no line known for the instruction: the function's first */
    if (c->fid && c->fid_line == line)
        return c->fid; /* the common case: same code, same line as last time */
    c->fid_line = line;
    c->fid = ps_intern_frame(in, c->ids[0], c->ids[1], line);
    return c->fid;
}

/* ---- --native ------------------------------------------------------------------------------ */

static uint64_t ps_pc_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    return k ^ (k >> 33);
}

/* Interned frame of a merged C frame, cached by PC and position among the calls inlined at that
 * PC: a warm sample formats nothing. Text: `function (file:line)` with debug info, else
 * `function (library)`, else `[unknown] (library)`. */
static uint32_t ps_native_frame_id(struct ps_sampler *s, const struct ps_target *t,
                                   const struct ps_merged_frame *m, unsigned inl)
{
    /* The same PC means other code in another process (ASLR) or after an exec: the key
     * carries the target's address space. */
    uint64_t key = (m->pc << 5) + inl + 1;
    uint32_t space = t->space;
    if ((s->pcmap_n + 1) * 2 > s->pcmap_cap) {
        uint32_t oldcap = s->pcmap_cap;
        __typeof__(s->pcmap) old = s->pcmap;
        s->pcmap_cap = oldcap ? oldcap * 2 : 1024;
        s->pcmap = ps_xcalloc(s->pcmap_cap, sizeof *s->pcmap);
        for (uint32_t i = 0; i < oldcap; i++) {
            if (!old[i].key)
                continue;
            uint32_t j = (uint32_t)ps_pc_hash(old[i].key ^ old[i].space) & (s->pcmap_cap - 1);
            while (s->pcmap[j].key)
                j = (j + 1) & (s->pcmap_cap - 1);
            s->pcmap[j] = old[i];
        }
        free(old);
    }
    uint32_t j = (uint32_t)ps_pc_hash(key ^ space) & (s->pcmap_cap - 1);
    while (s->pcmap[j].key && (s->pcmap[j].key != key || s->pcmap[j].space != space))
        j = (j + 1) & (s->pcmap_cap - 1);
    if (s->pcmap[j].key)
        return s->pcmap[j].frame;
    struct ps_intern *in = s->prof->in;
    const char *name = m->name, *file = NULL;
    int line = 0;
    if (m->name && m->file && m->line > 0) {
        file = m->file;
        line = m->line;
    } else if (m->lib && m->lib[0]) {
        file = m->lib;
    }
    if (!name)
        name = "[unknown]"; /* one frame per module (file = lib), not one per address */
    uint32_t fid = ps_intern_frame(in, ps_intern_str(in, name, strlen(name)),
                                   file ? ps_intern_str(in, file, strlen(file)) : 0, line);
    s->pcmap[j].key = key;
    s->pcmap[j].space = space;
    s->pcmap[j].frame = fid;
    s->pcmap_n++;
    return fid;
}

struct ps_native_during {
    struct ps_target *t;
    int rc;
};

/* Runs while the thread is stopped: the Python frames of the same moment. */
static void ps_native_read_python(void *arg, pid_t tid)
{
    (void)tid;
    struct ps_native_during *d = arg;
    d->rc = ps_py_sample(&d->t->py, &d->t->nsnap);
}

/* Stops th briefly, unwinds its C stack and merges it with its Python frames into
 * stack[start..], innermost last. Returns the new length, or -1 when this thread-sample must be
 * dropped (its Python frames may point into entries a fresh walk replaced). *resampled is set
 * once a fresh walk ran for this target during this tick. */
static int ps_native_stack_into(struct ps_sampler *s, struct ps_target *t,
                                const struct ps_py_thread *th, uint32_t *stack, int start,
                                int *resampled)
{
    struct ps_stats *st = &s->prof->stats;
    struct ps_native_during d = {t, -1};
    int rc = ps_native_unwind_stack(t->nat, th->tid, s->nst, ps_native_read_python, &d);
    if (d.rc != -1)
        *resampled = 1;
    const struct ps_py_thread *pt = NULL;
    for (int i = 0; d.rc == 0 && i < t->nsnap.n; i++)
        if (t->nsnap.t[i].tid == th->tid && !t->nsnap.t[i].err)
            pt = &t->nsnap.t[i];
    if (rc < 0) {
        st->native_failed++;
        if (*resampled)
            return -1;
        /* No walk ran since th was read: its Python frames alone. */
        int n = start;
        for (int f = th->nframes - 1; f >= 0; f--)
            stack[n++] = ps_code_frame(s, t, th->frames[f].code, th->frames[f].line);
        return n;
    }
    ps_hist_add(&s->stop_hist, s->nst->stopped_ns);
    if (!pt)
        return -1; /* the fresh walk failed for this thread: drop rather than guess */
    ps_native_symbolize_stack(t->nat, s->nst, s->nsyms);
    struct ps_merge_stats ms;
    int nm = ps_native_merge(s->nsyms, s->nst->n, s->nst->complete, pt->frames, pt->nframes, 0,
                             s->merged, s->nmerged_max, &ms);
    st->native_samples++;
    if (ms.unmatched_python || ms.unmatched_eval)
        st->native_mismatch++;
    int n = start;
    unsigned inl = 0;
    for (int i = nm - 1; i >= 0; i--) {
        const struct ps_merged_frame *m = &s->merged[i];
        if (m->kind == PS_MERGED_PYTHON) {
            stack[n++] = ps_code_frame(s, t, (struct ps_code *)m->code, m->pyline);
            inl = 0;
        } else {
            inl = (i + 1 < nm && s->merged[i + 1].kind == PS_MERGED_NATIVE &&
                   s->merged[i + 1].pc == m->pc)
                      ? inl + 1
                      : 0;
            stack[n++] = ps_native_frame_id(s, t, m, inl);
        }
    }
    return n;
}

static enum ps_drop ps_drop_reason(int err)
{
    switch (err) {
    case PS_ETORN:
    case PS_ECORRUPT:
        /* The target runs while it is read: a frame or code object that fails a check was
         * almost always freed or reused during the walk, i.e. a torn read. */
        return PS_DROP_TORN;
    case PS_EDEPTH:
        return PS_DROP_DEPTH;
    case PS_EFAULT:
    case PS_ESHORT:
        return PS_DROP_READ;
    case PS_EGONE:
        return PS_DROP_VANISHED;
    default:
        return PS_DROP_CORRUPT;
    }
}

static void ps_reap_child(struct ps_sampler *s)
{
    if (s->opts.child <= 0 || s->child_status != -1)
        return;
    /* Look without reaping first: with --native the child's threads are also our tracees, and
     * a plain waitpid() would consume their ptrace stops. Only an exit is reaped. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)s->opts.child, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
        si.si_pid != s->opts.child)
        return;
    int st;
    pid_t r = waitpid(s->opts.child, &st, WNOHANG);
    if (r == s->opts.child) {
        s->child_status = st;
        struct ps_target *t = ps_find_target(s, s->opts.child);
        if (t)
            t->alive = 0;
    }
}

/* --gil counts GIL holders only. A free-threaded target whose threads all run with the GIL
 * disabled has none, now and from then on: the checks at attach and at exec see the GIL's
 * state at one moment, and a starting interpreter enables it for a while (each extension
 * module is loaded under a transient GIL), so it is watched at every walk. */
static int ps_target_gil_gone(const struct ps_sampler *s, const struct ps_target *t)
{
    if (!s->opts.gil_only || !(t->py.off.flags & PS_PYF_FREE_THREADED))
        return 0;
    int read = 0;
    for (int k = 0; k < t->snap.n; k++) {
        if (t->snap.t[k].err)
            continue; /* a thread not read says nothing of the GIL */
        if (!t->snap.t[k].nogil)
            return 0;
        read++;
    }
    return read > 0;
}

/* Ends t's sampling (ps_target_gil_gone) with a note; after an exec, that note takes the
 * place of the exec's "sampled on" one. */
static void ps_target_end_gil_gone(struct ps_sampler *s, struct ps_target *t)
{
    char buf[600];
    if (t->exec_into)
        snprintf(buf, sizeof buf,
                 "process %d ran exec() into %s: it runs a free-threaded Python %s with the GIL "
                 "disabled, and --gil counts only a GIL holder; its sampling ended there (%llu "
                 "samples kept)",
                 (int)t->pid, t->exec_into, t->py.version, (unsigned long long)t->samples);
    else
        snprintf(buf, sizeof buf,
                 "process %d: its free-threaded Python %s disabled the GIL, and --gil counts only "
                 "a GIL holder; its sampling ended there (%llu samples kept)",
                 (int)t->pid, t->py.version, (unsigned long long)t->samples);
    t->alive = 0;
    if (t->exec_note && t->exec_note <= s->nnotes) {
        free(s->notes[t->exec_note - 1]);
        s->notes[t->exec_note - 1] = ps_xstrdup(buf);
        t->exec_note = 0;
    } else {
        ps_sampler_note(s, t, "%s", buf);
    }
}

int ps_sampler_tick(struct ps_sampler *s)
{
    struct ps_stats *st = &s->prof->stats;
    if (!s->stack)
        s->stack = ps_xmalloc(sizeof(uint32_t) *
                              (size_t)((s->opts.native ? s->nmerged_max : PS_PY_MAX_DEPTH) + 2));
    uint32_t *stack = s->stack;
    int live = 0;
    for (int i = 0; i < s->ntargets; i++) {
        struct ps_target *t = s->targets[i];
        if (!t->alive)
            continue;
        if (t->nat)
            ps_native_poll(t->nat); /* threads stopped by a signal meanwhile: let them go */
        int resampled = 0;
        if (t->exit_seen) {
            /* It exited while the sampler slept: nothing to walk. */
            t->alive = 0;
            st->dropped[PS_DROP_PROCESS]++;
            continue;
        }
        if (t->exec_ns) {
            int r = ps_target_reattach(s, t);
            if (r == 0)
                live++;
            if (r <= 0)
                continue;
        }
        uint64_t r0 = t->py.mem.remote_reads;
        int rc = ps_py_sample(&t->py, &t->snap);
        t->walks++; /* every walk, counted or not, ends what the stack memo may stand for */
        st->remote_reads += t->py.mem.remote_reads - r0;
        if (rc == PS_ENOTPY) {
            live++; /* the interpreter is not initialised yet (a command just launched) */
            continue;
        }
        /* Did it exit (and its PID perhaps go to another process) before the walk? When the
         * wait before this tick watched its pidfd up to the tick's start, that is known
         * already, and a PID cannot be reused within one short walk (PIDs are handed out
         * cyclically): no second check. Unless the walk did not follow the wait closely:
         * pysample stopped (SIGSTOP, a debugger) or descheduled between the two, long enough
         * for the target to die and its PID to be taken. Reads after an exit fail, and are
         * dropped below. */
        int watched = t->exit_watched && ps_now_ns() - s->watched_ns < PS_WATCH_TRUST_NS;
        if (!watched && ps_target_exited(t)) {
            /* It exited during (or before) this walk: whatever was read is not trusted. */
            t->alive = 0;
            st->dropped[PS_DROP_PROCESS]++;
            continue;
        }
        if (rc < 0) {
            char state = 0;
            if (ps_proc_state(t->pid, &state) < 0 || state == 'Z' || state == 'X' ||
                rc == PS_ENOPROC) {
                t->alive = 0;
                st->dropped[PS_DROP_PROCESS]++;
                continue;
            }
            if (ps_target_check_exec(t)) {
                /* A new program: not a read error. Re-attached from the next tick on. */
                live++;
                continue;
            }
            st->dropped[PS_DROP_READ]++;
            live++;
            continue;
        }
        if (ps_target_gil_gone(s, t)) {
            ps_target_end_gil_gone(s, t);
            continue;
        }
        live++;
        if (t->snap.n > t->memo_cap) {
            int cap = PS_MAX(t->snap.n, t->memo_cap * 2);
            t->memo = ps_xrealloc(t->memo, sizeof *t->memo * (size_t)cap);
            memset(t->memo + t->memo_cap, 0, sizeof *t->memo * (size_t)(cap - t->memo_cap));
            t->memo_cap = cap;
        }
        for (int k = 0; k < t->snap.n; k++) {
            const struct ps_py_thread *th = &t->snap.t[k];
            if (th->err) {
                st->dropped[ps_drop_reason(th->err)]++;
                continue;
            }
            if (th->nframes == 0)
                continue; /* a thread state with no Python code running (e.g. in C setup) */
            if (s->opts.gil_only && !th->gil)
                continue;
            if (th->idle && !s->opts.idle && !s->opts.gil_only) {
                st->idle_skipped++;
                t->idle_skipped++;
                continue;
            }
            /* The memo holds the stack counted for this slot at the previous walk, if any:
             * for the same thread, its outermost th->kept Python frames stand. */
            struct ps_stack_memo *m = &t->memo[k];
            int memo = !t->nat && m->walk && m->walk + 1 == t->walks && m->tid == th->tid;
            int kept = memo ? PS_MIN(th->kept, m->nframes) : 0;
            uint32_t id, troot = 0;
            if (s->opts.threads)
                troot = memo ? m->troot : ps_thread_root(s, t, th);
            if (memo && kept == th->nframes && kept == m->nframes) {
                id = m->id;
            } else {
                int n = 0;
                if (t->root_frame)
                    stack[n++] = t->root_frame;
                if (s->opts.threads)
                    stack[n++] = troot;
                if (t->nat && th->tid) {
                    n = ps_native_stack_into(s, t, th, stack, n, &resampled);
                    if (n < 0) {
                        st->dropped[PS_DROP_TORN]++;
                        continue;
                    }
                } else {
                    if (kept) {
                        memcpy(stack + n, m->ids + n, sizeof *stack * (size_t)kept);
                        n += kept;
                    }
                    for (int f = th->nframes - 1 - kept; f >= 0; f--)
                        stack[n++] = ps_code_frame(s, t, th->frames[f].code, th->frames[f].line);
                }
                id = ps_intern_stack(s->prof->in, stack, (uint32_t)n);
                if (!t->nat) {
                    if ((uint32_t)n > m->cap) {
                        m->cap = (uint32_t)n + 16;
                        m->ids = ps_xrealloc(m->ids, sizeof *m->ids * m->cap);
                    }
                    memcpy(m->ids, stack, sizeof *stack * (size_t)n);
                }
            }
            m->walk = t->walks;
            m->tid = th->tid;
            m->troot = troot;
            m->id = id;
            m->nframes = th->nframes;
            if (th->truncated)
                st->truncated++; /* counted, and kept (outer frames cut): not a drop */
            ps_profile_add(s->prof, id, 1);
            st->thread_samples++;
            t->samples++;
            if (th->gil) {
                st->gil_samples++;
                t->gil_samples++;
            }
            if (th->nogil) {
                st->nogil_samples++;
                t->nogil_samples++;
                if (th->attached) {
                    st->attached_samples++;
                    t->attached_samples++;
                }
            }
            if (!th->idle) {
                st->active_samples++;
                t->active_samples++;
            }
        }
    }
    return live;
}

static void ps_progress(struct ps_sampler *s, double elapsed)
{
    const struct ps_stats *st = &s->prof->stats;
    /* On a terminal the line redraws itself; elsewhere (--progress into a log) one per line. */
    fprintf(stderr, s->opts.progress == 1 ? "\rpysample: %.1fs, %llu samples, %.0f Hz, %llu errors, %llu late   "
                                          : "pysample: %.1fs, %llu samples, %.0f Hz, %llu errors, %llu late\n",
            elapsed,
            (unsigned long long)st->thread_samples,
            elapsed > 0 ? (double)st->ticks / elapsed : 0.0,
            (unsigned long long)ps_stats_dropped_total(st), (unsigned long long)st->late_ticks);
}

/* Sleeps until `deadline` (CLOCK_MONOTONIC, ns), watching every live target's pidfd on the
 * way: a target that exits meanwhile is marked (exit_seen) and the wait goes on. Targets whose
 * pidfd was watched get exit_watched. */
#define PS_WATCH_MAX 256
static void ps_wait_until(struct ps_sampler *s, uint64_t deadline)
{
    struct pollfd fds[PS_WATCH_MAX];
    struct ps_target *who[PS_WATCH_MAX];
    int n = 0;
    for (int i = 0; i < s->ntargets; i++) {
        struct ps_target *t = s->targets[i];
        t->exit_watched = 0;
        if (t->alive && t->pidfd >= 0 && !t->exit_seen && n < PS_WATCH_MAX) {
            fds[n] = (struct pollfd){t->pidfd, POLLIN, 0};
            who[n++] = t;
        }
    }
    while (!*s->stop) {
        uint64_t now = ps_now_ns();
        if (now >= deadline)
            break;
        uint64_t left = deadline - now;
        struct timespec rel = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        int r = ppoll(fds, (nfds_t)n, &rel, NULL);
        if (r == 0)
            break;
        for (int k = 0; r > 0 && k < n; k++)
            if (fds[k].revents) {
                who[k]->exit_seen = 1;
                fds[k].fd = -1; /* ignored from now on */
            }
    }
    for (int k = 0; k < n; k++)
        who[k]->exit_watched = 1;
    s->watched_ns = ps_now_ns();
}

int ps_sampler_run(struct ps_sampler *s)
{
    struct ps_stats *st = &s->prof->stats;
    uint64_t interval = (uint64_t)(1e9 / s->opts.rate_hz);
    if (interval == 0)
        interval = 1;
    struct timespec now_ts;
    clock_gettime(CLOCK_MONOTONIC, &now_ts);
    uint64_t start = (uint64_t)now_ts.tv_sec * 1000000000ull + (uint64_t)now_ts.tv_nsec;
    uint64_t deadline = start;
    uint64_t end = s->opts.duration_s > 0 ? start + (uint64_t)(s->opts.duration_s * 1e9) : 0;
    uint64_t last_progress = 0;
    uint64_t hook_ns = (uint64_t)(s->opts.hook_period_s * 1e9), last_hook = start;
    pid_t root = s->ntargets ? s->targets[0]->pid : 0;
    /* The default 50 us timer slack would stretch every sleep past short intervals. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    while (!*s->stop) {
        uint64_t t0 = ps_now_ns();
        if (end && t0 >= end)
            break;
        if (t0 > deadline + interval) {
            /* Late: count it, and the deadlines that passed meanwhile without a tick (a stall
             * of N intervals misses N ticks), and re-align; never catch up with a burst. */
            st->late_ticks++;
            st->missed_ticks += (t0 - deadline) / interval;
            deadline = t0;
        }
        ps_reap_child(s);
        /* A thread CPU clock read costs about 0.8 us in the kernel, a sizeable part of a tick:
         * the tick's own CPU time is measured on one tick in PS_CPU_MEASURE_EVERY (the
         * min/median/max are those of the measured ticks; wall time is taken on every tick). */
        int measure = st->ticks % PS_CPU_MEASURE_EVERY == 0;
        uint64_t c0 = measure ? ps_thread_cpu_ns() : 0;
        int live = ps_sampler_tick(s);
        if (measure) {
            ps_hist_add(&s->cpu_hist, ps_thread_cpu_ns() - c0);
        }
        uint64_t t1 = ps_now_ns();
        uint64_t d = t1 - t0;
        st->ticks++;
        ps_hist_add(&s->hist, d);
        /* A scan reads a file per thread of every target: with many of them it is kept to a
         * twentieth of the wall time, so it cannot starve the ticks. */
        if (s->opts.subprocesses &&
            t1 - s->last_scan_ns >= PS_MAX(PS_SCAN_INTERVAL_NS, 20 * s->scan_cost_ns)) {
            s->last_scan_ns = t1;
            ps_scan_children(s, root);
            s->scan_cost_ns = ps_now_ns() - t1;
            live = 0;
            for (int i = 0; i < s->ntargets; i++)
                live += s->targets[i]->alive;
        }
        if (t1 - s->last_image_ns >= PS_SCAN_INTERVAL_NS) {
            /* exec() into a program at the same addresses would not fail the walk. */
            s->last_image_ns = t1;
            for (int i = 0; i < s->ntargets; i++)
                if (s->targets[i]->alive)
                    ps_target_check_exec(s->targets[i]);
        }
        if (!live && !(s->opts.child > 0 && s->child_status == -1))
            break;
        if (s->opts.hook && t1 - last_hook >= hook_ns) {
            last_hook = t1;
            if (s->opts.hook(s, s->opts.hook_arg))
                break;
        }
        if (s->opts.progress && t1 - last_progress > 250000000ull) {
            last_progress = t1;
            ps_progress(s, (double)(t1 - start) / 1e9);
        }
        deadline += interval;
        if (end && deadline > end)
            deadline = end;
        if (interval < PS_SPIN_BELOW_NS) {
            /* A timer wakes this thread 50-100 us late on virtual machines: above 20 kHz every
             * tick would come late. Spin instead (a whole CPU, which such a rate asks for). */
            for (int i = 0; i < s->ntargets; i++)
                s->targets[i]->exit_watched = 0;
            while (!*s->stop && ps_now_ns() < deadline)
                ps_arch_cpu_relax();
            continue;
        }
        ps_wait_until(s, deadline);
    }
    uint64_t stop_ns = ps_now_ns();
    if (s->opts.progress) {
        ps_progress(s, (double)(stop_ns - start) / 1e9);
        if (s->opts.progress == 1)
            fputc('\n', stderr);
    }
    ps_reap_child(s);
    st->duration_s = (double)(stop_ns - start) / 1e9;
    st->sample_ns_min = ps_hist_min(&s->hist);
    st->sample_ns_median = ps_hist_median(&s->hist);
    st->sample_ns_max = ps_hist_max(&s->hist);
    st->sample_cpu_ns_min = ps_hist_min(&s->cpu_hist);
    st->sample_cpu_ns_median = ps_hist_median(&s->cpu_hist);
    st->sample_cpu_ns_max = ps_hist_max(&s->cpu_hist);
    st->stop_ns_min = ps_hist_min(&s->stop_hist);
    st->stop_ns_median = ps_hist_median(&s->stop_hist);
    st->stop_ns_max = ps_hist_max(&s->stop_hist);
    /* A sample stands for one interval, but not for more time than the session lasted: at
     * low rates a session shorter than its ticks' intervals (one tick at 0.01 Hz ended after
     * 0.5 s) would otherwise show 100 s of samples. Beyond 1 % of difference, each tick then
     * stands for its share of the session. */
    if (st->ticks && st->duration_s > 0 &&
        (double)st->ticks * s->prof->interval_s > st->duration_s * 1.01)
        s->prof->interval_s = st->duration_s / (double)st->ticks;
    for (int i = 0; i < s->ntargets; i++)
        if (s->targets[i]->nat)
            ps_native_detach_all(s->targets[i]->nat); /* every thread runs freely from here */
    s->prof->has_stats = 1;
    return 0;
}
