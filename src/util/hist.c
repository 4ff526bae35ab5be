/* hist.c — log-linear histogram with exact min/max (include/ps_hist.h): the sampler's tick
 * time, tick CPU time and --native thread stop time statistics. Utility layer: no I/O.
 */
#include <string.h>

#include "ps_hist.h"

void ps_hist_init(struct ps_hist *h)
{
    memset(h, 0, sizeof *h);
}

unsigned ps_hist_bucket(uint64_t v)
{
    if (v < PS_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= PS_HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - PS_HIST_SUB_BITS)) & (PS_HIST_SUB - 1);
    return (e - PS_HIST_SUB_BITS + 1) * PS_HIST_SUB + sub;
}

uint64_t ps_hist_bucket_lo(unsigned i)
{
    if (i < PS_HIST_SUB)
        return i;
    unsigned e = i / PS_HIST_SUB + PS_HIST_SUB_BITS - 1, sub = i % PS_HIST_SUB;
    return (uint64_t)(PS_HIST_SUB + sub) << (e - PS_HIST_SUB_BITS);
}

uint64_t ps_hist_bucket_hi(unsigned i)
{
    if (i < PS_HIST_SUB)
        return i;
    unsigned e = i / PS_HIST_SUB + PS_HIST_SUB_BITS - 1;
    return ps_hist_bucket_lo(i) + ((1ull << (e - PS_HIST_SUB_BITS)) - 1);
}

void ps_hist_add(struct ps_hist *h, uint64_t v)
{
    if (!h->n || v < h->min)
        h->min = v;
    if (!h->n || v > h->max)
        h->max = v;
    h->n++;
    h->b[ps_hist_bucket(v)]++;
}

uint64_t ps_hist_min(const struct ps_hist *h)
{
    return h->n ? h->min : 0;
}

uint64_t ps_hist_max(const struct ps_hist *h)
{
    return h->n ? h->max : 0;
}

uint64_t ps_hist_median(const struct ps_hist *h)
{
    if (!h->n)
        return 0;
    uint64_t want = (h->n + 1) / 2, acc = 0; /* the lower median: the ceil(n/2)-th value */
    unsigned i = ps_hist_bucket(h->min), last = ps_hist_bucket(h->max);
    for (; i < last; i++) {
        acc += h->b[i];
        if (acc >= want)
            break;
    }
    uint64_t lo = ps_hist_bucket_lo(i), hi = ps_hist_bucket_hi(i);
    uint64_t mid = lo + (hi - lo) / 2;
    if (mid < h->min)
        mid = h->min;
    if (mid > h->max)
        mid = h->max;
    return mid;
}
