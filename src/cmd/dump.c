/* dump.c — `pysample dump PID`: the Python stack of every thread right now, as text or JSON;
 * with --subprocesses also of every Python descendant (proc/ finds them).
 *
 * Thin: parses options, attaches (python/), takes one snapshot per process (retrying a few
 * times when a thread's walk was torn by the running target), and prints it. Never stops the
 * target, except with --native (native/), which stops each thread briefly in turn.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_cmd.h"
#include "ps_native.h"
#include "ps_python.h"
#include "ps_util.h"

#define PS_DUMP_TRIES 8

static void ps_dump_help(FILE *f)
{
    fprintf(f, "usage: pysample dump [-v] [--json] [--full-filenames] [--subprocesses] PID\n"
               "       pysample dump --native [-v] [--full-filenames] PID\n"
               "\n"
               "Print the current Python stack of every thread of PID, innermost frame first.\n"
               "The target is never stopped.\n"
               "\n"
               "  -j, --json            print one JSON object instead of text\n"
               "      --full-filenames  print file names as the interpreter has them\n"
               "      --subprocesses    also every Python descendant of PID (PID itself may be\n"
               "                        a non-Python parent such as a shell or a supervisor)\n"
               "      --native          also the C frames (libraries, extensions), merged with\n"
               "                        the Python frames; stops each thread briefly (ptrace)\n"
               "  -v, --verbose         say how the interpreter was found (-vv: more)\n"
               "  -h, --help            this help\n");
}

static const char *ps_frame_file(const struct ps_py *py, const struct ps_code *c, int full)
{
    return full ? c->file : ps_py_short_filename(py, c->file);
}

static int ps_thread_order(const struct ps_py_snapshot *s, int *order)
{
    /* The interpreter lists threads newest first: print the oldest (usually main) first. A
     * thread that is starting has a thread state before it has a TID of its own or a frame
     * (no TID, or up to 3.10 its creator's): it is left out until it runs, instead of showing
     * as `Thread 0 ""` or as a second, empty main thread. Where no TID can be read at all,
     * threads are shown with "?" for it. */
    int n = 0, tids_known = 0;
    for (int i = 0; i < s->n; i++)
        tids_known |= s->t[i].tid != 0;
    for (int i = s->n - 1; i >= 0; i--) {
        const struct ps_py_thread *t = &s->t[i];
        int starting = !t->err && !t->tid && (tids_known || !t->nframes);
        for (int j = 0; j < s->n && !t->nframes && !t->err && !starting; j++)
            starting = j != i && s->t[j].tid == t->tid;
        if (!starting)
            order[n++] = i;
    }
    return n;
}

static void ps_dump_text(struct ps_py *py, const struct ps_py_snapshot *s, const char *cmdline,
                         int full)
{
    printf("Process %d: %s\n", (int)py->pid, cmdline ? cmdline : "?");
    printf("Python %s%s (%s)\n", py->version,
           py->off.flags & PS_PYF_FREE_THREADED ? " free-threaded" : "", py->exe ? py->exe : "?");
    int *order = ps_xmalloc(sizeof(int) * (size_t)(s->n + 1));
    int nshown = ps_thread_order(s, order);
    for (int k = 0; k < nshown; k++) {
        const struct ps_py_thread *t = &s->t[order[k]];
        char name[64];
        ps_py_thread_name(py, t, name, sizeof name);
        char tid[16] = "?";
        if (t->tid)
            snprintf(tid, sizeof tid, "%d", (int)t->tid);
        printf("\nThread %s \"%s\" (%s%s)\n", tid, name, t->idle ? "idle" : "active",
               t->gil ? ", gil" : t->nogil && t->attached ? ", attached" : "");
        for (int i = 0; i < t->nframes; i++) {
            const struct ps_py_frame *f = &t->frames[i];
            const char *file = ps_frame_file(py, f->code, full);
            if (f->line > 0)
                printf("    %s (%s:%d)\n", f->code->name, file, f->line);
            else
                printf("    %s (%s)\n", f->code->name, file);
        }
        if (t->truncated)
            printf("    ... (outer frames cut at depth %d)\n", PS_PY_MAX_DEPTH);
        if (t->err)
            printf("    <stack unreadable: %s>\n", ps_strerror(t->err));
    }
    free(order);
}

/* Appends the JSON object of one process (no newline) to sb. */
static void ps_dump_json(struct ps_strbuf *sb, struct ps_py *py, const struct ps_py_snapshot *s,
                         const char *cmdline)
{
    ps_sb_printf(sb, "{\"pid\":%d,\"command\":", (int)py->pid);
    ps_sb_add_json_str(sb, cmdline ? cmdline : "");
    ps_sb_adds(sb, ",\"python\":{\"version\":");
    ps_sb_add_json_str(sb, py->version);
    ps_sb_adds(sb, ",\"executable\":");
    ps_sb_add_json_str(sb, py->exe ? py->exe : "");
    ps_sb_printf(sb, ",\"free_threaded\":%s",
                 py->off.flags & PS_PYF_FREE_THREADED ? "true" : "false");
    ps_sb_adds(sb, "},\"threads\":[");
    int *order = ps_xmalloc(sizeof(int) * (size_t)(s->n + 1));
    int nshown = ps_thread_order(s, order);
    for (int k = 0; k < nshown; k++) {
        const struct ps_py_thread *t = &s->t[order[k]];
        char name[64];
        ps_py_thread_name(py, t, name, sizeof name);
        ps_sb_printf(sb, "%s{\"tid\":%d,\"name\":", k ? "," : "", (int)t->tid);
        ps_sb_add_json_str(sb, name);
        ps_sb_printf(sb, ",\"active\":%s,\"idle\":%s,\"gil\":%s,\"attached\":%s,\"truncated\":%s",
                     t->idle ? "false" : "true", t->idle ? "true" : "false",
                     t->gil ? "true" : "false", t->nogil && t->attached ? "true" : "false",
                     t->truncated ? "true" : "false");
        if (t->err) {
            ps_sb_adds(sb, ",\"error\":");
            ps_sb_add_json_str(sb, ps_strerror(t->err));
        }
        ps_sb_adds(sb, ",\"frames\":[");
        for (int i = 0; i < t->nframes; i++) {
            const struct ps_py_frame *f = &t->frames[i];
            ps_sb_adds(sb, i ? ",{\"function\":" : "{\"function\":");
            ps_sb_add_json_str(sb, f->code->name);
            ps_sb_adds(sb, ",\"file\":");
            ps_sb_add_json_str(sb, ps_py_short_filename(py, f->code->file));
            ps_sb_adds(sb, ",\"path\":");
            ps_sb_add_json_str(sb, f->code->file);
            ps_sb_printf(sb, ",\"line\":%d}", f->line);
        }
        ps_sb_adds(sb, "]}");
    }
    ps_sb_adds(sb, "]}");
    free(order);
}

/* Attaches to pid and takes one snapshot, retrying while a walk is torn by the running target.
 * Returns 0, the attach error (*attached == 0), or the sampling error (*attached == 1); py and
 * snap are to be released by the caller in every case. */
static int ps_dump_take(pid_t pid, struct ps_py *py, struct ps_py_snapshot *snap, int *attached)
{
    *attached = 0;
    ps_py_snapshot_init(snap);
    int rc = ps_py_attach(py, pid);
    if (ps_verbose && py->how[0])
        fprintf(stderr, "%s", py->how);
    if (rc < 0)
        return rc;
    *attached = 1;
    /* A walk can be torn by the running target; a few quick retries give a clean picture. */
    for (int attempt = 0; attempt < PS_DUMP_TRIES; attempt++) {
        rc = ps_py_sample(py, snap);
        if (rc < 0)
            continue;
        int torn = 0;
        for (int i = 0; i < snap->n; i++)
            torn |= snap->t[i].err != 0;
        if (!torn)
            break;
        ps_log(2, "dump: attempt %d had an unreadable thread stack; retrying", attempt + 1);
    }
    if (rc == 0)
        ps_log(1, "snapshot: %d thread(s), %llu remote read(s)", snap->n,
               (unsigned long long)snap->reads);
    return rc;
}

/* Has pid exited (or become a zombie)? */
static int ps_dump_gone(pid_t pid)
{
    char state = 0;
    return ps_proc_state(pid, &state) < 0 || state == 'Z' || state == 'X';
}

struct ps_dump {
    int json, full, native;
    int nprinted;          /* processes printed so far */
    struct ps_strbuf sb;   /* --subprocesses --json: the "processes" array */
};

static void ps_dump_print(struct ps_dump *d, struct ps_py *py, const struct ps_py_snapshot *snap,
                          int subprocesses)
{
    char *cmdline = NULL;
    ps_proc_cmdline(py->pid, &cmdline);
    if (d->json && subprocesses) {
        ps_sb_adds(&d->sb, d->nprinted ? "," : "");
        ps_dump_json(&d->sb, py, snap, cmdline);
    } else if (d->json) {
        struct ps_strbuf sb;
        ps_sb_init(&sb);
        ps_dump_json(&sb, py, snap, cmdline);
        ps_sb_adds(&sb, "\n");
        fwrite(sb.buf, 1, sb.len, stdout);
        ps_sb_release(&sb);
    } else {
        if (d->nprinted)
            putchar('\n');
        ps_dump_text(py, snap, cmdline, d->full);
    }
    d->nprinted++;
    free(cmdline);
}

/* ---- --native: C frames merged with the Python frames ------------------------------------- */

struct ps_dump_during {
    struct ps_py *py;
    struct ps_py_snapshot *snap;
    int rc;
};

/* Runs while a thread is stopped for its C stack: its Python frames of the same moment. */
static void ps_dump_read_python(void *arg, pid_t tid)
{
    (void)tid;
    struct ps_dump_during *dd = arg;
    dd->rc = ps_py_sample(dd->py, dd->snap);
}

static void ps_dump_py_frames(const struct ps_py *py, const struct ps_py_thread *t, int full)
{
    for (int i = 0; i < t->nframes; i++) {
        const struct ps_py_frame *f = &t->frames[i];
        const char *file = ps_frame_file(py, f->code, full);
        if (f->line > 0)
            printf("    %s (%s:%d)\n", f->code->name, file, f->line);
        else
            printf("    %s (%s)\n", f->code->name, file);
    }
}

/* The text dump with C frames; returns PS_EXIT_OK, or PS_EXIT_WARN when a thread's C stack
 * could not be read (its Python frames are printed alone then). */
static int ps_dump_native_print(struct ps_dump *d, struct ps_py *py,
                                const struct ps_py_snapshot *s)
{
    struct ps_native *n = ps_native_new(py->pid);
    if (!n) {
        fprintf(stderr, "pysample: dump --native: %s\n", ps_err_detail());
        return PS_EXIT_FAIL;
    }
    ps_native_set_stop_timeout(n, 1000ull * 1000000ull); /* one look: waiting longer is fine */
    struct ps_native_stack *st = ps_xmalloc(sizeof *st);
    struct ps_native_sym *syms = ps_xcalloc(PS_NATIVE_MAX_FRAMES, sizeof *syms);
    int maxm = PS_NATIVE_MAX_FRAMES * (PS_NATIVE_MAX_INLINE + 1) + PS_PY_MAX_DEPTH;
    struct ps_merged_frame *m = ps_xcalloc((size_t)maxm, sizeof *m);
    struct ps_py_snapshot during;
    ps_py_snapshot_init(&during);
    int *order = ps_xmalloc(sizeof(int) * (size_t)(s->n + 1));
    int nshown = ps_thread_order(s, order);
    char *cmdline = NULL;
    ps_proc_cmdline(py->pid, &cmdline);
    printf("Process %d: %s\n", (int)py->pid, cmdline ? cmdline : "?");
    printf("Python %s%s (%s)\n", py->version,
           py->off.flags & PS_PYF_FREE_THREADED ? " free-threaded" : "", py->exe ? py->exe : "?");
    int status = PS_EXIT_OK;
    for (int k = 0; k < nshown; k++) {
        const struct ps_py_thread *t = &s->t[order[k]];
        char name[64];
        ps_py_thread_name(py, t, name, sizeof name);
        printf("\nThread %d \"%s\" (%s%s)\n", (int)t->tid, name, t->idle ? "idle" : "active",
               t->gil ? ", gil" : t->nogil && t->attached ? ", attached" : "");
        struct ps_dump_during dd = {py, &during, -1};
        int rc = t->tid ? ps_native_unwind_stack(n, t->tid, st, ps_dump_read_python, &dd)
                        : PS_ENOTSUP;
        if (rc < 0) {
            ps_dump_py_frames(py, t, d->full);
            printf("    <C frames unavailable: %s>\n",
                   t->tid ? (ps_err_detail() ? ps_err_detail() : ps_strerror(rc))
                          : "thread id unknown");
            status = PS_EXIT_WARN;
            continue;
        }
        /* The Python frames read while the thread was stopped, else the earlier ones. */
        const struct ps_py_thread *pt = t;
        for (int i = 0; dd.rc == 0 && i < during.n; i++)
            if (during.t[i].tid == t->tid && !during.t[i].err)
                pt = &during.t[i];
        ps_native_symbolize_stack(n, st, syms);
        struct ps_merge_stats ms;
        int nm = ps_native_merge(syms, st->n, st->complete, pt->frames, pt->nframes, 0, m, maxm,
                                 &ms);
        for (int i = 0; i < nm; i++) {
            if (m[i].kind == PS_MERGED_PYTHON) {
                const char *file = ps_frame_file(py, m[i].code, d->full);
                if (m[i].pyline > 0)
                    printf("    %s (%s:%d)\n", m[i].code->name, file, m[i].pyline);
                else
                    printf("    %s (%s)\n", m[i].code->name, file);
            } else {
                char label[1024];
                ps_native_merged_label(&m[i], label, sizeof label);
                printf("    %s\n", label);
            }
        }
        if (pt->truncated)
            printf("    ... (outer frames cut at depth %d)\n", PS_PY_MAX_DEPTH);
        if (pt->err)
            printf("    <stack unreadable: %s>\n", ps_strerror(pt->err));
        if (ms.unmatched_python || ms.unmatched_eval)
            printf("    <C and Python frames did not line up: %d Python frame(s) placed at a "
                   "boundary, %d interpreter frame(s) without Python frames>\n",
                   ms.unmatched_python, ms.unmatched_eval);
        ps_log(1, "thread %d: %d C frame(s)%s, stopped for %.0f us", (int)t->tid, st->n,
               st->complete ? "" : " (incomplete)", (double)st->stopped_ns / 1000.0);
    }
    ps_native_free(n);
    free(cmdline);
    free(order);
    ps_py_snapshot_release(&during);
    free(m);
    free(syms);
    free(st);
    return status;
}

/* The one error line for a target that could not be dumped; returns PS_EXIT_FAIL. */
static int ps_dump_error(pid_t pid, int rc, int attached)
{
    if (!attached)
        return ps_cmd_attach_error(pid, rc);
    if (ps_dump_gone(pid))
        fprintf(stderr, "pysample: process %d exited while it was being read\n", (int)pid);
    else
        fprintf(stderr, "pysample: cannot read the threads of %d: %s%s%s\n", (int)pid,
                ps_strerror(rc), ps_err_detail() ? " — " : "",
                ps_err_detail() ? ps_err_detail() : "");
    return PS_EXIT_FAIL;
}

/* One process, as the only target: every failure is an error. */
static int ps_dump_single(struct ps_dump *d, pid_t pid)
{
    struct ps_py py;
    struct ps_py_snapshot snap;
    int attached, status = PS_EXIT_OK;
    int rc = ps_dump_take(pid, &py, &snap, &attached);
    if (rc < 0)
        status = ps_dump_error(pid, rc, attached);
    else if (d->native)
        status = ps_dump_native_print(d, &py, &snap);
    else
        ps_dump_print(d, &py, &snap, 0);
    ps_py_snapshot_release(&snap);
    ps_py_detach(&py);
    return status;
}

/* A process of --subprocesses: one that is not Python or exits meanwhile is left out quietly;
 * any other failure is one warning line. Returns 1 printed, 0 left out, -1 warned. */
static int ps_dump_member(struct ps_dump *d, pid_t pid)
{
    struct ps_py py;
    struct ps_py_snapshot snap;
    int attached, result = 1;
    int rc = ps_dump_take(pid, &py, &snap, &attached);
    if (rc < 0) {
        int quiet = rc == PS_ENOTPY || rc == PS_ENOPROC || rc == PS_EZOMBIE || ps_dump_gone(pid);
        if (quiet) {
            ps_log(1, "process %d left out: %s", (int)pid, ps_strerror(rc));
            result = 0;
        } else {
            fprintf(stderr, "pysample: dump: process %d left out: %s\n", (int)pid,
                    ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
            result = -1;
        }
    } else {
        ps_dump_print(d, &py, &snap, 1);
    }
    ps_py_snapshot_release(&snap);
    ps_py_detach(&py);
    return result;
}

/* PID and its Python descendants, the root first, each process before its children. */
static int ps_dump_tree(struct ps_dump *d, pid_t pid)
{
    struct ps_py py;
    struct ps_py_snapshot snap;
    int attached, status = PS_EXIT_OK;
    char root_err[512] = "";
    int rc = ps_dump_take(pid, &py, &snap, &attached);
    if (rc == 0) {
        ps_dump_print(d, &py, &snap, 1);
    } else if (!attached && rc == PS_ENOTPY) {
        /* A non-Python parent (a shell, a supervisor) with Python children is fine. */
        snprintf(root_err, sizeof root_err, "%s",
                 ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
    } else {
        /* The root itself cannot be read: the same error as without --subprocesses. */
        status = ps_dump_error(pid, rc, attached);
        ps_py_snapshot_release(&snap);
        ps_py_detach(&py);
        return status;
    }
    ps_py_snapshot_release(&snap);
    ps_py_detach(&py);

    pid_t *kids = NULL;
    int nk = 0;
    ps_proc_descendants(pid, &kids, &nk);
    for (int i = 0; i < nk; i++)
        if (ps_dump_member(d, kids[i]) < 0)
            status = PS_EXIT_WARN;
    free(kids);
    if (d->nprinted == 0 && status == PS_EXIT_WARN)
        return PS_EXIT_FAIL; /* each failure had its line: no second one for the same */
    if (d->nprinted == 0) {
        if (root_err[0] && ps_dump_gone(pid))
            fprintf(stderr, "pysample: process %d exited while it was being read\n", (int)pid);
        else
            fprintf(stderr, "pysample: %d has no Python subprocesses, and %s\n", (int)pid, root_err);
        return PS_EXIT_FAIL;
    }
    return status;
}

int cmd_dump(int argc, char **argv)
{
    enum { OPT_SUBPROCESSES = 1000, OPT_NATIVE };
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"full-filenames", no_argument, NULL, 'F'},
        {"subprocesses", no_argument, NULL, OPT_SUBPROCESSES},
        {"native", no_argument, NULL, OPT_NATIVE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ps_dump d = {0};
    int subprocesses = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":jvh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': d.json = 1; break;
        case 'F': d.full = 1; break;
        case OPT_SUBPROCESSES: subprocesses = 1; break;
        case OPT_NATIVE: d.native = 1; break;
        case 'v': ps_verbose++; break;
        case 'h': ps_dump_help(stdout); return PS_EXIT_OK;
        default:
            return ps_cmd_usage_error("dump", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return ps_cmd_usage_error("dump", optind >= argc ? "missing PID" : "too many arguments");
    pid_t pid = ps_cmd_parse_pid("dump", argv[optind]);
    if (pid < 0)
        return PS_EXIT_USAGE;
    if (d.native && (d.json || subprocesses))
        return ps_cmd_usage_error("dump", "--native does not go with %s yet",
                                  d.json ? "--json" : "--subprocesses");

    if (!subprocesses)
        return ps_dump_single(&d, pid);
    ps_sb_init(&d.sb);
    if (d.json)
        ps_sb_adds(&d.sb, "{\"processes\":[");
    int status = ps_dump_tree(&d, pid);
    if (d.json && d.nprinted) {
        ps_sb_adds(&d.sb, "]}\n");
        fwrite(d.sb.buf, 1, d.sb.len, stdout);
    }
    ps_sb_release(&d.sb);
    fflush(stdout);
    return status;
}
