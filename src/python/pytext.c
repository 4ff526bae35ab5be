/* pytext.c — pure decoders for bytes copied out of a CPython target: line tables (2.7 and
 * 3.6–3.9 co_lnotab, 3.10 co_linetable, 3.11+ location table) and strings (PEP 393 headers,
 * latin-1/UCS-2/UCS-4 data, 2.7 byte strings) to UTF-8. The code cache (code.c) calls these
 * after copying a code object's table and names; nothing here touches target memory.
 * Every loop is bounded by the input length; nothing allocates.
 */
#include <stdint.h>
#include <string.h>

#include "ps_pytext.h"
#include "ps_util.h"

/* ---- line tables ------------------------------------------------------------------------- */

/* Offsets at or past this are beyond any real code object: both the streaming lookup and the
 * decoded ranges treat them as "no line", so the two always agree. */
#define PS_LT_OFF_LIMIT ((uint64_t)UINT32_MAX)
/* End of the open last range of a co_lnotab table. */
#define PS_LT_INF UINT64_MAX
/* Running line numbers are kept in int64 and clamped here, so garbage tables cannot overflow. */
#define PS_LT_LINE_CLAMP ((int64_t)1 << 48)
/* A location-table varint longer than this many 6-bit groups is malformed (CPython writes at
 * most 6 for a 32-bit value). */
#define PS_LT_VARINT_GROUPS 6

/* One walk over a table, shared by ps_line_for_offset and ps_linetable_decode so that they
 * cannot disagree. Yields ranges [start, end) in table order; for co_lnotab the last range is
 * open-ended (end == PS_LT_INF). */
struct ps_lt_iter {
    enum ps_line_format fmt;
    const uint8_t *t;
    size_t len, pos;
    uint64_t addr;
    int64_t line;
    int done;
};

static void ps_lt_line_add(int64_t *line, int64_t d)
{
    int64_t v = *line + d; /* |*line| <= 2^48 and |d| < 2^37: no overflow */
    if (v > PS_LT_LINE_CLAMP)
        v = PS_LT_LINE_CLAMP;
    if (v < -PS_LT_LINE_CLAMP)
        v = -PS_LT_LINE_CLAMP;
    *line = v;
}

/* Lines outside int32's non-negative range only come from corrupt tables: report "no line". */
static int32_t ps_lt_line_out(int64_t v)
{
    return (v < 0 || v > INT32_MAX) ? -1 : (int32_t)v;
}

static int ps_lt_varint(struct ps_lt_iter *it, uint64_t *out)
{
    uint64_t v = 0;
    for (int g = 0; g < PS_LT_VARINT_GROUPS; g++) {
        if (it->pos >= it->len)
            return PS_EFORMAT;
        uint8_t b = it->t[it->pos++];
        v |= (uint64_t)(b & 63) << (6 * g);
        if (!(b & 64)) {
            *out = v;
            return 0;
        }
    }
    return PS_EFORMAT;
}

static int ps_lt_svarint(struct ps_lt_iter *it, int64_t *out)
{
    uint64_t v;
    int rc = ps_lt_varint(it, &v);
    if (rc < 0)
        return rc;
    *out = (v & 1) ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
    return 0;
}

/* co_lnotab: (addr_incr, line_incr) byte pairs; the line of [addr, addr + incr) is the line
 * before this pair's increment. A trailing odd byte is ignored (as CPython does). */
static int ps_lt_next_lnotab(struct ps_lt_iter *it, uint64_t *start, uint64_t *end, int64_t *line)
{
    while (it->pos + 1 < it->len) {
        uint8_t a = it->t[it->pos];
        uint8_t l = it->t[it->pos + 1];
        int64_t dl = it->fmt == PS_LINES_LNOTAB27 ? (int64_t)l : (int64_t)(int8_t)l;
        it->pos += 2;
        if (a == 0) {
            ps_lt_line_add(&it->line, dl);
            continue;
        }
        *start = it->addr;
        *end = it->addr + a;
        *line = it->line;
        it->addr += a;
        ps_lt_line_add(&it->line, dl);
        return 1;
    }
    if (it->done)
        return 0;
    it->done = 1;
    *start = it->addr;
    *end = PS_LT_INF;
    *line = it->line;
    return 1;
}

/* 3.10 co_linetable: (start_delta, line_delta) pairs. line_delta -128 means "no line" for that
 * range and leaves the running line alone; later deltas continue from it. */
static int ps_lt_next_310(struct ps_lt_iter *it, uint64_t *start, uint64_t *end, int64_t *line)
{
    if (it->pos + 1 >= it->len)
        return 0;
    uint8_t sd = it->t[it->pos];
    int8_t ld = (int8_t)it->t[it->pos + 1];
    it->pos += 2;
    *start = it->addr;
    it->addr += sd;
    *end = it->addr;
    if (ld == -128) {
        *line = -1;
    } else {
        ps_lt_line_add(&it->line, ld);
        *line = it->line;
    }
    return 1;
}

/* 3.11+ location table: one entry per run of code units; see cpython-internals.md §4.3(c). */
static int ps_lt_next_loc(struct ps_lt_iter *it, uint64_t *start, uint64_t *end, int64_t *line)
{
    if (it->pos >= it->len)
        return 0;
    uint8_t b = it->t[it->pos];
    if (!(b & 0x80))
        return PS_EFORMAT;
    it->pos++;
    int code = (b >> 3) & 15;
    unsigned length = (unsigned)(b & 7) + 1;
    int64_t cur, d;
    uint64_t skip;
    int rc;
    switch (code) {
    case 15: /* no location */
        cur = -1;
        break;
    case 14: /* long form: line delta, end-line delta, column + 1, end column + 1 */
        if ((rc = ps_lt_svarint(it, &d)) < 0)
            return rc;
        for (int k = 0; k < 3; k++)
            if ((rc = ps_lt_varint(it, &skip)) < 0)
                return rc;
        ps_lt_line_add(&it->line, d);
        cur = it->line;
        break;
    case 13: /* no columns */
        if ((rc = ps_lt_svarint(it, &d)) < 0)
            return rc;
        ps_lt_line_add(&it->line, d);
        cur = it->line;
        break;
    case 10:
    case 11:
    case 12: /* one-line forms: line delta 0..2, then column and end column bytes */
        if (it->len - it->pos < 2)
            return PS_EFORMAT;
        it->pos += 2;
        ps_lt_line_add(&it->line, code - 10);
        cur = it->line;
        break;
    default: /* short forms 0..9: same line, one column byte */
        if (it->len - it->pos < 1)
            return PS_EFORMAT;
        it->pos += 1;
        cur = it->line;
        break;
    }
    *start = it->addr;
    it->addr += length;
    *end = it->addr;
    *line = cur;
    return 1;
}

static int ps_lt_init(struct ps_lt_iter *it, enum ps_line_format fmt, const uint8_t *table,
                      size_t len, int firstlineno)
{
    if (fmt != PS_LINES_LNOTAB27 && fmt != PS_LINES_LNOTAB && fmt != PS_LINES_LINETABLE310 &&
        fmt != PS_LINES_LOCATIONS)
        return PS_EFORMAT;
    if (!table)
        len = 0;
    memset(it, 0, sizeof *it);
    it->fmt = fmt;
    it->t = table;
    it->len = len;
    it->line = firstlineno;
    return 0;
}

/* Returns 1 and a range, 0 at the end of the table, or PS_EFORMAT. */
static int ps_lt_next(struct ps_lt_iter *it, uint64_t *start, uint64_t *end, int64_t *line)
{
    switch (it->fmt) {
    case PS_LINES_LNOTAB27:
    case PS_LINES_LNOTAB:
        return ps_lt_next_lnotab(it, start, end, line);
    case PS_LINES_LINETABLE310:
        return ps_lt_next_310(it, start, end, line);
    case PS_LINES_LOCATIONS:
        return ps_lt_next_loc(it, start, end, line);
    }
    return PS_EFORMAT;
}

int ps_line_for_offset(enum ps_line_format fmt, const uint8_t *table, size_t len,
                       int firstlineno, int64_t offset)
{
    if (offset < 0)
        return firstlineno;
    if ((uint64_t)offset >= PS_LT_OFF_LIMIT)
        return -1;
    struct ps_lt_iter it;
    if (ps_lt_init(&it, fmt, table, len, firstlineno) < 0)
        return -1;
    uint64_t off = (uint64_t)offset, s, e;
    int64_t line;
    /* Best effort on malformed tables: offsets covered before the damage get their line. */
    while (ps_lt_next(&it, &s, &e, &line) == 1) {
        if (s > off)
            break;
        if (off < e)
            return ps_lt_line_out(line);
    }
    return -1;
}

int ps_linetable_decode(enum ps_line_format fmt, const uint8_t *table, size_t len,
                        int firstlineno, struct ps_line_range *out, int max)
{
    struct ps_lt_iter it;
    int rc = ps_lt_init(&it, fmt, table, len, firstlineno);
    if (rc < 0)
        return rc;
    if (max < 0 || (!out && max > 0))
        return PS_ERANGE;
    /* Tables are pairs in every format but the location table: an odd length is a bad copy. */
    if (fmt != PS_LINES_LOCATIONS && (it.len & 1))
        return PS_EFORMAT;
    int n = 0;
    uint64_t s, e;
    int64_t line;
    while ((rc = ps_lt_next(&it, &s, &e, &line)) == 1) {
        if (s >= PS_LT_OFF_LIMIT)
            return PS_EFORMAT; /* table too large to describe with 32-bit offsets */
        if (e == PS_LT_INF)
            e = PS_LT_OFF_LIMIT;
        else if (e > PS_LT_OFF_LIMIT)
            return PS_EFORMAT;
        if (s == e)
            continue;
        int32_t l = ps_lt_line_out(line);
        if (n > 0 && out[n - 1].end == s && out[n - 1].line == l) {
            out[n - 1].end = (uint32_t)e;
            continue;
        }
        if (n >= max)
            return PS_ERANGE;
        out[n].start = (uint32_t)s;
        out[n].end = (uint32_t)e;
        out[n].line = l;
        n++;
    }
    return rc < 0 ? rc : n;
}

int ps_linetable_lookup(const struct ps_line_range *r, int n, int firstlineno, int64_t offset)
{
    if (offset < 0)
        return firstlineno;
    if (!r || n <= 0 || (uint64_t)offset >= PS_LT_OFF_LIMIT)
        return -1;
    uint32_t off = (uint32_t)offset;
    /* Last range with start <= off. */
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (r[mid].start <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct ps_line_range *x = &r[lo - 1];
    return off < x->end ? x->line : -1;
}

/* ---- strings ----------------------------------------------------------------------------- */

#define PS_REPLACEMENT 0xfffdu

static size_t ps_utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t ps_utf8_put(char *o, uint32_t cp)
{
    unsigned char *u = (unsigned char *)o;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    u[0] = (unsigned char)(0xf0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Names end up in C strings and text formats: NUL, surrogates and values past U+10FFFF are
 * written as U+FFFD. */
static uint32_t ps_cp_clean(uint32_t cp)
{
    if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return PS_REPLACEMENT;
    return cp;
}

/* A source of code points: either fixed-width PEP 393 data or (possibly broken) UTF-8. */
struct ps_cp_src {
    const uint8_t *p;
    size_t n;    /* code points (kind data) or bytes (UTF-8) */
    int kind;    /* 1, 2, 4, or 0 for UTF-8 */
};

/* Decodes one code point at *i and advances *i; UTF-8 errors consume the maximal invalid
 * subpart (at least one byte) and give U+FFFD. */
static uint32_t ps_cp_next(const struct ps_cp_src *s, size_t *i)
{
    const uint8_t *p = s->p;
    size_t k = *i;
    switch (s->kind) {
    case 1:
        *i = k + 1;
        return ps_cp_clean(p[k]);
    case 2:
        *i = k + 1;
        return ps_cp_clean((uint32_t)p[2 * k] | (uint32_t)p[2 * k + 1] << 8);
    case 4:
        *i = k + 1;
        return ps_cp_clean((uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 |
                           (uint32_t)p[4 * k + 2] << 16 | (uint32_t)p[4 * k + 3] << 24);
    }
    uint32_t c = p[k];
    if (c < 0x80) {
        *i = k + 1;
        return ps_cp_clean(c);
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
    } else {
        *i = k + 1;
        return PS_REPLACEMENT;
    }
    k++;
    for (size_t j = 0; j < need; j++, k++) {
        uint8_t b = 0;
        int ok = k < s->n;
        if (ok) {
            b = p[k];
            ok = j == 0 ? (b >= lo && b <= hi) : (b & 0xc0) == 0x80;
        }
        if (!ok) {
            *i = k; /* the bytes consumed so far form the invalid subpart */
            return PS_REPLACEMENT;
        }
        cp = (cp << 6) | (b & 0x3f);
    }
    *i = k;
    return cp;
}

/* Writes the whole string if it fits in outsz - 1 bytes; otherwise as many whole characters as
 * fit before "..." (or as many dots as fit when outsz < 5). */
static int ps_utf8_emit(const struct ps_cp_src *s, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return PS_ERANGE;
    size_t budget = PS_MIN(outsz - 1, (size_t)INT32_MAX), total = 0, i = 0;
    int fits = 1;
    while (i < s->n) {
        total += ps_utf8_len(ps_cp_next(s, &i));
        if (total > budget) {
            fits = 0;
            break;
        }
    }
    size_t dots = fits ? 0 : PS_MIN(budget, (size_t)3);
    size_t room = budget - dots, w = 0;
    i = 0;
    while (i < s->n) {
        size_t j = i;
        uint32_t cp = ps_cp_next(s, &j);
        if (w + ps_utf8_len(cp) > room)
            break;
        w += ps_utf8_put(out + w, cp);
        i = j;
    }
    memset(out + w, '.', dots);
    w += dots;
    out[w] = '\0';
    return (int)w;
}

int ps_utf8_from_kind(int kind, const void *data, size_t n, char *out, size_t outsz)
{
    if (out && outsz)
        out[0] = '\0';
    if (kind != 1 && kind != 2 && kind != 4)
        return PS_EFORMAT;
    if (n > SIZE_MAX / 4 || (!data && n))
        return PS_EFORMAT;
    struct ps_cp_src s = {data, n, kind};
    return ps_utf8_emit(&s, out, outsz);
}

int ps_utf8_sanitize(const uint8_t *data, size_t n, char *out, size_t outsz)
{
    if (out && outsz)
        out[0] = '\0';
    if (!data && n)
        return PS_EFORMAT;
    struct ps_cp_src s = {data, n, 0};
    return ps_utf8_emit(&s, out, outsz);
}

static uint64_t ps_le_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static uint32_t ps_le_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Is [off, off + n) inside a header of hdrlen bytes? */
static int ps_hdr_has(int32_t off, size_t n, size_t hdrlen)
{
    return off >= 0 && (size_t)off <= hdrlen && hdrlen - (size_t)off >= n;
}

int ps_str_header(const struct ps_py_offsets *o, const uint8_t *hdr, size_t hdrlen, size_t max_len,
                  int *kind, size_t *length, int64_t *data_off, uint64_t *data_ptr)
{
    if (!o || !hdr || !ps_hdr_has(o->str_state, 4, hdrlen) ||
        !ps_hdr_has(o->str_length, 8, hdrlen))
        return PS_ECORRUPT;
    if (o->str_kind_shift < 0 || o->str_kind_shift > 29 || o->str_compact_bit < 0 ||
        o->str_compact_bit > 31 || o->str_ascii_bit < 0 || o->str_ascii_bit > 31)
        return PS_ECORRUPT;
    uint32_t st = ps_le_u32(hdr + o->str_state);
    int k = (int)((st >> o->str_kind_shift) & 7);
    int compact = (int)((st >> o->str_compact_bit) & 1);
    int ascii = (int)((st >> o->str_ascii_bit) & 1);
    int64_t n = (int64_t)ps_le_u64(hdr + o->str_length);
    /* kind 0 is a legacy string that was never made ready (<= 3.11). */
    if (k != 1 && k != 2 && k != 4)
        return PS_ECORRUPT;
    if (ascii && k != 1)
        return PS_ECORRUPT;
    if (n < 0 || (uint64_t)n > max_len)
        return PS_ECORRUPT;
    int64_t off = -1;
    uint64_t ptr = 0;
    if (compact) {
        off = ascii ? o->str_ascii_size : o->str_compact_size;
        if (off <= 0)
            return PS_ECORRUPT;
    } else {
        if (!ps_hdr_has(o->str_data, 8, hdrlen))
            return PS_ECORRUPT;
        ptr = ps_le_u64(hdr + o->str_data);
        if (!ptr)
            return PS_ECORRUPT;
    }
    if (kind)
        *kind = k;
    if (length)
        *length = (size_t)n;
    if (data_off)
        *data_off = off;
    if (data_ptr)
        *data_ptr = ptr;
    return 0;
}
