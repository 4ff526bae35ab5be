/* common.c — what the commands share: PID parsing, usage errors, and the single error line
 * printed when attaching fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_cmd.h"
#include "ps_util.h"

pid_t ps_cmd_parse_pid(const char *cmd, const char *arg)
{
    char *end;
    if (!arg || !*arg) {
        ps_cmd_usage_error(cmd, "missing PID");
        return -1;
    }
    long v = strtol(arg, &end, 10);
    if (*end || v <= 0 || v > 0x3fffffff || arg[0] == '+' || arg[0] == '-' || arg[0] == ' ') {
        ps_cmd_usage_error(cmd, "'%s' is not a process ID (expected a positive number)", arg);
        return -1;
    }
    return (pid_t)v;
}

int ps_cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pysample: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'pysample %s --help')\n", cmd);
    va_end(ap);
    return PS_EXIT_USAGE;
}

int ps_cmd_attach_error(pid_t pid, int rc)
{
    const char *d = ps_err_detail();
    if (d)
        fprintf(stderr, "pysample: %s\n", d);
    else
        fprintf(stderr, "pysample: cannot attach to %d: %s\n", (int)pid, ps_strerror(rc));
    return rc == PS_EUSAGE ? PS_EXIT_USAGE : PS_EXIT_FAIL;
}
