/* test_mem.c — the live memory reader's batched read (proc/mem.c, ps_mem_readv_each), run on
 * this test process itself (process_vm_readv on one's own PID needs no privilege): iovs that
 * lie close together are fetched as one range and copied out, a bad address costs its own iov
 * (and one more call), never the batch, and the results match the memory byte for byte.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ps_mem.h"
#include "ps_util.h"

#define PAGE 4096

/* Four pages with the second one unmapped: [0] data, [1] hole, [2] data, [3] data. */
static uint8_t *map_with_hole(void)
{
    uint8_t *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    for (int i = 0; i < 4 * PAGE; i++)
        if (i < PAGE || i >= 2 * PAGE)
            p[i] = (uint8_t)(i * 7 + 3);
    cr_assert_eq(munmap(p + PAGE, PAGE), 0);
    return p;
}

static struct ps_iov at(const uint8_t *base, size_t off, void *buf, size_t len)
{
    return (struct ps_iov){(uint64_t)(uintptr_t)(base + off), buf, len};
}

Test(mem, close_iovs_one_call_and_exact_bytes)
{
    uint8_t *p = map_with_hole();
    struct ps_mem m;
    cr_assert_eq(ps_mem_open_pid(&m, getpid()), 0);
    uint8_t a[16], b[24], c[100], d[8], e[PAGE];
    /* a, b and c lie within a few hundred bytes (one range), out of order; d is far away in
     * another page, and e spans pages 2-3 whole. */
    struct ps_iov v[5] = {
        at(p, 200, a, sizeof a), at(p, 40, b, sizeof b), at(p, 600, c, sizeof c),
        at(p, 2 * PAGE + 3000, d, sizeof d), at(p, 2 * PAGE + 100, e, sizeof e),
    };
    int ok[5] = {0};
    cr_assert_eq(ps_mem_readv_each(&m, v, 5, ok), 0);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(ok[i], 1, "iov %d", i);
        cr_expect_eq(memcmp(v[i].buf, (void *)(uintptr_t)v[i].addr, v[i].len), 0,
                     "iov %d bytes differ", i);
    }
    cr_expect_eq(m.remote_reads, 1, "%llu calls for one batch",
                 (unsigned long long)m.remote_reads);
    ps_mem_close(&m);
    munmap(p, PAGE);
    munmap(p + 2 * PAGE, 2 * PAGE);
}

Test(mem, bad_address_costs_its_own_iov)
{
    uint8_t *p = map_with_hole();
    struct ps_mem m;
    cr_assert_eq(ps_mem_open_pid(&m, getpid()), 0);
    uint8_t a[8], hole[8], c[8], d[8];
    struct ps_iov v[4] = {
        at(p, 100, a, sizeof a),
        at(p, PAGE + 2000, hole, sizeof hole), /* unmapped, far from both neighbours */
        at(p, 2 * PAGE + 3500, c, sizeof c),
        at(p, 3 * PAGE + 10, d, sizeof d),
    };
    int ok[4] = {0};
    memset(hole, 0xee, sizeof hole);
    cr_assert_eq(ps_mem_readv_each(&m, v, 4, ok), 0);
    cr_expect_eq(ok[0], 1);
    cr_expect_eq(ok[1], 0, "the unmapped iov must fail");
    cr_expect_eq(ok[2], 1);
    cr_expect_eq(ok[3], 1);
    cr_expect_eq(memcmp(a, p + 100, 8), 0);
    cr_expect_eq(memcmp(c, p + 2 * PAGE + 3500, 8), 0);
    cr_expect_eq(memcmp(d, p + 3 * PAGE + 10, 8), 0);
    /* One call stops at the hole, one more resumes after it. */
    cr_expect_eq(m.remote_reads, 2, "%llu calls", (unsigned long long)m.remote_reads);
    ps_mem_close(&m);
    munmap(p, PAGE);
    munmap(p + 2 * PAGE, 2 * PAGE);
}

Test(mem, group_with_a_bad_member_is_read_member_by_member)
{
    uint8_t *p = map_with_hole();
    struct ps_mem m;
    cr_assert_eq(ps_mem_open_pid(&m, getpid()), 0);
    /* The last bytes of page 0 and the first of the hole lie 100 bytes apart: one range that
     * the kernel refuses; its members are then read alone. */
    uint8_t a[8], hole[8], c[8];
    struct ps_iov v[3] = {
        at(p, PAGE - 108, a, sizeof a),
        at(p, PAGE, hole, sizeof hole),
        at(p, 2 * PAGE + 8, c, sizeof c),
    };
    int ok[3] = {0};
    cr_assert_eq(ps_mem_readv_each(&m, v, 3, ok), 0);
    cr_expect_eq(ok[0], 1, "the good member of a failed range");
    cr_expect_eq(ok[1], 0);
    cr_expect_eq(ok[2], 1);
    cr_expect_eq(memcmp(a, p + PAGE - 108, 8), 0);
    cr_expect_eq(memcmp(c, p + 2 * PAGE + 8, 8), 0);
    ps_mem_close(&m);
    munmap(p, PAGE);
    munmap(p + 2 * PAGE, 2 * PAGE);
}

Test(mem, more_iovs_than_one_call_takes)
{
    /* 3000 iovs over one page each 8 bytes apart (one range) and 3000 spread one per 2 KiB
     * (ranges of their own, over three calls of at most 1024). */
    size_t len = 3000 * 2048;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    for (size_t i = 0; i < len; i += 8)
        memcpy(p + i, &i, sizeof i);
    static struct ps_iov v[3000];
    static uint64_t out[3000];
    static int ok[3000];
    struct ps_mem m;
    cr_assert_eq(ps_mem_open_pid(&m, getpid()), 0);
    for (int i = 0; i < 3000; i++)
        v[i] = at(p, (size_t)i * 2048, &out[i], 8);
    cr_assert_eq(ps_mem_readv_each(&m, v, 3000, ok), 0);
    for (int i = 0; i < 3000; i++) {
        cr_assert_eq(ok[i], 1, "iov %d", i);
        cr_assert_eq(out[i], (uint64_t)i * 2048, "iov %d", i);
    }
    cr_expect_eq(m.remote_reads, 3, "%llu calls for 3000 separate iovs",
                 (unsigned long long)m.remote_reads);
    ps_mem_close(&m);
    munmap(p, len);
}

/* Coalesced ranges are read into scratch at their own alignment (see ps_util.h): many groups
 * whose addresses sit 63 bytes past a 64-byte boundary need the most padding. Under ASan an
 * undersized scratch shows as an overflow; everywhere the bytes must come out exact. */
Test(mem, coalesced_groups_at_every_alignment)
{
    enum { GROUPS = 24, SPAN = 3000 };
    uint8_t *p = mmap(NULL, GROUPS * SPAN + PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    for (int i = 0; i < GROUPS * SPAN + PAGE; i++)
        p[i] = (uint8_t)(i * 13 + 5);
    struct ps_mem m;
    cr_assert_eq(ps_mem_open_pid(&m, getpid()), 0);
    static uint8_t bufs[GROUPS * 2][40];
    struct ps_iov v[GROUPS * 2];
    int ok[GROUPS * 2];
    /* Two neighbouring iovs per group (one range), groups 3000 bytes apart (separate ranges),
     * starting at every shift 0..63 from a 64-byte boundary, the last ones at 63. */
    for (int g = 0; g < GROUPS; g++) {
        size_t shift = g < GROUPS / 2 ? (size_t)(g * 5 % 64) : 63;
        size_t off = (size_t)g * SPAN + 64 - ((size_t)g * SPAN % 64) + shift;
        v[2 * g] = at(p, off, bufs[2 * g], 25 + (size_t)g % 7);
        v[2 * g + 1] = at(p, off + 60, bufs[2 * g + 1], 40);
    }
    memset(ok, 0, sizeof ok);
    cr_assert_eq(ps_mem_readv_each(&m, v, GROUPS * 2, ok), 0);
    for (int i = 0; i < GROUPS * 2; i++) {
        cr_expect_eq(ok[i], 1, "iov %d", i);
        cr_expect_eq(memcmp(v[i].buf, (void *)(uintptr_t)v[i].addr, v[i].len), 0,
                     "iov %d bytes differ", i);
    }
    cr_expect_eq(m.remote_reads, 1);
    ps_mem_close(&m);
    munmap(p, GROUPS * SPAN + PAGE);
}
