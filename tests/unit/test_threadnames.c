/* test_threadnames.c — Criterion suite `threadnames` for ps_py_thread_names(): a fake target
 * holding interp->modules -> threading module -> _active {ident: Thread} -> instance dict ->
 * name, laid out as 2.7 (open-table dicts, PyInt idents, _Thread__name), 3.10 (keys objects,
 * split and combined instance dicts), 3.11 (values pointer before the object), 3.12 (tagged
 * values / managed dict pointer, lv_tag ints) and 3.13-3.15 (inline values); then corrupt pointers,
 * impossible sizes and byte flips, which must give "" and never crash.
 *
 * The dict, int, type and module layouts below are written from the CPython headers of each
 * version (not from the table in threadnames.c), so a wrong table row fails these tests.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ps_mem.h"
#include "ps_pyoffsets.h"
#include "ps_threadnames.h"
#include "ps_util.h"

#define TW_BASE 0x7f2200000000ull
#define TW_SIZE (4u << 20)

#define MAIN_IDENT 0x7f0aa1b2c740ull
#define WORKER_IDENT 0x7f0a9fffe6c0ull
#define OTHER_IDENT 0x7f0a8ffff6c0ull /* in _active under another name */
#define MISSING_IDENT 0x7f0a7ffff6c0ull

enum { DICT_TABLE = 1, DICT_KEYS = 2, DICT_LOG2 = 3 };
enum { MG_NONE = 0, MG_VALUES = 1, MG_TAGGED = 2, MG_INLINE = 3 };
enum { KIND_GENERAL = 0, KIND_UNICODE = 1, KIND_SPLIT = 2 };

/* What a version looks like, per its headers. */
struct tl {
    int major, minor;
    int dict;             /* DICT_* */
    int managed;          /* MG_* */
    int long_tag;         /* 3.12+: lv_tag ints */
    int32_t cached_keys;  /* PyHeapTypeObject.ht_cached_keys */
    int32_t dv_values;    /* PyDictValues.values (3.13: after 4 bytes of counts, aligned) */
    const char *name_key;
};

static const struct tl TL27 = {2, 7, DICT_TABLE, MG_NONE, 0, -1, -1, "_Thread__name"};
static const struct tl TL310 = {3, 10, DICT_KEYS, MG_NONE, 0, 872, 0, "_name"};
static const struct tl TL311 = {3, 11, DICT_LOG2, MG_VALUES, 0, 872, 0, "_name"};
static const struct tl TL312 = {3, 12, DICT_LOG2, MG_TAGGED, 1, 880, 0, "_name"};
static const struct tl TL313 = {3, 13, DICT_LOG2, MG_INLINE, 1, 880, 8, "_name"};
static const struct tl TL314 = {3, 14, DICT_LOG2, MG_INLINE, 1, 880, 8, "_name"};
static const struct tl TL315 = {3, 15, DICT_LOG2, MG_INLINE, 1, 888, 8, "_name"};

/* Offsets shared by every version here (x86_64). */
#define OB_TYPE 8
#define TP_NAME 24
#define TP_BASICSIZE 32
#define TP_FLAGS 168
#define TP_DICTOFFSET 288
#define MD_DICT 16
#define TPF_INLINE_VALUES (1ull << 2)
#define TPF_MANAGED_DICT (1ull << 4)

struct tw {
    struct ps_py py;
    const struct tl *L;
    uint8_t *mem;
    uint64_t next;
    uint64_t t_type, t_dict, t_module, t_int, t_long, t_str, t_thread;
    uint64_t interp, modules, threading, md, active;
    uint64_t main_thread, worker_thread, other_thread;
};

/* ---- memory ------------------------------------------------------------------------------ */

static uint8_t *at(struct tw *w, uint64_t addr)
{
    cr_assert(addr >= TW_BASE && addr < TW_BASE + TW_SIZE, "test: address 0x%llx",
              (unsigned long long)addr);
    return w->mem + (addr - TW_BASE);
}

static void w64(struct tw *w, uint64_t addr, uint64_t v)
{
    memcpy(at(w, addr), &v, 8);
}

static uint64_t r64(struct tw *w, uint64_t addr)
{
    uint64_t v;
    memcpy(&v, at(w, addr), 8);
    return v;
}

/* Zeroed bytes with `pre` bytes of pre-header before the returned address. */
static uint64_t alloc_pre(struct tw *w, size_t n, size_t pre)
{
    uint64_t a = (w->next + 15) & ~15ull;
    w->next = a + pre + n + 16;
    cr_assert_lt(w->next, TW_BASE + TW_SIZE, "test: fake heap full");
    return a + pre;
}

static uint64_t alloc(struct tw *w, size_t n)
{
    return alloc_pre(w, n, 0);
}

static uint64_t object(struct tw *w, size_t n, uint64_t type)
{
    uint64_t a = alloc(w, n);
    w64(w, a, 1);
    w64(w, a + OB_TYPE, type);
    return a;
}

static uint64_t cstring(struct tw *w, const char *s)
{
    uint64_t a = alloc(w, strlen(s) + 1);
    memcpy(at(w, a), s, strlen(s) + 1);
    return a;
}

static uint64_t type_object(struct tw *w, const char *name)
{
    uint64_t t = object(w, 1024, w->t_type ? w->t_type : 0);
    if (!w->t_type)
        w64(w, t + OB_TYPE, t);
    w64(w, t + TP_NAME, cstring(w, name));
    w64(w, t + TP_BASICSIZE, 32);
    return t;
}

/* ---- objects ----------------------------------------------------------------------------- */

/* str: 2.7 PyStringObject, or a PEP 393 compact string (ASCII or latin-1) per the offsets. */
static uint64_t str(struct tw *w, const char *s)
{
    const struct ps_py_offsets *o = &w->py.off;
    size_t n = strlen(s);
    if (o->str_model == PS_STR_BYTES27) {
        uint64_t a = object(w, (size_t)o->bytes_sval + n + 1, w->t_str);
        w64(w, a + (uint64_t)o->var_ob_size, n);
        memcpy(at(w, a + (uint64_t)o->bytes_sval), s, n + 1);
        return a;
    }
    /* UTF-8 -> latin-1 code points (the tests only use U+0000..U+00FF). */
    uint8_t cp[256];
    size_t len = 0;
    int ascii = 1;
    for (size_t i = 0; i < n; len++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            cp[len] = c;
            i++;
        } else {
            cr_assert_eq(c & 0xfe, 0xc2, "test: only latin-1 strings");
            cp[len] = (uint8_t)(((c & 0x03) << 6) | ((unsigned char)s[i + 1] & 0x3f));
            ascii = 0;
            i += 2;
        }
    }
    size_t hdr = (size_t)(ascii ? o->str_ascii_size : o->str_compact_size);
    uint64_t a = object(w, hdr + len + 1, w->t_str);
    w64(w, a + (uint64_t)o->str_length, len);
    uint32_t st = 1u << o->str_kind_shift | 1u << o->str_compact_bit |
                  (uint32_t)ascii << o->str_ascii_bit;
    if (o->str_compact_size > 56) /* <= 3.11: "ready" follows "ascii" */
        st |= 1u << (o->str_ascii_bit + 1);
    memcpy(at(w, a + (uint64_t)o->str_state), &st, 4);
    memcpy(at(w, a + hdr), cp, len);
    return a;
}

/* An int object holding v (PyLong; PyInt on 2.7 when `pyint`). */
static uint64_t int_obj(struct tw *w, uint64_t v, int pyint)
{
    if (pyint) {
        uint64_t a = object(w, 24, w->t_int);
        w64(w, a + 16, v);
        return a;
    }
    uint32_t d[3];
    int nd = 0;
    for (uint64_t x = v; x; x >>= 30)
        d[nd++] = (uint32_t)(x & 0x3fffffff);
    uint64_t a = object(w, 24 + 4 * 3, w->t_long);
    w64(w, a + 16, w->L->long_tag ? (uint64_t)nd << 3 | (nd ? 0u : 1u) : (uint64_t)nd);
    memcpy(at(w, a + 24), d, 4 * (size_t)nd);
    return a;
}

struct item {
    uint64_t key, value, hash;
};

static unsigned log2_ceil(uint64_t x)
{
    unsigned l = 0;
    while ((1ull << l) < x)
        l++;
    return l;
}

/* A 3.x keys object with the items' keys (and values unless split); returns its address. */
static uint64_t keys_object(struct tw *w, const struct item *it, int n, int kind, int split)
{
    const struct tl *L = w->L;
    uint64_t size = 8;
    while (size * 2 < (uint64_t)n * 3 + 3)
        size *= 2;
    unsigned width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
    int general = L->dict == DICT_KEYS || kind == KIND_GENERAL;
    size_t esize = general ? 24 : 16;
    size_t hdr = L->dict == DICT_KEYS ? 40 : 32;
    uint64_t k = alloc(w, hdr + size * width + (size_t)n * esize);
    w64(w, k, 1);
    if (L->dict == DICT_KEYS) {
        w64(w, k + 8, size);
        w64(w, k + 24, size * 2 / 3 - (uint64_t)n); /* dk_usable */
        w64(w, k + 32, (uint64_t)n);
    } else {
        at(w, k + 8)[0] = (uint8_t)log2_ceil(size);
        at(w, k + 9)[0] = (uint8_t)(log2_ceil(size) + log2_ceil(width));
        at(w, k + 10)[0] = (uint8_t)kind;
        w64(w, k + 16, size * 2 / 3 - (uint64_t)n);
        w64(w, k + 24, (uint64_t)n);
    }
    memset(at(w, k + hdr), 0xff, size * width); /* all slots DKIX_EMPTY ... */
    uint64_t ents = k + hdr + size * width;
    for (int i = 0; i < n; i++) {
        uint64_t slot = it[i].hash & (size - 1); /* ... but the items' (reader ignores them) */
        uint64_t idx = (uint64_t)i;
        memcpy(at(w, k + hdr + slot * width), &idx, width);
        uint64_t e = ents + (uint64_t)i * esize;
        if (general) {
            w64(w, e, it[i].hash);
            w64(w, e + 8, it[i].key);
            w64(w, e + 16, split ? 0 : it[i].value);
        } else {
            w64(w, e, it[i].key);
            w64(w, e + 8, split ? 0 : it[i].value);
        }
    }
    return k;
}

/* A split-table values array for keys built from `it` (at `where`, or allocated). */
static uint64_t values_object(struct tw *w, const struct item *it, int n, uint64_t where)
{
    const struct tl *L = w->L;
    size_t head = (size_t)L->dv_values;
    uint64_t v = where ? where : alloc_pre(w, head + 8 * (size_t)n + 32, 16);
    if (L->dv_values > 0) {
        uint8_t *b = at(w, v);
        b[0] = (uint8_t)n; /* capacity */
        b[1] = (uint8_t)n; /* size */
        b[2] = where != 0; /* embedded */
        b[3] = 1;          /* valid */
    }
    for (int i = 0; i < n; i++)
        w64(w, v + head + 8 * (uint64_t)i, it[i].value);
    return v;
}

/* A dict object. kind: KIND_* for 3.11+; split: keys shared, values apart. */
static uint64_t dict_obj(struct tw *w, const struct item *it, int n, int kind, int split)
{
    const struct tl *L = w->L;
    uint64_t d = object(w, 64, w->t_dict);
    if (L->dict == DICT_TABLE) {
        uint64_t size = 8;
        while (size * 2 < (uint64_t)n * 3 + 3)
            size *= 2;
        uint64_t table = alloc(w, size * 24);
        for (int i = 0; i < n; i++) {
            uint64_t slot = it[i].hash & (size - 1);
            while (r64(w, table + slot * 24 + 8))
                slot = (slot + 1) & (size - 1);
            w64(w, table + slot * 24, it[i].hash);
            w64(w, table + slot * 24 + 8, it[i].key);
            w64(w, table + slot * 24 + 16, it[i].value);
        }
        w64(w, d + 16, (uint64_t)n); /* ma_fill */
        w64(w, d + 24, (uint64_t)n); /* ma_used */
        w64(w, d + 32, size - 1);    /* ma_mask */
        w64(w, d + 40, table);       /* ma_table */
        return d;
    }
    w64(w, d + 16, (uint64_t)n);
    w64(w, d + 32, keys_object(w, it, n, split ? KIND_SPLIT : kind, split));
    w64(w, d + 40, split ? values_object(w, it, n, 0) : 0);
    return d;
}

/* Items with str keys (hash: anything but consistent) from a NULL-terminated name list. */
static int str_items(struct tw *w, struct item *it, const char *const *names,
                     const uint64_t *values)
{
    int n = 0;
    for (; names[n]; n++) {
        it[n].key = str(w, names[n]);
        it[n].value = values[n];
        it[n].hash = 0x9e3779b97f4a7c15ull * (uint64_t)(n + 1);
    }
    return n;
}

/* The instance attributes of a Thread: _name second, as Thread.__init__ sets it. */
static int thread_attrs(struct tw *w, struct item *it, const char *name)
{
    const char *keys[] = {"_target", w->L->name_key, "_args", "_ident", "_daemonic", NULL};
    uint64_t vals[] = {object(w, 16, w->t_type), str(w, name), object(w, 16, w->t_type),
                       object(w, 16, w->t_type), object(w, 16, w->t_type)};
    return str_items(w, it, keys, vals);
}

/* A Thread object whose instance dict is a dict object (split = shared keys, <= 3.10 style). */
static uint64_t thread_with_dict(struct tw *w, const char *name, int split)
{
    struct item it[8];
    int n = thread_attrs(w, it, name);
    uint64_t d = dict_obj(w, it, n, KIND_UNICODE, split);
    if (w->L->managed == MG_NONE) {
        uint64_t t = object(w, 32, w->t_thread);
        w64(w, t + 16, d);
        return t;
    }
    uint64_t t = alloc_pre(w, 64, 32);
    w64(w, t, 1);
    w64(w, t + OB_TYPE, w->t_thread);
    w64(w, t - 24, d); /* managed dict pointer, all of 3.11-3.13 */
    return t;
}

/* 3.11+: a Thread whose attributes live only in values (no dict object). */
static uint64_t thread_with_values(struct tw *w, const char *name)
{
    struct item it[8];
    int n = thread_attrs(w, it, name);
    /* the shared keys are the type's cached keys: the same names in the same order */
    uint64_t cached = r64(w, w->t_thread + (uint64_t)w->L->cached_keys);
    if (!cached) {
        cached = keys_object(w, it, n, KIND_SPLIT, 1);
        w64(w, w->t_thread + (uint64_t)w->L->cached_keys, cached);
    }
    uint64_t t = alloc_pre(w, 16 + 8 + 8 * 8, 32);
    w64(w, t, 1);
    w64(w, t + OB_TYPE, w->t_thread);
    switch (w->L->managed) {
    case MG_VALUES:
        w64(w, t - 32, values_object(w, it, n, 0));
        break;
    case MG_TAGGED:
        w64(w, t - 24, values_object(w, it, n, 0) - 1);
        break;
    case MG_INLINE:
        values_object(w, it, n, t + 16);
        break;
    default:
        cr_assert_fail("test: no values-only instances before 3.11");
    }
    return t;
}

/* The world: interp->modules {"sys", "threading", ...}; threading.__dict__ {"_active", ...};
 * _active {MAIN: main, WORKER: worker, OTHER: other}. */
static struct tw *tw_new(const struct tl *L, int nmodules)
{
    struct tw *w = calloc(1, sizeof *w);
    w->L = L;
    ps_mem_fake_init(&w->py.mem);
    w->mem = ps_mem_fake_region(&w->py.mem, TW_BASE, TW_SIZE);
    w->next = TW_BASE + 4096;
    const struct ps_py_offsets *o = ps_pyoffsets_lookup(L->major, L->minor);
    cr_assert_not_null(o);
    w->py.off = *o;
    w->py.major = L->major;
    w->py.minor = L->minor;

    w->t_type = type_object(w, "type");
    w->t_dict = type_object(w, "dict");
    w->t_module = type_object(w, "module");
    w->t_str = type_object(w, "str");
    w->t_int = type_object(w, "int");
    w->t_long = L->major == 2 ? type_object(w, "long") : w->t_int;
    w->t_thread = type_object(w, "_MainThread");
    if (L->managed == MG_NONE) {
        w64(w, w->t_thread + TP_DICTOFFSET, 16);
    } else {
        w64(w, w->t_thread + TP_FLAGS,
            TPF_MANAGED_DICT | (L->managed == MG_INLINE ? TPF_INLINE_VALUES : 0));
        w64(w, w->t_thread + TP_BASICSIZE, 16);
    }

    /* Threads: main through values on 3.11+ (a split dict before), worker through a dict. */
    if (L->managed != MG_NONE)
        w->main_thread = thread_with_values(w, "MainThread");
    else
        w->main_thread = thread_with_dict(w, "MainThread", L->dict != DICT_TABLE);
    w->worker_thread = thread_with_dict(w, "worker-1", 0);
    w->other_thread = thread_with_dict(w, "Thread-3 (n\xc3\xa4me)", 0);

    struct item act[3] = {
        {int_obj(w, MAIN_IDENT, L->major == 2), w->main_thread, MAIN_IDENT},
        {int_obj(w, WORKER_IDENT, L->major == 2), w->worker_thread, WORKER_IDENT},
        {int_obj(w, OTHER_IDENT, 0), w->other_thread, OTHER_IDENT}, /* 2.7: a PyLong key */
    };
    w->active = dict_obj(w, act, 3, KIND_GENERAL, 0);

    const char *mdkeys[] = {"__name__", "_active_limbo_lock", "_active", "_limbo", NULL};
    uint64_t mdvals[] = {str(w, "threading"), object(w, 16, w->t_type), w->active,
                         object(w, 16, w->t_type)};
    struct item mi[8];
    w->md = dict_obj(w, mi, str_items(w, mi, mdkeys, mdvals), KIND_UNICODE, 0);
    w->threading = object(w, 64, w->t_module);
    w64(w, w->threading + MD_DICT, w->md);

    /* modules: filler names around "threading" (nmodules of them in all) */
    struct item *mods = calloc((size_t)nmodules, sizeof *mods);
    char nm[32];
    for (int i = 0; i < nmodules; i++) {
        int is_t = i == nmodules / 2;
        snprintf(nm, sizeof nm, "mod%d", i);
        mods[i].key = str(w, is_t ? "threading" : i == 0 ? "threadinG" : nm);
        mods[i].value = is_t ? w->threading : object(w, 64, w->t_module);
        mods[i].hash = 0x51ed27ull * (uint64_t)(i + 1);
    }
    w->modules = dict_obj(w, mods, nmodules, KIND_UNICODE, 0);
    free(mods);
    w->interp = alloc(w, 8192);
    w64(w, w->interp + (uint64_t)o->is_modules, w->modules);
    return w;
}

static void tw_free(struct tw *w)
{
    ps_mem_close(&w->py.mem);
    free(w);
}

static const uint64_t idents4[4] = {WORKER_IDENT, MISSING_IDENT, MAIN_IDENT, OTHER_IDENT};

static int lookup(struct tw *w, char (*names)[PS_TN_NAME_SIZE])
{
    memset(names, 'Z', 4 * PS_TN_NAME_SIZE);
    int rc = ps_py_thread_names(&w->py, w->interp, idents4, 4, names);
    for (int i = 0; i < 4; i++)
        cr_assert(memchr(names[i], '\0', PS_TN_NAME_SIZE), "name %d not terminated", i);
    return rc;
}

static void check_all(const struct tl *L, int nmodules)
{
    struct tw *w = tw_new(L, nmodules);
    char names[4][PS_TN_NAME_SIZE];
    int rc = lookup(w, names);
    cr_assert_eq(rc, 3, "%d.%d: rc %d", L->major, L->minor, rc);
    cr_assert_str_eq(names[0], "worker-1");
    cr_assert_str_eq(names[1], "");
    cr_assert_str_eq(names[2], "MainThread");
    cr_assert_str_eq(names[3], "Thread-3 (n\xc3\xa4me)");
    tw_free(w);
}

Test(threadnames, py27_table_dicts_pyint_idents)
{
    check_all(&TL27, 40);
}

Test(threadnames, py310_keys_split_and_combined)
{
    check_all(&TL310, 40);
}

Test(threadnames, py310_two_byte_indices)
{
    check_all(&TL310, 300); /* 512 slots: 2-byte indices before the entries */
}

Test(threadnames, py311_values_before_object)
{
    check_all(&TL311, 40);
}

Test(threadnames, py312_tagged_values_and_managed_dict)
{
    check_all(&TL312, 200); /* more keys than one batch of key reads */
}

Test(threadnames, py313_inline_values)
{
    check_all(&TL313, 40);
}

/* 3.14+ names the OS thread after the Thread, but not the main thread: it must still come from
 * threading (3.15 only moves the heap type's cached keys). */
Test(threadnames, py314_inline_values)
{
    check_all(&TL314, 40);
}

Test(threadnames, py315_inline_values)
{
    check_all(&TL315, 40);
}

Test(threadnames, only_requested_idents)
{
    struct tw *w = tw_new(&TL312, 20);
    char names[1][PS_TN_NAME_SIZE];
    uint64_t id = MAIN_IDENT;
    cr_assert_eq(ps_py_thread_names(&w->py, w->interp, &id, 1, names), 1);
    cr_assert_str_eq(names[0], "MainThread");
    cr_assert_eq(ps_py_thread_names(&w->py, w->interp, &id, 0, names), 0);
    tw_free(w);
}

Test(threadnames, unsupported_versions)
{
    struct tw *w = tw_new(&TL312, 20);
    char names[4][PS_TN_NAME_SIZE];
    w->py.minor = 16; /* no layout */
    cr_assert_eq(lookup(w, names), PS_EVERSION);
    cr_assert_str_eq(names[0], "");
    w->py.minor = 12;
    w->py.off.flags |= PS_PYF_FREE_THREADED; /* no free-threaded 3.12 */
    cr_assert_eq(lookup(w, names), PS_EVERSION);
    tw_free(w);
}

/* Each corruption leaves the other names intact or all names empty, and never crashes. */
Test(threadnames, corrupt_pointers)
{
    struct tw *w = tw_new(&TL312, 20);
    char names[4][PS_TN_NAME_SIZE];
    const struct ps_py_offsets *o = &w->py.off;

    /* interp->modules unmapped */
    w64(w, w->interp + (uint64_t)o->is_modules, 0x10000);
    cr_assert_lt(lookup(w, names), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(names[i], "");
    w64(w, w->interp + (uint64_t)o->is_modules, w->modules);
    cr_assert_eq(lookup(w, names), 3);

    /* no interpreter */
    cr_assert_lt(ps_py_thread_names(&w->py, 0, idents4, 4, names), 0);

    /* the threading module's type is not "module" */
    w64(w, w->threading + OB_TYPE, w->t_dict);
    cr_assert_lt(lookup(w, names), 0);
    cr_assert_str_eq(names[2], "");
    w64(w, w->threading + OB_TYPE, w->t_module);

    /* md_dict pointing into the void */
    w64(w, w->threading + MD_DICT, 0x7fffdead0000ull);
    cr_assert_lt(lookup(w, names), 0);
    w64(w, w->threading + MD_DICT, w->md);

    /* the worker's dict pointer is garbage: the others still resolve */
    uint64_t d = r64(w, w->worker_thread - 24);
    w64(w, w->worker_thread - 24, 0x1234567);
    cr_assert_eq(lookup(w, names), 2);
    cr_assert_str_eq(names[0], "");
    cr_assert_str_eq(names[2], "MainThread");
    w64(w, w->worker_thread - 24, d);

    /* impossible table sizes in _active's keys */
    uint64_t keys = r64(w, w->active + 32);
    uint8_t saved = at(w, keys + 8)[0];
    at(w, keys + 8)[0] = 60;
    cr_assert_lt(lookup(w, names), 0);
    at(w, keys + 8)[0] = saved;
    w64(w, keys + 24, 1ull << 40); /* dk_nentries */
    cr_assert_lt(lookup(w, names), 0);
    w64(w, keys + 24, 3);

    /* the main thread's cached keys vanish */
    uint64_t ck = r64(w, w->t_thread + (uint64_t)TL312.cached_keys);
    w64(w, w->t_thread + (uint64_t)TL312.cached_keys, 0);
    cr_assert_eq(lookup(w, names), 2);
    cr_assert_str_eq(names[2], "");
    w64(w, w->t_thread + (uint64_t)TL312.cached_keys, ck);

    /* names that are not str objects (their type is called something else) */
    uint64_t tn = r64(w, w->t_str + TP_NAME);
    w64(w, w->t_str + TP_NAME, cstring(w, "bytes"));
    cr_assert_eq(lookup(w, names), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(names[i], "");
    w64(w, w->t_str + TP_NAME, tn);

    cr_assert_eq(lookup(w, names), 3);
    cr_assert_str_eq(names[3], "Thread-3 (n\xc3\xa4me)");
    tw_free(w);
}

/* Byte flips anywhere in the objects: no crash, bounded results, names still terminated. */
static void flip_everything(const struct tl *L)
{
    struct tw *w = tw_new(L, 30);
    char names[4][PS_TN_NAME_SIZE];
    uint64_t end = w->next;
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int iter = 0; iter < 3000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t addr = TW_BASE + 4096 + x % (end - TW_BASE - 4096);
        uint8_t *p = at(w, addr);
        uint8_t old = *p;
        *p ^= (uint8_t)(1u << ((x >> 32) % 8)) | (uint8_t)((x >> 40) & 0xf0);
        int rc = lookup(w, names);
        cr_assert_leq(rc, 3);
        *p = old;
    }
    cr_assert_eq(lookup(w, names), 3);
    tw_free(w);
}

Test(threadnames, byte_flips_27)
{
    flip_everything(&TL27);
}

Test(threadnames, byte_flips_310)
{
    flip_everything(&TL310);
}

Test(threadnames, byte_flips_312)
{
    flip_everything(&TL312);
}

Test(threadnames, byte_flips_313)
{
    flip_everything(&TL313);
}
