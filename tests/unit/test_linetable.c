/* test_linetable.c — Criterion suite `linetable` for the line-table decoders in pytext.c.
 * Real tables and expected lines come from code objects compiled by every pyenv CPython
 * (tests/unit/vectors/make_line_vectors.py); hand-built tables pin down each format's corner
 * cases, and malformed or truncated tables must fail cleanly.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_pytext.h"
#include "ps_util.h"

struct lv_pair {
    int64_t off;
    int line;
};
struct lv_code {
    const char *name;
    enum ps_line_format fmt;
    int firstlineno;
    const uint8_t *table;
    size_t len;
    const struct lv_pair *pairs;
    size_t npairs;
};
struct lv_set {
    const char *version;
    const struct lv_code *codes;
    size_t ncodes;
};

#include "vectors/lines_2.7.h"
#include "vectors/lines_3.6.h"
#include "vectors/lines_3.7.h"
#include "vectors/lines_3.8.h"
#include "vectors/lines_3.9.h"
#include "vectors/lines_3.10.h"
#include "vectors/lines_3.11.h"
#include "vectors/lines_3.12.h"
#include "vectors/lines_3.13.h"

static const struct lv_set *const sets[] = {
    &lv27_set, &lv36_set, &lv37_set, &lv38_set, &lv39_set,
    &lv310_set, &lv311_set, &lv312_set, &lv313_set,
};

#define RMAX 8192
static struct ps_line_range ranges[RMAX];

/* Decodes and checks the structural promises: sorted, non-empty, non-overlapping ranges with
 * adjacent equal-line ranges merged. Returns the count. */
static int decode_checked(enum ps_line_format fmt, const uint8_t *t, size_t len, int first,
                          const char *what)
{
    int n = ps_linetable_decode(fmt, t, len, first, ranges, RMAX);
    cr_assert_geq(n, 0, "%s: decode failed: %d", what, n);
    for (int i = 0; i < n; i++) {
        cr_assert_lt(ranges[i].start, ranges[i].end, "%s: empty range %d", what, i);
        if (i > 0) {
            cr_assert_leq(ranges[i - 1].end, ranges[i].start, "%s: overlap at %d", what, i);
            cr_assert(!(ranges[i - 1].end == ranges[i].start && ranges[i - 1].line == ranges[i].line),
                      "%s: unmerged ranges %d/%d (line %d)", what, i - 1, i, ranges[i].line);
        }
    }
    return n;
}

Test(linetable, real_vectors_line_for_offset)
{
    size_t checked = 0;
    for (size_t s = 0; s < PS_ARRAY_LEN(sets); s++) {
        for (size_t c = 0; c < sets[s]->ncodes; c++) {
            const struct lv_code *k = &sets[s]->codes[c];
            for (size_t p = 0; p < k->npairs; p++) {
                int got = ps_line_for_offset(k->fmt, k->table, k->len, k->firstlineno,
                                             k->pairs[p].off);
                cr_assert_eq(got, k->pairs[p].line, "%s %s offset %lld: got %d, want %d",
                             sets[s]->version, k->name, (long long)k->pairs[p].off, got,
                             k->pairs[p].line);
                checked++;
            }
        }
    }
    cr_expect_gt(checked, 1000u, "only %zu pairs in the vectors", checked);
}

Test(linetable, real_vectors_decode_lookup)
{
    for (size_t s = 0; s < PS_ARRAY_LEN(sets); s++) {
        for (size_t c = 0; c < sets[s]->ncodes; c++) {
            const struct lv_code *k = &sets[s]->codes[c];
            char what[128];
            snprintf(what, sizeof what, "%s %s", sets[s]->version, k->name);
            int n = decode_checked(k->fmt, k->table, k->len, k->firstlineno, what);
            if (k->fmt == PS_LINES_LNOTAB27 || k->fmt == PS_LINES_LNOTAB) {
                cr_assert_gt(n, 0, "%s: no ranges", what);
                cr_assert_eq(ranges[0].start, 0u, "%s", what);
                cr_assert_eq(ranges[n - 1].end, UINT32_MAX, "%s: last range not open", what);
            }
            for (size_t p = 0; p < k->npairs; p++) {
                int got = ps_linetable_lookup(ranges, n, k->firstlineno, k->pairs[p].off);
                cr_assert_eq(got, k->pairs[p].line, "%s offset %lld: got %d, want %d", what,
                             (long long)k->pairs[p].off, got, k->pairs[p].line);
            }
        }
    }
}

/* ps_line_for_offset and decode + lookup agree for every offset, inside and around the code. */
Test(linetable, streaming_agrees_with_decode)
{
    static const int64_t far[] = {INT64_MIN, -2, -1, (int64_t)UINT32_MAX - 1, (int64_t)UINT32_MAX,
                                  (int64_t)UINT32_MAX + 1, INT64_MAX};
    for (size_t s = 0; s < PS_ARRAY_LEN(sets); s++) {
        for (size_t c = 0; c < sets[s]->ncodes; c++) {
            const struct lv_code *k = &sets[s]->codes[c];
            int n = decode_checked(k->fmt, k->table, k->len, k->firstlineno, k->name);
            int64_t last = k->pairs[k->npairs - 1].off;
            for (int64_t off = -3; off <= last + 40; off++) {
                int a = ps_line_for_offset(k->fmt, k->table, k->len, k->firstlineno, off);
                int b = ps_linetable_lookup(ranges, n, k->firstlineno, off);
                cr_assert_eq(a, b, "%s %s offset %lld: streaming %d, decoded %d",
                             sets[s]->version, k->name, (long long)off, a, b);
            }
            for (size_t i = 0; i < PS_ARRAY_LEN(far); i++) {
                int a = ps_line_for_offset(k->fmt, k->table, k->len, k->firstlineno, far[i]);
                int b = ps_linetable_lookup(ranges, n, k->firstlineno, far[i]);
                cr_assert_eq(a, b, "%s %s offset %lld", sets[s]->version, k->name,
                             (long long)far[i]);
            }
        }
    }
}

/* The vectors really exercise what they are meant to: big forward jumps everywhere, big
 * backward jumps from 3.8 on (multi-line calls map back to their first line), "no line"
 * entries from 3.10 on. */
Test(linetable, vectors_cover_hard_cases)
{
    for (size_t s = 0; s < PS_ARRAY_LEN(sets); s++) {
        const struct lv_set *v = sets[s];
        int up = 0, down = 0, noline = 0;
        for (size_t c = 0; c < v->ncodes; c++) {
            const struct lv_code *k = &v->codes[c];
            for (size_t p = 0; p + 1 < k->npairs; p++) {
                int a = k->pairs[p].line, b = k->pairs[p + 1].line;
                if (a < 0 || b < 0)
                    continue;
                up = PS_MAX(up, b - a);
                down = PS_MAX(down, a - b);
            }
            for (size_t p = 0; p < k->npairs; p++)
                noline += k->pairs[p].line == -1;
        }
        int minor = v->version[0] == '2' ? 7 : atoi(v->version + 2);
        cr_expect_gt(v->ncodes, 10u, "%s", v->version);
        cr_expect_gt(up, 4096, "%s: largest forward jump %d", v->version, up);
        if (v->version[0] == '3' && minor >= 8)
            cr_expect_gt(down, 255, "%s: largest backward jump %d", v->version, down);
        if (v->version[0] == '3' && minor >= 10)
            cr_expect_gt(noline, 0, "%s: no 'no line' entries", v->version);
    }
}

Test(linetable, negative_offset_is_firstlineno)
{
    static const uint8_t t27[] = {4, 1, 6, 2};
    static const uint8_t t310[] = {6, 1, 4, 0x80};
    static const uint8_t tloc[] = {0xf8}; /* no location for the first code unit */
    struct {
        enum ps_line_format fmt;
        const uint8_t *t;
        size_t len;
    } cases[] = {
        {PS_LINES_LNOTAB27, t27, sizeof t27},
        {PS_LINES_LNOTAB, t27, sizeof t27},
        {PS_LINES_LINETABLE310, t310, sizeof t310},
        {PS_LINES_LOCATIONS, tloc, sizeof tloc},
        {PS_LINES_LOCATIONS, NULL, 0},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(cases); i++) {
        cr_expect_eq(ps_line_for_offset(cases[i].fmt, cases[i].t, cases[i].len, 42, -1), 42);
        cr_expect_eq(ps_line_for_offset(cases[i].fmt, cases[i].t, cases[i].len, 42, INT64_MIN), 42);
        int n = ps_linetable_decode(cases[i].fmt, cases[i].t, cases[i].len, 42, ranges, RMAX);
        cr_assert_geq(n, 0);
        cr_expect_eq(ps_linetable_lookup(ranges, n, 42, -1), 42);
    }
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, tloc, sizeof tloc, 42, 0), -1);
    cr_expect_eq(ps_linetable_lookup(NULL, 0, 7, -1), 7);
}

Test(linetable, lnotab_signed_vs_unsigned)
{
    static const uint8_t t[] = {4, 0xff, 2, 0x81};
    /* 2.7: increments are unsigned. */
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, 10, 3), 10);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, 10, 4), 265);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, 10, 6), 394);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, 10, 100000), 394);
    /* 3.6-3.9: signed. */
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 200, 3), 200);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 200, 4), 199);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 200, 5), 199);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 200, 6), 72);

    int n = ps_linetable_decode(PS_LINES_LNOTAB, t, sizeof t, 200, ranges, RMAX);
    cr_assert_eq(n, 3);
    cr_expect(ranges[0].start == 0 && ranges[0].end == 4 && ranges[0].line == 200);
    cr_expect(ranges[1].start == 4 && ranges[1].end == 6 && ranges[1].line == 199);
    cr_expect(ranges[2].start == 6 && ranges[2].end == UINT32_MAX && ranges[2].line == 72);
}

Test(linetable, lnotab_zero_address_steps)
{
    /* (0, 127) pairs carry big line jumps; a line increment at address 0 applies to offset 0. */
    static const uint8_t t[] = {0, 127, 0, 127, 2, 3, 0, 0x80, 2, 1};
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 0), 255);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 1), 255);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 2), 130);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 4), 131);
    int n = ps_linetable_decode(PS_LINES_LNOTAB, t, sizeof t, 1, ranges, RMAX);
    cr_assert_eq(n, 3);
    cr_expect_eq(ranges[1].line, 130);
}

Test(linetable, lnotab_empty_and_merge)
{
    int n = ps_linetable_decode(PS_LINES_LNOTAB27, NULL, 0, 9, ranges, RMAX);
    cr_assert_eq(n, 1);
    cr_expect(ranges[0].start == 0 && ranges[0].end == UINT32_MAX && ranges[0].line == 9);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, NULL, 0, 9, 12345), 9);
    /* Address steps without line change merge into one range. */
    static const uint8_t t[] = {10, 0, 255, 0, 3, 1};
    n = ps_linetable_decode(PS_LINES_LNOTAB, t, sizeof t, 5, ranges, RMAX);
    cr_assert_eq(n, 2);
    cr_expect(ranges[0].start == 0 && ranges[0].end == 268 && ranges[0].line == 5);
    cr_expect(ranges[1].start == 268 && ranges[1].line == 6);
}

Test(linetable, linetable310_no_line_accumulates)
{
    /* [0,6) +1, [6,10) no line, [10,12) +2 counted from the last real line, [12,12) empty +5,
     * [12,14) no line, [14,20) -1. */
    static const uint8_t t[] = {6, 1, 4, 0x80, 2, 2, 0, 5, 2, 0x80, 6, 0xff};
    const int first = 100;
    int want[20];
    for (int i = 0; i < 20; i++)
        want[i] = i < 6 ? 101 : i < 10 ? -1 : i < 12 ? 103 : i < 14 ? -1 : 107;
    int n = decode_checked(PS_LINES_LINETABLE310, t, sizeof t, first, "310");
    cr_assert_eq(n, 5);
    for (int i = 0; i < 20; i++) {
        cr_expect_eq(ps_line_for_offset(PS_LINES_LINETABLE310, t, sizeof t, first, i), want[i],
                     "offset %d", i);
        cr_expect_eq(ps_linetable_lookup(ranges, n, first, i), want[i], "offset %d", i);
    }
    /* Past the end of the table: no line (unlike co_lnotab). */
    cr_expect_eq(ps_line_for_offset(PS_LINES_LINETABLE310, t, sizeof t, first, 20), -1);
    cr_expect_eq(ps_linetable_lookup(ranges, n, first, 20), -1);
    cr_expect_eq(ranges[n - 1].end, 20u);
}

/* Every entry form of the 3.11+ location table, built by hand. */
Test(linetable, locations_every_form)
{
    static const uint8_t t[] = {
        0x81, 0x00,                         /* short form 0, 2 units: same line (50) */
        0xd8, 0x04, 0x05,                   /* one-line form, +1, 1 unit: 51 */
        0xe8, 0x07,                         /* no columns, svarint -3, 1 unit: 48 */
        0xf0, 0x48, 0x03, 0x00, 0x01, 0x01, /* long form, svarint +100, 1 unit: 148 */
        0xfa,                               /* no location, 3 units */
        0xd3, 0x01, 0x02,                   /* one-line form, +0, 4 units: 148 */
        0xe8, 0xc1, 0x02,                   /* no columns: varint 1 | 2 << 6 = 129 -> -64 */
        0x9f, 0x7f,                         /* short form 3, 8 units: same line */
        0xe8, 0x00,                         /* no columns, delta 0 */
    };
    const int first = 50;
    int want[22];
    int k = 0;
    for (int i = 0; i < 2; i++)
        want[k++] = 50;
    want[k++] = 51;
    want[k++] = 48;
    want[k++] = 148;
    for (int i = 0; i < 3; i++)
        want[k++] = -1;
    for (int i = 0; i < 4; i++)
        want[k++] = 148;
    /* 0xc1 has bit 7 set but is a varint byte: only bits 0-6 count. */
    want[k++] = 84;
    for (int i = 0; i < 8; i++)
        want[k++] = 84;
    want[k++] = 84;
    cr_assert_eq(k, 22);
    int n = decode_checked(PS_LINES_LOCATIONS, t, sizeof t, first, "locations");
    for (int i = 0; i < 22; i++) {
        cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, t, sizeof t, first, i), want[i],
                     "unit %d", i);
        cr_expect_eq(ps_linetable_lookup(ranges, n, first, i), want[i], "unit %d", i);
    }
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, t, sizeof t, first, 22), -1);
    cr_expect_eq(ranges[n - 1].end, 22u);
    /* 50 | 51 | 48 | 148 | none | 148 | 84 (merged over the last three entries) */
    cr_expect_eq(n, 7);
}

Test(linetable, locations_malformed)
{
    /* Entry start without bit 7. */
    static const uint8_t bad_start[] = {0x81, 0x00, 0x12, 0x00};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, bad_start, sizeof bad_start, 5, ranges,
                                     RMAX),
                 PS_EFORMAT);
    /* Best effort: the units before the damage still have their line. */
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, bad_start, sizeof bad_start, 5, 1), 5);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, bad_start, sizeof bad_start, 5, 2), -1);

    /* Varint running off the end. */
    static const uint8_t cut_varint[] = {0x80, 0x00, 0xf0, 0x48};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, cut_varint, sizeof cut_varint, 5, ranges,
                                     RMAX),
                 PS_EFORMAT);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, cut_varint, sizeof cut_varint, 5, 0), 5);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, cut_varint, sizeof cut_varint, 5, 1), -1);

    /* Varint longer than any CPython writes. */
    static const uint8_t long_varint[] = {0xe8, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x01};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, long_varint, sizeof long_varint, 5,
                                     ranges, RMAX),
                 PS_EFORMAT);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, long_varint, sizeof long_varint, 5, 0), -1);

    /* Column bytes missing in short and one-line forms. */
    static const uint8_t cut_short[] = {0x80};
    static const uint8_t cut_one[] = {0xd0, 0x01};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, cut_short, 1, 5, ranges, RMAX), PS_EFORMAT);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, cut_one, 2, 5, ranges, RMAX), PS_EFORMAT);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, cut_one, 2, 5, 0), -1);
}

Test(linetable, pairs_odd_length)
{
    static const uint8_t t[] = {4, 1, 2};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LNOTAB, t, sizeof t, 1, ranges, RMAX), PS_EFORMAT);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LNOTAB27, t, sizeof t, 1, ranges, RMAX), PS_EFORMAT);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LINETABLE310, t, sizeof t, 1, ranges, RMAX),
                 PS_EFORMAT);
    /* The streaming lookup ignores the trailing byte, as CPython does. */
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 3), 1);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, t, sizeof t, 1, 9), 2);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LINETABLE310, t, sizeof t, 1, 3), 2);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LINETABLE310, t, sizeof t, 1, 4), -1);
}

/* Every prefix of every real table: no crash; when a prefix decodes, it agrees with the whole
 * table wherever it has something to say. */
Test(linetable, truncated_real_tables)
{
    static struct ps_line_range full[RMAX];
    for (size_t s = 0; s < PS_ARRAY_LEN(sets); s++) {
        for (size_t c = 0; c < sets[s]->ncodes; c++) {
            const struct lv_code *k = &sets[s]->codes[c];
            int nf = ps_linetable_decode(k->fmt, k->table, k->len, k->firstlineno, full, RMAX);
            cr_assert_geq(nf, 0);
            for (size_t cut = 0; cut < k->len; cut++) {
                int n = ps_linetable_decode(k->fmt, k->table, cut, k->firstlineno, ranges, RMAX);
                if (k->fmt != PS_LINES_LOCATIONS) {
                    cr_assert_eq(n < 0, (cut & 1) != 0, "%s %s cut %zu: %d", sets[s]->version,
                                 k->name, cut, n);
                }
                if (n < 0) {
                    cr_assert_eq(n, PS_EFORMAT);
                    continue;
                }
                uint32_t covered = n ? ranges[n - 1].end : 0;
                if (k->fmt == PS_LINES_LNOTAB27 || k->fmt == PS_LINES_LNOTAB)
                    covered = n > 1 ? ranges[n - 2].end : 0; /* the open range is not final */
                for (size_t p = 0; p < k->npairs && k->pairs[p].off < covered; p++)
                    cr_assert_eq(ps_linetable_lookup(ranges, n, k->firstlineno, k->pairs[p].off),
                                 k->pairs[p].line, "%s %s cut %zu offset %lld", sets[s]->version,
                                 k->name, cut, (long long)k->pairs[p].off);
            }
        }
    }
}

Test(linetable, decode_limits)
{
    static const uint8_t t[] = {2, 1, 2, 1, 2, 1};
    cr_expect_eq(ps_linetable_decode(PS_LINES_LINETABLE310, t, sizeof t, 1, ranges, 2), PS_ERANGE);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LINETABLE310, t, sizeof t, 1, ranges, 3), 3);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LINETABLE310, t, sizeof t, 1, ranges, -1), PS_ERANGE);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LINETABLE310, NULL, 0, 1, NULL, 0), 0);
    cr_expect_eq(ps_linetable_decode(PS_LINES_LOCATIONS, NULL, 0, 1, ranges, RMAX), 0);
    cr_expect_eq(ps_linetable_decode((enum ps_line_format)0, t, sizeof t, 1, ranges, RMAX),
                 PS_EFORMAT);
    cr_expect_eq(ps_linetable_decode((enum ps_line_format)99, t, sizeof t, 1, ranges, RMAX),
                 PS_EFORMAT);
    cr_expect_eq(ps_line_for_offset((enum ps_line_format)99, t, sizeof t, 1, 0), -1);
    cr_expect_eq(ps_line_for_offset((enum ps_line_format)99, t, sizeof t, 1, -1), 1);
}

Test(linetable, lookup_edges)
{
    const struct ps_line_range r[] = {{0, 4, 10}, {4, 8, -1}, {10, 12, 11}};
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 0), 10);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 3), 10);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 4), -1);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 8), -1); /* gap */
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 9), -1);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 10), 11);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 11), 11);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, 12), -1);
    cr_expect_eq(ps_linetable_lookup(r, 3, 9, INT64_MAX), -1);
    cr_expect_eq(ps_linetable_lookup(r, 0, 9, 0), -1);
    const struct ps_line_range late[] = {{5, 6, 3}};
    cr_expect_eq(ps_linetable_lookup(late, 1, 9, 4), -1);
    cr_expect_eq(ps_linetable_lookup(late, 1, 9, 5), 3);
}

/* Line arithmetic on garbage cannot overflow: lines outside 0..INT32_MAX read as "no line". */
Test(linetable, line_overflow_is_no_line)
{
    static const uint8_t t[] = {1, 0xff, 1, 0xff};
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, INT_MAX - 300, 0), INT_MAX - 300);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, INT_MAX - 300, 1), INT_MAX - 45);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB27, t, sizeof t, INT_MAX - 300, 2), -1);
    static const uint8_t neg[] = {1, 0x80};
    cr_expect_eq(ps_line_for_offset(PS_LINES_LNOTAB, neg, sizeof neg, 5, 1), -1);
    int n = decode_checked(PS_LINES_LNOTAB, neg, sizeof neg, 5, "neg");
    cr_expect_eq(ps_linetable_lookup(ranges, n, 5, 1), -1);
    /* A long run of maximal location deltas stays bounded. */
    static uint8_t big[4096];
    for (size_t i = 0; i + 7 <= sizeof big; i += 7) {
        const uint8_t e[] = {0xe8, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x3f};
        memcpy(big + i, e, sizeof e);
    }
    n = ps_linetable_decode(PS_LINES_LOCATIONS, big, sizeof big / 7 * 7, 1, ranges, RMAX);
    cr_assert_eq(n, 1); /* every unit is out of range: one merged "no line" range */
    cr_expect_eq(ranges[0].line, -1);
    cr_expect_eq(ps_line_for_offset(PS_LINES_LOCATIONS, big, sizeof big / 7 * 7, 1, 3), -1);
}
