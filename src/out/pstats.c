/* pstats.c — the file profile/cProfile's dump_stats() writes: a marshal'ed dict that
 * pstats.Stats(FILE) loads (snakeviz, gprof2dot, tuna read it too), built from samples.
 *
 * Only marshal types every CPython since 2.7 reads are used ('{', '(', 'i', 'l', 'g', 'u').
 * A writer of out/ (registry in output.c); reads only the finished profile (core/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

static void ms_i32(struct ps_strbuf *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    unsigned char x[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    ps_sb_add(b, x, 4);
}

static void ms_int(struct ps_strbuf *b, uint64_t v)
{
    if (v <= INT32_MAX) {
        ps_sb_addc(b, 'i');
        ms_i32(b, (int32_t)v);
        return;
    }
    /* 'l': a count of 15-bit digits, then the digits, least significant first. */
    unsigned char d[10];
    int n = 0;
    for (uint64_t x = v; x; x >>= 15) {
        d[2 * n] = (unsigned char)(x & 0xff);
        d[2 * n + 1] = (unsigned char)((x >> 8) & 0x7f);
        n++;
    }
    ps_sb_addc(b, 'l');
    ms_i32(b, n);
    ps_sb_add(b, d, (size_t)n * 2);
}

static void ms_float(struct ps_strbuf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(u >> (8 * i));
    ps_sb_addc(b, 'g');
    ps_sb_add(b, x, 8);
}

static void ms_str(struct ps_strbuf *b, const char *s, size_t n)
{
    struct ps_strbuf u;
    ps_sb_init(&u);
    ps_sb_add_utf8(&u, s, n);
    ps_sb_addc(b, 'u');
    ms_i32(b, (int32_t)u.len);
    if (u.len)
        ps_sb_add(b, u.buf, u.len);
    ps_sb_release(&u);
}

static void ms_tuple(struct ps_strbuf *b, int n)
{
    ps_sb_addc(b, '(');
    ms_i32(b, n);
}

struct pst_fn {
    uint64_t nc, self;
    int32_t line;       /* smallest line seen */
    uint32_t stamp;
};

struct pst_edge {
    uint32_t caller, callee;
    uint64_t nc, self;
    uint32_t stamp;
};

static int pst_edge_cmp(const void *a, const void *b)
{
    const struct pst_edge *x = a, *y = b;
    if (x->callee != y->callee)
        return x->callee < y->callee ? -1 : 1;
    return x->caller < y->caller ? -1 : x->caller > y->caller;
}

#define PST_GROW(arr, cap, id)                                                    \
    do {                                                                          \
        if ((id) >= (cap)) {                                                      \
            uint32_t nc_ = (cap) ? (cap) * 2 : 256;                               \
            while (nc_ <= (id))                                                   \
                nc_ *= 2;                                                         \
            (arr) = ps_xrealloc((arr), nc_ * sizeof *(arr));                      \
            memset((arr) + (cap), 0, (nc_ - (cap)) * sizeof *(arr));              \
            (cap) = nc_;                                                          \
        }                                                                         \
    } while (0)

/* (file, line, name) as pstats keys functions; "~" for code without a file, as cProfile. */
static void pst_key(struct ps_strbuf *b, const struct ps_intern *in, const struct ps_frame_key *k,
                    int32_t line)
{
    ms_tuple(b, 3);
    const char *file = ps_intern_str_get(in, k->file);
    if (file)
        ms_str(b, file, ps_intern_str_len(in, k->file));
    else
        ms_str(b, "~", 1);
    ms_int(b, (uint64_t)(line > 0 ? line : 0));
    const char *name = ps_intern_str_get(in, k->name);
    ms_str(b, name ? name : "", name ? ps_intern_str_len(in, k->name) : 0);
}

int ps_pstats_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;
    uint32_t nstacks = ps_intern_nstacks(in);
    struct ps_intern *fns = ps_intern_new(), *edges = ps_intern_new();
    struct pst_fn *fn = NULL;
    struct pst_edge *ed = NULL;
    uint32_t fn_cap = 0, ed_cap = 0;
    uint32_t *chain = NULL, chain_cap = 0;

    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        uint64_t n = p->counts[sid];
        if (!n)
            continue;
        uint32_t depth;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &depth);
        if (depth > chain_cap) {
            chain_cap = depth;
            chain = ps_xrealloc(chain, chain_cap * sizeof *chain);
        }
        uint32_t m = 0;
        for (uint32_t i = 0; i < depth; i++) {
            if (ps_frame_kind(in, fr[i]) == PS_KIND_ROOT)
                continue;
            const struct ps_frame_key *k = ps_intern_frame_get(in, fr[i]);
            uint32_t id = ps_intern_frame(fns, k->name, k->file, 0);
            PST_GROW(fn, fn_cap, id);
            if (k->line > 0 && (!fn[id].line || k->line < fn[id].line))
                fn[id].line = k->line;
            if (fn[id].stamp != sid) {
                fn[id].stamp = sid;
                fn[id].nc += n;
            }
            chain[m++] = id;
        }
        if (!m)
            continue;
        fn[chain[m - 1]].self += n;
        for (uint32_t i = 1; i < m; i++) {
            uint32_t e = ps_intern_frame(edges, chain[i - 1], chain[i], 0);
            PST_GROW(ed, ed_cap, e);
            ed[e].caller = chain[i - 1];
            ed[e].callee = chain[i];
            if (ed[e].stamp != sid) {
                ed[e].stamp = sid;
                ed[e].nc += n;
            }
            if (i == m - 1)
                ed[e].self += n;
        }
    }
    free(chain);

    double interval = p->interval_s > 0 ? p->interval_s : 0.01;
    uint32_t nfns = ps_intern_nframes(fns), nedges = ps_intern_nframes(edges);
    struct pst_edge *sorted = ps_xmalloc(((size_t)nedges + 1) * sizeof *sorted);
    for (uint32_t i = 1; i <= nedges; i++)
        sorted[i - 1] = ed[i];
    qsort(sorted, nedges, sizeof *sorted, pst_edge_cmp);

    struct ps_strbuf b;
    ps_sb_init(&b);
    ps_sb_addc(&b, '{');
    uint32_t e = 0;
    for (uint32_t id = 1; id <= nfns; id++) {
        const struct ps_frame_key *k = ps_intern_frame_get(fns, id);
        pst_key(&b, in, k, fn[id].line);
        ms_tuple(&b, 5);
        ms_int(&b, fn[id].nc);
        ms_int(&b, fn[id].nc);
        ms_float(&b, (double)fn[id].self * interval);
        ms_float(&b, (double)fn[id].nc * interval);
        ps_sb_addc(&b, '{');
        while (e < nedges && sorted[e].callee < id)
            e++;
        for (; e < nedges && sorted[e].callee == id; e++) {
            const struct pst_edge *x = &sorted[e];
            pst_key(&b, in, ps_intern_frame_get(fns, x->caller), fn[x->caller].line);
            ms_tuple(&b, 4);
            ms_int(&b, x->nc);
            ms_int(&b, x->nc);
            ms_float(&b, (double)x->self * interval);
            ms_float(&b, (double)x->nc * interval);
        }
        ps_sb_addc(&b, '0');
        if (b.len > (1u << 20)) {
            fwrite(b.buf, 1, b.len, f);
            ps_sb_reset(&b);
        }
    }
    ps_sb_addc(&b, '0');
    fwrite(b.buf, 1, b.len, f);

    ps_sb_release(&b);
    free(sorted);
    free(fn);
    free(ed);
    ps_intern_free(fns);
    ps_intern_free(edges);
    return ferror(f) ? PS_EIO : 0;
}
