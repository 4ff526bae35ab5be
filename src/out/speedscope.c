/* speedscope.c — speedscope's JSON file format: the profile's frames once in "shared", then
 * one "sampled" profile per thread (and process) root, each sample a list of frame indices
 * root -> leaf with its count as weight.
 *
 * A writer of out/ (registry in output.c); reads only the finished profile (core/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

#ifndef PS_VERSION
#define PS_VERSION "unknown"
#endif

/* Roots at the head of a stack: how many frames are process/thread roots. */
static uint32_t ps_ss_nroots(const struct ps_intern *in, const uint32_t *fr, uint32_t n)
{
    uint32_t i = 0;
    while (i < n && ps_frame_kind(in, fr[i]) == PS_KIND_ROOT)
        i++;
    return i;
}

static void ps_ss_str(struct ps_strbuf *sb, const struct ps_intern *in, uint32_t sid)
{
    const char *s = ps_intern_str_get(in, sid);
    ps_sb_add_json(sb, s ? s : "", s ? ps_intern_str_len(in, sid) : 0);
}

int ps_speedscope_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;
    uint32_t nframes = ps_intern_nframes(in), nstacks = ps_intern_nstacks(in);
    struct ps_strbuf sb;
    ps_sb_init(&sb);

    /* Frame id -> index in shared.frames (+1; 0 = not used yet). */
    uint32_t *idx = ps_xcalloc((size_t)nframes + 1, sizeof *idx);
    uint32_t nidx = 0;
    ps_sb_adds(&sb, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",");
    ps_sb_adds(&sb, "\"exporter\":\"pysample " PS_VERSION "\",\"name\":");
    const char *cmd = ps_meta_get(&p->meta, "command");
    const char *pid = ps_meta_get(&p->meta, "pid");
    struct ps_strbuf title;
    ps_sb_init(&title);
    ps_sb_printf(&title, "pysample%s%s%s%s", cmd ? ": " : "", cmd ? cmd : "", pid ? " pid " : "",
                 pid ? pid : "");
    ps_sb_add_json(&sb, title.buf, title.len);
    ps_sb_release(&title);
    ps_sb_adds(&sb, ",\"shared\":{\"frames\":[");
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        for (uint32_t i = ps_ss_nroots(in, fr, n); i < n; i++) {
            if (idx[fr[i]])
                continue;
            idx[fr[i]] = ++nidx;
            const struct ps_frame_key *k = ps_intern_frame_get(in, fr[i]);
            ps_sb_adds(&sb, nidx > 1 ? ",{\"name\":" : "{\"name\":");
            ps_ss_str(&sb, in, k->name);
            if (k->file) {
                ps_sb_adds(&sb, ",\"file\":");
                ps_ss_str(&sb, in, k->file);
                if (k->line > 0)
                    ps_sb_printf(&sb, ",\"line\":%d", (int)k->line);
            }
            ps_sb_addc(&sb, '}');
        }
    }
    ps_sb_adds(&sb, "]},\"profiles\":[");

    /* Group stacks by their root prefix (a stack id of the roots alone in a local interner). */
    struct ps_intern *groups = ps_intern_new();
    uint32_t *group_of = ps_xcalloc((size_t)nstacks + 1, sizeof *group_of);
    uint32_t ngroups = 0;
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        group_of[sid] = ps_intern_stack(groups, fr, ps_ss_nroots(in, fr, n));
        if (group_of[sid] > ngroups)
            ngroups = group_of[sid];
    }
    for (uint32_t g = 1; g <= ngroups; g++) {
        uint32_t nr;
        const uint32_t *roots = ps_intern_stack_get(groups, g, &nr);
        uint64_t total = 0;
        for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++)
            if (group_of[sid] == g)
                total += p->counts[sid];
        ps_sb_adds(&sb, g > 1 ? ",{" : "{");
        ps_sb_adds(&sb, "\"type\":\"sampled\",\"name\":");
        struct ps_strbuf name;
        ps_sb_init(&name);
        for (uint32_t i = 0; i < nr; i++) {
            const struct ps_frame_key *k = ps_intern_frame_get(in, roots[i]);
            if (i)
                ps_sb_adds(&name, " / ");
            ps_sb_add(&name, ps_intern_str_get(in, k->name), ps_intern_str_len(in, k->name));
        }
        if (!nr)
            ps_sb_adds(&name, "all threads");
        ps_sb_add_json(&sb, name.buf, name.len);
        ps_sb_release(&name);
        ps_sb_printf(&sb, ",\"unit\":\"none\",\"startValue\":0,\"endValue\":%llu,\"samples\":[",
                     (unsigned long long)total);
        int first = 1;
        for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
            if (group_of[sid] != g)
                continue;
            uint32_t n;
            const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
            ps_sb_adds(&sb, first ? "[" : ",[");
            first = 0;
            for (uint32_t i = nr; i < n; i++)
                ps_sb_printf(&sb, i > nr ? ",%u" : "%u", idx[fr[i]] - 1);
            ps_sb_addc(&sb, ']');
        }
        ps_sb_adds(&sb, "],\"weights\":[");
        first = 1;
        for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
            if (group_of[sid] != g)
                continue;
            ps_sb_printf(&sb, first ? "%llu" : ",%llu", (unsigned long long)p->counts[sid]);
            first = 0;
        }
        ps_sb_adds(&sb, "]}");
        if (sb.len > (1u << 20)) {
            fwrite(sb.buf, 1, sb.len, f);
            ps_sb_reset(&sb);
        }
    }
    ps_sb_adds(&sb, "],\"activeProfileIndex\":0}\n");
    fwrite(sb.buf, 1, sb.len, f);

    ps_intern_free(groups);
    free(group_of);
    free(idx);
    ps_sb_release(&sb);
    return ferror(f) ? PS_EIO : 0;
}
