/* test_profile.c — the profile (core/profile.c): counts per stack id, geometric growth,
 * metadata ownership, drop names and memory that grows with unique stacks only.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ps_profile.h"

Test(profile, init_and_add)
{
    struct ps_profile p;
    ps_profile_init(&p);
    cr_assert_not_null(p.in);
    cr_assert_eq(p.total, 0);
    cr_assert_eq(p.has_stats, 0);
    cr_assert_eq(p.meta.n, 0);
    uint32_t fr = ps_intern_frame(p.in, ps_intern_str(p.in, "f", 1), 0, 0);
    uint32_t s1 = ps_intern_stack(p.in, &fr, 1);
    uint32_t s2 = ps_intern_stack(p.in, NULL, 0);
    ps_profile_add(&p, s1, 3);
    ps_profile_add(&p, s2, 4);
    ps_profile_add(&p, s1, 5);
    ps_profile_add(&p, 0, 100); /* "none": ignored */
    cr_assert_eq(p.counts[s1], 8);
    cr_assert_eq(p.counts[s2], 4);
    cr_assert_eq(p.total, 12);
    ps_profile_release(&p);
    cr_assert_null(p.in);
    cr_assert_null(p.counts);
}

Test(profile, counts_grow_geometrically)
{
    struct ps_profile p;
    ps_profile_init(&p);
    int reallocs = 0;
    uint32_t cap = p.counts_cap;
    for (uint32_t id = 1; id <= 100000; id++) {
        ps_profile_add(&p, id, id);
        if (p.counts_cap != cap) {
            reallocs++;
            cr_assert_geq(p.counts_cap, cap * 2, "growth from %u to %u is not geometric", cap,
                          p.counts_cap);
            cap = p.counts_cap;
        }
        cr_assert_gt(p.counts_cap, id);
    }
    cr_assert_leq(reallocs, 17);
    cr_assert_eq(p.total, 100000ull * 100001ull / 2);
    cr_assert_eq(p.counts[77777], 77777);
    cr_assert_eq(p.counts[1], 1);
    /* Adding to known ids neither moves nor grows the array. */
    uint64_t *before = p.counts;
    for (uint32_t id = 1; id <= 100000; id += 3)
        ps_profile_add(&p, id, 1);
    cr_assert_eq(p.counts, before);
    cr_assert_eq(p.counts_cap, cap);
    /* A jump far ahead zero-fills the gap. */
    ps_profile_add(&p, 3000000, 2);
    cr_assert_eq(p.counts[2999999], 0);
    cr_assert_eq(p.counts[3000000], 2);
    cr_assert_eq(p.counts[100001], 0);
    ps_profile_release(&p);
}

Test(profile, meta_copies_replaces_removes)
{
    struct ps_meta m = {0};
    char key[16] = "python", val[16] = "3.12.1";
    ps_meta_set(&m, key, val);
    strcpy(key, "XXXX");
    strcpy(val, "YYYY");
    cr_assert_str_eq(ps_meta_get(&m, "python"), "3.12.1");
    cr_assert_null(ps_meta_get(&m, "XXXX"));
    ps_meta_set(&m, "pid", "42");
    ps_meta_set(&m, "python", "3.13.0");
    cr_assert_eq(m.n, 2);
    cr_assert_str_eq(ps_meta_get(&m, "python"), "3.13.0");
    cr_assert_str_eq(m.key[0], "python");
    cr_assert_str_eq(m.key[1], "pid");
    ps_meta_set(&m, "command", "python app.py");
    ps_meta_set(&m, "python", NULL);
    cr_assert_eq(m.n, 2);
    cr_assert_null(ps_meta_get(&m, "python"));
    cr_assert_str_eq(m.key[0], "pid");
    cr_assert_str_eq(m.key[1], "command");
    ps_meta_set(&m, "absent", NULL);
    cr_assert_eq(m.n, 2);
    for (int i = 0; i < 2 * PS_META_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        ps_meta_set(&m, k, "v");
    }
    cr_assert_eq(m.n, PS_META_MAX);
    cr_assert_str_eq(ps_meta_get(&m, "k0"), "v");
    cr_assert_null(ps_meta_get(&m, "k40"));
    /* Replacing still works when full. */
    ps_meta_set(&m, "pid", "43");
    cr_assert_str_eq(ps_meta_get(&m, "pid"), "43");
    /* Release through a profile frees them (checked by the ASan run). */
    struct ps_profile p;
    ps_profile_init(&p);
    p.meta = m;
    ps_profile_release(&p);
    cr_assert_eq(p.meta.n, 0);
}

Test(profile, drop_names_and_totals)
{
    cr_assert_str_eq(ps_drop_name(PS_DROP_TORN), "torn read");
    cr_assert_str_eq(ps_drop_name(PS_DROP_VANISHED), "thread vanished");
    cr_assert_str_eq(ps_drop_name(PS_DROP_PROCESS), "process gone");
    cr_assert_str_eq(ps_drop_name(PS_DROP__COUNT), "unknown");
    struct ps_stats s = {0};
    cr_assert_eq(ps_stats_dropped_total(&s), 0);
    s.dropped[PS_DROP_TORN] = 5;
    s.dropped[PS_DROP_DEPTH] = 7;
    s.dropped[PS_DROP_PROCESS] = 1;
    cr_assert_eq(ps_stats_dropped_total(&s), 13);
}

Test(profile, bytes_grow_with_unique_stacks_not_samples)
{
    struct ps_profile p;
    ps_profile_init(&p);
    uint32_t fr[8];
    for (int i = 0; i < 8; i++)
        fr[i] = ps_intern_frame(p.in, ps_intern_str(p.in, "f", 1), 0, i + 1);
    for (uint32_t d = 1; d <= 8; d++)
        ps_profile_add(&p, ps_intern_stack(p.in, fr, d), 1);
    size_t bytes = ps_profile_bytes(&p);
    cr_assert_gt(bytes, sizeof p);
    for (int i = 0; i < 100000; i++)
        ps_profile_add(&p, ps_intern_stack(p.in, fr, (uint32_t)(i % 8) + 1), 1);
    cr_assert_eq(ps_profile_bytes(&p), bytes);
    cr_assert_eq(p.total, 100008);
    ps_meta_set(&p.meta, "command", "python -m http.server");
    cr_assert_gt(ps_profile_bytes(&p), bytes);
    ps_profile_release(&p);
}
