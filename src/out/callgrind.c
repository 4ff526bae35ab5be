/* callgrind.c — the callgrind profile format (KCachegrind, callgrind_annotate, the format
 * pyprof2calltree writes): one event, Samples; self cost per function and line; calls from a
 * line to a function with the callee's inclusive samples.
 *
 * A writer of out/ (registry in output.c); reads only the finished profile (core/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

#ifndef PS_VERSION
#define PS_VERSION "unknown"
#endif

struct cg_cost {
    uint32_t fn;        /* function (local id) */
    int32_t line;
    uint32_t callee;    /* 0: self cost */
    uint64_t samples;
    uint32_t stamp;     /* last stack counted (an edge counts once per sample) */
};

struct cg {
    const struct ps_intern *in;
    struct ps_intern *fns;   /* (name, file) -> function id */
    struct ps_intern *keys;  /* (fn, line, callee) -> cost id */
    struct cg_cost *cost;
    uint32_t cost_cap;
    int32_t *first_line;     /* per function: smallest line seen */
    uint32_t first_cap;
};

static uint32_t cg_fn(struct cg *c, uint32_t frame, int32_t line)
{
    const struct ps_frame_key *k = ps_intern_frame_get(c->in, frame);
    uint32_t fn = ps_intern_frame(c->fns, k->name, k->file, 0);
    if (fn >= c->first_cap) {
        uint32_t nc = c->first_cap ? c->first_cap * 2 : 256;
        while (nc <= fn)
            nc *= 2;
        c->first_line = ps_xrealloc(c->first_line, nc * sizeof *c->first_line);
        memset(c->first_line + c->first_cap, 0, (nc - c->first_cap) * sizeof *c->first_line);
        c->first_cap = nc;
    }
    if (line > 0 && (!c->first_line[fn] || line < c->first_line[fn]))
        c->first_line[fn] = line;
    return fn;
}

static void cg_add(struct cg *c, uint32_t fn, int32_t line, uint32_t callee, uint64_t n,
                   uint32_t stamp)
{
    uint32_t id = ps_intern_frame(c->keys, fn, callee, line);
    if (id >= c->cost_cap) {
        uint32_t nc = c->cost_cap ? c->cost_cap * 2 : 1024;
        while (nc <= id)
            nc *= 2;
        c->cost = ps_xrealloc(c->cost, nc * sizeof *c->cost);
        memset(c->cost + c->cost_cap, 0, (nc - c->cost_cap) * sizeof *c->cost);
        c->cost_cap = nc;
    }
    struct cg_cost *e = &c->cost[id];
    if (e->stamp == stamp && callee)
        return;
    e->fn = fn;
    e->line = line;
    e->callee = callee;
    e->samples += n;
    e->stamp = stamp;
}

static int cg_cmp(const void *a, const void *b)
{
    const struct cg_cost *x = a, *y = b;
    if (x->fn != y->fn)
        return x->fn < y->fn ? -1 : 1;
    if ((x->callee != 0) != (y->callee != 0))
        return x->callee ? 1 : -1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->callee < y->callee ? -1 : x->callee > y->callee;
}

/* Text without newlines (callgrind is line-based), as valid UTF-8. */
static void cg_text(FILE *f, const char *s, size_t n)
{
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_sb_add_utf8(&sb, s, n);
    for (size_t i = 0; i < sb.len; i++)
        if (sb.buf[i] == '\n' || sb.buf[i] == '\r' || sb.buf[i] == '\0')
            sb.buf[i] = ' ';
    if (sb.len)
        fwrite(sb.buf, 1, sb.len, f);
    ps_sb_release(&sb);
}

/* "fl=(N) name" the first time, "fl=(N)" after (name compression). */
static void cg_name(FILE *f, const char *tag, uint32_t id, unsigned char *seen,
                    const struct ps_intern *in, uint32_t sid, const char *fallback)
{
    fprintf(f, "%s=(%u)", tag, id);
    if (!seen[id]) {
        seen[id] = 1;
        fputc(' ', f);
        const char *s = ps_intern_str_get(in, sid);
        if (s)
            cg_text(f, s, ps_intern_str_len(in, sid));
        else
            fputs(fallback, f);
    }
    fputc('\n', f);
}

int ps_callgrind_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;
    uint32_t nstacks = ps_intern_nstacks(in);
    struct cg c = {.in = in, .fns = ps_intern_new(), .keys = ps_intern_new()};
    uint64_t total = 0;
    uint32_t *fnbuf = NULL;
    uint32_t fncap = 0;
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        uint64_t n = p->counts[sid];
        if (!n)
            continue;
        uint32_t depth;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &depth);
        if (depth > fncap) {
            fncap = depth;
            fnbuf = ps_xrealloc(fnbuf, fncap * sizeof *fnbuf);
        }
        uint32_t m = 0;
        for (uint32_t i = 0; i < depth; i++)
            if (ps_frame_kind(in, fr[i]) != PS_KIND_ROOT)
                fnbuf[m++] = fr[i];
        total += n;
        if (!m)
            continue;
        uint32_t prev = 0;
        for (uint32_t i = 0; i < m; i++) {
            const struct ps_frame_key *k = ps_intern_frame_get(in, fnbuf[i]);
            uint32_t fn = cg_fn(&c, fnbuf[i], k->line);
            if (i && fn != prev) { /* direct recursion: no edge, inclusive stays right */
                const struct ps_frame_key *pk = ps_intern_frame_get(in, fnbuf[i - 1]);
                cg_add(&c, prev, pk->line > 0 ? pk->line : 0, fn, n, sid);
            }
            if (i == m - 1)
                cg_add(&c, fn, k->line > 0 ? k->line : 0, 0, n, sid);
            prev = fn;
        }
    }
    free(fnbuf);

    uint32_t nkeys = ps_intern_nframes(c.keys), nfns = ps_intern_nframes(c.fns);
    struct cg_cost *all = ps_xmalloc(((size_t)nkeys + 1) * sizeof *all);
    for (uint32_t i = 1; i <= nkeys; i++)
        all[i - 1] = c.cost[i];
    qsort(all, nkeys, sizeof *all, cg_cmp);

    fputs("# callgrind format\nversion: 1\ncreator: pysample " PS_VERSION "\n", f);
    const char *cmd = ps_meta_get(&p->meta, "command");
    const char *pid = ps_meta_get(&p->meta, "pid");
    if (cmd) {
        fputs("cmd: ", f);
        cg_text(f, cmd, strlen(cmd));
        fputc('\n', f);
    }
    if (pid)
        fprintf(f, "pid: %s\n", pid);
    double interval = p->interval_s > 0 ? p->interval_s : 0.01;
    fprintf(f, "desc: Interval: %.9g seconds per sample\n", interval);
    if (p->has_stats)
        fprintf(f, "desc: Statistics: rate %g Hz requested, %.6f s, %llu ticks, %llu late, %llu "
                   "dropped\n",
                p->stats.rate_hz, p->stats.duration_s, (unsigned long long)p->stats.ticks,
                (unsigned long long)p->stats.late_ticks,
                (unsigned long long)ps_stats_dropped_total(&p->stats));
    fputs("positions: line\nevents: Samples\n", f);
    fprintf(f, "summary: %llu\n\n", (unsigned long long)total);

    /* Files and functions share the local function ids: a file is named by its first function. */
    unsigned char *fl_seen = ps_xcalloc((size_t)nfns + 2, 1), *fn_seen = ps_xcalloc((size_t)nfns + 2, 1);
    uint32_t *file_id = ps_xcalloc((size_t)nfns + 1, sizeof *file_id);
    struct ps_intern *files = ps_intern_new();
    for (uint32_t fn = 1; fn <= nfns; fn++)
        file_id[fn] = ps_intern_frame(files, ps_intern_frame_get(c.fns, fn)->file, 0, 0);
    uint32_t cur = 0;
    for (uint32_t i = 0; i < nkeys; i++) {
        const struct cg_cost *e = &all[i];
        if (e->fn != cur) {
            cur = e->fn;
            const struct ps_frame_key *k = ps_intern_frame_get(c.fns, cur);
            fputc('\n', f);
            cg_name(f, "fl", file_id[cur], fl_seen, in, k->file, "???");
            cg_name(f, "fn", cur, fn_seen, in, k->name, "???");
        }
        if (!e->callee) {
            fprintf(f, "%d %llu\n", (int)e->line, (unsigned long long)e->samples);
            continue;
        }
        const struct ps_frame_key *ck = ps_intern_frame_get(c.fns, e->callee);
        cg_name(f, "cfl", file_id[e->callee], fl_seen, in, ck->file, "???");
        cg_name(f, "cfn", e->callee, fn_seen, in, ck->name, "???");
        fprintf(f, "calls=%llu %d\n", (unsigned long long)e->samples, (int)c.first_line[e->callee]);
        fprintf(f, "%d %llu\n", (int)e->line, (unsigned long long)e->samples);
    }
    fprintf(f, "\ntotals: %llu\n", (unsigned long long)total);

    ps_intern_free(files);
    free(file_id);
    free(fl_seen);
    free(fn_seen);
    free(all);
    free(c.cost);
    free(c.first_line);
    ps_intern_free(c.fns);
    ps_intern_free(c.keys);
    return ferror(f) ? PS_EIO : 0;
}
