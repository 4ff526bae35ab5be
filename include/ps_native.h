/* ps_native.h — native (C) stacks: unwinding with libunwind-ptrace, symbolizing with libdw,
 * and merging the C frames with the Python frames the walker read (`--native`).
 *
 * Data flow for one thread of one sample:
 *   ps_native_unwind()      stop the thread briefly (PTRACE_INTERRUPT), unwind its C stack into
 *                           PCs, resume it at once; optionally run a callback while it is stopped
 *                           (e.g. read its Python frames so both views are of the same moment)
 *   ps_native_symbolize()   PC -> function, library, file:line, inlined calls (cached by PC)
 *   ps_native_merge()       replace each CPython evaluation-loop activation in the C stack with
 *                           the Python frames it ran, hide interpreter plumbing
 *
 * Stopping threads: a thread is PTRACE_SEIZEd (never PTRACE_ATTACHed, never with
 * PTRACE_O_EXITKILL; with PTRACE_O_TRACEEXEC, see ps_native_flush) the first time it is unwound
 * and stays seized until ps_native_detach_all() or ps_native_free(). ps_native_new() refuses a
 * process one of whose threads another process traces already (PS_EPERM, naming the tracer). Between stops it runs freely. Every stop is bounded (stop_timeout_ns) and
 * every path that stopped a thread resumes it. All ptrace calls must come from the thread that
 * created the struct ps_native (the kernel ties a tracee to one tracer thread).
 *
 * Leaving: ps_native_detach_all() detaches every seized thread (interrupting it first, as the
 * kernel requires). An atexit hook does the same for a process that exits without calling it,
 * and ps_native_emergency_detach() is async-signal-safe, for a SIGSEGV/SIGABRT handler of
 * pysample itself. Job control: from the first seize on, SIGTSTP/SIGTTIN/SIGTTOU (if not
 * ignored) let every seized thread go and then stop pysample with SIGSTOP; after SIGCONT the
 * threads are seized again on their next unwind. A stop signal that arrives inside one of the
 * functions below takes effect when it returns. If pysample is killed with SIGKILL no code runs; the kernel then detaches
 * every tracee and lets it continue (ptrace(2): "If the tracer dies, all tracees are
 * automatically detached and restarted, unless they were in group-stop"); since EXITKILL is not
 * set, the target is not killed. tests/integration/test_native.sh checks exactly that.
 *
 * Signals: a signal that reaches a seized thread makes it stop in signal-delivery-stop until the
 * tracer resumes it. ps_native_unwind() re-injects such a signal when it finds one while waiting
 * for its own stop; between samples the owner must call ps_native_poll() (once per tick is
 * enough) so those threads are resumed, and exited threads reaped, promptly. Group-stop
 * (SIGSTOP and friends) is respected: a thread found in group-stop is unwound and left in
 * group-stop (PTRACE_LISTEN), not resumed.
 */
#ifndef PS_NATIVE_H
#define PS_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ps_proc.h"
#include "ps_python.h"

#define PS_NATIVE_MAX_FRAMES 512      /* C frames unwound per thread at most */
#define PS_NATIVE_MAX_SEIZED 4096     /* threads seized at once (the emergency list) */
#define PS_NATIVE_MAX_INLINE 16       /* inlined calls reported per PC */
#define PS_NATIVE_STOP_TIMEOUT_NS (50 * 1000 * 1000ull) /* default bound on waiting for a stop */

/* ---- symbols ---------------------------------------------------------------------------- */

/* A function inlined at a PC: its name and the source position inside it. */
struct ps_native_inline {
    const char *name;         /* NULL if DWARF gives none */
    const char *file;         /* source file basename, NULL if unknown */
    int line;                 /* 0 if unknown */
    uint8_t is_plumbing;
};

/* What one PC is. Strings and the inlined array belong to the struct ps_native that produced
 * it and stay valid until the next ps_native_unwind()/ps_native_free() on it. */
struct ps_native_sym {
    uint64_t pc;              /* the PC as unwound */
    uint64_t offset;          /* pc - load address of its module (for "lib+0x..." labels) */
    const char *name;         /* function (DWARF name, else ELF symbol); NULL if unknown */
    const char *lib;          /* basename of the module ("libc.so.6"), "" if unmapped */
    const char *file;         /* source file basename of `name`'s own position, NULL unknown */
    int line;                 /* 0 if unknown */
    /* Calls inlined into `name` at this PC, innermost first: the PC is at inlined[0]'s
     * file:line; inlined[i] was called from inlined[i+1] (or from `name` for the last one) at
     * the next entry's position. */
    int ninlined;
    const struct ps_native_inline *inlined;
    uint8_t is_eval;          /* 1: a CPython evaluation loop activation (_PyEval_EvalFrameDefault,
                                 2.7's PyEval_EvalFrameEx); 2: a tail-called piece of it
                                 (3.15 _TAIL_CALL_*), part of the next outer activation */
    uint8_t is_plumbing;      /* interpreter/libc plumbing hidden by default, see
                                 ps_native_classify() */
};

/* The classification used for is_eval / is_plumbing (exposed for tests). `lib` is the module
 * basename. is_eval matches by function name in any module. Plumbing is
 *   - in the interpreter's module (a basename starting "libpython" or "python"): the call
 *     machinery between an eval loop and the next (_PyEval_Vector, PyObject_Vectorcall*,
 *     _PyObject_Vectorcall*, PyObject_Call*, _PyObject_Call*, _PyObject_FastCall*,
 *     _PyObject_MakeTpCall, PyVectorcall_Call, _PyFunction_Vectorcall, _PyFunction_FastCall*,
 *     function_code_fastcall, fast_function, call_function, do_call, do_call_core, ext_do_call,
 *     method_vectorcall*, cfunction_call*, cfunction_vectorcall*, _PyCFunction_FastCall*,
 *     PyCFunction_Call, _PyMethodDef_RawFastCall*, _PyMethodDescr_FastCall*, method_call,
 *     instancemethod_call, function_call, slot_tp_call, slot_tp_init, type_call,
 *     vectorcall_method, vectorcall_unbound, object_vacall, PyEval_CallObject*,
 *     PyEval_CallFunction, PyEval_CallMethod, PyEval_EvalCode*, _PyEval_EvalCode*,
 *     PyEval_EvalFrame, _PyEval_EvalFrame), start-up (main, Py_Main, Py_BytesMain, Py_RunMain,
 *     _Py_UnixMain, pymain_*, PyRun_*, _PyRun_*, pyrun_*, run_mod, run_eval_code_obj,
 *     run_pyc_file, run_file, run_command, run_module), thread
 *     bootstrap (thread_run, t_bootstrap, pythread_wrapper), and any PC without a symbol;
 *   - in any module: process and thread start (_start, __libc_start_*, start_thread, clone,
 *     clone3, __clone, __clone3, __GI___clone, __GI___clone3, __clone_internal).
 * Names compare without GCC clone suffixes (".cold", ".part.N", ".isra.N", ".constprop.N"). */
void ps_native_classify(const char *name, const char *lib, uint8_t *is_eval,
                        uint8_t *is_plumbing);

/* "name (file:line)", else "name (lib)", else "?? (lib+0xOFF)"; for display and folded output. */
void ps_native_sym_label(const struct ps_native_sym *s, char *buf, size_t sz);

/* ---- per-process state ------------------------------------------------------------------ */

struct ps_native;

/* Opens the native view of `pid`: a libunwind address space (_UPT accessors, global caching),
 * a libdwfl session over the process's mappings, and an empty PC cache. Stops nothing.
 * Returns NULL on failure with the reason in ps_err_detail(). */
struct ps_native *ps_native_new(pid_t pid);
/* Detaches every seized thread (ps_native_detach_all) and frees everything. NULL is fine. */
void ps_native_free(struct ps_native *n);

/* Bound on waiting for one thread to stop (default PS_NATIVE_STOP_TIMEOUT_NS). */
void ps_native_set_stop_timeout(struct ps_native *n, uint64_t ns);

/* One native stack. */
struct ps_native_stack {
    uint64_t pcs[PS_NATIVE_MAX_FRAMES]; /* innermost first */
    int n;
    int complete;             /* 1: unwinding reached the outermost frame; 0: it stopped early
                                 (limit, loop, missing unwind info) and outer frames are missing */
    uint64_t stopped_ns;      /* how long the thread was kept from running: from the
                                 PTRACE_INTERRUPT to the return of the call that resumed it */
    int group_stopped;        /* the thread was (and is left) in group-stop */
};

/* Called while the thread is stopped, after its registers/stack were unwound and before it is
 * resumed. Keep it short: its run time adds to stopped_ns. */
typedef void (*ps_native_stopped_fn)(void *arg, pid_t tid);

/* Stops `tid` (a thread of the struct's process; seized on first use), unwinds its C stack into
 * st, runs `fn` (if not NULL), and resumes it before returning — before any symbolization.
 * Returns the number of frames (>= 0; just the current PC when libunwind cannot start, then
 * st->complete is 0), or PS_EGONE (the thread exited), PS_EPERM (it cannot be traced, e.g. another
 * tracer holds it), PS_EIO (it did not stop within the timeout: an interrupt stays pending and
 * ps_native_poll()/detach resume it when it comes), PS_EUSAGE (tid is pysample itself). On
 * every error path the thread is left running (or in the group-stop it was in). */
int ps_native_unwind_stack(struct ps_native *n, pid_t tid, struct ps_native_stack *st,
                           ps_native_stopped_fn fn, void *arg);

/* The same, into a plain array: up to `max` PCs (innermost first), and how long the thread was
 * stopped. Returns the number of PCs or a negative PS_E* code as above. */
int ps_native_unwind(struct ps_native *n, pid_t tid, uint64_t *pcs, int max, uint64_t *stopped_ns);

/* Resumes seized threads that stopped for a signal (re-injecting it) or for an interrupt whose
 * wait timed out, and reaps seized threads that exited. Never blocks. Returns how many threads
 * it resumed or reaped. */
int ps_native_poll(struct ps_native *n);

/* The target's image changed (exec; see also PTRACE_EVENT_EXEC below): forgets every module,
 * unwind table, cached page and symbol, to be read again from the new image on use, so that no
 * PC is named after a symbol of the image that went away. Seized threads stay seized. Strings
 * of earlier symbolizations are invalid from now on. Threads are seized with
 * PTRACE_O_TRACEEXEC, so an exec by a seized thread is noticed (and this done) by itself. */
void ps_native_flush(struct ps_native *n);

/* Number of threads currently seized (for tests and statistics). */
int ps_native_seized_count(const struct ps_native *n);

/* PTRACE_DETACHes every seized thread: interrupt, bounded wait for the stop, detach
 * (re-injecting a signal it stopped for; a thread in group-stop stays in group-stop). Each
 * wait is bounded (at least 1 s: a thread once interrupted must be let go even on a loaded
 * machine); a thread that still has not stopped is let go by the kernel when pysample exits. */
void ps_native_detach_all(struct ps_native *n);

/* Async-signal-safe last resort for a crashing pysample (SIGSEGV/SIGABRT handler): detaches
 * every thread seized by any struct ps_native of this process using only syscalls and a static
 * list, each wait bounded by a few milliseconds. Must run on the tracer thread. */
void ps_native_emergency_detach(void);

/* ---- symbolization ---------------------------------------------------------------------- */

/* Symbolizes one PC of a stack. `innermost` is 1 for the first PC of a stack (the thread's
 * current instruction) and 0 for the others, which are return addresses: those are looked up
 * at pc - 1 so that the call instruction, not the next line, is found. A PC outside every known
 * module refreshes the module list once per unwind (e.g. after dlopen). Returns 0, or
 * PS_ENOSYM with out->name NULL (lib/offset still filled when known). */
int ps_native_symbolize(struct ps_native *n, uint64_t pc, int innermost, struct ps_native_sym *out);

/* Symbolizes st->pcs[0..st->n) into syms (which must hold st->n entries). */
void ps_native_symbolize_stack(struct ps_native *n, const struct ps_native_stack *st,
                               struct ps_native_sym *syms);

/* Cache statistics (tests, -vv). */
struct ps_native_cache_stats {
    uint64_t hits, misses, refreshes;
    int entries;
};
void ps_native_cache_stats(const struct ps_native *n, struct ps_native_cache_stats *out);

/* ---- merging ---------------------------------------------------------------------------- */

enum ps_merged_kind {
    PS_MERGED_PYTHON = 1,
    PS_MERGED_NATIVE = 2,
};

struct ps_merged_frame {
    enum ps_merged_kind kind;
    /* PS_MERGED_PYTHON */
    const struct ps_code *code;
    int32_t pyline;           /* 0 if unknown */
    /* PS_MERGED_NATIVE (strings owned as in struct ps_native_sym) */
    uint64_t pc;
    uint64_t offset;
    const char *name;         /* NULL if unknown */
    const char *lib;
    const char *file;
    int line;
    uint8_t inlined;          /* a call inlined at pc (no physical frame of its own) */
    uint8_t unmatched_eval;   /* an eval-loop activation left without Python frames */
};

struct ps_merge_stats {
    int eval_activations;     /* eval-loop activations found in the native stack */
    int python_activations;   /* groups of Python frames (by ps_py_frame.entry) */
    int unmatched_python;     /* Python frames placed at a boundary without their activation */
    int unmatched_eval;       /* activations left without Python frames */
    int hidden;               /* plumbing frames hidden */
    int truncated;            /* output did not fit in `max` frames */
};

/* Merges one thread's stacks. syms[0..nsyms) is the symbolized native stack, innermost first;
 * `complete` as in struct ps_native_stack. py[0..npy) are the thread's Python frames innermost
 * first, with py[i].entry set on the outermost frame of each eval-loop activation (see
 * struct ps_py_frame). Each activation (a run of adjacent is_eval native frames) is replaced by
 * the Python frames of its group, in order; the groups and activations are paired from the
 * outermost end when the native stack is complete, else from the innermost end. Python frames
 * without an activation are placed next to the nearest paired activation on their side (after
 * all native frames when none was paired); activations without Python frames stay as native
 * frames. Plumbing frames (and calls inlined into an eval loop) are left out unless show_all,
 * and so are unnamed frames in the outermost run of plumbing and unnamed frames of a complete
 * stack (process or thread start in a library without symbols).
 * Writes at most `max` frames innermost first and returns how many; never fails on a count
 * mismatch: `stats` (may be NULL) reports it. */
int ps_native_merge(const struct ps_native_sym *syms, int nsyms, int complete,
                    const struct ps_py_frame *py, int npy, int show_all,
                    struct ps_merged_frame *out, int max, struct ps_merge_stats *stats);

/* Label of a native merged frame, as ps_native_sym_label. */
void ps_native_merged_label(const struct ps_merged_frame *f, char *buf, size_t sz);

/* ---- the symbol table behind ps_native_symbolize (symbolize.c) ----------------------------
 * Usable on its own, e.g. on pysample's own PID in tests. One thread only. */
struct ps_native_symtab;
struct ps_native_symtab *ps_native_symtab_new(pid_t pid);  /* NULL + ps_err_detail() */
void ps_native_symtab_free(struct ps_native_symtab *t);
/* As ps_native_symbolize(). */
int ps_native_symtab_lookup(struct ps_native_symtab *t, uint64_t pc, int innermost,
                            struct ps_native_sym *out);
/* A new stack begins: strings of earlier lookups may be freed from now on, and one module
 * refresh is allowed again. */
void ps_native_symtab_next_generation(struct ps_native_symtab *t);
/* Forgets every module and cached symbol and reports the modules again (the target's image
 * changed, e.g. after exec). Strings of earlier lookups are invalid from now on. */
int ps_native_symtab_flush(struct ps_native_symtab *t);
/* How many times the module list was reported again (libunwind's cache is flushed then). */
uint64_t ps_native_symtab_refreshes(const struct ps_native_symtab *t);
void ps_native_symtab_stats(const struct ps_native_symtab *t, struct ps_native_cache_stats *out);

/* ---- unwind tables (ehframe.c) -----------------------------------------------------------
 * libunwind is told where each module's .eh_frame_hdr table lies in the target's memory, found
 * from the ELF headers mapped there, instead of letting it open the file by the path in the
 * target's maps: that path names another file (or none) when the target runs under another
 * root (a container, a chroot), and a replaced or deleted library is no longer what runs. */

/* Reads len bytes of the target at addr into buf; 0, or negative when not all could be read. */
typedef int (*ps_native_read_fn)(void *arg, uint64_t addr, void *buf, size_t len);

struct ps_native_unwtab {
    uint64_t map_lo, map_hi;  /* the mapping that holds the PC (filled on most errors too) */
    uint64_t lo, hi;          /* the module's loaded range (all its PT_LOAD segments) */
    uint64_t hdr;             /* address of .eh_frame_hdr: the table's offsets are from here */
    uint64_t table;           /* address of the first (initial location, FDE) entry */
    uint64_t count;           /* entries, 8 bytes each */
};

/* Finds the table of the module that maps `ip`, reading the target through `rd`. Returns 0,
 * PS_EFAULT when ip is not in `maps`, or PS_ENOSYM (anonymous memory, no ELF header mapped, no
 * PT_GNU_EH_FRAME, or a table that cannot be searched), with the reason in ps_err_detail(). */
int ps_native_unwtab_find(const struct ps_maps *maps, uint64_t ip, ps_native_read_fn rd,
                          void *arg, struct ps_native_unwtab *out);

#endif
