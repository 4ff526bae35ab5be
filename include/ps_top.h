/* ps_top.h — the figures of `pysample top`: rows per function (or per line) with own and total
 * counts over the last refresh interval and since the start (or the last reset), computed from
 * snapshots of a live profile's counts and statistics, and the text of the view's lines.
 *
 * Lives in out/: reads a profile (core/) the sampler keeps filling, never writes into it and
 * never touches the target. The process and thread roots leading a stack (--subprocesses,
 * --threads) are recognised by ps_frame_root; the views split rows by them or merge them.
 */
#ifndef PS_TOP_H
#define PS_TOP_H

#include <stddef.h>
#include <stdint.h>

#include "ps_profile.h"
#include "ps_util.h"

enum ps_top_sort { PS_TOP_SORT_OWN_PCT, PS_TOP_SORT_TOTAL_PCT, PS_TOP_SORT_OWN_TIME,
                   PS_TOP_SORT_TOTAL_TIME, PS_TOP_SORT__COUNT };

struct ps_top_row {
    uint32_t proc, thread;      /* root frame ids when the view splits by them, else 0 */
    uint32_t name, file;        /* string ids */
    int32_t line;               /* per function: the smallest line seen */
    uint64_t own_last, total_last; /* thread-samples over the last interval */
    uint64_t own_all, total_all;   /* ... since the start or the last reset */
    uint32_t stamp;             /* last stack counted into the totals (recursion counts once) */
};

/* A snapshot of the profile's counters at one moment. */
struct ps_top_snap {
    uint64_t *counts;           /* per stack id, copied */
    uint32_t n;                 /* entries in counts (ids 0..n-1) */
    struct ps_stats stats;
    uint64_t ns;                /* monotonic time it was taken */
};

/* Figures of one span (the last interval, or since the start). */
struct ps_top_span {
    double seconds;
    uint64_t ticks, late, samples, dropped, gil, active, idle_skipped;
    uint64_t nogil, attached;   /* free-threaded with the GIL disabled (see ps_stats) */
};

struct ps_top {
    const struct ps_profile *prof;
    int by_line;                /* a row per line (else per function) */
    int per_thread, per_proc;   /* split rows by thread / by process */
    int since_start;            /* percentages since the start, else over the last interval */
    enum ps_top_sort sort;
    struct ps_top_snap base, prev, cur; /* at the last reset, at the refresh before, now */
    struct ps_top_span last, all;
    struct ps_top_row *rows;
    uint32_t nrows, rows_cap;
    uint32_t *slots;            /* open-addressing table of row indexes + 1 */
    uint32_t nslots;
    struct ps_top_row **order;  /* rows sorted for display */
};

/* by_line: a row per (function, line), else per function shown with its smallest line. */
void ps_top_init(struct ps_top *t, const struct ps_profile *p, int by_line, uint64_t now_ns);
void ps_top_release(struct ps_top *t);
/* Takes a new snapshot at now_ns: the last interval becomes (previous refresh, now]. */
void ps_top_refresh(struct ps_top *t, uint64_t now_ns);
/* Counts start again from now_ns (the profile itself is left alone). */
void ps_top_reset(struct ps_top *t, uint64_t now_ns);
/* Rebuilds the rows and their order from the snapshots, for the current view settings (called
 * by refresh and reset; call it after changing by_line/per_thread/per_proc/since_start/sort). */
void ps_top_build(struct ps_top *t);

const char *ps_top_sort_name(enum ps_top_sort s);

/* Text of the view, appended to sb (no trailing newline, control characters replaced, cut to
 * `width` columns when width > 0, a UTF-8 sequence counting as one):
 *   ps_top_columns: the column header line, "  %Own  %Total   OwnTime  TotalTime  " then
 *     "Process " (per process), "Thread" padded to 22 (per thread), "Function" or "Line";
 *   ps_top_row_text: row i of the sorted rows (0 = first; nothing past the last): percentages
 *     '%6.1f %7.1f' over the span in use, OwnTime and TotalTime since the start ("12.34s",
 *     "1h05m" from 1000 s on), the PID / "TID NAME" columns, then `function (file:line)`;
 *   ps_top_counts_text: "Samples: N (total M)  Rate: R Hz of REQ  Late: N (total M)  Dropped: N
 *     (total M)": thread-samples, ticks per second, late ticks and dropped thread-samples over the
 *     last interval (the rate: over the span the percentages use) and since the start;
 *   ps_top_shares_text: "GIL: x%  Active: y%  Over: last interval (Ss; Ts in all)  Sort: KEY
 *     View: functions[, per process][, per thread]", the shares over the span in use. */
void ps_top_columns(const struct ps_top *t, struct ps_strbuf *sb, int width);
void ps_top_row_text(const struct ps_top *t, uint32_t i, struct ps_strbuf *sb, int width);
void ps_top_counts_text(const struct ps_top *t, struct ps_strbuf *sb, int width);
void ps_top_shares_text(const struct ps_top *t, struct ps_strbuf *sb, int width);

#endif
