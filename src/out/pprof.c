/* pprof.c — profile.proto (the format of `go tool pprof`, Pyroscope and Parca), encoded by
 * hand and gzip'ed with zlib: functions, locations with lines, one sample per stack with
 * samples/count and cpu/nanoseconds values, thread and process roots as labels.
 *
 * A writer of out/ (registry in output.c); reads only the finished profile (core/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ps_output.h"
#include "ps_util.h"

#ifndef PS_VERSION
#define PS_VERSION "unknown"
#endif

/* ---- protobuf wire format ---------------------------------------------------------------- */

static void pb_varint(struct ps_strbuf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    ps_sb_add(b, tmp, n);
}

/* A varint field (wire type 0); zero values are left out as proto3 does. */
static void pb_uint(struct ps_strbuf *b, unsigned field, uint64_t v)
{
    if (!v)
        return;
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

/* A length-delimited field (wire type 2). */
static void pb_bytes(struct ps_strbuf *b, unsigned field, const void *data, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    ps_sb_add(b, data, n);
}

/* ---- string table: a local interner gives dense ids = indices (0 is "") ------------------ */

struct pb_strings {
    struct ps_intern *in;
    uint32_t n;          /* highest index handed out */
};

static int64_t pb_str(struct pb_strings *st, const char *s, size_t len)
{
    if (!len)
        return 0;
    uint32_t id = ps_intern_str(st->in, s, len);
    if (id > st->n)
        st->n = id;
    return id;
}

static int64_t pb_cstr(struct pb_strings *st, const char *s)
{
    return pb_str(st, s, strlen(s));
}

/* A profile text as valid UTF-8 (protobuf strings must be). */
static int64_t pb_istr(struct pb_strings *st, const struct ps_intern *in, uint32_t sid,
                       struct ps_strbuf *tmp)
{
    const char *s = ps_intern_str_get(in, sid);
    if (!s)
        return 0;
    ps_sb_reset(tmp);
    ps_sb_add_utf8(tmp, s, ps_intern_str_len(in, sid));
    return pb_str(st, tmp->buf, tmp->len);
}

static void pb_value_type(struct ps_strbuf *b, unsigned field, int64_t type, int64_t unit)
{
    struct ps_strbuf m;
    ps_sb_init(&m);
    pb_uint(&m, 1, (uint64_t)type);
    pb_uint(&m, 2, (uint64_t)unit);
    pb_bytes(b, field, m.buf ? m.buf : "", m.len);
    ps_sb_release(&m);
}

static void pb_label(struct ps_strbuf *b, int64_t key, int64_t str)
{
    struct ps_strbuf m;
    ps_sb_init(&m);
    pb_uint(&m, 1, (uint64_t)key);
    pb_uint(&m, 2, (uint64_t)str);
    pb_bytes(b, 3, m.buf, m.len);
    ps_sb_release(&m);
}

/* Gzip of buf to f. 0 or PS_EIO. */
static int pb_gzip(FILE *f, const void *buf, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return PS_EIO;
    unsigned char out[65536];
    const unsigned char *in = buf;
    size_t left = len;
    int rc = 0, zr;
    do {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        z.next_in = (Bytef *)in;
        z.avail_in = chunk;
        in += chunk;
        left -= chunk;
        int flush = left ? Z_NO_FLUSH : Z_FINISH;
        do {
            z.next_out = out;
            z.avail_out = sizeof out;
            zr = deflate(&z, flush);
            if (zr == Z_STREAM_ERROR) {
                rc = PS_EIO;
                break;
            }
            size_t have = sizeof out - z.avail_out;
            if (have && fwrite(out, 1, have, f) != have)
                rc = PS_EIO;
        } while (z.avail_out == 0 && !rc);
    } while (left && !rc);
    deflateEnd(&z);
    return rc;
}

int ps_pprof_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;
    uint32_t nframes = ps_intern_nframes(in), nstacks = ps_intern_nstacks(in);
    struct pb_strings st = {ps_intern_new(), 0};
    struct ps_strbuf b, m, tmp;
    ps_sb_init(&b);
    ps_sb_init(&m);
    ps_sb_init(&tmp);
    double interval = p->interval_s > 0 ? p->interval_s : 0.01;
    int64_t period_ns = (int64_t)(interval * 1e9 + 0.5);

    int64_t s_samples = pb_cstr(&st, "samples"), s_count = pb_cstr(&st, "count");
    int64_t s_cpu = pb_cstr(&st, "cpu"), s_ns = pb_cstr(&st, "nanoseconds");
    int64_t s_thread = pb_cstr(&st, "thread"), s_process = pb_cstr(&st, "process");
    pb_value_type(&b, 1, s_samples, s_count);
    pb_value_type(&b, 1, s_cpu, s_ns);

    /* Samples: locations leaf first; roots become labels. */
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        ps_sb_reset(&m);
        struct ps_strbuf locs;
        ps_sb_init(&locs);
        for (uint32_t i = n; i-- > 0;)
            if (ps_frame_kind(in, fr[i]) != PS_KIND_ROOT)
                pb_varint(&locs, fr[i]);
        if (locs.len)
            pb_bytes(&m, 1, locs.buf, locs.len);
        ps_sb_release(&locs);
        struct ps_strbuf vals;
        ps_sb_init(&vals);
        pb_varint(&vals, p->counts[sid]);
        pb_varint(&vals, (uint64_t)((double)p->counts[sid] * (double)period_ns));
        pb_bytes(&m, 2, vals.buf, vals.len);
        ps_sb_release(&vals);
        for (uint32_t i = 0; i < n; i++) {
            enum ps_root r = ps_frame_root(in, fr[i]);
            if (r == PS_ROOT_NONE)
                continue;
            int64_t v = pb_istr(&st, in, ps_intern_frame_get(in, fr[i])->name, &tmp);
            pb_label(&m, r == PS_ROOT_THREAD ? s_thread : s_process, v);
        }
        pb_bytes(&b, 2, m.buf, m.len);
    }

    /* One mapping for everything, named by the target's executable (the command's first
     * word), saying that functions, files and lines are resolved. */
    const char *cmd = ps_meta_get(&p->meta, "command");
    ps_sb_reset(&m);
    pb_uint(&m, 1, 1);
    pb_uint(&m, 3, (uint64_t)nframes + 1);
    ps_sb_reset(&tmp);
    size_t exe_len = cmd ? strcspn(cmd, " ") : 0;
    ps_sb_add_utf8(&tmp, exe_len ? cmd : "python", exe_len ? exe_len : 6);
    pb_uint(&m, 5, (uint64_t)pb_str(&st, tmp.buf, tmp.len));
    pb_uint(&m, 7, 1);
    pb_uint(&m, 8, 1);
    pb_uint(&m, 9, 1);
    pb_bytes(&b, 3, m.buf, m.len);

    /* Functions per (name, file), numbered by a local interner; start line = smallest seen. */
    struct ps_intern *fns = ps_intern_new();
    uint32_t *fn_of = ps_xcalloc((size_t)nframes + 1, sizeof *fn_of);
    int32_t *start = ps_xcalloc((size_t)nframes + 1, sizeof *start);
    for (uint32_t id = 1; id <= nframes; id++) {
        if (ps_frame_kind(in, id) == PS_KIND_ROOT)
            continue;
        const struct ps_frame_key *k = ps_intern_frame_get(in, id);
        fn_of[id] = ps_intern_frame(fns, k->name, k->file, 0);
        int32_t *s0 = &start[fn_of[id]];
        if (k->line > 0 && (!*s0 || k->line < *s0))
            *s0 = k->line;
    }
    for (uint32_t id = 1; id <= nframes; id++) {
        if (!fn_of[id])
            continue;
        const struct ps_frame_key *k = ps_intern_frame_get(in, id);
        ps_sb_reset(&m);
        pb_uint(&m, 1, id);
        pb_uint(&m, 2, 1);
        pb_uint(&m, 3, id);
        struct ps_strbuf line;
        ps_sb_init(&line);
        pb_uint(&line, 1, fn_of[id]);
        pb_uint(&line, 2, (uint64_t)(k->line > 0 ? k->line : 0));
        pb_bytes(&m, 4, line.buf ? line.buf : "", line.len);
        ps_sb_release(&line);
        pb_bytes(&b, 4, m.buf, m.len);
    }
    uint32_t nfns = ps_intern_nframes(fns);
    for (uint32_t fid = 1; fid <= nfns; fid++) {
        const struct ps_frame_key *k = ps_intern_frame_get(fns, fid);
        ps_sb_reset(&m);
        pb_uint(&m, 1, fid);
        int64_t name = pb_istr(&st, in, k->name, &tmp);
        pb_uint(&m, 2, (uint64_t)name);
        pb_uint(&m, 3, (uint64_t)name);
        pb_uint(&m, 4, (uint64_t)pb_istr(&st, in, k->file, &tmp));
        pb_uint(&m, 5, (uint64_t)start[fid]);
        pb_bytes(&b, 5, m.buf, m.len);
    }
    ps_intern_free(fns);
    free(fn_of);
    free(start);

    /* Comments: where the profile came from and pysample's statistics. */
    int64_t comments[8];
    int nc = 0;
    ps_sb_reset(&tmp);
    ps_sb_printf(&tmp, "pysample %s", PS_VERSION);
    comments[nc++] = pb_str(&st, tmp.buf, tmp.len);
    for (int i = 0; i < p->meta.n && nc < 4; i++) {
        if (strcmp(p->meta.key[i], "command") && strcmp(p->meta.key[i], "python") &&
            strcmp(p->meta.key[i], "pid"))
            continue;
        ps_sb_reset(&tmp);
        ps_sb_printf(&tmp, "%s: ", p->meta.key[i]);
        ps_sb_add_utf8(&tmp, p->meta.val[i], strlen(p->meta.val[i]));
        comments[nc++] = pb_str(&st, tmp.buf, tmp.len);
    }
    if (p->has_stats) {
        const struct ps_stats *s = &p->stats;
        ps_sb_reset(&tmp);
        ps_sb_printf(&tmp, "rate: %g Hz requested; ticks: %llu, late: %llu; dropped: %llu",
                     s->rate_hz, (unsigned long long)s->ticks, (unsigned long long)s->late_ticks,
                     (unsigned long long)ps_stats_dropped_total(s));
        comments[nc++] = pb_str(&st, tmp.buf, tmp.len);
    }

    /* The string table, then the scalar fields. */
    uint32_t nstr = st.n;
    pb_bytes(&b, 6, "", 0);
    for (uint32_t i = 1; i <= nstr; i++)
        pb_bytes(&b, 6, ps_intern_str_get(st.in, i), ps_intern_str_len(st.in, i));
    const char *start_ns = ps_meta_get(&p->meta, "start_ns");
    if (start_ns)
        pb_uint(&b, 9, strtoull(start_ns, NULL, 10));
    double dur = p->has_stats && p->stats.duration_s > 0 ? p->stats.duration_s
                                                          : (double)p->total * interval;
    pb_uint(&b, 10, (uint64_t)(dur * 1e9 + 0.5));
    pb_value_type(&b, 11, s_cpu, s_ns);
    pb_uint(&b, 12, (uint64_t)period_ns);
    for (int i = 0; i < nc; i++)
        pb_uint(&b, 13, (uint64_t)comments[i]);

    int rc = pb_gzip(f, b.buf, b.len);
    ps_intern_free(st.in);
    ps_sb_release(&b);
    ps_sb_release(&m);
    ps_sb_release(&tmp);
    return rc || ferror(f) ? PS_EIO : 0;
}
