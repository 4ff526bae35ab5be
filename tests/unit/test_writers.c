/* test_writers.c — the viewer formats of out/ (svg, speedscope, pprof, callgrind, pstats)
 * against golden files in tests/unit/golden/ for one hand-built profile with threads,
 * recursion, a native and an idle frame and viewer-hostile names; plus the shared text
 * helpers (UTF-8, XML, JSON), frame kinds and the rate-weighted merge of `report`.
 *
 * PS_GOLDEN_WRITE=1 rewrites the golden files from the current writers (then check them with
 * the real clients, as tests/integration/test_formats.sh does, before committing).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

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

/* Two threads; main -> run -> work/helper, a recursive fib, a C frame, a sleeping thread,
 * and a frame whose name has quotes, '<', '&', non-ASCII text and an invalid UTF-8 byte. */
static void build(struct ps_profile *p)
{
    ps_profile_init(p);
    p->interval_s = 0.01;
    ps_meta_set(&p->meta, "command", "python app.py --name \"<x>\" & more");
    ps_meta_set(&p->meta, "pid", "4242");
    const struct fr T1 = {"thread (100): MainThread", NULL, 0}, T2 = {"thread (101): worker", NULL, 0},
                    M = {"<module>", "/srv/app/main.py", 10}, A = {"run", "/srv/app/main.py", 20},
                    B = {"work", "/srv/app/lib/util.py", 5}, B2 = {"work", "/srv/app/lib/util.py", 7},
                    C = {"helper", "/srv/app/lib/util.py", 30}, R = {"fib", "/srv/app/main.py", 40},
                    N = {"deflate", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0},
                    S = {"sleep", NULL, 0}, L = {"loop", "/srv/app/main.py", 50},
                    H = {"q\"uo'te <tag> & caf\xc3\xa9 \xff", "/srv/app/odd \"dir\"/<m>.py", 3};
    add(p, 30, 4, (struct fr[]){T1, M, A, B});
    add(p, 10, 4, (struct fr[]){T1, M, A, B2});
    add(p, 20, 4, (struct fr[]){T1, M, A, C});
    add(p, 25, 5, (struct fr[]){T1, M, R, R, R});
    add(p, 5, 5, (struct fr[]){T1, M, A, B, N});
    add(p, 7, 3, (struct fr[]){T2, L, S});
    add(p, 3, 3, (struct fr[]){T2, L, H});
}

static char *render(const char *format, const struct ps_profile *p, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    const struct ps_writer *w = ps_writer_find(format);
    cr_assert_not_null(w, "no writer %s", format);
    cr_assert_eq(w->write(f, p, NULL), 0);
    fclose(f);
    *len = n;
    return buf;
}

/* Compares data with the golden file (or writes it when PS_GOLDEN_WRITE=1). */
static void golden(const char *name, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", name);
    if (getenv("PS_GOLDEN_WRITE")) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        fwrite(data, 1, len, f);
        fclose(f);
    }
    char *text = NULL;
    long n = ps_read_file(path, &text, 16 << 20);
    cr_assert_geq(n, 0, "cannot read %s (run from the repository root)", path);
    cr_assert_eq((size_t)n, len, "%s: %zu bytes written, golden has %ld", name, len, n);
    cr_assert_eq(memcmp(text, data, len), 0, "%s differs from the golden file", name);
    free(text);
}

static void golden_format(const char *format, const char *name)
{
    struct ps_profile p;
    build(&p);
    size_t len;
    char *out = render(format, &p, &len);
    golden(name, out, len);
    free(out);
    ps_profile_release(&p);
}

Test(writers, svg_golden)
{
    golden_format("svg", "writers_app.svg");
}

Test(writers, speedscope_golden)
{
    golden_format("speedscope", "writers_app.speedscope.json");
}

Test(writers, callgrind_golden)
{
    golden_format("callgrind", "writers_app.callgrind");
}

Test(writers, pstats_golden)
{
    golden_format("pstats", "writers_app.pstats");
}

/* pprof: the gzip stream depends on zlib's version; the protobuf inside is the golden. */
Test(writers, pprof_golden)
{
    struct ps_profile p;
    build(&p);
    size_t len;
    char *gz = render("pprof", &p, &len);
    cr_assert_geq(len, 18);
    cr_assert_eq((unsigned char)gz[0], 0x1f);
    cr_assert_eq((unsigned char)gz[1], 0x8b);
    size_t cap = 1 << 20;
    unsigned char *raw = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)gz;
    z.avail_in = (uInt)len;
    z.next_out = raw;
    z.avail_out = (uInt)cap;
    cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    size_t rawlen = cap - z.avail_out;
    inflateEnd(&z);
    golden("writers_app.pb", (const char *)raw, rawlen);
    free(raw);
    free(gz);
    ps_profile_release(&p);
}

/* Every writer copes with an empty profile and with a single empty stack. */
Test(writers, empty_profiles)
{
    static const char *const formats[] = {"svg", "speedscope", "pprof", "callgrind", "pstats"};
    for (size_t i = 0; i < PS_ARRAY_LEN(formats); i++) {
        struct ps_profile p;
        ps_profile_init(&p);
        size_t len;
        free(render(formats[i], &p, &len));
        cr_assert_gt(len, 0, "%s writes something for an empty profile", formats[i]);
        add(&p, 4, 0, NULL);
        free(render(formats[i], &p, &len));
        ps_profile_release(&p);
    }
}

/* A 1000-character name survives whole (no fixed-size buffer cuts it). */
Test(writers, long_names_whole)
{
    char name[1001];
    memset(name, 'n', 1000);
    name[1000] = '\0';
    static const char *const formats[] = {"svg", "speedscope", "callgrind", "pstats"};
    for (size_t i = 0; i < PS_ARRAY_LEN(formats); i++) {
        struct ps_profile p;
        ps_profile_init(&p);
        add(&p, 1, 1, (struct fr[]){{name, "m.py", 1}});
        size_t len;
        char *out = render(formats[i], &p, &len);
        cr_assert_not_null(memmem(out, len, name, 1000), "%s keeps a 1000-char name", formats[i]);
        free(out);
        ps_profile_release(&p);
    }
}

Test(writers, text_helpers)
{
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_sb_add_utf8(&sb, "a\xff" "b\xc3\xa9" "\xe2\x82", 7);
    cr_assert_str_eq(sb.buf, "a\xef\xbf\xbd" "b\xc3\xa9" "\xef\xbf\xbd\xef\xbf\xbd");
    ps_sb_reset(&sb);
    ps_sb_add_xml(&sb, "<a href=\"x\">&'\x01\xc3\xa9", 17);
    cr_assert_str_eq(sb.buf, "&lt;a href=&quot;x&quot;&gt;&amp;&apos;?\xc3\xa9");
    ps_sb_reset(&sb);
    ps_sb_add_json(&sb, "q\"\\\n<\x01\xed\xa0\x80", 9);
    cr_assert_str_eq(sb.buf, "\"q\\\"\\\\\\n\\u003c\\u0001\\ufffd\\ufffd\\ufffd\"");
    ps_sb_release(&sb);
    cr_assert(ps_utf8_valid("caf\xc3\xa9", 5));
    cr_assert_not(ps_utf8_valid("\xc0\xaf", 2));     /* overlong */
    cr_assert_not(ps_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    cr_assert_not(ps_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}

Test(writers, frame_kinds)
{
    struct ps_profile p;
    build(&p);
    struct {
        const char *name, *file;
        int line;
        enum ps_kind kind;
    } cases[] = {
        {"thread (100): MainThread", NULL, 0, PS_KIND_ROOT},
        {"run", "/srv/app/main.py", 20, PS_KIND_PYTHON},
        {"deflate", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0, PS_KIND_NATIVE},
        {"sleep", NULL, 0, PS_KIND_IDLE},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(cases); i++) {
        uint32_t n = ps_intern_str(p.in, cases[i].name, strlen(cases[i].name));
        uint32_t f = cases[i].file ? ps_intern_str(p.in, cases[i].file, strlen(cases[i].file)) : 0;
        cr_assert_eq(ps_frame_kind(p.in, ps_intern_frame(p.in, n, f, cases[i].line)), cases[i].kind,
                     "%s", cases[i].name);
    }
    ps_profile_release(&p);
}

/* report's merge: a 10 Hz file's samples weigh 10 of a 100 Hz file's, whatever the order. */
Test(writers, merge_weighted_by_interval)
{
    struct ps_profile a, b, m1, m2;
    ps_profile_init(&a);
    ps_profile_init(&b);
    a.interval_s = 0.01;
    b.interval_s = 0.1;
    add(&a, 50, 1, (struct fr[]){{"f", "m.py", 1}});
    add(&b, 3, 1, (struct fr[]){{"f", "m.py", 1}});
    add(&b, 2, 1, (struct fr[]){{"g", "m.py", 2}});
    ps_profile_init(&m1);
    m1.interval_s = 0.01;
    ps_profile_merge(&m1, &a, 1);
    ps_profile_merge(&m1, &b, 10);
    ps_profile_init(&m2);
    m2.interval_s = 0.01;
    ps_profile_merge(&m2, &b, 10);
    ps_profile_merge(&m2, &a, 1);
    cr_assert_eq(m1.total, 100);
    cr_assert_eq(m2.total, 100);
    cr_assert_float_eq((double)m1.total * m1.interval_s, 0.5 + 0.5, 1e-9);
    ps_profile_release(&a);
    ps_profile_release(&b);
    ps_profile_release(&m1);
    ps_profile_release(&m2);
}
