/* dump.c — `pysample dump PID`: the Python stack of every thread right now, as text or JSON.
 *
 * Thin: parses options, attaches (python/), takes one snapshot (retrying a few times when a
 * thread's walk was torn by the running target), and prints it. Never stops the target.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_cmd.h"
#include "ps_python.h"
#include "ps_util.h"

#define PS_DUMP_TRIES 8

static void ps_dump_help(FILE *f)
{
    fprintf(f, "usage: pysample dump [-v] [--json] [--full-filenames] PID\n"
               "\n"
               "Print the current Python stack of every thread of PID, innermost frame first.\n"
               "The target is never stopped.\n"
               "\n"
               "  -j, --json            print one JSON object instead of text\n"
               "      --full-filenames  print file names as the interpreter has them\n"
               "  -v, --verbose         say how the interpreter was found (-vv: more)\n"
               "  -h, --help            this help\n");
}

static const char *ps_frame_file(const struct ps_py *py, const struct ps_code *c, int full)
{
    return full ? c->file : ps_py_short_filename(py, c->file);
}

static int ps_thread_order(const struct ps_py_snapshot *s, int *order)
{
    /* The interpreter lists threads newest first: print the oldest (usually main) first. */
    for (int i = 0; i < s->n; i++)
        order[i] = s->n - 1 - i;
    return s->n;
}

static void ps_dump_text(struct ps_py *py, const struct ps_py_snapshot *s, const char *cmdline,
                         int full)
{
    printf("Process %d: %s\n", (int)py->pid, cmdline ? cmdline : "?");
    printf("Python %s (%s)\n", py->version, py->exe ? py->exe : "?");
    int *order = ps_xmalloc(sizeof(int) * (size_t)(s->n + 1));
    ps_thread_order(s, order);
    for (int k = 0; k < s->n; k++) {
        const struct ps_py_thread *t = &s->t[order[k]];
        char name[64];
        ps_py_thread_name(py, t, name, sizeof name);
        printf("\nThread %d \"%s\" (%s%s)\n", (int)t->tid, name, t->idle ? "idle" : "active",
               t->gil ? ", gil" : "");
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

static void ps_dump_json(struct ps_py *py, const struct ps_py_snapshot *s, const char *cmdline)
{
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_sb_printf(&sb, "{\"pid\":%d,\"command\":", (int)py->pid);
    ps_sb_add_json_str(&sb, cmdline ? cmdline : "");
    ps_sb_adds(&sb, ",\"python\":{\"version\":");
    ps_sb_add_json_str(&sb, py->version);
    ps_sb_adds(&sb, ",\"executable\":");
    ps_sb_add_json_str(&sb, py->exe ? py->exe : "");
    ps_sb_adds(&sb, "},\"threads\":[");
    int *order = ps_xmalloc(sizeof(int) * (size_t)(s->n + 1));
    ps_thread_order(s, order);
    for (int k = 0; k < s->n; k++) {
        const struct ps_py_thread *t = &s->t[order[k]];
        char name[64];
        ps_py_thread_name(py, t, name, sizeof name);
        ps_sb_printf(&sb, "%s{\"tid\":%d,\"name\":", k ? "," : "", (int)t->tid);
        ps_sb_add_json_str(&sb, name);
        ps_sb_printf(&sb, ",\"active\":%s,\"idle\":%s,\"gil\":%s,\"truncated\":%s",
                     t->idle ? "false" : "true", t->idle ? "true" : "false",
                     t->gil ? "true" : "false", t->truncated ? "true" : "false");
        if (t->err) {
            ps_sb_adds(&sb, ",\"error\":");
            ps_sb_add_json_str(&sb, ps_strerror(t->err));
        }
        ps_sb_adds(&sb, ",\"frames\":[");
        for (int i = 0; i < t->nframes; i++) {
            const struct ps_py_frame *f = &t->frames[i];
            ps_sb_adds(&sb, i ? ",{\"function\":" : "{\"function\":");
            ps_sb_add_json_str(&sb, f->code->name);
            ps_sb_adds(&sb, ",\"file\":");
            ps_sb_add_json_str(&sb, ps_py_short_filename(py, f->code->file));
            ps_sb_adds(&sb, ",\"path\":");
            ps_sb_add_json_str(&sb, f->code->file);
            ps_sb_printf(&sb, ",\"line\":%d}", f->line);
        }
        ps_sb_adds(&sb, "]}");
    }
    ps_sb_adds(&sb, "]}\n");
    fwrite(sb.buf, 1, sb.len, stdout);
    ps_sb_release(&sb);
    free(order);
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"full-filenames", no_argument, NULL, 'F'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, full = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":jvh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'F': full = 1; break;
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

    struct ps_py py;
    int rc = ps_py_attach(&py, pid);
    if (ps_verbose && py.how[0])
        fprintf(stderr, "%s", py.how);
    if (rc < 0) {
        int status = ps_cmd_attach_error(pid, rc);
        ps_py_detach(&py);
        return status;
    }
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    /* A walk can be torn by the running target; a few quick retries give a clean picture. */
    for (int attempt = 0; attempt < PS_DUMP_TRIES; attempt++) {
        rc = ps_py_sample(&py, &snap);
        if (rc < 0)
            continue;
        int torn = 0;
        for (int i = 0; i < snap.n; i++)
            torn |= snap.t[i].err != 0;
        if (!torn)
            break;
        ps_log(2, "dump: attempt %d had an unreadable thread stack; retrying", attempt + 1);
    }
    if (rc < 0) {
        char state = 0;
        if (ps_proc_state(pid, &state) < 0 || state == 'Z' || state == 'X')
            fprintf(stderr, "pysample: process %d exited while it was being read\n", (int)pid);
        else
            fprintf(stderr, "pysample: cannot read the threads of %d: %s%s%s\n", (int)pid,
                    ps_strerror(rc), ps_err_detail() ? " — " : "",
                    ps_err_detail() ? ps_err_detail() : "");
        ps_py_snapshot_release(&snap);
        ps_py_detach(&py);
        return PS_EXIT_FAIL;
    }
    ps_log(1, "snapshot: %d thread(s), %llu remote read(s)", snap.n,
           (unsigned long long)snap.reads);
    char *cmdline = NULL;
    ps_proc_cmdline(pid, &cmdline);
    if (json)
        ps_dump_json(&py, &snap, cmdline);
    else
        ps_dump_text(&py, &snap, cmdline, full);
    free(cmdline);
    ps_py_snapshot_release(&snap);
    ps_py_detach(&py);
    return PS_EXIT_OK;
}
