/* fakepy.c — builds a synthetic CPython interpreter in a fake memory source from a layout table,
 * for the walker's unit tests (test_walk.c): runtime + debug offsets, interpreter, GIL, thread
 * states, frame chains, code objects, strings and line tables. Only helpers live here (no tests);
 * every value the walker reads is written through the layout, never through a fixed offset,
 * except the _Py_DebugOffsets block positions, which are transcribed from cpython-internals.md §7.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fakepy.h"
#include "ps_debugoff.h"
#include "ps_pytext.h"
#include "ps_util.h"

#define FP_HEAP_BASE 0x7f3a00000000ull
#define FP_CSTACK_BASE 0x7ffd40000000ull
#define FP_STATIC_BASE 0x000055d0c0000000ull /* "libpython data": runtime, statics, types */
#define FP_GAP 64                            /* unmapped bytes between regions */
#define FP_RUNTIME_BYTES 8192
#define FP_CHUNK_MIN 16384
#define FP_FRAME_LOCALS 2                    /* localsplus slots per frame */

/* ---- memory -------------------------------------------------------------------------------- */

static uint64_t fp_region(struct fp_world *w, uint64_t *cursor, size_t len)
{
    size_t l = (len + 15) & ~(size_t)15;
    uint64_t a = *cursor;
    ps_mem_fake_region(&w->py.mem, a, l);
    *cursor = (a + l + FP_GAP + 63) & ~63ull;
    return a;
}

uint64_t fp_alloc(struct fp_world *w, size_t len)
{
    return fp_region(w, &w->heap_next, len);
}

static void fp_write(struct fp_world *w, uint64_t addr, const void *p, size_t n)
{
    int rc = ps_mem_fake_write(&w->py.mem, addr, p, n);
    cr_assert_eq(rc, 0, "fakepy: write of %zu bytes at 0x%llx outside every region", n,
                 (unsigned long long)addr);
}

/* Writes a field of a struct at base; fields the layout does not have are skipped. */
static void fp_put64(struct fp_world *w, uint64_t base, int32_t off, uint64_t v)
{
    if (off >= 0)
        fp_write(w, base + (uint64_t)off, &v, 8);
}

static void fp_put32(struct fp_world *w, uint64_t base, int32_t off, uint32_t v)
{
    if (off >= 0)
        fp_write(w, base + (uint64_t)off, &v, 4);
}

static void fp_put8(struct fp_world *w, uint64_t base, int32_t off, uint8_t v)
{
    if (off >= 0)
        fp_write(w, base + (uint64_t)off, &v, 1);
}

static int fp_is_interp_frames(const struct fp_world *w)
{
    return w->lay.frame_model == PS_FRAMES_INTERP;
}

/* An object header: refcount 1 and a type. */
static uint64_t fp_object(struct fp_world *w, uint64_t *cursor, size_t len, uint64_t type)
{
    uint64_t a = fp_region(w, cursor, PS_MAX(len, (size_t)w->lay.ob_type + 8));
    uint64_t one = 1;
    fp_write(w, a, &one, 8);
    fp_put64(w, a, w->lay.ob_type, type);
    return a;
}

/* ---- strings ------------------------------------------------------------------------------- */

static size_t fp_utf8_decode(const char *s, uint32_t *cp, size_t cap, uint32_t *maxcp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    *maxcp = 0;
    while (*p) {
        uint32_t c;
        int extra;
        if (*p < 0x80) {
            c = *p;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            c = *p & 0x1f;
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            c = *p & 0x0f;
            extra = 2;
        } else {
            c = *p & 0x07;
            extra = 3;
        }
        p++;
        for (int k = 0; k < extra; k++) {
            cr_assert((*p & 0xc0) == 0x80, "fakepy: invalid UTF-8 in \"%s\"", s);
            c = (c << 6) | (*p++ & 0x3f);
        }
        cr_assert_lt(n, cap, "fakepy: string too long");
        cp[n++] = c;
        if (c > *maxcp)
            *maxcp = c;
    }
    return n;
}

uint64_t fp_str(struct fp_world *w, const char *utf8)
{
    const struct ps_py_offsets *o = &w->lay;
    if (o->str_model == PS_STR_BYTES27) {
        size_t len = strlen(utf8);
        uint64_t a = fp_object(w, &w->heap_next, (size_t)o->bytes_sval + len + 1, w->str_type);
        fp_put64(w, a, o->var_ob_size, len);
        fp_write(w, a + (uint64_t)o->bytes_sval, utf8, len + 1);
        return a;
    }
    static uint32_t cp[8192];
    uint32_t maxcp;
    size_t n = fp_utf8_decode(utf8, cp, PS_ARRAY_LEN(cp), &maxcp);
    int ascii = maxcp < 0x80;
    unsigned kind = maxcp < 0x100 ? 1 : maxcp < 0x10000 ? 2 : 4;
    size_t hdr = (size_t)(ascii ? o->str_ascii_size : o->str_compact_size);
    size_t len = PS_MAX(hdr + (n + 1) * kind, (size_t)o->str_compact_size);
    uint64_t a = fp_object(w, &w->heap_next, len, w->str_type);
    fp_put64(w, a, o->str_length, n);
    fp_put64(w, a, o->str_length + 8, (uint64_t)-1); /* hash not computed */
    uint32_t st = 1u /* interned */ | kind << o->str_kind_shift | 1u << o->str_compact_bit |
                  (uint32_t)ascii << o->str_ascii_bit;
    if (o->str_compact_size > 56) /* <= 3.11: the "ready" bit after ascii */
        st |= 1u << (o->str_ascii_bit + 1);
    fp_put32(w, a, o->str_state, st);
    uint8_t *data = calloc(n + 1, kind);
    for (size_t i = 0; i < n; i++)
        for (unsigned b = 0; b < kind; b++)
            data[i * kind + b] = (uint8_t)(cp[i] >> (8 * b));
    fp_write(w, a + hdr, data, (n + 1) * kind);
    free(data);
    return a;
}

uint64_t fp_bytes(struct fp_world *w, const void *data, size_t n)
{
    const struct ps_py_offsets *o = &w->lay;
    uint64_t a = fp_object(w, &w->heap_next, (size_t)o->bytes_sval + n + 1, w->bytes_type);
    fp_put64(w, a, o->var_ob_size, n);
    if (n)
        fp_write(w, a + (uint64_t)o->bytes_sval, data, n);
    return a;
}

/* ---- line tables --------------------------------------------------------------------------- */

struct fp_buf {
    uint8_t *p;
    size_t n, cap;
};

static void fp_emit(struct fp_buf *b, unsigned v)
{
    cr_assert_lt(b->n, b->cap, "fakepy: line table buffer too small");
    b->p[b->n++] = (uint8_t)v;
}

static void fp_varint(struct fp_buf *b, uint64_t v)
{
    while (v >= 64) {
        fp_emit(b, 64 | (v & 63));
        v >>= 6;
    }
    fp_emit(b, (unsigned)v);
}

static void fp_svarint(struct fp_buf *b, int64_t v)
{
    fp_varint(b, v < 0 ? ((uint64_t)(-v) << 1) | 1 : (uint64_t)v << 1);
}

int64_t fp_unit_offset(enum ps_line_format fmt, int unit)
{
    return fmt == PS_LINES_LOCATIONS ? unit : (int64_t)unit * 2;
}

/* co_lnotab pair (a, d) with d split into what a byte can hold. */
static void fp_lnotab_pair(struct fp_buf *b, enum ps_line_format fmt, unsigned a, int d)
{
    while (a > 255) {
        fp_emit(b, 255);
        fp_emit(b, 0);
        a -= 255;
    }
    if (fmt == PS_LINES_LNOTAB27) {
        cr_assert_geq(d, 0, "fakepy: 2.7 line tables cannot go backwards");
        while (d > 255) {
            fp_emit(b, a);
            fp_emit(b, 255);
            a = 0;
            d -= 255;
        }
    } else {
        while (d > 127 || d < -128) {
            int step = d > 0 ? 127 : -128;
            fp_emit(b, a);
            fp_emit(b, (unsigned)(uint8_t)(int8_t)step);
            a = 0;
            d -= step;
        }
    }
    if (a || d) {
        fp_emit(b, a);
        fp_emit(b, (unsigned)(uint8_t)(int8_t)d);
    }
}

size_t fp_linetable(enum ps_line_format fmt, int firstlineno, const int *lines, int nunits,
                    uint8_t *out, size_t cap)
{
    struct fp_buf b = {out, 0, cap};
    int cur = firstlineno;
    unsigned addr = 0; /* bytes, for the pair formats */
    int same_line_form = 0;
    for (int u = 0; u < nunits;) {
        int line = lines[u], run = 1;
        while (u + run < nunits && lines[u + run] == line)
            run++;
        switch (fmt) {
        case PS_LINES_LNOTAB27:
        case PS_LINES_LNOTAB:
            cr_assert_geq(line, 0, "fakepy: co_lnotab has no \"no line\" entries");
            fp_lnotab_pair(&b, fmt, (unsigned)u * 2 - addr, line - cur);
            addr = (unsigned)u * 2;
            cur = line;
            break;
        case PS_LINES_LINETABLE310: {
            unsigned bytes = (unsigned)run * 2;
            if (line < 0) {
                while (bytes) {
                    unsigned sd = PS_MIN(bytes, 254u);
                    fp_emit(&b, sd);
                    fp_emit(&b, 0x80); /* -128: no line */
                    bytes -= sd;
                }
                break;
            }
            int d = line - cur;
            cur = line;
            while (d > 127 || d < -127) {
                int step = d > 0 ? 127 : -127;
                fp_emit(&b, 0);
                fp_emit(&b, (unsigned)(uint8_t)(int8_t)step);
                d -= step;
            }
            unsigned sd = PS_MIN(bytes, 254u);
            fp_emit(&b, sd);
            fp_emit(&b, (unsigned)(uint8_t)(int8_t)d);
            bytes -= sd;
            while (bytes) {
                sd = PS_MIN(bytes, 254u);
                fp_emit(&b, sd);
                fp_emit(&b, 0);
                bytes -= sd;
            }
            break;
        }
        case PS_LINES_LOCATIONS:
            for (int left = run; left > 0;) {
                int len = PS_MIN(left, 8);
                left -= len;
                if (line < 0) {
                    fp_emit(&b, 0x80 | 15u << 3 | (unsigned)(len - 1)); /* no location */
                    continue;
                }
                int d = line - cur;
                cur = line;
                if (d == 0 && (same_line_form++ & 1) == 0) {
                    fp_emit(&b, 0x80 | 0u << 3 | (unsigned)(len - 1)); /* short form 0 */
                    fp_emit(&b, 0x25);                                /* column bits */
                } else if (d >= 0 && d <= 2) {
                    fp_emit(&b, 0x80 | (unsigned)(10 + d) << 3 | (unsigned)(len - 1)); /* one-line */
                    fp_emit(&b, 4);  /* column */
                    fp_emit(&b, 17); /* end column */
                } else if (d > 0) {
                    fp_emit(&b, 0x80 | 13u << 3 | (unsigned)(len - 1)); /* no columns */
                    fp_svarint(&b, d);
                } else {
                    fp_emit(&b, 0x80 | 14u << 3 | (unsigned)(len - 1)); /* long form */
                    fp_svarint(&b, d);
                    fp_varint(&b, 1);  /* end line delta */
                    fp_varint(&b, 9);  /* column + 1 */
                    fp_varint(&b, 70); /* end column + 1: a two-group varint */
                }
            }
            break;
        }
        u += run;
    }
    return b.n;
}

/* ---- code objects -------------------------------------------------------------------------- */

static void fp_code_fill(struct fp_world *w, uint64_t a, const struct fp_code_spec *s,
                         int new_version)
{
    const struct ps_py_offsets *o = &w->lay;
    uint8_t table[4096];
    size_t tl = fp_linetable(o->line_format, s->firstlineno, s->lines, s->nunits, table,
                             sizeof table);
    /* The encoder is checked against the decoder on every unit before anything relies on it. */
    for (int u = 0; u < s->nunits; u++) {
        int got = ps_line_for_offset(o->line_format, table, tl, s->firstlineno,
                                     fp_unit_offset(o->line_format, u));
        cr_assert_eq(got, s->lines[u], "fakepy: line table for %s: unit %d decodes to %d, not %d",
                     s->name, u, got, s->lines[u]);
    }
    fp_put64(w, a, o->co_filename, fp_str(w, s->file));
    fp_put64(w, a, o->co_name, fp_str(w, s->name));
    if (o->co_qualname >= 0)
        fp_put64(w, a, o->co_qualname, fp_str(w, s->qualname ? s->qualname : s->name));
    fp_put32(w, a, o->co_firstlineno, (uint32_t)s->firstlineno);
    fp_put64(w, a, o->co_linetable, fp_bytes(w, table, tl));
    if (o->co_code_adaptive >= 0) {
        fp_put64(w, a, o->var_ob_size, (uint64_t)s->nunits); /* Py_SIZE: code units */
    } else if (o->co_code >= 0) {
        uint8_t *zeros = calloc((size_t)s->nunits + 1, 2);
        fp_put64(w, a, o->co_code, fp_bytes(w, zeros, (size_t)s->nunits * 2));
        free(zeros);
    }
    if (o->co_version >= 0 && new_version) {
        fp_put32(w, a, o->co_version, ++w->next_co_version);
        if (w->code_counter)
            fp_put32(w, w->code_counter, 0, w->next_co_version + 1);
    }
}

void fp_set_code_counter(struct fp_world *w, uint32_t v)
{
    cr_assert_neq(w->code_counter, 0, "fakepy: no code counter in %d.%d", w->major, w->minor);
    fp_put32(w, w->code_counter, 0, v);
}

uint64_t fp_code(struct fp_world *w, const struct fp_code_spec *s)
{
    const struct ps_py_offsets *o = &w->lay;
    size_t len = (size_t)o->co_size;
    if (o->co_code_adaptive >= 0)
        len = PS_MAX(len, (size_t)o->co_code_adaptive + 2 * (size_t)s->nunits);
    uint64_t a = fp_object(w, &w->heap_next, len, w->code_type);
    fp_code_fill(w, a, s, 1);
    return a;
}

void fp_code_rewrite(struct fp_world *w, uint64_t addr, const struct fp_code_spec *s,
                     int new_version)
{
    fp_code_fill(w, addr, s, new_version);
}

uint64_t fp_not_code(struct fp_world *w)
{
    /* Big enough to pass for a code object if its type were not checked. */
    uint64_t a = fp_object(w, &w->heap_next, (size_t)w->lay.co_size + 64, w->none_type);
    return a;
}

/* ---- runtime and debug offsets ------------------------------------------------------------- */

struct fp_dbo {
    uint16_t pos;
    uint64_t v;
};

/* _Py_DebugOffsets for 3.13 (584 bytes), 3.14 (760 bytes) or 3.15 and newer (888 bytes), values
 * from the layout. Positions come from cpython-internals.md §7.1/§7.2 and, for 3.15, from
 * debug-offsets-3.14-vs-3.15.md (checked against Debian's 3.15.2 by test_debugoff.c); values
 * the walker never uses are plausible fillers. Free-threaded layouts carry the thread-local
 * bytecode fields (0 in default builds). */
static void fp_write_debug_offsets(struct fp_world *w)
{
    const struct ps_py_offsets *o = &w->lay;
    int is313 = w->minor == 13, is315 = w->minor >= 15;
    uint64_t G = (uint64_t)w->gil_off;
    uint64_t ft_gen = w->free_threaded ? (uint64_t)o->is_tlbc_generation : 0;
    uint64_t ft_idx = w->free_threaded ? (uint64_t)o->if_tlbc_index : 0;
    uint64_t ft_tlbc = w->free_threaded ? (uint64_t)o->co_tlbc : 0;
    uint64_t rt_size = o->rt_size > 0 ? (uint64_t)o->rt_size : 300000;
    uint64_t hdr = (uint64_t)o->ob_type + 8;
    struct fp_dbo v313[] = {
        {8, w->hexversion}, {16, (uint64_t)w->free_threaded},
        {24, rt_size}, {32, (uint64_t)o->rt_interp_head - 24}, {40, (uint64_t)o->rt_interp_head},
        {48, (uint64_t)o->is_size}, {56, (uint64_t)o->is_id}, {64, (uint64_t)o->is_next},
        {72, (uint64_t)o->is_tstate_head}, {80, (uint64_t)o->is_tstate_head + 56},
        {88, (uint64_t)o->is_modules}, {96, (uint64_t)o->is_modules - 16},
        {104, (uint64_t)o->is_modules - 8}, {112, (uint64_t)o->is_ceval_gil}, {120, G},
        {128, 0}, {136, G + (uint64_t)o->gil_locked}, {144, G + (uint64_t)o->gil_last_holder},
        {152, (uint64_t)o->ts_size}, {160, (uint64_t)o->ts_prev}, {168, (uint64_t)o->ts_next},
        {176, (uint64_t)o->ts_interp}, {184, (uint64_t)o->ts_frame},
        {192, (uint64_t)o->ts_thread_id}, {200, (uint64_t)o->ts_native_thread_id},
        {208, (uint64_t)o->ts_datastack_chunk}, {216, (uint64_t)o->ts_status},
        {224, (uint64_t)o->if_size}, {232, (uint64_t)o->if_previous}, {240, (uint64_t)o->if_code},
        {248, (uint64_t)o->if_instr}, {256, (uint64_t)o->if_localsplus},
        {264, (uint64_t)o->if_owner},
        {272, (uint64_t)o->co_size}, {280, (uint64_t)o->co_filename}, {288, (uint64_t)o->co_name},
        {296, (uint64_t)o->co_qualname}, {304, (uint64_t)o->co_linetable},
        {312, (uint64_t)o->co_firstlineno}, {320, 52}, {328, 96}, {336, 104},
        {344, (uint64_t)o->co_code_adaptive},
        {352, hdr}, {360, (uint64_t)o->ob_type},
        {368, 416}, {376, (uint64_t)o->type_tp_name}, {384, (uint64_t)o->type_tp_name + 64},
        {392, 168},
        {400, (uint64_t)o->tuple_ob_item + 8}, {408, (uint64_t)o->tuple_ob_item},
        {416, (uint64_t)o->var_ob_size},
        {424, hdr + 24}, {432, hdr + 8}, {440, (uint64_t)o->var_ob_size},
        {448, hdr + 32}, {456, hdr + 16}, {464, hdr + 24}, {472, hdr + 8}, {480, hdr},
        {488, hdr + 16}, {496, hdr}, {504, hdr + 8},
        {512, (uint64_t)o->bytes_sval + 8}, {520, (uint64_t)o->var_ob_size},
        {528, (uint64_t)o->bytes_sval},
        {536, (uint64_t)o->str_compact_size + 8}, {544, (uint64_t)o->str_state},
        {552, (uint64_t)o->str_length}, {560, (uint64_t)o->str_ascii_size},
        {568, 240}, {576, 200},
    };
    struct fp_dbo v314[] = {
        {8, w->hexversion}, {16, (uint64_t)w->free_threaded},
        {24, rt_size}, {32, (uint64_t)o->rt_interp_head - 24}, {40, (uint64_t)o->rt_interp_head},
        {48, (uint64_t)o->is_size}, {56, (uint64_t)o->is_id}, {64, (uint64_t)o->is_next},
        {72, (uint64_t)o->is_tstate_head}, {80, (uint64_t)o->is_tstate_head + 16},
        {88, (uint64_t)o->is_tstate_head + 64}, {96, (uint64_t)o->is_modules},
        {104, (uint64_t)o->is_modules - 16}, {112, (uint64_t)o->is_modules - 8},
        {120, (uint64_t)o->is_ceval_gil}, {128, G}, {136, 0},
        {144, G + (uint64_t)o->gil_locked}, {152, G + (uint64_t)o->gil_last_holder},
        {160, (uint64_t)o->is_code_generation}, {168, ft_gen},
        {176, (uint64_t)o->ts_size}, {184, (uint64_t)o->ts_prev}, {192, (uint64_t)o->ts_next},
        {200, (uint64_t)o->ts_interp}, {208, (uint64_t)o->ts_frame},
        {216, (uint64_t)o->ts_thread_id}, {224, (uint64_t)o->ts_native_thread_id},
        {232, (uint64_t)o->ts_datastack_chunk}, {240, (uint64_t)o->ts_status},
        {248, (uint64_t)o->if_size}, {256, (uint64_t)o->if_previous}, {264, (uint64_t)o->if_code},
        {272, (uint64_t)o->if_instr}, {280, (uint64_t)o->if_localsplus},
        {288, (uint64_t)o->if_owner}, {296, (uint64_t)o->if_instr + 8}, {304, ft_idx},
        {312, (uint64_t)o->co_size}, {320, (uint64_t)o->co_filename}, {328, (uint64_t)o->co_name},
        {336, (uint64_t)o->co_qualname}, {344, (uint64_t)o->co_linetable},
        {352, (uint64_t)o->co_firstlineno}, {360, 52}, {368, 96}, {376, 104},
        {384, (uint64_t)o->co_code_adaptive}, {392, ft_tlbc},
        {400, hdr}, {408, (uint64_t)o->ob_type},
        {416, 416}, {424, (uint64_t)o->type_tp_name}, {432, (uint64_t)o->type_tp_name + 64},
        {440, 168},
        {448, (uint64_t)o->tuple_ob_item + 8}, {456, (uint64_t)o->tuple_ob_item},
        {464, (uint64_t)o->var_ob_size},
        {472, hdr + 24}, {480, hdr + 8}, {488, (uint64_t)o->var_ob_size},
        {496, 0}, {504, 0}, {512, 0}, {520, 0},
        {528, hdr + 32}, {536, hdr + 16}, {544, hdr + 24}, {552, hdr + 8}, {560, hdr},
        {568, hdr + 16}, {576, hdr}, {584, hdr + 8},
        {592, (uint64_t)o->bytes_sval + 8}, {600, (uint64_t)o->var_ob_size},
        {608, (uint64_t)o->bytes_sval},
        {616, (uint64_t)o->str_compact_size + 8}, {624, (uint64_t)o->str_state},
        {632, (uint64_t)o->str_length}, {640, (uint64_t)o->str_ascii_size},
        {648, 0}, {656, 192},
        {664, 0}, {672, 0}, {680, 0}, {688, 0}, {696, 0}, {704, 0},
        {712, 24}, {720, 304}, {728, 8052}, {736, 0}, {744, 4}, {752, 512},
    };
    struct fp_dbo v315[] = {
        {8, w->hexversion}, {16, (uint64_t)w->free_threaded},
        {24, rt_size}, {32, (uint64_t)o->rt_interp_head - 24}, {40, (uint64_t)o->rt_interp_head},
        {48, (uint64_t)o->is_size}, {56, (uint64_t)o->is_id}, {64, (uint64_t)o->is_next},
        {72, (uint64_t)o->is_tstate_head}, {80, (uint64_t)o->is_tstate_head + 16},
        {88, (uint64_t)o->is_tstate_head + 64}, {96, (uint64_t)o->is_modules},
        {104, (uint64_t)o->is_modules - 16}, {112, (uint64_t)o->is_modules - 8},
        {120, (uint64_t)o->is_ceval_gil}, {128, G}, {136, 0},
        {144, G + (uint64_t)o->gil_locked}, {152, G + (uint64_t)o->gil_last_holder},
        {160, (uint64_t)o->is_code_generation}, {168, ft_gen},
        {176, (uint64_t)o->ts_size}, {184, (uint64_t)o->ts_prev}, {192, (uint64_t)o->ts_next},
        {200, (uint64_t)o->ts_interp}, {208, (uint64_t)o->ts_frame},
        {216, (uint64_t)o->ts_frame + 8}, {224, (uint64_t)o->ts_frame + 16},
        {232, (uint64_t)o->ts_frame + 24},
        {240, (uint64_t)o->ts_thread_id}, {248, (uint64_t)o->ts_native_thread_id},
        {256, (uint64_t)o->ts_datastack_chunk}, {264, (uint64_t)o->ts_status},
        {272, (uint64_t)o->ts_holds_gil}, {280, (uint64_t)o->ts_holds_gil + 4},
        {288, 136}, {296, 288}, {304, 0},
        {312, (uint64_t)o->if_size}, {320, (uint64_t)o->if_previous}, {328, (uint64_t)o->if_code},
        {336, (uint64_t)o->if_instr}, {344, (uint64_t)o->if_localsplus},
        {352, (uint64_t)o->if_owner}, {360, (uint64_t)o->if_instr + 8}, {368, ft_idx},
        {376, (uint64_t)o->co_size}, {384, (uint64_t)o->co_filename}, {392, (uint64_t)o->co_name},
        {400, (uint64_t)o->co_qualname}, {408, (uint64_t)o->co_linetable},
        {416, (uint64_t)o->co_firstlineno}, {424, 52}, {432, 96}, {440, 104},
        {448, (uint64_t)o->co_code_adaptive}, {456, ft_tlbc},
        {464, hdr}, {472, (uint64_t)o->ob_type},
        {480, 424}, {488, (uint64_t)o->type_tp_name}, {496, (uint64_t)o->type_tp_name + 64},
        {504, 168}, {512, 32}, {520, 288}, {528, 944}, {536, 888},
        {544, (uint64_t)o->tuple_ob_item + 8}, {552, (uint64_t)o->tuple_ob_item},
        {560, (uint64_t)o->var_ob_size},
        {568, hdr + 24}, {576, hdr + 8}, {584, (uint64_t)o->var_ob_size},
        {592, 0}, {600, 0}, {608, 0}, {616, 0},
        {624, hdr + 32}, {632, hdr + 16}, {640, hdr + 24}, {648, hdr + 8}, {656, hdr},
        {664, hdr + 16}, {672, hdr}, {680, hdr + 8},
        {688, (uint64_t)o->bytes_sval + 8}, {696, (uint64_t)o->var_ob_size},
        {704, (uint64_t)o->bytes_sval},
        {712, (uint64_t)o->str_compact_size + 8}, {720, (uint64_t)o->str_state},
        {728, (uint64_t)o->str_length}, {736, (uint64_t)o->str_ascii_size},
        {744, (uint64_t)o->str_compact_size},
        {752, 176}, {760, 112}, {768, 120}, {776, 1120}, {784, 104},
        {792, 0}, {800, 0}, {808, 0}, {816, 0}, {824, 0}, {832, 0},
        {840, 24}, {848, 344}, {856, 8028}, {864, 0}, {872, 4}, {880, 512},
    };
    const struct fp_dbo *v = is313 ? v313 : is315 ? v315 : v314;
    size_t n = is313 ? PS_ARRAY_LEN(v313) : is315 ? PS_ARRAY_LEN(v315) : PS_ARRAY_LEN(v314);
    size_t total = is313 ? 584 : is315 ? 888 : 760;
    cr_assert_eq(v[n - 1].pos + 8u, total, "fakepy: debug offsets table does not end at %zu",
                 total);
    for (size_t i = 0; i < n; i++) {
        cr_assert(i == 0 || v[i].pos == v[i - 1].pos + 8, "fakepy: debug offsets gap at %u",
                  v[i].pos);
        fp_put64(w, w->runtime, v[i].pos, v[i].v);
    }
    fp_write(w, w->runtime, PS_DEBUGOFF_COOKIE, 8);
}

/* ---- world --------------------------------------------------------------------------------- */

struct fp_world *fp_new_layout(const struct ps_py_offsets *lay, int major, int minor)
{
    struct fp_world *w = ps_xcalloc(1, sizeof *w);
    w->lay = *lay;
    w->major = major;
    w->minor = minor;
    w->hexversion = (uint64_t)major << 24 | (uint64_t)minor << 16 | 0xf0; /* X.Y.0 final */
    w->heap_next = FP_HEAP_BASE;
    w->cstack_next = FP_CSTACK_BASE;
    w->static_next = FP_STATIC_BASE;
    w->gil_holder = -1;
    w->free_threaded = !!(lay->flags & PS_PYF_FREE_THREADED);
    w->gil_enabled = 0; /* a free-threaded build runs without its GIL by default */
    w->tlbc_generation = 1;
    ps_mem_fake_init(&w->py.mem);
    const struct ps_py_offsets *o = &w->lay;

    /* Type objects (static data of libpython). */
    w->type_type = fp_region(w, &w->static_next, 416);
    fp_put64(w, w->type_type, o->ob_type, w->type_type);
    w->code_type = fp_object(w, &w->static_next, 416, w->type_type);
    w->none_type = fp_object(w, &w->static_next, 416, w->type_type);
    w->str_type = fp_object(w, &w->static_next, 416, w->type_type);
    w->bytes_type = fp_object(w, &w->static_next, 416, w->type_type);
    w->frame_type = fp_object(w, &w->static_next, 416, w->type_type);
    w->none = fp_object(w, &w->static_next, 16, w->none_type);

    /* Runtime, or the 2.7/3.6 statics. */
    if (o->flags & PS_PYF_INTERP_HEAD_SYM) {
        w->interp_head_sym = fp_region(w, &w->static_next, 8);
        w->tstate_current_sym = fp_region(w, &w->static_next, 8);
    } else {
        w->runtime = fp_region(w, &w->static_next, FP_RUNTIME_BYTES);
        cr_assert_lt(o->rt_interp_head, FP_RUNTIME_BYTES - 8);
        cr_assert_lt(o->rt_tstate_current, FP_RUNTIME_BYTES - 8);
    }

    /* The interpreter, with its GIL state embedded after every field the walker reads. */
    int32_t top = PS_MAX(PS_MAX(o->is_next, o->is_tstate_head + 16), PS_MAX(o->is_id, o->is_modules));
    top = PS_MAX(top, PS_MAX(o->is_ceval_gil, o->is_code_generation));
    top = PS_MAX(top, PS_MAX(o->is_code_counter, o->is_tlbc_generation));
    w->gil_off = (top + 64 + 63) & ~63;
    w->interp = fp_region(w, &w->static_next, (size_t)w->gil_off + 256);
    fp_put64(w, w->interp, o->is_id, 0);
    fp_put64(w, w->interp, o->is_ceval_gil, w->interp + (uint64_t)w->gil_off);
    fp_put64(w, w->interp, o->is_code_generation, w->generation);
    fp_put32(w, w->interp, o->is_tlbc_generation, w->tlbc_generation);
    /* The co_version counter: in the interpreter on 3.13, a global (_Py_next_func_version)
     * on 3.12. */
    if (o->is_code_counter > 0)
        w->code_counter = w->interp + (uint64_t)o->is_code_counter;
    else if (major == 3 && minor == 12 && o->co_version >= 0)
        w->code_counter = fp_region(w, &w->static_next, 8);
    if (w->code_counter)
        fp_put32(w, w->code_counter, 0, w->next_co_version + 1);

    /* 3.12's entry frames run a trampoline code object. */
    if (fp_is_interp_frames(w)) {
        static const int shim_lines[4] = {-1, -1, -1, -1};
        struct fp_code_spec shim = {"<shim>", "<shim>", "<shim>", 1, shim_lines, 4};
        w->shim_code = fp_code(w, &shim);
    }
    return w;
}

struct fp_world *fp_new(int major, int minor)
{
    const struct ps_py_offsets *lay = ps_pyoffsets_lookup(major, minor);
    cr_assert_not_null(lay, "no built-in layout for %d.%d", major, minor);
    return fp_new_layout(lay, major, minor);
}

struct fp_world *fp_new_ft(int major, int minor)
{
    const struct ps_py_offsets *lay = ps_pyoffsets_lookup_build(major, minor, 1);
    cr_assert_not_null(lay, "no built-in free-threaded layout for %d.%dt", major, minor);
    return fp_new_layout(lay, major, minor);
}

/* Free-threaded 3.14+: the start of thread-local bytecode copy idx of `code` (made on first use,
 * with the code's co_tlbc array: {size, entries[]}, entries[0] the code's own bytecode). */
static uint64_t fp_tlbc_copy(struct fp_world *w, uint64_t code, int idx)
{
    const struct ps_py_offsets *o = &w->lay;
    cr_assert_neq(o->co_tlbc, PS_OFF_NONE, "fakepy: no thread-local bytecode in this layout");
    cr_assert(idx > 0 && idx < FP_TLBC_MAX, "fakepy: tlbc index %d", idx);
    int k = 0;
    while (k < w->ntlbcs && w->tlbcs[k].code != code)
        k++;
    if (k == w->ntlbcs) {
        cr_assert_lt(w->ntlbcs, (int)PS_ARRAY_LEN(w->tlbcs));
        w->ntlbcs++;
        memset(&w->tlbcs[k], 0, sizeof w->tlbcs[k]);
        w->tlbcs[k].code = code;
        w->tlbcs[k].arr = fp_alloc(w, 8 + 8 * FP_TLBC_MAX);
        fp_put64(w, w->tlbcs[k].arr, 0, FP_TLBC_MAX);
        fp_put64(w, w->tlbcs[k].arr, 8, code + (uint64_t)o->co_code_adaptive);
        fp_put64(w, code, o->co_tlbc, w->tlbcs[k].arr);
    }
    if (!w->tlbcs[k].copy[idx]) {
        /* Far from the code object, as a per-thread copy is: an offset measured from the
         * code object's own bytecode lands nowhere near it. */
        w->tlbcs[k].copy[idx] = fp_alloc(w, 4096 + 1024 * 1024) + 1024 * 1024;
        fp_put64(w, w->tlbcs[k].arr, 8 + 8 * idx, w->tlbcs[k].copy[idx]);
    }
    return w->tlbcs[k].copy[idx];
}

void fp_free(struct fp_world *w)
{
    ps_py_detach(&w->py);
    free(w);
}

/* ---- threads and frames -------------------------------------------------------------------- */

static uint64_t fp_frame_code_word(struct fp_world *w, const struct fp_frame *f)
{
    if (f->kind == FP_ENTRY) {
        if (w->lay.flags & PS_PYF_TAGGED_CODE)
            return w->none | 1; /* PyStackRef_None: a tagged, immortal None */
        if (w->lay.flags & PS_PYF_DEBUG_OFFSETS)
            return w->none;     /* 3.13: f_executable = Py_None */
        return w->shim_code;    /* 3.12: the trampoline code object */
    }
    return f->code | f->tag;
}

static void fp_write_frame(struct fp_world *w, struct fp_thread *t, int i)
{
    const struct ps_py_offsets *o = &w->lay;
    const struct fp_frame *f = &t->spec[i];
    uint64_t a = t->frame_addr[i];
    uint64_t prev = i + 1 < t->nframes ? t->frame_addr[i + 1] : 0;
    if (!fp_is_interp_frames(w)) {
        fp_put64(w, a, o->fo_back, prev);
        fp_put64(w, a, o->fo_code, f->code);
        int32_t lasti = f->unit < 0 ? -1 : f->unit * 2 / o->fo_lasti_scale;
        fp_put32(w, a, o->fo_lasti, (uint32_t)lasti);
        fp_put32(w, a, o->fo_lineno, 9999); /* stale unless tracing: must not be used */
        return;
    }
    uint64_t code = fp_frame_code_word(w, f);
    fp_put64(w, a, o->if_code, code);
    fp_put64(w, a, o->if_previous, prev);
    uint64_t start = (f->code & ~(uint64_t)3) + (uint64_t)o->co_code_adaptive;
    if (f->tlbc && f->kind != FP_ENTRY)
        start = fp_tlbc_copy(w, f->code & ~(uint64_t)3, f->tlbc);
    fp_put32(w, a, o->if_tlbc_index, (uint32_t)(f->kind == FP_ENTRY ? 0 : f->tlbc));
    uint64_t instr = f->kind == FP_ENTRY ? (w->shim_code + (uint64_t)o->co_code_adaptive)
                                         : start + (uint64_t)((int64_t)f->unit * 2);
    fp_put64(w, a, o->if_instr, instr);
    uint8_t owner = f->kind == FP_ENTRY ? 3 : f->kind == FP_GEN ? 1 : 0;
    fp_put8(w, a, o->if_owner, owner);
    fp_put8(w, a, o->if_is_entry, i + 1 == t->nframes);
}

int fp_thread(struct fp_world *w, pid_t tid, const struct fp_frame *frames, int n, int split)
{
    const struct ps_py_offsets *o = &w->lay;
    cr_assert_lt(w->nthreads, FP_MAX_THREADS);
    cr_assert_leq(n, FP_MAX_FRAMES);
    int idx = w->nthreads++;
    struct fp_thread *t = &w->t[idx];
    memset(t, 0, sizeof *t);
    t->tid = tid;
    t->nframes = n;
    memcpy(t->spec, frames, sizeof(*frames) * (size_t)n);

    /* glibc's struct pthread: pthread_t is its address, the TID sits inside. */
    t->ident = fp_alloc(w, 1024);
    fp_put32(w, t->ident, FP_PTHREAD_TID_OFFSET, (uint32_t)tid);
    t->tstate = fp_alloc(w, (size_t)PS_MAX(o->ts_size, 64));
    fp_put64(w, t->tstate, o->ts_interp, w->interp);
    fp_put64(w, t->tstate, o->ts_thread_id, t->ident);
    fp_put64(w, t->tstate, o->ts_native_thread_id, (uint64_t)tid);

    if (!fp_is_interp_frames(w)) {
        for (int i = 0; i < n; i++) {
            cr_assert_neq(frames[i].kind, FP_ENTRY, "fakepy: no entry frames before 3.11");
            t->frame_addr[i] = fp_object(w, &w->heap_next, (size_t)o->fo_size + 256,
                                         w->frame_type);
        }
        for (int i = 0; i < n; i++)
            fp_write_frame(w, t, i);
        fp_put64(w, t->tstate, o->ts_frame, n ? t->frame_addr[0] : 0);
        return idx;
    }

    /* 3.11+: Python frames in data-stack chunks, outermost at the lowest address. */
    if (split <= 0 || split > n)
        split = n;
    size_t stride = (size_t)o->if_size + 8 * FP_FRAME_LOCALS;
    cr_assert_eq(stride % 8, 0);
    int ncur = 0, nold = 0;
    for (int i = 0; i < n; i++)
        if (frames[i].kind == FP_PY)
            *(i < split ? &ncur : &nold) += 1;
    t->split = split;
    size_t base = (size_t)o->chunk_data + 8; /* data[0] is reserved */
    size_t cur_bytes = PS_MAX((size_t)FP_CHUNK_MIN, base + stride * (size_t)ncur + 64);
    t->chunk = fp_alloc(w, cur_bytes);
    t->chunk_bytes = cur_bytes;
    fp_put64(w, t->chunk, o->chunk_size, cur_bytes);
    uint64_t cur_top = t->chunk + base;
    if (nold) {
        size_t old_bytes = PS_MAX((size_t)FP_CHUNK_MIN, base + stride * (size_t)nold + 64);
        t->old_chunk = fp_alloc(w, old_bytes);
        t->old_chunk_bytes = old_bytes;
        fp_put64(w, t->old_chunk, o->chunk_size, old_bytes);
        fp_put64(w, t->chunk, o->chunk_previous, t->old_chunk);
    }
    uint64_t old_top = t->old_chunk + base;
    uint64_t cs = fp_region(w, &w->cstack_next, 8192); /* this thread's C stack */
    uint64_t cs_next = cs + 8192;
    for (int i = n - 1; i >= 0; i--) {
        switch (frames[i].kind) {
        case FP_PY:
            if (i < split) {
                t->frame_addr[i] = cur_top;
                cur_top += stride;
            } else {
                t->frame_addr[i] = old_top;
                old_top += stride;
            }
            break;
        case FP_ENTRY:
            cr_assert_gt(o->if_owner_skip_min, 0, "fakepy: no entry frames in 3.11");
            cs_next -= 128; /* the C stack grows down: newer activations lower */
            cr_assert_geq(cs_next, cs + 128);
            t->frame_addr[i] = cs_next;
            break;
        case FP_GEN: {
            uint64_t gen = fp_object(w, &w->heap_next, 80 + stride, w->none_type);
            t->frame_addr[i] = gen + 80;
            break;
        }
        }
    }
    for (int i = 0; i < n; i++)
        fp_write_frame(w, t, i);
    if (nold)
        fp_put64(w, t->old_chunk, o->chunk_top, (old_top - (t->old_chunk + (uint64_t)o->chunk_data)) / 8);
    fp_put64(w, t->tstate, o->ts_datastack_chunk, t->chunk);
    fp_put64(w, t->tstate, o->ts_datastack_top, cur_top);
    fp_put64(w, t->tstate, o->ts_datastack_limit, t->chunk + cur_bytes);
    uint64_t leaf = n ? t->frame_addr[0] : 0;
    if (o->flags & PS_PYF_CFRAME) {
        t->cframe = cs + 16; /* the outermost activation's _PyCFrame */
        fp_put64(w, t->cframe, o->cf_current_frame, leaf);
        fp_put64(w, t->tstate, o->ts_cframe, t->cframe);
    } else {
        fp_put64(w, t->tstate, o->ts_frame, leaf);
    }
    return idx;
}

void fp_thread_unlink(struct fp_world *w, int i)
{
    cr_assert_lt(i, w->nthreads);
    w->t[i].tstate = 0; /* skipped by fp_relink; its memory stays mapped */
    fp_relink(w);
}

void fp_set_current(struct fp_world *w, int i, int f)
{
    const struct ps_py_offsets *o = &w->lay;
    struct fp_thread *t = &w->t[i];
    cr_assert(f < t->nframes && t->spec[f].kind == FP_PY, "fakepy: frame %d cannot be current",
              f);
    uint64_t leaf = t->frame_addr[f];
    if (!fp_is_interp_frames(w)) {
        fp_put64(w, t->tstate, o->ts_frame, leaf);
        return;
    }
    size_t stride = (size_t)o->if_size + 8 * FP_FRAME_LOCALS;
    int in_old = f >= t->split;
    uint64_t chunk = in_old ? t->old_chunk : t->chunk;
    size_t bytes = in_old ? t->old_chunk_bytes : t->chunk_bytes;
    fp_put64(w, t->tstate, o->ts_datastack_chunk, chunk);
    fp_put64(w, t->tstate, o->ts_datastack_top, leaf + stride);
    fp_put64(w, t->tstate, o->ts_datastack_limit, chunk + bytes);
    if (o->flags & PS_PYF_CFRAME)
        fp_put64(w, t->cframe, o->cf_current_frame, leaf);
    else
        fp_put64(w, t->tstate, o->ts_frame, leaf);
}

void fp_set_unit(struct fp_world *w, int i, int f, int unit)
{
    w->t[i].spec[f].unit = unit;
    fp_write_frame(w, &w->t[i], f);
}

void fp_set_tlbc(struct fp_world *w, int i, int f, int idx)
{
    w->t[i].spec[f].tlbc = idx;
    fp_write_frame(w, &w->t[i], f);
}

void fp_set_code(struct fp_world *w, int i, int f, uint64_t code, unsigned tag)
{
    w->t[i].spec[f].code = code;
    w->t[i].spec[f].tag = tag;
    fp_write_frame(w, &w->t[i], f);
}

void fp_set_previous(struct fp_world *w, int i, int f, uint64_t prev)
{
    const struct ps_py_offsets *o = &w->lay;
    uint64_t a = w->t[i].frame_addr[f];
    fp_put64(w, a, fp_is_interp_frames(w) ? o->if_previous : o->fo_back, prev);
}

void fp_bump_generation(struct fp_world *w)
{
    cr_assert_geq(w->lay.is_code_generation, 0, "fakepy: no code generation before 3.14");
    w->generation++;
    fp_put64(w, w->interp, w->lay.is_code_generation, w->generation);
}

static void fp_write_gil(struct fp_world *w)
{
    const struct ps_py_offsets *o = &w->lay;
    uint64_t holder = w->gil_holder >= 0 ? w->t[w->gil_holder].tstate : 0;
    uint64_t current = w->gil_locked ? holder : 0;
    switch (o->gil_model) {
    case PS_GIL_TSTATE_CURRENT_SYM:
        fp_put64(w, w->tstate_current_sym, 0, current);
        break;
    case PS_GIL_RUNTIME:
        fp_put64(w, w->runtime, o->rt_tstate_current, current);
        fp_put64(w, w->runtime, o->rt_gil_last_holder, holder);
        fp_put32(w, w->runtime, o->rt_gil_locked, (uint32_t)w->gil_locked);
        break;
    case PS_GIL_INTERP: {
        uint64_t gil = w->interp + (uint64_t)w->gil_off;
        fp_put64(w, gil, o->gil_last_holder, holder);
        fp_put32(w, gil, o->gil_locked, (uint32_t)w->gil_locked);
        fp_put32(w, gil, o->gil_enabled, (uint32_t)w->gil_enabled);
        break;
    }
    }
    /* The thread states' own flags (3.13 bit in _status, 3.14 int). */
    for (int i = 0; i < w->nthreads; i++) {
        if (!w->t[i].tstate)
            continue;
        int holds = w->gil_locked && i == w->gil_holder;
        if (o->flags & PS_PYF_HOLDS_GIL_BIT)
            fp_put32(w, w->t[i].tstate, o->ts_status, (uint32_t)holds << o->ts_holds_gil);
        else if (o->flags & PS_PYF_HOLDS_GIL_INT)
            fp_put32(w, w->t[i].tstate, o->ts_holds_gil, (uint32_t)holds);
    }
}

void fp_set_gil_enabled(struct fp_world *w, int enabled)
{
    cr_assert_neq(w->lay.gil_enabled, PS_OFF_NONE, "fakepy: only free-threaded GILs switch");
    w->gil_enabled = enabled;
    fp_write_gil(w);
}

void fp_set_attached(struct fp_world *w, int i, int attached)
{
    cr_assert_neq(w->lay.ts_state, PS_OFF_NONE, "fakepy: no thread state word before 3.13");
    fp_put32(w, w->t[i].tstate, w->lay.ts_state, (uint32_t)attached);
}

void fp_bump_tlbc_generation(struct fp_world *w)
{
    cr_assert_gt(w->lay.is_tlbc_generation, 0, "fakepy: no tlbc generation in this layout");
    w->tlbc_generation++;
    fp_put32(w, w->interp, w->lay.is_tlbc_generation, w->tlbc_generation);
}

void fp_set_gil(struct fp_world *w, int i, int locked)
{
    w->gil_holder = i;
    w->gil_locked = locked;
    fp_write_gil(w);
}

void fp_relink(struct fp_world *w)
{
    const struct ps_py_offsets *o = &w->lay;
    uint64_t prev = 0, head = 0;
    for (int i = 0; i < w->nthreads; i++) {
        struct fp_thread *t = &w->t[i];
        if (!t->tstate)
            continue;
        if (prev)
            fp_put64(w, prev, o->ts_next, t->tstate);
        else
            head = t->tstate;
        fp_put64(w, t->tstate, o->ts_prev, prev);
        fp_put64(w, t->tstate, o->ts_next, 0);
        prev = t->tstate;
    }
    fp_put64(w, w->interp, o->is_tstate_head, head);
    fp_put64(w, w->interp, o->is_next, 0);
    if (o->flags & PS_PYF_INTERP_HEAD_SYM) {
        fp_put64(w, w->interp_head_sym, 0, w->interp);
    } else {
        fp_put64(w, w->runtime, o->rt_interp_head, w->interp);
        fp_put64(w, w->runtime, o->rt_interp_main, w->interp);
    }
    fp_write_gil(w);
}

int fp_attach(struct fp_world *w)
{
    fp_relink(w);
    if (w->lay.flags & PS_PYF_DEBUG_OFFSETS)
        fp_write_debug_offsets(w);
    struct ps_py *py = &w->py;
    py->pid = 0; /* no /proc access anywhere */
    py->major = w->major;
    py->minor = w->minor;
    py->hexversion = (uint32_t)w->hexversion;
    py->runtime = w->runtime;
    py->interp_head_addr = w->interp_head_sym;
    py->tstate_current_addr = w->tstate_current_sym;
    py->code_type = w->code_type;
    py->code_counter_addr = w->lay.is_code_counter > 0 ? 0 : w->code_counter;
    /* Without a native TID (<= 3.10) the walker reads it from struct pthread at a known offset;
     * finding that offset needs /proc, so the fake tells it. */
    if (w->lay.ts_native_thread_id < 0)
        py->tid_offset = FP_PTHREAD_TID_OFFSET;
    int rc = ps_py_pick_layout(py);
    if (rc < 0)
        return rc;
    return ps_py_attach_fake(py);
}

const struct ps_py_thread *fp_snap_thread(const struct ps_py_snapshot *s, pid_t tid)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i].tid == tid)
            return &s->t[i];
    return NULL;
}
