/* fuzz_maps.c — libFuzzer target for the /proc/PID/maps parser and its lookups (proc/maps.c):
 * any bytes are parsed as maps text; when they parse, the mappings must come out sorted and
 * well-formed, and ps_maps_find / ps_maps_readable are checked against a linear reference on
 * addresses taken from the mappings' edges and from the input itself (including ranges that
 * wrap around the top of the address space).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_proc.h"
#include "ps_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond)                                                                            \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_maps: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* Linear reference for ps_maps_find over sorted, non-overlapping mappings. */
static const struct ps_map *ref_find(const struct ps_maps *m, uint64_t addr)
{
    for (int i = 0; i < m->n; i++)
        if (addr >= m->v[i].start && addr < m->v[i].end)
            return &m->v[i];
    return NULL;
}

/* Reference for ps_maps_readable: [addr, addr+len) lies in readable mappings that follow each
 * other without a gap; a range that wraps past the top of the address space never does. A
 * zero-length range is readable when addr itself is. */
static int ref_readable(const struct ps_maps *m, uint64_t addr, uint64_t len)
{
    const struct ps_map *x = ref_find(m, addr);
    if (!x || x->perms[0] != 'r')
        return 0;
    if (len > UINT64_MAX - addr)
        return 0;
    uint64_t end = addr + len;
    while (end > x->end) {
        const struct ps_map *y = ref_find(m, x->end);
        if (!y || y->perms[0] != 'r')
            return 0;
        x = y;
    }
    return 1;
}

static uint64_t take_u64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, p, n < 8 ? n : 8);
    return v;
}

static void check_addr(const struct ps_maps *m, int disjoint, uint64_t addr, uint64_t len)
{
    const struct ps_map *got = ps_maps_find(m, addr);
    int readable = ps_maps_readable(m, addr, (size_t)len);
    if (!disjoint)
        return; /* overlapping input: only memory safety is asserted */
    FZ_CHECK(got == ref_find(m, addr));
    FZ_CHECK(readable == ref_readable(m, addr, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ps_maps m = {0};
    if (ps_maps_parse((const char *)data, size, &m) < 0) {
        FZ_CHECK(m.v == NULL && m.n == 0); /* nothing left behind on failure */
        return 0;
    }
    int disjoint = 1;
    for (int i = 0; i < m.n; i++) {
        const struct ps_map *x = &m.v[i];
        FZ_CHECK(x->start <= x->end);
        FZ_CHECK(x->path != NULL);
        FZ_CHECK(strlen(x->perms) == 4);
        if (i > 0) {
            FZ_CHECK(m.v[i - 1].start <= x->start);
            if (m.v[i - 1].end > x->start)
                disjoint = 0;
        }
    }
    /* Every edge of every mapping, and its neighbours. */
    for (int i = 0; i < m.n && i < 256; i++) {
        const struct ps_map *x = &m.v[i];
        uint64_t pts[] = {x->start, x->start - 1, x->end, x->end - 1};
        for (size_t k = 0; k < PS_ARRAY_LEN(pts); k++) {
            check_addr(&m, disjoint, pts[k], 0);
            check_addr(&m, disjoint, pts[k], 1);
            check_addr(&m, disjoint, pts[k], 8);
            check_addr(&m, disjoint, pts[k], x->end - x->start);
            check_addr(&m, disjoint, pts[k], UINT64_MAX - pts[k] + 1); /* wraps to 0 */
            check_addr(&m, disjoint, pts[k], UINT64_MAX);
        }
    }
    /* Addresses and lengths drawn from the input bytes (16 per 16-byte window). */
    for (size_t off = 0; off + 16 <= size && off < 4096; off += 16)
        check_addr(&m, disjoint, take_u64(data + off, 8), take_u64(data + off + 8, 8));
    ps_maps_release(&m);
    FZ_CHECK(m.v == NULL && m.n == 0);
    return 0;
}
