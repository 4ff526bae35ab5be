/* test_walk.c — Criterion suite `walk`: the whole thread/frame walk of ps_py_sample() over a
 * synthetic interpreter in a fake memory source (fakepy.c), for every layout the walker knows:
 * names, files and lines innermost-first, TIDs, GIL holder, the code cache (hit, replaced
 * objects), corrupt chains, deep stacks over two data-stack chunks with a constant number of
 * reads, the 3.13+/3.16 debug-offsets paths (overrides, newer minors) and free-threaded builds
 * (thread-local bytecode, no GIL).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fakepy.h"
#include "ps_python.h"
#include "ps_util.h"

#define TID1 4243
#define TID2 4244
#define TID3 4245

/* ---- the standard two-thread scenario ------------------------------------------------------ */

struct want {
    const char *name, *file;
    int line;
};

struct std {
    struct fp_world *w;
    int t1, t2;
    int has_qualname;
    uint64_t c_run, c_uni, c_main, c_compute, c_stage, c_boot;
    int l_run[16], l_uni[16], l_main[16], l_compute[16], l_stage[16], l_boot[16];
};

/* Lines of a code object, one per code unit: RESUME on firstlineno, a few statements, a run
 * without a line (where the format can say so) and a backward jump (where it can go back). */
static void mk_lines(int *l, int first, enum ps_line_format fmt)
{
    for (int u = 0; u < 16; u++) {
        if (u == 0)
            l[u] = first;
        else if (u < 4)
            l[u] = first + 1;
        else if (u < 8)
            l[u] = first + 3;
        else if (u < 10)
            l[u] = fmt == PS_LINES_LINETABLE310 || fmt == PS_LINES_LOCATIONS ? -1 : first + 3;
        else if (u < 14)
            l[u] = fmt == PS_LINES_LNOTAB27 ? first + 4 : first + 2;
        else
            l[u] = first + 5;
    }
}

/* What the walker reports for a unit: the table's line, 0 for "no line". */
static int line_at(const int *l, int unit)
{
    return l[unit] < 0 ? 0 : l[unit];
}

static uint64_t mk_code(struct std *s, int *l, const char *name, const char *qual,
                        const char *file, int first)
{
    mk_lines(l, first, s->w->lay.line_format);
    struct fp_code_spec c = {name, qual, file, first, l, 16};
    return fp_code(s->w, &c);
}

static const char *qn(const struct std *s, const char *qual, const char *name)
{
    return s->has_qualname ? qual : name;
}

/* Thread 1 (main): Worker.run <- ünicode_func <- [entry] <- <module> <- [entry].
 * Thread 2: compute <- Pipeline.stage (a generator frame) <- _bootstrap_inner <- [entry].
 * Entry frames exist on 3.12+ only; 3.14+ tags two code pointers. Thread 2 holds the GIL. */
static void std_build(struct std *s, struct fp_world *w)
{
    memset(s, 0, sizeof *s);
    s->w = w;
    s->has_qualname = w->lay.co_qualname >= 0;
    int interp = w->lay.frame_model == PS_FRAMES_INTERP;
    int entries = w->lay.if_owner_skip_min > 0;
    unsigned tag = (w->lay.flags & PS_PYF_TAGGED_CODE) ? 1 : 0;
    s->c_run = mk_code(s, s->l_run, "run", "Worker.run", "/srv/app/worker.py", 40);
    s->c_uni = mk_code(s, s->l_uni, "ünicode_func", "ünicode_func", "/srv/app/модуль.py", 10);
    s->c_main = mk_code(s, s->l_main, "<module>", "<module>", "/srv/app/main.py", 1);
    s->c_compute = mk_code(s, s->l_compute, "compute", "compute", "/srv/app/calc_😀.py", 100);
    s->c_stage = mk_code(s, s->l_stage, "stage", "Pipeline.stage", "/srv/app/pipeline.py", 20);
    s->c_boot = mk_code(s, s->l_boot, "_bootstrap_inner", "Thread._bootstrap_inner",
                        "/usr/lib/python3/threading.py", 1000);

    struct fp_frame f1[5];
    int n1 = 0;
    f1[n1++] = (struct fp_frame){s->c_run, 5, FP_PY, tag};
    f1[n1++] = (struct fp_frame){s->c_uni, 11, FP_PY, 0};
    if (entries)
        f1[n1++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    f1[n1++] = (struct fp_frame){s->c_main, 2, FP_PY, 0};
    if (entries)
        f1[n1++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    s->t1 = fp_thread(w, TID1, f1, n1, 0);

    struct fp_frame f2[4];
    int n2 = 0;
    f2[n2++] = (struct fp_frame){s->c_compute, 14, FP_PY, 0};
    f2[n2++] = (struct fp_frame){s->c_stage, 3, interp ? FP_GEN : FP_PY, tag};
    f2[n2++] = (struct fp_frame){s->c_boot, 9, FP_PY, 0};
    if (entries)
        f2[n2++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    s->t2 = fp_thread(w, TID2, f2, n2, 0);
    fp_set_gil(w, s->t2, 1);
}

static void expect_stack(const struct ps_py_thread *t, const struct want *wv, int n,
                         const char *ctx)
{
    cr_assert_not_null(t, "%s: thread missing from the snapshot", ctx);
    cr_assert_eq(t->err, 0, "%s: err %d (%s)", ctx, t->err, ps_strerror(t->err));
    cr_assert_eq(t->truncated, 0, "%s: truncated", ctx);
    cr_assert_eq(t->nframes, n, "%s: %d frames, want %d", ctx, t->nframes, n);
    for (int i = 0; i < n; i++) {
        const struct ps_code *c = t->frames[i].code;
        cr_assert_not_null(c, "%s: frame %d has no code", ctx, i);
        cr_expect_str_eq(c->name, wv[i].name, "%s: frame %d name \"%s\", want \"%s\"", ctx, i,
                         c->name, wv[i].name);
        cr_expect_str_eq(c->file, wv[i].file, "%s: frame %d file \"%s\", want \"%s\"", ctx, i,
                         c->file, wv[i].file);
        cr_expect_eq(t->frames[i].line, wv[i].line, "%s: frame %d (%s) line %d, want %d", ctx, i,
                     wv[i].name, t->frames[i].line, wv[i].line);
    }
}

static void expect_t1(const struct std *s, const struct ps_py_snapshot *snap, int leaf_unit,
                      const char *ctx)
{
    const struct want wv[] = {
        {qn(s, "Worker.run", "run"), "/srv/app/worker.py", line_at(s->l_run, leaf_unit)},
        {"ünicode_func", "/srv/app/модуль.py", line_at(s->l_uni, 11)},
        {"<module>", "/srv/app/main.py", line_at(s->l_main, 2)},
    };
    expect_stack(fp_snap_thread(snap, TID1), wv, 3, ctx);
}

static void expect_t2(const struct std *s, const struct ps_py_snapshot *snap, const char *ctx)
{
    const struct want wv[] = {
        {"compute", "/srv/app/calc_😀.py", line_at(s->l_compute, 14)},
        {qn(s, "Pipeline.stage", "stage"), "/srv/app/pipeline.py", line_at(s->l_stage, 3)},
        {qn(s, "Thread._bootstrap_inner", "_bootstrap_inner"), "/usr/lib/python3/threading.py",
         line_at(s->l_boot, 9)},
    };
    expect_stack(fp_snap_thread(snap, TID2), wv, 3, ctx);
}

static int sample(struct fp_world *w, struct ps_py_snapshot *snap)
{
    int rc = ps_py_sample(&w->py, snap);
    cr_assert_eq(rc, 0, "ps_py_sample: %d (%s) %s", rc, ps_strerror(rc),
                 ps_err_detail() ? ps_err_detail() : "");
    return rc;
}

/* ---- basic walk ---------------------------------------------------------------------------- */

static void basic_on(struct fp_world *w)
{
    struct std s;
    std_build(&s, w);
    int rc = fp_attach(w);
    cr_assert_eq(rc, 0, "attach: %d (%s) %s", rc, ps_strerror(rc), ps_err_detail());
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);

    sample(w, &snap);
    cr_assert_eq(snap.n, 2, "%d threads", snap.n);
    expect_t1(&s, &snap, 5, "first sample, thread 1");
    expect_t2(&s, &snap, "first sample, thread 2");
    const struct ps_py_thread *a = fp_snap_thread(&snap, TID1), *b = fp_snap_thread(&snap, TID2);
    cr_expect_eq(a->tstate, w->t[s.t1].tstate);
    cr_expect_eq(a->ident, w->t[s.t1].ident);
    cr_expect_eq(b->ident, w->t[s.t2].ident);
    cr_expect_eq(a->gil, 0, "thread 1 does not hold the GIL");
    cr_expect_eq(b->gil, 1, "thread 2 holds the GIL");
    /* The leaf's code entry, to tell a cache hit from a reload below. */
    const struct ps_code *leaf = a->frames[0].code;
    uint64_t first_reads = snap.reads;

    /* Second sample: the leaf moved to another instruction (a backward jump). Same code object,
     * so the cached entry answers; the line comes from the cached table. */
    fp_set_unit(w, s.t1, 0, 12);
    sample(w, &snap);
    expect_t1(&s, &snap, 12, "second sample, thread 1");
    expect_t2(&s, &snap, "second sample, thread 2");
    a = fp_snap_thread(&snap, TID1);
    cr_expect_eq(a->frames[0].code, leaf, "the leaf code object was reloaded, not a cache hit");
    cr_expect_lt(snap.reads, first_reads, "a warm sample (%llu reads) must read less than a cold "
                 "one (%llu)", (unsigned long long)snap.reads, (unsigned long long)first_reads);

    /* The GIL released: the last holder stays recorded but nobody holds it. */
    fp_set_gil(w, s.t2, 0);
    sample(w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID1)->gil, 0);
    cr_expect_eq(fp_snap_thread(&snap, TID2)->gil, 0, "a released GIL has no holder");
    /* And taken by thread 1. */
    fp_set_gil(w, s.t1, 1);
    sample(w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID1)->gil, 1);
    cr_expect_eq(fp_snap_thread(&snap, TID2)->gil, 0);
    expect_t1(&s, &snap, 12, "fourth sample, thread 1");
    expect_t2(&s, &snap, "fourth sample, thread 2");

    ps_py_snapshot_release(&snap);
    fp_free(w);
}

static void basic(int major, int minor)
{
    basic_on(fp_new(major, minor));
}

Test(walk, basic_27) { basic(2, 7); }
Test(walk, basic_36) { basic(3, 6); }
Test(walk, basic_37) { basic(3, 7); }
Test(walk, basic_38) { basic(3, 8); }
Test(walk, basic_39) { basic(3, 9); }
Test(walk, basic_310) { basic(3, 10); }
Test(walk, basic_311) { basic(3, 11); }
Test(walk, basic_312) { basic(3, 12); }
Test(walk, basic_313) { basic(3, 13); }
Test(walk, basic_314) { basic(3, 14); }
Test(walk, basic_315) { basic(3, 15); }

/* A default build always has its GIL. */
Test(walk, gil_never_disabled_in_default_builds)
{
    struct fp_world *w = fp_new(3, 14);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    cr_expect_eq(ps_py_gil_disabled(&w->py), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID2)->nogil, 0);
    cr_expect_eq(fp_snap_thread(&snap, TID2)->gil, 1);
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

/* The layout the walker ends up with on 3.13-3.15 comes from the debug offsets in the fake. */
Test(walk, debug_offsets_are_read_from_the_target)
{
    for (int minor = 13; minor <= 15; minor++) {
        struct fp_world *w = fp_new(3, minor);
        struct std s;
        std_build(&s, w);
        cr_assert_eq(fp_attach(w), 0);
        cr_expect_eq(w->py.debug_offsets_used, 1, "3.%d: debug offsets not used", minor);
        cr_expect_eq(w->py.off.minor, minor);
        cr_expect_eq(w->py.off.rt_size, w->lay.rt_size);
        if (minor >= 14)
            cr_expect(w->py.off.flags & PS_PYF_TAGGED_CODE);
        cr_expect_not(w->py.off.flags & PS_PYF_FREE_THREADED);
        cr_expect(strstr(w->py.how, minor == 13   ? "3.13 positions"
                                    : minor == 14 ? "3.14 positions"
                                                  : "3.15 positions") != NULL,
                  "%s", w->py.how);
        fp_free(w);
    }
}

/* ---- code cache ---------------------------------------------------------------------------- */

static void code_replaced(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    sample(w, &snap); /* the entries are now listed for validation in round 0 */
    expect_t1(&s, &snap, 5, "before");

    int keyed_by_version = w->lay.co_version >= 0 && !(w->lay.flags & PS_PYF_TAGGED_CODE);
    int generation = w->lay.is_code_generation >= 0;
    int lines[16];
    mk_lines(lines, 300, w->lay.line_format);
    struct fp_code_spec halt = {"halt", "Worker.halt", "/srv/app/halt.py", 300, lines, 16};

    if (keyed_by_version || generation) {
        /* Control: rewritten in place, but with the old key (co_version / generation). The
         * cache must be what answers: it still says Worker.run. */
        fp_code_rewrite(w, s.c_run, &halt, 0);
        sample(w, &snap);
        expect_t1(&s, &snap, 5, "same key: the cached entry answers");
    }

    /* The object at the same address is now another function: 3.12/3.13 give it a new
     * co_version, <= 3.11 new name/filename objects, 3.14 bumps the code generation. */
    fp_code_rewrite(w, s.c_run, &halt, 1);
    if (generation)
        fp_bump_generation(w);
    sample(w, &snap);
    const struct want wv[] = {
        {qn(&s, "Worker.halt", "halt"), "/srv/app/halt.py", line_at(lines, 5)},
        {"ünicode_func", "/srv/app/модуль.py", line_at(s.l_uni, 11)},
        {"<module>", "/srv/app/main.py", line_at(s.l_main, 2)},
    };
    expect_stack(fp_snap_thread(&snap, TID1), wv, 3, "after the code object was replaced");
    expect_t2(&s, &snap, "thread 2 after the replacement");
    /* Stable afterwards. */
    sample(w, &snap);
    expect_stack(fp_snap_thread(&snap, TID1), wv, 3, "one sample later");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

/* <= 3.11: a new code object at the same address whose co_name and co_filename are the very same
 * (interned) string objects, but with another qualname and line table: the cache key covers
 * the span from co_filename to co_linetable, so the old entry must not be served. */
static void code_replaced_same_names(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "before");
    uint64_t old_name, old_file;
    cr_assert_eq(ps_mem_read_u64(&w->py.mem, s.c_run + (uint64_t)w->lay.co_name, &old_name), 0);
    cr_assert_eq(ps_mem_read_u64(&w->py.mem, s.c_run + (uint64_t)w->lay.co_filename, &old_file), 0);
    int lines[16];
    mk_lines(lines, 700, w->lay.line_format);
    struct fp_code_spec other = {"run", "Other.run", "/srv/app/worker.py", 700, lines, 16};
    fp_code_rewrite(w, s.c_run, &other, 1);
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, s.c_run + (uint64_t)w->lay.co_name, &old_name, 8), 0);
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, s.c_run + (uint64_t)w->lay.co_filename, &old_file, 8), 0);
    sample(w, &snap);
    const struct ps_py_thread *t = fp_snap_thread(&snap, TID1);
    cr_assert(t && t->nframes >= 1 && !t->err, "thread 1 readable after the replacement");
    cr_expect_str_eq(t->frames[0].code->name, qn(&s, "Other.run", "run"), "%d.%d: stale name",
                     major, minor);
    cr_expect_eq(t->frames[0].line, line_at(lines, 5), "%d.%d: stale line table (line %d)", major,
                 minor, t->frames[0].line);
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, code_replaced_same_names_27) { code_replaced_same_names(2, 7); }
Test(walk, code_replaced_same_names_310) { code_replaced_same_names(3, 10); }
Test(walk, code_replaced_same_names_311) { code_replaced_same_names(3, 11); }

Test(walk, code_replaced_27) { code_replaced(2, 7); }
Test(walk, code_replaced_310) { code_replaced(3, 10); }
Test(walk, code_replaced_311) { code_replaced(3, 11); }
Test(walk, code_replaced_312) { code_replaced(3, 12); }
Test(walk, code_replaced_313) { code_replaced(3, 13); }
Test(walk, code_replaced_314) { code_replaced(3, 14); }

/* 3.12/3.13: while the code counter (the source of every new co_version) stands still, no code
 * object can have been created, so cached entries are not re-read. Shown with a rewrite that
 * real CPython cannot make (a new co_version while the counter is put back): the cache still
 * answers; once the counter shows the creation, the new function is seen. */
static void code_counter_gate(int minor)
{
    struct fp_world *w = fp_new(3, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    cr_assert_neq(w->code_counter, 0, "3.%d has a code counter", minor);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "before");
    uint64_t bytes = w->py.mem.bytes_read;
    sample(w, &snap);
    uint64_t warm_bytes = w->py.mem.bytes_read - bytes;

    int lines[16];
    mk_lines(lines, 300, w->lay.line_format);
    struct fp_code_spec halt = {"halt", "Worker.halt", "/srv/app/halt.py", 300, lines, 16};
    uint32_t counter = w->next_co_version + 1;
    fp_code_rewrite(w, s.c_run, &halt, 1);
    fp_set_code_counter(w, counter); /* as if no code object had been created */
    bytes = w->py.mem.bytes_read;
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "counter unchanged: the cached entry answers");
    cr_expect_eq(w->py.mem.bytes_read - bytes, warm_bytes, "a sample read %llu bytes, then %llu",
                 (unsigned long long)warm_bytes,
                 (unsigned long long)(w->py.mem.bytes_read - bytes));

    fp_set_code_counter(w, w->next_co_version + 1);
    sample(w, &snap);
    const struct want wv[] = {
        {"Worker.halt", "/srv/app/halt.py", line_at(lines, 5)},
        {"ünicode_func", "/srv/app/модуль.py", line_at(s.l_uni, 11)},
        {"<module>", "/srv/app/main.py", line_at(s.l_main, 2)},
    };
    expect_stack(fp_snap_thread(&snap, TID1), wv, 3, "after the counter moved");
    expect_t2(&s, &snap, "thread 2 after the counter moved");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, code_counter_gate_312) { code_counter_gate(12); }
Test(walk, code_counter_gate_313) { code_counter_gate(13); }

/* ---- corrupt chains ------------------------------------------------------------------------ */

static void self_loop(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    fp_set_previous(w, s.t1, 1, w->t[s.t1].frame_addr[1]);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    for (int k = 0; k < 2; k++) {
        sample(w, &snap);
        const struct ps_py_thread *a = fp_snap_thread(&snap, TID1);
        cr_assert_not_null(a);
        cr_expect_neq(a->err, 0, "a frame that is its own previous must fail the thread");
        expect_t2(&s, &snap, "the other thread");
    }
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, self_loop_27) { self_loop(2, 7); }
Test(walk, self_loop_310) { self_loop(3, 10); }
Test(walk, self_loop_311) { self_loop(3, 11); }
Test(walk, self_loop_312) { self_loop(3, 12); }
Test(walk, self_loop_313) { self_loop(3, 13); }
Test(walk, self_loop_314) { self_loop(3, 14); }

/* A two-frame cycle among frames that are read one by one (frame objects up to 3.10,
 * generator frames from 3.11): the walk must stop with an error, not run to the depth limit. */
static void two_cycle(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    int interp = w->lay.frame_model == PS_FRAMES_INTERP;
    enum fp_frame_kind k = interp ? FP_GEN : FP_PY;
    struct fp_frame f[3] = {
        {s.c_compute, 1, FP_PY, 0}, {s.c_stage, 2, k, 0}, {s.c_boot, 3, k, 0}};
    int t3 = fp_thread(w, TID3, f, 3, 0);
    fp_set_previous(w, t3, 2, w->t[t3].frame_addr[1]); /* 1 -> 2 -> 1 -> ... */
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    const struct ps_py_thread *c = fp_snap_thread(&snap, TID3);
    cr_assert_not_null(c);
    cr_expect(c->err != 0 || c->truncated, "a cycle must not pass for a stack");
    cr_expect_neq(c->err, 0, "a cycle is an error (err %d, truncated %d, %d frames)", c->err,
                  c->truncated, c->nframes);
    cr_expect_lt(snap.reads, 64, "a cycle cost %llu reads", (unsigned long long)snap.reads);
    expect_t1(&s, &snap, 5, "thread 1 next to a cycle");
    expect_t2(&s, &snap, "thread 2 next to a cycle");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, two_cycle_27) { two_cycle(2, 7); }
Test(walk, two_cycle_310) { two_cycle(3, 10); }
Test(walk, two_cycle_311) { two_cycle(3, 11); }
Test(walk, two_cycle_312) { two_cycle(3, 12); }
Test(walk, two_cycle_313) { two_cycle(3, 13); }
Test(walk, two_cycle_314) { two_cycle(3, 14); }

static void bad_code_type(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "before");
    /* The leaf now points at an object whose type is not PyCode_Type. */
    fp_set_code(w, s.t1, 0, fp_not_code(w), 0);
    for (int k = 0; k < 2; k++) {
        sample(w, &snap);
        const struct ps_py_thread *a = fp_snap_thread(&snap, TID1);
        cr_assert_not_null(a);
        cr_expect_eq(a->err, PS_ECORRUPT, "err %d (%s)", a->err, ps_strerror(a->err));
        expect_t2(&s, &snap, "the other thread");
    }
    /* Back to the real code object: the thread recovers. */
    fp_set_code(w, s.t1, 0, s.c_run, 0);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "after");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, bad_code_type_27) { bad_code_type(2, 7); }
Test(walk, bad_code_type_310) { bad_code_type(3, 10); }
Test(walk, bad_code_type_311) { bad_code_type(3, 11); }
Test(walk, bad_code_type_312) { bad_code_type(3, 12); }
Test(walk, bad_code_type_313) { bad_code_type(3, 13); }
Test(walk, bad_code_type_314) { bad_code_type(3, 14); }

/* 3.11+: an instruction pointer past the end of its code object is a torn frame. */
static void instr_outside(int minor)
{
    struct fp_world *w = fp_new(3, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    fp_set_unit(w, s.t1, 0, 16 + 40);
    sample(w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID1)->err, PS_ETORN);
    expect_t2(&s, &snap, "the other thread");
    fp_set_unit(w, s.t1, 0, 15); /* the last unit is inside */
    sample(w, &snap);
    expect_t1(&s, &snap, 15, "last unit");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, instr_outside_code_311) { instr_outside(11); }
Test(walk, instr_outside_code_312) { instr_outside(12); }
Test(walk, instr_outside_code_313) { instr_outside(13); }
Test(walk, instr_outside_code_314) { instr_outside(14); }

/* Threads come and go between samples: the cached list is rebuilt. */
static void threads_change(int minor)
{
    struct fp_world *w = fp_new(3, minor);
    struct std s;
    std_build(&s, w);
    struct fp_frame f[1] = {{s.c_stage, 3, FP_PY, 0}};
    int t3 = fp_thread(w, TID3, f, 1, 0);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    cr_assert_eq(snap.n, 3);
    sample(w, &snap);
    cr_assert_eq(snap.n, 3);

    fp_thread_unlink(w, s.t2); /* the middle thread exits */
    sample(w, &snap);
    cr_assert_eq(snap.n, 2, "%d threads after one exited", snap.n);
    cr_expect_null(fp_snap_thread(&snap, TID2));
    expect_t1(&s, &snap, 5, "thread 1 after thread 2 exited");
    const struct want w3[] = {
        {qn(&s, "Pipeline.stage", "stage"), "/srv/app/pipeline.py", line_at(s.l_stage, 3)}};
    expect_stack(fp_snap_thread(&snap, TID3), w3, 1, "thread 3 after thread 2 exited");

    struct fp_frame f4[2] = {{s.c_compute, 14, FP_PY, 0}, {s.c_main, 2, FP_PY, 0}};
    fp_thread(w, 4300, f4, 2, 0);
    fp_relink(w);
    sample(w, &snap);
    cr_assert_eq(snap.n, 3, "%d threads after a new one started", snap.n);
    const struct want w4[] = {
        {"compute", "/srv/app/calc_😀.py", line_at(s.l_compute, 14)},
        {"<module>", "/srv/app/main.py", line_at(s.l_main, 2)},
    };
    expect_stack(fp_snap_thread(&snap, 4300), w4, 2, "the new thread");
    expect_t1(&s, &snap, 5, "thread 1 after a new thread started");
    (void)t3;
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, threads_change_310) { threads_change(10); }
Test(walk, threads_change_312) { threads_change(12); }
Test(walk, threads_change_314) { threads_change(14); }

/* ---- deep stacks --------------------------------------------------------------------------- */

#define NDEEP_CODES 20

struct deep {
    struct fp_world *w;
    uint64_t codes[NDEEP_CODES];
    int lines[NDEEP_CODES][16];
    char names[NDEEP_CODES][16], files[NDEEP_CODES][32];
    int depth;
};

/* `depth` Python frames (f00..f19 repeating) with an entry frame at the bottom on 3.12+; on
 * 3.11+ the innermost `split` frames sit in the current chunk, the rest in an older one. */
static void deep_build(struct deep *d, struct fp_world *w, int depth, int split)
{
    memset(d, 0, sizeof *d);
    d->w = w;
    d->depth = depth;
    for (int k = 0; k < NDEEP_CODES; k++) {
        snprintf(d->names[k], sizeof d->names[k], "f%02d", k);
        snprintf(d->files[k], sizeof d->files[k], "/srv/app/mod%02d.py", k);
        mk_lines(d->lines[k], 100 * (k + 1), w->lay.line_format);
        struct fp_code_spec c = {d->names[k], NULL, d->files[k], 100 * (k + 1), d->lines[k], 16};
        d->codes[k] = fp_code(w, &c);
    }
    static struct fp_frame f[FP_MAX_FRAMES];
    int n = 0;
    for (int i = 0; i < depth; i++)
        f[n++] = (struct fp_frame){d->codes[i % NDEEP_CODES], i % 16, FP_PY,
                                   (w->lay.flags & PS_PYF_TAGGED_CODE) ? (unsigned)(i & 1) : 0};
    if (w->lay.if_owner_skip_min > 0)
        f[n++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    fp_thread(w, TID1, f, n, split);
}

static void deep_expect(const struct deep *d, const struct ps_py_snapshot *snap)
{
    const struct ps_py_thread *t = fp_snap_thread(snap, TID1);
    cr_assert_not_null(t);
    cr_assert_eq(t->err, 0, "err %d (%s)", t->err, ps_strerror(t->err));
    cr_assert_eq(t->truncated, 0);
    cr_assert_eq(t->nframes, d->depth, "%d frames of %d", t->nframes, d->depth);
    for (int i = 0; i < d->depth; i++) {
        int k = i % NDEEP_CODES;
        cr_assert_str_eq(t->frames[i].code->name, d->names[k], "frame %d", i);
        cr_assert_str_eq(t->frames[i].code->file, d->files[k], "frame %d", i);
        cr_assert_eq(t->frames[i].line, line_at(d->lines[k], i % 16), "frame %d line %d", i,
                     t->frames[i].line);
    }
}

/* Reads of a warm sample (after one warm-up) of a `depth`-deep stack. */
static uint64_t deep_reads(int minor, int depth, int split)
{
    struct deep d;
    deep_build(&d, fp_new(3, minor), depth, split);
    cr_assert_eq(fp_attach(d.w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(d.w, &snap);
    deep_expect(&d, &snap);
    sample(d.w, &snap);
    deep_expect(&d, &snap);
    uint64_t r = snap.reads;
    sample(d.w, &snap);
    cr_expect_eq(snap.reads, r, "warm samples differ: %llu then %llu", (unsigned long long)r,
                 (unsigned long long)snap.reads);
    ps_py_snapshot_release(&snap);
    fp_free(d.w);
    return r;
}

static void deep(int minor)
{
    /* 200 frames: 120 in the current chunk, 80 in the previous one. */
    uint64_t r200 = deep_reads(minor, 200, 120);
    uint64_t r10 = deep_reads(minor, 10, 0);
    cr_log_info("3.%d: warm reads per sample: depth 10 (one chunk) %llu, depth 200 (two chunks) "
                "%llu",
                minor, (unsigned long long)r10, (unsigned long long)r200);
    cr_expect_eq(r10, r200,
                 "3.%d: reads per sample must not grow with depth: depth 10 took %llu, depth 200 "
                 "took %llu",
                 minor, (unsigned long long)r10, (unsigned long long)r200);
    /* A stack that keeps its shape is read whole in round 0, with the thread state. */
    cr_expect_eq(r200, 1, "3.%d: a warm sample of an unchanged stack took %llu reads", minor,
                 (unsigned long long)r200);
}

/* <= 3.10 (frame objects): every frame is its own object; the deep stack resolves completely,
 * and the last walk's frames are read in round 0 as well, so depth costs no extra reads. */
static void deep_objects(int major, int minor)
{
    struct deep d;
    uint64_t r[2];
    int depths[2] = {10, 200};
    for (int k = 0; k < 2; k++) {
        deep_build(&d, fp_new(major, minor), depths[k], 0);
        cr_assert_eq(fp_attach(d.w), 0);
        struct ps_py_snapshot snap;
        ps_py_snapshot_init(&snap);
        sample(d.w, &snap);
        deep_expect(&d, &snap);
        sample(d.w, &snap);
        deep_expect(&d, &snap);
        r[k] = snap.reads;
        ps_py_snapshot_release(&snap);
        fp_free(d.w);
    }
    cr_expect_eq(r[0], r[1], "%d.%d: depth 10 took %llu reads, depth 200 %llu", major, minor,
                 (unsigned long long)r[0], (unsigned long long)r[1]);
    cr_expect_eq(r[1], 1, "%d.%d: a warm sample of an unchanged stack took %llu reads", major,
                 minor, (unsigned long long)r[1]);
}

Test(walk, deep_27) { deep_objects(2, 7); }
Test(walk, deep_310) { deep_objects(3, 10); }
Test(walk, deep_311) { deep(11); }
Test(walk, deep_312) { deep(12); }
Test(walk, deep_313) { deep(13); }
Test(walk, deep_314) { deep(14); }

/* The stack changes shape under the read-ahead: a deep stack unwinds into its older chunk
 * (the copies read ahead no longer match), then grows again; every sample stays exact and the
 * warm cost returns to the same number of reads. */
static void deep_reshape_any(int major, int minor)
{
    struct deep d;
    deep_build(&d, fp_new(major, minor), 200, 120);
    cr_assert_eq(fp_attach(d.w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(d.w, &snap);
    sample(d.w, &snap);
    uint64_t warm = snap.reads;

    /* Return from 150 frames: frame 150 (in the older chunk) is current. */
    fp_set_current(d.w, 0, 150);
    for (int k = 0; k < 3; k++) {
        sample(d.w, &snap);
        const struct ps_py_thread *t = fp_snap_thread(&snap, TID1);
        cr_assert_eq(t->err, 0, "pass %d: err %d", k, t->err);
        cr_assert_eq(t->nframes, 50, "pass %d: %d frames after unwinding", k, t->nframes);
        for (int i = 0; i < 50; i++) {
            int fi = 150 + i, c = fi % NDEEP_CODES;
            cr_assert_str_eq(t->frames[i].code->name, d.names[c], "pass %d frame %d", k, i);
            cr_assert_eq(t->frames[i].line, line_at(d.lines[c], fi % 16));
        }
    }
    cr_expect_leq(snap.reads, warm, "shallow again: %llu reads, the deep stack took %llu",
                  (unsigned long long)snap.reads, (unsigned long long)warm);

    /* Called back down to the full depth. */
    fp_set_current(d.w, 0, 0);
    sample(d.w, &snap);
    deep_expect(&d, &snap);
    sample(d.w, &snap);
    deep_expect(&d, &snap);
    cr_expect_eq(snap.reads, warm, "deep again: %llu reads, first time %llu",
                 (unsigned long long)snap.reads, (unsigned long long)warm);
    ps_py_snapshot_release(&snap);
    fp_free(d.w);
}

static void deep_reshape(int minor) { deep_reshape_any(3, minor); }

Test(walk, deep_reshape_27) { deep_reshape_any(2, 7); }
Test(walk, deep_reshape_310) { deep_reshape_any(3, 10); }
Test(walk, deep_reshape_311) { deep_reshape(11); }
Test(walk, deep_reshape_312) { deep_reshape(12); }
Test(walk, deep_reshape_313) { deep_reshape(13); }
Test(walk, deep_reshape_314) { deep_reshape(14); }

/* Frames that stayed as they were are kept from the last snapshot (ps_py_thread.kept), and
 * only the others are resolved again: a top frame that moved, a stack that unwound and grew
 * back. Every frame must be exact at every step, and `kept` must count exactly the outermost
 * frames that did not change. */
static void kept_expect(const struct deep *d, const struct ps_py_thread *t, int from, int n,
                        int unit0, const char *ctx)
{
    cr_assert_not_null(t);
    cr_assert_eq(t->err, 0, "%s: err %d", ctx, t->err);
    cr_assert_eq(t->nframes, n, "%s: %d frames, want %d", ctx, t->nframes, n);
    for (int i = 0; i < n; i++) {
        int fi = from + i, c = fi % NDEEP_CODES;
        int unit = fi == 0 ? unit0 : fi % 16;
        cr_assert_str_eq(t->frames[i].code->name, d->names[c], "%s: frame %d", ctx, i);
        cr_assert_eq(t->frames[i].line, line_at(d->lines[c], unit), "%s: frame %d line %d", ctx,
                     i, t->frames[i].line);
    }
}

static void kept_frames(int major, int minor)
{
    struct deep d;
    deep_build(&d, fp_new(major, minor), 200, 120);
    cr_assert_eq(fp_attach(d.w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(d.w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 0, "a first snapshot has nothing to keep");
    sample(d.w, &snap);
    kept_expect(&d, fp_snap_thread(&snap, TID1), 0, 200, 0, "unchanged");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 200, "an unchanged stack is kept whole");

    fp_set_unit(d.w, 0, 0, 7); /* the innermost frame moves on */
    sample(d.w, &snap);
    kept_expect(&d, fp_snap_thread(&snap, TID1), 0, 200, 7, "top frame moved");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 199, "all but the top frame are kept");

    fp_set_current(d.w, 0, 150); /* returned from 150 frames */
    sample(d.w, &snap);
    kept_expect(&d, fp_snap_thread(&snap, TID1), 150, 50, 0, "unwound");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 50, "the 50 outermost frames are kept");

    fp_set_current(d.w, 0, 0); /* and called back down */
    sample(d.w, &snap);
    kept_expect(&d, fp_snap_thread(&snap, TID1), 0, 200, 7, "grown back");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 50, "the 50 outermost frames are kept");
    sample(d.w, &snap);
    kept_expect(&d, fp_snap_thread(&snap, TID1), 0, 200, 7, "grown back, sampled again");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 200);
    ps_py_snapshot_release(&snap);
    fp_free(d.w);
}

Test(walk, kept_frames_27) { kept_frames(2, 7); }
Test(walk, kept_frames_310) { kept_frames(3, 10); }
Test(walk, kept_frames_311) { kept_frames(3, 11); }
Test(walk, kept_frames_312) { kept_frames(3, 12); }
Test(walk, kept_frames_313) { kept_frames(3, 13); }
Test(walk, kept_frames_314) { kept_frames(3, 14); }

/* A replaced code object is never kept: the cache dropped its entry. */
static void kept_not_after_replace(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    sample(w, &snap);
    cr_expect_eq(fp_snap_thread(&snap, TID1)->kept, 3, "an unchanged stack is kept whole");
    int lines[16];
    mk_lines(lines, 300, w->lay.line_format);
    struct fp_code_spec halt = {"halt", "Worker.halt", "/srv/app/halt.py", 300, lines, 16};
    fp_code_rewrite(w, s.c_run, &halt, 1);
    if (w->lay.is_code_generation >= 0)
        fp_bump_generation(w);
    if (w->lay.is_code_counter >= 0 || w->py.code_counter_addr)
        fp_set_code_counter(w, w->next_co_version + 1);
    sample(w, &snap);
    const struct ps_py_thread *t = fp_snap_thread(&snap, TID1);
    cr_assert(t && t->nframes == 3 && !t->err);
    cr_expect_str_eq(t->frames[0].code->file, "/srv/app/halt.py", "%d.%d: a stale frame was kept",
                     major, minor);
    cr_expect_eq(t->frames[0].line, line_at(lines, 5));
    cr_expect_eq(t->kept, 0, "%d.%d: kept %d frames across a replaced code object", major, minor,
                 t->kept);
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, kept_not_after_replace_27) { kept_not_after_replace(2, 7); }
Test(walk, kept_not_after_replace_311) { kept_not_after_replace(3, 11); }
Test(walk, kept_not_after_replace_312) { kept_not_after_replace(3, 12); }
Test(walk, kept_not_after_replace_313) { kept_not_after_replace(3, 13); }
Test(walk, kept_not_after_replace_314) { kept_not_after_replace(3, 14); }

/* 3.12+: C -> Python transitions all along a deep stack (an entry frame on the C stack every
 * `every` frames) and a generator frame in the middle. The stack resolves exactly, and with a
 * handful of them a warm sample costs what a flat stack costs. */
static uint64_t nested(int minor, int depth, int every, int *nout)
{
    struct fp_world *w = fp_new(3, minor);
    struct deep d;
    memset(&d, 0, sizeof d);
    d.w = w;
    d.depth = depth;
    for (int k = 0; k < NDEEP_CODES; k++) {
        snprintf(d.names[k], sizeof d.names[k], "g%02d", k);
        snprintf(d.files[k], sizeof d.files[k], "/srv/app/gen%02d.py", k);
        mk_lines(d.lines[k], 50 * (k + 1), w->lay.line_format);
        struct fp_code_spec c = {d.names[k], NULL, d.files[k], 50 * (k + 1), d.lines[k], 16};
        d.codes[k] = fp_code(w, &c);
    }
    static struct fp_frame f[FP_MAX_FRAMES];
    int n = 0, py = 0;
    while (py < depth) {
        enum fp_frame_kind kind = py == depth / 2 ? FP_GEN : FP_PY;
        f[n++] = (struct fp_frame){d.codes[py % NDEEP_CODES], py % 16, kind, 0};
        py++;
        if (py % every == 0)
            f[n++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    }
    /* Python frames before the split stay in the current chunk: about two thirds. */
    fp_thread(w, TID1, f, n, n * 2 / 3);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    deep_expect(&d, &snap);
    sample(w, &snap);
    deep_expect(&d, &snap);
    uint64_t r = snap.reads;
    *nout = n;
    ps_py_snapshot_release(&snap);
    fp_free(w);
    return r;
}

static void nested_entries(int minor)
{
    int n;
    uint64_t few = nested(minor, 200, 20, &n);  /* 10 entry frames + 1 generator + 1 chunk */
    cr_expect_eq(few, 1, "3.%d: %d frames with 10 entry frames: %llu warm reads", minor, n,
                 (unsigned long long)few);
    uint64_t many = nested(minor, 300, 6, &n);  /* 50 entry frames: more than the read-ahead */
    cr_log_info("3.%d: 50 entry frames: %llu warm reads", minor, (unsigned long long)many);
    cr_expect_lt(many, 60, "3.%d: 50 entry frames took %llu reads", minor,
                 (unsigned long long)many);
}

Test(walk, nested_entries_312) { nested_entries(12); }
Test(walk, nested_entries_313) { nested_entries(13); }
Test(walk, nested_entries_314) { nested_entries(14); }

/* ---- debug offsets ------------------------------------------------------------------------- */

/* The target's _Py_DebugOffsets put current_frame (3.14) / native_thread_id (3.13) somewhere
 * else than the built-in table: the walker must follow the block. */
static void debugoff_override(int minor)
{
    const struct ps_py_offsets *table = ps_pyoffsets_lookup(3, minor);
    struct ps_py_offsets lay = *table;
    if (minor == 14) {
        cr_assert_eq(table->ts_frame, 72, "cross-check: 3.14 current_frame is 72");
        lay.ts_frame = 96;
    } else {
        cr_assert_eq(table->ts_native_thread_id, 160, "cross-check: 3.13 native_thread_id");
        lay.ts_native_thread_id = 168;
    }
    struct fp_world *w = fp_new_layout(&lay, 3, minor);
    struct std s;
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    cr_expect_eq(w->py.debug_offsets_used, 1);
    if (minor == 14)
        cr_expect_eq(w->py.off.ts_frame, 96, "ts_frame %d", w->py.off.ts_frame);
    else
        cr_expect_eq(w->py.off.ts_native_thread_id, 168);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "thread 1 on the moved layout");
    expect_t2(&s, &snap, "thread 2 on the moved layout");

    ps_py_snapshot_release(&snap);
    fp_free(w);

    /* Control: the same fake walked with the built-in table (a fresh attach, so no cached
     * thread identities) does not give these stacks. */
    w = fp_new_layout(&lay, 3, minor);
    std_build(&s, w);
    cr_assert_eq(fp_attach(w), 0);
    w->py.off = *table;
    ps_py_snapshot_init(&snap);
    ps_py_sample(&w->py, &snap);
    const struct ps_py_thread *a = fp_snap_thread(&snap, TID1);
    cr_expect(a == NULL || a->nframes != 3 || a->err != 0,
              "the built-in table walked a layout it does not describe");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, debugoff_override_313) { debugoff_override(13); }
Test(walk, debugoff_override_314) { debugoff_override(14); }

/* Free-threaded builds: the "t" table is chosen from the block's free_threaded flag (32-byte
 * object headers, code fields +16, 3.14t+ string state bits 8/11/12), lines come through each
 * thread's own bytecode copy (3.14t+: frame tlbc_index, code co_tlbc), and with the GIL disabled
 * nobody holds it while threads are attached; PYTHON_GIL=1 brings the holder back. */
static void free_threaded(int minor)
{
    struct fp_world *w = fp_new_ft(3, minor);
    struct std s;
    std_build(&s, w); /* leaves thread 2 as the GIL's (stale) last holder, locked */
    int tlbc = w->lay.co_tlbc != PS_OFF_NONE;
    cr_assert_eq(tlbc, minor >= 14, "thread-local bytecode from 3.14t on");
    if (tlbc) {
        fp_set_tlbc(w, s.t2, 0, 1); /* compute: thread 2's copy 1 */
        fp_set_tlbc(w, s.t2, 1, 1); /* the generator frame too */
        fp_set_tlbc(w, s.t2, 2, 2); /* _bootstrap_inner: copy 2 */
    }
    fp_set_attached(w, s.t2, 1);
    fp_set_attached(w, s.t1, 0);
    int rc = fp_attach(w);
    cr_assert_eq(rc, 0, "3.%dt attach: %d (%s) %s", minor, rc, ps_strerror(rc),
                 ps_err_detail() ? ps_err_detail() : "");
    cr_expect(w->py.off.flags & PS_PYF_FREE_THREADED);
    cr_expect_eq(w->py.off.ob_type, 24);
    cr_expect(strstr(w->py.how, "free-threaded") != NULL, "%s", w->py.how);

    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "free-threaded thread 1");
    expect_t2(&s, &snap, "free-threaded thread 2 (own bytecode copies)");
    const struct ps_py_thread *a = fp_snap_thread(&snap, TID1), *b = fp_snap_thread(&snap, TID2);
    cr_expect_eq(a->nogil, 1, "3.%dt: the GIL is disabled", minor);
    cr_expect_eq(b->nogil, 1);
    cr_expect_eq(b->gil, 0, "a disabled GIL's stale last holder holds nothing");
    cr_expect_eq(b->attached, 1);
    cr_expect_eq(a->attached, 0);
    if (tlbc)
        cr_expect_eq(b->frames[2].tlbc, 2);

    /* Lines follow the copies as the thread moves on, and after the tlbc generation moved
     * (cached co_tlbc entries dropped). */
    fp_set_unit(w, s.t1, 0, 12);
    if (tlbc)
        fp_bump_tlbc_generation(w);
    sample(w, &snap);
    expect_t1(&s, &snap, 12, "free-threaded thread 1, second sample");
    expect_t2(&s, &snap, "free-threaded thread 2, second sample");

    cr_expect_eq(ps_py_gil_disabled(&w->py), 1, "what --gil is refused on");

    /* PYTHON_GIL=1 (or an extension without Py_mod_gil): the GIL is real again. */
    fp_set_gil_enabled(w, 0x7fffffff);
    cr_expect_eq(ps_py_gil_disabled(&w->py), 0);
    sample(w, &snap);
    b = fp_snap_thread(&snap, TID2);
    cr_expect_eq(b->nogil, 0);
    cr_expect_eq(b->gil, 1, "with the GIL enabled its holder counts");
    cr_expect_eq(fp_snap_thread(&snap, TID1)->gil, 0);

    if (tlbc) {
        /* Control: without the copy's entry (the generation moved, the array lost it), the
         * instruction is measured from the code object's own bytecode, lands outside it, and
         * the stack is dropped as torn, never given a wrong line. */
        int k = 0;
        while (k < w->ntlbcs && w->tlbcs[k].code != s.c_compute)
            k++;
        cr_assert_lt(k, w->ntlbcs);
        uint64_t zero = 0;
        cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->tlbcs[k].arr + 8 + 8, &zero, 8), 0);
        fp_bump_tlbc_generation(w);
        fp_set_unit(w, s.t2, 0, 13); /* moved: resolved afresh, not kept from the last walk */
        sample(w, &snap);
        cr_expect_eq(fp_snap_thread(&snap, TID2)->err, PS_ETORN);
        expect_t1(&s, &snap, 12, "thread 1 unaffected");
    }
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

Test(walk, free_threaded_313) { free_threaded(13); }
Test(walk, free_threaded_314) { free_threaded(14); }
Test(walk, free_threaded_315) { free_threaded(15); }

/* 3.16: no built-in table; a block with the 3.15 shape drives the walk on the 3.15 table. */
Test(walk, py316_on_debug_offsets)
{
    cr_assert_null(ps_pyoffsets_lookup(3, 16), "a 3.16 table appeared: update this test");
    struct fp_world *w = fp_new_layout(ps_pyoffsets_lookup(3, 15), 3, 16);
    w->hexversion = 0x031000a2; /* 3.16.0a2 */
    struct std s;
    std_build(&s, w);
    int rc = fp_attach(w);
    cr_assert_eq(rc, 0, "attach 3.16: %d (%s) %s", rc, ps_strerror(rc), ps_err_detail());
    cr_expect_eq(w->py.off.minor, 16);
    cr_expect_eq(w->py.debug_offsets_used, 1);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "3.16 thread 1");
    expect_t2(&s, &snap, "3.16 thread 2");
    cr_expect_eq(fp_snap_thread(&snap, TID2)->gil, 1);
    ps_py_snapshot_release(&snap);
    fp_free(w);

    /* The same for a free-threaded 3.16t, on the 3.15t table. */
    w = fp_new_layout(ps_pyoffsets_lookup_build(3, 15, 1), 3, 16);
    w->hexversion = 0x031000a2;
    std_build(&s, w);
    rc = fp_attach(w);
    cr_assert_eq(rc, 0, "attach 3.16t: %d (%s) %s", rc, ps_strerror(rc), ps_err_detail());
    cr_expect(w->py.off.flags & PS_PYF_FREE_THREADED);
    ps_py_snapshot_init(&snap);
    sample(w, &snap);
    expect_t1(&s, &snap, 5, "3.16t thread 1");
    ps_py_snapshot_release(&snap);
    fp_free(w);
}

/* 3.16 without usable debug offsets cannot be read safely. */
Test(walk, py316_without_debug_offsets_is_refused)
{
    struct fp_world *w = fp_new_layout(ps_pyoffsets_lookup(3, 15), 3, 16);
    w->hexversion = 0x031000a2;
    cr_assert_eq(fp_attach(w), 0);
    /* Break the cookie and pick again. */
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime, "ydebugpy", 8), 0);
    int rc = ps_py_pick_layout(&w->py);
    cr_expect_eq(rc, PS_EVERSION, "rc %d (%s)", rc, ps_strerror(rc));
    fp_free(w);
}

/* ---- the fake itself ----------------------------------------------------------------------- */

/* The line-table encoder agrees with ps_line_for_offset in every format (fp_code also checks
 * each table it writes), including long runs, big jumps and multi-group varints. */
Test(walk, fake_line_tables_roundtrip)
{
    static const enum ps_line_format fmts[] = {PS_LINES_LNOTAB27, PS_LINES_LNOTAB,
                                               PS_LINES_LINETABLE310, PS_LINES_LOCATIONS};
    int lines[600];
    uint8_t table[8192];
    for (size_t f = 0; f < PS_ARRAY_LEN(fmts); f++) {
        int cur = 7;
        for (int u = 0; u < 600; u++) {
            if (u % 37 == 0)
                cur += 300; /* beyond one byte / one varint group */
            else if (u % 11 == 0 && fmts[f] != PS_LINES_LNOTAB27)
                cur -= 60;
            else if (u % 5 == 0)
                cur += 1;
            int none = (u / 7) % 9 == 4 && fmts[f] >= PS_LINES_LINETABLE310;
            lines[u] = none ? -1 : cur;
        }
        size_t n = fp_linetable(fmts[f], 7, lines, 600, table, sizeof table);
        cr_assert_gt(n, 0);
        for (int u = 0; u < 600; u++)
            cr_assert_eq(ps_line_for_offset(fmts[f], table, n, 7, fp_unit_offset(fmts[f], u)),
                         lines[u], "format %d unit %d", fmts[f], u);
    }
}

/* ---- idle detection and the GIL ------------------------------------------------------------ */

/* Two real threads of this process stand for the target's: one spinning (the kernel shows it
 * running), one blocked in read(2). The fake thread states carry their TIDs, so the walker asks
 * /proc about them; py.state_reads counts how often. */
struct helpers {
    pthread_t spin_th, block_th;
    atomic_int stop;
    atomic_int spin_tid, block_tid;
    int pipefd[2];
};

static void *spin_main(void *arg)
{
    struct helpers *h = arg;
    atomic_store(&h->spin_tid, (int)syscall(SYS_gettid));
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&h->stop)) { /* bounded: at most 60 s */
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60)
            break;
    }
    return NULL;
}

static void *block_main(void *arg)
{
    struct helpers *h = arg;
    atomic_store(&h->block_tid, (int)syscall(SYS_gettid));
    char c;
    ssize_t r = read(h->pipefd[0], &c, 1); /* until the test writes (or closes) */
    (void)r;
    return NULL;
}

/* Is the kernel showing thread tid of this process blocked in a system call? */
static int shown_blocked(pid_t tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 && strncmp(buf, "running", 7) != 0;
}

static void helpers_start(struct helpers *h)
{
    memset(h, 0, sizeof *h);
    cr_assert_eq(pipe(h->pipefd), 0);
    cr_assert_eq(pthread_create(&h->spin_th, NULL, spin_main, h), 0);
    cr_assert_eq(pthread_create(&h->block_th, NULL, block_main, h), 0);
    /* Bounded waits for both to be where the test needs them. */
    for (int i = 0; i < 1000000 && (!atomic_load(&h->spin_tid) || !atomic_load(&h->block_tid)); i++)
        sched_yield();
    cr_assert(atomic_load(&h->spin_tid) && atomic_load(&h->block_tid));
    int blocked = 0;
    for (int i = 0; i < 1000000 && !blocked; i++) {
        blocked = shown_blocked(atomic_load(&h->block_tid));
        if (!blocked)
            sched_yield();
    }
    cr_assert(blocked, "the helper thread never blocked in read(2)");
}

static void helpers_stop(struct helpers *h)
{
    atomic_store(&h->stop, 1);
    cr_assert_eq(write(h->pipefd[1], "x", 1), 1);
    pthread_join(h->spin_th, NULL);
    pthread_join(h->block_th, NULL);
    close(h->pipefd[0]);
    close(h->pipefd[1]);
}

static const struct ps_py_thread *by_tid(const struct ps_py_snapshot *s, pid_t tid)
{
    const struct ps_py_thread *t = fp_snap_thread(s, tid);
    cr_assert_not_null(t, "thread %d missing", (int)tid);
    cr_assert_eq(t->err, 0);
    return t;
}

/* A thread holding the GIL that the kernel has shown running is taken as running, without
 * asking again, for py.gil_trust_ns; a holder shown blocked (a call made without releasing the
 * GIL) is asked about on every snapshot. A thread without the GIL that the kernel has shown
 * asleep is taken as idle, without asking, while its stack stays where it was, for
 * py.idle_trust_ns; when its instruction moves it is asked again. */
static void gil_trust(int minor)
{
    struct helpers h;
    helpers_start(&h);
    pid_t spin = atomic_load(&h.spin_tid), blocked = atomic_load(&h.block_tid);

    struct fp_world *w = fp_new(3, minor);
    int lines[16];
    mk_lines(lines, 10, w->lay.line_format);
    struct fp_code_spec cs = {"work", NULL, "/srv/app/work.py", 10, lines, 16};
    uint64_t code = fp_code(w, &cs);
    struct fp_frame f[3] = {{code, 5, FP_PY, 0}, {code, 2, FP_PY, 0}, {0, 0, FP_ENTRY, 0}};
    int nf = w->lay.if_owner_skip_min > 0 ? 3 : 2;
    int ts = fp_thread(w, spin, f, nf, 0);
    int tb = fp_thread(w, blocked, f, nf, 0);
    cr_assert_eq(fp_attach(w), 0);
    w->py.pid = getpid();
    w->py.read_thread_state = 1;
    w->py.gil_trust_ns = 3600ull * 1000000000ull; /* no expiry within the test */
    w->py.idle_trust_ns = 3600ull * 1000000000ull;
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);

    fp_set_gil(w, ts, 1);
    sample(w, &snap);
    cr_expect_eq(w->py.state_reads, 2, "first snapshot: both threads asked about");
    cr_expect(by_tid(&snap, spin)->gil && !by_tid(&snap, spin)->idle, "the spinning holder runs");
    cr_expect(by_tid(&snap, blocked)->idle, "the blocked thread is idle");
    for (int k = 0; k < 3; k++) {
        uint64_t r0 = w->py.state_reads;
        sample(w, &snap);
        cr_expect_eq(w->py.state_reads - r0, 0,
                     "pass %d: neither the running holder nor the unmoved sleeper is asked", k);
        cr_expect(!by_tid(&snap, spin)->idle && by_tid(&snap, spin)->state == 'R');
        cr_expect(by_tid(&snap, blocked)->idle);
    }
    /* The sleeper's stack moves (it returned from a call): it is asked again, once, and the
     * new stack is the one reported. */
    fp_set_current(w, tb, 1);
    for (int k = 0; k < 3; k++) {
        uint64_t r0 = w->py.state_reads;
        sample(w, &snap);
        cr_expect_eq(w->py.state_reads - r0, k == 0 ? 1 : 0,
                     "pass %d: a thread whose stack moved is asked once", k);
        cr_expect(by_tid(&snap, blocked)->idle);
        cr_expect_eq(by_tid(&snap, blocked)->nframes, 1, "pass %d: %d frames", k,
                     by_tid(&snap, blocked)->nframes);
        cr_expect_eq(by_tid(&snap, blocked)->frames[0].line, lines[2]);
    }

    /* The GIL goes to the blocked thread (a blocking call that kept it). */
    fp_set_gil(w, tb, 1);
    for (int k = 0; k < 3; k++) {
        uint64_t r0 = w->py.state_reads;
        sample(w, &snap);
        cr_expect_eq(w->py.state_reads - r0, 2, "pass %d: a holder shown blocked is asked again",
                     k);
        cr_expect(by_tid(&snap, blocked)->gil && by_tid(&snap, blocked)->idle,
                  "pass %d: a blocked GIL holder is idle", k);
        cr_expect(!by_tid(&snap, spin)->idle);
    }

    /* Back to the spinning thread, with trust windows that have always run out. */
    w->py.gil_trust_ns = 1;
    w->py.idle_trust_ns = 1;
    fp_set_gil(w, ts, 1);
    for (int k = 0; k < 3; k++) {
        uint64_t r0 = w->py.state_reads, s0 = w->py.sched_reads;
        sample(w, &snap);
        /* The sleeper's re-check reads its schedstat; the first one has nothing to compare
         * with and asks for the state too, the later ones find it not scheduled in since. */
        cr_expect_eq(w->py.state_reads - r0, k == 0 ? 2 : 1,
                     "pass %d: past the window, the holder is asked", k);
        cr_expect_eq(w->py.sched_reads - s0, 1, "pass %d: the sleeper's schedstat is read", k);
        cr_expect(!by_tid(&snap, spin)->idle);
        cr_expect(by_tid(&snap, blocked)->idle, "pass %d: the sleeper stays idle", k);
    }
    ps_py_snapshot_release(&snap);
    fp_free(w);
    helpers_stop(&h);
}

/* A thread the kernel showed asleep, without the GIL, whose thread state still shows the same
 * frame and data-stack top, is not read again: its stack is the last walk's, and a snapshot
 * copies fewer bytes than when every stack is read. Once its current frame moves, the next
 * snapshot reads it and reports the new stack. */
static void quiet_skip(int minor)
{
    struct helpers h;
    helpers_start(&h);
    pid_t spin = atomic_load(&h.spin_tid), blocked = atomic_load(&h.block_tid);

    struct fp_world *w = fp_new(3, minor);
    int lines[16];
    mk_lines(lines, 10, w->lay.line_format);
    struct fp_code_spec cs = {"work", NULL, "/srv/app/work.py", 10, lines, 16};
    uint64_t code = fp_code(w, &cs);
    struct fp_frame f[3] = {{code, 5, FP_PY, 0}, {code, 2, FP_PY, 0}, {0, 0, FP_ENTRY, 0}};
    int nf = w->lay.if_owner_skip_min > 0 ? 3 : 2;
    int ts = fp_thread(w, spin, f, nf, 0);
    int tb = fp_thread(w, blocked, f, nf, 0);
    cr_assert_eq(fp_attach(w), 0);
    w->py.pid = getpid();
    w->py.read_thread_state = 1;
    w->py.gil_trust_ns = 3600ull * 1000000000ull;
    w->py.idle_trust_ns = 3600ull * 1000000000ull;
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    fp_set_gil(w, ts, 1);
    sample(w, &snap);
    sample(w, &snap);
    uint64_t b0 = w->py.mem.bytes_read;
    sample(w, &snap);
    uint64_t quiet_bytes = w->py.mem.bytes_read - b0;
    cr_expect(by_tid(&snap, blocked)->idle);
    cr_expect_eq(by_tid(&snap, blocked)->nframes, 2);
    cr_expect_eq(by_tid(&snap, blocked)->frames[0].line, line_at(lines, 5));

    w->py.idle_trust_ns = 1; /* every window has run out: every stack is read */
    sample(w, &snap);
    b0 = w->py.mem.bytes_read;
    sample(w, &snap);
    uint64_t full_bytes = w->py.mem.bytes_read - b0;
    cr_expect_lt(quiet_bytes, full_bytes, "a sleeping thread's stack was read again: %llu bytes "
                 "against %llu with every stack read", (unsigned long long)quiet_bytes,
                 (unsigned long long)full_bytes);

    w->py.idle_trust_ns = 3600ull * 1000000000ull;
    sample(w, &snap);
    sample(w, &snap);
    fp_set_current(w, tb, 1); /* it returned from a call */
    sample(w, &snap);
    const struct ps_py_thread *t = by_tid(&snap, blocked);
    cr_expect_eq(t->nframes, 1, "%d frames after its frame moved", t->nframes);
    cr_expect_eq(t->frames[0].line, line_at(lines, 2));
    cr_expect(t->idle);
    ps_py_snapshot_release(&snap);
    fp_free(w);
    helpers_stop(&h);
}

Test(walk, quiet_skip_311) { quiet_skip(11); }
Test(walk, quiet_skip_312) { quiet_skip(12); }
Test(walk, quiet_skip_313) { quiet_skip(13); }
Test(walk, quiet_skip_310) { quiet_skip(10); }

Test(walk, gil_trust_311) { gil_trust(11); }
Test(walk, gil_trust_312) { gil_trust(12); }
Test(walk, gil_trust_313) { gil_trust(13); }

/* ---- where struct pthread keeps the TID (<= 3.10) ------------------------------------------ */

enum { TSPAN = 1024 };

static void tid_at(uint8_t *blk, int i, int off, int32_t v)
{
    memcpy(blk + (size_t)i * TSPAN + off, &v, 4);
}

/* Five threads of a churning process: the four newest ended after the thread list was read
 * (the kernel cleared their TIDs), the oldest is the main thread. Its block holding the process
 * ID settles 720; before, four zeros against one hit found nothing and every thread, the main
 * one too, showed without a TID. */
Test(walk, tid_offset_churn_main_anchor)
{
    uint8_t *blk = calloc(5, TSPAN);
    pid_t tids[] = {900, 901};
    tid_at(blk, 4, 720, 900);
    cr_expect_eq(ps_pick_tid_offset(blk, 5, TSPAN, tids, 2, 900), 720);
    /* the same blocks with the lone hit on a worker, not the main thread: not enough */
    memset(blk, 0, 5 * TSPAN);
    tid_at(blk, 4, 720, 901);
    cr_expect_eq(ps_pick_tid_offset(blk, 5, TSPAN, tids, 2, 900), -1);
    free(blk);
}

Test(walk, tid_offset_half_the_threads)
{
    uint8_t *blk = calloc(4, TSPAN);
    pid_t tids[] = {900, 901, 902, 903};
    tid_at(blk, 0, 720, 901);
    tid_at(blk, 1, 720, 902);
    /* a thread that has just started: its TID is missing from the list read before */
    tid_at(blk, 2, 720, 904);
    cr_expect_eq(ps_pick_tid_offset(blk, 4, TSPAN, tids, 4, 900), 720);
    /* a negative word at 720 is no TID: not glibc's layout, and no other offset agrees */
    tid_at(blk, 3, 720, -5);
    cr_expect_eq(ps_pick_tid_offset(blk, 4, TSPAN, tids, 4, 900), -1);
    free(blk);
}

/* Another libc: the TID elsewhere, found by the scan only when every block agrees and no two
 * threads share a TID. */
Test(walk, tid_offset_scan)
{
    uint8_t *blk = calloc(3, TSPAN);
    pid_t tids[] = {900, 901, 902};
    for (int i = 0; i < 3; i++)
        tid_at(blk, i, 208, 900 + i);
    cr_expect_eq(ps_pick_tid_offset(blk, 3, TSPAN, tids, 3, 900), 208);
    tid_at(blk, 2, 208, 901);
    cr_expect_eq(ps_pick_tid_offset(blk, 3, TSPAN, tids, 3, 900), -1);
    cr_expect_eq(ps_pick_tid_offset(blk, 0, TSPAN, tids, 3, 900), -1);
    free(blk);
}
