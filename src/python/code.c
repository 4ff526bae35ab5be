/* code.c — code objects of the target, read once and cached by address: qualified name, file
 * name, first line and the decoded line table, plus the key that proves the cached entry
 * still describes the object at that address (co_version on 3.12/3.13, the filename/name
 * pointers before; 3.14+ clears the cache when the interpreter's code generation moves).
 * Free-threaded 3.14+ threads run private copies of the bytecode (co_tlbc): where each copy
 * starts is cached per code object, so instruction pointers map back to the line table.
 *
 * Called by walk.c; the slow path (a miss) costs a handful of reads, a hit costs none.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_code_cache.h"
#include "ps_util.h"

#define PS_NAME_MAX 1024
#define PS_FILE_MAX 4096
#define PS_LINETABLE_MAX (1u << 20)

void ps_code_cache_init(struct ps_code_cache *c)
{
    c->cap = 1024;
    c->n = 0;
    c->v = ps_xcalloc(c->cap, sizeof(struct ps_code *));
}

static void ps_code_entry_free(struct ps_code *e)
{
    free(e->tlbc);
    free(e->name);
    free(e->file);
    free(e->lines);
    free(e);
}

void ps_code_cache_clear(struct ps_code_cache *c)
{
    for (uint32_t i = 0; i < c->cap; i++) {
        if (c->v[i])
            ps_code_entry_free(c->v[i]);
        c->v[i] = NULL;
    }
    c->n = 0;
    c->generation++;
}

void ps_code_cache_release(struct ps_code_cache *c)
{
    ps_code_cache_clear(c);
    free(c->v);
    c->v = NULL;
    c->cap = 0;
}

static uint32_t ps_code_hash(uint64_t addr)
{
    addr ^= addr >> 33;
    addr *= 0xff51afd7ed558ccdull;
    addr ^= addr >> 33;
    return (uint32_t)addr;
}

static uint32_t ps_code_index(const struct ps_code_cache *c, uint64_t addr)
{
    uint32_t mask = c->cap - 1;
    uint32_t i = ps_code_hash(addr) & mask;
    while (c->v[i] && c->v[i]->addr != addr)
        i = (i + 1) & mask;
    return i;
}

struct ps_code *ps_code_cache_find(struct ps_code_cache *c, uint64_t addr)
{
    return c->v[ps_code_index(c, addr)];
}

/* Removes one entry, keeping the probe chains intact (backward-shift deletion). Pointers to
 * other entries stay valid: the table holds pointers, entries never move. */
void ps_code_cache_remove(struct ps_code_cache *c, struct ps_code *e)
{
    uint32_t mask = c->cap - 1;
    uint32_t i = ps_code_index(c, e->addr);
    if (c->v[i] != e)
        return;
    ps_code_entry_free(e);
    c->v[i] = NULL;
    c->n--;
    c->generation++;
    for (uint32_t j = (i + 1) & mask; c->v[j]; j = (j + 1) & mask) {
        uint32_t home = ps_code_hash(c->v[j]->addr) & mask;
        /* Move the entry at j back to i if its home is not in (i, j]. */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            c->v[i] = c->v[j];
            c->v[j] = NULL;
            i = j;
        }
    }
}

void ps_code_cache_trim(struct ps_code_cache *c)
{
    if (c->n >= PS_CODE_CACHE_MAX)
        ps_code_cache_clear(c); /* bounded memory: start over, between snapshots only */
}

static struct ps_code *ps_code_cache_insert(struct ps_code_cache *c, uint64_t addr)
{
    if ((c->n + 1) * 4 > c->cap * 3) {
        struct ps_code **old = c->v;
        uint32_t oldcap = c->cap;
        c->cap *= 2;
        c->v = ps_xcalloc(c->cap, sizeof(struct ps_code *));
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i])
                c->v[ps_code_index(c, old[i]->addr)] = old[i];
        free(old);
    }
    struct ps_code *e = ps_xcalloc(1, sizeof *e);
    e->addr = addr;
    e->used = 1;
    c->v[ps_code_index(c, addr)] = e;
    c->n++;
    return e;
}

int ps_code_key_span(const struct ps_py_offsets *o, int32_t *off, uint32_t *len)
{
    if (o->flags & PS_PYF_TAGGED_CODE) /* 3.14+: the code generation counter is the key */
        return 0;
    if (o->co_version != PS_OFF_NONE) {
        *off = o->co_version;
        *len = 4;
        return 1;
    }
    /* <= 3.11: the object pointers that make up what is displayed, read as one span from
     * co_filename through co_linetable/co_lnotab (which also covers co_name, co_qualname on
     * 3.11, co_firstlineno on 2.7). A line-table bytes object belongs to one code object, so a
     * new code object at a reused address differs here even when its names are interned. */
    int32_t lo = o->co_filename, hi = o->co_linetable + 8;
    if (hi > lo && hi - lo <= PS_CODE_KEY_MAX && o->co_name > lo && o->co_name < hi &&
        (o->co_qualname == PS_OFF_NONE || (o->co_qualname > lo && o->co_qualname < hi))) {
        *off = lo;
        *len = (uint32_t)(hi - lo);
        return 1;
    }
    return 0;
}

int ps_code_key_matches(const struct ps_py_offsets *o, const struct ps_code *e,
                        const uint8_t *span)
{
    int32_t off;
    uint32_t len;
    if (!ps_code_key_span(o, &off, &len))
        return 1;
    return e->keylen == len && memcmp(e->key, span, len) == 0;
}

/* Longer strings are cut, not refused: a code object whose name or file is longer than the
 * caller's max_chars (a generated 100 000-character function name, a deep path) is still that
 * code object, and refusing it would drop every sample of its frames as torn. Only a length
 * beyond this is taken as a corrupt (or torn) header. */
#define PS_STR_SANE_MAX (1u << 30)

/* Appends "..." after a cut string when it fits (outsz is sized for max_chars + the dots). */
static int ps_str_cut(char *out, size_t outsz, int len)
{
    if (len >= 0 && (size_t)len + 4 <= outsz) {
        memcpy(out + len, "...", 4);
        len += 3;
    }
    return len;
}

int ps_py_read_str(struct ps_mem *mem, const struct ps_py_offsets *o, uint64_t addr, char *out,
                   size_t outsz, size_t max_chars)
{
    out[0] = '\0';
    if (!addr)
        return PS_ECORRUPT;
    if (o->str_model == PS_STR_BYTES27) {
        uint8_t hdr[64];
        size_t hl = (size_t)o->bytes_sval;
        if (hl > sizeof hdr)
            return PS_ECORRUPT;
        int rc = ps_mem_read(mem, addr, hdr, hl);
        if (rc < 0)
            return rc;
        int64_t n;
        memcpy(&n, hdr + o->var_ob_size, 8);
        if (n < 0 || (uint64_t)n > PS_STR_SANE_MAX)
            return PS_ECORRUPT;
        uint8_t buf[PS_FILE_MAX];
        size_t take = PS_MIN((size_t)n, PS_MIN(max_chars, sizeof buf));
        rc = ps_mem_read(mem, addr + (uint64_t)o->bytes_sval, buf, take);
        if (rc < 0)
            return rc;
        rc = ps_utf8_sanitize(buf, take, out, outsz);
        return take < (size_t)n ? ps_str_cut(out, outsz, rc) : rc;
    }
    uint8_t hdr[128];
    size_t hl = (size_t)o->str_compact_size;
    if (hl > sizeof hdr)
        return PS_ECORRUPT;
    int rc = ps_mem_read(mem, addr, hdr, hl);
    if (rc < 0) {
        /* A short ASCII string at the very end of a mapping: read the smaller header. */
        hl = (size_t)o->str_ascii_size;
        rc = ps_mem_read(mem, addr, hdr, hl);
        if (rc < 0)
            return rc;
    }
    int kind;
    size_t n;
    int64_t data_off;
    uint64_t data_ptr;
    rc = ps_str_header(o, hdr, hl, PS_STR_SANE_MAX, &kind, &n, &data_off, &data_ptr);
    if (rc < 0)
        return rc;
    uint8_t buf[PS_FILE_MAX * 4];
    size_t take = PS_MIN(n, PS_MIN(max_chars, sizeof buf / (size_t)kind));
    uint64_t src = data_off >= 0 ? addr + (uint64_t)data_off : data_ptr;
    if (take) {
        rc = ps_mem_read(mem, src, buf, take * (size_t)kind);
        if (rc < 0)
            return rc;
    }
    rc = ps_utf8_from_kind(kind, buf, take, out, outsz);
    return take < n ? ps_str_cut(out, outsz, rc) : rc;
}

static int ps_read_bytes_obj(struct ps_mem *mem, const struct ps_py_offsets *o, uint64_t addr,
                             uint8_t **out, size_t *len)
{
    uint8_t hdr[64];
    if (!addr || (size_t)o->bytes_sval > sizeof hdr)
        return PS_ECORRUPT;
    int rc = ps_mem_read(mem, addr, hdr, (size_t)o->bytes_sval);
    if (rc < 0)
        return rc;
    int64_t n;
    memcpy(&n, hdr + o->var_ob_size, 8);
    if (n < 0 || (uint64_t)n > PS_LINETABLE_MAX)
        return PS_ECORRUPT;
    *out = ps_xmalloc((size_t)n + 1);
    *len = (size_t)n;
    if (n && (rc = ps_mem_read(mem, addr + (uint64_t)o->bytes_sval, *out, (size_t)n)) < 0) {
        free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

struct ps_code *ps_code_load(struct ps_code_cache *c, struct ps_mem *mem,
                             const struct ps_py_offsets *o, uint64_t code_type, uint64_t addr,
                             int *err)
{
    uint8_t co[512];
    size_t colen = (size_t)o->co_size;
    *err = 0;
    if (colen > sizeof co || colen < 32) {
        *err = PS_ECORRUPT;
        return NULL;
    }
    int rc = ps_mem_read(mem, addr, co, colen);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    uint64_t type;
    memcpy(&type, co + o->ob_type, 8);
    if (code_type && type != code_type) {
        *err = PS_ECORRUPT;
        return NULL;
    }
    uint64_t p_file, p_name, p_table;
    int32_t first;
    memcpy(&p_file, co + o->co_filename, 8);
    memcpy(&p_name, co + (o->co_qualname != PS_OFF_NONE ? o->co_qualname : o->co_name), 8);
    memcpy(&p_table, co + o->co_linetable, 8);
    memcpy(&first, co + o->co_firstlineno, 4);

    char name[PS_NAME_MAX * 4 + 8], file[PS_FILE_MAX * 4 + 8];
    if ((rc = ps_py_read_str(mem, o, p_name, name, sizeof name, PS_NAME_MAX)) < 0 ||
        (rc = ps_py_read_str(mem, o, p_file, file, sizeof file, PS_FILE_MAX)) < 0) {
        *err = rc;
        return NULL;
    }
    uint8_t *table = NULL;
    size_t tlen = 0;
    if ((rc = ps_read_bytes_obj(mem, o, p_table, &table, &tlen)) < 0) {
        *err = rc;
        return NULL;
    }
    int max = (int)tlen + 2;
    struct ps_line_range *ranges = ps_xmalloc(sizeof(struct ps_line_range) * (size_t)max);
    int nr = ps_linetable_decode(o->line_format, table, tlen, first, ranges, max);
    free(table);
    if (nr < 0)
        nr = 0; /* a malformed table still leaves the names usable; lines come out as 0 */

    struct ps_code *e = ps_code_cache_find(c, addr);
    if (e)
        ps_code_cache_remove(c, e);
    e = ps_code_cache_insert(c, addr);
    e->firstlineno = first;
    e->name = ps_xstrdup(name);
    e->file = ps_xstrdup(file);
    e->short_file = NULL;
    e->lines = ranges;
    e->nlines = nr;
    e->n_units = -1;
    e->code_start = 0;
    if (o->co_code_adaptive != PS_OFF_NONE) {
        int64_t units;
        memcpy(&units, co + o->var_ob_size, 8);
        e->code_start = addr + (uint64_t)o->co_code_adaptive;
        e->n_units = units >= 0 ? units : -1;
    }
    int32_t koff;
    uint32_t klen;
    if (ps_code_key_span(o, &koff, &klen) && (size_t)koff + klen <= colen) {
        memcpy(e->key, co + koff, klen);
        e->keylen = (uint8_t)klen;
    }
    return e;
}

#define PS_TLBC_MAX 4096 /* thread-local bytecode indexes: one per live thread */

int ps_code_tlbc_start(struct ps_code *e, struct ps_mem *mem, const struct ps_py_offsets *o,
                       int32_t idx, uint32_t gen, uint64_t *start)
{
    *start = e->code_start;
    if (idx == 0 || o->co_tlbc == PS_OFF_NONE)
        return 0;
    if (idx < 0 || idx >= PS_TLBC_MAX)
        return PS_ECORRUPT;
    if (e->tlbc_gen != gen) {
        if (e->tlbc)
            memset(e->tlbc, 0, sizeof *e->tlbc * (size_t)e->ntlbc);
        e->tlbc_gen = gen;
    }
    if (idx < e->ntlbc && e->tlbc[idx]) {
        *start = e->tlbc[idx];
        return 0;
    }
    /* _PyCodeArray { Py_ssize_t size; char *entries[]; } */
    uint64_t arr, words[2];
    int rc = ps_mem_read_u64(mem, e->addr + (uint64_t)o->co_tlbc, &arr);
    if (rc < 0)
        return rc;
    if (!arr)
        return 0;
    struct ps_iov iov[2] = {{arr, &words[0], 8}, {arr + 8 + 8 * (uint64_t)idx, &words[1], 8}};
    if ((rc = ps_mem_readv(mem, iov, 2)) < 0)
        return rc;
    if (words[0] > PS_TLBC_MAX)
        return PS_ECORRUPT;
    if ((uint64_t)idx >= words[0] || !words[1])
        return 0; /* no copy for this thread (yet): it runs the main one */
    if (idx >= e->ntlbc) {
        int32_t n = PS_MAX(idx + 1, e->ntlbc * 2);
        n = PS_MIN(n, PS_TLBC_MAX);
        e->tlbc = ps_xrealloc(e->tlbc, sizeof *e->tlbc * (size_t)n);
        memset(e->tlbc + e->ntlbc, 0, sizeof *e->tlbc * (size_t)(n - e->ntlbc));
        e->ntlbc = n;
    }
    e->tlbc[idx] = words[1];
    *start = words[1];
    return 0;
}

int32_t ps_code_line(const struct ps_py_offsets *o, struct ps_code *e, int64_t instr)
{
    /* Most samples hit the same few instructions of a code object: remember the last ones. */
    unsigned slot = (unsigned)((uint64_t)instr >> 1) % PS_CODE_MEMO;
    if (e->memo[slot].valid && e->memo[slot].instr == instr)
        return e->memo[slot].line;
    int32_t line = ps_code_line_uncached(o, e, instr);
    e->memo[slot].instr = instr;
    e->memo[slot].line = line;
    e->memo[slot].valid = 1;
    return line;
}

int32_t ps_code_line_uncached(const struct ps_py_offsets *o, const struct ps_code *e,
                              int64_t instr)
{
    int64_t off;
    if (o->frame_model == PS_FRAMES_OBJECTS) {
        off = instr < 0 ? -1 : instr * o->fo_lasti_scale;
    } else {
        if (instr == 0)
            return e->firstlineno;
        int64_t d = (int64_t)((uint64_t)instr - e->code_start);
        off = d < 0 ? -1 : d / 2;
        if (e->n_units >= 0 && off >= e->n_units)
            return -2; /* not inside this code object: torn frame */
    }
    int line = ps_linetable_lookup(e->lines, e->nlines, e->firstlineno, off);
    return line < 0 ? 0 : line;
}
