/* intern.c — strings -> frames -> stacks, each mapped to a dense id (1, 2, ...; 0 = none).
 * Sits between the sampler (which interns what it reads from the target every tick) and the
 * profile/writers (which turn ids back into text). Three open-addressing hash tables of ids;
 * string bytes and stack frame arrays live in chunked arenas, so pointers stay stable.
 * Looking up a known item only hashes and compares: no allocation, no formatting. */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ps_profile.h"
#include "ps_util.h"

/* ---- arena: bump allocation from chunks that are never moved ------------------------------ */

#define PS_ARENA_CHUNK (64 * 1024)

struct ps_chunk {
    struct ps_chunk *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

struct ps_arena {
    struct ps_chunk *head; /* the chunk being filled comes first */
    size_t used;           /* bytes used in head */
    size_t bytes;          /* heap held by all chunks */
};

static void *ps_arena_alloc(struct ps_arena *a, size_t n, size_t align)
{
    if (a->head) {
        size_t off = (a->used + align - 1) & ~(align - 1);
        if (off + n <= a->head->size) {
            a->used = off + n;
            return a->head->data + off;
        }
    }
    /* A large request gets a chunk of its own behind head, so the current chunk keeps filling. */
    int own = n > PS_ARENA_CHUNK / 4;
    size_t size = own ? n : PS_ARENA_CHUNK;
    struct ps_chunk *c = ps_xmalloc(sizeof *c + size);
    c->size = size;
    a->bytes += sizeof *c + size;
    if (own && a->head) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
        a->used = n;
    }
    return c->data;
}

static void ps_arena_release(struct ps_arena *a)
{
    struct ps_chunk *c = a->head;
    while (c) {
        struct ps_chunk *next = c->next;
        free(c);
        c = next;
    }
    memset(a, 0, sizeof *a);
}

/* ---- hash table of ids: slots keep the hash so growing never re-reads the items ----------- */

struct ps_hslot {
    uint32_t hash;
    uint32_t id; /* 0 = empty */
};

struct ps_htab {
    struct ps_hslot *slots;
    uint32_t cap; /* power of two, or 0 */
    uint32_t n;
};

struct ps_intern;
typedef int (*ps_heq_fn)(const struct ps_intern *in, uint32_t id, const void *key);

/* Returns the id of the item equal to `key`, or 0 with *slot set to where it would go. */
static uint32_t ps_htab_find(const struct ps_htab *t, const struct ps_intern *in, uint32_t hash,
                             ps_heq_fn eq, const void *key, uint32_t *slot)
{
    if (!t->cap) {
        *slot = UINT32_MAX;
        return 0;
    }
    uint32_t mask = t->cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        const struct ps_hslot *s = &t->slots[i];
        if (!s->id) {
            *slot = i;
            return 0;
        }
        if (s->hash == hash && eq(in, s->id, key))
            return s->id;
    }
}

static void ps_htab_grow(struct ps_htab *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 64;
    struct ps_hslot *ns = ps_xcalloc(ncap, sizeof *ns);
    for (uint32_t i = 0; i < t->cap; i++) {
        struct ps_hslot s = t->slots[i];
        if (!s.id)
            continue;
        uint32_t j = s.hash & (ncap - 1);
        while (ns[j].id)
            j = (j + 1) & (ncap - 1);
        ns[j] = s;
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
}

/* Stores id at `slot` (from a failed ps_htab_find), growing first when 3/4 full. */
static void ps_htab_insert(struct ps_htab *t, uint32_t slot, uint32_t hash, uint32_t id)
{
    if (slot == UINT32_MAX || (uint64_t)(t->n + 1) * 4 > (uint64_t)t->cap * 3) {
        ps_htab_grow(t);
        slot = hash & (t->cap - 1);
        while (t->slots[slot].id)
            slot = (slot + 1) & (t->cap - 1);
    }
    t->slots[slot].hash = hash;
    t->slots[slot].id = id;
    t->n++;
}

static size_t ps_htab_bytes(const struct ps_htab *t)
{
    return (size_t)t->cap * sizeof(struct ps_hslot);
}

/* ---- hashing ----------------------------------------------------------------------------- */

static uint64_t ps_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint32_t ps_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    if (len > i)
        memcpy(&tail, p + i, len - i);
    h = (h ^ tail) * 0x100000001b3ull;
    return (uint32_t)ps_mix64(h);
}

static uint32_t ps_hash_u32s(const uint32_t *v, uint32_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ v[i]) * 0xbf58476d1ce4e5b9ull + (h >> 31);
    return (uint32_t)ps_mix64(h);
}

/* ---- the interner ------------------------------------------------------------------------ */

struct ps_str_ent {
    const char *s;
    size_t len;
};

struct ps_stack_ent {
    const uint32_t *frames;
    uint32_t n;
};

struct ps_intern {
    struct ps_arena bytes;  /* string bytes (NUL-terminated) and stack frame arrays */
    struct ps_htab str_tab, frame_tab, stack_tab;
    struct ps_str_ent *strs; /* indexed by id; [0] unused */
    struct ps_frame_key *frames;
    struct ps_stack_ent *stacks;
    uint32_t nstrs, nframes, nstacks; /* highest id in use */
    uint32_t strs_cap, frames_cap, stacks_cap;
};

/* Makes room for index `id` in a dense array, doubling. */
static void *ps_grow_for(void *arr, uint32_t *cap, uint32_t id, size_t elem)
{
    if (id < *cap)
        return arr;
    if (id == UINT32_MAX) {
        ps_log(0, "interner id space exhausted");
        abort();
    }
    uint32_t ncap = *cap ? *cap : 64;
    while (ncap <= id)
        ncap = ncap > UINT32_MAX / 2 ? UINT32_MAX : ncap * 2;
    arr = ps_xrealloc(arr, (size_t)ncap * elem);
    *cap = ncap;
    return arr;
}

struct ps_intern *ps_intern_new(void)
{
    return ps_xcalloc(1, sizeof(struct ps_intern));
}

void ps_intern_free(struct ps_intern *in)
{
    if (!in)
        return;
    ps_arena_release(&in->bytes);
    free(in->str_tab.slots);
    free(in->frame_tab.slots);
    free(in->stack_tab.slots);
    free(in->strs);
    free(in->frames);
    free(in->stacks);
    free(in);
}

struct ps_str_key {
    const char *s;
    size_t len;
};

static int ps_str_eq(const struct ps_intern *in, uint32_t id, const void *key)
{
    const struct ps_str_key *k = key;
    const struct ps_str_ent *e = &in->strs[id];
    return e->len == k->len && (!k->len || memcmp(e->s, k->s, k->len) == 0);
}

uint32_t ps_intern_str(struct ps_intern *in, const char *s, size_t len)
{
    struct ps_str_key key = {s, len};
    uint32_t hash = ps_hash_bytes(s, len), slot;
    uint32_t id = ps_htab_find(&in->str_tab, in, hash, ps_str_eq, &key, &slot);
    if (id)
        return id;
    id = in->nstrs + 1;
    in->strs = ps_grow_for(in->strs, &in->strs_cap, id, sizeof *in->strs);
    char *copy = ps_arena_alloc(&in->bytes, len + 1, 1);
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    in->strs[id] = (struct ps_str_ent){copy, len};
    in->nstrs = id;
    ps_htab_insert(&in->str_tab, slot, hash, id);
    return id;
}

const char *ps_intern_str_get(const struct ps_intern *in, uint32_t id)
{
    if (!id || id > in->nstrs)
        return NULL;
    return in->strs[id].s;
}

size_t ps_intern_str_len(const struct ps_intern *in, uint32_t id)
{
    if (!id || id > in->nstrs)
        return 0;
    return in->strs[id].len;
}

static int ps_frame_eq(const struct ps_intern *in, uint32_t id, const void *key)
{
    const struct ps_frame_key *k = key, *e = &in->frames[id];
    return e->name == k->name && e->file == k->file && e->line == k->line;
}

uint32_t ps_intern_frame(struct ps_intern *in, uint32_t name, uint32_t file, int32_t line)
{
    struct ps_frame_key key = {name, file, line};
    uint32_t hash = (uint32_t)ps_mix64(((uint64_t)name << 32 | file) ^
                                       ((uint64_t)(uint32_t)line * 0x9e3779b97f4a7c15ull));
    uint32_t slot;
    uint32_t id = ps_htab_find(&in->frame_tab, in, hash, ps_frame_eq, &key, &slot);
    if (id)
        return id;
    id = in->nframes + 1;
    in->frames = ps_grow_for(in->frames, &in->frames_cap, id, sizeof *in->frames);
    in->frames[id] = key;
    in->nframes = id;
    ps_htab_insert(&in->frame_tab, slot, hash, id);
    return id;
}

const struct ps_frame_key *ps_intern_frame_get(const struct ps_intern *in, uint32_t id)
{
    if (!id || id > in->nframes)
        return NULL;
    return &in->frames[id];
}

struct ps_stack_key {
    const uint32_t *frames;
    uint32_t n;
};

static int ps_stack_eq(const struct ps_intern *in, uint32_t id, const void *key)
{
    const struct ps_stack_key *k = key;
    const struct ps_stack_ent *e = &in->stacks[id];
    return e->n == k->n && (!k->n || memcmp(e->frames, k->frames, k->n * sizeof *k->frames) == 0);
}

uint32_t ps_intern_stack(struct ps_intern *in, const uint32_t *frames, uint32_t n)
{
    struct ps_stack_key key = {frames, n};
    uint32_t hash = ps_hash_u32s(frames, n), slot;
    uint32_t id = ps_htab_find(&in->stack_tab, in, hash, ps_stack_eq, &key, &slot);
    if (id)
        return id;
    id = in->nstacks + 1;
    in->stacks = ps_grow_for(in->stacks, &in->stacks_cap, id, sizeof *in->stacks);
    uint32_t *copy = NULL;
    if (n) {
        copy = ps_arena_alloc(&in->bytes, (size_t)n * sizeof *copy, alignof(uint32_t));
        memcpy(copy, frames, (size_t)n * sizeof *copy);
    }
    in->stacks[id] = (struct ps_stack_ent){copy, n};
    in->nstacks = id;
    ps_htab_insert(&in->stack_tab, slot, hash, id);
    return id;
}

const uint32_t *ps_intern_stack_get(const struct ps_intern *in, uint32_t id, uint32_t *n)
{
    if (!id || id > in->nstacks) {
        *n = 0;
        return NULL;
    }
    *n = in->stacks[id].n;
    /* An empty stack has no frame array; hand back a valid pointer all the same. */
    static const uint32_t none[1];
    return in->stacks[id].frames ? in->stacks[id].frames : none;
}

uint32_t ps_intern_nstacks(const struct ps_intern *in)
{
    return in->nstacks;
}

uint32_t ps_intern_nframes(const struct ps_intern *in)
{
    return in->nframes;
}

size_t ps_intern_bytes(const struct ps_intern *in)
{
    return sizeof *in + in->bytes.bytes + ps_htab_bytes(&in->str_tab) +
           ps_htab_bytes(&in->frame_tab) + ps_htab_bytes(&in->stack_tab) +
           (size_t)in->strs_cap * sizeof *in->strs + (size_t)in->frames_cap * sizeof *in->frames +
           (size_t)in->stacks_cap * sizeof *in->stacks;
}
