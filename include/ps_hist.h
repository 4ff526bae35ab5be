/* ps_hist.h — a log-linear histogram of non-negative 64-bit values (nanoseconds) with the
 * exact minimum, maximum and count, for the session's min/median/max statistics.
 *
 * Values below 128 have a bucket each; above, every power of two is cut into 128 buckets, so a
 * bucket is never wider than 1/128 of its values (0.8 %) and no value is ever out of range.
 * The median is the lower median's bucket midpoint, clamped to [min, max]: it always lies
 * between them, and equals the exact value whenever that value's bucket is one wide.
 * Fixed size (about 60 KiB), no allocation: adding is a few instructions.
 */
#ifndef PS_HIST_H
#define PS_HIST_H

#include <stdint.h>

#define PS_HIST_SUB_BITS 7
#define PS_HIST_SUB (1u << PS_HIST_SUB_BITS)
#define PS_HIST_BUCKETS ((64 - PS_HIST_SUB_BITS + 1) * PS_HIST_SUB)

struct ps_hist {
    uint64_t n, min, max;
    uint64_t b[PS_HIST_BUCKETS];
};

void ps_hist_init(struct ps_hist *h);
void ps_hist_add(struct ps_hist *h, uint64_t v);
/* 0 for an empty histogram. */
uint64_t ps_hist_median(const struct ps_hist *h);
uint64_t ps_hist_min(const struct ps_hist *h);
uint64_t ps_hist_max(const struct ps_hist *h);
/* Bucket of v, and the smallest and largest value of bucket i (for the tests). */
unsigned ps_hist_bucket(uint64_t v);
uint64_t ps_hist_bucket_lo(unsigned i);
uint64_t ps_hist_bucket_hi(unsigned i);

#endif
