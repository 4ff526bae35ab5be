/* record.c — `pysample record`: a timed recording of a running process (-p PID) or of a
 * command it launches (-- CMD ARGS...), written to files (folded by default).
 *
 * With a command, the child keeps pysample's stdin/stdout/stderr, is sampled from its first
 * Python frame until it exits, and pysample exits with the child's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ps_cmd.h"
#include "ps_proc.h"
#include "ps_session.h"
#include "ps_util.h"

static void ps_record_help(FILE *f)
{
    fprintf(f,
            "usage: pysample record [OPTIONS] -p PID\n"
            "       pysample record [OPTIONS] -- CMD [ARGS...]\n"
            "\n"
            "Record a running process, or run CMD and record it until it exits.\n"
            "\n"
            "  -p, --pid PID          the process to record\n"
            "  -o, --output FILE      output path (default pysample-<pid>-<YYYYmmddTHHMMSS>.folded)\n"
            "  -f, --format LIST      comma list of %s (one file each; -o names the first)\n"
            "  -r, --rate HZ          samples per second, 0.001 to 100000 (default 100)\n"
            "  -d, --duration SEC     stop after SEC seconds (default: Ctrl-C or exit)\n"
            "      --threads          a root frame per thread\n"
            "      --subprocesses     also record Python child processes\n"
            "      --idle             keep idle threads (default: dropped)\n"
            "      --gil              only the thread holding the GIL\n"
            "      --native           also C frames (extensions, libraries), merged in place;\n"
            "                         stops each sampled thread for tens of microseconds\n"
            "      --function         aggregate by function instead of by line\n"
            "      --lines            aggregate by line (the default)\n"
            "      --full-filenames   do not shorten file names\n"
            "      --progress         a progress line on stderr even when it is not a terminal\n"
            "      --no-progress      no progress line, even on a terminal\n"
            "  -v, --verbose          more detail on stderr\n",
            ps_writer_names());
}


static int ps_exit_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return PS_EXIT_FAIL;
}

/* What was seen of the child while waiting for it to run Python. */
struct ps_child_wait {
    int status;        /* wait status once it exited, else -1 */
    int had_children;  /* it started processes of its own (a shell, a launcher) */
    int noted;         /* the "not Python (yet)" line was printed */
};

/* Attaches to a freshly launched child as soon as it runs an interpreter. A child that runs
 * something else is watched until it execs Python or exits: cheaply, re-checked at once when
 * its program image changes and otherwise at most every 50 ms (libraries loaded later, e.g.
 * an embedded libpython). After a second a line says what it is waiting for. */
static int ps_attach_child(struct ps_sampler *s, pid_t pid, const char *cmd0, double duration_s,
                           struct ps_child_wait *cw)
{
    volatile sig_atomic_t *stop = ps_session_stop_flag();
    struct ps_proc_image last = {0};
    long pause_us = 1000;
    uint64_t t0 = ps_now_ns();
    for (;;) {
        struct ps_proc_image img;
        ps_proc_image(pid, &img);
        if (ps_proc_image_changed(&last, &img))
            pause_us = 1000; /* a new program: look at once */
        last = img;
        int rc = ps_sampler_add_root(s, pid);
        if (rc == 0)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            cw->status = st;
            return PS_ENOPROC;
        }
        if (rc == PS_EZOMBIE || rc == PS_ENOPROC) {
            /* Exited between the two looks: ours to reap. */
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            cw->status = st;
            return PS_ENOPROC;
        }
        if (rc != PS_ENOTPY && rc != PS_EELF && rc != PS_EFAULT && rc != PS_EVERSION)
            return rc;
        if (*stop)
            return PS_EINTERRUPTED;
        if (duration_s > 0 && (double)(ps_now_ns() - t0) / 1e9 >= duration_s)
            return PS_ETIMEOUT; /* the recording's time ran out before Python did start */
        pid_t *kids = NULL;
        int nk = 0;
        if (!cw->had_children && ps_proc_children(pid, &kids, &nk) == 0 && nk > 0)
            cw->had_children = 1;
        free(kids);
        if (!cw->noted && rc == PS_ENOTPY && ps_now_ns() - t0 > 1000000000ull) {
            cw->noted = 1;
            fprintf(stderr, "pysample: record: '%s' (pid %d) does not run Python; waiting for it to "
                            "start Python or exit%s\n",
                    cmd0, (int)pid,
                    cw->had_children ? " (to sample its Python subprocesses, add --subprocesses)"
                                     : "");
        }
        struct timespec ts = {0, pause_us * 1000};
        nanosleep(&ts, NULL);
        if (rc == PS_ENOTPY && pause_us < 50000)
            pause_us = PS_MIN(pause_us * 2, 50000); /* same program, still not Python */
    }
}

int cmd_record(int argc, char **argv)
{
    struct ps_session_opts o;
    ps_session_opts_init(&o);
    o.default_output = 1;
    int rc = ps_session_parse("record", argc, argv, &o, 1, ps_record_help);
    if (rc)
        return rc < 0 ? PS_EXIT_OK : rc;
    char **cmd = o.argi < argc ? argv + o.argi : NULL;
    if (o.pid && cmd)
        return ps_cmd_usage_error("record", "give either -p PID or -- CMD, not both");
    if (!o.pid && !cmd)
        return ps_cmd_usage_error("record", "nothing to record: give -p PID or -- CMD ARGS...");
    if (!o.nformats)
        o.formats[o.nformats++] = ps_writer_find("folded");

    pid_t pid = o.pid;
    if (cmd) {
        /* Paths are checked before launching; the default name uses pysample's PID. */
        if ((rc = ps_session_output_paths("record", &o, getpid())) != 0)
            return rc;
        ps_session_signals();
        pid = ps_cmd_launch("record", cmd, 0);
        if (pid < 0)
            return PS_EXIT_FAIL;
        o.s.child = pid;
    } else {
        if ((rc = ps_session_output_paths("record", &o, pid)) != 0)
            return rc;
        ps_session_signals();
    }

    struct ps_profile prof;
    ps_profile_init(&prof);
    struct ps_sampler s;
    ps_sampler_init(&s, &o.s, &prof, ps_session_stop_flag());
    struct ps_child_wait cw = {.status = -1};
    rc = cmd ? ps_attach_child(&s, pid, cmd[0], o.s.duration_s, &cw)
             : ps_sampler_add_root(&s, pid);
    int status;
    if (rc < 0 && !(cmd && (rc == PS_ENOPROC || rc == PS_EINTERRUPTED || rc == PS_ETIMEOUT))) {
        status = ps_cmd_attach_error(pid, rc);
        if (cmd) {
            /* The child is ours: let it finish and keep its status. */
            int st;
            if (waitpid(pid, &st, 0) == pid)
                status = ps_exit_status(st);
        }
        ps_sampler_release(&s);
        ps_profile_release(&prof);
        return status;
    }
    if (rc == 0)
        ps_sampler_run(&s);
    else if (rc == PS_ENOPROC)
        fprintf(stderr, "pysample: record: '%s' exited without running Python; nothing was "
                        "sampled%s\n",
                cmd[0],
                cw.had_children ? " (it started other processes: add --subprocesses to sample "
                                  "the Python ones)"
                                : "");
    ps_session_notes(&s);
    ps_session_metadata(&prof, &s);
    status = ps_session_write("record", &o, &prof);
    if (status == PS_EXIT_OK)
        status = ps_session_status(&prof);
    if (cmd) {
        int st = s.child_status != -1 ? s.child_status : cw.status;
        if (st == -1) {
            /* The recording ended first (--duration or a signal): the command is the user's
             * and keeps running; its files are written, and pysample returns its status. */
            if (rc == 0)
                fprintf(stderr, "pysample: record: waiting for '%s' (pid %d) to exit\n", cmd[0],
                        (int)pid);
            else /* one line: what happened, and what pysample does now */
                fprintf(stderr, "pysample: record: %s before '%s' ran Python; nothing was sampled; "
                                "waiting for it (pid %d) to exit\n",
                        rc == PS_ETIMEOUT ? "the duration ran out" : "stopped", cmd[0], (int)pid);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        }
        if (st != -1 && status != PS_EXIT_FAIL)
            status = ps_exit_status(st);
    }
    ps_sampler_release(&s);
    ps_profile_release(&prof);
    return status;
}
