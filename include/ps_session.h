/* ps_session.h — shared by cmd/attach.c and cmd/record.c: option parsing, signals, output
 * paths and writing (internal to src/cmd/).
 */
#ifndef PS_SESSION_H
#define PS_SESSION_H

#include <signal.h>
#include <stdio.h>

#include "ps_output.h"
#include "ps_sampler.h"

#define PS_SESSION_MAX_FORMATS 8

struct ps_session_opts {
    struct ps_sampler_opts s;
    struct ps_out_opts out;
    const char *output;                          /* -o */
    int default_output;                          /* record: write files even without -o */
    const struct ps_writer *formats[PS_SESSION_MAX_FORMATS];
    int nformats;
    char pathbuf[PS_SESSION_MAX_FORMATS][4096];  /* resolved output paths */
    pid_t pid;                                   /* -p */
    int argi;                                    /* first non-option argument */
};

void ps_session_opts_init(struct ps_session_opts *o);
/* Returns 0, PS_EXIT_USAGE after printing an error, or -1 after printing help. */
int ps_session_parse(const char *cmd, int argc, char **argv, struct ps_session_opts *o,
                     int allow_pid_opt, void (*help)(FILE *));
/* Resolves output paths and checks they can be written; PS_EXIT_FAIL after an error line. */
int ps_session_output_paths(const char *cmd, struct ps_session_opts *o, pid_t pid);
void ps_session_signals(void);
volatile sig_atomic_t *ps_session_stop_flag(void);
void ps_session_metadata(struct ps_profile *p, struct ps_sampler *s);
/* Prints the sampler's notes (a target exec'd), one line each, on stderr. */
void ps_session_notes(const struct ps_sampler *s);
int ps_session_write(const char *cmd, struct ps_session_opts *o, struct ps_profile *p);
/* PS_EXIT_WARN (with a line on stderr) when many samples were lost, else PS_EXIT_OK. */
int ps_session_status(const struct ps_profile *p);

#endif
