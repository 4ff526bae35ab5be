/* fuzz_walk.c — libFuzzer target for the frame walker and everything it decodes from a target
 * (python/walk.c, code.c, pytext.c, debug_offsets.c, threadnames.c): a synthetic interpreter is
 * laid out in a fake memory source by tests/unit/fakepy.c for the layout the first byte picks,
 * then the input overwrites chosen objects (thread states, frames, data-stack chunks, code
 * objects, strings, line tables, the interpreter, _PyRuntime / _Py_DebugOffsets, pthread blocks)
 * with its own bytes or with pointers into other objects, and makes threads exit or return,
 * between repeated ps_py_sample() calls. Nothing may crash, read out of bounds, run unbounded
 * or leak, and every snapshot must stay within its documented limits.
 *
 * Input: byte 0 = layout (2.7, 3.6, 3.9, 3.10, 3.11, 3.12, 3.13, 3.14), byte 1 = flags (bit 0:
 * re-read the layout after the first changes, so that corrupted _Py_DebugOffsets are parsed;
 * bit 1: the gaps between objects read as zeros, as a real heap would),
 * then operations of 5+ bytes: KIND|PHASE, CLASS, INDEX, OFFSET (u16 LE), payload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_mem.h"
#include "ps_python.h"

/* fakepy.c reports misuse through Criterion's assertions; here misuse is a bug in this target,
 * so the assertions abort. Defining Criterion's include guard keeps its header out. */
#define CRITERION_H_
#define FZ_CR(cond)                                                                               \
    do {                                                                                          \
        if (!(cond))                                                                              \
            abort();                                                                              \
    } while (0)
#define FZ_CR2(op, a, b, ...) FZ_CR((a)op(b))
#define FZ_FIRST(a, ...) (a)
#define cr_assert(...) FZ_CR(FZ_FIRST(__VA_ARGS__, 0))
#define cr_assert_eq(...) FZ_CR2(==, __VA_ARGS__, 0)
#define cr_assert_neq(...) FZ_CR2(!=, __VA_ARGS__, 0)
#define cr_assert_lt(...) FZ_CR2(<, __VA_ARGS__, 0)
#define cr_assert_leq(...) FZ_CR2(<=, __VA_ARGS__, 0)
#define cr_assert_gt(...) FZ_CR2(>, __VA_ARGS__, 0)
#define cr_assert_geq(...) FZ_CR2(>=, __VA_ARGS__, 0)
#define cr_assert_not_null(...) FZ_CR(FZ_FIRST(__VA_ARGS__, 0) != NULL)
/* Every region fakepy lays out is recorded, for the "mapped heap" memory model below. */
static void *fz_region_hook(struct ps_mem *m, uint64_t addr, size_t len);
#define ps_mem_fake_region fz_region_hook
#include "../unit/fakepy.c"
#undef ps_mem_fake_region

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond)                                                                            \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_walk: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

#define FZ_SAMPLES 4
#define FZ_MAX_OBJS 96
#define FZ_DEEP 40

enum fz_class {
    FZ_TSTATE,
    FZ_FRAME,
    FZ_CHUNK,
    FZ_CODE,
    FZ_STR,
    FZ_TABLE,
    FZ_INTERP,
    FZ_RUNTIME,
    FZ_PTHREAD,
    FZ__NCLASS
};

struct fz_obj {
    uint64_t addr;
    uint32_t len;
};

struct fz_reg {
    struct fz_obj v[FZ__NCLASS][FZ_MAX_OBJS];
    int n[FZ__NCLASS];
};

static void fz_add(struct fz_reg *r, enum fz_class c, uint64_t addr, size_t len)
{
    if (!addr || !len || r->n[c] >= FZ_MAX_OBJS)
        return;
    for (int i = 0; i < r->n[c]; i++)
        if (r->v[c][i].addr == addr)
            return;
    r->v[c][r->n[c]++] = (struct fz_obj){addr, (uint32_t)len};
}

/* Registers the strings and line table a code object points at. */
static void fz_add_code(struct fz_reg *r, struct fp_world *w, uint64_t code)
{
    const struct ps_py_offsets *o = &w->lay;
    fz_add(r, FZ_CODE, code, (size_t)o->co_size);
    int32_t strs[] = {o->co_name, o->co_filename, o->co_qualname};
    size_t slen = o->str_model == PS_STR_BYTES27 ? (size_t)o->bytes_sval + 8
                                                 : (size_t)o->str_compact_size + 8;
    for (size_t i = 0; i < PS_ARRAY_LEN(strs); i++) {
        uint64_t p = 0;
        if (strs[i] >= 0 && ps_mem_read_u64(&w->py.mem, code + (uint64_t)strs[i], &p) == 0)
            fz_add(r, FZ_STR, p, slen);
    }
    uint64_t t = 0;
    if (ps_mem_read_u64(&w->py.mem, code + (uint64_t)o->co_linetable, &t) == 0)
        fz_add(r, FZ_TABLE, t, (size_t)o->bytes_sval + 16);
}

static void fz_lines(int *l, int first, enum ps_line_format fmt)
{
    for (int u = 0; u < 16; u++) {
        if (u == 0)
            l[u] = first;
        else if (u < 6)
            l[u] = first + 1;
        else if (u < 9)
            l[u] = fmt == PS_LINES_LINETABLE310 || fmt == PS_LINES_LOCATIONS ? -1 : first + 2;
        else if (u < 12)
            l[u] = fmt == PS_LINES_LNOTAB27 ? first + 3 : first + 2;
        else
            l[u] = first + 4;
    }
}

/* The world: three threads (a short stack with entry frames, a deep one over two chunks with a
 * generator frame, a one-frame thread), five code objects, one with a long name. */
static struct fp_world *fz_build(int major, int minor, struct fz_reg *r, uint64_t *codes)
{
    struct fp_world *w = fp_new(major, minor);
    const struct ps_py_offsets *o = &w->lay;
    int interp = o->frame_model == PS_FRAMES_INTERP;
    int entries = o->if_owner_skip_min > 0;
    unsigned tag = (o->flags & PS_PYF_TAGGED_CODE) ? 1 : 0;
    static int lines[5][16];
    static char longname[1400];
    if (!longname[0]) {
        memset(longname, 'n', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
    }
    const char *names[5] = {"run", "\xc3\xbcnicode_func", "<module>", "stage", longname};
    const char *files[5] = {"/srv/app/worker.py", "/srv/app/\xd0\xbc.py", "/srv/app/main.py",
                            "/srv/app/pipe.py", "/srv/app/long.py"};
    for (int i = 0; i < 5; i++) {
        fz_lines(lines[i], 10 + 100 * i, o->line_format);
        struct fp_code_spec c = {names[i], NULL, files[i], 10 + 100 * i, lines[i], 16};
        codes[i] = fp_code(w, &c);
    }

    struct fp_frame fa[5];
    int na = 0;
    fa[na++] = (struct fp_frame){codes[0], 5, FP_PY, tag};
    fa[na++] = (struct fp_frame){codes[1], 11, FP_PY, 0};
    if (entries)
        fa[na++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    fa[na++] = (struct fp_frame){codes[2], 2, FP_PY, 0};
    if (entries)
        fa[na++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    fp_thread(w, 4243, fa, na, 0);

    struct fp_frame fb[FZ_DEEP];
    for (int i = 0; i < FZ_DEEP; i++)
        fb[i] = (struct fp_frame){codes[3 + (i % 2)], i % 16, FP_PY, i % 3 == 0 ? tag : 0};
    if (interp)
        fb[3].kind = FP_GEN;
    fp_thread(w, 4244, fb, FZ_DEEP, interp ? FZ_DEEP / 2 : 0);

    struct fp_frame fc[1] = {{codes[0], 0, FP_PY, 0}};
    fp_thread(w, 4245, fc, 1, 0);
    fp_set_gil(w, 1, 1);

    for (int i = 0; i < 5; i++)
        fz_add_code(r, w, codes[i]);
    fz_add_code(r, w, w->shim_code ? w->shim_code : codes[0]);
    size_t flen = (size_t)(interp ? o->if_size : o->fo_size);
    for (int t = 0; t < w->nthreads; t++) {
        struct fp_thread *th = &w->t[t];
        fz_add(r, FZ_TSTATE, th->tstate, (size_t)PS_MAX(o->ts_size, 64));
        fz_add(r, FZ_PTHREAD, th->ident, 1024);
        fz_add(r, FZ_CHUNK, th->chunk, th->chunk_bytes);
        fz_add(r, FZ_CHUNK, th->old_chunk, th->old_chunk_bytes);
        for (int f = 0; f < th->nframes; f++)
            fz_add(r, FZ_FRAME, th->frame_addr[f], flen);
        if (th->cframe)
            fz_add(r, FZ_FRAME, th->cframe, 64);
    }
    fz_add(r, FZ_INTERP, w->interp, (size_t)w->gil_off + 256);
    if (w->runtime)
        fz_add(r, FZ_RUNTIME, w->runtime, 1024);
    fz_add(r, FZ_RUNTIME, w->interp_head_sym, 8);
    fz_add(r, FZ_RUNTIME, w->tstate_current_sym, 8);
    return w;
}

/* ---- memory models ---------------------------------------------------------------------- */

/* fakepy leaves unmapped gaps around every object, so an oversized read (a struct size taken
 * from corrupt debug offsets, say) fails there, while in a real process the heap around an
 * object is usually mapped and the same read succeeds. With input flag bit 1 the gaps inside
 * the heap, static and C-stack areas read as zeros, so such reads go through and any copy
 * larger than its buffer shows up. */
#define FZ_MAX_REGIONS 4096
static struct fz_region {
    uint64_t addr;
    size_t len;
    uint8_t *bytes;
} fz_regions[FZ_MAX_REGIONS];
static int fz_nregions;
static const struct ps_mem_ops *fz_fake_ops;
static struct fp_world *fz_world;

static void *fz_region_hook(struct ps_mem *m, uint64_t addr, size_t len)
{
    void *p = ps_mem_fake_region(m, addr, len);
    if (fz_nregions < FZ_MAX_REGIONS)
        fz_regions[fz_nregions++] = (struct fz_region){addr, len, p};
    return p;
}

static int fz_in_area(uint64_t a, uint64_t base, uint64_t next, uint64_t slack)
{
    return a >= base && a - base < next - base + slack;
}

static int fz_mapped_read(struct ps_mem *m, uint64_t addr, void *buf, size_t len)
{
    m->remote_reads++;
    uint8_t *out = buf;
    const struct fp_world *w = fz_world;
    while (len) {
        const struct fz_region *hit = NULL;
        uint64_t next_start = UINT64_MAX;
        for (int i = 0; i < fz_nregions; i++) {
            const struct fz_region *r = &fz_regions[i];
            if (addr >= r->addr && addr - r->addr < r->len)
                hit = r;
            else if (r->addr > addr && r->addr < next_start)
                next_start = r->addr;
        }
        size_t n;
        if (hit) {
            n = PS_MIN(len, hit->len - (size_t)(addr - hit->addr));
            memcpy(out, hit->bytes + (addr - hit->addr), n);
        } else if (fz_in_area(addr, FP_HEAP_BASE, w->heap_next, 2u << 20) ||
                   fz_in_area(addr, FP_STATIC_BASE, w->static_next, 1u << 16) ||
                   fz_in_area(addr, FP_CSTACK_BASE, w->cstack_next, 1u << 16)) {
            n = (size_t)PS_MIN((uint64_t)len, next_start - addr);
            memset(out, 0, n);
        } else {
            return PS_EFAULT;
        }
        out += n;
        addr += n;
        len -= n;
        if (len && addr == 0)
            return PS_EFAULT; /* wrapped around */
    }
    return 0;
}

static int fz_mapped_readv(struct ps_mem *m, const struct ps_iov *iov, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = fz_mapped_read(m, iov[i].addr, iov[i].buf, iov[i].len);
        m->remote_reads--;
        if (rc < 0)
            return rc;
    }
    m->remote_reads++;
    return 0;
}

static void fz_mapped_close(struct ps_mem *m)
{
    fz_fake_ops->close(m);
}

static const struct ps_mem_ops fz_mapped_ops = {fz_mapped_read, fz_mapped_readv, fz_mapped_close};

/* Writes n bytes at obj+off, shortened to what fits inside the fake region. */
static void fz_write(struct fp_world *w, const struct fz_obj *obj, uint32_t off, const void *p,
                     size_t n)
{
    off %= obj->len;
    if (n > obj->len - off)
        n = obj->len - off;
    while (n && ps_mem_fake_write(&w->py.mem, obj->addr + off, p, n) < 0)
        n /= 2;
}

struct fz_in {
    const uint8_t *p;
    size_t n;
};

static int fz_take(struct fz_in *in, void *out, size_t n)
{
    if (in->n < n)
        return 0;
    memcpy(out, in->p, n);
    in->p += n;
    in->n -= n;
    return 1;
}

/* Applies the operations of one phase; returns 1 when the runtime block was written. */
static int fz_apply(struct fp_world *w, const struct fz_reg *r, const uint64_t *codes,
                    const uint8_t *data, size_t size, int phase)
{
    struct fz_in in = {data, size};
    int touched_runtime = 0;
    uint8_t head[5];
    while (fz_take(&in, head, sizeof head)) {
        int kind = head[0] & 3, op_phase = (head[0] >> 2) % FZ_SAMPLES;
        int cls = head[1] % FZ__NCLASS;
        uint32_t off = (uint32_t)head[3] | (uint32_t)head[4] << 8;
        uint8_t payload[64];
        size_t plen = 0;
        uint8_t b[3];
        switch (kind) {
        case 0: /* raw bytes: a length byte, then the bytes */
            if (!fz_take(&in, b, 1))
                return touched_runtime;
            plen = (size_t)(b[0] % 32) + 1;
            if (!fz_take(&in, payload, plen))
                return touched_runtime;
            break;
        case 1: /* a pointer into another object: class, index, signed delta in words */
            if (!fz_take(&in, b, 3))
                return touched_runtime;
            plen = 8;
            break;
        case 2: /* a 32-bit value */
            plen = 4;
            if (!fz_take(&in, payload, plen))
                return touched_runtime;
            break;
        case 3: /* an event the target itself causes */
            if (!fz_take(&in, b, 2))
                return touched_runtime;
            break;
        }
        if (op_phase != phase)
            continue;
        if (kind == 3) {
            int t = b[0] % w->nthreads;
            struct fp_thread *th = &w->t[t];
            switch (head[1] % 5) {
            case 0: /* the thread exits */
                if (th->tstate)
                    fp_thread_unlink(w, t);
                break;
            case 1: { /* the thread returns to an outer Python frame */
                int f = b[1] % th->nframes;
                if (th->tstate && th->spec[f].kind == FP_PY)
                    fp_set_current(w, t, f);
                break;
            }
            case 2: /* a frame moves to another instruction */
                fp_set_unit(w, t, b[1] % th->nframes, (int)(head[3] % 17) - 1);
                break;
            case 3: /* 3.14+: code objects were freed or created */
                if (w->lay.is_code_generation >= 0)
                    fp_bump_generation(w);
                break;
            case 4: { /* a code object is replaced at the same address */
                static int lines[16];
                fz_lines(lines, 7, w->lay.line_format);
                struct fp_code_spec c = {"replaced", "Replaced.q", "/srv/new.py", 7, lines, 16};
                fp_code_rewrite(w, codes[b[1] % 5], &c, head[3] & 1);
                break;
            }
            }
            continue;
        }
        if (!r->n[cls])
            continue;
        const struct fz_obj *obj = &r->v[cls][head[2] % r->n[cls]];
        if (kind == 1) {
            int tc = b[0] % FZ__NCLASS;
            uint64_t target = 0;
            if (r->n[tc])
                target = r->v[tc][b[1] % r->n[tc]].addr + (uint64_t)((int64_t)(int8_t)b[2] * 8);
            memcpy(payload, &target, 8);
        }
        fz_write(w, obj, off, payload, plen);
        if (cls == FZ_RUNTIME)
            touched_runtime = 1;
    }
    return touched_runtime;
}

static void fz_check_snapshot(struct fp_world *w, struct ps_py_snapshot *s)
{
    FZ_CHECK(s->n >= 0 && s->n <= PS_PY_MAX_THREADS);
    for (int i = 0; i < s->n; i++) {
        const struct ps_py_thread *t = &s->t[i];
        FZ_CHECK(t->nframes >= 0 && t->nframes <= PS_PY_MAX_DEPTH);
        FZ_CHECK(t->err <= 0);
        for (int f = 0; f < t->nframes; f++) {
            const struct ps_code *c = t->frames[f].code;
            FZ_CHECK(c != NULL && c->name != NULL && c->file != NULL);
            FZ_CHECK(strlen(c->name) < 8192 && strlen(c->file) < 32768);
            (void)ps_py_short_filename(&w->py, c->file);
        }
    }
    if (s->n > 0) {
        char name[64];
        ps_py_thread_name(&w->py, &s->t[0], name, sizeof name);
        FZ_CHECK(strlen(name) < sizeof name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int versions[8][2] = {{2, 7},  {3, 6},  {3, 9},  {3, 10},
                                       {3, 11}, {3, 12}, {3, 13}, {3, 14}};
    if (size < 2)
        return 0;
    int v = data[0] % 8, flags = data[1];
    data += 2;
    size -= 2;
    struct fz_reg *r = calloc(1, sizeof *r);
    uint64_t codes[5];
    fz_nregions = 0;
    struct fp_world *w = fz_build(versions[v][0], versions[v][1], r, codes);
    if (fp_attach(w) < 0)
        abort(); /* the untouched world must attach */
    if (flags & 2) {
        fz_world = w;
        fz_fake_ops = w->py.mem.ops;
        w->py.mem.ops = &fz_mapped_ops;
    }
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    int ok = 1;
    for (int k = 0; k < FZ_SAMPLES && ok; k++) {
        int rt = fz_apply(w, r, codes, data, size, k);
        if (k == 0 && rt && (flags & 1)) {
            /* The layout is read from the target once, at attach: do it again over the
             * corrupted _PyRuntime (3.13+: _Py_DebugOffsets). */
            ps_err_clear();
            ok = ps_py_pick_layout(&w->py) == 0 && ps_py_attach_fake(&w->py) == 0;
            if (!ok)
                break;
        }
        int rc = ps_py_sample(&w->py, &snap);
        FZ_CHECK(rc <= 0);
        if (rc == 0)
            fz_check_snapshot(w, &snap);
    }
    ps_py_snapshot_release(&snap);
    fp_free(w);
    free(r);
    return 0;
}
