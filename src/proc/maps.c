/* maps.c — parse /proc/PID/maps into sorted mappings and answer "is this address mapped".
 *
 * Used by discovery (which files are loaded where) and by the walker's pointer checks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_proc.h"
#include "ps_util.h"

static int ps_parse_hex(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    int digits = 0;
    while (p < end) {
        char c = *p;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        if (digits >= 16)
            return PS_EFORMAT;
        v = (v << 4) | d;
        digits++;
        p++;
    }
    if (!digits)
        return PS_EFORMAT;
    *pp = p;
    *out = v;
    return 0;
}

static int ps_expect(const char **pp, const char *end, char c)
{
    if (*pp >= end || **pp != c)
        return PS_EFORMAT;
    (*pp)++;
    return 0;
}

static void ps_skip_spaces(const char **pp, const char *end)
{
    while (*pp < end && **pp == ' ')
        (*pp)++;
}

/* start-end perms offset dev:dev inode   path */
static int ps_maps_parse_line(const char *p, const char *end, struct ps_map *m)
{
    uint64_t devmaj, devmin;
    memset(m, 0, sizeof *m);
    if (ps_parse_hex(&p, end, &m->start) || ps_expect(&p, end, '-') ||
        ps_parse_hex(&p, end, &m->end) || ps_expect(&p, end, ' '))
        return PS_EFORMAT;
    if (end - p < 5)
        return PS_EFORMAT;
    /* "rwxp"-style: anything else (a NUL, say) is a malformed line, not permissions. */
    if ((p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') ||
        (p[2] != 'x' && p[2] != '-') || (p[3] != 'p' && p[3] != 's'))
        return PS_EFORMAT;
    memcpy(m->perms, p, 4);
    m->perms[4] = '\0';
    p += 4;
    if (ps_expect(&p, end, ' ') || ps_parse_hex(&p, end, &m->offset) || ps_expect(&p, end, ' ') ||
        ps_parse_hex(&p, end, &devmaj) || ps_expect(&p, end, ':') ||
        ps_parse_hex(&p, end, &devmin) || ps_expect(&p, end, ' '))
        return PS_EFORMAT;
    uint64_t inode = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (digits++ > 19)
            return PS_EFORMAT;
        inode = inode * 10 + (uint64_t)(*p++ - '0');
    }
    if (!digits || m->end < m->start)
        return PS_EFORMAT;
    m->inode = inode;
    ps_skip_spaces(&p, end);
    size_t n = (size_t)(end - p);
    static const char del[] = " (deleted)";
    if (n >= sizeof del - 1 && memcmp(end - (sizeof del - 1), del, sizeof del - 1) == 0) {
        m->deleted = 1;
        n -= sizeof del - 1;
    }
    m->path = ps_xstrndup(p, n);
    return 0;
}

static int ps_map_cmp(const void *a, const void *b)
{
    const struct ps_map *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int ps_maps_parse(const char *text, size_t len, struct ps_maps *out)
{
    const char *p = text, *end = text + len;
    int cap = 64;
    out->n = 0;
    out->v = ps_xmalloc(sizeof(struct ps_map) * (size_t)cap);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le > p) {
            if (out->n == cap) {
                cap *= 2;
                out->v = ps_xrealloc(out->v, sizeof(struct ps_map) * (size_t)cap);
            }
            if (ps_maps_parse_line(p, le, &out->v[out->n]) < 0) {
                ps_err_set("malformed maps line %d", out->n + 1);
                ps_maps_release(out);
                return PS_EFORMAT;
            }
            out->n++;
        }
        p = nl ? nl + 1 : end;
    }
    qsort(out->v, (size_t)out->n, sizeof(struct ps_map), ps_map_cmp);
    return 0;
}

int ps_maps_read(pid_t pid, struct ps_maps *out)
{
    char path[64], *text;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    long len = ps_read_file(path, &text, 64u << 20);
    if (len < 0)
        return (int)len;
    int rc = ps_maps_parse(text, (size_t)len, out);
    free(text);
    return rc;
}

void ps_maps_release(struct ps_maps *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->v[i].path);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

const struct ps_map *ps_maps_find(const struct ps_maps *m, uint64_t addr)
{
    int lo = 0, hi = m->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const struct ps_map *x = &m->v[mid];
        if (addr < x->start)
            hi = mid - 1;
        else if (addr >= x->end)
            lo = mid + 1;
        else
            return x;
    }
    return NULL;
}

int ps_maps_readable(const struct ps_maps *m, uint64_t addr, size_t len)
{
    const struct ps_map *x = ps_maps_find(m, addr);
    if (!x || x->perms[0] != 'r')
        return 0;
    /* A range that wraps past the top of the address space is never mapped (without this a
     * pointer read from the target near 2^64 wrapped addr + len to a small end and passed). */
    if (len > UINT64_MAX - addr)
        return 0;
    /* Allow a range spanning adjacent readable mappings (e.g. split heap). */
    uint64_t end = addr + len;
    while (end > x->end) {
        const struct ps_map *y = ps_maps_find(m, x->end);
        if (!y || y->perms[0] != 'r')
            return 0;
        x = y;
    }
    return 1;
}
