/* profile.c — the profile: sample counts per interned stack, the session's self-statistics,
 * free-form metadata and, for --subprocesses sessions, a per-process summary.
 *
 * Filled by the sampler (live) or by the folded reader (report); read by every writer in out/.
 * Counts are a dense array indexed by stack id that grows geometrically, so counting a sample
 * of a known stack is one add.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_profile.h"
#include "ps_util.h"

static const char *const ps_drop_names[] = {
#define PS_X_DROPNAME(n, s) s,
    PS_DROPS(PS_X_DROPNAME)
#undef PS_X_DROPNAME
};

const char *ps_drop_name(enum ps_drop d)
{
    if ((unsigned)d >= PS_DROP__COUNT)
        return "unknown";
    return ps_drop_names[d];
}

uint64_t ps_stats_dropped_total(const struct ps_stats *s)
{
    uint64_t t = 0;
    for (int i = 0; i < PS_DROP__COUNT; i++)
        t += s->dropped[i];
    return t;
}

void ps_profile_init(struct ps_profile *p)
{
    memset(p, 0, sizeof *p);
    p->in = ps_intern_new();
}

void ps_profile_release(struct ps_profile *p)
{
    ps_intern_free(p->in);
    free(p->counts);
    for (int i = 0; i < p->meta.n; i++) {
        free(p->meta.key[i]);
        free(p->meta.val[i]);
    }
    for (int i = 0; i < p->nprocs; i++)
        free(p->procs[i].cmdline);
    free(p->procs);
    memset(p, 0, sizeof *p);
}

void ps_profile_add_proc(struct ps_profile *p, const struct ps_proc_summary *sum)
{
    p->procs = ps_xrealloc(p->procs, sizeof *p->procs * ((size_t)p->nprocs + 1));
    p->procs[p->nprocs] = *sum;
    p->procs[p->nprocs].cmdline = ps_xstrdup(sum->cmdline ? sum->cmdline : "");
    p->nprocs++;
}

void ps_profile_add(struct ps_profile *p, uint32_t stack_id, uint64_t count)
{
    if (!stack_id)
        return;
    if (stack_id >= p->counts_cap) {
        uint32_t ncap = p->counts_cap ? p->counts_cap : 256;
        while (ncap <= stack_id)
            ncap = ncap > UINT32_MAX / 2 ? UINT32_MAX : ncap * 2;
        p->counts = ps_xrealloc(p->counts, (size_t)ncap * sizeof *p->counts);
        memset(p->counts + p->counts_cap, 0, (size_t)(ncap - p->counts_cap) * sizeof *p->counts);
        p->counts_cap = ncap;
    }
    p->counts[stack_id] += count;
    p->total += count;
}

static int ps_meta_index(const struct ps_meta *m, const char *key)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0)
            return i;
    return -1;
}

void ps_meta_set(struct ps_meta *m, const char *key, const char *val)
{
    int i = ps_meta_index(m, key);
    if (i >= 0) {
        free(m->val[i]);
        if (val) {
            m->val[i] = ps_xstrdup(val);
            return;
        }
        /* NULL removes the key, keeping the others in order. */
        free(m->key[i]);
        memmove(&m->key[i], &m->key[i + 1], (size_t)(m->n - i - 1) * sizeof m->key[0]);
        memmove(&m->val[i], &m->val[i + 1], (size_t)(m->n - i - 1) * sizeof m->val[0]);
        m->n--;
        return;
    }
    if (!val)
        return;
    if (m->n >= PS_META_MAX) {
        ps_log(2, "metadata full, dropping key %s", key);
        return;
    }
    m->key[m->n] = ps_xstrdup(key);
    m->val[m->n] = ps_xstrdup(val);
    m->n++;
}

const char *ps_meta_get(const struct ps_meta *m, const char *key)
{
    int i = ps_meta_index(m, key);
    return i >= 0 ? m->val[i] : NULL;
}

size_t ps_profile_bytes(const struct ps_profile *p)
{
    size_t n = sizeof *p + (size_t)p->counts_cap * sizeof *p->counts;
    if (p->in)
        n += ps_intern_bytes(p->in);
    for (int i = 0; i < p->meta.n; i++)
        n += strlen(p->meta.key[i]) + strlen(p->meta.val[i]) + 2;
    return n;
}

static uint64_t ps_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void ps_profile_merge(struct ps_profile *dst, const struct ps_profile *src, double scale)
{
    const struct ps_intern *in = src->in;
    uint32_t nframes = ps_intern_nframes(in), nstacks = ps_intern_nstacks(in);
    uint32_t *fmap = ps_xcalloc((size_t)nframes + 1, sizeof *fmap);
    for (uint32_t id = 1; id <= nframes; id++) {
        const struct ps_frame_key *k = ps_intern_frame_get(in, id);
        uint32_t name = ps_intern_str(dst->in, ps_intern_str_get(in, k->name) ? ps_intern_str_get(in, k->name) : "",
                                      ps_intern_str_len(in, k->name));
        uint32_t file = k->file ? ps_intern_str(dst->in, ps_intern_str_get(in, k->file),
                                                ps_intern_str_len(in, k->file))
                                : 0;
        fmap[id] = ps_intern_frame(dst->in, name, file, k->line);
    }
    uint32_t *buf = NULL, cap = 0;
    for (uint32_t sid = 1; sid <= nstacks && sid < src->counts_cap; sid++) {
        uint64_t c = src->counts[sid];
        if (!c)
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        if (n > cap) {
            cap = n;
            buf = ps_xrealloc(buf, (size_t)cap * sizeof *buf);
        }
        for (uint32_t i = 0; i < n; i++)
            buf[i] = fmap[fr[i]];
        double w = (double)c * scale + 0.5;
        uint64_t cs = w < 1 ? 1 : w >= 1.8e19 ? UINT64_MAX : (uint64_t)w;
        if (cs > UINT64_MAX - dst->total)
            cs = UINT64_MAX - dst->total;
        ps_profile_add(dst, ps_intern_stack(dst->in, buf, n), cs);
    }
    free(buf);
    free(fmap);

    const struct ps_stats *s = &src->stats;
    struct ps_stats *d = &dst->stats;
    if (src->has_stats) {
        int first = !dst->has_stats;
        /* thread stops are timed only in --native sessions: merged among those alone */
        int nat_src = s->native_samples || s->native_failed;
        int nat_first = !(d->native_samples || d->native_failed);
        d->duration_s += s->duration_s;
        d->ticks = ps_add_sat(d->ticks, s->ticks);
        d->late_ticks = ps_add_sat(d->late_ticks, s->late_ticks);
        d->missed_ticks = ps_add_sat(d->missed_ticks, s->missed_ticks);
        d->truncated = ps_add_sat(d->truncated, s->truncated);
        d->thread_samples = ps_add_sat(d->thread_samples, s->thread_samples);
        for (int i = 0; i < PS_DROP__COUNT; i++)
            d->dropped[i] = ps_add_sat(d->dropped[i], s->dropped[i]);
        d->idle_skipped = ps_add_sat(d->idle_skipped, s->idle_skipped);
        d->gil_samples = ps_add_sat(d->gil_samples, s->gil_samples);
        d->active_samples = ps_add_sat(d->active_samples, s->active_samples);
        d->nogil_samples = ps_add_sat(d->nogil_samples, s->nogil_samples);
        d->attached_samples = ps_add_sat(d->attached_samples, s->attached_samples);
        d->remote_reads = ps_add_sat(d->remote_reads, s->remote_reads);
        d->native_samples = ps_add_sat(d->native_samples, s->native_samples);
        d->native_failed = ps_add_sat(d->native_failed, s->native_failed);
        d->native_mismatch = ps_add_sat(d->native_mismatch, s->native_mismatch);
#define PS_MERGE_MMM(a, b, c)                                                          \
        d->a = first ? s->a : PS_MIN(d->a, s->a);                                      \
        d->b = first ? s->b : PS_MAX(d->b, s->b);                                      \
        d->c = first ? s->c : PS_MAX(d->c, s->c);
        PS_MERGE_MMM(sample_ns_min, sample_ns_median, sample_ns_max)
        PS_MERGE_MMM(sample_cpu_ns_min, sample_cpu_ns_median, sample_cpu_ns_max)
        if (nat_src) {
            int f = nat_first;
            d->stop_ns_min = f ? s->stop_ns_min : PS_MIN(d->stop_ns_min, s->stop_ns_min);
            d->stop_ns_median = f ? s->stop_ns_median : PS_MAX(d->stop_ns_median, s->stop_ns_median);
            d->stop_ns_max = f ? s->stop_ns_max : PS_MAX(d->stop_ns_max, s->stop_ns_max);
        }
#undef PS_MERGE_MMM
        if (d->rate_hz <= 0)
            d->rate_hz = s->rate_hz;
        dst->has_stats = 1;
    }
    if (dst->interval_s <= 0)
        dst->interval_s = src->interval_s;
    for (int i = 0; i < src->meta.n; i++)
        if (!ps_meta_get(&dst->meta, src->meta.key[i]))
            ps_meta_set(&dst->meta, src->meta.key[i], src->meta.val[i]);
}
