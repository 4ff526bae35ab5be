/* fuzz_linetable.c — libFuzzer target for the line-table decoders (pytext.c).
 * Input: byte 0 picks the format (0 = invalid, 1..4 = ps_line_format), bytes 1..4 are
 * firstlineno (little-endian int32), the rest is the table. Checks that decoding never fails
 * other than with PS_EFORMAT, that decoded ranges are sorted, non-empty, non-overlapping and
 * merged, and that ps_line_for_offset agrees with decode + lookup.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_pytext.h"
#include "ps_util.h"

#define CHECK(c)                                                                                \
    do {                                                                                        \
        if (!(c)) {                                                                             \
            fprintf(stderr, "fuzz_linetable: check failed: %s (line %d)\n", #c, __LINE__);     \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

static void agree(enum ps_line_format fmt, const uint8_t *t, size_t len, int first,
                  const struct ps_line_range *r, int n, int64_t off)
{
    int a = ps_line_for_offset(fmt, t, len, first, off);
    int b = ps_linetable_lookup(r, n, first, off);
    if (a != b) {
        fprintf(stderr, "fuzz_linetable: fmt %d offset %lld: streaming %d, decoded %d\n", (int)fmt,
                (long long)off, a, b);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    enum ps_line_format fmt = (enum ps_line_format)(data[0] % 5);
    int32_t first = (int32_t)((uint32_t)data[1] | (uint32_t)data[2] << 8 |
                              (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24);
    const uint8_t *t = data + 5;
    size_t len = size - 5;
    int max = (int)len + 2; /* enough for every format: at most one range per table byte */
    struct ps_line_range *r = malloc(sizeof *r * (size_t)max);
    CHECK(r);

    CHECK(ps_line_for_offset(fmt, t, len, first, -1) == first);
    int n = ps_linetable_decode(fmt, t, len, first, r, max);
    if (n < 0) {
        CHECK(n == PS_EFORMAT);
        if (fmt != 0 && fmt != PS_LINES_LOCATIONS)
            CHECK(len & 1);
        /* Best effort on a broken table: must not crash. */
        for (int64_t off = 0; off < 16; off++)
            (void)ps_line_for_offset(fmt, t, len, first, off);
        free(r);
        return 0;
    }
    CHECK(n <= max);
    CHECK(ps_linetable_lookup(r, n, first, -1) == first);
    for (int i = 0; i < n; i++) {
        CHECK(r[i].start < r[i].end);
        CHECK(r[i].line >= -1);
        if (i > 0) {
            CHECK(r[i - 1].end <= r[i].start);
            CHECK(!(r[i - 1].end == r[i].start && r[i - 1].line == r[i].line));
        }
    }
    if (fmt == PS_LINES_LNOTAB27 || fmt == PS_LINES_LNOTAB) {
        CHECK(n >= 1 && r[0].start == 0 && r[n - 1].end == UINT32_MAX);
    }
    if (n > 0) {
        /* One slot short must be reported, not silently truncated. */
        CHECK(ps_linetable_decode(fmt, t, len, first, r, n - 1) == PS_ERANGE);
        CHECK(ps_linetable_decode(fmt, t, len, first, r, n) == n);
    }

    /* Range edges (a bounded sample of them) and a few offsets taken from the input. */
    int step = n > 32 ? n / 32 : 1;
    for (int i = 0; i < n; i += step) {
        agree(fmt, t, len, first, r, n, r[i].start);
        agree(fmt, t, len, first, r, n, (int64_t)r[i].end - 1);
        agree(fmt, t, len, first, r, n, r[i].end);
        if (r[i].start > 0)
            agree(fmt, t, len, first, r, n, (int64_t)r[i].start - 1);
    }
    for (size_t i = 0; i + 1 < len && i < 16; i += 2)
        agree(fmt, t, len, first, r, n, (int64_t)(t[i] | t[i + 1] << 8));
    static const int64_t far[] = {0, 1, 2, (int64_t)UINT32_MAX - 1, (int64_t)UINT32_MAX,
                                  (int64_t)UINT32_MAX + 1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof far / sizeof far[0]; i++)
        agree(fmt, t, len, first, r, n, far[i]);
    free(r);
    return 0;
}
