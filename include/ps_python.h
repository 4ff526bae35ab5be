/* ps_python.h — an attached CPython interpreter: discovery, and sampling every thread's stack.
 *
 * ps_py_attach() finds the interpreter of a PID (ELF symbols, version, layout table + debug
 * offsets); ps_py_sample() walks every interpreter and thread once, without stopping the target,
 * and fills a snapshot. Reads are batched in rounds: one readv for the runtime/interpreter/thread
 * states, which also carries the guesses made from the last snapshot (each thread's data-stack
 * chunk on 3.11+, its frame objects on <= 3.10), then, for what the guesses missed, one for the
 * chunks or current frames and one per level of frames outside what was copied, with code-object
 * validation folded into the same rounds. A stack that keeps its shape costs one read. Code
 * objects are cached by address with their decoded names and line tables.
 */
#ifndef PS_PYTHON_H
#define PS_PYTHON_H

#include <stdint.h>
#include <sys/types.h>

#include "ps_mem.h"
#include "ps_proc.h"
#include "ps_pyoffsets.h"
#include "ps_pytext.h"

#define PS_PY_MAX_DEPTH 4096
#define PS_PY_MAX_THREADS 65536
#define PS_PY_MAX_INTERPS 64

#define PS_CODE_MEMO 4
#define PS_CODE_KEY_MAX 32

/* A code object, decoded once and cached by address. */
struct ps_code {
    uint64_t addr;
    uint8_t key[PS_CODE_KEY_MAX]; /* validation bytes: co_version (3.12/3.13) or the pointers
                                     from co_filename to co_linetable (<= 3.11) */
    uint8_t keylen;
    uint64_t code_start;      /* addr + co_code_adaptive (3.11+) */
    int64_t n_units;          /* bytecode length in offset units (for instr checks), -1 unknown */
    int32_t firstlineno;
    char *name;               /* qualname on 3.11+, co_name before; UTF-8 */
    char *file;               /* co_filename as is */
    char *short_file;         /* shortened for display (see ps_py_short_filename) */
    struct ps_line_range *lines;
    int nlines;
    uint32_t ids[2];          /* interned string ids for the sampler (name, file); 0 = unset */
    int32_t fid_line;         /* the sampler's last (line -> interned frame id) */
    uint32_t fid;
    struct {
        int64_t instr;
        int32_t line;
        int32_t valid;
    } memo[PS_CODE_MEMO];     /* recent instruction -> line lookups */
    uint64_t seen_tick;       /* last tick this entry was validated */
    uint32_t ver_counter;     /* 3.12/3.13: the code counter when it was last validated */
    uint8_t ver_stamped;      /* ver_counter is set */
    uint64_t listed_tick;     /* last tick it was listed for validation in the next snapshot */
    /* Free-threaded 3.14+: where thread-local bytecode copy i starts (co_tlbc->entries[i]),
     * 0 = not read yet; valid while the interpreter's tlbc generation is tlbc_gen. */
    uint64_t *tlbc;
    int32_t ntlbc;
    uint32_t tlbc_gen;
    int used;
};

struct ps_py_frame {
    struct ps_code *code;
    int32_t line;             /* 0 when unknown */
    uint8_t entry;            /* 1: the outermost frame of one C evaluation-loop activation
                                 (<= 3.10: every frame; 3.11: _PyInterpreterFrame.is_entry;
                                 3.12+: the frame just inside an entry/shim frame), and the
                                 outermost frame of a complete walk; for ps_native_merge() */
    int64_t instr;            /* instruction pointer or offset the line was found from */
    int32_t tlbc;             /* free-threaded 3.14+: the thread-local bytecode index, else 0 */
};

struct ps_py_thread {
    uint64_t tstate;
    uint64_t ident;           /* pthread_t */
    uint64_t interp;
    pid_t tid;                /* kernel TID, 0 if unknown */
    int gil;                  /* holds the GIL */
    int attached;             /* 3.13+: its state is _Py_THREAD_ATTACHED (running Python, or C
                                 that did not detach), else 0 */
    int nogil;                /* its interpreter runs without a GIL (a free-threaded build with
                                 the GIL disabled, checked every snapshot): `gil` is always 0
                                 and `attached` says what the GIL holder says elsewhere */
    char state;               /* /proc task state char, 0 if not read */
    int idle;                 /* state != 'R' */
    int err;                  /* 0, or the PS_E* reason this thread's stack is unusable */
    int truncated;            /* stack deeper than the limit: the outermost frames were cut */
    int nframes;
    /* The outermost `kept` frames are the previous snapshot's outermost frames of this slot,
     * unchanged: the same code objects (the code cache lost no entry since) at the same
     * instructions. Counters may reuse what they derived from them last time. */
    int kept;
    struct ps_py_frame *frames; /* innermost first; grown to the deepest stack of this slot */
    int frames_cap;
};

struct ps_py_snapshot {
    int n, cap;
    struct ps_py_thread *t;   /* grows with the number of threads, up to PS_PY_MAX_THREADS */
    uint64_t reads;           /* remote reads this snapshot took */
};

struct ps_thread_cache;
struct ps_code_cache;

struct ps_py {
    pid_t pid;
    struct ps_mem mem;
    struct ps_maps maps;
    struct ps_py_offsets off;       /* effective layout */
    int major, minor, micro;
    uint32_t hexversion;            /* 0 if unknown */
    char version[32];               /* "3.12.1" or "3.9" */
    char *exe;                      /* /proc/PID/exe target */
    char *lib;                      /* file that holds the interpreter symbols */
    char *cwd;                      /* target's working directory, for short file names */
    char *stdlib_prefix;            /* ".../lib/pythonX.Y/" of the interpreter, or NULL */
    uint64_t runtime;               /* &_PyRuntime (3.7+) */
    uint64_t interp_head_addr;      /* &interp_head (2.7/3.6) */
    uint64_t tstate_current_addr;   /* &_PyThreadState_Current (2.7/3.6) */
    uint64_t code_type;             /* &PyCode_Type, 0 if unknown */
    uint64_t init_cleanup;          /* &_Py_InitCleanup (3.13+), 0 if none: the static code
                                       object of the frame that calling a class with a Python
                                       __init__ pushes; no source, so left out of stacks */
    int32_t tid_offset;             /* offset of the TID in struct pthread (<= 3.10), -1 unknown */
    int debug_offsets_used;         /* 3.13+: layout overlaid from _Py_DebugOffsets */
    uint64_t tick;                  /* snapshots taken */
    uint64_t code_generation;       /* 3.14+: last seen interp code-object generation */
    uint32_t tlbc_generation;       /* free-threaded 3.14+: last seen thread-local bytecode
                                       generation (cached co_tlbc entries are valid under it) */
    /* 3.12/3.13: every new code object takes its co_version from a counter (the global
     * _Py_next_func_version on 3.12, interp->func_state.next_version on 3.13). While it does
     * not move, no code object was created, so none can have taken a cached one's address:
     * cached entries validated at the current value need no re-validation. */
    uint64_t code_counter_addr;     /* 3.12: &_Py_next_func_version, 0 if not found */
    uint32_t code_counter;          /* the counter as read by the last snapshot */
    int code_gate;                  /* code_counter was read (and is not 0, i.e. not stuck) */
    struct ps_code_cache *codes;
    struct ps_thread_cache *threads;
    int read_thread_state;          /* read /proc task state for each thread (idle detection) */
    uint64_t gil_trust_ns;          /* a running GIL holder's state is re-read after this long
                                       (0: PS_GIL_TRUST_NS, 10 ms) */
    uint64_t idle_trust_ns;         /* an idle thread whose stack does not move is re-read after
                                       this long, stretched per thread by up to 15/16 more
                                       (0: PS_IDLE_TRUST_NS, 100 ms) */
    uint64_t state_reads;           /* /proc task state reads, to date */
    uint64_t sched_reads;           /* /proc task schedstat reads (sleepers' re-checks) */
    int sched_fds_left;             /* schedstat descriptors it may still keep open: half the
                                       descriptor limit goes to them, the rest to state files */
    char how[1024];                 /* -v: how the interpreter was found */
};

/* Attach: validate the PID, find the interpreter, pick the layout. On failure returns a PS_E*
 * code and leaves a one-line explanation in ps_err_detail(). Never stops the target. */
int ps_py_attach(struct ps_py *py, pid_t pid);
void ps_py_detach(struct ps_py *py);

/* Chooses py->off for py->major/minor: the built-in table of the target's build kind (default,
 * or free-threaded as the _Py_DebugOffsets say), overlaid on 3.13+ with the _Py_DebugOffsets read
 * at py->runtime (validated); newer minors run on the debug offsets alone, on the newest table of
 * the same kind, when a known position layout validates strictly. Used by attach and by tests. */
int ps_py_pick_layout(struct ps_py *py);

/* For unit tests: attach to an interpreter laid out in a fake memory source. `py` must have
 * mem (fake), off, major/minor and runtime or interp_head_addr set; the rest is initialised.
 * Also the last step of ps_py_attach. Fails with PS_EVERSION when py->off puts a field the
 * walker reads outside the bytes it copies per thread state or frame (corrupt debug offsets). */
int ps_py_attach_fake(struct ps_py *py);

/* 1 when the target is a free-threaded build whose (main interpreter's) GIL is disabled now,
 * 0 when it has a GIL (any default build; a free-threaded one run with PYTHON_GIL=1), or a
 * negative PS_E* when the words cannot be read. A few remote reads. */
int ps_py_gil_disabled(struct ps_py *py);

/* <= 3.10 keeps no native TID: the walker finds where glibc's struct pthread keeps it. `blk`
 * holds `n` blocks of `span` bytes read at distinct threads' pthread_t, `tids` the process's
 * TIDs listed after them, `pid` its main thread's. Returns the offset, or -1 when the blocks do
 * not tell. Pure (no remote reads): the walker's decision, exposed for tests. */
int ps_pick_tid_offset(const uint8_t *blk, int n, int span, const pid_t *tids, int ntids,
                       pid_t pid);

/* Allocates/frees a snapshot's thread array. */
void ps_py_snapshot_init(struct ps_py_snapshot *s);
void ps_py_snapshot_release(struct ps_py_snapshot *s);

/* One walk of every thread. Returns 0 (per-thread failures are in t[i].err), or a PS_E* code
 * when the process or interpreter is gone or unreadable. */
int ps_py_sample(struct ps_py *py, struct ps_py_snapshot *s);

/* Thread name for display: the threading.Thread name where it can be read (2.7, 3.6-3.15 and
 * free-threaded 3.13t-3.15t), else the OS thread name (/proc comm); "" if unknown. */
void ps_py_thread_name(struct ps_py *py, const struct ps_py_thread *t, char *buf, size_t sz);

/* Shortens a code file name the way users read it: relative to the target's working
 * directory, after site-packages/ or dist-packages/, or after the stdlib directory. */
const char *ps_py_short_filename(const struct ps_py *py, const char *file);

#endif
