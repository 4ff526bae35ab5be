/* ps_code_cache.h — the walker's cache of decoded code objects, keyed by address (internal to
 * src/python/; see code.c).
 */
#ifndef PS_CODE_CACHE_H
#define PS_CODE_CACHE_H

#include <stdint.h>

#include "ps_python.h"

#define PS_CODE_CACHE_MAX (1u << 16) /* entries; beyond this the cache starts over */

struct ps_code_cache {
    struct ps_code **v;  /* open addressing over pointers: entries never move while cached */
    uint32_t cap, n;     /* cap is a power of two */
    uint32_t generation; /* bumped on every removal or clear */
};

void ps_code_cache_init(struct ps_code_cache *c);
void ps_code_cache_release(struct ps_code_cache *c);
void ps_code_cache_clear(struct ps_code_cache *c);
struct ps_code *ps_code_cache_find(struct ps_code_cache *c, uint64_t addr);
void ps_code_cache_remove(struct ps_code_cache *c, struct ps_code *e);
/* Clears the cache when it holds PS_CODE_CACHE_MAX entries. Call between snapshots only: a
 * snapshot's frames point at entries. */
void ps_code_cache_trim(struct ps_code_cache *c);

/* Slow path: read and decode the code object at addr, replacing any cached entry. */
struct ps_code *ps_code_load(struct ps_code_cache *c, struct ps_mem *mem,
                             const struct ps_py_offsets *o, uint64_t code_type, uint64_t addr,
                             int *err);

/* The bytes that validate a cached entry: (offset, length) within the code object, or 0 when
 * the version needs no per-object check (3.14+ uses the generation counter). */
int ps_code_key_span(const struct ps_py_offsets *o, int32_t *off, uint32_t *len);
int ps_code_key_matches(const struct ps_py_offsets *o, const struct ps_code *e,
                        const uint8_t *span);

/* Free-threaded 3.14+: the start of the bytecode copy that thread-local bytecode index `idx`
 * runs (co_tlbc->entries[idx]), cached per code object under tlbc generation `gen`; index 0,
 * a missing array or a missing entry give e->code_start (the code object's own bytecode).
 * Up to two remote reads on a miss. Returns 0 or a negative PS_E* (start is then code_start). */
int ps_code_tlbc_start(struct ps_code *e, struct ps_mem *mem, const struct ps_py_offsets *o,
                       int32_t idx, uint32_t gen, uint64_t *start);

/* Line of an instruction: instr is f_lasti (<= 3.10) or the instruction pointer (3.11+).
 * Returns the line, 0 if unknown, -2 if instr does not belong to this code object. */
int32_t ps_code_line(const struct ps_py_offsets *o, struct ps_code *e, int64_t instr);
int32_t ps_code_line_uncached(const struct ps_py_offsets *o, const struct ps_code *e,
                              int64_t instr);

/* Reads a str object (PEP 393 or 2.7 str) as UTF-8 into out (outsz bytes). A string longer
 * than max_chars characters is cut to its first max_chars, followed by "..." when outsz has
 * room; a length over 2^30 is PS_ECORRUPT. Returns the bytes written or a negative PS_E*. */
int ps_py_read_str(struct ps_mem *mem, const struct ps_py_offsets *o, uint64_t addr, char *out,
                   size_t outsz, size_t max_chars);

#endif
