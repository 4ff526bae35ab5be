/* fuzz_string.c — libFuzzer target for the string decoders (pytext.c).
 * Input: byte 0 picks the kind and header layout, byte 1 the output size, the rest is the
 * payload: decoded as latin-1/UCS-2/UCS-4, sanitized as UTF-8, and parsed as a PEP 393 header.
 * Every result must be NUL-terminated, strictly valid UTF-8 that fits the buffer, equal to the
 * full decoding when it fits, and otherwise a whole-character prefix of it followed by dots.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_pyoffsets.h"
#include "ps_pytext.h"
#include "ps_util.h"

#define CHECK(c)                                                                                \
    do {                                                                                        \
        if (!(c)) {                                                                             \
            fprintf(stderr, "fuzz_string: check failed: %s (line %d)\n", #c, __LINE__);        \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* Length of the strictly valid UTF-8 character at p (1..4), or 0. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_char(p + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

/* `r`/`out` come from a call with buffer size outsz, `full`/`nfull` from the same call with a
 * buffer large enough for everything. */
static void check_out(int r, const char *out, size_t outsz, const char *full, int nfull)
{
    if (outsz == 0) {
        CHECK(r == PS_ERANGE);
        return;
    }
    CHECK(r >= 0 && (size_t)r < outsz);
    CHECK(out[r] == '\0' && strlen(out) == (size_t)r);
    CHECK(utf8_valid(out, (size_t)r));
    CHECK(nfull >= 0 && strlen(full) == (size_t)nfull && utf8_valid(full, (size_t)nfull));
    size_t budget = outsz - 1;
    if ((size_t)nfull <= budget) {
        CHECK(r == nfull && memcmp(out, full, (size_t)r) == 0);
        return;
    }
    size_t dots = budget < 3 ? budget : 3;
    CHECK((size_t)r >= dots);
    size_t text = (size_t)r - dots;
    CHECK(memcmp(out + text, "...", dots) == 0);
    CHECK(memcmp(out, full, text) == 0);
    /* The prefix ends on a character boundary and is as long as the room allows. */
    size_t next = utf8_char((const unsigned char *)full + text, (size_t)nfull - text);
    CHECK(next > 0);
    CHECK(text + next > budget - dots);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t outsz = data[1];
    const uint8_t *p = data + 2;
    size_t len = size - 2;
    static const int kinds[] = {1, 2, 4};
    int kind = kinds[mode % 3];
    size_t n = len / (size_t)kind;

    /* Exact-size buffers so that any overrun is caught. */
    char *out = malloc(outsz ? outsz : 1);
    size_t fullsz = 4 * len + 1;
    char *full = malloc(fullsz);
    CHECK(out && full);

    int nfull = ps_utf8_from_kind(kind, p, n, full, fullsz);
    int r = ps_utf8_from_kind(kind, p, n, out, outsz);
    check_out(r, out, outsz, full, nfull);
    CHECK(ps_utf8_from_kind(kind, p, n, full, (size_t)nfull + 1) == nfull);

    nfull = ps_utf8_sanitize(p, len, full, fullsz);
    r = ps_utf8_sanitize(p, len, out, outsz);
    check_out(r, out, outsz, full, nfull);
    if (utf8_valid((const char *)p, len) && !memchr(p, 0, len))
        CHECK((size_t)nfull == len && memcmp(full, p, len) == 0);

    /* The payload as a string header, under three layouts. */
    struct ps_py_offsets o;
    memset(&o, 0, sizeof o);
    o.str_length = 16;
    o.str_state = 32;
    o.str_kind_shift = 2;
    o.str_compact_bit = 5;
    o.str_ascii_bit = 6;
    switch ((mode / 3) % 3) {
    case 0: /* 3.11 */
        o.str_ascii_size = 48, o.str_compact_size = 72, o.str_data = 72;
        break;
    case 1: /* 3.12 */
        o.str_ascii_size = 40, o.str_compact_size = 56, o.str_data = 56;
        break;
    default: /* free-threaded 3.14 */
        o.str_length = 32, o.str_state = 48, o.str_ascii_size = 56, o.str_compact_size = 72;
        o.str_data = 72, o.str_kind_shift = 8, o.str_compact_bit = 11, o.str_ascii_bit = 12;
        break;
    }
    size_t max_len = (size_t)1 << (mode >> 4);
    int hk = -5;
    size_t hlen = 7;
    int64_t off = -5;
    uint64_t ptr = 5;
    int hr = ps_str_header(&o, p, len, max_len, &hk, &hlen, &off, &ptr);
    if (hr == 0) {
        CHECK(hk == 1 || hk == 2 || hk == 4);
        CHECK(hlen <= max_len);
        if (off >= 0) {
            CHECK(ptr == 0 && (off == o.str_ascii_size || off == o.str_compact_size));
            if ((size_t)off <= len && hlen <= (len - (size_t)off) / (size_t)hk) {
                nfull = ps_utf8_from_kind(hk, p + off, hlen, full, fullsz);
                r = ps_utf8_from_kind(hk, p + off, hlen, out, outsz);
                check_out(r, out, outsz, full, nfull);
            }
        } else {
            CHECK(off == -1 && ptr != 0);
        }
    } else {
        CHECK(hr == PS_ECORRUPT);
        CHECK(hk == -5 && hlen == 7 && off == -5 && ptr == 5);
    }
    free(out);
    free(full);
    return 0;
}
