/* ps_util.h — error codes, allocation, logging, clocks and small helpers shared by every layer.
 *
 * Contract: functions across pysample return 0 (or a non-negative count) on success and a
 * negative PS_E* code on failure. The code is reported once, at the top (cmd/ or main.c),
 * with ps_strerror() and any detail the lower layer stored with ps_err_set().
 */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* X-macro list of error codes: name, message. PS_E<name> is -(its 1-based position). */
#define PS_ERRORS(X)                                                              \
    X(NOMEM, "out of memory")                                                     \
    X(NOPROC, "no such process")                                                  \
    X(PERM, "permission denied")                                                  \
    X(ZOMBIE, "process is a zombie or exiting")                                   \
    X(NOTPY, "not a Python process")                                              \
    X(VERSION, "unsupported Python version")                                      \
    X(FAULT, "memory read failed (address not mapped)")                          \
    X(SHORT, "short memory read")                                                 \
    X(IO, "input/output error")                                                   \
    X(ELF, "bad or unreadable ELF file")                                          \
    X(NOSYM, "symbol not found")                                                  \
    X(CORRUPT, "inconsistent data read from target")                              \
    X(TORN, "torn read: target changed during the walk")                          \
    X(DEPTH, "stack deeper than the limit")                                       \
    X(RANGE, "value out of range")                                                \
    X(USAGE, "usage error")                                                       \
    X(FORMAT, "malformed input")                                                  \
    X(NOTSUP, "not supported")                                                    \
    X(GONE, "thread vanished")                                                    \
    X(INTERRUPTED, "interrupted")                                                 \
    X(TIMEOUT, "timed out")

enum ps_err {
    PS_OK = 0,
#define PS_X_ENUM(name, msg) PS_E##name##_IDX,
    PS_ERRORS(PS_X_ENUM)
#undef PS_X_ENUM
    PS_E__COUNT
};
#define PS_X_CODE(name, msg) enum { PS_E##name = -PS_E##name##_IDX };
PS_ERRORS(PS_X_CODE)
#undef PS_X_CODE

const char *ps_strerror(int code);
/* Map an errno value from a syscall on the target to a PS_E* code. */
int ps_err_from_errno(int e);

/* Optional detail for the last error (one line, no trailing newline); kept per thread.
 * ps_err_set may be passed ps_err_detail() as an argument, to add context to it. */
void ps_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ps_err_detail(void);
void ps_err_clear(void);

/* Allocation that aborts with a message on exhaustion (the profiler's own memory is bounded). */
void *ps_xmalloc(size_t n);
void *ps_xcalloc(size_t n, size_t sz);
void *ps_xrealloc(void *p, size_t n);
/* Alignment of a local copy of remote memory. The kernel's copy runs at half speed when the
 * destination sits 8 to 31 bytes past the source's offset in its page (measured here: 16 KiB
 * in 9-10 us instead of 4.4-5 us), which is where glibc puts large blocks (16 bytes past a
 * page) and where data-stack chunks start (on a page). Copies are therefore placed at
 * buf + (addr % 64) in a 64-byte-aligned buffer: the two offsets then differ by a multiple
 * of 64, never by 8 to 31. */
#define PS_COPY_ALIGN 64
#define PS_COPY_SHIFT(addr) ((size_t)((addr) & (PS_COPY_ALIGN - 1)))
/* A PS_COPY_ALIGN-aligned block of n bytes; the old block p is freed, not copied. */
void *ps_xalloc_aligned(void *p, size_t n);
char *ps_xstrdup(const char *s);
char *ps_xstrndup(const char *s, size_t n);

/* Verbosity: 0 quiet, 1 -v, 2 -vv. Messages go to stderr prefixed with "pysample: ". */
extern int ps_verbose;
void ps_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic nanoseconds. */
uint64_t ps_now_ns(void);
/* CPU time of the calling thread, ns. */
uint64_t ps_thread_cpu_ns(void);

/* Growable byte buffer. */
struct ps_strbuf {
    char *buf;
    size_t len, cap;
};
void ps_sb_init(struct ps_strbuf *sb);
void ps_sb_release(struct ps_strbuf *sb);
void ps_sb_reset(struct ps_strbuf *sb);
void ps_sb_add(struct ps_strbuf *sb, const void *data, size_t n);
void ps_sb_adds(struct ps_strbuf *sb, const char *s);
void ps_sb_addc(struct ps_strbuf *sb, char c);
void ps_sb_printf(struct ps_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (with quotes), escaping as needed; invalid UTF-8 bytes
 * become U+FFFD. */
void ps_sb_add_json_str(struct ps_strbuf *sb, const char *s);

/* Read a whole small file (e.g. under /proc) into a NUL-terminated heap buffer.
 * Returns length or a negative PS_E* code. */
long ps_read_file(const char *path, char **out, size_t max);

#define PS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PS_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
