/* test_intern.c — the interner (core/intern.c): dense stable ids for strings, frames and
 * stacks, lookups that do not allocate once an item is known, and growth to many items.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_profile.h"

static uint32_t S(struct ps_intern *in, const char *s)
{
    return ps_intern_str(in, s, strlen(s));
}

Test(intern, string_ids_dense_and_stable)
{
    struct ps_intern *in = ps_intern_new();
    cr_assert_eq(S(in, "alpha"), 1);
    cr_assert_eq(S(in, "beta"), 2);
    cr_assert_eq(S(in, ""), 3);
    cr_assert_eq(S(in, "gamma"), 4);
    cr_assert_eq(S(in, "beta"), 2);
    cr_assert_eq(S(in, "alpha"), 1);
    cr_assert_eq(S(in, ""), 3);
    cr_assert_str_eq(ps_intern_str_get(in, 1), "alpha");
    cr_assert_str_eq(ps_intern_str_get(in, 2), "beta");
    cr_assert_str_eq(ps_intern_str_get(in, 3), "");
    cr_assert_null(ps_intern_str_get(in, 0));
    cr_assert_null(ps_intern_str_get(in, 5));
    /* A slice of a longer buffer: only `len` bytes count, the copy is NUL-terminated. */
    const char buf[] = "betamax";
    cr_assert_eq(ps_intern_str(in, buf, 4), 2);
    uint32_t id = ps_intern_str(in, buf, 7);
    cr_assert_eq(id, 5);
    cr_assert_str_eq(ps_intern_str_get(in, id), "betamax");
    ps_intern_free(in);
}

Test(intern, strings_with_nul_bytes_keep_their_length)
{
    struct ps_intern *in = ps_intern_new();
    uint32_t a = ps_intern_str(in, "a\0b", 3);
    uint32_t b = ps_intern_str(in, "a\0c", 3);
    uint32_t c = ps_intern_str(in, "a", 1);
    cr_assert_neq(a, b);
    cr_assert_neq(a, c);
    cr_assert_eq(ps_intern_str_len(in, a), 3);
    cr_assert_eq(ps_intern_str_len(in, c), 1);
    cr_assert_eq(memcmp(ps_intern_str_get(in, b), "a\0c", 4), 0);
    cr_assert_eq(ps_intern_str(in, "a\0b", 3), a);
    ps_intern_free(in);
}

Test(intern, frames)
{
    struct ps_intern *in = ps_intern_new();
    uint32_t f = S(in, "f"), g = S(in, "g"), file = S(in, "a.py");
    uint32_t f1 = ps_intern_frame(in, f, file, 10);
    uint32_t f2 = ps_intern_frame(in, f, file, 11);
    uint32_t f3 = ps_intern_frame(in, g, file, 10);
    uint32_t f4 = ps_intern_frame(in, f, 0, 10);
    uint32_t f5 = ps_intern_frame(in, f, file, -1);
    cr_assert_eq(f1, 1);
    cr_assert_eq(f2, 2);
    cr_assert_eq(f3, 3);
    cr_assert_eq(f4, 4);
    cr_assert_eq(f5, 5);
    cr_assert_eq(ps_intern_frame(in, f, file, 11), f2);
    cr_assert_eq(ps_intern_frame(in, f, file, -1), f5);
    cr_assert_eq(ps_intern_nframes(in), 5);
    const struct ps_frame_key *k = ps_intern_frame_get(in, f3);
    cr_assert_eq(k->name, g);
    cr_assert_eq(k->file, file);
    cr_assert_eq(k->line, 10);
    cr_assert_null(ps_intern_frame_get(in, 0));
    cr_assert_null(ps_intern_frame_get(in, 6));
    ps_intern_free(in);
}

Test(intern, stacks_including_empty)
{
    struct ps_intern *in = ps_intern_new();
    uint32_t a[] = {1, 2, 3}, b[] = {1, 2}, c[] = {3, 2, 1};
    uint32_t sa = ps_intern_stack(in, a, 3);
    uint32_t sb = ps_intern_stack(in, b, 2);
    uint32_t sc = ps_intern_stack(in, c, 3);
    uint32_t se = ps_intern_stack(in, NULL, 0);
    cr_assert_eq(sa, 1);
    cr_assert_eq(sb, 2);
    cr_assert_eq(sc, 3);
    cr_assert_eq(se, 4);
    uint32_t copy[] = {1, 2, 3};
    cr_assert_eq(ps_intern_stack(in, copy, 3), sa);
    cr_assert_eq(ps_intern_stack(in, copy, 0), se);
    cr_assert_eq(ps_intern_nstacks(in), 4);
    uint32_t n = 99;
    const uint32_t *fr = ps_intern_stack_get(in, sc, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(fr[0], 3);
    cr_assert_eq(fr[2], 1);
    fr = ps_intern_stack_get(in, se, &n);
    cr_assert_eq(n, 0);
    cr_assert_not_null(fr);
    cr_assert_null(ps_intern_stack_get(in, 0, &n));
    cr_assert_eq(n, 0);
    cr_assert_null(ps_intern_stack_get(in, 5, &n));
    ps_intern_free(in);
}

/* Fills an interner the way the sampler does: NS stacks of depth D over NF frames. */
#define NF 300
#define NS 2000
#define D 24
static void fill(struct ps_intern *in, uint32_t *sids, int pass)
{
    uint32_t frames[NF];
    char name[32];
    for (int i = 0; i < NF; i++) {
        int n = snprintf(name, sizeof name, "func_%d", i);
        uint32_t nm = ps_intern_str(in, name, (size_t)n);
        uint32_t file = ps_intern_str(in, i % 2 ? "odd.py" : "even.py", i % 2 ? 6 : 7);
        frames[i] = ps_intern_frame(in, nm, file, i + 1);
    }
    for (int s = 0; s < NS; s++) {
        uint32_t st[D];
        for (int d = 0; d < D; d++)
            st[d] = frames[(s * 7 + d * 13 + (s / 50) * d) % NF];
        uint32_t id = ps_intern_stack(in, st, (uint32_t)(s % D) + 1);
        if (pass == 0)
            sids[s] = id;
        else
            cr_assert_eq(id, sids[s], "stack %d changed id on pass %d", s, pass);
    }
}

Test(intern, steady_state_does_not_allocate)
{
    struct ps_intern *in = ps_intern_new();
    static uint32_t sids[NS];
    fill(in, sids, 0);
    size_t bytes = ps_intern_bytes(in);
    uint32_t nstacks = ps_intern_nstacks(in), nframes = ps_intern_nframes(in);
    struct mallinfo2 before = mallinfo2();
    for (int pass = 1; pass <= 5; pass++)
        fill(in, sids, pass);
    struct mallinfo2 after = mallinfo2();
    cr_assert_eq(ps_intern_bytes(in), bytes);
    cr_assert_eq(ps_intern_nstacks(in), nstacks);
    cr_assert_eq(ps_intern_nframes(in), nframes);
    /* Heap in use is exactly the same: the passes above allocated nothing. */
    cr_assert_eq(after.uordblks, before.uordblks);
    ps_intern_free(in);
}

Test(intern, many_unique_items_grow_correctly)
{
    struct ps_intern *in = ps_intern_new();
    enum { N = 200000 };
    char buf[48];
    size_t bytes0 = ps_intern_bytes(in);
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof buf, "module_%u.fn", i);
        uint32_t s = ps_intern_str(in, buf, (size_t)n);
        cr_assert_eq(s, i + 1);
        uint32_t f = ps_intern_frame(in, s, s, (int32_t)i);
        cr_assert_eq(f, i + 1);
        uint32_t st[2] = {f, f};
        cr_assert_eq(ps_intern_stack(in, st, 1 + (i & 1)), i + 1);
    }
    size_t bytes1 = ps_intern_bytes(in);
    cr_assert_gt(bytes1, bytes0 + (size_t)N * 16);
    /* Everything is still found where it was, with the same ids. */
    for (uint32_t i = 0; i < N; i += 7) {
        int n = snprintf(buf, sizeof buf, "module_%u.fn", i);
        cr_assert_eq(ps_intern_str(in, buf, (size_t)n), i + 1);
        cr_assert_str_eq(ps_intern_str_get(in, i + 1), buf);
        cr_assert_eq(ps_intern_frame(in, i + 1, i + 1, (int32_t)i), i + 1);
        uint32_t n2;
        const uint32_t *fr = ps_intern_stack_get(in, i + 1, &n2);
        cr_assert_eq(n2, 1 + (i & 1));
        cr_assert_eq(fr[0], i + 1);
    }
    cr_assert_eq(ps_intern_bytes(in), bytes1);
    cr_assert_eq(ps_intern_nstacks(in), N);
    cr_assert_eq(ps_intern_nframes(in), N);
    ps_intern_free(in);
}

Test(intern, large_strings_and_stacks)
{
    struct ps_intern *in = ps_intern_new();
    size_t big = 1 << 20;
    char *s = malloc(big);
    memset(s, 'x', big);
    uint32_t small1 = S(in, "before");
    uint32_t id = ps_intern_str(in, s, big);
    uint32_t small2 = S(in, "after");
    cr_assert_eq(ps_intern_str_len(in, id), big);
    cr_assert_eq(strlen(ps_intern_str_get(in, id)), big);
    cr_assert_str_eq(ps_intern_str_get(in, small1), "before");
    cr_assert_str_eq(ps_intern_str_get(in, small2), "after");
    cr_assert_eq(ps_intern_str(in, s, big), id);
    cr_assert_geq(ps_intern_bytes(in), big);

    uint32_t deep[5000];
    for (uint32_t i = 0; i < 5000; i++)
        deep[i] = i % 3 + 1;
    uint32_t sid = ps_intern_stack(in, deep, 5000);
    uint32_t n;
    const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
    cr_assert_eq(n, 5000);
    cr_assert_eq(memcmp(fr, deep, sizeof deep), 0);
    free(s);
    ps_intern_free(in);
}
