/* merge.c — one thread's C and Python stacks as a single stack (last step of native/): each
 * activation of CPython's evaluation loop in the symbolized C stack becomes the Python frames
 * it ran (grouped by ps_py_frame.entry), interpreter plumbing is hidden, extension and library
 * frames stay. Count mismatches never fail the merge; they are counted for the caller.
 */
#include <stdio.h>
#include <string.h>

#include "ps_native.h"
#include "ps_util.h"

struct ps_merge_out {
    struct ps_merged_frame *out;
    int n, max;
    struct ps_merge_stats *st;
};

static struct ps_merged_frame *ps_merge_slot(struct ps_merge_out *m)
{
    if (m->n >= m->max) {
        m->st->truncated = 1;
        return NULL;
    }
    struct ps_merged_frame *f = &m->out[m->n++];
    memset(f, 0, sizeof *f);
    return f;
}

static void ps_emit_python(struct ps_merge_out *m, const struct ps_py_frame *p)
{
    struct ps_merged_frame *f = ps_merge_slot(m);
    if (!f)
        return;
    f->kind = PS_MERGED_PYTHON;
    f->code = p->code;
    f->pyline = p->line;
}

static void ps_emit_native(struct ps_merge_out *m, const struct ps_native_sym *s, int inl)
{
    struct ps_merged_frame *f = ps_merge_slot(m);
    if (!f)
        return;
    f->kind = PS_MERGED_NATIVE;
    f->pc = s->pc;
    f->offset = s->offset;
    f->lib = s->lib;
    if (inl >= 0) {
        f->name = s->inlined[inl].name;
        f->file = s->inlined[inl].file;
        f->line = s->inlined[inl].line;
        f->inlined = 1;
    } else {
        f->name = s->name;
        f->file = s->file;
        f->line = s->line;
    }
}

/* The Python frames, consumed group by group (a group ends with an entry frame). */
struct ps_py_cursor {
    const struct ps_py_frame *py;
    int npy;
    int pos;      /* next frame */
    int group;    /* index of the group that starts at pos */
};

/* Emits the next group; `matched` 0 counts its frames as unmatched. */
static void ps_emit_group(struct ps_merge_out *m, struct ps_py_cursor *c, int matched)
{
    while (c->pos < c->npy) {
        const struct ps_py_frame *p = &c->py[c->pos++];
        ps_emit_python(m, p);
        if (!matched)
            m->st->unmatched_python++;
        if (p->entry)
            break;
    }
    c->group++;
}

static int ps_count_groups(const struct ps_py_frame *py, int npy)
{
    int groups = 0;
    for (int i = 0; i < npy; i++)
        if (py[i].entry || i == npy - 1)
            groups++;
    return groups;
}

int ps_native_merge(const struct ps_native_sym *syms, int nsyms, int complete,
                    const struct ps_py_frame *py, int npy, int show_all,
                    struct ps_merged_frame *out, int max, struct ps_merge_stats *stats)
{
    struct ps_merge_stats local;
    struct ps_merge_out m = {out, 0, max, stats ? stats : &local};
    memset(m.st, 0, sizeof *m.st);
    if (nsyms < 0 || npy < 0 || max < 0)
        return PS_EUSAGE;

    /* Activations: runs of adjacent eval-loop frames (a tail-called piece and the loop that
     * called it, or 3.x's PyEval_EvalFrameEx forwarding to the loop, are one activation). */
    int acts = 0;
    for (int i = 0; i < nsyms; i++)
        if (syms[i].is_eval && (i == 0 || !syms[i - 1].is_eval))
            acts++;
    int groups = ps_count_groups(py, npy);
    m.st->eval_activations = acts;
    m.st->python_activations = groups;

    /* Pairing: from the outermost end when the C stack is complete (its outer activations are
     * certain; a mismatch is at the thread's current, changing end), else from the innermost
     * end (the outer part of the C stack is missing). */
    int shift = complete ? groups - acts : 0;

    /* The outer end of a complete stack that is only start-up plumbing and unnamed code is
     * process or thread start (e.g. __libc_start_call_main of a libc without symbols). */
    int start_up = nsyms;
    while (complete && start_up > 0 && !syms[start_up - 1].is_eval &&
           (syms[start_up - 1].is_plumbing || !syms[start_up - 1].name))
        start_up--;

    struct ps_py_cursor c = {py, npy, 0, 0};
    int a = 0;
    for (int i = 0; i < nsyms; i++) {
        const struct ps_native_sym *s = &syms[i];
        if (s->is_eval) {
            if (i > 0 && syms[i - 1].is_eval)
                continue; /* same activation */
            int g = a + shift;
            a++;
            if (g >= 0 && g < groups) {
                /* Groups inside this activation's without one of their own go first. */
                while (c.group < g)
                    ps_emit_group(&m, &c, 0);
                ps_emit_group(&m, &c, 1);
            } else {
                m.st->unmatched_eval++;
                struct ps_merged_frame *f = m.n < max ? &out[m.n] : NULL;
                ps_emit_native(&m, s, -1);
                if (f)
                    f->unmatched_eval = 1;
            }
            continue;
        }
        for (int k = 0; k < s->ninlined; k++) {
            if (s->inlined[k].is_plumbing && !show_all)
                m.st->hidden++;
            else
                ps_emit_native(&m, s, k);
        }
        if ((s->is_plumbing || i >= start_up) && !show_all)
            m.st->hidden++;
        else
            ps_emit_native(&m, s, -1);
    }
    /* Python frames no activation took: at the outer end. */
    while (c.pos < c.npy)
        ps_emit_group(&m, &c, 0);
    return m.n;
}

void ps_native_merged_label(const struct ps_merged_frame *f, char *buf, size_t sz)
{
    struct ps_native_sym s;
    memset(&s, 0, sizeof s);
    s.pc = f->pc;
    s.offset = f->offset;
    s.name = f->name;
    s.lib = f->lib;
    s.file = f->file;
    s.line = f->line;
    ps_native_sym_label(&s, buf, sz);
}
