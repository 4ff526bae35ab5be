/* ps_output.h — writers and readers of profile files (folded stacks, statprof table, and the
 * viewer formats: SVG flame graph, speedscope, pprof, callgrind, pstats).
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
/* The writer whose ext ends `path` ("x.folded" -> folded, "x.pb.gz" -> pprof); also
 * ".json" -> speedscope and ".prof" -> pstats; NULL for anything else. */
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
 *   # pysample=0.1.0                       always first
 *   # <key>=<value>                        every p->meta entry, in order
 *   # interval=US                          seconds per sample x 1e6 (when interval_s > 0)
 *   # samples=N  # rate=HZ  # duration=S  # ticks=N  # late_ticks=N
 *   # dropped=torn=N,vanished=N,read=N,corrupt=N,depth=N,process=N
 *   # idle_skipped=N  # gil_samples=N  # active_samples=N  # remote_reads=N
 *   # sample_time_us=MIN/MEDIAN/MAX        (these statistics lines only when p->has_stats)
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
 * Metadata keys have ':', '=' and white space replaced by '_'; CR/LF in values become spaces;
 * a value with white space or a leading '"' is written in double quotes with '"' and '\\'
 * backslash-escaped. No metadata line ends in " <digits>", so flamegraph.pl and speedscope,
 * which take "TEXT COUNT" lines as stacks, skip them. (Files before 0.1.0's `key=value` form
 * wrote `# key: value`; the reader takes both.)
 * Empty stacks are written as " COUNT". A one-frame stack whose only frame is an empty name
 * without file reads back as the empty stack: the one text that does not round-trip.
 *
 * Folded reader: accepts pysample's own files, py-spy raw output, Austin collapsed text,
 * Tachyon --collapsed, pyflame and plain Brendan Gregg folded. Adds into `p` (so several files
 * merge). Names and files that are not valid UTF-8 are stored with U+FFFD for each bad byte,
 * and so are metadata values. Each line is split at its last space; the count must be a decimal integer that fits
 * in uint64. Blank lines are skipped, and so are "# " metadata lines (`# key=value` or
 * `# key: value`), whose content is kept:
 *   - %XX escapes are decoded only after a "# pysample" line (the first line of our files);
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

/* The viewer formats, all from the same profile; each returns 0 or PS_EIO. Every text they
 * write is valid UTF-8 (invalid bytes become U+FFFD) and escaped for its syntax.
 *
 * ps_svg_write: a self-contained interactive flame graph (inline script and style, nothing
 * fetched): roots at the bottom, a frame's width its share of samples; hover shows the frame,
 * samples and %; click zooms into a frame, "Reset zoom" undoes it; "Search" takes a regular
 * expression, highlights matches and prints the share of samples under them (nested matches
 * counted once); colours by kind (ps_frame_kind). Title: command, pid, duration, samples;
 * the statistics (when the profile has them) in a <desc>.
 * Frames narrower than 1/PS_SVG_MIN_FRACTION of the total are left out (their samples still
 * count in their parents), so 10 000 distinct stacks stay readable.
 *
 * ps_speedscope_write: speedscope JSON (file-format-schema), one "sampled" profile per thread
 * root (per process root and thread when both are there; one profile when there are none),
 * the root frames themselves left out; frames carry name, file and line; weights are samples.
 *
 * ps_pprof_write: gzip'ed profile.proto. Sample types samples/count and cpu/nanoseconds
 * (count x interval), period type cpu/nanoseconds, time_nanos (the recording's start when
 * known: meta "start_ns"), duration_nanos, one Mapping (the command's executable) with has_functions/has_filenames/
 * has_line_numbers, a Function per (name, file) with its first line seen as start_line, a
 * Location per frame with one Line; process and thread roots become "process" and "thread"
 * string labels of the sample instead of locations; the statistics go into comments.
 *
 * ps_callgrind_write: callgrind profile (events: Samples), per function (fl=/fn=) self cost by
 * line, calls=/cfn= lines with the callee's inclusive samples by calling line (calls= is that
 * number of samples too: sampling sees no calls), an edge counted once per sample and direct
 * recursion (f calling f) left out so inclusive costs stay right; roots left out; summary:
 * and totals:, the interval and statistics as desc: lines.
 *
 * ps_pstats_write: a marshal'ed dict as profile/cProfile's dump_stats writes it, read by
 * pstats.Stats(FILE) on Python 2.7 and 3.x: key (file, first line, function); value (cc, nc,
 * tt, ct, callers) where nc = cc = samples with the function on the stack (once per sample),
 * tt = self samples x interval, ct = nc x interval, callers {caller key: (nc, cc, tt, ct)} of
 * the samples where that caller called it directly. */
#define PS_SVG_MIN_FRACTION 5000
int ps_svg_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
int ps_speedscope_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
int ps_pprof_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
int ps_callgrind_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);
int ps_pstats_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o);

/* ---- helpers shared by the writers (out/text.c) ---- */
struct ps_strbuf;
/* Length of the valid UTF-8 sequence at s (1-4; n > 0), 0 when it is not one. */
size_t ps_utf8_len(const unsigned char *s, size_t n);
int ps_utf8_valid(const char *s, size_t n);
/* Append s[0..n) as valid UTF-8 (each invalid byte -> U+FFFD). */
void ps_sb_add_utf8(struct ps_strbuf *sb, const char *s, size_t n);
/* Append s[0..n) escaped for XML text and attributes (&<>"' and control bytes). */
void ps_sb_add_xml(struct ps_strbuf *sb, const char *s, size_t n);
/* Append s[0..n) as a JSON string literal, '<' as \u003c (safe in a <script>). */
void ps_sb_add_json(struct ps_strbuf *sb, const char *s, size_t n);

/* What a frame is, for colours and labels: a process/thread root, a frame of Python code
 * (file *.py, *.pyw, <...>, or no file), a native frame (any other file: a library or a C
 * source) or a call that waits (sleep, select, poll, acquire, futex waits, ...: by name). */
enum ps_kind { PS_KIND_PYTHON, PS_KIND_NATIVE, PS_KIND_IDLE, PS_KIND_ROOT };
enum ps_kind ps_frame_kind(const struct ps_intern *in, uint32_t frame_id);
const char *ps_kind_name(enum ps_kind k);

#endif
