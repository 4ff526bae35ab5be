/* fakepy.h — a synthetic CPython interpreter laid out in a fake memory source (ps_mem_fake_*),
 * shared by the walker's unit tests.
 *
 * Everything is written through a layout table (struct ps_py_offsets), normally the built-in
 * table of the version under test, so the tests exercise the walker with the same offsets it
 * uses on a live target: _PyRuntime (starting with a _Py_DebugOffsets block built from the
 * layout on 3.13+), one interpreter and its GIL, thread states with pthread blocks, frames
 * (PyFrameObject chains up to 3.10; _PyInterpreterFrame in data-stack chunks, on a "C stack"
 * and in generator objects from 3.11), code objects with real line tables, and str objects
 * (PEP 393 compact ASCII / latin-1 / UCS-2 / UCS-4, or 2.7 byte strings).
 *
 * Typical use:
 *     struct fp_world *w = fp_new(3, 12);
 *     uint64_t c = fp_code(w, &(struct fp_code_spec){...});
 *     int t = fp_thread(w, 4242, frames, nframes, 0);
 *     fp_set_gil(w, t, 1);
 *     cr_assert_eq(fp_attach(w), 0);       // picks the layout, attaches the walker
 *     ps_py_sample(&w->py, &snap);
 *     fp_free(w);
 * Helpers fail the running Criterion test (cr_assert) on misuse; they define no tests.
 */
#ifndef FAKEPY_H
#define FAKEPY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ps_python.h"

#define FP_MAX_THREADS 8
#define FP_MAX_FRAMES 512
#define FP_PTHREAD_TID_OFFSET 720 /* where the fake struct pthread keeps the TID (glibc's) */

enum fp_frame_kind {
    FP_PY = 0,   /* an ordinary Python frame (data-stack chunk on 3.11+) */
    FP_ENTRY,    /* 3.12+: an entry/shim frame on the C stack (owner 3), never reported */
    FP_GEN,      /* a generator frame, living inside a heap object (owner 1 on 3.11+) */
};

struct fp_frame {
    uint64_t code;            /* code object (ignored for FP_ENTRY) */
    int unit;                 /* instruction position in 2-byte code units; -1 = not started */
    enum fp_frame_kind kind;
    unsigned tag;             /* low bits OR-ed into the code pointer (3.14 _PyStackRef) */
    int tlbc;                 /* free-threaded 3.14+: run thread-local bytecode copy `tlbc`
                                 (1..FP_TLBC_MAX-1) of the code, 0 = the code object's own */
};

#define FP_TLBC_MAX 8

struct fp_code_spec {
    const char *name;         /* co_name (UTF-8) */
    const char *qualname;     /* co_qualname (3.11+); NULL = name */
    const char *file;         /* co_filename */
    int firstlineno;
    const int *lines;         /* line of each code unit; -1 = no line (3.10+ only) */
    int nunits;
};

struct fp_thread {
    uint64_t tstate, ident, cframe;
    uint64_t chunk, old_chunk;      /* 3.11+: current and older data-stack chunk (0 if none) */
    size_t chunk_bytes, old_chunk_bytes;
    int split;                      /* frames [0, split) in `chunk`, the others in `old_chunk` */
    pid_t tid;
    int nframes;
    struct fp_frame spec[FP_MAX_FRAMES];
    uint64_t frame_addr[FP_MAX_FRAMES]; /* innermost first */
};

struct fp_world {
    struct ps_py py;                /* py.mem is the fake source; fp_attach fills the rest */
    struct ps_py_offsets lay;       /* layout the memory is written with */
    int major, minor;
    uint64_t hexversion;            /* written into _Py_DebugOffsets and py.hexversion */
    int free_threaded;              /* _Py_DebugOffsets.free_threaded (from the layout's flags) */
    int gil_enabled;                /* free-threaded: the GIL's `enabled` word (0: disabled) */
    uint32_t tlbc_generation;       /* free-threaded 3.14+: interp tlbc_indices generation */
    uint64_t heap_next, cstack_next, static_next;
    uint64_t runtime;               /* &_PyRuntime (3.7+) */
    uint64_t interp_head_sym;       /* &interp_head (2.7/3.6) */
    uint64_t tstate_current_sym;    /* &_PyThreadState_Current (2.7/3.6) */
    uint64_t interp;
    int32_t gil_off;                /* embedded struct _gil_runtime_state inside the interp */
    uint64_t code_type, type_type, none_type, none, str_type, bytes_type, frame_type;
    uint64_t shim_code;             /* 3.12: the trampoline code object of entry frames */
    uint32_t next_co_version;
    uint64_t code_counter;          /* 3.12/3.13: where the next co_version is kept, 0 = none */
    uint64_t generation;            /* 3.14+: interp code-object generation */
    struct {
        uint64_t code, arr, copy[FP_TLBC_MAX];
    } tlbcs[32];                    /* free-threaded 3.14+: co_tlbc arrays made so far */
    int ntlbcs;
    int gil_holder;                 /* thread index, -1 = nobody */
    int gil_locked;
    struct fp_thread t[FP_MAX_THREADS];
    int nthreads;
};

/* A world for (major, minor) laid out with the built-in table. */
struct fp_world *fp_new(int major, int minor);
/* The same for the free-threaded build ("3.14t"): 32-byte object headers, GIL disabled. */
struct fp_world *fp_new_ft(int major, int minor);
/* A world laid out with `lay` (e.g. a table with one field moved), announced as major.minor. */
struct fp_world *fp_new_layout(const struct ps_py_offsets *lay, int major, int minor);
void fp_free(struct fp_world *w);

/* Objects. */
uint64_t fp_alloc(struct fp_world *w, size_t len);          /* zeroed heap region */
uint64_t fp_str(struct fp_world *w, const char *utf8);
uint64_t fp_bytes(struct fp_world *w, const void *data, size_t n);
uint64_t fp_code(struct fp_world *w, const struct fp_code_spec *spec);
/* Rewrites the code object at `addr` in place from `spec` (new string and table objects);
 * new_version != 0 assigns a fresh co_version (3.12/3.13), else keeps the old one. */
void fp_code_rewrite(struct fp_world *w, uint64_t addr, const struct fp_code_spec *spec,
                     int new_version);
/* An object of some other type (for "not a code object" checks). */
uint64_t fp_not_code(struct fp_world *w);

/* Encodes a line table for `fmt` (one line per code unit). Returns its length in bytes. */
size_t fp_linetable(enum ps_line_format fmt, int firstlineno, const int *lines, int nunits,
                    uint8_t *out, size_t cap);
/* The offset that ps_line_for_offset expects for a code unit in `fmt`. */
int64_t fp_unit_offset(enum ps_line_format fmt, int unit);

/* A thread whose stack is frames[0..n) (innermost first). On 3.11+ the first `split` Python
 * frames go to the current data-stack chunk and the rest to an older chunk linked through
 * chunk->previous (split <= 0 or >= n: one chunk). Returns the thread's index. Threads are
 * listed in the interpreter in the order they are added. */
int fp_thread(struct fp_world *w, pid_t tid, const struct fp_frame *frames, int n, int split);
/* Removes thread i from the interpreter's list (as if it exited); its memory stays. */
void fp_thread_unlink(struct fp_world *w, int i);

/* GIL: thread i (or -1) as holder; locked 0 leaves a sticky last holder (3.7+). */
void fp_set_gil(struct fp_world *w, int i, int locked);
/* Free-threaded: the GIL's `enabled` word (0 disabled, INT_MAX as with PYTHON_GIL=1). */
void fp_set_gil_enabled(struct fp_world *w, int enabled);
/* 3.13+: thread i's state word, _Py_THREAD_ATTACHED (1) or DETACHED (0). */
void fp_set_attached(struct fp_world *w, int i, int attached);
/* Free-threaded 3.14+: moves the thread-local bytecode generation. */
void fp_bump_tlbc_generation(struct fp_world *w);
/* Free-threaded 3.14+: frame f of thread i runs thread-local bytecode copy idx (0 = own). */
void fp_set_tlbc(struct fp_world *w, int i, int f, int idx);
/* Moves frame f of thread i to another instruction. */
void fp_set_unit(struct fp_world *w, int i, int f, int unit);
/* The thread returned from its innermost f frames: frame f becomes the current one (an
 * ordinary Python frame); on 3.11+ the data-stack chunk holding it becomes the current chunk
 * (the newer chunk stays mapped, as a freed chunk may). */
void fp_set_current(struct fp_world *w, int i, int f);
/* Overwrites the previous/f_back link of frame f of thread i. */
void fp_set_previous(struct fp_world *w, int i, int f, uint64_t prev);
/* Points frame f of thread i at another code object (tag bits as given). */
void fp_set_code(struct fp_world *w, int i, int f, uint64_t code, unsigned tag);
/* 3.14+: bumps the interpreter's code-object generation. */
void fp_bump_generation(struct fp_world *w);
/* 3.12/3.13: overwrites the code counter (what the next new code object's co_version will be;
 * fp_code and fp_code_rewrite with new_version keep it in step by themselves). */
void fp_set_code_counter(struct fp_world *w, uint32_t v);

/* Writes runtime / debug offsets / lists, sets py (pid 0, mem, version, runtime, code type),
 * then ps_py_pick_layout() and ps_py_attach_fake(). Returns the first non-zero code. */
int fp_attach(struct fp_world *w);
/* Rewrites the thread list and GIL words after threads were added or unlinked. */
void fp_relink(struct fp_world *w);

/* Snapshot lookups for assertions. */
const struct ps_py_thread *fp_snap_thread(const struct ps_py_snapshot *s, pid_t tid);

#endif
