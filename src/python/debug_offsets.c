/* debug_offsets.c — decode and validate the _Py_DebugOffsets block (3.13+) that starts
 * _PyRuntime, then overlay the offsets it carries onto a built-in layout table.
 * python/runtime.c reads the raw bytes from the target and calls parse + apply; the walkers then
 * use the resulting struct ps_py_offsets. Positions per minor-version layout are data tables.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ps_debugoff.h"
#include "ps_util.h"

#define DBO_HEADER 24                 /* cookie, version, free_threaded */
#define DBO_MAX_STRUCT (1u << 20)     /* no described struct is anywhere near 1 MiB */
#define DBO_HEX(maj, min, lvl, ser)                                                              \
    (((uint64_t)(maj) << 24) | ((uint64_t)(min) << 16) | ((uint64_t)(lvl) << 4) | (uint64_t)(ser))

#define D(f) offsetof(struct ps_debugoff, f)

/* One entry of a layout: the u64 at byte `pos` of the block goes to ps_debugoff field `dst`. */
struct dbo_pos {
    const char *name;
    uint16_t pos;
    uint16_t dst;
};

/* 3.13.0 (584 bytes). Verified by compiling offsetof(_Py_DebugOffsets, …) against the 3.13.0
 * headers and by reading libpython3.13's .PyRuntime (tests/unit/test_debugoff.c). */
static const struct dbo_pos dbo_layout_313[] = {
    {"runtime_state.size", 24, D(rt_size)},
    {"runtime_state.finalizing", 32, D(rt_finalizing)},
    {"runtime_state.interpreters_head", 40, D(rt_interp_head)},
    {"interpreter_state.size", 48, D(is_size)},
    {"interpreter_state.id", 56, D(is_id)},
    {"interpreter_state.next", 64, D(is_next)},
    {"interpreter_state.threads_head", 72, D(is_threads_head)},
    {"interpreter_state.imports_modules", 88, D(is_imports_modules)},
    {"interpreter_state.ceval_gil", 112, D(is_ceval_gil)},
    {"interpreter_state.gil_runtime_state", 120, D(is_gil_runtime_state)},
    {"interpreter_state.gil_runtime_state_enabled", 128, D(is_gil_enabled)},
    {"interpreter_state.gil_runtime_state_locked", 136, D(is_gil_locked)},
    {"interpreter_state.gil_runtime_state_holder", 144, D(is_gil_holder)},
    {"thread_state.size", 152, D(ts_size)},
    {"thread_state.prev", 160, D(ts_prev)},
    {"thread_state.next", 168, D(ts_next)},
    {"thread_state.interp", 176, D(ts_interp)},
    {"thread_state.current_frame", 184, D(ts_current_frame)},
    {"thread_state.thread_id", 192, D(ts_thread_id)},
    {"thread_state.native_thread_id", 200, D(ts_native_thread_id)},
    {"thread_state.datastack_chunk", 208, D(ts_datastack_chunk)},
    {"thread_state.status", 216, D(ts_status)},
    {"interpreter_frame.size", 224, D(if_size)},
    {"interpreter_frame.previous", 232, D(if_previous)},
    {"interpreter_frame.executable", 240, D(if_executable)},
    {"interpreter_frame.instr_ptr", 248, D(if_instr_ptr)},
    {"interpreter_frame.localsplus", 256, D(if_localsplus)},
    {"interpreter_frame.owner", 264, D(if_owner)},
    {"code_object.size", 272, D(co_size)},
    {"code_object.filename", 280, D(co_filename)},
    {"code_object.name", 288, D(co_name)},
    {"code_object.qualname", 296, D(co_qualname)},
    {"code_object.linetable", 304, D(co_linetable)},
    {"code_object.firstlineno", 312, D(co_firstlineno)},
    {"code_object.argcount", 320, D(co_argcount)},
    {"code_object.localsplusnames", 328, D(co_localsplusnames)},
    {"code_object.localspluskinds", 336, D(co_localspluskinds)},
    {"code_object.co_code_adaptive", 344, D(co_code_adaptive)},
    {"pyobject.size", 352, D(ob_size)},
    {"pyobject.ob_type", 360, D(ob_type)},
    {"type_object.size", 368, D(tp_size)},
    {"type_object.tp_name", 376, D(tp_name)},
    {"tuple_object.size", 400, D(tuple_size)},
    {"tuple_object.ob_item", 408, D(tuple_ob_item)},
    {"tuple_object.ob_size", 416, D(tuple_ob_size)},
    {"bytes_object.size", 512, D(bytes_size)},
    {"bytes_object.ob_size", 520, D(bytes_ob_size)},
    {"bytes_object.ob_sval", 528, D(bytes_ob_sval)},
    {"unicode_object.size", 536, D(str_size)},
    {"unicode_object.state", 544, D(str_state)},
    {"unicode_object.length", 552, D(str_length)},
    {"unicode_object.asciiobject_size", 560, D(str_ascii_size)},
};

/* 3.14.0 (760 bytes; 3.14.0b2 and later): threads_main, code_object_generation and
 * tlbc_generation in interpreter_state; stackpointer/tlbc_index in the frame; co_tlbc; new
 * set, gen, llist_node and debugger_support groups. */
static const struct dbo_pos dbo_layout_314[] = {
    {"runtime_state.size", 24, D(rt_size)},
    {"runtime_state.finalizing", 32, D(rt_finalizing)},
    {"runtime_state.interpreters_head", 40, D(rt_interp_head)},
    {"interpreter_state.size", 48, D(is_size)},
    {"interpreter_state.id", 56, D(is_id)},
    {"interpreter_state.next", 64, D(is_next)},
    {"interpreter_state.threads_head", 72, D(is_threads_head)},
    {"interpreter_state.threads_main", 80, D(is_threads_main)},
    {"interpreter_state.imports_modules", 96, D(is_imports_modules)},
    {"interpreter_state.ceval_gil", 120, D(is_ceval_gil)},
    {"interpreter_state.gil_runtime_state", 128, D(is_gil_runtime_state)},
    {"interpreter_state.gil_runtime_state_enabled", 136, D(is_gil_enabled)},
    {"interpreter_state.gil_runtime_state_locked", 144, D(is_gil_locked)},
    {"interpreter_state.gil_runtime_state_holder", 152, D(is_gil_holder)},
    {"interpreter_state.code_object_generation", 160, D(is_code_generation)},
    {"interpreter_state.tlbc_generation", 168, D(is_tlbc_generation)},
    {"thread_state.size", 176, D(ts_size)},
    {"thread_state.prev", 184, D(ts_prev)},
    {"thread_state.next", 192, D(ts_next)},
    {"thread_state.interp", 200, D(ts_interp)},
    {"thread_state.current_frame", 208, D(ts_current_frame)},
    {"thread_state.thread_id", 216, D(ts_thread_id)},
    {"thread_state.native_thread_id", 224, D(ts_native_thread_id)},
    {"thread_state.datastack_chunk", 232, D(ts_datastack_chunk)},
    {"thread_state.status", 240, D(ts_status)},
    {"interpreter_frame.size", 248, D(if_size)},
    {"interpreter_frame.previous", 256, D(if_previous)},
    {"interpreter_frame.executable", 264, D(if_executable)},
    {"interpreter_frame.instr_ptr", 272, D(if_instr_ptr)},
    {"interpreter_frame.localsplus", 280, D(if_localsplus)},
    {"interpreter_frame.owner", 288, D(if_owner)},
    {"interpreter_frame.tlbc_index", 304, D(if_tlbc_index)},
    {"code_object.size", 312, D(co_size)},
    {"code_object.filename", 320, D(co_filename)},
    {"code_object.name", 328, D(co_name)},
    {"code_object.qualname", 336, D(co_qualname)},
    {"code_object.linetable", 344, D(co_linetable)},
    {"code_object.firstlineno", 352, D(co_firstlineno)},
    {"code_object.argcount", 360, D(co_argcount)},
    {"code_object.localsplusnames", 368, D(co_localsplusnames)},
    {"code_object.localspluskinds", 376, D(co_localspluskinds)},
    {"code_object.co_code_adaptive", 384, D(co_code_adaptive)},
    {"code_object.co_tlbc", 392, D(co_tlbc)},
    {"pyobject.size", 400, D(ob_size)},
    {"pyobject.ob_type", 408, D(ob_type)},
    {"type_object.size", 416, D(tp_size)},
    {"type_object.tp_name", 424, D(tp_name)},
    {"tuple_object.size", 448, D(tuple_size)},
    {"tuple_object.ob_item", 456, D(tuple_ob_item)},
    {"tuple_object.ob_size", 464, D(tuple_ob_size)},
    {"bytes_object.size", 592, D(bytes_size)},
    {"bytes_object.ob_size", 600, D(bytes_ob_size)},
    {"bytes_object.ob_sval", 608, D(bytes_ob_sval)},
    {"unicode_object.size", 616, D(str_size)},
    {"unicode_object.state", 624, D(str_state)},
    {"unicode_object.length", 632, D(str_length)},
    {"unicode_object.asciiobject_size", 640, D(str_ascii_size)},
};

/* 3.15 (888 bytes): thread_state gained base_frame, last_profiled_frame(_seq) after
 * current_frame and holds_gil, gil_requested, current_exception, exc_state after status; a new
 * err_stackitem group; type_object tp_basicsize/tp_dictoffset and a heap_type_object group;
 * unicode compactunicodeobject_size; gc frame/generation_stats. Verified by compiling
 * offsetof(_Py_DebugOffsets, …) against Debian's 3.15.2 headers and by reading the .PyRuntime
 * of its /usr/bin/python3.15 (tests/unit/test_debugoff.c). */
static const struct dbo_pos dbo_layout_315[] = {
    {"runtime_state.size", 24, D(rt_size)},
    {"runtime_state.finalizing", 32, D(rt_finalizing)},
    {"runtime_state.interpreters_head", 40, D(rt_interp_head)},
    {"interpreter_state.size", 48, D(is_size)},
    {"interpreter_state.id", 56, D(is_id)},
    {"interpreter_state.next", 64, D(is_next)},
    {"interpreter_state.threads_head", 72, D(is_threads_head)},
    {"interpreter_state.threads_main", 80, D(is_threads_main)},
    {"interpreter_state.imports_modules", 96, D(is_imports_modules)},
    {"interpreter_state.ceval_gil", 120, D(is_ceval_gil)},
    {"interpreter_state.gil_runtime_state", 128, D(is_gil_runtime_state)},
    {"interpreter_state.gil_runtime_state_enabled", 136, D(is_gil_enabled)},
    {"interpreter_state.gil_runtime_state_locked", 144, D(is_gil_locked)},
    {"interpreter_state.gil_runtime_state_holder", 152, D(is_gil_holder)},
    {"interpreter_state.code_object_generation", 160, D(is_code_generation)},
    {"interpreter_state.tlbc_generation", 168, D(is_tlbc_generation)},
    {"thread_state.size", 176, D(ts_size)},
    {"thread_state.prev", 184, D(ts_prev)},
    {"thread_state.next", 192, D(ts_next)},
    {"thread_state.interp", 200, D(ts_interp)},
    {"thread_state.current_frame", 208, D(ts_current_frame)},
    {"thread_state.base_frame", 216, D(ts_base_frame)},
    {"thread_state.thread_id", 240, D(ts_thread_id)},
    {"thread_state.native_thread_id", 248, D(ts_native_thread_id)},
    {"thread_state.datastack_chunk", 256, D(ts_datastack_chunk)},
    {"thread_state.status", 264, D(ts_status)},
    {"thread_state.holds_gil", 272, D(ts_holds_gil)},
    {"interpreter_frame.size", 312, D(if_size)},
    {"interpreter_frame.previous", 320, D(if_previous)},
    {"interpreter_frame.executable", 328, D(if_executable)},
    {"interpreter_frame.instr_ptr", 336, D(if_instr_ptr)},
    {"interpreter_frame.localsplus", 344, D(if_localsplus)},
    {"interpreter_frame.owner", 352, D(if_owner)},
    {"interpreter_frame.tlbc_index", 368, D(if_tlbc_index)},
    {"code_object.size", 376, D(co_size)},
    {"code_object.filename", 384, D(co_filename)},
    {"code_object.name", 392, D(co_name)},
    {"code_object.qualname", 400, D(co_qualname)},
    {"code_object.linetable", 408, D(co_linetable)},
    {"code_object.firstlineno", 416, D(co_firstlineno)},
    {"code_object.argcount", 424, D(co_argcount)},
    {"code_object.localsplusnames", 432, D(co_localsplusnames)},
    {"code_object.localspluskinds", 440, D(co_localspluskinds)},
    {"code_object.co_code_adaptive", 448, D(co_code_adaptive)},
    {"code_object.co_tlbc", 456, D(co_tlbc)},
    {"pyobject.size", 464, D(ob_size)},
    {"pyobject.ob_type", 472, D(ob_type)},
    {"type_object.size", 480, D(tp_size)},
    {"type_object.tp_name", 488, D(tp_name)},
    {"tuple_object.size", 544, D(tuple_size)},
    {"tuple_object.ob_item", 552, D(tuple_ob_item)},
    {"tuple_object.ob_size", 560, D(tuple_ob_size)},
    {"bytes_object.size", 688, D(bytes_size)},
    {"bytes_object.ob_size", 696, D(bytes_ob_size)},
    {"bytes_object.ob_sval", 704, D(bytes_ob_sval)},
    {"unicode_object.size", 712, D(str_size)},
    {"unicode_object.state", 720, D(str_state)},
    {"unicode_object.length", 728, D(str_length)},
    {"unicode_object.asciiobject_size", 736, D(str_ascii_size)},
};

struct dbo_layout {
    const char *name;
    unsigned minor;
    size_t bytes;
    const struct dbo_pos *pos;
    size_t n;
};

static const struct dbo_layout dbo_313 = {"3.13", 13, 584, dbo_layout_313,
                                          PS_ARRAY_LEN(dbo_layout_313)};
static const struct dbo_layout dbo_314 = {"3.14", 14, 760, dbo_layout_314,
                                          PS_ARRAY_LEN(dbo_layout_314)};
static const struct dbo_layout dbo_315 = {"3.15", 15, 888, dbo_layout_315,
                                          PS_ARRAY_LEN(dbo_layout_315)};
/* Newest first: the order in which a newer minor's block is tried. */
static const struct dbo_layout *const dbo_known[] = {&dbo_315, &dbo_314, &dbo_313};

/* Bounds: field `off` (read `width` bytes) must lie inside the struct whose size is `size`. */
struct dbo_bound {
    const char *name, *size_name;
    uint16_t off, size;
    uint8_t width;
};

static const struct dbo_bound dbo_bounds[] = {
    {"runtime_state.finalizing", "runtime_state.size", D(rt_finalizing), D(rt_size), 8},
    {"runtime_state.interpreters_head", "runtime_state.size", D(rt_interp_head), D(rt_size), 8},
    {"interpreter_state.id", "interpreter_state.size", D(is_id), D(is_size), 8},
    {"interpreter_state.next", "interpreter_state.size", D(is_next), D(is_size), 8},
    {"interpreter_state.threads_head", "interpreter_state.size", D(is_threads_head), D(is_size), 8},
    {"interpreter_state.threads_main", "interpreter_state.size", D(is_threads_main), D(is_size), 8},
    {"interpreter_state.imports_modules", "interpreter_state.size", D(is_imports_modules),
     D(is_size), 8},
    {"interpreter_state.ceval_gil", "interpreter_state.size", D(is_ceval_gil), D(is_size), 8},
    {"interpreter_state.gil_runtime_state", "interpreter_state.size", D(is_gil_runtime_state),
     D(is_size), 24},
    {"interpreter_state.gil_runtime_state_enabled", "interpreter_state.size", D(is_gil_enabled),
     D(is_size), 4},
    {"interpreter_state.gil_runtime_state_locked", "interpreter_state.size", D(is_gil_locked),
     D(is_size), 4},
    {"interpreter_state.gil_runtime_state_holder", "interpreter_state.size", D(is_gil_holder),
     D(is_size), 8},
    {"interpreter_state.code_object_generation", "interpreter_state.size",
     D(is_code_generation), D(is_size), 8},
    {"thread_state.prev", "thread_state.size", D(ts_prev), D(ts_size), 8},
    {"thread_state.next", "thread_state.size", D(ts_next), D(ts_size), 8},
    {"thread_state.interp", "thread_state.size", D(ts_interp), D(ts_size), 8},
    {"thread_state.current_frame", "thread_state.size", D(ts_current_frame), D(ts_size), 8},
    {"thread_state.thread_id", "thread_state.size", D(ts_thread_id), D(ts_size), 8},
    {"thread_state.native_thread_id", "thread_state.size", D(ts_native_thread_id), D(ts_size), 8},
    {"thread_state.datastack_chunk", "thread_state.size", D(ts_datastack_chunk), D(ts_size), 8},
    {"thread_state.status", "thread_state.size", D(ts_status), D(ts_size), 4},
    {"interpreter_frame.previous", "interpreter_frame.size", D(if_previous), D(if_size), 8},
    {"interpreter_frame.executable", "interpreter_frame.size", D(if_executable), D(if_size), 8},
    {"interpreter_frame.instr_ptr", "interpreter_frame.size", D(if_instr_ptr), D(if_size), 8},
    {"interpreter_frame.localsplus", "interpreter_frame.size", D(if_localsplus), D(if_size), 0},
    {"interpreter_frame.owner", "interpreter_frame.size", D(if_owner), D(if_size), 1},
    {"code_object.filename", "code_object.size", D(co_filename), D(co_size), 8},
    {"code_object.name", "code_object.size", D(co_name), D(co_size), 8},
    {"code_object.qualname", "code_object.size", D(co_qualname), D(co_size), 8},
    {"code_object.linetable", "code_object.size", D(co_linetable), D(co_size), 8},
    {"code_object.firstlineno", "code_object.size", D(co_firstlineno), D(co_size), 4},
    {"code_object.argcount", "code_object.size", D(co_argcount), D(co_size), 4},
    {"code_object.localsplusnames", "code_object.size", D(co_localsplusnames), D(co_size), 8},
    {"code_object.localspluskinds", "code_object.size", D(co_localspluskinds), D(co_size), 8},
    {"code_object.co_code_adaptive", "code_object.size", D(co_code_adaptive), D(co_size), 0},
    {"pyobject.ob_type", "pyobject.size", D(ob_type), D(ob_size), 8},
    {"type_object.tp_name", "type_object.size", D(tp_name), D(tp_size), 8},
    {"tuple_object.ob_item", "tuple_object.size", D(tuple_ob_item), D(tuple_size), 0},
    {"tuple_object.ob_size", "tuple_object.size", D(tuple_ob_size), D(tuple_size), 8},
    {"bytes_object.ob_size", "bytes_object.size", D(bytes_ob_size), D(bytes_size), 8},
    {"bytes_object.ob_sval", "bytes_object.size", D(bytes_ob_sval), D(bytes_size), 1},
    {"unicode_object.state", "unicode_object.size", D(str_state), D(str_size), 4},
    {"unicode_object.length", "unicode_object.size", D(str_length), D(str_size), 8},
    {"unicode_object.asciiobject_size", "unicode_object.size", D(str_ascii_size), D(str_size), 0},
};

/* Every struct size the block gives, with the smallest plausible value. */
static const struct {
    const char *name;
    uint16_t size;
    uint32_t min;
} dbo_sizes[] = {
    {"runtime_state.size", D(rt_size), 64},
    {"interpreter_state.size", D(is_size), 64},
    {"thread_state.size", D(ts_size), 64},
    {"interpreter_frame.size", D(if_size), 32},
    {"code_object.size", D(co_size), 64},
    {"pyobject.size", D(ob_size), 16},
    {"type_object.size", D(tp_size), 64},
    {"tuple_object.size", D(tuple_size), 24},
    {"bytes_object.size", D(bytes_size), 24},
    {"unicode_object.size", D(str_size), 32},
};

static uint64_t dbo_get(const struct ps_debugoff *d, size_t field)
{
    uint64_t v;
    memcpy(&v, (const char *)d + field, sizeof v);
    return v;
}

static uint64_t dbo_load(const unsigned char *raw, size_t pos)
{
    uint64_t v;
    memcpy(&v, raw + pos, sizeof v); /* the block is little-endian on every supported arch */
    return v;
}

static void dbo_version_str(uint64_t v, char *buf, size_t n)
{
    static const char lvl[16] = {[0xA] = 'a', [0xB] = 'b', [0xC] = 'c'};
    unsigned level = (unsigned)(v >> 4) & 0xf;
    if (level == 0xf)
        snprintf(buf, n, "%u.%u.%u", (unsigned)(v >> 24) & 0xff, (unsigned)(v >> 16) & 0xff,
                 (unsigned)(v >> 8) & 0xff);
    else
        snprintf(buf, n, "%u.%u.%u%s%c%u", (unsigned)(v >> 24) & 0xff,
                 (unsigned)(v >> 16) & 0xff, (unsigned)(v >> 8) & 0xff,
                 lvl[level] == 'c' ? "r" : "", lvl[level] ? lvl[level] : '?',
                 (unsigned)v & 0xf);
}

/* Sizes, bounds and structural invariants. Returns 0 or -1 with ps_err_set() describing the
 * first failure. */
static int dbo_validate(const struct ps_debugoff *d)
{
    for (size_t i = 0; i < PS_ARRAY_LEN(dbo_sizes); i++) {
        uint64_t s = dbo_get(d, dbo_sizes[i].size);
        if (s < dbo_sizes[i].min || s > DBO_MAX_STRUCT) {
            ps_err_set("_Py_DebugOffsets: %s = %llu is implausible (expected %u .. %u)",
                       dbo_sizes[i].name, (unsigned long long)s, dbo_sizes[i].min,
                       DBO_MAX_STRUCT);
            return -1;
        }
    }
    for (size_t i = 0; i < PS_ARRAY_LEN(dbo_bounds); i++) {
        const struct dbo_bound *b = &dbo_bounds[i];
        uint64_t off = dbo_get(d, b->off), size = dbo_get(d, b->size);
        if (off > size || size - off < b->width) {
            ps_err_set("_Py_DebugOffsets: %s = %llu (+%u bytes) lies outside %s = %llu", b->name,
                       (unsigned long long)off, b->width, b->size_name,
                       (unsigned long long)size);
            return -1;
        }
    }
    /* The object header: 16 bytes, or 32 in free-threaded builds, ob_type its last word; the
     * var-object size, and the unicode length, follow it directly. */
    uint64_t hdr = d->free_threaded ? 32 : 16;
    if (d->ob_size != hdr || d->ob_type != hdr - 8) {
        ps_err_set("_Py_DebugOffsets: pyobject.size = %llu, ob_type = %llu; expected %llu and "
                   "%llu for a %s build",
                   (unsigned long long)d->ob_size, (unsigned long long)d->ob_type,
                   (unsigned long long)hdr, (unsigned long long)(hdr - 8),
                   d->free_threaded ? "free-threaded" : "default");
        return -1;
    }
    if (d->tuple_ob_size != hdr || d->bytes_ob_size != hdr || d->str_length != hdr) {
        ps_err_set("_Py_DebugOffsets: tuple ob_size %llu, bytes ob_size %llu, unicode length %llu "
                   "do not all follow the %llu-byte object header",
                   (unsigned long long)d->tuple_ob_size, (unsigned long long)d->bytes_ob_size,
                   (unsigned long long)d->str_length, (unsigned long long)hdr);
        return -1;
    }
    if (d->str_state < d->str_length + 8 || d->str_ascii_size < d->str_state + 4 ||
        d->tuple_ob_item < d->tuple_ob_size + 8 || d->bytes_ob_sval < d->bytes_ob_size + 8) {
        ps_err_set("_Py_DebugOffsets: object field order is implausible (unicode length %llu, "
                   "state %llu, ascii size %llu; tuple ob_item %llu; bytes ob_sval %llu)",
                   (unsigned long long)d->str_length, (unsigned long long)d->str_state,
                   (unsigned long long)d->str_ascii_size, (unsigned long long)d->tuple_ob_item,
                   (unsigned long long)d->bytes_ob_sval);
        return -1;
    }
    /* The GIL fields are absolute offsets in the interpreter; pysample uses them relative to the
     * embedded struct _gil_runtime_state, which is small. */
    if (d->is_gil_holder < d->is_gil_runtime_state || d->is_gil_locked < d->is_gil_runtime_state ||
        d->is_gil_holder - d->is_gil_runtime_state > 256 ||
        d->is_gil_locked - d->is_gil_runtime_state > 256) {
        ps_err_set("_Py_DebugOffsets: GIL holder %llu / locked %llu are not inside the GIL state "
                   "at %llu",
                   (unsigned long long)d->is_gil_holder, (unsigned long long)d->is_gil_locked,
                   (unsigned long long)d->is_gil_runtime_state);
        return -1;
    }
    /* Field order inside each struct: the same in every known layout, and what a block read with
     * the wrong positions gets wrong first. */
    const struct {
        const char *what;
        uint64_t a, b;
    } order[] = {
        {"thread_state prev < next", d->ts_prev, d->ts_next},
        {"thread_state next < interp", d->ts_next, d->ts_interp},
        {"thread_state status < current_frame", d->ts_status, d->ts_current_frame},
        {"thread_state current_frame < thread_id", d->ts_current_frame, d->ts_thread_id},
        {"thread_state thread_id < native_thread_id", d->ts_thread_id, d->ts_native_thread_id},
        {"thread_state native_thread_id < datastack_chunk", d->ts_native_thread_id,
         d->ts_datastack_chunk},
        {"interpreter_frame executable < previous", d->if_executable, d->if_previous},
        {"interpreter_frame previous < instr_ptr", d->if_previous, d->if_instr_ptr},
        {"interpreter_frame instr_ptr < owner", d->if_instr_ptr, d->if_owner},
        {"interpreter_frame owner < localsplus", d->if_owner, d->if_localsplus},
        {"code_object firstlineno < filename", d->co_firstlineno, d->co_filename},
        {"code_object name < qualname", d->co_name, d->co_qualname},
        {"code_object qualname < linetable", d->co_qualname, d->co_linetable},
        {"code_object linetable < co_code_adaptive", d->co_linetable, d->co_code_adaptive},
        {"interpreter_state next < threads_head", d->is_next, d->is_threads_head},
        {"interpreter_state threads_head < imports_modules", d->is_threads_head,
         d->is_imports_modules},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(order); i++)
        if (order[i].a >= order[i].b) {
            ps_err_set("_Py_DebugOffsets: field order is implausible (%s: %llu, %llu)",
                       order[i].what, (unsigned long long)order[i].a,
                       (unsigned long long)order[i].b);
            return -1;
        }
    /* 3.15: base_frame follows current_frame, holds_gil is an int inside the thread state. */
    if (d->ts_base_frame &&
        (d->ts_base_frame <= d->ts_current_frame || d->ts_base_frame >= d->ts_thread_id)) {
        ps_err_set("_Py_DebugOffsets: thread_state.base_frame = %llu is not between "
                   "current_frame %llu and thread_id %llu",
                   (unsigned long long)d->ts_base_frame, (unsigned long long)d->ts_current_frame,
                   (unsigned long long)d->ts_thread_id);
        return -1;
    }
    if (d->ts_holds_gil && (d->ts_holds_gil > d->ts_size - 4 || d->ts_holds_gil == d->ts_status)) {
        ps_err_set("_Py_DebugOffsets: thread_state.holds_gil = %llu is implausible (status %llu, "
                   "size %llu)",
                   (unsigned long long)d->ts_holds_gil, (unsigned long long)d->ts_status,
                   (unsigned long long)d->ts_size);
        return -1;
    }
    /* Thread-local bytecode: present exactly in free-threaded 3.14+ builds (0 otherwise). */
    if (d->free_threaded && d->layout >= 14 &&
        (!d->if_tlbc_index || d->if_tlbc_index > d->if_size - 4 || !d->co_tlbc ||
         d->co_tlbc > d->co_size - 8 || !d->is_tlbc_generation ||
         d->is_tlbc_generation > d->is_size - 4)) {
        ps_err_set("_Py_DebugOffsets: free-threaded build without plausible thread-local bytecode "
                   "fields (frame tlbc_index %llu, code co_tlbc %llu, tlbc_generation %llu)",
                   (unsigned long long)d->if_tlbc_index, (unsigned long long)d->co_tlbc,
                   (unsigned long long)d->is_tlbc_generation);
        return -1;
    }
    if (!d->free_threaded && (d->if_tlbc_index || d->co_tlbc || d->is_tlbc_generation)) {
        ps_err_set("_Py_DebugOffsets: a default build with thread-local bytecode fields (frame "
                   "tlbc_index %llu, code co_tlbc %llu, tlbc_generation %llu)",
                   (unsigned long long)d->if_tlbc_index, (unsigned long long)d->co_tlbc,
                   (unsigned long long)d->is_tlbc_generation);
        return -1;
    }
    /* Distinct pointer fields of one struct never share an offset. */
    if (d->ts_prev == d->ts_next || d->ts_next == d->ts_interp ||
        d->if_previous == d->if_executable || d->co_filename == d->co_name ||
        d->co_name == d->co_qualname) {
        ps_err_set("_Py_DebugOffsets: two fields share one offset (thread_state prev/next/interp "
                   "%llu/%llu/%llu, frame previous/executable %llu/%llu, code filename/name/"
                   "qualname %llu/%llu/%llu)",
                   (unsigned long long)d->ts_prev, (unsigned long long)d->ts_next,
                   (unsigned long long)d->ts_interp, (unsigned long long)d->if_previous,
                   (unsigned long long)d->if_executable, (unsigned long long)d->co_filename,
                   (unsigned long long)d->co_name, (unsigned long long)d->co_qualname);
        return -1;
    }
    return 0;
}

/* Reads the block with the positions of `lay` and validates it. A failure under `strict` is
 * "layout not recognised" (PS_EVERSION, with the detail), else corruption (PS_ECORRUPT). */
static int dbo_read(const unsigned char *p, size_t len, const struct dbo_layout *lay,
                    uint64_t version, uint64_t ft, int strict, const char *vs,
                    struct ps_debugoff *out)
{
    memset(out, 0, sizeof *out);
    if (len < lay->bytes) {
        ps_err_set("_Py_DebugOffsets: block truncated to %zu bytes; the %s layout needs %zu", len,
                   lay->name, lay->bytes);
        return PS_ECORRUPT;
    }
    out->version = version;
    out->free_threaded = ft;
    out->layout = lay->minor;
    for (size_t i = 0; i < lay->n; i++) {
        uint64_t v = dbo_load(p, lay->pos[i].pos);
        memcpy((char *)out + lay->pos[i].dst, &v, sizeof v);
    }
    if (dbo_validate(out) == 0)
        return 0;
    memset(out, 0, sizeof *out);
    if (strict) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ps_err_detail() ? ps_err_detail() : "");
        ps_err_set("CPython %s: debug-offsets layout not recognised (read with the %s "
                   "positions: %s)",
                   vs, lay->name, detail);
        return PS_EVERSION;
    }
    return PS_ECORRUPT;
}

int ps_debugoff_parse(const void *raw, size_t len, struct ps_debugoff *out)
{
    const unsigned char *p = raw;
    memset(out, 0, sizeof *out);
    if (len < sizeof PS_DEBUGOFF_COOKIE - 1 ||
        memcmp(p, PS_DEBUGOFF_COOKIE, sizeof PS_DEBUGOFF_COOKIE - 1) != 0) {
        ps_err_set("_Py_DebugOffsets: no \"%s\" cookie at the start of _PyRuntime",
                   PS_DEBUGOFF_COOKIE);
        return PS_ENOTPY;
    }
    if (len < DBO_HEADER) {
        ps_err_set("_Py_DebugOffsets: block truncated to %zu bytes (header is %d)", len,
                   DBO_HEADER);
        return PS_ECORRUPT;
    }
    uint64_t version = dbo_load(p, 8), ft = dbo_load(p, 16);
    unsigned major = (unsigned)(version >> 24) & 0xff, minor = (unsigned)(version >> 16) & 0xff;
    unsigned level = (unsigned)(version >> 4) & 0xf;
    char vs[32];
    dbo_version_str(version, vs, sizeof vs);
    if ((version >> 32) != 0 || major != 3 || minor < 13) {
        ps_err_set("_Py_DebugOffsets: version field 0x%llx is not CPython 3.13 or newer",
                   (unsigned long long)version);
        return PS_EVERSION;
    }
    if (ft > 1) {
        ps_err_set("_Py_DebugOffsets: free_threaded = %llu (expected 0 or 1)",
                   (unsigned long long)ft);
        return PS_ECORRUPT;
    }

    /* Pick the positions. Finals and release candidates of a known minor use its layout; a
     * pre-release must additionally pass every check, and a failure there means "layout not
     * recognised", not corruption. A newer minor (3.16+) is tried with each known layout, newest
     * first, and runs only if one passes every check. */
    int strict = level != 0xf && level != 0xc;
    const struct dbo_layout *lay = NULL;
    if (minor == 14 && version < DBO_HEX(3, 14, 0xB, 2)) {
        ps_err_set("_Py_DebugOffsets: CPython %s is a pre-release whose debug-offsets layout "
                   "differs from 3.14.0 (fields were added in 3.14.0b2); not supported",
                   vs);
        return PS_EVERSION;
    }
    for (size_t i = 0; i < PS_ARRAY_LEN(dbo_known); i++)
        if (dbo_known[i]->minor == minor)
            lay = dbo_known[i];
    if (lay)
        return dbo_read(p, len, lay, version, ft, strict, vs, out);

    char tried[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < PS_ARRAY_LEN(dbo_known); i++) {
        if (dbo_known[i]->minor > minor)
            continue;
        int rc = dbo_read(p, len, dbo_known[i], version, ft, 1, vs, out);
        if (rc == 0) {
            ps_log(1, "debug offsets: CPython %s read with the %s positions (every check passed)",
                   vs, dbo_known[i]->name);
            return 0;
        }
        int w = snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "",
                         ps_err_detail() ? ps_err_detail() : "?");
        if (w > 0 && (size_t)w < sizeof tried - used)
            used += (size_t)w;
    }
    ps_err_set("CPython %s: debug-offsets layout not recognised: no known layout (3.13-3.15) "
               "fits its _Py_DebugOffsets (%s); this pysample cannot read it safely — a newer "
               "pysample may",
               vs, tried);
    memset(out, 0, sizeof *out);
    return PS_EVERSION;
}

/* Overwrite *dst with v, counting (and logging) a disagreement with the table's value. A table
 * value of PS_OFF_NONE, or 0 for rt_size, means "not known" and is filled in silently. */
static int dbo_set(int32_t *dst, uint64_t v, const char *field, const struct ps_py_offsets *base,
                   int unknown)
{
    int32_t nv = (int32_t)v;
    int diff = 0;
    if (*dst != nv && *dst != unknown) {
        ps_log(1, "debug offsets: %s = %d, built-in %d.%d table says %d; using %d", field, nv,
               base->major, base->minor, *dst, nv);
        diff = 1;
    }
    *dst = nv;
    return diff;
}

int ps_debugoff_apply(const struct ps_debugoff *d, const struct ps_py_offsets *base,
                      struct ps_py_offsets *out)
{
    int n = 0;
    int minor = (int)((d->version >> 16) & 0xff);
    *out = *base;
    if (base->major != 3 || base->minor != minor)
        ps_log(1, "debug offsets: CPython 3.%d on the built-in %d.%d table, corrected by the "
                  "target's _Py_DebugOffsets",
               minor, base->major, base->minor);
    out->major = 3;
    out->minor = minor;

#define SET(field, value) n += dbo_set(&out->field, (value), #field, base, PS_OFF_NONE)
    n += dbo_set(&out->rt_size, d->rt_size, "rt_size", base, 0);
    SET(rt_interp_head, d->rt_interp_head);

    SET(is_size, d->is_size);
    SET(is_next, d->is_next);
    SET(is_tstate_head, d->is_threads_head);
    SET(is_id, d->is_id);
    SET(is_modules, d->is_imports_modules);
    SET(is_ceval_gil, d->is_ceval_gil);
    if (d->is_code_generation) /* 0 = absent (3.13) */
        SET(is_code_generation, d->is_code_generation);
    if (d->is_tlbc_generation) /* 0 = absent (default builds, 3.13) */
        SET(is_tlbc_generation, d->is_tlbc_generation);
    SET(gil_last_holder, d->is_gil_holder - d->is_gil_runtime_state);
    SET(gil_locked, d->is_gil_locked - d->is_gil_runtime_state);

    SET(ts_size, d->ts_size);
    SET(ts_prev, d->ts_prev);
    SET(ts_next, d->ts_next);
    SET(ts_interp, d->ts_interp);
    SET(ts_frame, d->ts_current_frame);
    SET(ts_thread_id, d->ts_thread_id);
    SET(ts_native_thread_id, d->ts_native_thread_id);
    SET(ts_datastack_chunk, d->ts_datastack_chunk);
    SET(ts_status, d->ts_status);
    if (d->ts_holds_gil) /* in the block from 3.15 on */
        SET(ts_holds_gil, d->ts_holds_gil);

    SET(if_size, d->if_size);
    SET(if_code, d->if_executable);
    SET(if_previous, d->if_previous);
    SET(if_instr, d->if_instr_ptr);
    SET(if_localsplus, d->if_localsplus);
    SET(if_owner, d->if_owner);
    if (d->if_tlbc_index)
        SET(if_tlbc_index, d->if_tlbc_index);

    SET(co_size, d->co_size);
    SET(co_filename, d->co_filename);
    SET(co_name, d->co_name);
    SET(co_qualname, d->co_qualname);
    SET(co_linetable, d->co_linetable);
    SET(co_firstlineno, d->co_firstlineno);
    SET(co_code_adaptive, d->co_code_adaptive);
    if (d->co_tlbc)
        SET(co_tlbc, d->co_tlbc);

    SET(ob_type, d->ob_type);
    SET(var_ob_size, d->tuple_ob_size);
    SET(bytes_sval, d->bytes_ob_sval);
    SET(tuple_ob_item, d->tuple_ob_item);
    SET(type_tp_name, d->tp_name);

    SET(str_state, d->str_state);
    SET(str_length, d->str_length);
    SET(str_ascii_size, d->str_ascii_size);
#undef SET

    out->flags |= PS_PYF_DEBUG_OFFSETS | PS_PYF_HAS_NATIVE_TID | PS_PYF_HAS_QUALNAME;
    if (d->free_threaded)
        out->flags |= PS_PYF_FREE_THREADED;
    if (minor >= 14) {
        out->if_owner_skip_min = 3;
        out->flags |= PS_PYF_TAGGED_CODE;
    }
    return n;
}
