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
