/* top.c — the figures and text lines of `pysample top`: snapshots of a live profile's counts,
 * rows per function or per line (optionally split by process and thread roots) with own and
 * total samples over the last interval and since the start, sorting, and the lines drawn.
 *
 * In out/: reads the profile the sampler fills (core/), never changes it; cmd/top.c draws.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_top.h"

static const char *const ps_sort_names[PS_TOP_SORT__COUNT] = {"%Own", "%Total", "OwnTime",
                                                              "TotalTime"};

const char *ps_top_sort_name(enum ps_top_sort s)
{
    return (unsigned)s < PS_TOP_SORT__COUNT ? ps_sort_names[s] : "?";
}

static void ps_snap_take(struct ps_top_snap *s, const struct ps_profile *p, uint64_t now_ns)
{
    uint32_t n = ps_intern_nstacks(p->in) + 1;
    if (n > p->counts_cap)
        n = p->counts_cap;
    s->counts = ps_xrealloc(s->counts, sizeof *s->counts * (size_t)(n ? n : 1));
    if (n)
        memcpy(s->counts, p->counts, sizeof *s->counts * (size_t)n);
    s->n = n;
    s->stats = p->stats;
    s->ns = now_ns;
}

static void ps_snap_copy(struct ps_top_snap *to, const struct ps_top_snap *from)
{
    to->counts = ps_xrealloc(to->counts, sizeof *to->counts * (size_t)(from->n ? from->n : 1));
    if (from->n)
        memcpy(to->counts, from->counts, sizeof *to->counts * (size_t)from->n);
    to->n = from->n;
    to->stats = from->stats;
    to->ns = from->ns;
}

static uint64_t ps_snap_count(const struct ps_top_snap *s, uint32_t sid)
{
    return sid < s->n ? s->counts[sid] : 0;
}

static void ps_span(struct ps_top_span *sp, const struct ps_top_snap *a, const struct ps_top_snap *b)
{
    const struct ps_stats *x = &a->stats, *y = &b->stats;
    sp->seconds = (double)(b->ns - a->ns) / 1e9;
    sp->ticks = y->ticks - x->ticks;
    sp->late = y->late_ticks - x->late_ticks;
    sp->samples = y->thread_samples - x->thread_samples;
    sp->dropped = ps_stats_dropped_total(y) - ps_stats_dropped_total(x);
    sp->gil = y->gil_samples - x->gil_samples;
    sp->active = y->active_samples - x->active_samples;
    sp->nogil = y->nogil_samples - x->nogil_samples;
    sp->attached = y->attached_samples - x->attached_samples;
    sp->idle_skipped = y->idle_skipped - x->idle_skipped;
}

void ps_top_init(struct ps_top *t, const struct ps_profile *p, int by_line, uint64_t now_ns)
{
    memset(t, 0, sizeof *t);
    t->prof = p;
    t->by_line = by_line;
    ps_top_reset(t, now_ns);
}

void ps_top_release(struct ps_top *t)
{
    free(t->base.counts);
    free(t->prev.counts);
    free(t->cur.counts);
    free(t->rows);
    free(t->slots);
    free(t->order);
    memset(t, 0, sizeof *t);
}

void ps_top_refresh(struct ps_top *t, uint64_t now_ns)
{
    ps_snap_copy(&t->prev, &t->cur);
    ps_snap_take(&t->cur, t->prof, now_ns);
    ps_top_build(t);
}

void ps_top_reset(struct ps_top *t, uint64_t now_ns)
{
    ps_snap_take(&t->cur, t->prof, now_ns);
    ps_snap_copy(&t->prev, &t->cur);
    ps_snap_copy(&t->base, &t->cur);
    ps_top_build(t);
}

static uint32_t ps_key_hash(const uint32_t k[5])
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 5; i++) {
        h ^= k[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static void ps_slots_grow(struct ps_top *t)
{
    free(t->slots);
    t->nslots = t->nslots ? t->nslots * 2 : 256;
    t->slots = ps_xcalloc(t->nslots, sizeof *t->slots);
    for (uint32_t r = 0; r < t->nrows; r++) {
        const struct ps_top_row *w = &t->rows[r];
        uint32_t k[5] = {w->proc, w->thread, w->name, w->file, t->by_line ? (uint32_t)w->line : 0};
        uint32_t j = ps_key_hash(k) & (t->nslots - 1);
        while (t->slots[j])
            j = (j + 1) & (t->nslots - 1);
        t->slots[j] = r + 1;
    }
}

static struct ps_top_row *ps_row_get(struct ps_top *t, uint32_t proc, uint32_t thread,
                                     const struct ps_frame_key *fk)
{
    if ((t->nrows + 1) * 2 > t->nslots)
        ps_slots_grow(t);
    uint32_t k[5] = {proc, thread, fk->name, fk->file, t->by_line ? (uint32_t)fk->line : 0};
    uint32_t j = ps_key_hash(k) & (t->nslots - 1);
    while (t->slots[j]) {
        struct ps_top_row *w = &t->rows[t->slots[j] - 1];
        if (w->proc == proc && w->thread == thread && w->name == fk->name && w->file == fk->file &&
            (!t->by_line || w->line == fk->line))
            return w;
        j = (j + 1) & (t->nslots - 1);
    }
    if (t->nrows == t->rows_cap) {
        t->rows_cap = t->rows_cap ? t->rows_cap * 2 : 256;
        t->rows = ps_xrealloc(t->rows, sizeof *t->rows * t->rows_cap);
    }
    struct ps_top_row *w = &t->rows[t->nrows++];
    memset(w, 0, sizeof *w);
    w->proc = proc;
    w->thread = thread;
    w->name = fk->name;
    w->file = fk->file;
    w->line = fk->line;
    t->slots[j] = t->nrows;
    return w;
}

/* The value a row is sorted by, and the one that breaks ties. */
static uint64_t ps_sort_value(const struct ps_top *t, const struct ps_top_row *r, int which)
{
    switch (which) {
    case PS_TOP_SORT_OWN_PCT: return t->since_start ? r->own_all : r->own_last;
    case PS_TOP_SORT_TOTAL_PCT: return t->since_start ? r->total_all : r->total_last;
    case PS_TOP_SORT_OWN_TIME: return r->own_all;
    default: return r->total_all;
    }
}

static int ps_str_cmp(const struct ps_intern *in, uint32_t a, uint32_t b)
{
    const char *x = ps_intern_str_get(in, a), *y = ps_intern_str_get(in, b);
    return strcmp(x ? x : "", y ? y : "");
}

static int ps_order_cmp(const void *a, const void *b, void *ctx)
{
    const struct ps_top *t = ctx;
    const struct ps_top_row *x = *(const struct ps_top_row *const *)a;
    const struct ps_top_row *y = *(const struct ps_top_row *const *)b;
    int keys[3] = {(int)t->sort, t->sort == PS_TOP_SORT_OWN_PCT || t->sort == PS_TOP_SORT_OWN_TIME
                                     ? PS_TOP_SORT_TOTAL_PCT : PS_TOP_SORT_OWN_PCT,
                   PS_TOP_SORT_TOTAL_TIME};
    for (int i = 0; i < 3; i++) {
        uint64_t u = ps_sort_value(t, x, keys[i]), v = ps_sort_value(t, y, keys[i]);
        if (u != v)
            return u > v ? -1 : 1;
    }
    const struct ps_intern *in = t->prof->in;
    int c;
    if ((c = ps_str_cmp(in, x->name, y->name)) || (c = ps_str_cmp(in, x->file, y->file)))
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    return (x->proc > y->proc) - (x->proc < y->proc);
}

void ps_top_build(struct ps_top *t)
{
    const struct ps_intern *in = t->prof->in;
    t->nrows = 0;
    if (t->slots)
        memset(t->slots, 0, sizeof *t->slots * t->nslots);
    ps_span(&t->last, &t->prev, &t->cur);
    ps_span(&t->all, &t->base, &t->cur);
    for (uint32_t sid = 1; sid < t->cur.n; sid++) {
        uint64_t c = t->cur.counts[sid];
        uint64_t d_all = c - ps_snap_count(&t->base, sid);
        uint64_t d_last = c - ps_snap_count(&t->prev, sid);
        if (!d_all && !d_last)
            continue;
        uint32_t n, proc = 0, thread = 0, i = 0;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        for (; i < n; i++) {
            enum ps_root k = ps_frame_root(in, fr[i]);
            if (k == PS_ROOT_NONE)
                break;
            if (k == PS_ROOT_PROCESS && t->per_proc)
                proc = fr[i];
            if (k == PS_ROOT_THREAD && t->per_thread)
                thread = fr[i];
        }
        struct ps_top_row *leaf = NULL;
        for (; i < n; i++) {
            const struct ps_frame_key *fk = ps_intern_frame_get(in, fr[i]);
            struct ps_top_row *r = ps_row_get(t, proc, thread, fk);
            if (!t->by_line && fk->line > 0 && (r->line <= 0 || fk->line < r->line))
                r->line = fk->line;
            if (r->stamp != sid) {
                r->stamp = sid;
                r->total_last += d_last;
                r->total_all += d_all;
            }
            leaf = r;
        }
        if (leaf) {
            leaf->own_last += d_last;
            leaf->own_all += d_all;
        }
    }
    free(t->order);
    t->order = ps_xmalloc(sizeof *t->order * (size_t)(t->nrows ? t->nrows : 1));
    for (uint32_t r = 0; r < t->nrows; r++)
        t->order[r] = &t->rows[r];
    qsort_r(t->order, t->nrows, sizeof *t->order, ps_order_cmp, t);
}

/* ---- text --------------------------------------------------------------------------------- */

/* Appends s, control characters replaced by '?'. */
static void ps_add_clean(struct ps_strbuf *sb, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        ps_sb_addc(sb, c < 0x20 || c == 0x7f ? '?' : (char)c);
    }
}

/* Cuts sb (from byte `from`) to `width` columns, a UTF-8 sequence counting as one column. */
static void ps_fit(struct ps_strbuf *sb, size_t from, int width)
{
    if (width <= 0 || !sb->buf)
        return;
    int cols = 0;
    for (size_t i = from; i < sb->len; i++) {
        if (((unsigned char)sb->buf[i] & 0xc0) == 0x80)
            continue;
        if (cols == width) {
            sb->len = i;
            sb->buf[i] = '\0';
            return;
        }
        cols++;
    }
}

static double ps_pct(uint64_t part, uint64_t whole)
{
    return whole ? (double)part * 100.0 / (double)whole : 0.0;
}

#define PS_THREAD_COL 22

void ps_top_columns(const struct ps_top *t, struct ps_strbuf *sb, int width)
{
    size_t from = sb->len;
    ps_sb_printf(sb, "%6s %7s %9s %10s  ", "%Own", "%Total", "OwnTime", "TotalTime");
    if (t->per_proc)
        ps_sb_printf(sb, "%-8s", "Process");
    if (t->per_thread)
        ps_sb_printf(sb, "%-*s", PS_THREAD_COL, "Thread");
    ps_sb_adds(sb, t->by_line ? "Line" : "Function");
    ps_fit(sb, from, width);
}

static void ps_add_seconds(struct ps_strbuf *sb, int w, double s)
{
    if (s < 1000)
        ps_sb_printf(sb, "%*.2fs", w - 1, s);
    else if (s < 360000)
        ps_sb_printf(sb, "%*dh%02dm", w - 4, (int)(s / 3600), (int)(s / 60) % 60);
    else
        ps_sb_printf(sb, "%*.0fh", w - 1, s / 3600);
}

void ps_top_row_text(const struct ps_top *t, uint32_t i, struct ps_strbuf *sb, int width)
{
    size_t from = sb->len;
    if (i >= t->nrows) {
        if (sb->buf)
            sb->buf[sb->len] = '\0';
        else
            ps_sb_adds(sb, "");
        return;
    }
    const struct ps_top_row *r = t->order[i];
    const struct ps_intern *in = t->prof->in;
    uint64_t whole = t->since_start ? t->all.samples : t->last.samples;
    double iv = t->prof->interval_s > 0 ? t->prof->interval_s : 0.01;
    ps_sb_printf(sb, "%6.1f %7.1f ",
                 ps_pct(t->since_start ? r->own_all : r->own_last, whole),
                 ps_pct(t->since_start ? r->total_all : r->total_last, whole));
    ps_add_seconds(sb, 9, (double)r->own_all * iv);
    ps_sb_addc(sb, ' ');
    ps_add_seconds(sb, 10, (double)r->total_all * iv);
    ps_sb_adds(sb, "  ");
    if (t->per_proc) {
        /* `process PID:"cmd"` -> PID */
        const char *name = r->proc ? ps_intern_str_get(in, ps_intern_frame_get(in, r->proc)->name)
                                   : NULL;
        const char *pid = name && strlen(name) > 8 ? name + 8 : "-";
        ps_sb_printf(sb, "%-8.*s", (int)strspn(pid, "0123456789-"), pid);
    }
    if (t->per_thread) {
        /* `thread (TID): NAME` -> TID NAME */
        const char *name = r->thread
                               ? ps_intern_str_get(in, ps_intern_frame_get(in, r->thread)->name)
                               : NULL;
        char buf[PS_THREAD_COL + 1];
        if (name && strncmp(name, "thread (", 8) == 0) {
            const char *tid = name + 8;
            size_t tl = strspn(tid, "0123456789");
            const char *tn = tid[tl] == ')' && tid[tl + 1] == ':' ? tid + tl + 2 : "";
            while (*tn == ' ')
                tn++;
            snprintf(buf, sizeof buf, "%.*s %s", (int)tl, tid, tn);
        } else {
            snprintf(buf, sizeof buf, "-");
        }
        size_t at = sb->len;
        ps_add_clean(sb, buf, sizeof buf);
        ps_fit(sb, at, PS_THREAD_COL - 1);
        while (sb->len - at < PS_THREAD_COL)
            ps_sb_addc(sb, ' ');
    }
    const char *name = ps_intern_str_get(in, r->name);
    const char *file = r->file ? ps_intern_str_get(in, r->file) : NULL;
    ps_add_clean(sb, name ? name : "", (size_t)-1);
    if (file && file[0]) {
        ps_sb_adds(sb, " (");
        ps_add_clean(sb, file, (size_t)-1);
        if (r->line > 0)
            ps_sb_printf(sb, ":%d", (int)r->line);
        ps_sb_addc(sb, ')');
    }
    ps_fit(sb, from, width);
}

void ps_top_counts_text(const struct ps_top *t, struct ps_strbuf *sb, int width)
{
    size_t from = sb->len;
    const struct ps_top_span *s = t->since_start ? &t->all : &t->last;
    ps_sb_printf(sb, "Samples: %llu (total %llu)  Rate: %.1f Hz of %g  Late: %llu (total %llu)  "
                     "Dropped: %llu (total %llu)",
                 (unsigned long long)t->last.samples, (unsigned long long)t->all.samples,
                 s->seconds > 0 ? (double)s->ticks / s->seconds : 0.0, t->prof->stats.rate_hz,
                 (unsigned long long)t->last.late, (unsigned long long)t->all.late,
                 (unsigned long long)t->last.dropped, (unsigned long long)t->all.dropped);
    ps_fit(sb, from, width);
}

void ps_top_shares_text(const struct ps_top *t, struct ps_strbuf *sb, int width)
{
    size_t from = sb->len;
    const struct ps_top_span *s = t->since_start ? &t->all : &t->last;
    /* Free-threaded with the GIL disabled: no thread holds a GIL; each attached thread runs. */
    if (s->nogil && s->nogil == s->samples)
        ps_sb_printf(sb, "No GIL, attached: %.1f%%", ps_pct(s->attached, s->samples));
    else
        ps_sb_printf(sb, "GIL: %.1f%%", ps_pct(s->gil, s->samples));
    ps_sb_printf(sb, "  Active: %.1f%%  Over: %s (%.1fs; %.1fs in all)  Sort: %s  "
                     "View: %s%s%s",
                 ps_pct(s->active, s->samples),
                 t->since_start ? "since start" : "last interval", t->last.seconds, t->all.seconds,
                 ps_top_sort_name(t->sort), t->by_line ? "lines" : "functions",
                 t->per_proc ? ", per process" : "", t->per_thread ? ", per thread" : "");
    ps_fit(sb, from, width);
}
