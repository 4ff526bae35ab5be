/* folded.c — folded-stack text: the writer of pysample's own format and a streaming reader
 * of the folded dialects in use (pysample, py-spy raw, Austin, Tachyon, pyflame, plain).
 *
 * The writer turns a finished profile into `root;...;leaf COUNT` lines under `# ` metadata;
 * the reader interns such lines back into a profile for `pysample report`. The exact format,
 * the escaping rules and what the reader does with each dialect are documented in ps_output.h.
 */
#include <errno.h>
#include <math.h> /* isfinite (a macro: no libm) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

#ifndef PS_VERSION
#define PS_VERSION "unknown"
#endif

/* ---- shared helpers ---------------------------------------------------------------------- */

static int ps_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int ps_is_xdigit(char c)
{
    return ps_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

enum ps_root ps_root_kind(const char *s)
{
    if (strncmp(s, "process ", 8) == 0) {
        const char *q = s + 8;
        if (!ps_is_digit(*q))
            return PS_ROOT_NONE;
        while (ps_is_digit(*q))
            q++;
        if (*q == '\0')
            return PS_ROOT_PROCESS;
        size_t rest = strlen(q);
        if (q[0] == ':' && q[1] == '"' && rest >= 3 && q[rest - 1] == '"')
            return PS_ROOT_PROCESS;
        return PS_ROOT_NONE;
    }
    if (strncmp(s, "thread (", 8) == 0) {
        const char *q = s + 8;
        if (!ps_is_xdigit(*q))
            return PS_ROOT_NONE;
        while (ps_is_xdigit(*q) || *q == 'x')
            q++;
        if (*q++ != ')')
            return PS_ROOT_NONE;
        if (*q == '\0' || (q[0] == ':' && q[1] == ' '))
            return PS_ROOT_THREAD;
    }
    return PS_ROOT_NONE;
}

enum ps_root ps_frame_root(const struct ps_intern *in, uint32_t frame_id)
{
    const struct ps_frame_key *k = ps_intern_frame_get(in, frame_id);
    if (!k || k->file || k->line)
        return PS_ROOT_NONE;
    const char *name = ps_intern_str_get(in, k->name);
    return name ? ps_root_kind(name) : PS_ROOT_NONE;
}

int ps_frame_format(const struct ps_intern *in, uint32_t frame_id, char *buf, size_t sz)
{
    const struct ps_frame_key *k = ps_intern_frame_get(in, frame_id);
    if (!k) {
        if (sz)
            buf[0] = '\0';
        return PS_ERANGE;
    }
    const char *name = ps_intern_str_get(in, k->name);
    const char *file = ps_intern_str_get(in, k->file);
    if (!name)
        name = "";
    int n;
    if (!file)
        n = snprintf(buf, sz, "%s", name);
    else if (k->line > 0)
        n = snprintf(buf, sz, "%s (%s:%d)", name, file, (int)k->line);
    else
        n = snprintf(buf, sz, "%s (%s)", name, file);
    return n < 0 ? PS_ERANGE : n;
}

/* Statistics keys of pysample files; a foreign file's key with one of these names is renamed. */
static const char *const ps_stat_keys[] = {
    "pysample", "samples",      "rate",        "duration",       "ticks",        "late_ticks",
    "dropped",  "idle_skipped", "gil_samples", "active_samples", "remote_reads", "sample_time_us",
    "sample_cpu_us", "nogil_samples", "attached_samples", "missed_ticks", "truncated",
    "native", "thread_stop_us",
};

static int ps_is_stat_key(const char *key)
{
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_stat_keys); i++)
        if (strcmp(key, ps_stat_keys[i]) == 0)
            return 1;
    return 0;
}

/* Names of drop reasons in files: the enum names, lower case ("torn", "vanished", ...). */
static const char *const ps_drop_keys[] = {
#define PS_X_DROPKEY(n, s) #n,
    PS_DROPS(PS_X_DROPKEY)
#undef PS_X_DROPKEY
};

static void ps_drop_key(int d, char *buf, size_t sz)
{
    size_t i = 0;
    for (const char *s = ps_drop_keys[d]; *s && i + 1 < sz; s++)
        buf[i++] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    buf[i] = '\0';
}

/* ---- writer ------------------------------------------------------------------------------ */

#define PS_ESC_PARENS 1u

static void ps_esc_byte(struct ps_strbuf *sb, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};
    ps_sb_add(sb, e, 3);
}

static void ps_folded_escape(struct ps_strbuf *sb, const char *s, size_t len, unsigned flags)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int esc = c == '%' || c == ';' || c == '\n' || c == '\r' || c == '\0' ||
                  ((flags & PS_ESC_PARENS) && (c == '(' || c == ')'));
        if (!esc)
            continue;
        ps_sb_add(sb, s + start, i - start);
        ps_esc_byte(sb, c);
        start = i + 1;
    }
    ps_sb_add(sb, s + start, len - start);
}

/* Appends the escaped folded text of one frame. */
static void ps_folded_frame(struct ps_strbuf *sb, const struct ps_intern *in, uint32_t fid)
{
    const struct ps_frame_key *k = ps_intern_frame_get(in, fid);
    const char *name = ps_intern_str_get(in, k->name);
    size_t nlen = ps_intern_str_len(in, k->name);
    if (!name)
        name = "";
    int root = !k->file && !k->line && ps_root_kind(name) != PS_ROOT_NONE;
    ps_folded_escape(sb, name, nlen, root ? 0 : PS_ESC_PARENS);
    const char *file = ps_intern_str_get(in, k->file);
    if (!file)
        return;
    size_t flen = ps_intern_str_len(in, k->file);
    ps_sb_add(sb, " (", 2);
    if (k->line > 0) {
        ps_folded_escape(sb, file, flen, 0);
        ps_sb_printf(sb, ":%d)", (int)k->line);
        return;
    }
    /* Unknown line: a file ending in ":<digits>" must not read back as file + line. */
    size_t d = flen;
    while (d > 0 && ps_is_digit(file[d - 1]))
        d--;
    if (d < flen && d > 0 && file[d - 1] == ':') {
        ps_folded_escape(sb, file, d - 1, 0);
        ps_sb_adds(sb, "%3A");
        ps_folded_escape(sb, file + d, flen - d, 0);
    } else {
        ps_folded_escape(sb, file, flen, 0);
    }
    ps_sb_addc(sb, ')');
}

/* Metadata text on one line, `# key=value`: keys lose ':', '=' and white space; a value with
 * white space (or a leading '"') is quoted, '"' and '\\' escaped, so that no metadata line ends
 * in " <digits>" and folded viewers (flamegraph.pl, speedscope) skip it as a non-stack line. */
static void ps_meta_line(FILE *f, const char *key, const char *val)
{
    fputs("# ", f);
    for (const char *s = key; *s; s++) {
        char c = *s;
        if (c == ':' || c == '=' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
            c == '\f')
            c = '_';
        fputc(c, f);
    }
    fputc('=', f);
    int quote = val[0] == '"' || strpbrk(val, " \t\n\r\v\f") != NULL;
    if (quote)
        fputc('"', f);
    for (const char *s = val; *s; s++) {
        char c = *s == '\n' || *s == '\r' ? ' ' : *s;
        if (quote && (c == '"' || c == '\\'))
            fputc('\\', f);
        fputc(c, f);
    }
    if (quote)
        fputc('"', f);
    fputc('\n', f);
}

static void ps_folded_stats(FILE *f, const struct ps_profile *p)
{
    const struct ps_stats *s = &p->stats;
    fprintf(f, "# samples=%llu\n", (unsigned long long)s->thread_samples);
    fprintf(f, "# rate=%g\n", s->rate_hz);
    fprintf(f, "# duration=%.6f\n", s->duration_s);
    fprintf(f, "# ticks=%llu\n", (unsigned long long)s->ticks);
    fprintf(f, "# late_ticks=%llu\n", (unsigned long long)s->late_ticks);
    if (s->missed_ticks)
        fprintf(f, "# missed_ticks=%llu\n", (unsigned long long)s->missed_ticks);
    if (s->truncated)
        fprintf(f, "# truncated=%llu\n", (unsigned long long)s->truncated);
    fputs("# dropped=", f);
    for (int d = 0; d < PS_DROP__COUNT; d++) {
        char key[32];
        ps_drop_key(d, key, sizeof key);
        fprintf(f, "%s%s=%llu", d ? "," : "", key, (unsigned long long)s->dropped[d]);
    }
    fputc('\n', f);
    fprintf(f, "# idle_skipped=%llu\n", (unsigned long long)s->idle_skipped);
    fprintf(f, "# gil_samples=%llu\n", (unsigned long long)s->gil_samples);
    fprintf(f, "# active_samples=%llu\n", (unsigned long long)s->active_samples);
    if (s->nogil_samples) { /* free-threaded targets without a GIL */
        fprintf(f, "# nogil_samples=%llu\n", (unsigned long long)s->nogil_samples);
        fprintf(f, "# attached_samples=%llu\n", (unsigned long long)s->attached_samples);
    }
    fprintf(f, "# remote_reads=%llu\n", (unsigned long long)s->remote_reads);
    fprintf(f, "# sample_time_us=%.3f/%.3f/%.3f\n", s->sample_ns_min / 1e3,
            s->sample_ns_median / 1e3, s->sample_ns_max / 1e3);
    fprintf(f, "# sample_cpu_us=%.3f/%.3f/%.3f\n", s->sample_cpu_ns_min / 1e3,
            s->sample_cpu_ns_median / 1e3, s->sample_cpu_ns_max / 1e3);
    if (s->native_samples || s->native_failed) {
        fprintf(f, "# native=merged=%llu,failed=%llu,mismatch=%llu\n",
                (unsigned long long)s->native_samples, (unsigned long long)s->native_failed,
                (unsigned long long)s->native_mismatch);
        fprintf(f, "# thread_stop_us=%.3f/%.3f/%.3f\n", s->stop_ns_min / 1e3,
                s->stop_ns_median / 1e3, s->stop_ns_max / 1e3);
    }
}

struct ps_fline {
    uint64_t count;
    size_t off, len;
};

static int ps_fline_cmp(const void *a, const void *b, void *ctx)
{
    const struct ps_fline *x = a, *y = b;
    const char *text = ctx;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    size_t n = PS_MIN(x->len, y->len);
    int c = memcmp(text + x->off, text + y->off, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int ps_folded_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;

    ps_meta_line(f, "pysample", PS_VERSION);
    for (int i = 0; i < p->meta.n; i++) {
        const char *key = p->meta.key[i];
        if (strcmp(key, "pysample") == 0 || (p->has_stats && ps_is_stat_key(key)) ||
            (p->interval_s > 0 && strcmp(key, "interval") == 0))
            continue;
        ps_meta_line(f, key, p->meta.val[i]);
    }
    if (p->interval_s > 0)
        fprintf(f, "# interval=%.9g\n", p->interval_s * 1e6);
    if (p->has_stats)
        ps_folded_stats(f, p);

    /* Escaped text of every frame, once. */
    uint32_t nframes = ps_intern_nframes(in);
    size_t *foff = ps_xmalloc(((size_t)nframes + 2) * sizeof *foff);
    struct ps_strbuf ft, lt;
    ps_sb_init(&ft);
    ps_sb_init(&lt);
    ps_sb_adds(&ft, ""); /* never NULL, even when every text is empty */
    ps_sb_adds(&lt, "");
    for (uint32_t id = 1; id <= nframes; id++) {
        foff[id] = ft.len;
        ps_folded_frame(&ft, in, id);
    }
    foff[nframes + 1] = ft.len;

    /* One line of text per counted stack, then sort and print. */
    uint32_t nstacks = ps_intern_nstacks(in);
    struct ps_fline *lines = ps_xmalloc(((size_t)nstacks + 1) * sizeof *lines);
    size_t nlines = 0;
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        if (!p->counts[sid])
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        size_t off = lt.len;
        for (uint32_t i = 0; i < n; i++) {
            const char *t = ft.buf + foff[fr[i]];
            size_t tlen = foff[fr[i] + 1] - foff[fr[i]];
            if (i)
                ps_sb_addc(&lt, ';');
            else if (tlen && t[0] == '#') {
                ps_sb_adds(&lt, "%23");
                t++;
                tlen--;
            }
            ps_sb_add(&lt, t, tlen);
        }
        lines[nlines++] = (struct ps_fline){p->counts[sid], off, lt.len - off};
    }
    qsort_r(lines, nlines, sizeof *lines, ps_fline_cmp, lt.buf);
    for (size_t i = 0; i < nlines; i++) {
        fwrite(lt.buf + lines[i].off, 1, lines[i].len, f);
        fprintf(f, " %llu\n", (unsigned long long)lines[i].count);
    }

    free(foff);
    free(lines);
    ps_sb_release(&ft);
    ps_sb_release(&lt);
    return ferror(f) ? PS_EIO : 0;
}

/* ---- reader ------------------------------------------------------------------------------ */

/* Longest line read, so that memory stays bounded whatever the input. Real lines are far
 * shorter: a 4096-frame stack of ordinary names and files is well under 1 MiB. */
#define PS_FOLDED_LINE_MAX ((size_t)64 << 20)
#define PS_FOLDED_LINE_MAX_TEXT "64 MiB"

enum ps_austin_mode { PS_AUSTIN_TIME, PS_AUSTIN_MEMORY, PS_AUSTIN_FULL };

struct ps_reader {
    const char *name;
    struct ps_profile *p;
    unsigned long long lineno;
    int pysample;             /* after a "# pysample:" line: decode escapes, read statistics */
    double austin_interval_us;
    enum ps_austin_mode austin_mode;
    int multiprocess;
    uint32_t *fr;
    uint32_t nfr, fr_cap;
    struct ps_strbuf name_sb, file_sb, fix_sb;
};

static int ps_rd_error(struct ps_reader *r, const char *why)
{
    ps_err_set("%s:%llu: %s", r->name, r->lineno, why);
    return PS_EFORMAT;
}

/* Strict decimal: digits only, fits in uint64. 0, or -1 not a number, -2 overflow. */
static int ps_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (!len)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!ps_is_digit(s[i]))
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int ps_parse_double(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int ps_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies s[0..len) into sb, decoding %XX when the file is pysample's (lenient: a '%' not
 * followed by two hex digits stays as it is). */
static void ps_rd_text(struct ps_reader *r, struct ps_strbuf *sb, const char *s, size_t len)
{
    ps_sb_reset(sb);
    if (!r->pysample) {
        ps_sb_add(sb, s, len);
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i + 2 < len; i++) {
        if (s[i] != '%')
            continue;
        int hi = ps_hexval(s[i + 1]), lo = ps_hexval(s[i + 2]);
        if (hi < 0 || lo < 0)
            continue;
        ps_sb_add(sb, s + start, i - start);
        ps_sb_addc(sb, (char)(hi << 4 | lo));
        start = i + 3;
        i += 2;
    }
    ps_sb_add(sb, s + start, len - start);
}

/* Interns the text in sb, made valid UTF-8 first (so no output copies bad bytes). */
static uint32_t ps_rd_intern(struct ps_reader *r, struct ps_strbuf *sb)
{
    if (sb->len && !ps_utf8_valid(sb->buf, sb->len)) {
        ps_sb_reset(&r->fix_sb);
        ps_sb_add_utf8(&r->fix_sb, sb->buf, sb->len);
        return ps_intern_str(r->p->in, r->fix_sb.buf, r->fix_sb.len);
    }
    return ps_intern_str(r->p->in, sb->buf ? sb->buf : "", sb->len);
}

/* Parses a line number made of digits only, 0..INT32_MAX; -1 when it is not one. */
static int32_t ps_rd_lineno(const char *s, size_t len)
{
    uint64_t v;
    if (ps_parse_u64(s, len, &v) || v > INT32_MAX)
        return -1;
    return (int32_t)v;
}

static uint32_t ps_rd_frame_plain(struct ps_reader *r, const char *s, size_t len)
{
    ps_rd_text(r, &r->name_sb, s, len);
    return ps_intern_frame(r->p->in, ps_rd_intern(r, &r->name_sb), 0, 0);
}

/* `file:func:line` (Austin, Tachyon, pyflame) -> func (file:line); 0 when it is not that. */
static uint32_t ps_rd_frame_colon(struct ps_reader *r, const char *s, size_t len)
{
    const char *c2 = memrchr(s, ':', len);
    if (!c2 || c2 == s)
        return 0;
    int32_t line = ps_rd_lineno(c2 + 1, len - (size_t)(c2 + 1 - s));
    if (line < 0)
        return 0;
    const char *c1 = memrchr(s, ':', (size_t)(c2 - s));
    if (!c1 || c1 == s || c1 + 1 == c2)
        return 0;
    ps_rd_text(r, &r->file_sb, s, (size_t)(c1 - s));
    ps_rd_text(r, &r->name_sb, c1 + 1, (size_t)(c2 - c1 - 1));
    struct ps_intern *in = r->p->in;
    return ps_intern_frame(in, ps_rd_intern(r, &r->name_sb), ps_rd_intern(r, &r->file_sb), line);
}

/* `func (file:line)` / `func (file)` -> frame; 0 when it is not that. */
static uint32_t ps_rd_frame_paren(struct ps_reader *r, const char *s, size_t len)
{
    if (len < 3 || s[len - 1] != ')')
        return 0;
    const char *open = memmem(s, len, " (", 2);
    if (!open)
        return 0;
    const char *inner = open + 2, *end = s + len - 1;
    int32_t line = 0;
    const char *fend = end;
    const char *colon = memrchr(inner, ':', (size_t)(end - inner));
    if (colon) {
        line = ps_rd_lineno(colon + 1, (size_t)(end - colon - 1));
        if (line >= 0)
            fend = colon;
        else
            line = 0;
    }
    ps_rd_text(r, &r->name_sb, s, (size_t)(open - s));
    ps_rd_text(r, &r->file_sb, inner, (size_t)(fend - inner));
    struct ps_intern *in = r->p->in;
    return ps_intern_frame(in, ps_rd_intern(r, &r->name_sb), ps_rd_intern(r, &r->file_sb), line);
}

static void ps_rd_push(struct ps_reader *r, uint32_t fid)
{
    if (r->nfr == r->fr_cap) {
        r->fr_cap = r->fr_cap ? r->fr_cap * 2 : 64;
        r->fr = ps_xrealloc(r->fr, (size_t)r->fr_cap * sizeof *r->fr);
    }
    r->fr[r->nfr++] = fid;
}

/* Splits "a;b;c" into frames; `s` is modified (separators become NUL). */
static void ps_rd_frames(struct ps_reader *r, char *s, size_t len, int colon_only)
{
    char *end = s + len;
    for (char *f = s;;) {
        char *semi = memchr(f, ';', (size_t)(end - f));
        char *fe = semi ? semi : end;
        size_t flen = (size_t)(fe - f);
        char saved = *fe;
        *fe = '\0';
        uint32_t fid = 0;
        if (colon_only) {
            fid = ps_rd_frame_colon(r, f, flen);
        } else if (ps_root_kind(f) != PS_ROOT_NONE) {
            fid = ps_rd_frame_plain(r, f, flen);
        } else {
            fid = ps_rd_frame_paren(r, f, flen);
            if (!fid && !r->pysample)
                fid = ps_rd_frame_colon(r, f, flen);
        }
        if (!fid)
            fid = ps_rd_frame_plain(r, f, flen);
        *fe = saved;
        ps_rd_push(r, fid);
        if (!semi)
            break;
        f = semi + 1;
    }
}

static int ps_is_austin_head(const char *s, size_t len, size_t *head_len, uint64_t *pid)
{
    /* P<pid>;T<iid>:<tid> or P<pid>;T<tid> (tid in hex on Windows). */
    if (len < 4 || s[0] != 'P' || !ps_is_digit(s[1]))
        return 0;
    size_t i = 1;
    while (i < len && ps_is_digit(s[i]))
        i++;
    if (ps_parse_u64(s + 1, i - 1, pid))
        *pid = 0;
    if (i + 2 > len || s[i] != ';' || s[i + 1] != 'T')
        return 0;
    i += 2;
    size_t t0 = i;
    while (i < len && (ps_is_xdigit(s[i]) || s[i] == ':'))
        i++;
    if (i == t0 || (i < len && s[i] != ';'))
        return 0;
    *head_len = i;
    return 1;
}

static int ps_is_tachyon_head(const char *s, size_t len, size_t *head_len)
{
    if (len < 5 || memcmp(s, "tid:", 4) != 0 || !ps_is_digit(s[4]))
        return 0;
    size_t i = 4;
    while (i < len && ps_is_digit(s[i]))
        i++;
    if (i < len && s[i] != ';')
        return 0;
    *head_len = i;
    return 1;
}

/* One stack line (no metadata, no blank). */
static int ps_rd_stack(struct ps_reader *r, char *line, size_t len)
{
    char *sp = memrchr(line, ' ', len);
    if (!sp || sp + 1 == line + len)
        return ps_rd_error(r, "missing sample count");
    char *cnt = sp + 1;
    size_t clen = (size_t)(line + len - cnt);
    size_t tlen = (size_t)(sp - line);

    size_t head = 0;
    uint64_t pid = 0;
    int austin = 0, tachyon = 0;
    if (!r->pysample) {
        austin = ps_is_austin_head(line, tlen, &head, &pid);
        if (!austin)
            tachyon = ps_is_tachyon_head(line, tlen, &head);
    }

    if (cnt[0] == '-')
        return ps_rd_error(r, "negative sample count");
    if (austin && r->austin_mode == PS_AUSTIN_FULL) {
        char *comma = memchr(cnt, ',', clen);
        if (comma)
            clen = (size_t)(comma - cnt);
    }
    uint64_t count;
    int rc = ps_parse_u64(cnt, clen, &count);
    if (rc == -2)
        return ps_rd_error(r, "sample count too large");
    if (rc)
        return ps_rd_error(r, "sample count is not a non-negative integer");
    if (austin && r->austin_mode != PS_AUSTIN_MEMORY && r->austin_interval_us > 0 && count) {
        double c = (double)count / r->austin_interval_us + 0.5; /* round to nearest */
        count = c < 1 ? 1 : c >= 1.8e19 ? UINT64_MAX : (uint64_t)c;
    }

    r->nfr = 0;
    if (austin && r->multiprocess && pid) {
        char root[32];
        int n = snprintf(root, sizeof root, "process %llu", (unsigned long long)pid);
        uint32_t fid = ps_intern_frame(r->p->in, ps_intern_str(r->p->in, root, (size_t)n), 0, 0);
        ps_rd_push(r, fid);
    }
    char *text = line;
    if (austin || tachyon) {
        text = line + head;
        tlen -= head;
        if (tlen) {
            text++; /* the ';' after the head */
            tlen--;
            ps_rd_frames(r, text, tlen, 1);
        }
    } else if (tlen) {
        ps_rd_frames(r, text, tlen, 0);
    }

    struct ps_profile *p = r->p;
    uint32_t sid = ps_intern_stack(p->in, r->fr, r->nfr);
    uint64_t have = sid < p->counts_cap ? p->counts[sid] : 0;
    if (count > UINT64_MAX - p->total || count > UINT64_MAX - have)
        return ps_rd_error(r, "sample counts overflow the total");
    ps_profile_add(p, sid, count);
    return 0;
}

static int ps_add_u64(uint64_t *dst, uint64_t v)
{
    if (v > UINT64_MAX - *dst)
        return -1;
    *dst += v;
    return 0;
}

/* Reads "name=N,name=N,..." into the counters named (unknown names are skipped). 0 ok, -1 bad
 * value. */
static int ps_rd_counts(const char *val, const char *const *names, uint64_t *const *dst, int n)
{
    const char *q = val;
    while (*q) {
        const char *eq = strchr(q, '=');
        if (!eq)
            return -1;
        const char *end = strchr(eq, ',');
        if (!end)
            end = eq + strlen(eq);
        uint64_t u;
        if (ps_parse_u64(eq + 1, (size_t)(end - eq - 1), &u))
            return -1;
        for (int k = 0; k < n; k++)
            if (strlen(names[k]) == (size_t)(eq - q) && memcmp(names[k], q, (size_t)(eq - q)) == 0 &&
                ps_add_u64(dst[k], u))
                return -1;
        q = *end ? end + 1 : end;
    }
    return 0;
}

/* Reads a pysample statistics value. 0 ok, -1 bad value. */
static int ps_rd_stat(struct ps_reader *r, const char *key, const char *val)
{
    struct ps_profile *p = r->p;
    struct ps_stats *s = &p->stats;
    uint64_t u;
    double d;
    struct {
        const char *key;
        uint64_t *dst;
    } counters[] = {
        {"samples", &s->thread_samples},   {"ticks", &s->ticks},
        {"late_ticks", &s->late_ticks},     {"idle_skipped", &s->idle_skipped},
        {"gil_samples", &s->gil_samples},   {"active_samples", &s->active_samples},
        {"remote_reads", &s->remote_reads}, {"nogil_samples", &s->nogil_samples},
        {"attached_samples", &s->attached_samples},
        {"missed_ticks", &s->missed_ticks}, {"truncated", &s->truncated},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(counters); i++) {
        if (strcmp(key, counters[i].key) != 0)
            continue;
        if (ps_parse_u64(val, strlen(val), &u) || ps_add_u64(counters[i].dst, u))
            return -1;
        return 0;
    }
    if (strcmp(key, "rate") == 0) {
        if (ps_parse_double(val, &d) || (d > 0 && !isfinite(1.0 / d)))
            return -1;
        if (s->rate_hz <= 0)
            s->rate_hz = d;
        if (p->interval_s <= 0 && d > 0)
            p->interval_s = 1.0 / d;
        return 0;
    }
    if (strcmp(key, "duration") == 0) {
        if (ps_parse_double(val, &d))
            return -1;
        s->duration_s += d;
        return 0;
    }
    if (strcmp(key, "dropped") == 0) {
        char names[PS_DROP__COUNT][32];
        const char *np[PS_DROP__COUNT];
        uint64_t *dp[PS_DROP__COUNT];
        for (int k = 0; k < PS_DROP__COUNT; k++) {
            ps_drop_key(k, names[k], sizeof names[k]);
            np[k] = names[k];
            dp[k] = &s->dropped[k];
        }
        return ps_rd_counts(val, np, dp, PS_DROP__COUNT);
    }
    if (strcmp(key, "native") == 0) {
        const char *np[] = {"merged", "failed", "mismatch"};
        uint64_t *dp[] = {&s->native_samples, &s->native_failed, &s->native_mismatch};
        return ps_rd_counts(val, np, dp, (int)PS_ARRAY_LEN(np));
    }
    uint64_t *dmin = NULL, *dmed = NULL, *dmax = NULL;
    if (strcmp(key, "sample_time_us") == 0) {
        dmin = &s->sample_ns_min, dmed = &s->sample_ns_median, dmax = &s->sample_ns_max;
    } else if (strcmp(key, "sample_cpu_us") == 0) {
        dmin = &s->sample_cpu_ns_min, dmed = &s->sample_cpu_ns_median,
        dmax = &s->sample_cpu_ns_max;
    } else if (strcmp(key, "thread_stop_us") == 0) {
        dmin = &s->stop_ns_min, dmed = &s->stop_ns_median, dmax = &s->stop_ns_max;
    }
    if (dmin) { /* min/median/max in microseconds */
        double v[3];
        const char *q = val;
        for (int i = 0; i < 3; i++) {
            char part[64];
            const char *end = strchr(q, '/');
            if (!end)
                end = q + strlen(q);
            if ((i < 2) != (*end == '/') || (size_t)(end - q) >= sizeof part)
                return -1;
            memcpy(part, q, (size_t)(end - q));
            part[end - q] = '\0';
            if (ps_parse_double(part, &v[i]) || v[i] > 1.8e13)
                return -1;
            q = *end ? end + 1 : end;
        }
        uint64_t mn = (uint64_t)(v[0] * 1e3 + 0.5), md = (uint64_t)(v[1] * 1e3 + 0.5),
                 mx = (uint64_t)(v[2] * 1e3 + 0.5);
        /* older writers capped their histograms (a median below the minimum): kept readable,
         * brought back to min <= median <= max */
        mx = PS_MAX(mx, mn);
        md = PS_MIN(PS_MAX(md, mn), mx);
        int first = !*dmax && !*dmin && !*dmed;
        *dmin = first ? mn : PS_MIN(*dmin, mn);
        *dmed = first ? md : PS_MAX(*dmed, md);
        *dmax = first ? mx : PS_MAX(*dmax, mx);
        return 0;
    }
    return 1; /* not a statistics key */
}

/* Undoes the quoting of a `# key="value"` line in place. */
static void ps_rd_unquote(char *val)
{
    size_t n = strlen(val);
    if (n < 2 || val[0] != '"' || val[n - 1] != '"')
        return;
    char *w = val;
    for (size_t i = 1; i + 1 < n; i++) {
        if (val[i] == '\\' && i + 2 < n)
            i++;
        *w++ = val[i];
    }
    *w = '\0';
}

/* "# key=value" line, or the older "# key: value" (line starts with "# "). */
static int ps_rd_meta(struct ps_reader *r, char *line, size_t len)
{
    char *key = line + 2;
    (void)len; /* NUL-terminated */
    size_t klen = strcspn(key, ":=");
    char *sep = key + klen;
    int eq = *sep == '=';
    if (!klen || !*sep || (eq && strcspn(key, " \t") < klen))
        return 0; /* a comment */
    *sep = '\0';
    char *val = sep + 1;
    if (eq)
        ps_rd_unquote(val);
    else if (*val == ' ')
        val++;
    if (!ps_utf8_valid(key, strlen(key)) || !ps_utf8_valid(val, strlen(val))) {
        ps_sb_reset(&r->fix_sb);
        ps_sb_add_utf8(&r->fix_sb, key, strlen(key));
        ps_sb_addc(&r->fix_sb, '\0');
        size_t voff = r->fix_sb.len;
        ps_sb_add_utf8(&r->fix_sb, val, strlen(val));
        ps_sb_addc(&r->fix_sb, '\0');
        key = r->fix_sb.buf;
        val = r->fix_sb.buf + voff;
    }
    struct ps_profile *p = r->p;
    double d;

    if (strcmp(key, "pysample") == 0) {
        r->pysample = 1;
        return 0;
    }
    if (r->pysample && strcmp(key, "interval") == 0) {
        if (ps_parse_double(val, &d) || d <= 0)
            return ps_rd_error(r, "bad value for 'interval'");
        if (p->interval_s <= 0)
            p->interval_s = d / 1e6;
        return 0;
    }
    if (r->pysample) {
        int rc = ps_rd_stat(r, key, val);
        if (rc < 0) {
            char why[96];
            snprintf(why, sizeof why, "bad value for '%s'", key);
            return ps_rd_error(r, why);
        }
        if (rc == 0) {
            p->has_stats = 1;
            return 0;
        }
        ps_meta_set(&p->meta, key, val);
        return 0;
    }

    /* Foreign metadata: what Austin tells us about its metric, the rest kept as is. */
    if (strcmp(key, "interval") == 0 && ps_parse_double(val, &d) == 0 && d > 0) {
        r->austin_interval_us = d;
        if (p->interval_s <= 0)
            p->interval_s = d / 1e6;
    } else if (strcmp(key, "mode") == 0) {
        r->austin_mode = strcmp(val, "memory") == 0 ? PS_AUSTIN_MEMORY
                         : strcmp(val, "full") == 0 ? PS_AUSTIN_FULL
                                                    : PS_AUSTIN_TIME;
    } else if (strcmp(key, "multiprocess") == 0) {
        r->multiprocess = strcmp(val, "on") == 0;
    }
    if (ps_is_stat_key(key)) {
        char k2[256];
        snprintf(k2, sizeof k2, "source_%s", key);
        ps_meta_set(&p->meta, k2, val);
    } else {
        ps_meta_set(&p->meta, key, val);
    }
    return 0;
}

/* getline() with a ceiling: one line (through '\n' or the end of the input) into *buf, NUL
 * appended. Returns its length; -1 at the end of the input (or on a read error, see ferror);
 * -2 when the line is longer than `max` bytes, having read only that much of it. Without the
 * ceiling one garbage file without a newline would be held in memory whole. */
static ssize_t ps_rd_getline(FILE *f, char **buf, size_t *cap, size_t max)
{
    size_t len = 0;
    for (;;) {
        if (len + 2 > *cap) {
            if (*cap >= max + 2)
                return -2;
            size_t nc = *cap ? *cap * 2 : 4096;
            *cap = nc > max + 2 ? max + 2 : nc;
            *buf = ps_xrealloc(*buf, *cap);
        }
        int c = getc_unlocked(f);
        if (c == EOF)
            break;
        (*buf)[len++] = (char)c;
        if (c == '\n')
            break;
    }
    if (!len)
        return -1;
    (*buf)[len] = '\0';
    return (ssize_t)len;
}

int ps_folded_read(FILE *f, const char *name, struct ps_profile *p)
{
    struct ps_reader r = {.name = name ? name : "<input>", .p = p};
    ps_sb_init(&r.name_sb);
    ps_sb_init(&r.file_sb);
    ps_sb_init(&r.fix_sb);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    errno = 0;
    while ((got = ps_rd_getline(f, &line, &cap, PS_FOLDED_LINE_MAX)) != -1) {
        r.lineno++;
        if (got == -2) {
            rc = ps_rd_error(&r, "line longer than " PS_FOLDED_LINE_MAX_TEXT);
            break;
        }
        size_t len = (size_t)got;
        if (memchr(line, '\0', len)) {
            rc = ps_rd_error(&r, "NUL byte in line");
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            len--;
        line[len] = '\0';
        if (!len)
            continue;
        if (line[0] == '#' && (len == 1 || line[1] == ' ')) {
            rc = len > 2 ? ps_rd_meta(&r, line, len) : 0;
        } else {
            rc = ps_rd_stack(&r, line, len);
        }
        if (rc)
            break;
        errno = 0;
    }
    if (!rc && ferror(f)) {
        ps_err_set("%s: read error: %s", r.name, strerror(errno ? errno : EIO));
        rc = PS_EIO;
    }
    free(line);
    free(r.fr);
    ps_sb_release(&r.name_sb);
    ps_sb_release(&r.file_sb);
    ps_sb_release(&r.fix_sb);
    return rc;
}
