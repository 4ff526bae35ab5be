/* test_folded.c — folded stacks (out/folded.c): the writer's exact text and escaping, write ->
 * read round trips (frames, counts, metadata, statistics), every foreign dialect the reader
 * accepts, every malformed input failing with PS_EFORMAT at the right line; and the writer
 * registry with atomic file output (out/output.c).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_output.h"
#include "ps_util.h"

/* ---- helpers ----------------------------------------------------------------------------- */

struct fr {
    const char *name;
    const char *file; /* NULL: none */
    int line;
};

static uint32_t mkframe(struct ps_profile *p, struct fr f)
{
    uint32_t name = ps_intern_str(p->in, f.name, strlen(f.name));
    uint32_t file = f.file ? ps_intern_str(p->in, f.file, strlen(f.file)) : 0;
    return ps_intern_frame(p->in, name, file, f.line);
}

static uint32_t add(struct ps_profile *p, uint64_t count, int n, const struct fr *f)
{
    uint32_t ids[64];
    for (int i = 0; i < n; i++)
        ids[i] = mkframe(p, f[i]);
    uint32_t sid = ps_intern_stack(p->in, ids, (uint32_t)n);
    ps_profile_add(p, sid, count);
    return sid;
}

static int read_str(struct ps_profile *p, const char *text, const char *name)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    cr_assert_not_null(f);
    ps_err_clear();
    int rc = ps_folded_read(f, name, p);
    fclose(f);
    return rc;
}

static char *write_str(const struct ps_profile *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(ps_folded_write(f, p, NULL), 0);
    fclose(f);
    return buf;
}

/* Display text of a stack: frames by ps_frame_format joined with ';'. */
static void stack_text(const struct ps_profile *p, uint32_t sid, char *out, size_t sz)
{
    uint32_t n;
    const uint32_t *ids = ps_intern_stack_get(p->in, sid, &n);
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            out[len++] = ';';
        int k = ps_frame_format(p->in, ids[i], out + len, sz - len);
        cr_assert_geq(k, 0);
        len += (size_t)k;
        cr_assert_lt(len, sz);
    }
}

/* Sum of counts of the stacks whose display text is `text`. */
static uint64_t count_of(const struct ps_profile *p, const char *text)
{
    static char buf[1 << 16];
    uint64_t c = 0;
    for (uint32_t sid = 1; sid <= ps_intern_nstacks(p->in) && sid < p->counts_cap; sid++) {
        stack_text(p, sid, buf, sizeof buf);
        if (strcmp(buf, text) == 0)
            c += p->counts[sid];
    }
    return c;
}

/* Canonical text of a whole profile: every counted stack as the exact bytes of each frame
 * (hex), sorted, so two profiles compare equal iff they hold the same stacks and counts. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hex(struct ps_strbuf *sb, const struct ps_intern *in, uint32_t id)
{
    const char *s = ps_intern_str_get(in, id);
    size_t n = ps_intern_str_len(in, id);
    if (!s) {
        ps_sb_adds(sb, "-");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ps_sb_printf(sb, "%02x", (unsigned char)s[i]);
}

static char *canon(const struct ps_profile *p)
{
    uint32_t ns = ps_intern_nstacks(p->in);
    char **lines = calloc(ns + 1, sizeof *lines);
    size_t nl = 0;
    for (uint32_t sid = 1; sid <= ns && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        struct ps_strbuf sb;
        ps_sb_init(&sb);
        uint32_t n;
        const uint32_t *ids = ps_intern_stack_get(p->in, sid, &n);
        for (uint32_t i = 0; i < n; i++) {
            const struct ps_frame_key *k = ps_intern_frame_get(p->in, ids[i]);
            hex(&sb, p->in, k->name);
            ps_sb_addc(&sb, '/');
            hex(&sb, p->in, k->file);
            ps_sb_printf(&sb, "/%d;", (int)k->line);
        }
        ps_sb_printf(&sb, " %llu", (unsigned long long)p->counts[sid]);
        lines[nl++] = sb.buf;
    }
    qsort(lines, nl, sizeof *lines, cmp_str);
    struct ps_strbuf all;
    ps_sb_init(&all);
    ps_sb_adds(&all, "");
    for (size_t i = 0; i < nl; i++) {
        ps_sb_adds(&all, lines[i]);
        ps_sb_addc(&all, '\n');
        free(lines[i]);
    }
    free(lines);
    return all.buf;
}

/* ---- writer ------------------------------------------------------------------------------ */

Test(folded, writer_exact_text_and_order)
{
    struct ps_profile p;
    ps_profile_init(&p);
    ps_meta_set(&p.meta, "python", "3.12.1");
    ps_meta_set(&p.meta, "command", "python app.py");
    const struct fr m = {"<module>", "app.py", 1}, run = {"run", "app.py", 0},
                     work = {"work", "lib/w.py", 7}, plain = {"native_thing", NULL, 0};
    add(&p, 3, 2, (struct fr[]){m, work});
    add(&p, 10, 3, (struct fr[]){m, run, work});
    add(&p, 3, 2, (struct fr[]){m, run});
    add(&p, 1, 1, (struct fr[]){plain});
    add(&p, 0, 1, (struct fr[]){run}); /* never counted: not written */
    char *out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n"
                          "# python=3.12.1\n"
                          "# command=\"python app.py\"\n"
                          "<module> (app.py:1);run (app.py);work (lib/w.py:7) 10\n"
                          "<module> (app.py:1);run (app.py) 3\n"
                          "<module> (app.py:1);work (lib/w.py:7) 3\n"
                          "native_thing 1\n");
    free(out);
    ps_profile_release(&p);
}

Test(folded, writer_statistics_lines)
{
    struct ps_profile p;
    ps_profile_init(&p);
    p.has_stats = 1;
    p.interval_s = 0.01;
    p.stats = (struct ps_stats){.rate_hz = 100,
                                .duration_s = 2.5,
                                .ticks = 250,
                                .late_ticks = 2,
                                .thread_samples = 240,
                                .dropped = {[PS_DROP_TORN] = 3, [PS_DROP_VANISHED] = 1},
                                .idle_skipped = 6,
                                .gil_samples = 200,
                                .active_samples = 230,
                                .remote_reads = 1000,
                                .sample_ns_min = 12345,
                                .sample_ns_median = 20000,
                                .sample_ns_max = 1500001,
                                .sample_cpu_ns_min = 4200,
                                .sample_cpu_ns_median = 8100,
                                .sample_cpu_ns_max = 90000};
    ps_meta_set(&p.meta, "rate", "ignored: the statistics line wins");
    add(&p, 240, 1, (struct fr[]){{"f", "a.py", 1}});
    char *out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n"
                          "# interval=10000\n"
                          "# samples=240\n"
                          "# rate=100\n"
                          "# duration=2.500000\n"
                          "# ticks=250\n"
                          "# late_ticks=2\n"
                          "# dropped=torn=3,vanished=1,read=0,corrupt=0,depth=0,process=0\n"
                          "# idle_skipped=6\n"
                          "# gil_samples=200\n"
                          "# active_samples=230\n"
                          "# remote_reads=1000\n"
                          "# sample_time_us=12.345/20.000/1500.001\n"
                          "# sample_cpu_us=4.200/8.100/90.000\n"
                          "f (a.py:1) 240\n");

    /* ... and they read back into the same statistics. */
    struct ps_profile q;
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "stats.folded"), 0);
    cr_assert_eq(q.has_stats, 1);
    cr_assert_float_eq(q.interval_s, 0.01, 1e-12);
    cr_assert_float_eq(q.stats.rate_hz, 100, 1e-9);
    cr_assert_float_eq(q.stats.duration_s, 2.5, 1e-9);
    cr_assert_eq(q.stats.ticks, 250);
    cr_assert_eq(q.stats.late_ticks, 2);
    cr_assert_eq(q.stats.thread_samples, 240);
    cr_assert_eq(q.stats.dropped[PS_DROP_TORN], 3);
    cr_assert_eq(q.stats.dropped[PS_DROP_VANISHED], 1);
    cr_assert_eq(ps_stats_dropped_total(&q.stats), 4);
    cr_assert_eq(q.stats.idle_skipped, 6);
    cr_assert_eq(q.stats.gil_samples, 200);
    cr_assert_eq(q.stats.active_samples, 230);
    cr_assert_eq(q.stats.remote_reads, 1000);
    cr_assert_eq(q.stats.sample_ns_min, 12345);
    cr_assert_eq(q.stats.sample_ns_median, 20000);
    cr_assert_eq(q.stats.sample_ns_max, 1500001);
    cr_assert_eq(q.stats.sample_cpu_ns_min, 4200);
    cr_assert_eq(q.stats.sample_cpu_ns_median, 8100);
    cr_assert_eq(q.stats.sample_cpu_ns_max, 90000);
    cr_assert_eq(q.meta.n, 0);
    cr_assert_eq(q.total, 240);
    /* Writing the read profile gives the same file again. */
    char *again = write_str(&q);
    cr_assert_str_eq(again, out);
    free(again);
    free(out);
    ps_profile_release(&q);
    ps_profile_release(&p);
}

/* The no-GIL counters of free-threaded targets: written only when there are such samples, and
 * read back. */
Test(folded, nogil_counters_roundtrip)
{
    struct ps_profile p, q;
    ps_profile_init(&p);
    p.has_stats = 1;
    p.interval_s = 0.01;
    p.stats = (struct ps_stats){.rate_hz = 100, .ticks = 10, .thread_samples = 20,
                                .nogil_samples = 20, .attached_samples = 17,
                                .active_samples = 20};
    add(&p, 20, 1, (struct fr[]){{"f", "a.py", 1}});
    char *out = write_str(&p);
    cr_assert(strstr(out, "# active_samples=20\n# nogil_samples=20\n# attached_samples=17\n") !=
                  NULL,
              "%s", out);
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "ft.folded"), 0);
    cr_expect_eq(q.stats.nogil_samples, 20);
    cr_expect_eq(q.stats.attached_samples, 17);
    free(out);
    ps_profile_release(&q);
    p.stats.nogil_samples = p.stats.attached_samples = 0;
    out = write_str(&p);
    cr_expect(strstr(out, "nogil") == NULL, "%s", out);
    free(out);
    ps_profile_release(&p);
}

Test(folded, writer_escapes_odd_names)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, 9, 2, (struct fr[]){{"a;b", "x;y.py", 3}, {"f (x)", "dir (copy)/m.py", 4}});
    add(&p, 8, 1, (struct fr[]){{"50%", "line\nbreak\r.py", 0}});
    add(&p, 7, 1, (struct fr[]){{"#hash", "t.py:12", 0}});
    add(&p, 6, 2, (struct fr[]){{"thread (77): Thread-1 (worker)", NULL, 0}, {"naïve_函数 x", "ü.py", 2}});
    add(&p, 5, 1, (struct fr[]){{"thread (1): x", "f.py", 1}}); /* not a root: it has a file */
    char *out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n"
                          "a%3Bb (x%3By.py:3);f %28x%29 (dir (copy)/m.py:4) 9\n"
                          "50%25 (line%0Abreak%0D.py) 8\n"
                          "%23hash (t.py%3A12) 7\n"
                          "thread (77): Thread-1 (worker);naïve_函数 x (ü.py:2) 6\n"
                          "thread %281%29: x (f.py:1) 5\n");
    free(out);
    ps_profile_release(&p);
}

Test(folded, writer_only_empty_stacks)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, 5, 0, NULL);
    char *out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n 5\n");
    struct ps_profile q;
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "empty.folded"), 0);
    cr_assert_eq(q.total, 5);
    cr_assert_eq(count_of(&q, ""), 5);
    free(out);
    ps_profile_release(&q);
    ps_profile_release(&p);

    ps_profile_init(&p); /* and nothing at all */
    out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n");
    free(out);
    ps_profile_release(&p);
}

/* ---- round trips ------------------------------------------------------------------------- */

static void roundtrip(struct ps_profile *p)
{
    char *out = write_str(p);
    struct ps_profile q;
    ps_profile_init(&q);
    int rc = read_str(&q, out, "rt.folded");
    cr_assert_eq(rc, 0, "read back failed: %s\n%s", ps_err_detail(), out);
    char *a = canon(p), *b = canon(&q);
    cr_assert_str_eq(b, a, "file was:\n%s", out);
    cr_assert_eq(q.total, p->total);
    /* A second generation is byte-identical. */
    char *out2 = write_str(&q);
    cr_assert_str_eq(out2, out);
    free(a);
    free(b);
    free(out);
    free(out2);
    ps_profile_release(&q);
}

Test(folded, roundtrip_plain_profile)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const struct fr m = {"<module>", "/srv/app/main.py", 12}, h = {"handle", "app/views.py", 88},
                     q = {"Query.execute", "<frozen importlib._bootstrap>", 1078},
                     l = {"<lambda>", "app/util.py", 0};
    for (int i = 1; i <= 50; i++)
        add(&p, (uint64_t)(i * 37 % 11 + 1), 3,
            (struct fr[]){m, h, {i % 2 ? "leaf_a" : "leaf_b", "lib.py", i}});
    add(&p, 5, 4, (struct fr[]){m, h, q, l});
    add(&p, 2, 0, NULL); /* empty stack */
    add(&p, UINT64_MAX / 4, 1, (struct fr[]){m});
    roundtrip(&p);
    ps_profile_release(&p);
}

Test(folded, roundtrip_odd_names)
{
    struct ps_profile p;
    ps_profile_init(&p);
    static const struct fr odd[] = {
        {"name with spaces", "dir with spaces/f.py", 1},
        {"semi;colon", "a;b.py", 2},
        {"(parens) f(x) )(", "p(a)r.py", 3},
        {"f (g.py:9)", NULL, 0},
        {"non-ASCII: naïve ü 函数 🐍", "ünï/cödé.py", 4},
        {"new\nline", "cr\r\nlf.py", 5},
        {"percent %41 %", "100%.py", 6},
        {"#leading hash", "h.py", 7},
        {"ends in digits 12", "x.py:12", 0},
        {"trailing space ", "t.py ", 8},
        {"", "empty-name.py", 9},
        {"no file", NULL, 0},
        {"colon:form:12", NULL, 0},
        {"tab\tname", "", 0},
        {"process 12:\"python -c 'x;y'\"", NULL, 0},
        {"thread (0x7f00): Thread-2 (run)", NULL, 0},
        {"thread (5)", NULL, 0},
        {"process 12:\"looks like a root\"", "but-has-file.py", 3},
        {"thread (5): also", "not-a-root.py", 0},
        {"-5", NULL, 0},
        {"P1", NULL, 0},
        {"T2:3", NULL, 0},
    };
    int n = (int)PS_ARRAY_LEN(odd);
    for (int i = 0; i < n; i++) {
        add(&p, (uint64_t)i + 1, 1, &odd[i]);
        add(&p, 100 + (uint64_t)i, 2, (struct fr[]){odd[i], odd[(i + 1) % n]});
    }
    add(&p, 7, n, odd);
    /* Names with NUL bytes survive too (interned with their length). */
    uint32_t nul = ps_intern_frame(p.in, ps_intern_str(p.in, "a\0b", 3),
                                   ps_intern_str(p.in, "f\0.py", 5), 1);
    ps_profile_add(&p, ps_intern_stack(p.in, &nul, 1), 3);
    /* Austin/Tachyon heads are not recognised in pysample's own files. */
    add(&p, 4, 3, (struct fr[]){{"P1", NULL, 0}, {"T2:3", NULL, 0}, {"a.py:f:1", NULL, 0}});
    add(&p, 4, 1, (struct fr[]){{"tid:5", NULL, 0}});
    roundtrip(&p);
    ps_profile_release(&p);
}

Test(folded, roundtrip_meta_and_interval)
{
    struct ps_profile p;
    ps_profile_init(&p);
    p.interval_s = 0.005;
    ps_meta_set(&p.meta, "python", "3.11.7");
    ps_meta_set(&p.meta, "command", "python -c 'import x'\nsecond line");
    ps_meta_set(&p.meta, "odd key: x", "v");
    add(&p, 3, 1, (struct fr[]){{"f", "a.py", 1}});
    char *out = write_str(&p);
    struct ps_profile q;
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "m.folded"), 0);
    cr_assert_float_eq(q.interval_s, 0.005, 1e-12);
    cr_assert_eq(q.has_stats, 0);
    cr_assert_str_eq(ps_meta_get(&q.meta, "python"), "3.11.7");
    cr_assert_str_eq(ps_meta_get(&q.meta, "command"), "python -c 'import x' second line");
    cr_assert_str_eq(ps_meta_get(&q.meta, "odd_key__x"), "v");
    cr_assert_null(ps_meta_get(&q.meta, "pysample"));
    cr_assert_null(ps_meta_get(&q.meta, "interval"));
    free(out);
    ps_profile_release(&q);
    ps_profile_release(&p);
}

/* ---- foreign dialects -------------------------------------------------------------------- */

Test(folded, pyspy_raw)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const char *in =
        "process 43739:\"/usr/bin/python3 test_qasm2.py\";<module> (/path/test_qasm2.py:1);"
        "_handle_fromlist (<frozen importlib._bootstrap>:1078) 5\n"
        "thread (0x7f3a2c1b8740): MainThread;<module> (app.py:10);main (app.py:4) 3\n"
        "thread (1234): Thread-1 (worker);run (threading.py:1012);worker (app.py:20) 2\n"
        "thread (99);work (w.py) 1\n"
        "<interpreter trampoline> (<shim>:1);f (x.py:2) 1\n"
        "main (app.py:4) 4\n"
        "main (app.py:4) 6\n";
    cr_assert_eq(read_str(&p, in, "pyspy.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(p.total, 22);
    cr_assert_eq(count_of(&p, "process 43739:\"/usr/bin/python3 test_qasm2.py\";<module> "
                              "(/path/test_qasm2.py:1);_handle_fromlist (<frozen "
                              "importlib._bootstrap>:1078)"),
                 5);
    cr_assert_eq(count_of(&p, "main (app.py:4)"), 10);
    cr_assert_eq(count_of(&p, "thread (1234): Thread-1 (worker);run (threading.py:1012);worker "
                              "(app.py:20)"),
                 2);
    /* Roots are plain frames (no file); ordinary frames are parsed into name/file/line. */
    uint32_t n;
    for (uint32_t sid = 1; sid <= ps_intern_nstacks(p.in); sid++) {
        const uint32_t *ids = ps_intern_stack_get(p.in, sid, &n);
        const struct ps_frame_key *k = ps_intern_frame_get(p.in, ids[0]);
        const char *name = ps_intern_str_get(p.in, k->name);
        if (strncmp(name, "thread (1234)", 13) == 0) {
            cr_assert_eq(k->file, 0);
            cr_assert_eq(ps_frame_root(p.in, ids[0]), PS_ROOT_THREAD);
            const struct ps_frame_key *w = ps_intern_frame_get(p.in, ids[2]);
            cr_assert_str_eq(ps_intern_str_get(p.in, w->name), "worker");
            cr_assert_str_eq(ps_intern_str_get(p.in, w->file), "app.py");
            cr_assert_eq(w->line, 20);
        }
        if (strncmp(name, "process ", 8) == 0)
            cr_assert_eq(ps_frame_root(p.in, ids[0]), PS_ROOT_PROCESS);
        if (strcmp(name, "thread (99)") == 0) {
            const struct ps_frame_key *w = ps_intern_frame_get(p.in, ids[1]);
            cr_assert_str_eq(ps_intern_str_get(p.in, w->file), "w.py");
            cr_assert_eq(w->line, 0);
        }
    }
    ps_profile_release(&p);
}

Test(folded, austin_wall_with_interval)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const char *in = "# austin: 3.6.0\n"
                     "# interval: 100\n"
                     "# mode: wall\n"
                     "# python: 3.11.7\n"
                     "\n"
                     "P4242;T0:4243;/app/main.py:<module>:9;/app/main.py:main:5;/app/w.py:Worker.run:30 103\n"
                     "P4242;T0:4243;/app/main.py:<module>:9;/app/main.py:main:5;/app/w.py:Worker.run:30 97\n"
                     "P4242;T0:4243;/app/main.py:<module>:9;/app/main.py:main:5;/app/w.py:Worker.run:30 250\n"
                     "P4242;T0:4244;/app/main.py:<module>:9;:GC: 40\n"
                     "P4242;T0:4245 100\n"
                     "P4242;T0:4245 0\n"
                     "# duration: 1000000\n"
                     "# sampling: 10,20,30\n";
    cr_assert_eq(read_str(&p, in, "austin.txt"), 0, "%s", ps_err_detail());
    /* 103 -> 1, 97 -> 1, 250 -> 3 (rounded), 40 -> 1 (never 0 for a non-zero metric). */
    cr_assert_eq(count_of(&p, "<module> (/app/main.py:9);main (/app/main.py:5);Worker.run "
                              "(/app/w.py:30)"),
                 5);
    cr_assert_eq(count_of(&p, "<module> (/app/main.py:9);:GC:"), 1);
    cr_assert_eq(count_of(&p, ""), 1); /* the empty-stack thread */
    cr_assert_eq(p.total, 7);
    cr_assert_float_eq(p.interval_s, 100e-6, 1e-15);
    cr_assert_eq(p.has_stats, 0);
    cr_assert_str_eq(ps_meta_get(&p.meta, "austin"), "3.6.0");
    cr_assert_str_eq(ps_meta_get(&p.meta, "python"), "3.11.7");
    /* Austin's duration is in µs and is not pysample's statistic: kept under another key. */
    cr_assert_null(ps_meta_get(&p.meta, "duration"));
    cr_assert_str_eq(ps_meta_get(&p.meta, "source_duration"), "1000000");
    cr_assert_str_eq(ps_meta_get(&p.meta, "sampling"), "10,20,30");
    ps_profile_release(&p);
}

Test(folded, austin_variants)
{
    struct ps_profile p;
    ps_profile_init(&p);
    /* No interval: the metric is the count. Windows head (hex tid) and paths with ':'. */
    const char *in = "P55636;T0:5c98;C:\\tmp\\t.py:<module>:9;C:\\python\\Lib\\subprocess.py:"
                     "Popen.wait:1264 36\n"
                     "P29668;T29668;foobar.py:application:5 1000\n" /* pre-3.6 head */
                     "P1;T0:1;native@7f00ab:<unknown>:0;kernel:do_sys_poll:0 2\n";
    cr_assert_eq(read_str(&p, in, "austin-old.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "<module> (C:\\tmp\\t.py:9);Popen.wait "
                              "(C:\\python\\Lib\\subprocess.py:1264)"),
                 36);
    cr_assert_eq(count_of(&p, "application (foobar.py:5)"), 1000);
    cr_assert_eq(count_of(&p, "<unknown> (native@7f00ab);do_sys_poll (kernel)"), 2);
    ps_profile_release(&p);

    /* Memory mode keeps the metric; multiprocess keeps a process root; full mode uses time. */
    ps_profile_init(&p);
    in = "# mode: memory\n"
         "# interval: 100\n"
         "P7;T0:7;a.py:f:1 4096\n";
    cr_assert_eq(read_str(&p, in, "mem.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "f (a.py:1)"), 4096);
    ps_profile_release(&p);

    ps_profile_init(&p);
    in = "# multiprocess: on\n"
         "# mode: full\n"
         "# interval: 50\n"
         "P10;T0:10;a.py:f:1 100,0,-20\n"
         "P11;T0:11;a.py:f:1 50,1,4\n";
    cr_assert_eq(read_str(&p, in, "full.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "process 10;f (a.py:1)"), 2);
    cr_assert_eq(count_of(&p, "process 11;f (a.py:1)"), 1);
    uint32_t n;
    const uint32_t *ids = ps_intern_stack_get(p.in, 1, &n);
    cr_assert_eq(ps_frame_root(p.in, ids[0]), PS_ROOT_PROCESS);
    ps_profile_release(&p);
}

Test(folded, tachyon_collapsed)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const char *in = "tid:12100288;<frozen runpy>:_run_module_as_main:201;<frozen runpy>:_run_code:87;"
                     "repro.py:<module>:6;repro.py:slow:3 42\n"
                     "tid:12100288;<frozen runpy>:_run_module_as_main:201;<GC> 3\n"
                     "tid:777;repro.py:<module>:6;<native> 1\n"
                     "tid:778 2\n";
    cr_assert_eq(read_str(&p, in, "tachyon.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "_run_module_as_main (<frozen runpy>:201);_run_code (<frozen "
                              "runpy>:87);<module> (repro.py:6);slow (repro.py:3)"),
                 42);
    cr_assert_eq(count_of(&p, "_run_module_as_main (<frozen runpy>:201);<GC>"), 3);
    cr_assert_eq(count_of(&p, "<module> (repro.py:6);<native>"), 1);
    cr_assert_eq(count_of(&p, ""), 2);
    cr_assert_eq(p.total, 48);
    ps_profile_release(&p);
}

Test(folded, pyflame_and_plain_gregg)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const char *in = "/usr/lib/python3.6/threading.py:_bootstrap:884;/srv/app.py:run:12 17\n"
                     "(idle) 5\n"
                     "(failed) 1\n"
                     "main;foo;bar 10\n"
                     "main;foo 3\n"
                     "main;foo;bar 2\n"
                     "java/lang/Thread.run;std::vector<int>::push_back 1\n"
                     "100%3B 1\n";
    cr_assert_eq(read_str(&p, in, "plain.txt"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "_bootstrap (/usr/lib/python3.6/threading.py:884);run "
                              "(/srv/app.py:12)"),
                 17);
    cr_assert_eq(count_of(&p, "(idle)"), 5);
    cr_assert_eq(count_of(&p, "main;foo;bar"), 12);
    cr_assert_eq(count_of(&p, "main;foo"), 3);
    cr_assert_eq(count_of(&p, "java/lang/Thread.run;std::vector<int>::push_back"), 1);
    /* Escapes are pysample's: a foreign file is read literally. */
    cr_assert_eq(count_of(&p, "100%3B"), 1);
    /* Plain names have no file and no line. */
    uint32_t n;
    const uint32_t *ids = ps_intern_stack_get(p.in, 4, &n);
    cr_assert_eq(n, 3);
    const struct ps_frame_key *k = ps_intern_frame_get(p.in, ids[2]);
    cr_assert_str_eq(ps_intern_str_get(p.in, k->name), "bar");
    cr_assert_eq(k->file, 0);
    cr_assert_eq(k->line, 0);
    ps_profile_release(&p);
}

Test(folded, crlf_blank_lines_comments_and_merge)
{
    struct ps_profile p;
    ps_profile_init(&p);
    const char *a = "# pysample: 0.1.0\r\n"
                    "# rate: 200\r\n"
                    "# samples: 4\r\n"
                    "# duration: 1.5\r\n"
                    "\r\n"
                    "   \r\n"
                    "#\r\n"
                    "# a comment without colon\r\n"
                    "f (a.py:1);g (a.py:2) 4\r\n";
    const char *b = "# pysample: 0.1.0\n"
                    "# rate: 100\n"
                    "# samples: 6\n"
                    "# duration: 2.5\n"
                    "f (a.py:1);g (a.py:2) 5   \n"
                    "f (a.py:1) 1";
    cr_assert_eq(read_str(&p, a, "a.folded"), 0, "%s", ps_err_detail());
    cr_assert_eq(read_str(&p, b, "b.folded"), 0, "%s", ps_err_detail());
    cr_assert_eq(count_of(&p, "f (a.py:1);g (a.py:2)"), 9);
    cr_assert_eq(count_of(&p, "f (a.py:1)"), 1);
    cr_assert_eq(p.total, 10);
    cr_assert_eq(p.stats.thread_samples, 10);
    cr_assert_float_eq(p.stats.duration_s, 4.0, 1e-9);
    /* The first file's rate wins, and sets the interval. */
    cr_assert_float_eq(p.stats.rate_hz, 200, 1e-9);
    cr_assert_float_eq(p.interval_s, 0.005, 1e-12);
    cr_assert_eq(p.meta.n, 0);
    ps_profile_release(&p);
}

Test(folded, long_lines_and_many_lines)
{
    struct ps_profile p;
    ps_profile_init(&p);
    /* A 1 MB+ line of 100k frames, and one 1 MB frame name. */
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    for (int i = 0; i < 100000; i++)
        ps_sb_printf(&sb, "%sfn%d (m.py:%d)", i ? ";" : "", i % 1000, i % 1000 + 1);
    ps_sb_adds(&sb, " 3\n");
    cr_assert_gt(sb.len, 1 << 20);
    for (int i = 0; i < (1 << 20); i++)
        ps_sb_addc(&sb, 'n');
    ps_sb_adds(&sb, " 2\n");
    cr_assert_eq(read_str(&p, sb.buf, "long.folded"), 0, "%s", ps_err_detail());
    uint32_t n;
    const uint32_t *ids = ps_intern_stack_get(p.in, 1, &n);
    cr_assert_eq(n, 100000);
    const struct ps_frame_key *k = ps_intern_frame_get(p.in, ids[99999]);
    cr_assert_str_eq(ps_intern_str_get(p.in, k->name), "fn999");
    cr_assert_eq(k->line, 1000);
    cr_assert_eq(ps_intern_nframes(p.in), 1001);
    ps_intern_stack_get(p.in, 2, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(p.total, 5);
    ps_sb_release(&sb);
    ps_profile_release(&p);

    /* 100k short lines streamed from a real file. */
    ps_profile_init(&p);
    FILE *f = tmpfile();
    for (int i = 0; i < 100000; i++)
        fprintf(f, "main (m.py:1);w%d (w.py:%d) %d\n", i % 500, i % 500 + 1, i % 3);
    rewind(f);
    cr_assert_eq(ps_folded_read(f, "many.folded", &p), 0, "%s", ps_err_detail());
    fclose(f);
    cr_assert_eq(ps_intern_nstacks(p.in), 500);
    cr_assert_eq(p.total, 99999); /* 33333 ones + 33333 twos */
    ps_profile_release(&p);
}

/* ---- malformed input --------------------------------------------------------------------- */

static void bad(const char *text, size_t len, const char *want)
{
    struct ps_profile p;
    ps_profile_init(&p);
    FILE *f = fmemopen((void *)text, len, "r");
    ps_err_clear();
    int rc = ps_folded_read(f, "bad.folded", &p);
    fclose(f);
    cr_assert_eq(rc, PS_EFORMAT, "input %s: rc %d", text, rc);
    cr_assert_not_null(ps_err_detail());
    cr_assert_str_eq(ps_err_detail(), want);
    ps_profile_release(&p);
}
#define BAD(text, want) bad(text, sizeof(text) - 1, want)

Test(folded, bad_inputs_report_line)
{
    BAD("a;b 1\nc;d\n", "bad.folded:2: missing sample count");
    BAD("a;b 1\n\n# x: y\nc;d \n", "bad.folded:4: missing sample count");
    BAD("lonely\n", "bad.folded:1: missing sample count");
    BAD("a 1\nb 2\nc -1\n", "bad.folded:3: negative sample count");
    BAD("a 18446744073709551616\n", "bad.folded:1: sample count too large");
    BAD("a 99999999999999999999999\n", "bad.folded:1: sample count too large");
    BAD("a 12x\n", "bad.folded:1: sample count is not a non-negative integer");
    BAD("a 1.5\n", "bad.folded:1: sample count is not a non-negative integer");
    BAD("a +3\n", "bad.folded:1: sample count is not a non-negative integer");
    BAD("a 0x10\n", "bad.folded:1: sample count is not a non-negative integer");
    BAD("a;b 1\r\nb\r\n", "bad.folded:2: missing sample count");
    BAD("a 18446744073709551615\nb 1\n", "bad.folded:2: sample counts overflow the total");
    BAD("a 1\nb\0c 2\n", "bad.folded:2: NUL byte in line");
    BAD("\0\n", "bad.folded:1: NUL byte in line");
    BAD("# pysample: 0.1.0\n# samples: lots\n", "bad.folded:2: bad value for 'samples'");
    BAD("# pysample: 0.1.0\n# rate: -5\n", "bad.folded:2: bad value for 'rate'");
    BAD("# pysample: 0.1.0\n# dropped: torn\n", "bad.folded:2: bad value for 'dropped'");
    BAD("# pysample: 0.1.0\n# sample_time_us: 1/2\n",
        "bad.folded:2: bad value for 'sample_time_us'");
    BAD("# pysample: 0.1.0\n# interval: 0\n", "bad.folded:2: bad value for 'interval'");
    BAD("P1;T0:1;a.py:f:1 -40\n", "bad.folded:1: negative sample count");
}

Test(folded, max_count_accepted)
{
    struct ps_profile p;
    ps_profile_init(&p);
    cr_assert_eq(read_str(&p, "a 18446744073709551615\nb 0\n", "max"), 0);
    cr_assert_eq(p.total, UINT64_MAX);
    cr_assert_eq(count_of(&p, "b"), 0);
    ps_profile_release(&p);
}

Test(folded, read_error_is_eio)
{
    struct ps_profile p;
    ps_profile_init(&p);
    FILE *f = fopen("/", "r");
    cr_assert_not_null(f);
    ps_err_clear();
    cr_assert_eq(ps_folded_read(f, "/", &p), PS_EIO);
    cr_assert_str_eq(ps_err_detail(), "/: read error: Is a directory");
    fclose(f);
    ps_profile_release(&p);
}

/* ---- frame text and roots ---------------------------------------------------------------- */

Test(folded, frame_format_and_roots)
{
    struct ps_profile p;
    ps_profile_init(&p);
    uint32_t a = mkframe(&p, (struct fr){"f", "a.py", 3});
    uint32_t b = mkframe(&p, (struct fr){"g", "b.py", 0});
    uint32_t c = mkframe(&p, (struct fr){"h", NULL, 0});
    uint32_t r = mkframe(&p, (struct fr){"process 42:\"python app.py\"", NULL, 0});
    char buf[64];
    cr_assert_eq(ps_frame_format(p.in, a, buf, sizeof buf), 10);
    cr_assert_str_eq(buf, "f (a.py:3)");
    cr_assert_eq(ps_frame_format(p.in, b, buf, sizeof buf), 8);
    cr_assert_str_eq(buf, "g (b.py)");
    cr_assert_eq(ps_frame_format(p.in, c, buf, sizeof buf), 1);
    cr_assert_str_eq(buf, "h");
    cr_assert_eq(ps_frame_format(p.in, a, buf, 5), 10); /* truncated, full length returned */
    cr_assert_str_eq(buf, "f (a");
    cr_assert_eq(ps_frame_format(p.in, 999, buf, sizeof buf), PS_ERANGE);
    cr_assert_eq(ps_frame_root(p.in, r), PS_ROOT_PROCESS);
    cr_assert_eq(ps_frame_root(p.in, c), PS_ROOT_NONE);

    cr_assert_eq(ps_root_kind("process 42:\"python app.py\""), PS_ROOT_PROCESS);
    cr_assert_eq(ps_root_kind("process 42"), PS_ROOT_PROCESS);
    cr_assert_eq(ps_root_kind("process 42:"), PS_ROOT_NONE);
    cr_assert_eq(ps_root_kind("process x:\"y\""), PS_ROOT_NONE);
    cr_assert_eq(ps_root_kind("thread (123): MainThread"), PS_ROOT_THREAD);
    cr_assert_eq(ps_root_kind("thread (0x7f00)"), PS_ROOT_THREAD);
    cr_assert_eq(ps_root_kind("thread (12)x"), PS_ROOT_NONE);
    cr_assert_eq(ps_root_kind("thread ()"), PS_ROOT_NONE);
    cr_assert_eq(ps_root_kind("threads (1)"), PS_ROOT_NONE);
    ps_profile_release(&p);
}

/* ---- writer registry and atomic file output (out/output.c) ------------------------------- */

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    char *text = NULL;
    long n = ps_read_file(path, &text, 1 << 20);
    cr_assert_geq(n, 0, "cannot read %s", path);
    return text;
}

static void small_profile(struct ps_profile *p)
{
    ps_profile_init(p);
    add(p, 4, 2, (struct fr[]){{"main", "m.py", 1}, {"work", "w.py", 2}});
}

Test(folded, writer_registry)
{
    const struct ps_writer *w = ps_writer_find("folded");
    cr_assert_not_null(w);
    cr_assert_str_eq(w->ext, "folded");
    cr_assert_eq(w->write, ps_folded_write);
    w = ps_writer_find("table");
    cr_assert_not_null(w);
    cr_assert_str_eq(w->ext, "txt");
    cr_assert_eq(w->write, ps_table_write);
    cr_assert_null(ps_writer_find("flamegraph"));
    cr_assert_null(ps_writer_find(""));
    cr_assert_str_eq(ps_writer_names(), "folded, table, svg, speedscope, pprof, callgrind, pstats");
    cr_assert_eq(ps_writer_for_path("out/x.folded"), ps_writer_find("folded"));
    cr_assert_eq(ps_writer_for_path("x.txt"), ps_writer_find("table"));
    cr_assert_eq(ps_writer_for_path("x.svg"), ps_writer_find("svg"));
    cr_assert_eq(ps_writer_for_path("x.speedscope.json"), ps_writer_find("speedscope"));
    cr_assert_eq(ps_writer_for_path("x.pb.gz"), ps_writer_find("pprof"));
    cr_assert_null(ps_writer_for_path("x.gz"));
    cr_assert_null(ps_writer_for_path("x.unknown"));
    cr_assert_null(ps_writer_for_path("dir.folded/x"));
}

Test(folded, write_path_atomic_replace)
{
    char dir[] = "/tmp/ps-out-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], link[128];
    snprintf(path, sizeof path, "%s/p.folded", dir);
    snprintf(link, sizeof link, "%s/link.folded", dir);
    struct ps_profile p;
    small_profile(&p);
    const struct ps_writer *w = ps_writer_find("folded");

    cr_assert_eq(ps_output_write_path(w, path, &p, NULL), 0);
    char *text = slurp(path);
    cr_assert_str_eq(text, "# pysample=0.1.0\nmain (m.py:1);work (w.py:2) 4\n");
    free(text);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    cr_assert_eq(st.st_mode & 0777, 0666 & ~mask);
    cr_assert_eq(count_entries(dir), 1); /* no temporary left behind */

    /* Replacing keeps the existing file's mode; the inode changes (rename, not rewrite). */
    chmod(path, 0640);
    ino_t ino = st.st_ino;
    add(&p, 1, 1, (struct fr[]){{"main", "m.py", 1}});
    cr_assert_eq(ps_output_write_path(w, path, &p, NULL), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    cr_assert_neq(st.st_ino, ino);
    text = slurp(path);
    cr_assert_str_eq(text, "# pysample=0.1.0\nmain (m.py:1);work (w.py:2) 4\nmain (m.py:1) 1\n");
    free(text);

    /* Through a symlink: the target is replaced, the link stays a link. */
    cr_assert_eq(symlink("p.folded", link), 0);
    cr_assert_eq(ps_output_write_path(ps_writer_find("table"), link, &p, NULL), 0);
    struct stat lst;
    cr_assert_eq(lstat(link, &lst), 0);
    cr_assert(S_ISLNK(lst.st_mode));
    text = slurp(path);
    cr_assert(strncmp(text, "  %   cumulative", 16) == 0, "%s", text);
    free(text);
    cr_assert_eq(count_entries(dir), 2);

    unlink(link);
    unlink(path);
    rmdir(dir);
    ps_profile_release(&p);
}

Test(folded, write_path_errors)
{
    struct ps_profile p;
    small_profile(&p);
    const struct ps_writer *w = ps_writer_find("folded");

    /* A device is written in place, and its errors are reported. */
    ps_err_clear();
    cr_assert_eq(ps_output_write_path(w, "/dev/full", &p, NULL), PS_EIO);
    cr_assert_str_eq(ps_err_detail(), "cannot write /dev/full: No space left on device");
    cr_assert_eq(ps_output_write_path(w, "/dev/null", &p, NULL), 0);

    ps_err_clear();
    cr_assert_eq(ps_output_write_path(w, "/nonexistent-dir/x.folded", &p, NULL), PS_EIO);
    cr_assert_str_eq(ps_err_detail(),
                     "cannot write /nonexistent-dir/x.folded: No such file or directory");

    char dir[] = "/tmp/ps-out-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    ps_err_clear();
    cr_assert_eq(ps_output_write_path(w, dir, &p, NULL), PS_EIO);
    cr_assert_not_null(strstr(ps_err_detail(), "Is a directory"));

    /* A write that fails half way (file size limit) leaves the old file and no temporary. */
    char path[128];
    snprintf(path, sizeof path, "%s/big.folded", dir);
    FILE *f = fopen(path, "w");
    fputs("old 1\n", f);
    fclose(f);
    for (int i = 0; i < 3000; i++) {
        char name[32];
        snprintf(name, sizeof name, "function_number_%d", i);
        add(&p, 1, 2, (struct fr[]){{"main", "m.py", 1}, {name, "some/long/file/name.py", i + 1}});
    }
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ps_err_clear();
    int rc = ps_output_write_path(w, path, &p, NULL);
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_assert_eq(rc, PS_EIO);
    char want[256];
    snprintf(want, sizeof want, "cannot write %s: File too large", path);
    cr_assert_str_eq(ps_err_detail(), want);
    char *text = slurp(path);
    cr_assert_str_eq(text, "old 1\n");
    free(text);
    cr_assert_eq(count_entries(dir), 1);
    unlink(path);
    rmdir(dir);
    ps_profile_release(&p);
}

/* ---- the # key=value metadata form ------------------------------------------------------- */

Test(folded, metadata_key_value_round_trip)
{
    struct ps_profile p;
    ps_profile_init(&p);
    ps_meta_set(&p.meta, "command", "python app.py --n 5");
    ps_meta_set(&p.meta, "quote", "\"q\" and \\ back");
    ps_meta_set(&p.meta, "k:e y=z", "plain");
    add(&p, 2, 1, (struct fr[]){{"f", "a.py", 1}});
    char *out = write_str(&p);
    cr_assert_str_eq(out, "# pysample=0.1.0\n"
                          "# command=\"python app.py --n 5\"\n"
                          "# quote=\"\\\"q\\\" and \\\\ back\"\n"
                          "# k_e_y_z=plain\n"
                          "f (a.py:1) 2\n");
    /* No metadata line ends in " <digits>": folded viewers would take it for a stack. */
    for (const char *l = out; *l; l = strchr(l, '\n') + 1) {
        const char *e = strchr(l, '\n');
        if (*l == '#' && e - l > 2)
            cr_assert(!(e[-1] >= '0' && e[-1] <= '9' && strchr(" ", e[-2])), "%.*s", (int)(e - l), l);
    }
    struct ps_profile q;
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "kv.folded"), 0);
    cr_assert_str_eq(ps_meta_get(&q.meta, "command"), "python app.py --n 5");
    cr_assert_str_eq(ps_meta_get(&q.meta, "quote"), "\"q\" and \\ back");
    cr_assert_str_eq(ps_meta_get(&q.meta, "k_e_y_z"), "plain");
    char *again = write_str(&q);
    cr_assert_str_eq(again, out);
    free(again);
    free(out);
    ps_profile_release(&q);
    ps_profile_release(&p);
}

Test(folded, metadata_old_and_new_forms_read)
{
    struct ps_profile p;
    ps_profile_init(&p);
    cr_assert_eq(read_str(&p, "# pysample: 0.1.0\n# rate: 50\n# samples: 3\nf%3Bg (a.py:1) 3\n", "old"), 0);
    cr_assert_float_eq(p.interval_s, 0.02, 1e-12);
    cr_assert_eq(p.stats.thread_samples, 3);
    cr_assert_eq(count_of(&p, "f;g (a.py:1)"), 3); /* escapes decoded: it is pysample's */
    ps_profile_release(&p);
    ps_profile_init(&p);
    cr_assert_eq(read_str(&p, "# pysample=0.1.0\n# rate=50\n# samples=3\n# a comment = not a key\n"
                              "f%3Bg (a.py:1) 3\n", "new"), 0);
    cr_assert_float_eq(p.interval_s, 0.02, 1e-12);
    cr_assert_eq(p.stats.thread_samples, 3);
    cr_assert_eq(count_of(&p, "f;g (a.py:1)"), 3);
    cr_assert_eq(p.meta.n, 0);
    ps_profile_release(&p);
}

Test(folded, invalid_utf8_read_as_replacement)
{
    struct ps_profile p;
    ps_profile_init(&p);
    cr_assert_eq(read_str(&p, "# host=caf\xe9\nmain (a\xff.py:1);f\xc3 (b.py:2) 4\n", "bad8"), 0);
    cr_assert_str_eq(ps_meta_get(&p.meta, "host"), "caf\xef\xbf\xbd");
    cr_assert_eq(count_of(&p, "main (a\xef\xbf\xbd.py:1);f\xef\xbf\xbd (b.py:2)"), 4);
    ps_profile_release(&p);
}

/* A --native session's C-stack counters and thread-stop times come back from its file, and
 * merging it with a session without --native keeps those times as they were. */
Test(folded, native_counters_roundtrip)
{
    struct ps_profile p, q, plain;
    ps_profile_init(&p);
    p.has_stats = 1;
    p.interval_s = 0.01;
    p.stats = (struct ps_stats){.rate_hz = 100, .ticks = 10, .thread_samples = 10,
                                .native_samples = 9, .native_failed = 1, .native_mismatch = 2,
                                .stop_ns_min = 11000, .stop_ns_median = 25500,
                                .stop_ns_max = 900000};
    add(&p, 10, 1, (struct fr[]){{"f", "a.py", 1}});
    char *out = write_str(&p);
    cr_assert(strstr(out, "# native=merged=9,failed=1,mismatch=2\n"
                          "# thread_stop_us=11.000/25.500/900.000\n") != NULL,
              "%s", out);
    ps_profile_init(&q);
    cr_assert_eq(read_str(&q, out, "native.folded"), 0);
    cr_expect_eq(q.stats.native_samples, 9);
    cr_expect_eq(q.stats.native_failed, 1);
    cr_expect_eq(q.stats.native_mismatch, 2);
    cr_expect_eq(q.stats.stop_ns_min, 11000);
    cr_expect_eq(q.stats.stop_ns_median, 25500);
    cr_expect_eq(q.stats.stop_ns_max, 900000);
    free(out);

    ps_profile_init(&plain);
    plain.has_stats = 1;
    plain.interval_s = 0.01;
    plain.stats = (struct ps_stats){.rate_hz = 100, .ticks = 5, .thread_samples = 5};
    add(&plain, 5, 1, (struct fr[]){{"g", "b.py", 2}});
    out = write_str(&plain);
    cr_assert_eq(read_str(&q, out, "plain.folded"), 0);
    cr_expect_eq(q.stats.native_samples, 9);
    cr_expect_eq(q.stats.stop_ns_min, 11000, "a session without --native stopped no thread");
    cr_expect_eq(q.stats.stop_ns_max, 900000);
    free(out);
    /* merged the way `report` merges files: the plain session first, then the --native one */
    struct ps_profile m;
    ps_profile_init(&m);
    ps_profile_merge(&m, &plain, 1.0);
    ps_profile_merge(&m, &p, 1.0);
    cr_expect_eq(m.stats.native_samples, 9);
    cr_expect_eq(m.stats.stop_ns_min, 11000, "the plain session's zeros are no stop time");
    cr_expect_eq(m.stats.stop_ns_median, 25500);
    ps_profile_release(&m);
    /* a median below the minimum (older writers capped their histograms) reads as the minimum */
    struct ps_profile old;
    ps_profile_init(&old);
    cr_expect_eq(read_str(&old, "# pysample=1\n# sample_cpu_us=6175.2/1000.0/9000.0\nf 1\n",
                          "old.folded"),
                 0);
    cr_expect_eq(old.stats.sample_cpu_ns_min, 6175200);
    cr_expect_eq(old.stats.sample_cpu_ns_median, 6175200);
    cr_expect_eq(old.stats.sample_cpu_ns_max, 9000000);
    ps_profile_release(&old);
    ps_profile_release(&plain);
    ps_profile_release(&q);
    ps_profile_release(&p);
}
