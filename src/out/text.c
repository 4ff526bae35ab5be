/* text.c — what the writers of out/ share: valid UTF-8 out of any bytes, XML and JSON string
 * escaping, the kind of a frame (Python, native, idle, process/thread root) and its display
 * parts. Pure functions over interned strings; no I/O.
 */
#include <stdint.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there are not one. */
size_t ps_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int ps_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = ps_utf8_len(p + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

void ps_sb_add_utf8(struct ps_strbuf *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        size_t l = ps_utf8_len(p + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        ps_sb_add(sb, s + start, i - start);
        ps_sb_adds(sb, "\xef\xbf\xbd"); /* U+FFFD */
        start = ++i;
    }
    ps_sb_add(sb, s + start, n - start);
}

void ps_sb_add_xml(struct ps_strbuf *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t l = ps_utf8_len(p + i, n - i);
        if (!l) {
            ps_sb_adds(sb, "\xef\xbf\xbd");
            i++;
            continue;
        }
        switch (c) {
        case '&': ps_sb_adds(sb, "&amp;"); break;
        case '<': ps_sb_adds(sb, "&lt;"); break;
        case '>': ps_sb_adds(sb, "&gt;"); break;
        case '"': ps_sb_adds(sb, "&quot;"); break;
        case '\'': ps_sb_adds(sb, "&apos;"); break;
        default:
            if (c < 0x20 && c != '\t')
                ps_sb_addc(sb, '?'); /* not allowed in XML 1.0 */
            else
                ps_sb_add(sb, s + i, l);
        }
        i += l;
    }
}

void ps_sb_add_json(struct ps_strbuf *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    ps_sb_addc(sb, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t l = ps_utf8_len(p + i, n - i);
        if (!l) {
            ps_sb_adds(sb, "\\ufffd");
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            ps_sb_addc(sb, '\\');
            ps_sb_addc(sb, (char)c);
        } else if (c == '\n') {
            ps_sb_adds(sb, "\\n");
        } else if (c < 0x20 || c == 0x7f) {
            ps_sb_printf(sb, "\\u%04x", c);
        } else if (c == '<') {
            ps_sb_adds(sb, "\\u003c"); /* safe inside an HTML/SVG <script> */
        } else {
            ps_sb_add(sb, s + i, l);
        }
        i += l;
    }
    ps_sb_addc(sb, '"');
}

static int ps_ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Calls a thread spends waiting (its CPU is idle there); matched on the function name. */
static const char *const ps_idle_names[] = {
    "sleep",          "select",         "poll",          "epoll_wait",     "wait",
    "acquire",        "accept",         "recv",          "recv_into",      "recvfrom",
    "_wait_for_tstate_lock", "nanosleep", "clock_nanosleep", "pthread_cond_wait",
    "pthread_cond_timedwait", "__futex_abstimed_wait_common", "futex_wait", "epoll_pwait",
    "__select", "__poll", "read_events", "kevent",
};

enum ps_kind ps_frame_kind(const struct ps_intern *in, uint32_t frame_id)
{
    const struct ps_frame_key *k = ps_intern_frame_get(in, frame_id);
    if (!k)
        return PS_KIND_PYTHON;
    if (!k->file && !k->line && ps_frame_root(in, frame_id) != PS_ROOT_NONE)
        return PS_KIND_ROOT;
    const char *name = ps_intern_str_get(in, k->name);
    for (size_t i = 0; name && i < PS_ARRAY_LEN(ps_idle_names); i++)
        if (strcmp(name, ps_idle_names[i]) == 0)
            return PS_KIND_IDLE;
    const char *file = ps_intern_str_get(in, k->file);
    if (!file)
        return PS_KIND_PYTHON;
    size_t n = ps_intern_str_len(in, k->file);
    if (ps_ends_with(file, n, ".py") || ps_ends_with(file, n, ".pyw") || file[0] == '<')
        return PS_KIND_PYTHON;
    return PS_KIND_NATIVE;
}

const char *ps_kind_name(enum ps_kind k)
{
    switch (k) {
    case PS_KIND_ROOT: return "root";
    case PS_KIND_NATIVE: return "native";
    case PS_KIND_IDLE: return "idle";
    default: return "python";
    }
}
