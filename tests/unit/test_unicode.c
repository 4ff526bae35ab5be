/* test_unicode.c — Criterion suite `unicode` for the string decoders in pytext.c: PEP 393
 * headers laid out with 3.11 and 3.12 offsets (compact ASCII, compact non-ASCII, legacy),
 * latin-1/UCS-2/UCS-4 data to UTF-8, 2.7 byte strings with invalid UTF-8, and truncation.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "ps_pyoffsets.h"
#include "ps_pytext.h"
#include "ps_util.h"

/* Strict UTF-8 check: no overlongs, surrogates or values past U+10FFFF. */
static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Decodes and checks the invariants every result must have. */
static int dec(int kind, const void *data, size_t n, char *out, size_t outsz)
{
    memset(out, 'Z', outsz);
    int r = ps_utf8_from_kind(kind, data, n, out, outsz);
    if (r >= 0) {
        cr_assert_lt((size_t)r, outsz);
        cr_assert_eq(out[r], '\0');
        cr_assert_eq(strlen(out), (size_t)r);
        cr_assert(utf8_valid(out, (size_t)r), "invalid UTF-8 out of kind %d", kind);
    }
    return r;
}

static int san(const void *data, size_t n, char *out, size_t outsz)
{
    memset(out, 'Z', outsz);
    int r = ps_utf8_sanitize(data, n, out, outsz);
    if (r >= 0) {
        cr_assert_lt((size_t)r, outsz);
        cr_assert_eq(out[r], '\0');
        cr_assert_eq(strlen(out), (size_t)r);
        cr_assert(utf8_valid(out, (size_t)r), "invalid UTF-8 out of sanitize");
    }
    return r;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

Test(unicode, ascii)
{
    char out[64];
    cr_expect_eq(dec(1, "hello_world", 11, out, sizeof out), 11);
    cr_expect_str_eq(out, "hello_world");
    cr_expect_eq(dec(1, "", 0, out, sizeof out), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(dec(1, NULL, 0, out, sizeof out), 0);
}

Test(unicode, latin1_non_ascii)
{
    static const uint8_t s[] = {0xfc, 'n', 'i', 'c', 'o', 'd', 'e', '_', 'f', 'u', 'n', 'c'};
    char out[64];
    cr_expect_eq(dec(1, s, sizeof s, out, sizeof out), 13);
    cr_expect_str_eq(out, "\xc3\xbcnicode_func");
    static const uint8_t hi[] = {0xa9, 0xff, 0x80};
    cr_expect_eq(dec(1, hi, sizeof hi, out, sizeof out), 6);
    cr_expect_str_eq(out, "\xc2\xa9\xc3\xbf\xc2\x80");
}

Test(unicode, ucs2_greek_cjk)
{
    static const uint16_t cps[] = {0x03b1, 0x03b2, 'x', 0x6f22, 0x5b57, 0x00e9, 0xffff};
    uint8_t buf[2 * PS_ARRAY_LEN(cps)];
    for (size_t i = 0; i < PS_ARRAY_LEN(cps); i++)
        put16(buf + 2 * i, cps[i]);
    char out[64];
    const char *want = "\xce\xb1\xce\xb2x\xe6\xbc\xa2\xe5\xad\x97\xc3\xa9\xef\xbf\xbf";
    cr_expect_eq(dec(2, buf, PS_ARRAY_LEN(cps), out, sizeof out), (int)strlen(want));
    cr_expect_str_eq(out, want);
}

Test(unicode, ucs4_emoji)
{
    static const uint32_t cps[] = {0x1f600, ' ', 0x10ffff, 0x20000, 0x3b1};
    uint8_t buf[4 * PS_ARRAY_LEN(cps)];
    for (size_t i = 0; i < PS_ARRAY_LEN(cps); i++)
        put32(buf + 4 * i, cps[i]);
    char out[64];
    const char *want = "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\xf0\xa0\x80\x80\xce\xb1";
    cr_expect_eq(dec(4, buf, PS_ARRAY_LEN(cps), out, sizeof out), (int)strlen(want));
    cr_expect_str_eq(out, want);
}

Test(unicode, invalid_code_points_become_fffd)
{
    char out[64];
    uint8_t b2[8];
    put16(b2, 'a');
    put16(b2 + 2, 0xd800); /* lone high surrogate */
    put16(b2 + 4, 0xdfff); /* lone low surrogate */
    put16(b2 + 6, 'b');
    cr_expect_eq(dec(2, b2, 4, out, sizeof out), 8);
    cr_expect_str_eq(out, "a\xef\xbf\xbd\xef\xbf\xbd" "b");

    uint8_t b4[16];
    put32(b4, 0xd83d);
    put32(b4 + 4, 0x110000);
    put32(b4 + 8, 0xffffffffu);
    put32(b4 + 12, 0);
    cr_expect_eq(dec(4, b4, 4, out, sizeof out), 12);
    cr_expect_str_eq(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");

    /* NUL inside a name would cut the C string short: it is replaced too. */
    static const uint8_t z[] = {'a', 0, 'b'};
    cr_expect_eq(dec(1, z, 3, out, sizeof out), 5);
    cr_expect_str_eq(out, "a\xef\xbf\xbd" "b");
}

Test(unicode, bad_kind_and_args)
{
    char out[16];
    for (int k = -1; k <= 8; k++) {
        if (k == 1 || k == 2 || k == 4)
            continue;
        strcpy(out, "junk");
        cr_expect_eq(ps_utf8_from_kind(k, "abcd", 1, out, sizeof out), PS_EFORMAT, "kind %d", k);
        cr_expect_str_eq(out, "", "kind %d leaves a string behind", k);
    }
    cr_expect_eq(ps_utf8_from_kind(1, "abc", 3, out, 0), PS_ERANGE);
    cr_expect_eq(ps_utf8_from_kind(1, "abc", 3, NULL, 8), PS_ERANGE);
    cr_expect_eq(ps_utf8_from_kind(1, NULL, 3, out, sizeof out), PS_EFORMAT);
    cr_expect_eq(ps_utf8_sanitize((const uint8_t *)"abc", 3, out, 0), PS_ERANGE);
    cr_expect_eq(ps_utf8_sanitize(NULL, 3, out, sizeof out), PS_EFORMAT);
}

Test(unicode, truncation_keeps_whole_characters)
{
    /* Five two-byte characters: 10 bytes of UTF-8. */
    uint8_t g[10];
    for (int i = 0; i < 5; i++)
        put16(g + 2 * i, (uint16_t)(0x3b1 + i));
    char out[32];
    cr_expect_eq(dec(2, g, 5, out, 11), 10); /* fits exactly */
    cr_expect_str_eq(out, "\xce\xb1\xce\xb2\xce\xb3\xce\xb4\xce\xb5");
    cr_expect_eq(dec(2, g, 5, out, 10), 9); /* 9 bytes of room: 3 for "...", 6 for text */
    cr_expect_str_eq(out, "\xce\xb1\xce\xb2\xce\xb3...");
    cr_expect_eq(dec(2, g, 5, out, 9), 7); /* 8 bytes: 5 for text -> two characters */
    cr_expect_str_eq(out, "\xce\xb1\xce\xb2...");
    cr_expect_eq(dec(2, g, 5, out, 6), 5);
    cr_expect_str_eq(out, "\xce\xb1...");
    cr_expect_eq(dec(2, g, 5, out, 5), 3);
    cr_expect_str_eq(out, "...");

    /* Emoji: 4 bytes each. */
    uint8_t e[8];
    put32(e, 0x1f600);
    put32(e + 4, 0x1f601);
    cr_expect_eq(dec(4, e, 2, out, 9), 8);
    cr_expect_eq(dec(4, e, 2, out, 8), 7);
    cr_expect_str_eq(out, "\xf0\x9f\x98\x80...");
    cr_expect_eq(dec(4, e, 2, out, 7), 3);
    cr_expect_str_eq(out, "...");

    cr_expect_eq(dec(1, "hello", 5, out, 6), 5);
    cr_expect_str_eq(out, "hello");
    cr_expect_eq(dec(1, "hello", 5, out, 5), 4);
    cr_expect_str_eq(out, "h...");
}

Test(unicode, tiny_output_buffers)
{
    char out[8];
    cr_expect_eq(dec(1, "hello", 5, out, 1), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(dec(1, "hello", 5, out, 2), 1);
    cr_expect_str_eq(out, ".");
    cr_expect_eq(dec(1, "hello", 5, out, 3), 2);
    cr_expect_str_eq(out, "..");
    cr_expect_eq(dec(1, "hello", 5, out, 4), 3);
    cr_expect_str_eq(out, "...");
    /* A string that fits is never dotted, however small the buffer. */
    cr_expect_eq(dec(1, "a", 1, out, 2), 1);
    cr_expect_str_eq(out, "a");
    cr_expect_eq(dec(1, "ab", 2, out, 3), 2);
    cr_expect_str_eq(out, "ab");
    /* A multi-byte character never squeezes into a too-small buffer. */
    static const uint8_t u[] = {0xfc};
    cr_expect_eq(dec(1, u, 1, out, 2), 1);
    cr_expect_str_eq(out, ".");
    cr_expect_eq(dec(1, u, 1, out, 3), 2);
    cr_expect_str_eq(out, "\xc3\xbc");
    uint8_t e[4];
    put32(e, 0x1f600);
    cr_expect_eq(dec(4, e, 1, out, 4), 3);
    cr_expect_str_eq(out, "...");
    cr_expect_eq(dec(4, e, 1, out, 5), 4);
    cr_expect_eq(san((const uint8_t *)"xyz", 3, out, 1), 0);
    cr_expect_eq(san((const uint8_t *)"xyz", 3, out, 2), 1);
    cr_expect_str_eq(out, ".");
    cr_expect_eq(san((const uint8_t *)"xyz", 3, out, 4), 3);
    cr_expect_str_eq(out, "xyz");
}

Test(unicode, sanitize_valid_passes_through)
{
    const char *s = "plain_ascii \xc3\xbc \xce\xb1 \xe6\xbc\xa2 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char out[64];
    cr_expect_eq(san(s, strlen(s), out, sizeof out), (int)strlen(s));
    cr_expect_str_eq(out, s);
}

Test(unicode, sanitize_invalid_utf8)
{
#define FFFD "\xef\xbf\xbd"
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"a\x80" "b", 3, "a" FFFD "b"},                  /* lone continuation */
        {"\xc0\xaf", 2, FFFD FFFD},                     /* overlong lead */
        {"\xc1\xbf", 2, FFFD FFFD},
        {"\xe0\x80\x80", 3, FFFD FFFD FFFD},            /* overlong 3-byte */
        {"\xed\xa0\x80", 3, FFFD FFFD FFFD},            /* encoded surrogate */
        {"\xf0\x80\x80\x80", 4, FFFD FFFD FFFD FFFD},   /* overlong 4-byte */
        {"\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD},   /* past U+10FFFF */
        {"\xf5\x80", 2, FFFD FFFD},
        {"\xff\xfe", 2, FFFD FFFD},
        {"abc\xe6\xbc", 5, "abc" FFFD},                 /* cut at the end: one replacement */
        {"\xe6\xbc" "A", 3, FFFD "A"},                  /* cut by an ASCII byte */
        {"\xf0\x9f\x98", 3, FFFD},
        {"\xf0\x9f\x98\xc3\xbc", 5, FFFD "\xc3\xbc"},   /* cut by a valid character */
        {"x\0y", 3, "x" FFFD "y"},                      /* NUL */
    };
#undef FFFD
    char out[64];
    for (size_t i = 0; i < PS_ARRAY_LEN(cases); i++) {
        int r = san(cases[i].in, cases[i].n, out, sizeof out);
        cr_expect_eq(r, (int)strlen(cases[i].want), "case %zu: %d", i, r);
        cr_expect_str_eq(out, cases[i].want, "case %zu", i);
    }
    /* Truncation does not split a replacement character either. */
    cr_expect_eq(san("\xff\xff\xff\xff", 4, out, 10), 9);
    cr_expect_str_eq(out, "\xef\xbf\xbd\xef\xbf\xbd...");
}

/* ---- PEP 393 headers ------------------------------------------------------------------------ */

static struct ps_py_offsets offs311(void)
{
    struct ps_py_offsets o;
    memset(&o, 0, sizeof o);
    o.str_length = 16;
    o.str_state = 32;
    o.str_ascii_size = 48;
    o.str_compact_size = 72;
    o.str_data = 72;
    o.str_kind_shift = 2;
    o.str_compact_bit = 5;
    o.str_ascii_bit = 6;
    return o;
}

static struct ps_py_offsets offs312(void)
{
    struct ps_py_offsets o = offs311();
    o.str_ascii_size = 40;
    o.str_compact_size = 56;
    o.str_data = 56;
    return o;
}

/* Lays out a string header: length, state (kind, compact, ascii, plus interned and ready bits
 * that must not matter) and, for legacy strings, the data pointer. */
static void mkhdr(uint8_t *h, const struct ps_py_offsets *o, uint64_t length, unsigned kind,
                  int compact, int ascii, uint64_t data)
{
    memset(h, 0xee, 128);
    put64(h + o->str_length, length);
    uint32_t st = 1u /* interned */ | (uint32_t)kind << o->str_kind_shift |
                  (uint32_t)compact << o->str_compact_bit | (uint32_t)ascii << o->str_ascii_bit;
    if (o->str_ascii_bit + 1 < 32)
        st |= 1u << (o->str_ascii_bit + 1); /* ready / statically_allocated */
    put32(h + o->str_state, st);
    if (!compact)
        put64(h + o->str_data, data);
}

struct hdr_out {
    int rc, kind;
    size_t length;
    int64_t off;
    uint64_t ptr;
};

static struct hdr_out parse(const struct ps_py_offsets *o, const uint8_t *h, size_t hl, size_t max)
{
    struct hdr_out r = {0, -7, 12345, -7, 777};
    r.rc = ps_str_header(o, h, hl, max, &r.kind, &r.length, &r.off, &r.ptr);
    return r;
}

Test(unicode, header_compact_311_312)
{
    struct ps_py_offsets o11 = offs311(), o12 = offs312();
    const struct {
        const struct ps_py_offsets *o;
        unsigned kind;
        int ascii;
        int64_t want_off;
    } cases[] = {
        {&o11, 1, 1, 48}, {&o11, 1, 0, 72}, {&o11, 2, 0, 72}, {&o11, 4, 0, 72},
        {&o12, 1, 1, 40}, {&o12, 1, 0, 56}, {&o12, 2, 0, 56}, {&o12, 4, 0, 56},
    };
    uint8_t h[128];
    for (size_t i = 0; i < PS_ARRAY_LEN(cases); i++) {
        mkhdr(h, cases[i].o, 12, cases[i].kind, 1, cases[i].ascii, 0);
        struct hdr_out r = parse(cases[i].o, h, (size_t)cases[i].o->str_compact_size, 1024);
        cr_expect_eq(r.rc, 0, "case %zu", i);
        cr_expect_eq(r.kind, (int)cases[i].kind, "case %zu", i);
        cr_expect_eq(r.length, 12u, "case %zu", i);
        cr_expect_eq(r.off, cases[i].want_off, "case %zu", i);
        cr_expect_eq(r.ptr, 0u, "case %zu", i);
    }
    /* A compact ASCII header is enough on its own (read at the end of a mapping). */
    mkhdr(h, &o12, 5, 1, 1, 1, 0);
    struct hdr_out r = parse(&o12, h, 40, 1024);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.off, 40);
}

Test(unicode, header_legacy)
{
    struct ps_py_offsets o11 = offs311(), o12 = offs312();
    uint8_t h[128];
    mkhdr(h, &o11, 3, 2, 0, 0, 0x00007f0012345678ull);
    struct hdr_out r = parse(&o11, h, 80, 1024);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.kind, 2);
    cr_expect_eq(r.length, 3u);
    cr_expect_eq(r.off, -1);
    cr_expect_eq(r.ptr, 0x00007f0012345678ull);
    /* Legacy ASCII (a str subclass) still has its data behind the pointer. */
    mkhdr(h, &o12, 4, 1, 0, 1, 0x5555aaaa0000ull);
    r = parse(&o12, h, 64, 1024);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.off, -1);
    cr_expect_eq(r.ptr, 0x5555aaaa0000ull);
    /* Not ready (kind 0, <= 3.11). */
    mkhdr(h, &o11, 3, 0, 0, 0, 0x1000);
    cr_expect_eq(parse(&o11, h, 80, 1024).rc, PS_ECORRUPT);
    /* No data pointer. */
    mkhdr(h, &o11, 3, 4, 0, 0, 0);
    cr_expect_eq(parse(&o11, h, 80, 1024).rc, PS_ECORRUPT);
    /* Header copy too short to hold the pointer. */
    mkhdr(h, &o11, 3, 4, 0, 0, 0x1000);
    cr_expect_eq(parse(&o11, h, 79, 1024).rc, PS_ECORRUPT);
    cr_expect_eq(parse(&o11, h, 80, 1024).rc, 0);
}

Test(unicode, header_rejects_garbage)
{
    struct ps_py_offsets o = offs312();
    uint8_t h[128];
    for (unsigned k = 0; k < 8; k++) {
        mkhdr(h, &o, 3, k, 1, 0, 0);
        int want = (k == 1 || k == 2 || k == 4) ? 0 : PS_ECORRUPT;
        cr_expect_eq(parse(&o, h, 56, 1024).rc, want, "kind %u", k);
    }
    mkhdr(h, &o, 3, 2, 1, 1, 0); /* "ascii" but two bytes per character */
    cr_expect_eq(parse(&o, h, 56, 1024).rc, PS_ECORRUPT);
    mkhdr(h, &o, 1025, 1, 1, 1, 0);
    cr_expect_eq(parse(&o, h, 56, 1024).rc, PS_ECORRUPT);
    mkhdr(h, &o, 1024, 1, 1, 1, 0);
    cr_expect_eq(parse(&o, h, 56, 1024).rc, 0);
    mkhdr(h, &o, UINT64_MAX, 1, 1, 1, 0); /* negative Py_ssize_t */
    cr_expect_eq(parse(&o, h, 56, SIZE_MAX).rc, PS_ECORRUPT);
    mkhdr(h, &o, (uint64_t)1 << 62, 4, 1, 0, 0);
    cr_expect_eq(parse(&o, h, 56, 1u << 20).rc, PS_ECORRUPT);
    /* Too short to hold state and length. */
    mkhdr(h, &o, 3, 1, 1, 1, 0);
    cr_expect_eq(parse(&o, h, 35, 1024).rc, PS_ECORRUPT);
    cr_expect_eq(parse(&o, h, 36, 1024).rc, 0);
    cr_expect_eq(parse(&o, NULL, 56, 1024).rc, PS_ECORRUPT);
    cr_expect_eq(parse(NULL, h, 56, 1024).rc, PS_ECORRUPT);
    /* Failures leave the outputs alone. */
    mkhdr(h, &o, 3, 3, 1, 0, 0);
    struct hdr_out r = parse(&o, h, 56, 1024);
    cr_expect_eq(r.kind, -7);
    cr_expect_eq(r.off, -7);
}

/* The bit positions come from the offsets, not from constants (3.14 free-threaded layout). */
Test(unicode, header_bits_from_offsets)
{
    struct ps_py_offsets o = offs312();
    o.str_length = 32;
    o.str_state = 48;
    o.str_ascii_size = 56;
    o.str_compact_size = 72;
    o.str_data = 72;
    o.str_kind_shift = 8;
    o.str_compact_bit = 11;
    o.str_ascii_bit = 12;
    uint8_t h[128];
    mkhdr(h, &o, 7, 4, 1, 0, 0);
    put32(h + o.str_state, 4u << 8 | 1u << 11 | 0xffu); /* interned byte all ones */
    struct hdr_out r = parse(&o, h, 80, 1024);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.kind, 4);
    cr_expect_eq(r.length, 7u);
    cr_expect_eq(r.off, 72);
    /* Read with the 3.12 bit layout the same word means kind 7 (garbage). */
    struct ps_py_offsets bad = o;
    bad.str_kind_shift = 2;
    cr_expect_eq(parse(&bad, h, 80, 1024).rc, PS_ECORRUPT);
}

/* A whole compact object (header + data) decoded the way the code cache does it. */
Test(unicode, header_then_data)
{
    struct ps_py_offsets o = offs312();
    uint8_t obj[128];
    static const uint16_t name[] = {0x03bb, 'a', 'm', 0x03b2, 'd', 'a'};
    mkhdr(obj, &o, PS_ARRAY_LEN(name), 2, 1, 0, 0);
    for (size_t i = 0; i < PS_ARRAY_LEN(name); i++)
        put16(obj + o.str_compact_size + 2 * i, name[i]);
    struct hdr_out r = parse(&o, obj, (size_t)o.str_compact_size, 256);
    cr_assert_eq(r.rc, 0);
    char out[32];
    int n = dec(r.kind, obj + r.off, r.length, out, sizeof out);
    cr_expect_eq(n, 8);
    cr_expect_str_eq(out, "\xce\xbb" "am\xce\xb2" "da");

    /* Same through the shipped 3.11 table, when it is built in. */
    const struct ps_py_offsets *t = ps_pyoffsets_lookup(3, 11);
    if (t) {
        struct ps_py_offsets want = offs311();
        cr_expect_eq(t->str_ascii_size, want.str_ascii_size);
        cr_expect_eq(t->str_compact_size, want.str_compact_size);
        cr_expect_eq(t->str_kind_shift, want.str_kind_shift);
        static const uint8_t latin[] = {0xfc, 'n', 'i'};
        mkhdr(obj, t, 3, 1, 1, 0, 0);
        memcpy(obj + t->str_compact_size, latin, sizeof latin);
        r = parse(t, obj, (size_t)t->str_compact_size, 256);
        cr_assert_eq(r.rc, 0);
        n = dec(r.kind, obj + r.off, r.length, out, sizeof out);
        cr_expect_str_eq(out, "\xc3\xbcni");
    }
}
