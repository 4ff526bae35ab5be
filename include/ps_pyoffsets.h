/* ps_pyoffsets.h — CPython struct layouts as data, one table per minor version.
 *
 * The tables in src/python/offsets_data.c are generated from installed CPython headers by
 * src/python/gen/offsets_gen.c (see `make offsets`), one per minor version and build kind
 * (default, and free-threaded "t" builds for 3.13+); on 3.13+ they are refreshed from
 * _Py_DebugOffsets at attach time. Version differences are expressed here as fields and
 * feature flags, never as #if forests in the walker.
 *
 * Conventions: every offset is in bytes from the start of its struct, x86_64/aarch64 LP64.
 * A field that does not exist in a version is PS_OFF_NONE (-1).
 */
#ifndef PS_PYOFFSETS_H
#define PS_PYOFFSETS_H

#include <stdint.h>

#define PS_OFF_NONE (-1)

/* How the frame chain is represented. */
enum ps_frame_model {
    PS_FRAMES_OBJECTS = 1,   /* <= 3.10: PyFrameObject chain via f_back */
    PS_FRAMES_INTERP = 2,    /* >= 3.11: _PyInterpreterFrame chain via previous */
};

/* How line numbers are encoded. */
enum ps_line_format {
    PS_LINES_LNOTAB27 = 1,   /* 2.7: co_lnotab, unsigned line increments */
    PS_LINES_LNOTAB = 2,     /* 3.6–3.9: co_lnotab, signed line increments */
    PS_LINES_LINETABLE310 = 3, /* 3.10: co_linetable (start_delta, line_delta) pairs */
    PS_LINES_LOCATIONS = 4,  /* 3.11+: location table */
};

/* How the string objects of co_name / co_filename are stored. */
enum ps_str_model {
    PS_STR_BYTES27 = 1,      /* 2.7 PyStringObject: length @ob_size, bytes @str_sval */
    PS_STR_PEP393 = 2,       /* 3.3+ compact/legacy unicode */
};

/* How the GIL holder is found. */
enum ps_gil_model {
    PS_GIL_TSTATE_CURRENT_SYM = 1, /* 2.7/3.6: *_PyThreadState_Current (symbol) */
    PS_GIL_RUNTIME = 2,            /* 3.7–3.11: _PyRuntime + rt_tstate_current */
    PS_GIL_INTERP = 3,             /* 3.12+: *(interp + interp_ceval_gil) -> {last_holder, locked} */
};

/* Feature flags. */
#define PS_PYF_INTERP_HEAD_SYM 0x01u   /* interpreter list starts at symbol interp_head (2.7/3.6) */
#define PS_PYF_HAS_NATIVE_TID 0x02u    /* tstate has native_thread_id */
#define PS_PYF_CFRAME 0x04u            /* current frame via tstate->cframe->current_frame (3.11/3.12) */
#define PS_PYF_TAGGED_CODE 0x08u       /* frame code pointer is a _PyStackRef: mask ~3 (3.14+) */
#define PS_PYF_HAS_QUALNAME 0x10u      /* code objects have co_qualname (3.11+) */
#define PS_PYF_DEBUG_OFFSETS 0x20u     /* _PyRuntime starts with _Py_DebugOffsets (3.13+) */
#define PS_PYF_FREE_THREADED 0x40u     /* free-threaded build (object header 32 bytes) */
#define PS_PYF_DERIVED 0x80u           /* table not generated from installed headers (none today) */
#define PS_PYF_HOLDS_GIL_BIT 0x100u    /* tstate status word has a holds_gil bit (3.13) */
#define PS_PYF_HOLDS_GIL_INT 0x200u    /* tstate has an int holds_gil (3.14) */

struct ps_py_offsets {
    int major, minor;
    unsigned flags;
    enum ps_frame_model frame_model;
    enum ps_line_format line_format;
    enum ps_str_model str_model;
    enum ps_gil_model gil_model;

    /* _PyRuntimeState (3.7+) */
    int32_t rt_size;              /* sizeof(_PyRuntimeState), 0 if unknown */
    int32_t rt_interp_head;       /* interpreters.head */
    int32_t rt_interp_main;       /* interpreters.main */
    int32_t rt_tstate_current;    /* gilstate.tstate_current (3.7–3.11) */
    int32_t rt_gil_locked;        /* ceval.gil.locked (3.7–3.11) */
    int32_t rt_gil_last_holder;   /* ceval.gil.last_holder (3.7–3.11) */

    /* PyInterpreterState */
    int32_t is_size;
    int32_t is_next;
    int32_t is_tstate_head;       /* tstate_head / threads.head */
    int32_t is_id;
    int32_t is_modules;           /* modules / imports.modules */
    int32_t is_ceval_gil;         /* ceval.gil pointer (3.12+) */
    int32_t is_code_generation;   /* _code_object_generation (3.14+) */
    int32_t is_code_counter;      /* func_state.next_version, the co_version source (3.13) */
    int32_t is_tlbc_generation;   /* tlbc_indices.tlbc_generation, u32 (free-threaded 3.14+) */
    /* struct _gil_runtime_state (3.12+), relative to *(interp + is_ceval_gil) */
    int32_t gil_enabled;          /* int: 0 = GIL disabled (free-threaded builds only) */
    int32_t gil_last_holder;
    int32_t gil_locked;

    /* PyThreadState */
    int32_t ts_size;
    int32_t ts_prev;
    int32_t ts_next;
    int32_t ts_interp;
    int32_t ts_frame;             /* frame (<=3.10) or current_frame (3.13+) */
    int32_t ts_cframe;            /* cframe (3.11/3.12) */
    int32_t cf_current_frame;     /* _PyCFrame.current_frame (3.11: 8, 3.12: 0) */
    int32_t ts_thread_id;         /* pthread_t */
    int32_t ts_native_thread_id;  /* kernel TID (3.11+) */
    int32_t ts_status;            /* _status (3.12+) u32 */
    int32_t ts_holds_gil;         /* 3.13: bit index in ts_status; 3.14: offset of int */
    int32_t ts_state;             /* int, _Py_THREAD_ATTACHED (1) while attached (3.13+) */
    int32_t ts_datastack_chunk;
    int32_t ts_datastack_top;
    int32_t ts_datastack_limit;

    /* PyFrameObject (<=3.10) */
    int32_t fo_back;
    int32_t fo_code;
    int32_t fo_lasti;             /* int; bytes up to 3.9, code units in 3.10 */
    int32_t fo_lineno;
    int32_t fo_lasti_scale;       /* multiply f_lasti by this to get a byte offset (1 or 2) */
    int32_t fo_size;              /* bytes to read per frame object (covers the fields above) */

    /* _PyInterpreterFrame (3.11+) */
    int32_t if_size;
    int32_t if_code;              /* f_code / f_executable */
    int32_t if_previous;
    int32_t if_instr;             /* prev_instr (3.11/3.12) / instr_ptr (3.13+) */
    int32_t if_owner;             /* char */
    int32_t if_is_entry;          /* 3.11 bool, else NONE */
    int32_t if_localsplus;
    int32_t if_owner_skip_min;    /* skip frames with owner >= this (3.12/3.13: 3; 3.14: 3); 0 = none */
    int32_t if_owner_max;         /* largest valid owner value; a larger one means a torn frame */
    int32_t if_tlbc_index;        /* int32: index into co_tlbc (free-threaded 3.14+) */

    /* _PyStackChunk (3.11+) */
    int32_t chunk_previous;
    int32_t chunk_size;
    int32_t chunk_top;
    int32_t chunk_data;

    /* PyCodeObject */
    int32_t co_size;
    int32_t co_filename;
    int32_t co_name;
    int32_t co_qualname;
    int32_t co_firstlineno;       /* int */
    int32_t co_linetable;         /* co_lnotab (<=3.9) or co_linetable (3.10+), a bytes object */
    int32_t co_code;              /* co_code bytes object (<=3.10) */
    int32_t co_code_adaptive;     /* inline bytecode start (3.11+) */
    int32_t co_version;           /* u32 (3.12/3.13) */
    int32_t co_tlbc;              /* _PyCodeArray *: {size, entries[]} (free-threaded 3.14+) */

    /* Objects */
    int32_t ob_type;              /* 8 (16+16 in free-threaded builds) */
    int32_t var_ob_size;          /* PyVarObject.ob_size */
    int32_t bytes_sval;           /* PyBytesObject.ob_sval (2.7: PyStringObject.ob_sval 36) */
    int32_t tuple_ob_item;
    int32_t type_tp_name;

    /* PEP 393 strings */
    int32_t str_length;
    int32_t str_state;
    int32_t str_ascii_size;       /* sizeof(PyASCIIObject): compact ASCII data start */
    int32_t str_compact_size;     /* sizeof(PyCompactUnicodeObject): compact non-ASCII data start */
    int32_t str_data;             /* PyUnicodeObject.data.any (legacy strings) */
    int32_t str_kind_shift;       /* bit position of the 3-bit kind in state */
    int32_t str_compact_bit;
    int32_t str_ascii_bit;
};

/* The built-in table for (major, minor) of a default (GIL) build, or NULL. */
const struct ps_py_offsets *ps_pyoffsets_lookup(int major, int minor);
/* The built-in table for (major, minor) and build kind (free_threaded: a --disable-gil build,
 * "3.14t"), or NULL. */
const struct ps_py_offsets *ps_pyoffsets_lookup_build(int major, int minor, int free_threaded);
/* All built-in tables, for tests and -v listings. */
const struct ps_py_offsets *const *ps_pyoffsets_all(int *count);

#endif
