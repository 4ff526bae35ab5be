/* ps_debugoff.h — _Py_DebugOffsets (3.13+): parse, validate and apply to a layout table.
 *
 * The block sits at the very start of _PyRuntime (cookie "xdebugpy"). pysample reads it from the
 * live target (or from the ELF file's initialized data), validates it (cookie, version, sizes,
 * every field offset within its struct size) and overlays the fields it covers onto a copy of the
 * built-in table, logging disagreements. Each known minor (3.13, 3.14, 3.15) has its own table
 * of field positions, since the block does not describe its own layout. A newer minor (3.16+)
 * runs on the debug offsets alone, starting from the newest built-in table, only when one of the
 * known position tables passes every check, including the stricter field-order ones; otherwise
 * it is refused (PS_EVERSION) rather than misread.
 */
#ifndef PS_DEBUGOFF_H
#define PS_DEBUGOFF_H

#include <stddef.h>
#include <stdint.h>

#include "ps_pyoffsets.h"

#define PS_DEBUGOFF_COOKIE "xdebugpy"
#define PS_DEBUGOFF_MAX_BYTES 4096 /* read this much from _PyRuntime; the block is <= ~1 KiB */

/* The fields pysample uses, decoded from the raw block (whatever its minor-version layout). */
struct ps_debugoff {
    uint64_t version;          /* PY_VERSION_HEX */
    uint64_t free_threaded;
    uint64_t rt_size, rt_finalizing, rt_interp_head;
    uint64_t is_size, is_id, is_next, is_threads_head, is_threads_main, is_imports_modules;
    uint64_t is_ceval_gil, is_gil_runtime_state, is_gil_enabled, is_gil_locked, is_gil_holder;
    uint64_t is_code_generation;         /* 0 when absent (3.13) */
    uint64_t is_tlbc_generation;         /* 0 unless free-threaded 3.14+ */
    uint64_t ts_size, ts_prev, ts_next, ts_interp, ts_current_frame, ts_thread_id,
        ts_native_thread_id, ts_datastack_chunk, ts_status;
    uint64_t ts_base_frame, ts_holds_gil; /* 0 when absent (before 3.15) */
    uint64_t if_size, if_previous, if_executable, if_instr_ptr, if_localsplus, if_owner;
    uint64_t if_tlbc_index;              /* 0 unless free-threaded 3.14+ */
    uint64_t co_size, co_filename, co_name, co_qualname, co_linetable, co_firstlineno,
        co_argcount, co_localsplusnames, co_localspluskinds, co_code_adaptive;
    uint64_t co_tlbc;                    /* 0 unless free-threaded 3.14+ */
    uint64_t ob_size, ob_type;
    uint64_t tp_size, tp_name;
    uint64_t tuple_size, tuple_ob_item, tuple_ob_size;
    uint64_t bytes_size, bytes_ob_size, bytes_ob_sval;
    uint64_t str_size, str_state, str_length, str_ascii_size;
    uint64_t layout;                     /* 13, 14 or 15: the minor whose positions were used */
};

/* Parse and validate a raw block of `len` bytes (starting at the cookie).
 * Returns 0, PS_ENOTPY (no cookie), PS_EVERSION (unknown layout / pre-release mismatch) or
 * PS_ECORRUPT (a size or offset out of bounds); ps_err_set() says which field. */
int ps_debugoff_parse(const void *raw, size_t len, struct ps_debugoff *out);

/* Build the effective layout for a target: start from `base` (the built-in table for the same
 * minor, or the newest table for a newer minor), overwrite every covered field with the debug
 * offsets, and log (ps_log level 1) each field where the two disagree. Returns the number of
 * disagreements. */
int ps_debugoff_apply(const struct ps_debugoff *d, const struct ps_py_offsets *base,
                      struct ps_py_offsets *out);

#endif
