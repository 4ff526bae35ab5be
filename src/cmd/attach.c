/* attach.c — `pysample attach PID`: sample until Ctrl-C / --duration / the target exits, then
 * print the statprof table (and write files with -o).
 */
#include <stdio.h>
#include <string.h>

#include "ps_cmd.h"
#include "ps_session.h"
#include "ps_util.h"

static void ps_attach_help(FILE *f)
{
    fprintf(f,
            "usage: pysample attach [OPTIONS] PID\n"
            "\n"
            "Sample PID until Ctrl-C, --duration or its exit, then print the statprof table.\n"
            "\n"
            "  -r, --rate HZ          samples per second, 0.001 to 100000 (default 100)\n"
            "  -d, --duration SEC     stop after SEC seconds\n"
            "  -o, --output FILE      also write files (formats from -f, default folded)\n"
            "  -f, --format LIST      also write files in these formats: %s\n"
            "                         (named by -o, else pysample-<pid>-<time>.<ext>)\n"
            "      --threads          a root frame per thread\n"
            "      --subprocesses     also sample Python child processes\n"
            "      --idle             keep idle threads (default: dropped)\n"
            "      --gil              only the thread holding the GIL\n"
            "      --native           also C frames (extensions, libraries), merged in place;\n"
            "                         stops each sampled thread for tens of microseconds\n"
            "      --function         one row per function instead of per line\n"
            "      --lines            one row per line (the default)\n"
            "      --full-filenames   do not shorten file names\n"
            "      --progress         a progress line on stderr even when it is not a terminal\n"
            "      --no-progress      no progress line, even on a terminal\n"
            "  -v, --verbose          more detail on stderr\n",
            ps_writer_names());
}

int cmd_attach(int argc, char **argv)
{
    struct ps_session_opts o;
    ps_session_opts_init(&o);
    int rc = ps_session_parse("attach", argc, argv, &o, 0, ps_attach_help);
    if (rc)
        return rc < 0 ? PS_EXIT_OK : rc;
    if (o.argi != argc - 1)
        return ps_cmd_usage_error("attach", o.argi >= argc ? "missing PID" : "too many arguments");
    pid_t pid = ps_cmd_parse_pid("attach", argv[o.argi]);
    if (pid < 0)
        return PS_EXIT_USAGE;
    if (o.output && !o.nformats)
        o.formats[o.nformats++] = ps_writer_find("folded");
    if (o.nformats && !o.output)
        o.default_output = 1; /* -f without -o: files with the default name */
    if ((rc = ps_session_output_paths("attach", &o, pid)) != 0)
        return rc;

    struct ps_profile prof;
    ps_profile_init(&prof);
    struct ps_sampler s;
    ps_session_signals();
    ps_sampler_init(&s, &o.s, &prof, ps_session_stop_flag());
    rc = ps_sampler_add_root(&s, pid);
    if (rc < 0) {
        int status = ps_cmd_attach_error(pid, rc);
        ps_sampler_release(&s);
        ps_profile_release(&prof);
        return status;
    }
    ps_sampler_run(&s);
    ps_session_notes(&s);
    ps_session_metadata(&prof, &s);
    int status = ps_session_write("attach", &o, &prof);
    const struct ps_writer *table = ps_writer_find("table");
    if (table->write(stdout, &prof, &o.out) < 0)
        status = PS_EXIT_FAIL;
    if (status == PS_EXIT_OK)
        status = ps_session_status(&prof);
    ps_sampler_release(&s);
    ps_profile_release(&prof);
    return status;
}
