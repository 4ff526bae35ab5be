/* ps_cmd.h — the commands (src/cmd/) and what they share: exit codes, PID parsing, and
 * printing one clear error line for a failed attach.
 */
#ifndef PS_CMD_H
#define PS_CMD_H

#include <sys/types.h>

enum {
    PS_EXIT_OK = 0,
    PS_EXIT_WARN = 1,      /* sampled, but with errors worth attention */
    PS_EXIT_FAIL = 2,      /* could not attach / nothing useful produced */
    PS_EXIT_USAGE = 64,
};

int cmd_attach(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_top(int argc, char **argv);

/* Parses a PID argument (decimal, > 0); prints a usage error and returns -1 if invalid. */
pid_t ps_cmd_parse_pid(const char *cmd, const char *arg);
/* Prints "pysample: <detail or message>" for a failed attach and returns PS_EXIT_FAIL
 * (PS_EXIT_USAGE for PS_EUSAGE: an option that cannot apply to this target, e.g. --gil on a
 * free-threaded build with the GIL disabled). */
int ps_cmd_attach_error(pid_t pid, int rc);
/* Rates and durations are bounded so that the deadline arithmetic (nanoseconds in 64 bits)
 * never overflows and every figure printed stays a plain number: a rate from 0.001 Hz (a
 * sample every 1000 s) to 100 kHz, a duration from 1 ms to 10^7 s (115 days); the same bounds
 * for every command that samples (record, attach, top). */
#define PS_CMD_RATE_MIN 0.001
#define PS_CMD_RATE_MAX 100000.0
#define PS_CMD_DURATION_MIN 0.001
#define PS_CMD_DURATION_MAX 1e7

/* Parses a decimal number in [lo, hi] into *out; NaN, infinities, hexadecimal floats, trailing
 * text and values that underflow or overflow are refused with one usage line naming `what`,
 * the range and its `unit`, returning PS_EXIT_USAGE (0 on success). */
int ps_cmd_parse_number(const char *cmd, const char *what, const char *unit, const char *arg,
                        double lo, double hi, double *out);
/* Prints "pysample: CMD: msg" + a hint to run CMD --help; returns PS_EXIT_USAGE. */
int ps_cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts CMD for command `who` (its standard streams on /dev/null when `quiet`, so that it
 * leaves a full-screen view alone); returns its PID once it has exec'd, or -1 after printing
 * one line saying why it could not run. */
pid_t ps_cmd_launch(const char *who, char **cmd, int quiet);
/* The descriptor limit pysample raised its own soft limit from (main.c): a launched command
 * gets the original back. */
extern unsigned long ps_cmd_nofile_soft;
extern int ps_cmd_nofile_raised;

#endif
