/* test_table.c — the statprof table (out/table.c) against golden files in tests/unit/golden/:
 * per-line and per-function rows of a hand-built profile with recursion, roots and an empty
 * stack; per-process totals and the statistics footer; the exact header bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

#define GOLDEN_DIR "tests/unit/golden/"

struct fr {
    const char *name;
    const char *file;
    int line;
};

static void add(struct ps_profile *p, uint64_t count, int n, const struct fr *f)
{
    uint32_t ids[16];
    for (int i = 0; i < n; i++) {
        uint32_t name = ps_intern_str(p->in, f[i].name, strlen(f[i].name));
        uint32_t file = f[i].file ? ps_intern_str(p->in, f[i].file, strlen(f[i].file)) : 0;
        ids[i] = ps_intern_frame(p->in, name, file, f[i].line);
    }
    ps_profile_add(p, ps_intern_stack(p->in, ids, (uint32_t)n), count);
}

static char *table(const struct ps_profile *p, int by_function)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct ps_out_opts o = {.by_function = by_function};
    cr_assert_eq(ps_table_write(f, p, &o), 0);
    fclose(f);
    return buf;
}

static char *golden(const char *name)
{
    char *text = NULL;
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", name);
    long n = ps_read_file(path, &text, 1 << 20);
    cr_assert_geq(n, 0, "cannot read %s (run from the repository root)", path);
    return text;
}

/* <module> -> run -> work/helper, a recursive fib, a thread root and an empty stack. */
static void build_app(struct ps_profile *p)
{
    const struct fr M = {"<module>", "/srv/app/main.py", 10}, A = {"run", "/srv/app/main.py", 20},
                    B = {"work", "/srv/app/lib/util.py", 5}, B2 = {"work", "/srv/app/lib/util.py", 7},
                    C = {"helper", "/srv/app/lib/util.py", 30}, R = {"fib", "/srv/app/main.py", 40},
                    T = {"thread (7): MainThread", NULL, 0};
    add(p, 30, 3, (struct fr[]){M, A, B});
    add(p, 10, 3, (struct fr[]){M, A, B2});
    add(p, 20, 3, (struct fr[]){M, A, C});
    add(p, 25, 4, (struct fr[]){M, R, R, R});
    add(p, 5, 4, (struct fr[]){M, A, B, C});
    add(p, 8, 1, (struct fr[]){M});
    add(p, 2, 3, (struct fr[]){T, M, A});
    add(p, 3, 0, NULL);
    add(p, 0, 2, (struct fr[]){M, {"never", "/srv/app/main.py", 99}});
}

Test(table, header_bytes)
{
    struct ps_profile p;
    ps_profile_init(&p);
    char *out = table(&p, 0);
    /* '%5.5s %10.10s   %7.7s  %-8.8s' % ('%  ', 'cumulative', 'self', '') and
     * '%5.5s  %9.9s  %8.8s  %-8.8s' % ('time', 'seconds', 'seconds', 'name'). */
    cr_assert_str_eq(out, "  %   cumulative      self          \n"
                          " time    seconds   seconds  name    \n"
                          "---\n"
                          "Sample count: 0\n"
                          "Total time: 0.000000 seconds\n");
    free(out);
    ps_profile_release(&p);
}

Test(table, by_line_golden)
{
    struct ps_profile p;
    ps_profile_init(&p);
    build_app(&p);
    p.interval_s = 0.01;
    char *out = table(&p, 0), *want = golden("table_by_line.txt");
    cr_assert_str_eq(out, want);
    free(out);
    /* Unknown interval: statprof's 0.01 s per sample. */
    p.interval_s = 0;
    out = table(&p, 0);
    cr_assert_str_eq(out, want);
    free(out);
    free(want);
    ps_profile_release(&p);
}

Test(table, by_function_golden)
{
    struct ps_profile p;
    ps_profile_init(&p);
    build_app(&p);
    p.interval_s = 0.01;
    char *out = table(&p, 1), *want = golden("table_by_function.txt");
    cr_assert_str_eq(out, want);
    free(out);
    free(want);
    ps_profile_release(&p);
}

Test(table, processes_and_statistics_golden)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const struct fr P1 = {"process 100:\"python server.py\"", NULL, 0},
                    P2 = {"process 200:\"python worker.py\"", NULL, 0}, P3 = {"process 300", NULL, 0},
                    T = {"thread (101): MainThread", NULL, 0};
    add(&p, 60, 3, (struct fr[]){P1, T, {"serve", "/srv/server.py", 10}});
    add(&p, 30, 3, (struct fr[]){P1, P2, {"work", "worker.py", 3}});
    add(&p, 10, 2, (struct fr[]){P3, {"idle", "x.py", 1}});
    p.interval_s = 0.005;
    p.has_stats = 1;
    p.stats = (struct ps_stats){.rate_hz = 200,
                                .duration_s = 0.55,
                                .ticks = 110,
                                .late_ticks = 1,
                                .thread_samples = 100,
                                .dropped = {[PS_DROP_TORN] = 4, [PS_DROP_VANISHED] = 1},
                                .gil_samples = 50,
                                .active_samples = 90,
                                .remote_reads = 330,
                                .sample_ns_min = 8000,
                                .sample_ns_median = 15500,
                                .sample_ns_max = 120000};
    char *out = table(&p, 0), *want = golden("table_processes_stats.txt");
    cr_assert_str_eq(out, want);
    free(out);
    free(want);
    ps_profile_release(&p);
}

Test(table, plain_names_and_control_characters)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, 3, 3, (struct fr[]){{"main", NULL, 0}, {"foo", NULL, 0}, {"bar", NULL, 0}});
    add(&p, 1, 2, (struct fr[]){{"main", NULL, 0}, {"bad\nname", "C:\\src\\w.py", 2}});
    char *out = table(&p, 0);
    cr_assert_str_eq(out, "  %   cumulative      self          \n"
                          " time    seconds   seconds  name    \n"
                          " 75.00      0.03      0.03  bar\n"
                          " 25.00      0.01      0.01  w.py:2:bad?name\n"
                          "  0.00      0.04      0.00  main\n"
                          "  0.00      0.03      0.00  foo\n"
                          "---\n"
                          "Sample count: 4\n"
                          "Total time: 0.040000 seconds\n");
    free(out);
    ps_profile_release(&p);
}

Test(table, table_of_a_read_file_matches)
{
    /* The same app written as folded, read back and tabulated gives the same table. */
    struct ps_profile p, q;
    ps_profile_init(&p);
    build_app(&p);
    p.interval_s = 0.01;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(ps_folded_write(f, &p, NULL), 0);
    fclose(f);
    ps_profile_init(&q);
    f = fmemopen(text, len, "r");
    cr_assert_eq(ps_folded_read(f, "app.folded", &q), 0);
    fclose(f);
    char *a = table(&q, 0), *want = golden("table_by_line.txt");
    cr_assert_str_eq(a, want);
    free(a);
    free(want);
    free(text);
    ps_profile_release(&q);
    ps_profile_release(&p);
}

/* Free-threaded targets without a GIL: the footer gives the attached share instead of "GIL held"
 * (all samples of that kind), or both shares, each of its own kind (mixed processes). */
static void stats_profile(struct ps_profile *p, uint64_t samples, uint64_t gil, uint64_t nogil,
                          uint64_t attached)
{
    ps_profile_init(p);
    build_app(p);
    p->interval_s = 0.01;
    p->has_stats = 1;
    p->stats = (struct ps_stats){.rate_hz = 100, .duration_s = 1, .ticks = 100,
                                 .thread_samples = samples, .gil_samples = gil,
                                 .nogil_samples = nogil, .attached_samples = attached,
                                 .active_samples = samples, .remote_reads = 100};
}

Test(table, free_threaded_footer)
{
    struct ps_profile p;
    stats_profile(&p, 200, 0, 200, 150);
    char *t = table(&p, 0);
    cr_expect(strstr(t, "\nNo GIL (free-threaded): attached: 75.0% of samples, active: 100.0% of "
                        "samples\n") != NULL, "%s", t);
    cr_expect(strstr(t, "GIL held") == NULL, "%s", t);
    free(t);
    ps_profile_release(&p);

    stats_profile(&p, 200, 50, 100, 25);
    t = table(&p, 0);
    cr_expect(strstr(t, "\nGIL held: 50.0% of samples with a GIL, attached: 25.0% of samples "
                        "without one (free-threaded), active: 100.0% of samples\n") != NULL,
              "%s", t);
    free(t);
    ps_profile_release(&p);

    stats_profile(&p, 200, 50, 0, 0);
    t = table(&p, 0);
    cr_expect(strstr(t, "\nGIL held: 25.0% of samples, active: 100.0% of samples\n") != NULL, "%s",
              t);
    free(t);
    ps_profile_release(&p);
}
