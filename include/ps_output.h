/* ps_output.h — writers and readers of profile files (folded stacks, statprof table).
 *
 * Writers take a finished ps_profile and never touch the target (out/ includes only core/ and
 * util/). Writing to a path goes through a temporary file in the same directory and rename(),
 * so an existing file is replaced atomically and a failed write leaves no half file.
 */
#ifndef PS_OUTPUT_H
#define PS_OUTPUT_H

#include <stdio.h>

#include "ps_profile.h"

struct ps_out_opts {
    int by_function;       /* table: one row per function instead of per line */
    int full_filenames;    /* already applied when recording; kept for report */
};

struct ps_writer {
    const char *name;      /* "folded", "table" */
    const char *ext;       /* "folded", "txt" */
    int (*write)(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
};

const struct ps_writer *ps_writer_find(const char *name);
/* Comma-separated names of all writers, for error messages and --help. */
const char *ps_writer_names(void);
/* The writer whose ext matches the extension of `path` ("x.folded" -> folded), or NULL. */
const struct ps_writer *ps_writer_for_path(const char *path);

/* Writes with `w` to `path` atomically (temp file in the same directory, fsync, rename; the
 * mode of a replaced file is kept, a symlink's target is replaced), to stdout when path is
 * "-", and in place when path is an existing device or FIFO (/dev/full, a named pipe).
 * Returns 0 or a negative PS_E* code with ps_err_set("cannot write PATH: strerror") detail;
 * on failure no temporary file is left behind. */
int ps_output_write_path(const struct ps_writer *w, const char *path, const struct ps_profile *p,
                         const struct ps_out_opts *o);

/* Folded files written by pysample (ps_folded_write):
 *
 *   # pysample: 0.1.0                      always first
 *   # <key>: <value>                       every p->meta entry, in order
 *   # interval: US                         seconds per sample x 1e6 (when interval_s > 0)
 *   # samples: N  # rate: HZ  # duration: S  # ticks: N  # late_ticks: N
 *   # dropped: torn=N,vanished=N,read=N,corrupt=N,depth=N,process=N
 *   # idle_skipped: N  # gil_samples: N  # active_samples: N  # remote_reads: N
 *   # sample_time_us: MIN/MEDIAN/MAX       (these statistics lines only when p->has_stats)
 *   root;...;leaf COUNT                    one line per stack, by count desc, then text
 *
 * A frame is `function (file:line)`, `function (file)` when the line is unknown (<= 0), and
 * `function` when there is no file. Process/thread roots are written as their name.
 * Escaping (reversible; only bytes that would break the line structure are touched, so
 * flamegraph.pl, speedscope and friends still show readable names):
 *   - in names and files: '%' -> %25, ';' -> %3B, LF -> %0A, CR -> %0D, NUL -> %00;
 *   - in names, except process/thread roots: '(' -> %28 and ')' -> %29, so the first " ("
 *     of a frame always starts its file part;
 *   - a file with unknown line that ends in ":<digits>" has that ':' written as %3A;
 *   - a line whose first frame begins with '#' has it written as %23 (not metadata).
 * Metadata keys have ':' and white space replaced by '_'; CR/LF in values become spaces.
 * Empty stacks are written as " COUNT". A one-frame stack whose only frame is an empty name
 * without file reads back as the empty stack: the one text that does not round-trip.
 *
 * Folded reader: accepts pysample's own files, py-spy raw output, Austin collapsed text,
 * Tachyon --collapsed, pyflame and plain Brendan Gregg folded. Adds into `p` (so several files
 * merge). Each line is split at its last space; the count must be a decimal integer that fits
 * in uint64. Blank lines are skipped, and so are "# " metadata lines, whose content is kept:
 *   - %XX escapes are decoded only after a "# pysample:" line (the first line of our files);
 *   - pysample statistics lines are read back into p->stats (counters add up across files,
 *     rate/interval keep the first value, has_stats is set); `rate` sets interval_s = 1/rate
 *     and `# interval: US` (any file, Austin's unit) sets it to US/1e6, when not yet known;
 *   - other keys go to p->meta; in non-pysample files a key that collides with a statistics
 *     key is stored as "source_<key>";
 *   - Austin: `# interval: US` sets interval_s; lines `P<pid>;T<iid>:<tid>;file:func:line;...
 *     METRIC` lose their P/T head (a `process <pid>` root is kept when the file says
 *     `# multiprocess: on`); in wall/cpu mode with a known interval the metric (µs) becomes
 *     max(1, round(metric / interval)) samples (0 stays 0), otherwise it is the count; in
 *     full mode the first of `time,idle,rss` is used. Frames `file:func:line` become
 *     `func (file:line)`; markers such as `:GC:` stay plain names.
 *   - Tachyon: the `tid:N` head is dropped; `file:func:line` frames as for Austin.
 *   - other files: `process PID:"cmd"` and `thread (TID): NAME` are plain root frames,
 *     `func (file:line)` is parsed, `file:func:line` (pyflame) is parsed, anything else is
 *     a function name without file.
 * Bad lines are reported as "FILE:LINE: why" through ps_err_set and make the call fail with
 * PS_EFORMAT (p keeps the lines read before); NUL bytes in a line, and a line longer than
 * 64 MiB (memory stays bounded on any input), are errors. A read error
 * returns PS_EIO. The input is streamed line by line. */
int ps_folded_read(FILE *f, const char *name, struct ps_profile *p);

/* Formats one frame as display text `function (file:line)` (no escaping) into buf, always
 * NUL-terminated when sz > 0. Returns the full length (as snprintf) or PS_ERANGE for a bad id. */
int ps_frame_format(const struct ps_intern *in, uint32_t frame_id, char *buf, size_t sz);

/* Process and thread roots are frames with file 0 and line 0 named `process PID[:"cmd"]` or
 * `thread (TID)[: NAME]`. */
enum ps_root { PS_ROOT_NONE, PS_ROOT_PROCESS, PS_ROOT_THREAD };
enum ps_root ps_root_kind(const char *name);
enum ps_root ps_frame_root(const struct ps_intern *in, uint32_t frame_id);

/* The built-in writers (also reachable through ps_writer_find). Both return 0, or PS_EIO when
 * the stream is in error afterwards.
 *
 * ps_table_write prints the classic statprof table: the two header lines (padded exactly as
 * statprof's '%5.5s %10.10s   %7.7s  %-8.8s' / '%5.5s  %9.9s  %8.8s  %-8.8s' make them), rows
 * '%6.2f %9.2f %9.2f  %s' of self %, cumulative s, self s and `basename:line:function` (just
 * the name for frames without file), sorted by self desc, cumulative desc, name; seconds are
 * samples x interval_s (0.01 when unknown); a frame that recurs in a stack counts once in that
 * sample's cumulative; process/thread roots get no row. o->by_function: one row per
 * (file, function), shown with the smallest line seen. Then `---`, `Sample count: N`,
 * `Total time: %f seconds`, one `Process PID "cmd": N samples (x.x%)` line per process root
 * (a sample belongs to the innermost one), and, when p->has_stats, pysample's statistics:
 * rate requested/achieved, ticks and late ticks, drops by reason, idle samples left out (if
 * any), sample time min/median/max, GIL-held and active shares, remote reads per tick and per
 * thread-sample. */
int ps_folded_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
int ps_table_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);

#endif
