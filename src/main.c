/* main.c — pysample's entry point: dispatches the first argument through commands[] to
 * cmd_NAME(argc, argv), and makes sure everything written to stdout really got out.
 *
 * Only main.c and src/cmd/ print to the user.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ps_cmd.h"
#include "ps_util.h"

struct ps_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct ps_command commands[] = {
    {"attach", cmd_attach, "sample a running process until Ctrl-C or --duration, print a table"},
    {"record", cmd_record, "record a process (-p PID) or a command (-- CMD) to folded files"},
    {"dump", cmd_dump, "print the current Python stack of every thread, then exit"},
    {"report", cmd_report, "re-render folded files as a table or one merged folded file"},
    {"top", cmd_top, "a live view of a process (or a command), refreshed every second"},
};

static void ps_usage(FILE *f)
{
    fprintf(f, "usage: pysample COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < PS_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'pysample COMMAND --help' for a command's options; 'man pysample' for more.\n");
}

static int ps_finish_stdout(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE)
            return status ? status : PS_EXIT_WARN;
        fprintf(stderr, "pysample: error writing to standard output: %s\n", strerror(errno));
        return status ? status : PS_EXIT_FAIL;
    }
    return status;
}

int main(int argc, char **argv)
{
    /* A closed pipe (pysample ... | head) is reported as a write error, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    /* A descriptor per thread is kept open for its state (and one for its schedstat): with
     * thousands of threads the usual soft limit of 1024 would leave states unknown. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        ps_cmd_nofile_soft = rl.rlim_cur;
        ps_cmd_nofile_raised = 1;
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (argc < 2) {
        ps_usage(stderr);
        return PS_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        ps_usage(stdout);
        return ps_finish_stdout(PS_EXIT_OK);
    }
    if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0) {
        printf("pysample %s\n", PS_VERSION);
        return ps_finish_stdout(PS_EXIT_OK);
    }
    for (size_t i = 0; i < PS_ARRAY_LEN(commands); i++)
        if (strcmp(name, commands[i].name) == 0)
            return ps_finish_stdout(commands[i].fn(argc - 1, argv + 1));
    fprintf(stderr, "pysample: unknown command '%s' (try: attach, record, dump, report, top; see "
                    "pysample --help)\n",
            name);
    return PS_EXIT_USAGE;
}
