/* offsets_gen.c — prints the struct ps_py_offsets initializer for the CPython headers it is
 * compiled against (offsetof/sizeof, bitfield positions found at run time, flags and models).
 * Not part of pysample: tests/check_offsets.sh compiles it once per installed include directory
 * and compares (or, with --regenerate, replaces) the blocks in src/python/offsets_data.c.
 * This is the one place where version #ifs belong.
 */
#include <Python.h>

#if PY_VERSION_HEX >= 0x03070000 && !defined(Py_BUILD_CORE)
#error "compile with -DPy_BUILD_CORE (and -I<include>/internal for 3.8+)"
#endif

#if PY_VERSION_HEX < 0x03070000
#include <code.h>
#include <frameobject.h>
#elif PY_VERSION_HEX < 0x03080000
#include <code.h>
#include <frameobject.h>
#include "internal/pystate.h"
#elif PY_VERSION_HEX < 0x03090000
#include <code.h>
#include <frameobject.h>
#include "pycore_pystate.h"
#elif PY_VERSION_HEX < 0x030b0000
#include <code.h>
#include <frameobject.h>
#include "pycore_interp.h"
#include "pycore_runtime.h"
#else
#include "pycore_code.h"
#include "pycore_frame.h"
#include "pycore_gil.h"
#include "pycore_interp.h"
#include "pycore_runtime.h"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE (-1L)
#define OFF(type, member) ((long)offsetof(type, member))
#define SIZE(type) ((long)sizeof(type))

static void put(const char *name, long v)
{
    if (v == NONE)
        printf("    .%s = PS_OFF_NONE,\n", name);
    else
        printf("    .%s = %ld,\n", name, v);
}

static void put_sym(const char *name, const char *sym)
{
    printf("    .%s = %s,\n", name, sym);
}

/* ".flags = A | B | ...;" wrapped before column 100. */
static void put_flags(const char *const *names, int n)
{
    int col = printf("    .flags =");
    if (n == 0)
        printf(" 0");
    for (int i = 0; i < n; i++) {
        int w = 1 + (int)strlen(names[i]) + (i + 1 < n ? 2 : 1);
        if (col + w > 99) {
            printf("\n       ");
            col = 7;
        }
        col += printf(" %s%s", names[i], i + 1 < n ? " |" : "");
    }
    printf(",\n");
}

/* Index of the lowest set bit in n bytes (little-endian bit numbering), or -1; *count gets the
 * number of set bits. */
static long low_bit(const void *p, size_t n, int *count)
{
    const unsigned char *b = p;
    long first = -1;
    *count = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            if (b[i] & (1u << k)) {
                if (first < 0)
                    first = (long)(i * 8 + (size_t)k);
                (*count)++;
            }
    return first;
}

/* Bit position of a bitfield set to all-ones (`want` bits) inside a zeroed object. */
__attribute__((unused)) static long bit_of(const void *obj, size_t off, size_t n, int want,
                                           const char *what)
{
    int count;
    long bit = low_bit((const char *)obj + off, n, &count);
    if (bit < 0 || count != want) {
        fprintf(stderr, "offsets_gen: cannot locate bitfield %s (%d bits set, want %d)\n", what,
                count, want);
        exit(1);
    }
    return bit;
}

int main(void)
{
    unsigned major = (PY_VERSION_HEX >> 24) & 0xff, minor = (PY_VERSION_HEX >> 16) & 0xff;
    const char *flags[16];
    int nflags = 0;
#define FLAG(f) (flags[nflags++] = (f))

#if PY_VERSION_HEX < 0x03070000
    FLAG("PS_PYF_INTERP_HEAD_SYM");
#endif
#if PY_VERSION_HEX >= 0x030b0000
    FLAG("PS_PYF_HAS_NATIVE_TID");
#endif
#if PY_VERSION_HEX >= 0x030b0000 && PY_VERSION_HEX < 0x030d0000
    FLAG("PS_PYF_CFRAME");
#endif
#if PY_VERSION_HEX >= 0x030e0000
    FLAG("PS_PYF_TAGGED_CODE");
#endif
#if PY_VERSION_HEX >= 0x030b0000
    FLAG("PS_PYF_HAS_QUALNAME");
#endif
#if PY_VERSION_HEX >= 0x030d0000
    FLAG("PS_PYF_DEBUG_OFFSETS");
#endif
#ifdef Py_GIL_DISABLED
    FLAG("PS_PYF_FREE_THREADED");
#endif
#if PY_VERSION_HEX >= 0x030d0000 && PY_VERSION_HEX < 0x030e0000
    FLAG("PS_PYF_HOLDS_GIL_BIT");
#endif
#if PY_VERSION_HEX >= 0x030e0000
    FLAG("PS_PYF_HOLDS_GIL_INT");
#endif

    /* Free-threaded (--disable-gil) builds get their own table, "3.14t". */
#ifdef Py_GIL_DISABLED
    const char *build = "t";
#else
    const char *build = "";
#endif
    printf("/* BEGIN GENERATED %u.%u%s */\n", major, minor, build);
    printf("/* headers: CPython %s%s */\n", PY_VERSION, build);
    printf("static const struct ps_py_offsets ps_pyoff_%u_%u%s = {\n", major, minor, build);
    printf("    .major = %u,\n    .minor = %u,\n", major, minor);
    put_flags(flags, nflags);

    /* ---- models ---- */
#if PY_VERSION_HEX < 0x030b0000
    put_sym("frame_model", "PS_FRAMES_OBJECTS");
#else
    put_sym("frame_model", "PS_FRAMES_INTERP");
#endif
#if PY_MAJOR_VERSION == 2
    put_sym("line_format", "PS_LINES_LNOTAB27");
    put_sym("str_model", "PS_STR_BYTES27");
#else
#if PY_VERSION_HEX < 0x030a0000
    put_sym("line_format", "PS_LINES_LNOTAB");
#elif PY_VERSION_HEX < 0x030b0000
    put_sym("line_format", "PS_LINES_LINETABLE310");
#else
    put_sym("line_format", "PS_LINES_LOCATIONS");
#endif
    put_sym("str_model", "PS_STR_PEP393");
#endif
#if PY_VERSION_HEX < 0x03070000
    put_sym("gil_model", "PS_GIL_TSTATE_CURRENT_SYM");
#elif PY_VERSION_HEX < 0x030c0000
    put_sym("gil_model", "PS_GIL_RUNTIME");
#else
    put_sym("gil_model", "PS_GIL_INTERP");
#endif

    /* ---- _PyRuntimeState ---- */
#if PY_VERSION_HEX < 0x03070000
    put("rt_size", 0); /* no runtime struct: interp_head / _PyThreadState_Current symbols */
    put("rt_interp_head", NONE);
    put("rt_interp_main", NONE);
    put("rt_tstate_current", NONE);
    put("rt_gil_locked", NONE);
    put("rt_gil_last_holder", NONE);
#else
    put("rt_size", SIZE(_PyRuntimeState));
    put("rt_interp_head", OFF(_PyRuntimeState, interpreters.head));
    put("rt_interp_main", OFF(_PyRuntimeState, interpreters.main));
#if PY_VERSION_HEX < 0x030c0000
    put("rt_tstate_current", OFF(_PyRuntimeState, gilstate.tstate_current));
    put("rt_gil_locked", OFF(_PyRuntimeState, ceval.gil.locked));
    put("rt_gil_last_holder", OFF(_PyRuntimeState, ceval.gil.last_holder));
#else
    put("rt_tstate_current", NONE);
    put("rt_gil_locked", NONE);
    put("rt_gil_last_holder", NONE);
#endif
#endif

    /* ---- PyInterpreterState ---- */
    put("is_size", SIZE(PyInterpreterState));
    put("is_next", OFF(PyInterpreterState, next));
#if PY_VERSION_HEX < 0x030b0000
    put("is_tstate_head", OFF(PyInterpreterState, tstate_head));
#else
    put("is_tstate_head", OFF(PyInterpreterState, threads.head));
#endif
#if PY_VERSION_HEX < 0x03070000
    put("is_id", NONE);
#else
    put("is_id", OFF(PyInterpreterState, id));
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("is_modules", OFF(PyInterpreterState, modules));
#else
    put("is_modules", OFF(PyInterpreterState, imports.modules));
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("is_ceval_gil", NONE);
#else
    put("is_ceval_gil", OFF(PyInterpreterState, ceval.gil));
#endif
#if PY_VERSION_HEX < 0x030e0000
    put("is_code_generation", NONE);
#else
    put("is_code_generation", OFF(PyInterpreterState, _code_object_generation));
#endif
    /* 3.13: every new code object takes its co_version from this counter (3.12 uses the
     * global _Py_next_func_version instead, found by symbol). */
#if PY_VERSION_HEX >= 0x030d0000 && PY_VERSION_HEX < 0x030e0000
    put("is_code_counter", OFF(PyInterpreterState, func_state.next_version));
#else
    put("is_code_counter", NONE);
#endif
#if PY_VERSION_HEX >= 0x030e0000 && defined(Py_GIL_DISABLED)
    put("is_tlbc_generation", OFF(PyInterpreterState, tlbc_indices.tlbc_generation));
#else
    put("is_tlbc_generation", NONE);
#endif
#if PY_VERSION_HEX >= 0x030d0000 && defined(Py_GIL_DISABLED)
    put("gil_enabled", OFF(struct _gil_runtime_state, enabled));
#else
    put("gil_enabled", NONE);
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("gil_last_holder", NONE);
    put("gil_locked", NONE);
#else
    put("gil_last_holder", OFF(struct _gil_runtime_state, last_holder));
    put("gil_locked", OFF(struct _gil_runtime_state, locked));
#endif

    /* ---- PyThreadState ---- */
    put("ts_size", SIZE(PyThreadState));
#if PY_MAJOR_VERSION == 2
    put("ts_prev", NONE);
#else
    put("ts_prev", OFF(PyThreadState, prev));
#endif
    put("ts_next", OFF(PyThreadState, next));
    put("ts_interp", OFF(PyThreadState, interp));
#if PY_VERSION_HEX < 0x030b0000
    put("ts_frame", OFF(PyThreadState, frame));
    put("ts_cframe", NONE);
    put("cf_current_frame", NONE);
#elif PY_VERSION_HEX < 0x030d0000
    put("ts_frame", NONE);
    put("ts_cframe", OFF(PyThreadState, cframe));
    put("cf_current_frame", OFF(_PyCFrame, current_frame));
#else
    put("ts_frame", OFF(PyThreadState, current_frame));
    put("ts_cframe", NONE);
    put("cf_current_frame", NONE);
#endif
    put("ts_thread_id", OFF(PyThreadState, thread_id));
#if PY_VERSION_HEX < 0x030b0000
    put("ts_native_thread_id", NONE);
#else
    put("ts_native_thread_id", OFF(PyThreadState, native_thread_id));
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("ts_status", NONE);
    put("ts_holds_gil", NONE);
#else
    put("ts_status", OFF(PyThreadState, _status));
#if PY_VERSION_HEX < 0x030d0000
    put("ts_holds_gil", NONE);
#elif PY_VERSION_HEX < 0x030e0000
    {
        static PyThreadState ts; /* zeroed */
        ts._status.holds_gil = 1;
        long bit = bit_of(&ts, offsetof(PyThreadState, _status), sizeof ts._status, 1,
                          "_status.holds_gil");
        if (bit >= 32) {
            fprintf(stderr, "offsets_gen: holds_gil bit %ld beyond the u32 status word\n", bit);
            return 1;
        }
        put("ts_holds_gil", bit);
    }
#else
    put("ts_holds_gil", OFF(PyThreadState, holds_gil));
#endif
#endif
#if PY_VERSION_HEX < 0x030d0000
    put("ts_state", NONE);
#else
    put("ts_state", OFF(PyThreadState, state));
#endif
#if PY_VERSION_HEX < 0x030b0000
    put("ts_datastack_chunk", NONE);
    put("ts_datastack_top", NONE);
    put("ts_datastack_limit", NONE);
#else
    put("ts_datastack_chunk", OFF(PyThreadState, datastack_chunk));
    put("ts_datastack_top", OFF(PyThreadState, datastack_top));
    put("ts_datastack_limit", OFF(PyThreadState, datastack_limit));
#endif

    /* ---- PyFrameObject (<= 3.10) ---- */
#if PY_VERSION_HEX < 0x030b0000
    {
        long end = 0, e;
        e = OFF(PyFrameObject, f_back) + (long)sizeof(((PyFrameObject *)0)->f_back);
        end = e > end ? e : end;
        e = OFF(PyFrameObject, f_code) + (long)sizeof(((PyFrameObject *)0)->f_code);
        end = e > end ? e : end;
        e = OFF(PyFrameObject, f_lasti) + (long)sizeof(((PyFrameObject *)0)->f_lasti);
        end = e > end ? e : end;
        e = OFF(PyFrameObject, f_lineno) + (long)sizeof(((PyFrameObject *)0)->f_lineno);
        end = e > end ? e : end;
        put("fo_back", OFF(PyFrameObject, f_back));
        put("fo_code", OFF(PyFrameObject, f_code));
        put("fo_lasti", OFF(PyFrameObject, f_lasti));
        put("fo_lineno", OFF(PyFrameObject, f_lineno));
#if PY_VERSION_HEX >= 0x030a0000
        put("fo_lasti_scale", 2); /* 3.10 f_lasti counts code units */
#else
        put("fo_lasti_scale", 1);
#endif
        put("fo_size", end);
    }
#else
    put("fo_back", NONE);
    put("fo_code", NONE);
    put("fo_lasti", NONE);
    put("fo_lineno", NONE);
    put("fo_lasti_scale", 1);
    put("fo_size", NONE);
#endif

    /* ---- _PyInterpreterFrame (3.11+) ---- */
#if PY_VERSION_HEX < 0x030b0000
    put("if_size", NONE);
    put("if_code", NONE);
    put("if_previous", NONE);
    put("if_instr", NONE);
    put("if_owner", NONE);
    put("if_is_entry", NONE);
    put("if_localsplus", NONE);
    put("if_owner_skip_min", 0);
    put("if_owner_max", NONE);
    put("if_tlbc_index", NONE);
#else
    put("if_size", SIZE(_PyInterpreterFrame));
#if PY_VERSION_HEX < 0x030d0000
    put("if_code", OFF(_PyInterpreterFrame, f_code));
#else
    put("if_code", OFF(_PyInterpreterFrame, f_executable));
#endif
    put("if_previous", OFF(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX < 0x030d0000
    put("if_instr", OFF(_PyInterpreterFrame, prev_instr));
#else
    put("if_instr", OFF(_PyInterpreterFrame, instr_ptr));
#endif
    put("if_owner", OFF(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030c0000
    put("if_is_entry", OFF(_PyInterpreterFrame, is_entry));
#else
    put("if_is_entry", NONE);
#endif
    put("if_localsplus", OFF(_PyInterpreterFrame, localsplus));
#if PY_VERSION_HEX < 0x030c0000
    put("if_owner_skip_min", 0); /* 3.11 has no shim frames */
#elif PY_VERSION_HEX < 0x030e0000
    put("if_owner_skip_min", FRAME_OWNED_BY_CSTACK); /* entry shim frames */
#else
    put("if_owner_skip_min", FRAME_OWNED_BY_INTERPRETER); /* INTERPRETER and CSTACK */
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("if_owner_max", FRAME_OWNED_BY_FRAME_OBJECT);
#elif PY_VERSION_HEX < 0x030f0000
    put("if_owner_max", FRAME_OWNED_BY_CSTACK);
#else
    put("if_owner_max", FRAME_OWNED_BY_INTERPRETER); /* 3.15 dropped CSTACK */
#endif
#if PY_VERSION_HEX >= 0x030e0000 && defined(Py_GIL_DISABLED)
    put("if_tlbc_index", OFF(_PyInterpreterFrame, tlbc_index));
#else
    put("if_tlbc_index", NONE);
#endif
#endif

    /* ---- _PyStackChunk (3.11+) ---- */
#if PY_VERSION_HEX < 0x030b0000
    put("chunk_previous", NONE);
    put("chunk_size", NONE);
    put("chunk_top", NONE);
    put("chunk_data", NONE);
#else
    put("chunk_previous", OFF(_PyStackChunk, previous));
    put("chunk_size", OFF(_PyStackChunk, size));
    put("chunk_top", OFF(_PyStackChunk, top));
    put("chunk_data", OFF(_PyStackChunk, data));
#endif

    /* ---- PyCodeObject ---- */
    put("co_size", SIZE(PyCodeObject));
    put("co_filename", OFF(PyCodeObject, co_filename));
    put("co_name", OFF(PyCodeObject, co_name));
#if PY_VERSION_HEX < 0x030b0000
    put("co_qualname", NONE);
#else
    put("co_qualname", OFF(PyCodeObject, co_qualname));
#endif
    put("co_firstlineno", OFF(PyCodeObject, co_firstlineno));
#if PY_VERSION_HEX < 0x030a0000
    put("co_linetable", OFF(PyCodeObject, co_lnotab));
#else
    put("co_linetable", OFF(PyCodeObject, co_linetable));
#endif
#if PY_VERSION_HEX < 0x030b0000
    put("co_code", OFF(PyCodeObject, co_code));
    put("co_code_adaptive", NONE);
#else
    put("co_code", NONE);
    put("co_code_adaptive", OFF(PyCodeObject, co_code_adaptive));
#endif
#if PY_VERSION_HEX < 0x030c0000
    put("co_version", NONE);
#else
    put("co_version", OFF(PyCodeObject, co_version));
#endif
#if PY_VERSION_HEX >= 0x030e0000 && defined(Py_GIL_DISABLED)
    put("co_tlbc", OFF(PyCodeObject, co_tlbc));
#else
    put("co_tlbc", NONE);
#endif

    /* ---- objects ---- */
    put("ob_type", OFF(PyObject, ob_type));
    put("var_ob_size", OFF(PyVarObject, ob_size));
#if PY_MAJOR_VERSION == 2
    put("bytes_sval", OFF(PyStringObject, ob_sval));
#else
    put("bytes_sval", OFF(PyBytesObject, ob_sval));
#endif
    put("tuple_ob_item", OFF(PyTupleObject, ob_item));
    put("type_tp_name", OFF(PyTypeObject, tp_name));

    /* ---- PEP 393 strings ---- */
#if PY_MAJOR_VERSION == 2
    put("str_length", NONE);
    put("str_state", NONE);
    put("str_ascii_size", NONE);
    put("str_compact_size", NONE);
    put("str_data", NONE);
    put("str_kind_shift", NONE);
    put("str_compact_bit", NONE);
    put("str_ascii_bit", NONE);
#else
    put("str_length", OFF(PyASCIIObject, length));
    put("str_state", OFF(PyASCIIObject, state));
    put("str_ascii_size", SIZE(PyASCIIObject));
    put("str_compact_size", SIZE(PyCompactUnicodeObject));
    put("str_data", OFF(PyUnicodeObject, data));
    {
        static PyASCIIObject a, b, c; /* zeroed */
        size_t so = offsetof(PyASCIIObject, state), sn = sizeof a.state;
        a.state.kind = 7;
        b.state.compact = 1;
        c.state.ascii = 1;
        put("str_kind_shift", bit_of(&a, so, sn, 3, "state.kind"));
        put("str_compact_bit", bit_of(&b, so, sn, 1, "state.compact"));
        put("str_ascii_bit", bit_of(&c, so, sn, 1, "state.ascii"));
    }
#endif
    printf("};\n");
    printf("/* END GENERATED %u.%u%s */\n", major, minor, build);
    return 0;
}
