/* session.c — what `attach` and `record` share: their options, signal handling that ends a
 * session with every output written, running the sampler, and writing the chosen formats.
 *
 * Thin glue between the command line, core/sampler and out/ writers.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ps_cmd.h"
#include "ps_output.h"
#include "ps_session.h"
#include "ps_util.h"

static volatile sig_atomic_t ps_stop_flag;
static volatile sig_atomic_t ps_sigint_count;
static uint64_t ps_first_sigint_ns; /* written and read in the handler only */

#define PS_SIGINT_TWICE_NS 500000000ull

static void ps_on_signal(int sig)
{
    if (sig == SIGINT) {
        /* A second Ctrl-C: out at once. One sent twice at once is one: timeout(1) passes a
         * signal to its command and then to its process group, so `timeout -s INT` delivers
         * it twice within microseconds, and that must not lose the recording. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (!ps_sigint_count)
            ps_first_sigint_ns = now;
        else if (now - ps_first_sigint_ns >= PS_SIGINT_TWICE_NS)
            _exit(130);
        ps_sigint_count = 1;
    }
    ps_stop_flag = sig;
}

void ps_session_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ps_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the sleep wakes up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

volatile sig_atomic_t *ps_session_stop_flag(void)
{
    return &ps_stop_flag;
}

void ps_session_opts_init(struct ps_session_opts *o)
{
    memset(o, 0, sizeof *o);
    o->s.rate_hz = 100;
    o->s.progress = isatty(STDERR_FILENO);
}

static int ps_parse_formats(const char *cmd, const char *arg, struct ps_session_opts *o)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    o->nformats = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const struct ps_writer *w = ps_writer_find(tok);
        if (!w)
            return ps_cmd_usage_error(cmd, "unknown format '%s' (valid: %s)", tok, ps_writer_names());
        if (o->nformats == PS_SESSION_MAX_FORMATS)
            return ps_cmd_usage_error(cmd, "too many formats");
        o->formats[o->nformats++] = w;
    }
    if (!o->nformats)
        return ps_cmd_usage_error(cmd, "empty format list (valid: %s)", ps_writer_names());
    return 0;
}

enum {
    OPT_THREADS = 1000,
    OPT_SUBPROCESSES,
    OPT_IDLE,
    OPT_GIL,
    OPT_FUNCTION,
    OPT_LINES,
    OPT_FULL,
    OPT_NO_PROGRESS,
    OPT_PROGRESS,
    OPT_NATIVE,
};

int ps_session_parse(const char *cmd, int argc, char **argv, struct ps_session_opts *o,
                     int allow_pid_opt, void (*help)(FILE *))
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"pid", required_argument, NULL, 'p'},
        {"threads", no_argument, NULL, OPT_THREADS},
        {"subprocesses", no_argument, NULL, OPT_SUBPROCESSES},
        {"idle", no_argument, NULL, OPT_IDLE},
        {"gil", no_argument, NULL, OPT_GIL},
        {"function", no_argument, NULL, OPT_FUNCTION},
        {"lines", no_argument, NULL, OPT_LINES},
        {"full-filenames", no_argument, NULL, OPT_FULL},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"native", no_argument, NULL, OPT_NATIVE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    /* record stops at the first word so that a command's own options stay its own. */
    const char *optstring = allow_pid_opt ? "+:r:d:o:f:p:vh" : ":r:d:o:f:p:vh";
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (ps_cmd_parse_number(cmd, "rate", "samples per second", optarg, PS_CMD_RATE_MIN,
                                    PS_CMD_RATE_MAX, &o->s.rate_hz))
                return PS_EXIT_USAGE;
            break;
        case 'd':
            if (ps_cmd_parse_number(cmd, "duration", "seconds", optarg, PS_CMD_DURATION_MIN,
                                    PS_CMD_DURATION_MAX, &o->s.duration_s))
                return PS_EXIT_USAGE;
            break;
        case 'o': o->output = optarg; break;
        case 'f':
            if (ps_parse_formats(cmd, optarg, o))
                return PS_EXIT_USAGE;
            break;
        case 'p':
            if (!allow_pid_opt)
                return ps_cmd_usage_error(cmd, "unknown option '-p' (the PID is an argument)");
            o->pid = ps_cmd_parse_pid(cmd, optarg);
            if (o->pid < 0)
                return PS_EXIT_USAGE;
            break;
        case OPT_THREADS: o->s.threads = 1; break;
        case OPT_SUBPROCESSES: o->s.subprocesses = 1; break;
        case OPT_IDLE: o->s.idle = 1; break;
        case OPT_GIL: o->s.gil_only = 1; break;
        case OPT_FUNCTION: o->s.by_function = 1; o->out.by_function = 1; break;
        case OPT_LINES: o->s.by_function = 0; o->out.by_function = 0; break;
        case OPT_FULL: o->s.full_filenames = 1; break;
        case OPT_NO_PROGRESS: o->s.progress = 0; break;
        case OPT_PROGRESS: o->s.progress = 2; break; /* also when stderr is not a terminal */
        case OPT_NATIVE: o->s.native = 1; break;
        case 'v': ps_verbose++; break;
        case 'h': help(stdout); return -1;
        case ':':
            return ps_cmd_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default:
            return ps_cmd_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    o->argi = optind;
    return 0;
}

/* Replaces (or appends) the extension of `path` with `ext`; a format's own extension of two
 * parts (x.pb.gz, x.speedscope.json) is replaced whole. */
static void ps_with_ext(const char *path, const char *ext, char *buf, size_t sz)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - path) : strlen(path);
    const struct ps_writer *w = ps_writer_for_path(path);
    if (w && strchr(w->ext, '.') && strlen(path) > strlen(w->ext) + 1)
        stem = strlen(path) - strlen(w->ext) - 1;
    snprintf(buf, sz, "%.*s.%s", (int)stem, path, ext);
}

/* Can `path` be written the way ps_output_write_path writes it? Creates (and removes) the
 * temporary file the writer would create next to the target, so the answer and its reason
 * (read-only file system, permission, no such directory, /proc) are the real ones. Devices
 * and FIFOs are written in place and not probed. Prints the error line; 0 or -1. */
static int ps_session_check_path(const char *cmd, const char *path)
{
    if (strcmp(path, "-") == 0)
        return 0;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "pysample: %s: cannot write %s: it is a directory — name a file with -o\n",
                    cmd, path);
            return -1;
        }
        if (!S_ISREG(st.st_mode))
            return 0;
    }
    char *real = realpath(path, NULL); /* a symlink's target is what gets replaced */
    const char *dest = real ? real : path;
    const char *slash = strrchr(dest, '/');
    size_t dirlen = slash ? (size_t)(slash - dest) + 1 : 0;
    size_t sz = dirlen + strlen(slash ? slash + 1 : dest) + 16;
    char *tmp = ps_xmalloc(sz);
    snprintf(tmp, sz, "%.*s.%s.XXXXXX", (int)dirlen, dest, slash ? slash + 1 : dest);
    int fd = mkstemp(tmp);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    struct stat dst;
    if (dirlen)
        tmp[dirlen] = '\0';
    int dir_exists = stat(dirlen ? tmp : ".", &dst) == 0 && S_ISDIR(dst.st_mode);
    free(tmp);
    free(real);
    if (fd < 0) {
        const char *why = e == ENAMETOOLONG ? "the file name is too long"
                          : e == ENOENT && dir_exists
                              ? "its directory takes no new files (a kernel file system such as /proc or /sys)"
                              : strerror(e);
        fprintf(stderr, "pysample: %s: cannot write %s: %s — choose another path with -o\n", cmd,
                path, why);
        return -1;
    }
    return 0;
}

int ps_session_output_paths(const char *cmd, struct ps_session_opts *o, pid_t pid)
{
    if (!o->output && !o->default_output)
        return 0;
    if (o->output && strcmp(o->output, "-") == 0 && o->nformats > 1)
        return ps_cmd_usage_error(cmd, "-o - (standard output) takes one format, not %d",
                                  o->nformats);
    if (!o->output) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
        snprintf(o->pathbuf[0], sizeof o->pathbuf[0], "pysample-%d-%s.%s", (int)pid, stamp,
                 o->formats[0]->ext);
    } else {
        snprintf(o->pathbuf[0], sizeof o->pathbuf[0], "%s", o->output);
    }
    for (int i = 1; i < o->nformats; i++)
        ps_with_ext(o->pathbuf[0], o->formats[i]->ext, o->pathbuf[i], sizeof o->pathbuf[i]);
    for (int i = 0; i < o->nformats; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(o->pathbuf[i], o->pathbuf[j]) == 0)
                return ps_cmd_usage_error(cmd, "formats %s and %s would both be written to %s "
                                               "(-o names the file of the first format, %s)",
                                          o->formats[j]->name, o->formats[i]->name, o->pathbuf[i],
                                          o->formats[0]->name);
    /* Fail before sampling, not after a long recording, when an output cannot be written. */
    for (int i = 0; i < o->nformats; i++)
        if (ps_session_check_path(cmd, o->pathbuf[i]) != 0)
            return PS_EXIT_FAIL;
    return 0;
}

void ps_session_notes(const struct ps_sampler *s)
{
    for (int i = 0; i < s->nnotes; i++)
        fprintf(stderr, "pysample: %s\n", s->notes[i]);
}

void ps_session_metadata(struct ps_profile *p, struct ps_sampler *s)
{
    char buf[64];
    if (s->ntargets) {
        struct ps_target *t = s->targets[0];
        ps_meta_set(&p->meta, "python", t->py.version);
        snprintf(buf, sizeof buf, "%d", (int)t->pid);
        ps_meta_set(&p->meta, "pid", buf);
        ps_meta_set(&p->meta, "command", t->cmdline);
    }
    const char *mode = s->opts.gil_only ? "gil" : s->opts.idle ? "wall" : "cpu";
    ps_meta_set(&p->meta, "mode", mode);
    if (s->opts.subprocesses) {
        snprintf(buf, sizeof buf, "%d", s->ntargets);
        ps_meta_set(&p->meta, "processes", buf);
        for (int i = 0; i < s->ntargets; i++) {
            const struct ps_target *t = s->targets[i];
            struct ps_proc_summary sum = {
                .pid = (int)t->pid,
                .cmdline = t->cmdline,
                .samples = t->samples,
                .gil_samples = t->gil_samples,
                .nogil_samples = t->nogil_samples,
                .attached_samples = t->attached_samples,
                .active_samples = t->active_samples,
                .idle_skipped = t->idle_skipped,
            };
            ps_profile_add_proc(p, &sum);
        }
    }
    if (s->opts.idle || s->opts.gil_only) {
        /* Idle threads are kept in the stacks unchanged; how many samples were idle. */
        const struct ps_stats *st = &p->stats;
        snprintf(buf, sizeof buf, "%llu",
                 (unsigned long long)(st->thread_samples - st->active_samples));
        ps_meta_set(&p->meta, "idle_samples", buf);
    }
}

/* After a late write failure: the same file name in the working directory, then in $TMPDIR
 * (or /tmp), then pysample-PID.EXT in both (the only names for a device or FIFO target).
 * Never replaces an existing file. 0 with the path written in alt, or -1. */
static int ps_session_fallback(const struct ps_writer *w, const char *path,
                               const struct ps_profile *p, const struct ps_out_opts *oo,
                               char *alt, size_t sz)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    /* A device or FIFO target (/dev/full) has no file name worth reusing. */
    struct stat st;
    int named = *base && !(stat(path, &st) == 0 && !S_ISREG(st.st_mode));
    char cand[4][4096];
    snprintf(cand[0], sizeof cand[0], "%s", named ? base : "");
    snprintf(cand[1], sizeof cand[1], "%s/%s", tmpdir, named ? base : "");
    snprintf(cand[2], sizeof cand[2], "pysample-%d.%s", (int)getpid(), w->ext);
    snprintf(cand[3], sizeof cand[3], "%s/pysample-%d.%s", tmpdir, (int)getpid(), w->ext);
    for (int i = 0; i < 4; i++) {
        if (strcmp(cand[i], path) == 0 || (i < 2 && !named))
            continue;
        if (access(cand[i], F_OK) == 0)
            continue; /* never replace some other file */
        if (ps_output_write_path(w, cand[i], p, oo) == 0) {
            char *real = realpath(cand[i], NULL);
            const char *shown = real ? real : cand[i];
            size_t n = strlen(shown);
            if (n >= sz)
                n = sz - 1;
            memcpy(alt, shown, n);
            alt[n] = '\0';
            free(real);
            return 0;
        }
    }
    return -1;
}

int ps_session_write(const char *cmd, struct ps_session_opts *o, struct ps_profile *p)
{
    int status = PS_EXIT_OK;
    for (int i = 0; i < o->nformats && (o->output || o->default_output); i++) {
        int rc = ps_output_write_path(o->formats[i], o->pathbuf[i], p, &o->out);
        if (rc < 0 && strcmp(o->pathbuf[i], "-") != 0 && p->total) {
            /* The path was checked before sampling; do not lose the samples now. */
            char why[512];
            snprintf(why, sizeof why, "%s", ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
            char alt[4096];
            if (ps_session_fallback(o->formats[i], o->pathbuf[i], p, &o->out, alt, sizeof alt) == 0)
                fprintf(stderr, "pysample: %s: %s; wrote %s instead (%llu samples)\n", cmd, why, alt,
                        (unsigned long long)p->total);
            else
                fprintf(stderr, "pysample: %s: %s; no other place could be written either "
                                "(tried the working directory and $TMPDIR)\n",
                        cmd, why);
            status = PS_EXIT_FAIL;
        } else if (rc < 0) {
            fprintf(stderr, "pysample: %s: %s\n", cmd,
                    ps_err_detail() ? ps_err_detail() : ps_strerror(rc));
            status = PS_EXIT_FAIL;
        } else if (strcmp(o->pathbuf[i], "-") != 0) {
            fprintf(stderr, "pysample: wrote %s (%llu samples)\n", o->pathbuf[i],
                    (unsigned long long)p->total);
        }
    }
    return status;
}

int ps_session_status(const struct ps_profile *p)
{
    const struct ps_stats *st = &p->stats;
    uint64_t dropped = ps_stats_dropped_total(st) - st->dropped[PS_DROP_DEPTH] -
                       st->dropped[PS_DROP_PROCESS];
    if (st->thread_samples == 0 && dropped > 0) {
        /* Nothing but failures: say which, and do not pass the empty result as a success. */
        int worst = 0;
        for (int d = 1; d < PS_DROP__COUNT; d++)
            if (d != PS_DROP_DEPTH && d != PS_DROP_PROCESS && st->dropped[d] > st->dropped[worst])
                worst = d;
        fprintf(stderr, "pysample: nothing was sampled: all %llu thread-samples failed (mostly: "
                        "%s) — try again; if it persists, report it with the output of -vv\n",
                (unsigned long long)dropped, ps_drop_name((enum ps_drop)worst));
        return PS_EXIT_FAIL;
    }
    if (st->thread_samples + dropped > 100 && dropped * 10 > st->thread_samples + dropped) {
        fprintf(stderr, "pysample: warning: %llu of %llu thread-samples could not be read (see the "
                        "statistics)\n",
                (unsigned long long)dropped,
                (unsigned long long)(st->thread_samples + dropped));
        return PS_EXIT_WARN;
    }
    return PS_EXIT_OK;
}
