/* ps_pytext.h — pure decoders for CPython data copied out of a target: line tables and strings.
 *
 * No memory access here: callers copy the bytes, these functions interpret them. Every decoder
 * is bounded by its input length and never reads past it (they are fuzzed).
 */
#ifndef PS_PYTEXT_H
#define PS_PYTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "ps_pyoffsets.h"

/* Line number for an instruction.
 * `offset` is: a byte offset into co_code for LNOTAB27/LNOTAB/LINETABLE310 (callers scale 3.10's
 * f_lasti by 2), and a code-unit index for LOCATIONS (3.11+). A negative offset (frame not
 * started) returns firstlineno. Returns the line, or -1 when the table says "no line". */
int ps_line_for_offset(enum ps_line_format fmt, const uint8_t *table, size_t len,
                       int firstlineno, int64_t offset);

/* A decoded line table: sorted, non-overlapping ranges [start, end) -> line, in the same
 * offset unit as above. Lets the code cache answer each sample with one binary search. */
struct ps_line_range {
    uint32_t start, end;
    int32_t line; /* -1: no line */
};
/* Decodes the whole table. Returns the number of ranges written (<= max) or a negative PS_E*
 * code (PS_EFORMAT for a malformed table). */
int ps_linetable_decode(enum ps_line_format fmt, const uint8_t *table, size_t len,
                        int firstlineno, struct ps_line_range *out, int max);
/* Binary search in decoded ranges; firstlineno for offset < 0; -1 when not covered. */
int ps_linetable_lookup(const struct ps_line_range *r, int n, int firstlineno, int64_t offset);

/* String decoding to UTF-8 (NUL-terminated, at most outsz-1 bytes, never splitting a character;
 * truncated strings end in "..."). Returns bytes written (excluding NUL) or negative PS_E*.
 * kind: 1 (latin-1), 2 (UCS-2 LE), 4 (UCS-4 LE); `n` is the number of code points in `data`.
 * Lone surrogates and invalid code points are written as U+FFFD. */
int ps_utf8_from_kind(int kind, const void *data, size_t n, char *out, size_t outsz);

/* Parse a PEP 393 string header (the first str_compact_size bytes of the object, as copied).
 * Gives kind, code-point length, and where the character data is: either at object address +
 * *data_off (compact) or at the pointer stored in the header (legacy: *data_off = -1 and
 * *data_ptr set). Returns 0 or PS_ECORRUPT (bad kind, not ready, length over max_len). */
int ps_str_header(const struct ps_py_offsets *o, const uint8_t *hdr, size_t hdrlen, size_t max_len,
                  int *kind, size_t *length, int64_t *data_off, uint64_t *data_ptr);

/* Python 2.7 str: bytes are copied as-is; invalid UTF-8 sequences become U+FFFD. */
int ps_utf8_sanitize(const uint8_t *data, size_t n, char *out, size_t outsz);

#endif
