/* table.c — the classic statprof table: one row per source line (or per function), with
 * self percentage, cumulative and self seconds, then the statprof footer and pysample's own
 * statistics (rate achieved, late ticks, drops, sample cost, GIL share, reads per tick).
 *
 * A writer of out/: reads a finished profile (core/) and prints text; used by `attach`,
 * `record -f table` and `report`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

struct ps_row {
    uint32_t name, file; /* string ids */
    int32_t line;        /* per function: the smallest line seen (0 if none known) */
    uint64_t self, cum;
    uint32_t stamp;      /* last stack counted into cum (recursion counts once per sample) */
    char *label;         /* basename:line:function */
};

struct ps_table {
    const struct ps_profile *p;
    const struct ps_intern *in;
    uint32_t *row_of; /* frame id -> row index (0 = not a row) */
    struct ps_row *rows;
    uint32_t nrows;   /* rows[1..nrows] */
};

static int ps_frame_fn_cmp(const void *a, const void *b, void *ctx)
{
    const struct ps_intern *in = ctx;
    const struct ps_frame_key *x = ps_intern_frame_get(in, *(const uint32_t *)a);
    const struct ps_frame_key *y = ps_intern_frame_get(in, *(const uint32_t *)b);
    if (x->name != y->name)
        return x->name < y->name ? -1 : 1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return 0;
}

/* Assigns a row to every frame that is not a process/thread root. */
static void ps_table_rows(struct ps_table *t, int by_function)
{
    const struct ps_intern *in = t->in;
    uint32_t nframes = ps_intern_nframes(in);
    t->row_of = ps_xcalloc((size_t)nframes + 1, sizeof *t->row_of);
    t->rows = ps_xcalloc((size_t)nframes + 1, sizeof *t->rows);
    uint32_t *ids = ps_xmalloc(((size_t)nframes + 1) * sizeof *ids);
    uint32_t n = 0;
    for (uint32_t id = 1; id <= nframes; id++)
        if (ps_frame_root(in, id) == PS_ROOT_NONE)
            ids[n++] = id;
    if (by_function)
        qsort_r(ids, n, sizeof *ids, ps_frame_fn_cmp, (void *)in);
    const struct ps_frame_key *prev = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const struct ps_frame_key *k = ps_intern_frame_get(in, ids[i]);
        if (!by_function || !prev || prev->name != k->name || prev->file != k->file) {
            struct ps_row *r = &t->rows[++t->nrows];
            r->name = k->name;
            r->file = k->file;
            r->line = by_function ? 0 : k->line;
        }
        t->row_of[ids[i]] = t->nrows;
        prev = k;
    }
    free(ids);
}

static void ps_table_count(struct ps_table *t, int by_function)
{
    const struct ps_profile *p = t->p;
    uint32_t nstacks = ps_intern_nstacks(t->in);
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        uint64_t c = p->counts[sid];
        if (!c)
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(t->in, sid, &n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t ri = t->row_of[fr[i]];
            if (!ri)
                continue;
            struct ps_row *r = &t->rows[ri];
            if (by_function) {
                int32_t line = ps_intern_frame_get(t->in, fr[i])->line;
                if (line > 0 && (r->line <= 0 || line < r->line))
                    r->line = line;
            }
            if (r->stamp != sid) {
                r->stamp = sid;
                r->cum += c;
            }
        }
        if (n && t->row_of[fr[n - 1]])
            t->rows[t->row_of[fr[n - 1]]].self += c;
    }
}

/* Label text without control characters, so every row stays one line. */
static char *ps_row_label(const struct ps_intern *in, const struct ps_row *r)
{
    const char *name = ps_intern_str_get(in, r->name);
    const char *file = ps_intern_str_get(in, r->file);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    if (file) {
        const char *base = file;
        for (const char *c = file; *c; c++)
            if (*c == '/' || *c == '\\') /* Austin files from Windows use backslashes */
                base = c + 1;
        if (r->line > 0)
            ps_sb_printf(&sb, "%s:%d:%s", base, (int)r->line, name ? name : "");
        else /* no line known */
            ps_sb_printf(&sb, "%s:?:%s", base, name ? name : "");
    } else {
        ps_sb_adds(&sb, name ? name : "");
    }
    for (size_t i = 0; i < sb.len; i++)
        if ((unsigned char)sb.buf[i] < 0x20 || sb.buf[i] == 0x7f)
            sb.buf[i] = '?';
    if (!sb.buf)
        ps_sb_adds(&sb, "");
    return sb.buf;
}

static int ps_row_cmp(const void *a, const void *b, void *ctx)
{
    const struct ps_intern *in = ctx;
    const struct ps_row *x = *(const struct ps_row *const *)a, *y = *(const struct ps_row *const *)b;
    if (x->self != y->self)
        return x->self > y->self ? -1 : 1;
    if (x->cum != y->cum)
        return x->cum > y->cum ? -1 : 1;
    int c = strcmp(x->label, y->label);
    if (c)
        return c;
    const char *fx = ps_intern_str_get(in, x->file), *fy = ps_intern_str_get(in, y->file);
    c = strcmp(fx ? fx : "", fy ? fy : "");
    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

static double ps_pct(uint64_t part, uint64_t whole)
{
    return whole ? (double)part * 100.0 / (double)whole : 0.0;
}

struct ps_proc_total {
    uint32_t frame;
    uint64_t count;
};

static int ps_proc_cmp(const void *a, const void *b)
{
    const struct ps_proc_total *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->frame > y->frame) - (x->frame < y->frame);
}

/* A live session's summary of process `pid` appended to its line (entries of a reused PID
 * added up): `, GIL held: x.x%, active: y.y%[, idle left out: N]`, shares of its own samples.
 * Marks the entries used in shown[]. */
static void ps_table_proc_summary(FILE *f, const struct ps_profile *p, long pid, char *shown)
{
    struct ps_proc_summary sum = {0};
    int found = 0;
    for (int i = 0; i < p->nprocs; i++) {
        if (p->procs[i].pid != pid)
            continue;
        found = shown[i] = 1;
        sum.samples += p->procs[i].samples;
        sum.gil_samples += p->procs[i].gil_samples;
        sum.nogil_samples += p->procs[i].nogil_samples;
        sum.attached_samples += p->procs[i].attached_samples;
        sum.active_samples += p->procs[i].active_samples;
        sum.idle_skipped += p->procs[i].idle_skipped;
    }
    if (!found)
        return;
    if (sum.samples && sum.nogil_samples == sum.samples)
        fprintf(f, ", no GIL, attached: %.1f%%, active: %.1f%%",
                ps_pct(sum.attached_samples, sum.samples), ps_pct(sum.active_samples, sum.samples));
    else if (sum.samples)
        fprintf(f, ", GIL held: %.1f%%, active: %.1f%%", ps_pct(sum.gil_samples, sum.samples),
                ps_pct(sum.active_samples, sum.samples));
    if (sum.idle_skipped)
        fprintf(f, ", idle left out: %llu", (unsigned long long)sum.idle_skipped);
}

/* `Process PID "cmd": N samples (x.x%)` for each process root (the innermost one of a stack),
 * with the live per-process summary when there is one (then also for processes that have no
 * samples, e.g. an idle master). */
static void ps_table_processes(FILE *f, const struct ps_profile *p)
{
    char *shown = p->nprocs ? ps_xcalloc((size_t)p->nprocs, 1) : NULL;
    const struct ps_intern *in = p->in;
    uint32_t nframes = ps_intern_nframes(in), nstacks = ps_intern_nstacks(in);
    uint64_t *per = NULL;
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        uint32_t n, proc = 0;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        for (uint32_t i = 0; i < n; i++)
            if (ps_frame_root(in, fr[i]) == PS_ROOT_PROCESS)
                proc = fr[i];
        if (!proc)
            continue;
        if (!per)
            per = ps_xcalloc((size_t)nframes + 1, sizeof *per);
        per[proc] += p->counts[sid];
    }
    if (!per && !shown)
        return;
    struct ps_proc_total *tot = ps_xmalloc(((size_t)nframes + 1) * sizeof *tot);
    size_t nt = 0;
    for (uint32_t id = 1; id <= nframes && per; id++)
        if (per[id])
            tot[nt++] = (struct ps_proc_total){id, per[id]};
    qsort(tot, nt, sizeof *tot, ps_proc_cmp);
    for (size_t i = 0; i < nt; i++) {
        const char *name = ps_intern_str_get(in, ps_intern_frame_get(in, tot[i].frame)->name);
        const char *pid = name + 8; /* after "process " */
        size_t pidlen = strspn(pid, "0123456789");
        const char *cmd = pid[pidlen] == ':' ? pid + pidlen + 1 : NULL;
        fprintf(f, "Process %.*s", (int)pidlen, pid);
        if (cmd) {
            fputc(' ', f);
            for (const char *c = cmd; *c; c++)
                fputc((unsigned char)*c < 0x20 ? '?' : *c, f);
        }
        fprintf(f, ": %llu samples (%.1f%%)", (unsigned long long)tot[i].count,
                ps_pct(tot[i].count, p->total));
        if (shown)
            ps_table_proc_summary(f, p, strtol(pid, NULL, 10), shown);
        fputc('\n', f);
    }
    for (int i = 0; i < p->nprocs; i++) {
        if (shown[i])
            continue;
        fprintf(f, "Process %d \"", p->procs[i].pid);
        for (const char *c = p->procs[i].cmdline; c && *c; c++)
            fputc((unsigned char)*c < 0x20 ? '?' : *c, f);
        fprintf(f, "\": 0 samples (0.0%%)");
        ps_table_proc_summary(f, p, p->procs[i].pid, shown);
        fputc('\n', f);
    }
    free(shown);
    free(tot);
    free(per);
}

static void ps_table_stats(FILE *f, const struct ps_profile *p)
{
    const struct ps_stats *s = &p->stats;
    const char *rates = ps_meta_get(&p->meta, "rates");
    if (rates) {
        /* Files at different rates (report): an achieved rate of the mix would mean nothing. */
        fprintf(f, "Sampling rate: files at %s Hz, samples weighted to %g Hz, %.2f seconds "
                   "recorded\n",
                rates, s->rate_hz, s->duration_s);
    } else {
        double achieved = s->duration_s > 0 ? (double)s->ticks / s->duration_s : 0.0;
        fprintf(f, "Sampling rate: %g Hz requested, %.1f Hz achieved over %.2f seconds\n",
                s->rate_hz, achieved, s->duration_s);
    }
    fprintf(f, "Ticks: %llu, late: %llu (%.1f%%)", (unsigned long long)s->ticks,
            (unsigned long long)s->late_ticks, ps_pct(s->late_ticks, s->ticks));
    if (s->missed_ticks)
        fprintf(f, ", missed: %llu (deadlines passed without a tick)",
                (unsigned long long)s->missed_ticks);
    fputc('\n', f);
    uint64_t dropped = ps_stats_dropped_total(s);
    fprintf(f, "Dropped samples: %llu", (unsigned long long)dropped);
    if (dropped) {
        const char *sep = " (";
        for (int d = 0; d < PS_DROP__COUNT; d++) {
            if (!s->dropped[d])
                continue;
            fprintf(f, "%s%s: %llu", sep, ps_drop_name((enum ps_drop)d),
                    (unsigned long long)s->dropped[d]);
            sep = ", ";
        }
        fputc(')', f);
    }
    fputc('\n', f);
    if (s->truncated)
        fprintf(f, "Truncated samples: %llu (counted, outermost frames cut)\n",
                (unsigned long long)s->truncated);
    if (s->idle_skipped)
        fprintf(f, "Idle samples left out: %llu\n", (unsigned long long)s->idle_skipped);
    fprintf(f, "Sample time: min %.1f us, median %.1f us, max %.1f us\n", s->sample_ns_min / 1e3,
            s->sample_ns_median / 1e3, s->sample_ns_max / 1e3);
    if (s->sample_cpu_ns_max)
        fprintf(f, "Sample CPU time: min %.1f us, median %.1f us, max %.1f us\n",
                s->sample_cpu_ns_min / 1e3, s->sample_cpu_ns_median / 1e3,
                s->sample_cpu_ns_max / 1e3);
    if (s->native_samples || s->native_failed)
        fprintf(f,
                "Native: %llu samples merged, %llu without C frames, %llu misaligned; thread "
                "stopped min %.1f us, median %.1f us, max %.1f us\n",
                (unsigned long long)s->native_samples, (unsigned long long)s->native_failed,
                (unsigned long long)s->native_mismatch, s->stop_ns_min / 1e3,
                s->stop_ns_median / 1e3, s->stop_ns_max / 1e3);
    if (!s->nogil_samples)
        fprintf(f, "GIL held: %.1f%% of samples, active: %.1f%% of samples\n",
                ps_pct(s->gil_samples, s->thread_samples),
                ps_pct(s->active_samples, s->thread_samples));
    else if (s->nogil_samples >= s->thread_samples)
        /* Free-threaded, GIL disabled: threads run in parallel and none holds a GIL; a thread
         * attached to the interpreter is what a GIL holder is elsewhere. */
        fprintf(f, "No GIL (free-threaded): attached: %.1f%% of samples, active: %.1f%% of "
                   "samples\n",
                ps_pct(s->attached_samples, s->thread_samples),
                ps_pct(s->active_samples, s->thread_samples));
    else
        fprintf(f, "GIL held: %.1f%% of samples with a GIL, attached: %.1f%% of samples without "
                   "one (free-threaded), active: %.1f%% of samples\n",
                ps_pct(s->gil_samples, s->thread_samples - s->nogil_samples),
                ps_pct(s->attached_samples, s->nogil_samples),
                ps_pct(s->active_samples, s->thread_samples));
    uint64_t attempted = s->thread_samples + dropped + s->idle_skipped;
    fprintf(f, "Remote reads: %.1f per tick, %.1f per thread-sample\n",
            s->ticks ? (double)s->remote_reads / (double)s->ticks : 0.0,
            attempted ? (double)s->remote_reads / (double)attempted : 0.0);
}

int ps_table_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    int by_function = o && o->by_function;
    struct ps_table t = {.p = p, .in = p->in};
    ps_table_rows(&t, by_function);
    ps_table_count(&t, by_function);

    struct ps_row **order = ps_xmalloc(((size_t)t.nrows + 1) * sizeof *order);
    uint32_t n = 0;
    for (uint32_t i = 1; i <= t.nrows; i++) {
        struct ps_row *r = &t.rows[i];
        if (!r->cum)
            continue;
        r->label = ps_row_label(t.in, r);
        order[n++] = r;
    }
    qsort_r(order, n, sizeof *order, ps_row_cmp, (void *)t.in);

    double interval = p->interval_s > 0 ? p->interval_s : 0.01;
    fprintf(f, "%5.5s %10.10s   %7.7s  %-8.8s\n", "%  ", "cumulative", "self", "");
    fprintf(f, "%5.5s  %9.9s  %8.8s  %-8.8s\n", "time", "seconds", "seconds", "name");
    for (uint32_t i = 0; i < n; i++) {
        const struct ps_row *r = order[i];
        fprintf(f, "%6.2f %9.2f %9.2f  %s\n", ps_pct(r->self, p->total), (double)r->cum * interval,
                (double)r->self * interval, r->label);
    }
    fputs("---\n", f);
    fprintf(f, "Sample count: %llu\n", (unsigned long long)p->total);
    fprintf(f, "Total time: %f seconds\n", (double)p->total * interval);
    ps_table_processes(f, p);
    if (p->has_stats)
        ps_table_stats(f, p);

    for (uint32_t i = 0; i < n; i++)
        free(order[i]->label);
    free(order);
    free(t.rows);
    free(t.row_of);
    return ferror(f) ? PS_EIO : 0;
}
