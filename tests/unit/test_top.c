/* test_top.c — the figures of `pysample top` (out/top.c) on a hand-built live profile: own and
 * total counts over the last interval and since the start, recursion counted once, the
 * per-thread and per-process splits, per-line rows, reset, sort orders and the exact row text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ps_top.h"
#include "ps_util.h"

#define SEC 1000000000ull

struct fr {
    const char *name;
    const char *file;
    int line;
};

static const struct fr TA = {"thread (10): MainThread", NULL, 0}, TB = {"thread (11): worker", NULL, 0},
                       PA = {"process 42:\"python app.py\"", NULL, 0},
                       M = {"main", "app.py", 1}, F = {"f", "app.py", 2}, F5 = {"f", "app.py", 5},
                       G = {"g", "app.py", 7}, R = {"run", "work.py", 3};

/* Counts `count` samples of the stack, as the sampler does (profile and statistics). */
static void add(struct ps_profile *p, uint64_t count, int n, const struct fr *f)
{
    uint32_t ids[16];
    for (int i = 0; i < n; i++) {
        uint32_t name = ps_intern_str(p->in, f[i].name, strlen(f[i].name));
        uint32_t file = f[i].file ? ps_intern_str(p->in, f[i].file, strlen(f[i].file)) : 0;
        ids[i] = ps_intern_frame(p->in, name, file, f[i].line);
    }
    ps_profile_add(p, ps_intern_stack(p->in, ids, (uint32_t)n), count);
    p->stats.thread_samples += count;
    p->stats.active_samples += count;
}

/* The row of function `name` (with thread root text `thread`, NULL = any), or NULL. */
static const struct ps_top_row *row(const struct ps_top *t, const char *name, const char *thread)
{
    const struct ps_intern *in = t->prof->in;
    for (uint32_t i = 0; i < t->nrows; i++) {
        const struct ps_top_row *r = t->order[i];
        if (strcmp(ps_intern_str_get(in, r->name), name) != 0)
            continue;
        if (thread && (!r->thread ||
                       strcmp(ps_intern_str_get(in, ps_intern_frame_get(in, r->thread)->name),
                              thread) != 0))
            continue;
        return r;
    }
    return NULL;
}

static const char *order_name(const struct ps_top *t, uint32_t i)
{
    return ps_intern_str_get(t->prof->in, t->order[i]->name);
}

static void setup(struct ps_profile *p, struct ps_top *t)
{
    ps_profile_init(p);
    p->interval_s = 0.01;
    p->stats.rate_hz = 100;
    ps_top_init(t, p, 0, 0);
    add(p, 6, 4, (struct fr[]){TA, M, F, G});
    add(p, 2, 4, (struct fr[]){TA, M, F, F5}); /* f recursing: counts once in f's total */
    add(p, 2, 3, (struct fr[]){TB, R, G});
    p->stats.ticks += 100;
    ps_top_refresh(t, 1 * SEC);
}

Test(top, own_and_total_since_start)
{
    struct ps_profile p;
    struct ps_top t;
    setup(&p, &t);
    cr_assert_eq(t.nrows, 4);
    const struct ps_top_row *g = row(&t, "g", NULL), *f = row(&t, "f", NULL);
    const struct ps_top_row *m = row(&t, "main", NULL), *r = row(&t, "run", NULL);
    cr_assert(g && f && m && r);
    cr_assert_eq(g->own_all, 8);
    cr_assert_eq(g->total_all, 8);
    cr_assert_eq(f->own_all, 2);
    cr_assert_eq(f->total_all, 8, "recursion counts once per sample");
    cr_assert_eq(f->line, 2, "a function shows its smallest line");
    cr_assert_eq(m->own_all, 0);
    cr_assert_eq(m->total_all, 8);
    cr_assert_eq(r->total_all, 2);
    cr_assert_eq(g->own_last, 8, "first interval = since start");
    cr_assert_eq(t.last.samples, 10);
    cr_assert_eq(t.last.ticks, 100);
    cr_assert_eq(t.last.seconds, 1.0);
    /* By %Own: g, f, then main and run (no own time) by their totals. */
    cr_assert_str_eq(order_name(&t, 0), "g");
    cr_assert_str_eq(order_name(&t, 1), "f");
    cr_assert_str_eq(order_name(&t, 2), "main");
    cr_assert_str_eq(order_name(&t, 3), "run");
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, last_interval_and_since_start)
{
    struct ps_profile p;
    struct ps_top t;
    setup(&p, &t);
    add(&p, 4, 4, (struct fr[]){TA, M, F, G});
    p.stats.ticks += 50;
    ps_top_refresh(&t, 3 * SEC);
    const struct ps_top_row *g = row(&t, "g", NULL), *r = row(&t, "run", NULL);
    cr_assert_eq(g->own_last, 4);
    cr_assert_eq(g->own_all, 12);
    cr_assert_eq(r->total_last, 0);
    cr_assert_eq(r->total_all, 2, "rows with time since the start stay");
    cr_assert_eq(t.last.samples, 4);
    cr_assert_eq(t.all.samples, 14);
    cr_assert_eq(t.last.seconds, 2.0);
    cr_assert_eq(t.all.seconds, 3.0);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_top_counts_text(&t, &sb, 0);
    cr_assert_str_eq(sb.buf, "Samples: 4 (total 14)  Rate: 25.0 Hz of 100  Late: 0 (total 0)  "
                             "Dropped: 0 (total 0)");
    /* Sorted by %Total over the last interval: main, f, g (4 each) by name, then run (0). */
    t.sort = PS_TOP_SORT_TOTAL_PCT;
    ps_top_build(&t);
    cr_assert_str_eq(order_name(&t, 0), "g", "ties on %%Total broken by %%Own");
    cr_assert_str_eq(order_name(&t, 3), "run");
    t.since_start = 1;
    ps_top_build(&t);
    ps_sb_reset(&sb);
    ps_top_counts_text(&t, &sb, 0);
    cr_assert_str_eq(sb.buf, "Samples: 4 (total 14)  Rate: 50.0 Hz of 100  Late: 0 (total 0)  "
                             "Dropped: 0 (total 0)");
    ps_sb_release(&sb);
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, per_thread_rows)
{
    struct ps_profile p;
    struct ps_top t;
    setup(&p, &t);
    t.per_thread = 1;
    ps_top_build(&t);
    cr_assert_eq(t.nrows, 5, "g once per thread");
    const struct ps_top_row *ga = row(&t, "g", "thread (10): MainThread");
    const struct ps_top_row *gb = row(&t, "g", "thread (11): worker");
    cr_assert(ga && gb);
    cr_assert_eq(ga->own_all, 6);
    cr_assert_eq(gb->own_all, 2);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_top_columns(&t, &sb, 0);
    cr_assert_str_eq(sb.buf, "  %Own  %Total   OwnTime  TotalTime  Thread                Function");
    ps_sb_reset(&sb);
    ps_top_row_text(&t, 0, &sb, 0);
    cr_assert_str_eq(sb.buf, "  60.0    60.0     0.06s      0.06s  10 MainThread         g (app.py:7)");
    ps_sb_reset(&sb);
    ps_top_row_text(&t, 0, &sb, 41);
    cr_assert_str_eq(sb.buf, "  60.0    60.0     0.06s      0.06s  10 M");
    ps_sb_release(&sb);
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, per_process_rows)
{
    struct ps_profile p;
    struct ps_top t;
    ps_profile_init(&p);
    ps_top_init(&t, &p, 0, 0);
    add(&p, 3, 4, (struct fr[]){PA, TA, M, G});
    t.per_proc = 1;
    ps_top_refresh(&t, SEC);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_top_row_text(&t, 0, &sb, 0);
    cr_assert_str_eq(sb.buf, " 100.0   100.0     0.03s      0.03s  42      g (app.py:7)");
    ps_sb_release(&sb);
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, per_line_rows)
{
    struct ps_profile p;
    struct ps_top t;
    setup(&p, &t);
    t.by_line = 1;
    ps_top_build(&t);
    cr_assert_eq(t.nrows, 5, "f:2 and f:5 are two rows");
    cr_assert_str_eq(order_name(&t, 0), "g");
    cr_assert_str_eq(order_name(&t, 1), "f");
    cr_assert_eq(t.order[1]->line, 5);
    cr_assert_eq(t.order[1]->own_all, 2);
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, reset_and_sort_by_time)
{
    struct ps_profile p;
    struct ps_top t;
    setup(&p, &t);
    ps_top_reset(&t, 2 * SEC);
    cr_assert_eq(t.nrows, 0);
    cr_assert_eq(t.all.samples, 0);
    add(&p, 1, 3, (struct fr[]){TB, R, G});
    add(&p, 3, 3, (struct fr[]){TB, R, F});
    ps_top_refresh(&t, 3 * SEC);
    cr_assert_eq(t.nrows, 3);
    cr_assert_eq(row(&t, "run", NULL)->total_all, 4);
    t.sort = PS_TOP_SORT_TOTAL_TIME;
    ps_top_build(&t);
    cr_assert_str_eq(order_name(&t, 0), "run");
    cr_assert_str_eq(order_name(&t, 1), "f");
    t.sort = PS_TOP_SORT_OWN_TIME;
    ps_top_build(&t);
    cr_assert_str_eq(order_name(&t, 0), "f");
    cr_assert_str_eq(ps_top_sort_name(PS_TOP_SORT_OWN_TIME), "OwnTime");
    ps_top_release(&t);
    ps_profile_release(&p);
}

Test(top, long_times_and_narrow_widths)
{
    struct ps_profile p;
    struct ps_top t;
    ps_profile_init(&p);
    p.interval_s = 0.01;
    ps_top_init(&t, &p, 0, 0);
    add(&p, 200000, 2, (struct fr[]){M, G}); /* 2000 s */
    add(&p, 100, 2, (struct fr[]){M, {"bad\nname", "app.py", 9}});
    ps_top_refresh(&t, SEC);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_top_row_text(&t, 0, &sb, 0);
    cr_assert_str_eq(sb.buf, " 100.0   100.0     0h33m      0h33m  g (app.py:7)");
    ps_sb_reset(&sb);
    ps_top_row_text(&t, 1, &sb, 0);
    cr_assert_str_eq(sb.buf, "   0.0     0.0     1.00s      1.00s  bad?name (app.py:9)",
                     "control characters never reach the screen");
    ps_sb_reset(&sb);
    ps_top_row_text(&t, 99, &sb, 0);
    cr_assert_str_eq(sb.buf, "", "a row past the end is empty");
    ps_sb_reset(&sb);
    ps_top_columns(&t, &sb, 5);
    cr_assert_str_eq(sb.buf, "  %Ow");
    ps_sb_release(&sb);
    ps_top_release(&t);
    ps_profile_release(&p);
}
