/* util.c — error codes and messages, checked allocation, logging, clocks, string buffers.
 *
 * The bottom of the layer picture: every other module uses these, and nothing here knows
 * about processes or Python.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ps_util.h"

int ps_verbose;

static const char *const ps_messages[] = {
#define PS_X_MSG(name, msg) msg,
    PS_ERRORS(PS_X_MSG)
#undef PS_X_MSG
};

const char *ps_strerror(int code)
{
    if (code >= 0)
        return "success";
    int idx = -code - 1; /* codes are -1, -2, ... in list order */
    if (idx >= (int)PS_ARRAY_LEN(ps_messages))
        return "unknown error";
    return ps_messages[idx];
}

int ps_err_from_errno(int e)
{
    switch (e) {
    case ESRCH:
        return PS_ENOPROC;
    case EPERM:
    case EACCES:
        return PS_EPERM;
    case EFAULT:
    case EIO:
        return PS_EFAULT;
    case ENOMEM:
        return PS_ENOMEM;
    case ENOENT:
        return PS_ENOPROC;
    default:
        return PS_EIO;
    }
}

static __thread char ps_detail[512];

void ps_err_set(const char *fmt, ...)
{
    /* Formatted apart first: callers may pass ps_err_detail() itself as an argument (to add
     * context to a lower layer's detail), and vsnprintf into its own source is undefined. */
    char buf[sizeof ps_detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(ps_detail, buf, sizeof ps_detail);
}

const char *ps_err_detail(void)
{
    return ps_detail[0] ? ps_detail : NULL;
}

void ps_err_clear(void)
{
    ps_detail[0] = '\0';
}

static void ps_oom(size_t n)
{
    fprintf(stderr, "pysample: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *ps_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ps_oom(n);
    return p;
}

void *ps_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        ps_oom(n * sz);
    return p;
}

void *ps_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ps_oom(n);
    return q;
}

void *ps_xalloc_aligned(void *p, size_t n)
{
    free(p);
    size_t sz = (n + PS_COPY_ALIGN - 1) & ~(size_t)(PS_COPY_ALIGN - 1);
    void *q = aligned_alloc(PS_COPY_ALIGN, sz ? sz : PS_COPY_ALIGN);
    if (!q)
        ps_oom(n);
    return q;
}

char *ps_xstrdup(const char *s)
{
    return ps_xstrndup(s, strlen(s));
}

char *ps_xstrndup(const char *s, size_t n)
{
    char *p = ps_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ps_log(int level, const char *fmt, ...)
{
    if (ps_verbose < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("pysample: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

uint64_t ps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ps_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ps_sb_init(struct ps_strbuf *sb)
{
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

void ps_sb_release(struct ps_strbuf *sb)
{
    free(sb->buf);
    ps_sb_init(sb);
}

void ps_sb_reset(struct ps_strbuf *sb)
{
    sb->len = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
}

static void ps_sb_grow(struct ps_strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    sb->buf = ps_xrealloc(sb->buf, cap);
    sb->cap = cap;
}

void ps_sb_add(struct ps_strbuf *sb, const void *data, size_t n)
{
    ps_sb_grow(sb, n);
    memcpy(sb->buf + sb->len, data, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void ps_sb_adds(struct ps_strbuf *sb, const char *s)
{
    ps_sb_add(sb, s, strlen(s));
}

void ps_sb_addc(struct ps_strbuf *sb, char c)
{
    ps_sb_add(sb, &c, 1);
}

void ps_sb_printf(struct ps_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ps_sb_grow(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t ps_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void ps_sb_add_json_str(struct ps_strbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    ps_sb_addc(sb, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            ps_sb_addc(sb, '\\');
            ps_sb_addc(sb, (char)c);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': ps_sb_adds(sb, "\\n"); break;
            case '\t': ps_sb_adds(sb, "\\t"); break;
            case '\r': ps_sb_adds(sb, "\\r"); break;
            default: ps_sb_printf(sb, "\\u%04x", c); break;
            }
            i++;
        } else if (c < 0x80) {
            ps_sb_addc(sb, (char)c);
            i++;
        } else {
            size_t len = ps_utf8_seq(p + i, n - i);
            if (len) {
                ps_sb_add(sb, p + i, len);
                i += len;
            } else {
                ps_sb_adds(sb, "\\ufffd");
                i++;
            }
        }
    }
    ps_sb_addc(sb, '"');
}

long ps_read_file(const char *path, char **out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_err_from_errno(errno);
    size_t cap = 4096, len = 0;
    char *buf = ps_xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= max)
                break;
            cap = PS_MIN(cap * 2, max);
            buf = ps_xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            free(buf);
            return ps_err_from_errno(e);
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    return (long)len;
}
