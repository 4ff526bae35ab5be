/* threadnames.c — threading.Thread names of a target's threads, for display (dump, --threads).
 *
 * Follows interp->modules["threading"].__dict__["_active"] ({ident: Thread}) to each Thread's
 * instance dict and its `_name`, reading dicts in all their layouts (2.7 open table, 3.6–3.10
 * keys object, 3.11+ keys with kinds, split values, managed and inline instance dicts). Called
 * from walk.c's ps_py_thread_name() once per thread; all per-version numbers are in the table.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_code_cache.h"
#include "ps_pytext.h"
#include "ps_threadnames.h"
#include "ps_util.h"

#define PS_TN_DICT_MAX 65536        /* live entries read from one dict */
#define PS_TN_SLOTS_LOG2 17
#define PS_TN_SLOTS_MAX (1u << PS_TN_SLOTS_LOG2) /* hash table slots (2.7 table, 3.x indices) */
#define PS_TN_KEY_BATCH 128         /* key strings compared per readv */
#define PS_TN_NAME_CHARS 256        /* code points of a thread name that are read */
#define PS_TN_TYPES 8               /* type objects remembered per lookup */

enum ps_tn_dict_model {
    PS_TN_DICT_TABLE = 1,     /* 2.7: ma_table of (hash, key, value), ma_mask + 1 slots */
    PS_TN_DICT_KEYS = 2,      /* 3.6–3.10: keys object with dk_size, 1/2/4/8-byte indices */
    PS_TN_DICT_KEYS_LOG2 = 3, /* 3.11+: dk_log2_size, dk_log2_index_bytes, dk_kind */
};

enum ps_tn_managed_model {
    PS_TN_MANAGED_NONE = 0,   /* instance dict at tp_dictoffset */
    PS_TN_MANAGED_VALUES = 1, /* 3.11: values pointer and dict pointer before the object */
    PS_TN_MANAGED_TAGGED = 2, /* 3.12: one slot before the object, low bit set = values - 1 */
    PS_TN_MANAGED_INLINE = 3, /* 3.13: dict pointer before, values inline after tp_basicsize */
};

enum ps_tn_long_model {
    PS_TN_LONG_SIZE = 1,      /* signed digit count in ob_size */
    PS_TN_LONG_TAG = 2,       /* 3.12+: lv_tag = ndigits << shift | sign (0 +, 1 zero, 2 -) */
};

/* One row per minor version. Offsets are in bytes, -1 = absent. Managed-dict offsets are
 * relative to the object (negative: in the pre-header). Rows are printed by
 * src/python/gen/threadnames_gen.c; tests/check_threadnames.sh compares them with the headers. */
struct ps_tn_layout {
    int major, minor;
    const char *name_key;     /* the Thread attribute holding the name */
    enum ps_tn_dict_model dict_model;
    enum ps_tn_managed_model managed_model;
    enum ps_tn_long_model long_model;
    int32_t md_dict;          /* PyModuleObject.md_dict */
    struct { int32_t mask, table, keys, values; } ma;  /* PyDictObject */
    struct { int32_t size, hash, key, value; } ge;     /* general entry (hash, key, value) */
    struct { int32_t size, key, value; } ue;           /* unicode-keys entry (3.11+) */
    struct {
        int32_t size, log2_size, log2_index_bytes, kind, kind_general, nentries, indices;
    } dk;                                              /* PyDictKeysObject */
    struct { int32_t values, capacity, valid; } dv;    /* split values (PyDictValues) */
    struct { int32_t basicsize, flags, dictoffset, cached_keys, read; } tp; /* type object */
    struct { uint64_t flag_dict, flag_inline; int32_t dict, values; } mg;    /* managed dicts */
    struct {
        int32_t size, digits, tag_shift, sign_mask, shift, digit_size, int_ival;
    } lg;                                              /* PyLongObject (and 2.7 PyIntObject) */
    int free_threaded;        /* a --disable-gil build's row (32-byte object headers) */
};

static const struct ps_tn_layout ps_tn_layouts[] = {
    /* BEGIN TN 2.7 */
    {2, 7, "_Thread__name", PS_TN_DICT_TABLE, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {32, 40, -1, -1}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {-1, -1, -1, -1, -1, -1, -1}, .dv = {-1, -1, -1},
     .tp = {32, 168, 288, -1, 296}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, 16}},
    /* END TN 2.7 */
    /* BEGIN TN 3.6 */
    {3, 6, "_name", PS_TN_DICT_KEYS, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {8, -1, -1, -1, -1, 32, 40}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 856, 864}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.6 */
    /* BEGIN TN 3.7 */
    {3, 7, "_name", PS_TN_DICT_KEYS, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {8, -1, -1, -1, -1, 32, 40}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 856, 864}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.7 */
    /* BEGIN TN 3.8 */
    {3, 8, "_name", PS_TN_DICT_KEYS, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {8, -1, -1, -1, -1, 32, 40}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 872, 880}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.8 */
    /* BEGIN TN 3.9 */
    {3, 9, "_name", PS_TN_DICT_KEYS, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {8, -1, -1, -1, -1, 32, 40}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 864, 872}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.9 */
    /* BEGIN TN 3.10 */
    {3, 10, "_name", PS_TN_DICT_KEYS, PS_TN_MANAGED_NONE, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {-1, -1, -1},
     .dk = {8, -1, -1, -1, -1, 32, 40}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 872, 880}, .mg = {0x0, 0x0, -1, -1},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.10 */
    /* BEGIN TN 3.11 */
    {3, 11, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_VALUES, PS_TN_LONG_SIZE, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 872, 880}, .mg = {0x10, 0x0, -24, -32},
     .lg = {16, 24, -1, -1, 30, 4, -1}},
    /* END TN 3.11 */
    /* BEGIN TN 3.12 */
    {3, 12, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_TAGGED, PS_TN_LONG_TAG, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {0, -1, -1},
     .tp = {32, 168, 288, 880, 888}, .mg = {0x10, 0x0, -24, -1},
     .lg = {16, 24, 3, 3, 30, 4, -1}},
    /* END TN 3.12 */
    /* BEGIN TN 3.13 */
    {3, 13, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {32, 168, 288, 880, 888}, .mg = {0x10, 0x4, -24, -1},
     .lg = {16, 24, 3, 3, 30, 4, -1}},
    /* END TN 3.13 */
    /* BEGIN TN 3.13t */
    {3, 13, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 32,
     .ma = {-1, -1, 48, 56}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {48, 184, 304, 896, 904}, .mg = {0x10, 0x4, -8, -1},
     .lg = {32, 40, 3, 3, 30, 4, -1}, .free_threaded = 1},
    /* END TN 3.13t */
    /* BEGIN TN 3.14 */
    {3, 14, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {32, 168, 288, 880, 888}, .mg = {0x10, 0x4, -24, -1},
     .lg = {16, 24, 3, 3, 30, 4, -1}},
    /* END TN 3.14 */
    /* BEGIN TN 3.14t */
    {3, 14, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 32,
     .ma = {-1, -1, 48, 56}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {48, 184, 304, 896, 904}, .mg = {0x10, 0x4, -8, -1},
     .lg = {32, 40, 3, 3, 30, 4, -1}, .free_threaded = 1},
    /* END TN 3.14t */
    /* BEGIN TN 3.15 */
    {3, 15, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 16,
     .ma = {-1, -1, 32, 40}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {32, 168, 288, 888, 896}, .mg = {0x10, 0x4, -24, -1},
     .lg = {16, 24, 3, 3, 30, 4, -1}},
    /* END TN 3.15 */
    /* BEGIN TN 3.15t */
    {3, 15, "_name", PS_TN_DICT_KEYS_LOG2, PS_TN_MANAGED_INLINE, PS_TN_LONG_TAG, .md_dict = 32,
     .ma = {-1, -1, 48, 56}, .ge = {24, 0, 8, 16}, .ue = {16, 0, 8},
     .dk = {-1, 8, 9, 10, 0, 24, 32}, .dv = {8, 0, 3},
     .tp = {48, 184, 304, 904, 912}, .mg = {0x10, 0x4, -8, -1},
     .lg = {32, 40, 3, 3, 30, 4, -1}, .free_threaded = 1},
    /* END TN 3.15t */
};

/* ---- lookup state ------------------------------------------------------------------------ */

struct ps_tn_item {
    uint64_t key, value;
    uint64_t hash;           /* stored hash, when has_hash */
    int has_hash;
};

struct ps_tn_items {
    struct ps_tn_item *v;
    int n, cap;
};

struct ps_tn_type {
    uint64_t addr;
    int have_name, have_info;
    char name[8];            /* tp_name, when it fits (the names compared here all do) */
    uint64_t flags;
    int64_t basicsize, dictoffset;
    uint64_t cached_keys;
};

struct ps_tn_ctx {
    struct ps_mem *mem;
    const struct ps_py_offsets *o;
    const struct ps_tn_layout *L;
    struct ps_tn_type types[PS_TN_TYPES];
    int ntypes, next_type;
    uint64_t name_key;       /* the interned name-key string, once one dict matched it */
    uint8_t *buf;            /* scratch for tables and entries */
    size_t bufcap;
};

static uint64_t ps_tn_u64(const uint8_t *b, int32_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* A plausible object address: user space, 8-aligned, not in the first page. */
static int ps_tn_ptr_ok(uint64_t a)
{
    return a >= 4096 && !(a & 7) && a < (1ull << 56);
}

static uint8_t *ps_tn_scratch(struct ps_tn_ctx *c, size_t len)
{
    if (len > c->bufcap) {
        free(c->buf);
        c->bufcap = len;
        c->buf = ps_xmalloc(len);
    }
    return c->buf;
}

static int ps_tn_read64(struct ps_tn_ctx *c, uint64_t addr, uint64_t *out)
{
    return ps_mem_read(c->mem, addr, out, 8);
}

static struct ps_tn_type *ps_tn_type_slot(struct ps_tn_ctx *c, uint64_t type)
{
    for (int i = 0; i < c->ntypes; i++)
        if (c->types[i].addr == type)
            return &c->types[i];
    struct ps_tn_type *t;
    if (c->ntypes < PS_TN_TYPES) {
        t = &c->types[c->ntypes++];
    } else {
        t = &c->types[c->next_type];
        c->next_type = (c->next_type + 1) % PS_TN_TYPES;
    }
    memset(t, 0, sizeof *t);
    t->addr = type;
    return t;
}

/* The type object of obj, or 0. */
static uint64_t ps_tn_type_of(struct ps_tn_ctx *c, uint64_t obj)
{
    uint64_t type;
    if (!ps_tn_ptr_ok(obj) || ps_tn_read64(c, obj + (uint64_t)c->o->ob_type, &type) < 0 ||
        !ps_tn_ptr_ok(type))
        return 0;
    return type;
}

/* 1 if obj's type is named `name` (at most 7 characters), 0 if not or unreadable. */
static int ps_tn_is(struct ps_tn_ctx *c, uint64_t obj, const char *name)
{
    uint64_t type = ps_tn_type_of(c, obj);
    if (!type)
        return 0;
    struct ps_tn_type *t = ps_tn_type_slot(c, type);
    if (!t->have_name) {
        uint64_t p;
        char nm[8];
        if (ps_tn_read64(c, type + (uint64_t)c->o->type_tp_name, &p) < 0 || !p ||
            ps_mem_read(c->mem, p, nm, sizeof nm) < 0)
            return 0;
        if (!memchr(nm, '\0', sizeof nm))
            nm[0] = '\0'; /* a longer name: matches none of ours */
        memcpy(t->name, nm, sizeof nm);
        t->have_name = 1;
    }
    return strcmp(t->name, name) == 0;
}

/* Flags, sizes and cached keys of obj's type. */
static struct ps_tn_type *ps_tn_type_info(struct ps_tn_ctx *c, uint64_t obj)
{
    uint64_t type = ps_tn_type_of(c, obj);
    if (!type)
        return NULL;
    struct ps_tn_type *t = ps_tn_type_slot(c, type);
    if (t->have_info)
        return t;
    const struct ps_tn_layout *L = c->L;
    uint8_t b[1024];
    if (L->tp.read <= 0 || (size_t)L->tp.read > sizeof b)
        return NULL;
    if (ps_mem_read(c->mem, type, b, (size_t)L->tp.read) < 0)
        return NULL;
    t->flags = ps_tn_u64(b, L->tp.flags);
    t->basicsize = (int64_t)ps_tn_u64(b, L->tp.basicsize);
    t->dictoffset = (int64_t)ps_tn_u64(b, L->tp.dictoffset);
    t->cached_keys = L->tp.cached_keys >= 0 ? ps_tn_u64(b, L->tp.cached_keys) : 0;
    t->have_info = 1;
    return t;
}

/* ---- dicts ------------------------------------------------------------------------------- */

static void ps_tn_add(struct ps_tn_items *it, uint64_t key, uint64_t value, const uint64_t *hash)
{
    if (it->n == it->cap) {
        it->cap = it->cap ? it->cap * 2 : 64;
        it->v = ps_xrealloc(it->v, sizeof(struct ps_tn_item) * (size_t)it->cap);
    }
    it->v[it->n].key = key;
    it->v[it->n].value = value;
    it->v[it->n].hash = hash ? *hash : 0;
    it->v[it->n].has_hash = hash != NULL;
    it->n++;
}

/* Live items of a 3.x keys object; values != 0 for a split table (values object address).
 * check_valid: the values are an object's inline values (3.13) and must be marked valid. */
static int ps_tn_keys_items(struct ps_tn_ctx *c, uint64_t keys, uint64_t values, int check_valid,
                            struct ps_tn_items *it)
{
    const struct ps_tn_layout *L = c->L;
    it->n = 0;
    if (!ps_tn_ptr_ok(keys) || (values && !ps_tn_ptr_ok(values)))
        return PS_ECORRUPT;
    uint8_t hdr[64];
    if (L->dk.indices <= 0 || (size_t)L->dk.indices > sizeof hdr)
        return PS_ECORRUPT;
    int rc = ps_mem_read(c->mem, keys, hdr, (size_t)L->dk.indices);
    if (rc < 0)
        return rc;
    uint64_t slots, index_bytes;
    const int32_t *ent; /* size, key, value, hash (or -1) of the entry kind in use */
    int32_t ge[4] = {L->ge.size, L->ge.key, L->ge.value, L->ge.hash};
    int32_t ue[4] = {L->ue.size, L->ue.key, L->ue.value, -1};
    if (L->dict_model == PS_TN_DICT_KEYS) {
        slots = ps_tn_u64(hdr, L->dk.size);
        if (slots < 8 || slots > PS_TN_SLOTS_MAX || (slots & (slots - 1)))
            return PS_ECORRUPT;
        index_bytes = slots * (slots <= 0xff ? 1 : slots <= 0xffff ? 2 : 4);
        ent = ge;
    } else {
        unsigned log2 = hdr[L->dk.log2_size], log2_index = hdr[L->dk.log2_index_bytes];
        if (log2 < 3 || log2 > PS_TN_SLOTS_LOG2 || log2_index < log2 || log2_index > log2 + 3)
            return PS_ECORRUPT;
        slots = 1ull << log2;
        index_bytes = 1ull << log2_index;
        ent = hdr[L->dk.kind] == (uint8_t)L->dk.kind_general ? ge : ue;
        if (ent[0] <= 0)
            return PS_ECORRUPT;
    }
    int64_t nentries = (int64_t)ps_tn_u64(hdr, L->dk.nentries);
    if (nentries < 0 || (uint64_t)nentries > slots || nentries > PS_TN_DICT_MAX)
        return PS_ECORRUPT;
    if (nentries == 0)
        return 0;
    size_t esize = (size_t)ent[0];
    size_t elen = (size_t)nentries * esize;
    size_t vhead = values ? (size_t)L->dv.values : 0;
    size_t vlen = values ? vhead + (size_t)nentries * 8 : 0;
    uint8_t *b = ps_tn_scratch(c, elen + vlen);
    struct ps_iov iov[2] = {{keys + (uint64_t)L->dk.indices + index_bytes, b, elen},
                            {values, b + elen, vlen}};
    if ((rc = ps_mem_readv(c->mem, iov, values ? 2 : 1)) < 0)
        return rc;
    int64_t n = nentries;
    if (values) {
        const uint8_t *vb = b + elen;
        if (L->dv.capacity >= 0 && (int64_t)vb[L->dv.capacity] < n)
            n = vb[L->dv.capacity];
        if (check_valid && L->dv.valid >= 0 && !vb[L->dv.valid])
            return PS_ECORRUPT;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *e = b + (size_t)i * esize;
        uint64_t key = ps_tn_u64(e, ent[1]);
        uint64_t value = values ? ps_tn_u64(b + elen + vhead, (int32_t)(i * 8))
                                : ps_tn_u64(e, ent[2]);
        uint64_t hash = ent[3] >= 0 ? ps_tn_u64(e, ent[3]) : 0;
        if (ps_tn_ptr_ok(key) && ps_tn_ptr_ok(value))
            ps_tn_add(it, key, value, ent[3] >= 0 ? &hash : NULL);
    }
    return 0;
}

/* Live items of the dict object at `dict`. */
static int ps_tn_dict_items(struct ps_tn_ctx *c, uint64_t dict, struct ps_tn_items *it)
{
    const struct ps_tn_layout *L = c->L;
    it->n = 0;
    if (!ps_tn_is(c, dict, "dict"))
        return PS_ECORRUPT;
    uint8_t hdr[64];
    if (L->dict_model == PS_TN_DICT_TABLE) {
        int rc = ps_mem_read(c->mem, dict, hdr, (size_t)L->ma.table + 8);
        if (rc < 0)
            return rc;
        uint64_t slots = ps_tn_u64(hdr, L->ma.mask) + 1;
        uint64_t table = ps_tn_u64(hdr, L->ma.table);
        if (slots < 8 || slots > PS_TN_SLOTS_MAX || (slots & (slots - 1)) || !ps_tn_ptr_ok(table))
            return PS_ECORRUPT;
        size_t esize = (size_t)L->ge.size;
        uint8_t *b = ps_tn_scratch(c, slots * esize);
        if ((rc = ps_mem_read(c->mem, table, b, slots * esize)) < 0)
            return rc;
        for (uint64_t i = 0; i < slots && it->n < PS_TN_DICT_MAX; i++) {
            uint64_t key = ps_tn_u64(b + i * esize, L->ge.key);
            uint64_t value = ps_tn_u64(b + i * esize, L->ge.value);
            uint64_t hash = ps_tn_u64(b + i * esize, L->ge.hash);
            if (ps_tn_ptr_ok(key) && ps_tn_ptr_ok(value)) /* empty/dummy slots have no value */
                ps_tn_add(it, key, value, &hash);
        }
        return 0;
    }
    int rc = ps_mem_read(c->mem, dict, hdr, (size_t)L->ma.values + 8);
    if (rc < 0)
        return rc;
    return ps_tn_keys_items(c, ps_tn_u64(hdr, L->ma.keys), ps_tn_u64(hdr, L->ma.values), 0, it);
}

/* Index of the item whose key is the str `want` (ASCII, <= 32 bytes), or -1. */
static int ps_tn_find_str(struct ps_tn_ctx *c, const struct ps_tn_items *it, const char *want,
                          uint64_t *known)
{
    const struct ps_py_offsets *o = c->o;
    size_t wlen = strlen(want);
    if (known && *known)
        for (int i = 0; i < it->n; i++)
            if (it->v[i].key == *known)
                return i;
    int py2 = o->str_model == PS_STR_BYTES27;
    size_t hl = (size_t)(py2 ? o->bytes_sval : o->str_ascii_size);
    if (hl == 0 || hl > 64 || wlen > 32)
        return -1;
    size_t rl = hl + wlen;
    uint8_t buf[PS_TN_KEY_BATCH][96];
    struct ps_iov iov[PS_TN_KEY_BATCH];
    int ok[PS_TN_KEY_BATCH];
    for (int base = 0; base < it->n; base += PS_TN_KEY_BATCH) {
        int m = it->n - base < PS_TN_KEY_BATCH ? it->n - base : PS_TN_KEY_BATCH;
        for (int k = 0; k < m; k++) {
            iov[k].addr = it->v[base + k].key;
            iov[k].buf = buf[k];
            iov[k].len = rl;
            ok[k] = 1;
        }
        int rc = ps_mem_readv(c->mem, iov, m);
        if (rc == PS_ENOPROC)
            return -1;
        if (rc < 0) /* one key near the end of a mapping spoils the batch: read them singly */
            for (int k = 0; k < m; k++)
                ok[k] = ps_mem_read(c->mem, iov[k].addr, buf[k], rl) == 0;
        for (int k = 0; k < m; k++) {
            if (!ok[k])
                continue;
            const uint8_t *s = buf[k];
            if (py2) {
                int64_t len = (int64_t)ps_tn_u64(s, o->var_ob_size);
                if (len != (int64_t)wlen || memcmp(s + hl, want, wlen) != 0)
                    continue;
            } else {
                int kind;
                size_t len;
                int64_t data_off;
                if (ps_str_header(o, s, hl, wlen, &kind, &len, &data_off, NULL) < 0 ||
                    kind != 1 || len != wlen || data_off != (int64_t)hl ||
                    memcmp(s + hl, want, wlen) != 0)
                    continue;
            }
            if (known)
                *known = it->v[base + k].key;
            return base + k;
        }
    }
    return -1;
}

/* The value stored under the str key `want` in the dict at `dict`, or 0. */
static uint64_t ps_tn_dict_get(struct ps_tn_ctx *c, uint64_t dict, const char *want,
                               struct ps_tn_items *it)
{
    if (ps_tn_dict_items(c, dict, it) < 0)
        return 0;
    int i = ps_tn_find_str(c, it, want, NULL);
    return i < 0 ? 0 : it->v[i].value;
}

/* ---- objects ----------------------------------------------------------------------------- */

/* Items of obj's instance dict, wherever this version keeps it. */
static int ps_tn_instance_items(struct ps_tn_ctx *c, uint64_t obj, struct ps_tn_items *it)
{
    const struct ps_tn_layout *L = c->L;
    it->n = 0;
    struct ps_tn_type *t = ps_tn_type_info(c, obj);
    if (!t)
        return PS_ECORRUPT;
    if (L->managed_model != PS_TN_MANAGED_NONE && (t->flags & L->mg.flag_dict)) {
        uint64_t dict = 0;
        int rc = ps_tn_read64(c, obj + (uint64_t)(int64_t)L->mg.dict, &dict);
        if (rc < 0)
            return rc;
        switch (L->managed_model) {
        case PS_TN_MANAGED_VALUES: {
            uint64_t values;
            if ((rc = ps_tn_read64(c, obj + (uint64_t)(int64_t)L->mg.values, &values)) < 0)
                return rc;
            if (values)
                return ps_tn_keys_items(c, t->cached_keys, values, 0, it);
            break;
        }
        case PS_TN_MANAGED_TAGGED:
            if (dict & 1)
                return ps_tn_keys_items(c, t->cached_keys, dict + 1, 0, it);
            break;
        case PS_TN_MANAGED_INLINE:
            if (!dict && (t->flags & L->mg.flag_inline)) {
                if (t->basicsize < 16 || t->basicsize > 4096)
                    return PS_ECORRUPT;
                return ps_tn_keys_items(c, t->cached_keys, obj + (uint64_t)t->basicsize, 1, it);
            }
            break;
        case PS_TN_MANAGED_NONE:
            break;
        }
        return dict ? ps_tn_dict_items(c, dict, it) : PS_ECORRUPT;
    }
    if (t->dictoffset <= 0 || t->dictoffset > 4096)
        return PS_ECORRUPT; /* no __dict__, or a variable-size object */
    uint64_t dict;
    int rc = ps_tn_read64(c, obj + (uint64_t)t->dictoffset, &dict);
    if (rc < 0)
        return rc;
    return ps_tn_dict_items(c, dict, it);
}

/* Value of an int object (PyLong, or PyInt on 2.7); negative or wider than 64 bits fails. */
static int ps_tn_int(struct ps_tn_ctx *c, uint64_t obj, uint64_t *out)
{
    const struct ps_tn_layout *L = c->L;
    int is_long = ps_tn_is(c, obj, L->major == 2 ? "long" : "int");
    if (!is_long) {
        if (L->lg.int_ival < 0 || !ps_tn_is(c, obj, "int"))
            return PS_ECORRUPT;
        int64_t v;
        int rc = ps_mem_read(c->mem, obj + (uint64_t)L->lg.int_ival, &v, 8);
        if (rc < 0)
            return rc;
        if (v < 0)
            return PS_ERANGE;
        *out = (uint64_t)v;
        return 0;
    }
    /* Three digits carry 64 bits with a 30-bit (or 15-bit: five) digit. */
    enum { MAXD = 5 };
    uint8_t b[64];
    size_t ds = (size_t)L->lg.digit_size;
    if ((ds != 2 && ds != 4) || L->lg.shift <= 0 || L->lg.digits + MAXD * 4 > (int32_t)sizeof b)
        return PS_ECORRUPT;
    int rc = ps_mem_read(c->mem, obj, b, (size_t)L->lg.digits);
    if (rc < 0)
        return rc;
    uint64_t size = ps_tn_u64(b, L->lg.size);
    int64_t nd;
    if (L->long_model == PS_TN_LONG_TAG) {
        uint64_t sign = size & (uint64_t)L->lg.sign_mask;
        if (sign == 2)
            return PS_ERANGE;
        nd = sign == 1 ? 0 : (int64_t)(size >> L->lg.tag_shift);
    } else {
        nd = (int64_t)size;
        if (nd < 0)
            return PS_ERANGE;
    }
    if (nd > MAXD)
        return PS_ERANGE;
    if (nd > 0 && (rc = ps_mem_read(c->mem, obj + (uint64_t)L->lg.digits,
                                     b + L->lg.digits, (size_t)nd * ds)) < 0)
        return rc;
    uint64_t v = 0;
    for (int64_t i = nd - 1; i >= 0; i--) {
        uint32_t d = 0;
        memcpy(&d, b + L->lg.digits + (size_t)i * ds, ds);
        if (d >> L->lg.shift)
            return PS_ECORRUPT;
        if (v >> (64 - L->lg.shift))
            return PS_ERANGE;
        v = (v << L->lg.shift) | d;
    }
    *out = v;
    return 0;
}

/* The name of one Thread object into out (PS_TN_NAME_SIZE bytes). */
static int ps_tn_thread_name(struct ps_tn_ctx *c, uint64_t thread, struct ps_tn_items *it,
                             char *out)
{
    out[0] = '\0';
    int rc = ps_tn_instance_items(c, thread, it);
    if (rc < 0)
        return rc;
    int i = ps_tn_find_str(c, it, c->L->name_key, &c->name_key);
    if (i < 0)
        return PS_ECORRUPT;
    uint64_t s = it->v[i].value;
    if (!ps_tn_is(c, s, "str"))
        return PS_ECORRUPT;
    rc = ps_py_read_str(c->mem, c->o, s, out, PS_TN_NAME_SIZE, PS_TN_NAME_CHARS);
    if (rc < 0) {
        out[0] = '\0';
        return rc;
    }
    return 0;
}

static const struct ps_tn_layout *ps_tn_layout_for(int major, int minor, int free_threaded)
{
    for (size_t i = 0; i < sizeof ps_tn_layouts / sizeof ps_tn_layouts[0]; i++)
        if (ps_tn_layouts[i].major == major && ps_tn_layouts[i].minor == minor &&
            !ps_tn_layouts[i].free_threaded == !free_threaded)
            return &ps_tn_layouts[i];
    return NULL;
}

int ps_py_thread_names(struct ps_py *py, uint64_t interp, const uint64_t *idents, int n,
                       char (*names)[PS_TN_NAME_SIZE])
{
    for (int i = 0; i < n; i++)
        names[i][0] = '\0';
    struct ps_tn_ctx c;
    memset(&c, 0, sizeof c);
    c.mem = &py->mem;
    c.o = &py->off;
    c.L = ps_tn_layout_for(py->major, py->minor, !!(py->off.flags & PS_PYF_FREE_THREADED));
    if (!c.L || c.o->is_modules == PS_OFF_NONE)
        return PS_EVERSION;
    if (n <= 0)
        return 0;
    if (!ps_tn_ptr_ok(interp))
        return PS_ECORRUPT;

    struct ps_tn_items it = {0}, active = {0};
    int found = 0, rc;
    uint64_t modules, threading, md, act;
    if ((rc = ps_tn_read64(&c, interp + (uint64_t)c.o->is_modules, &modules)) < 0)
        goto out;
    rc = PS_ECORRUPT;
    threading = ps_tn_dict_get(&c, modules, "threading", &it);
    if (!threading || !ps_tn_is(&c, threading, "module"))
        goto out;
    if ((rc = ps_tn_read64(&c, threading + (uint64_t)c.L->md_dict, &md)) < 0)
        goto out;
    rc = PS_ECORRUPT;
    act = ps_tn_dict_get(&c, md, "_active", &it);
    if (!act || ps_tn_dict_items(&c, act, &active) < 0)
        goto out;
    rc = 0;
    for (int k = 0; k < active.n && found < n; k++) {
        /* An int's hash is its value (below 2**61 - 1, which covers pthread_t values in
         * practice): when the entry stores one, only keys whose hash is wanted are read. */
        int wanted = !active.v[k].has_hash;
        for (int i = 0; i < n && !wanted; i++)
            wanted = !names[i][0] && idents[i] == active.v[k].hash;
        uint64_t ident = 0;
        if (!wanted || ps_tn_int(&c, active.v[k].key, &ident) < 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (idents[i] != ident || names[i][0])
                continue;
            if (ps_tn_thread_name(&c, active.v[k].value, &it, names[i]) == 0 && names[i][0])
                found++;
            break;
        }
    }
out:
    free(it.v);
    free(active.v);
    free(c.buf);
    if (rc == PS_ENOPROC || (rc < 0 && found == 0))
        return rc;
    return found;
}
