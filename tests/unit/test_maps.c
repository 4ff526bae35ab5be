/* test_maps.c — Criterion suite `maps`: parsing /proc/PID/maps text (proc/maps.c) from this very
 * process and from crafted text (deleted files, spaces in paths, [vdso], anonymous mappings,
 * malformed lines), then the lookups the walker and discovery rely on: ps_maps_find's binary
 * search at its edges and ps_maps_readable across adjacent mappings.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ps_proc.h"
#include "ps_util.h"

static void parse_ok(const char *text, struct ps_maps *m)
{
    int rc = ps_maps_parse(text, strlen(text), m);
    cr_assert_eq(rc, 0, "parse failed: %d (%s) %s", rc, ps_strerror(rc),
                 ps_err_detail() ? ps_err_detail() : "");
}

static int marker_function(int x)
{
    return x * 3 + 1;
}

static int marker_data = 42;

/* ---- this process -------------------------------------------------------------------------- */

Test(maps, self_maps_text)
{
    char *text;
    long len = ps_read_file("/proc/self/maps", &text, 64u << 20);
    cr_assert_gt(len, 0, "cannot read /proc/self/maps: %ld", len);
    int lines = 0;
    for (long i = 0; i < len; i++)
        lines += text[i] == '\n';

    struct ps_maps m;
    int rc = ps_maps_parse(text, (size_t)len, &m);
    cr_assert_eq(rc, 0, "%s", ps_err_detail() ? ps_err_detail() : "");
    cr_expect_eq(m.n, lines, "%d mappings for %d lines", m.n, lines);
    for (int i = 0; i < m.n; i++) {
        cr_expect_lt(m.v[i].start, m.v[i].end, "mapping %d is empty", i);
        if (i)
            cr_expect_leq(m.v[i - 1].end, m.v[i].start, "mappings %d/%d overlap or unsorted",
                          i - 1, i);
        cr_expect(strchr("r-", m.v[i].perms[0]) && strchr("w-", m.v[i].perms[1]) &&
                      strchr("x-", m.v[i].perms[2]) && strchr("ps", m.v[i].perms[3]),
                  "mapping %d perms \"%s\"", i, m.v[i].perms);
    }

    /* Our own code: executable, file-backed by the test binary, inode non-zero. */
    char *exe = NULL;
    cr_assert_eq(ps_proc_link(getpid(), "exe", &exe), 0);
    const struct ps_map *code = ps_maps_find(&m, (uint64_t)(uintptr_t)&marker_function);
    cr_assert_not_null(code, "no mapping holds a function of this binary");
    cr_expect_eq(code->perms[2], 'x', "code mapping perms \"%s\"", code->perms);
    cr_expect_str_eq(code->path, exe);
    cr_expect_neq(code->inode, 0);
    cr_expect_eq(code->deleted, 0);
    cr_expect(ps_maps_readable(&m, (uint64_t)(uintptr_t)&marker_function, 16));

    /* Writable data of this binary, the stack, and the vdso. */
    const struct ps_map *data = ps_maps_find(&m, (uint64_t)(uintptr_t)&marker_data);
    cr_assert_not_null(data);
    cr_expect_eq(data->perms[1], 'w');
    int local = marker_function(marker_data);
    const struct ps_map *stack = ps_maps_find(&m, (uint64_t)(uintptr_t)&local);
    cr_assert_not_null(stack, "no mapping holds a stack variable");
    cr_expect_eq(stack->perms[0], 'r');
    int vdso = 0;
    for (int i = 0; i < m.n; i++)
        vdso += strcmp(m.v[i].path, "[vdso]") == 0;
    cr_expect_eq(vdso, 1, "[vdso] seen %d times", vdso);

    /* ps_maps_read of our own PID parses the same text. */
    struct ps_maps m2;
    cr_assert_eq(ps_maps_read(getpid(), &m2), 0);
    const struct ps_map *code2 = ps_maps_find(&m2, (uint64_t)(uintptr_t)&marker_function);
    cr_assert_not_null(code2);
    cr_expect_eq(code2->start, code->start);
    cr_expect_eq(code2->end, code->end);
    cr_expect_eq(code2->offset, code->offset);
    ps_maps_release(&m2);

    free(exe);
    free(text);
    ps_maps_release(&m);
    cr_expect_eq(m.n, 0);
    cr_expect_null(m.v);
}

/* ---- crafted text -------------------------------------------------------------------------- */

static const char crafted[] =
    /* deliberately out of order: the parser sorts */
    "7f25e8a00000-7f25e8a21000 rw-p 00000000 00:00 0 \n"
    "00400000-00420000 r--p 00000000 fe:01 1311 /usr/bin/python3.11\n"
    "00420000-006d3000 r-xp 00020000 fe:01 1311 /usr/bin/python3.11\n"
    "7f25e9000000-7f25e9100000 r-xp 00001000 103:02 88123456789       /opt/my app/lib/libpython3.12.so.1.0 (deleted)\n"
    "7f25e8ff0000-7f25e9000000 r--p 00000000 103:02 88123456789       /opt/my app/lib/libpython3.12.so.1.0 (deleted)\n"
    "7f25e9100000-7f25e9101000 ---p 00110000 103:02 88123456789       /opt/my app/lib/libpython3.12.so.1.0 (deleted)\n"
    "7ffc1b2e0000-7ffc1b301000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffc1b3f6000-7ffc1b3f8000 r-xp 00000000 00:00 0                          [vdso]\n"
    "7f25e8b00000-7f25e8b01000 rw-s 00000000 00:05 4242                       /dev/shm/name with  two spaces \n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static const struct ps_map *find_start(const struct ps_maps *m, uint64_t start)
{
    const struct ps_map *x = ps_maps_find(m, start);
    cr_assert_not_null(x, "no mapping at 0x%llx", (unsigned long long)start);
    cr_assert_eq(x->start, start);
    return x;
}

Test(maps, crafted_text_fields)
{
    struct ps_maps m;
    parse_ok(crafted, &m);
    cr_assert_eq(m.n, 10);
    for (int i = 1; i < m.n; i++)
        cr_assert_lt(m.v[i - 1].start, m.v[i].start, "not sorted at %d", i);

    const struct ps_map *x = find_start(&m, 0x400000);
    cr_expect_eq(x->end, 0x420000);
    cr_expect_str_eq(x->perms, "r--p");
    cr_expect_eq(x->offset, 0);
    cr_expect_eq(x->inode, 1311);
    cr_expect_str_eq(x->path, "/usr/bin/python3.11");
    cr_expect_eq(x->deleted, 0);
    x = find_start(&m, 0x420000);
    cr_expect_eq(x->offset, 0x20000);
    cr_expect_str_eq(x->perms, "r-xp");

    /* Deleted file with a space in its directory; the suffix is removed from the path. */
    x = find_start(&m, 0x7f25e9000000);
    cr_expect_eq(x->deleted, 1);
    cr_expect_str_eq(x->path, "/opt/my app/lib/libpython3.12.so.1.0");
    cr_expect_eq(x->inode, 88123456789ull);
    cr_expect_eq(x->offset, 0x1000);
    x = find_start(&m, 0x7f25e8ff0000);
    cr_expect_eq(x->deleted, 1);
    cr_expect_eq(x->offset, 0);
    x = find_start(&m, 0x7f25e9100000);
    cr_expect_str_eq(x->perms, "---p");

    /* Anonymous mapping (a trailing space after the inode), [stack], [vdso], [vsyscall]. */
    x = find_start(&m, 0x7f25e8a00000);
    cr_expect_str_eq(x->path, "");
    cr_expect_eq(x->inode, 0);
    cr_expect_eq(x->deleted, 0);
    cr_expect_str_eq(find_start(&m, 0x7ffc1b2e0000)->path, "[stack]");
    cr_expect_str_eq(find_start(&m, 0x7ffc1b3f6000)->path, "[vdso]");
    x = find_start(&m, 0xffffffffff600000ull);
    cr_expect_str_eq(x->path, "[vsyscall]");
    cr_expect_eq(x->end, 0xffffffffff601000ull);

    /* A shared mapping whose name holds two spaces inside and one at the end. */
    x = find_start(&m, 0x7f25e8b00000);
    cr_expect_str_eq(x->perms, "rw-s");
    cr_expect_str_eq(x->path, "/dev/shm/name with  two spaces ");
    cr_expect_eq(x->inode, 4242);
    ps_maps_release(&m);
}

Test(maps, blank_lines_and_no_final_newline)
{
    static const char t[] = "\n1000-2000 r--p 00000000 00:00 0\n\n3000-4000 rw-p 00000000 00:00 0 x";
    struct ps_maps m;
    parse_ok(t, &m);
    cr_assert_eq(m.n, 2);
    cr_expect_str_eq(m.v[1].path, "x");
    ps_maps_release(&m);

    parse_ok("", &m);
    cr_expect_eq(m.n, 0);
    cr_expect_null(ps_maps_find(&m, 0x1000));
    cr_expect_eq(ps_maps_readable(&m, 0x1000, 1), 0);
    ps_maps_release(&m);
}

Test(maps, malformed_lines)
{
    static const char *const bad[] = {
        "1000 2000 r--p 00000000 00:00 0",              /* no dash */
        "1000-2000r--p 00000000 00:00 0",               /* no space after the range */
        "-2000 r--p 00000000 00:00 0",                  /* empty start */
        "1000- r--p 00000000 00:00 0",                  /* empty end */
        "10g0-2000 r--p 00000000 00:00 0",              /* not hex */
        "1000-2000 r- 00000000 00:00 0",                /* perms cut short */
        "1000-2000 r--p",                               /* nothing after the perms */
        "1000-2000 r--p 0000z000 00:00 0",              /* offset not hex */
        "1000-2000 r--p 00000000 0000 0",               /* device without colon */
        "1000-2000 r--p 00000000 00:00",                /* no inode */
        "1000-2000 r--p 00000000 00:00 x",              /* inode not decimal */
        "2000-1000 r--p 00000000 00:00 0",              /* end before start */
        "10000000000000000-10000000000000001 r--p 00000000 00:00 0", /* 17 hex digits */
        "1000-2000 r--p 00000000 00:00 123456789012345678901",      /* inode too long */
        "garbage",
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(bad); i++) {
        struct ps_maps m = {(struct ps_map *)0x1, 77};
        int rc = ps_maps_parse(bad[i], strlen(bad[i]), &m);
        cr_expect_eq(rc, PS_EFORMAT, "\"%s\" gave %d", bad[i], rc);
        cr_expect_eq(m.n, 0, "\"%s\": n left at %d", bad[i], m.n);
        cr_expect_null(m.v, "\"%s\": array not released", bad[i]);
    }
    /* One bad line among good ones fails the whole text and names the line. */
    static const char mixed[] = "1000-2000 r--p 00000000 00:00 0 /a\n"
                                "3000-4000 r--p 00000000 00:00 0 /b\n"
                                "5000-6000 r--p 0000000 00:00\n";
    struct ps_maps m;
    cr_expect_eq(ps_maps_parse(mixed, strlen(mixed), &m), PS_EFORMAT);
    cr_expect(ps_err_detail() && strstr(ps_err_detail(), "3"), "detail: %s",
              ps_err_detail() ? ps_err_detail() : "(none)");
    /* Maximal values are fine: 16 hex digits, a 20-digit inode. */
    static const char big[] =
        "fffffffffffff000-ffffffffffffffff r--p ffffffffffffffff ff:ff 18446744073709551615 /big\n";
    parse_ok(big, &m);
    cr_assert_eq(m.n, 1);
    cr_expect_eq(m.v[0].offset, UINT64_MAX);
    cr_expect_eq(m.v[0].inode, UINT64_MAX);
    ps_maps_release(&m);
}

/* A line is kept only up to its newline: a NUL-free length-bounded parse of a buffer that is
 * not NUL-terminated must not read past `len`. */
Test(maps, length_bounded)
{
    static const char t[] = "1000-2000 r--p 00000000 00:00 0 /first\n3000-4000 r--p";
    struct ps_maps m;
    size_t first_line = strchr(t, '\n') - t + 1;
    char *copy = malloc(first_line); /* no terminator: ASan catches an over-read */
    memcpy(copy, t, first_line);
    cr_assert_eq(ps_maps_parse(copy, first_line, &m), 0);
    cr_assert_eq(m.n, 1);
    cr_expect_str_eq(m.v[0].path, "/first");
    ps_maps_release(&m);
    free(copy);
}

/* ---- lookups ------------------------------------------------------------------------------- */

static const char layout[] = "1000-2000 r--p 00000000 00:00 0 /a\n"      /* 0 */
                             "2000-3000 rw-p 00000000 00:00 0 /a\n"      /* 1: adjacent to 0 */
                             "3000-4000 ---p 00000000 00:00 0 /guard\n"  /* 2: adjacent, no r */
                             "5000-6000 r-xp 00000000 00:00 0 /b\n"      /* 3: after a gap */
                             "6000-7000 r--p 00000000 00:00 0 /b\n"      /* 4 */
                             "9000-a000 rw-p 00000000 00:00 0\n";        /* 5 */

Test(maps, find_edges)
{
    struct ps_maps m;
    parse_ok(layout, &m);
    cr_assert_eq(m.n, 6);
    static const struct {
        uint64_t addr;
        int idx; /* -1: none */
    } cases[] = {
        {0, -1},      {0xfff, -1},  {0x1000, 0},  {0x1fff, 0},  {0x2000, 1},  {0x2fff, 1},
        {0x3000, 2},  {0x3fff, 2},  {0x4000, -1}, {0x4fff, -1}, {0x5000, 3},  {0x6000, 4},
        {0x6fff, 4},  {0x7000, -1}, {0x8fff, -1}, {0x9000, 5},  {0x9fff, 5},  {0xa000, -1},
        {UINT64_MAX, -1},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(cases); i++) {
        const struct ps_map *x = ps_maps_find(&m, cases[i].addr);
        if (cases[i].idx < 0)
            cr_expect_null(x, "0x%llx should be unmapped", (unsigned long long)cases[i].addr);
        else
            cr_expect_eq(x, &m.v[cases[i].idx], "0x%llx: wrong mapping",
                         (unsigned long long)cases[i].addr);
    }
    ps_maps_release(&m);

    /* One mapping, and a large sorted set searched exhaustively at every boundary. */
    parse_ok("1000-2000 r--p 00000000 00:00 0\n", &m);
    cr_expect_not_null(ps_maps_find(&m, 0x1000));
    cr_expect_null(ps_maps_find(&m, 0x2000));
    cr_expect_null(ps_maps_find(&m, 0xfff));
    ps_maps_release(&m);

    struct ps_strbuf sb;
    ps_sb_init(&sb);
    for (int i = 999; i >= 0; i--) /* reverse order, every other page mapped */
        ps_sb_printf(&sb, "%x-%x r--p 00000000 00:00 0\n", 0x10000 + i * 0x2000,
                     0x11000 + i * 0x2000);
    parse_ok(sb.buf, &m);
    cr_assert_eq(m.n, 1000);
    for (int i = 0; i < 1000; i++) {
        uint64_t s = 0x10000 + (uint64_t)i * 0x2000;
        cr_assert_eq(ps_maps_find(&m, s), &m.v[i]);
        cr_assert_eq(ps_maps_find(&m, s + 0xfff), &m.v[i]);
        cr_assert_null(ps_maps_find(&m, s + 0x1000));
        cr_assert_null(ps_maps_find(&m, s - 1));
    }
    ps_sb_release(&sb);
    ps_maps_release(&m);
}

Test(maps, readable_ranges)
{
    struct ps_maps m;
    parse_ok(layout, &m);
    /* Inside one mapping, up to its very end. */
    cr_expect(ps_maps_readable(&m, 0x1000, 0x1000));
    cr_expect(ps_maps_readable(&m, 0x1ff8, 8));
    cr_expect(ps_maps_readable(&m, 0x1000, 0));
    /* Across two adjacent readable mappings (split heap / r-- then rw- of one file). */
    cr_expect(ps_maps_readable(&m, 0x1ff8, 16));
    cr_expect(ps_maps_readable(&m, 0x1000, 0x2000));
    cr_expect(ps_maps_readable(&m, 0x5800, 0x1000));
    /* Into the adjacent unreadable guard, or into a gap. */
    cr_expect_not(ps_maps_readable(&m, 0x2ff8, 16));
    cr_expect_not(ps_maps_readable(&m, 0x1000, 0x2001));
    cr_expect_not(ps_maps_readable(&m, 0x3000, 8));
    cr_expect_not(ps_maps_readable(&m, 0x6ff8, 16));
    cr_expect_not(ps_maps_readable(&m, 0x4000, 8));
    cr_expect_not(ps_maps_readable(&m, 0xfff, 2));
    cr_expect_not(ps_maps_readable(&m, 0xa000, 1));
    /* Executable but readable counts as readable. */
    cr_expect(ps_maps_readable(&m, 0x5000, 0x2000));
    ps_maps_release(&m);
}
