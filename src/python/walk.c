/* walk.c — one snapshot of every thread's Python stack, read without stopping the target.
 *
 * Reads go in rounds, each one process_vm_readv for all threads at once:
 *   round 0: interpreter head, GIL holder, cached interpreter and thread states, the code
 *            counter (3.12/3.13) and the keys of the previous snapshot's code objects it does
 *            not vouch for, and the guesses: what the previous snapshot found for each thread
 *            (its data-stack chunk, _PyCFrame and frames outside the chunk on 3.11+, its chain
 *            of frame objects on <= 3.10), used only where this snapshot's pointers lead;
 *   round 1: each thread's used data-stack chunk (3.11+; plus the _PyCFrame on 3.11/3.12) or
 *            its current frame object (<= 3.10), where round 0 guessed wrong;
 *   round k: every frame that lay outside what was copied (entry frames on the C stack,
 *            generator frames, older chunks, or the next frame object), plus validation of
 *            code objects first seen in this snapshot.
 * Frames are then resolved locally. When the cached thread list no longer matches what the
 * target holds, the lists are walked again with dependent reads and the cache rebuilt.
 * ps_py_sample at the end of the file reads as that sequence of steps: ps_round0_plan,
 * ps_tick_read, ps_round0_check, ps_round1_plan/_check, ps_walk_rounds, ps_resolve_threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ps_code_cache.h"
#include "ps_python.h"
#include "ps_threadnames.h"
#include "ps_util.h"

#define PS_CHUNK_COPY_MAX (1u << 20)   /* bytes of one data-stack chunk copied per sample */
#define PS_FRAME_READ_MAX 512          /* bytes read for one frame */
#define PS_TS_READ_MAX 4096            /* bytes read for one thread state */
#define PS_MAX_REGIONS 512            /* copies per thread: current chunk, older chunks, frames
                                          (a 4096-frame stack spans a few dozen 16 KiB chunks) */
#define PS_VALIDATE_MAX 512            /* code objects validated in round 0 */
#define PS_STATE_SYSCALL 0            /* ps_tcache_entry.state_src */
#define PS_STATE_STAT 1
#define PS_SPEC_SLACK 512              /* bytes read past a chunk's last top (guess) */
#define PS_FULL_CHECK_NS 100000000ull  /* re-check interpreter list and GIL pointers (100 ms) */
#define PS_GIL_TRUST_NS 10000000ull    /* a running GIL holder's state is re-read after 10 ms */
#define PS_IDLE_TRUST_NS 100000000ull  /* a still idle thread's state is re-read after 100-200 ms */

/* Per-thread cached identity and scratch state, keyed by thread-state address. */
struct ps_tcache_entry {
    uint64_t tstate;
    uint64_t ident;
    pid_t tid;
    int statfd;                 /* /proc/PID/task/TID/syscall or stat, kept open */
    int state_src;              /* which of the two statfd is (ps_task_state) */
    int schedfd;                /* /proc/PID/task/TID/schedstat, kept open; -2: unreadable */
    uint64_t quiet_sched;       /* hash of its schedstat line when last found asleep, 0: none */
    uint64_t running_seen_ns;   /* last time the kernel showed it running while it held the GIL */
    /* The last time the kernel showed it not running, and where its Python stack stood then
     * (innermost code and instruction, depth): see ps_resolve_activity. */
    uint64_t quiet_ns;
    uint64_t quiet_first_ns;    /* since when it has been asleep at that stack */
    uint64_t quiet_code;
    int64_t quiet_instr;
    int quiet_depth;
    char quiet_state;
    uint64_t interp;            /* its interpreter (thread names are looked up per interpreter) */
    char name[64];
    int pyname_tried;           /* threading.Thread name looked up (ps_py_thread_name) */
    int comm_tried;             /* name read from /proc comm (on demand: names cost a file each) */
};

struct ps_region {
    uint64_t addr;
    uint32_t len;
    uint8_t *buf;               /* the copy of addr: base + PS_COPY_SHIFT(addr) */
    uint8_t *base;              /* PS_COPY_ALIGN-aligned allocation of cap bytes */
    uint32_t cap;
    uint8_t chunk;              /* starts at a data-stack chunk header */
    uint8_t used;               /* a frame was found in it this snapshot */
};

/* Read-ahead (3.11+): a copy outside the current chunk that the previous snapshot of a thread
 * needed (an older chunk, an entry frame on the C stack, a generator frame). */
struct ps_hint {
    uint64_t addr;
    uint32_t len;
    uint8_t chunk;
};

struct ps_twalk {
    uint8_t ts[PS_TS_READ_MAX];  /* copy of the thread state */
    uint64_t tstate;
    uint64_t next_frame;        /* frame to resolve next; 0 = done */
    uint64_t last_chunk_frame;  /* for the monotonic check inside a chunk */
    uint64_t cycle_mark;        /* Brent's cycle check over the frames walked (see below) */
    uint32_t cycle_power, cycle_len;
    uint64_t chunk_addr;        /* current chunk (3.11+) */
    uint64_t cframe_frame;      /* 3.11/3.12: current frame read from the _PyCFrame */
    int nregions;
    int regcap, last_region;    /* regions allocated; the one the last lookup hit */
    struct ps_region *regions;  /* grown on demand, up to PS_MAX_REGIONS */
    uint8_t frame_buf[PS_FRAME_READ_MAX]; /* a frame read directly */
    uint64_t frame_buf_addr;
    int pending;                /* 1: frame_buf holds next_frame after this round */
    int pending_region;         /* >= 0: regions[i] is being read this round */
    uint64_t no_guess_frame;    /* the older-chunk guess failed for this frame: read it alone
                                   (only that frame: the guess is tried again for the next one,
                                   else one generator frame just above an older chunk made
                                   every later frame cost its own round) */
    int pending_guess;          /* the pending region is an older-chunk guess */
    /* Read-ahead: the copies outside the current chunk that the last snapshot of this thread
     * used are read again in round 0, together with the thread state, so that a stack that
     * keeps its shape costs the same reads however deep it is (older chunks) and however many
     * C entry frames or generator frames it holds. A stale hint only costs bytes: a frame is
     * taken from a copy only when this snapshot's chain leads to its address. */
    int nhints, hints_issued;
    int hintcap;
    struct ps_hint *hints;      /* hintcap of them, and as many hint_ok */
    /* Speculation: what round 1 would read is read in round 0 already, together with the
     * thread state, from where the previous snapshot of this thread found it: the used part of
     * its data-stack chunk (3.11+, up to a little past the old top), its _PyCFrame (3.11/3.12)
     * and the frames outside the chunk (hints), or its whole chain of frame objects (<= 3.10).
     * A copy is used only when the fresh thread state (or the frame chain read this time)
     * leads to its address, so a stale guess costs bytes, never correctness; a stack that
     * keeps its shape then costs one read per sample, however deep. */
    uint64_t spec_tstate;       /* the thread state the guesses were made for, 0 = none */
    uint64_t spec_tick;         /* the snapshot whose round 0 carried them */
    uint64_t spec_chunk;        /* data-stack chunk last time (3.11+), 0 = none */
    uint32_t spec_len;          /* bytes of it read in round 0 */
    uint64_t spec_cf;           /* _PyCFrame address last time (3.11/3.12), 0 = none */
    uint64_t spec_cf_frame;     /* its current_frame, read in round 0 */
    int spec_chunk_iov, spec_cf_iov, spec_hint_iov, spec_frame_iov; /* round-0 iovs, -1 none */
    int spec_chunk_ok, spec_cf_ok;
    uint8_t *hint_ok;
    int chunk_iov, cf_iov;      /* round-1 iovs, -1 none */
    /* <= 3.10: the frame objects of the last walk, innermost first, and their fresh copies. */
    uint64_t *fspec_addr;
    uint8_t *fspec_buf;         /* nfspec slots of ps_fspec_stride() bytes (ps_fspec_copy) */
    uint8_t *fspec_ok;
    uint32_t *fspec_hash;       /* address -> index + 1, open addressing, fspec_hcap slots */
    int nfspec, fspec_cap, fspec_hcap, fspec_cursor;
    uint64_t *raw_faddr;        /* <= 3.10: address of each frame walked */
    int iov_index;              /* this round's read for this thread */
    int tce;                    /* index of this thread's ps_tcache_entry last time (a hint) */
    /* The frames walked, innermost first: nraw of rawcap (grown with the stack, at most
     * PS_PY_MAX_DEPTH, so that thousands of shallow threads cost little memory each). */
    int nraw, rawcap;
    uint64_t *raw_code;
    int64_t *raw_instr;
    uint8_t *raw_entry;         /* native merging: frame begins an eval activation */
    struct ps_code **raw_ptr;   /* cache entry found while walking, or NULL */
    uint32_t *raw_gen;          /* code cache generation when raw_ptr was found */
    int32_t *raw_tlbc;          /* free-threaded 3.14+: frame's tlbc_index, else 0 */
    int err;
    int truncated;
    int done;
    /* A thread the last snapshot found asleep (idle, without the GIL, its stack unmoved, see
     * ps_resolve_activity) has no guesses read in round 0; when round 0 shows its thread state
     * as it was then (the same current frame, data-stack chunk and top, thread id) and it did
     * not take the GIL, its stack is not read again but taken from the last walk (`skip`), until
     * ps_quiet_until. One sleeping thread then costs the read of its thread state alone. */
    int quiet, skip;
    uint64_t quiet_ns, quiet_first_ns; /* copies of its ps_tcache_entry's */
    pid_t quiet_tid;
    uint64_t seen_frame, seen_chunk, seen_top, seen_ident;
    /* The last resolve of this slot (see ps_kept_frames): the snapshot it wrote, the code
     * cache generation it ran under, and whether it completed. */
    const struct ps_py_snapshot *resolved_snap;
    uint32_t resolved_gen;
    int resolved_ok;
};

/* An open-addressing map from a non-zero address to an index (thread states to their cache
 * entry or list position), so that nothing per thread costs a scan of every thread. */
struct ps_addrmap {
    uint64_t *keys;             /* 0 = empty slot */
    int *vals;
    uint32_t cap;               /* a power of two, or 0 */
    uint32_t n;
};

struct ps_thread_cache {
    struct ps_tcache_entry *v;
    int n, cap;
    struct ps_addrmap vmap;     /* tstate -> index in v */
    struct ps_addrmap lmap;     /* tstate -> index in tstates (the last rebuild's list) */
    /* list cache: interpreters and their thread states, in list order */
    uint64_t interps[PS_PY_MAX_INTERPS];
    uint64_t gil_addr[PS_PY_MAX_INTERPS];
    int ninterps;
    uint64_t *tstates;
    uint64_t *tstate_interp;
    int ntstates, tcap;
    int valid;
    /* walk scratch, one per thread, grown on demand */
    struct ps_twalk **walks;
    int nwalks;
    /* validation of code objects */
    uint64_t *val_codes;
    uint8_t (*val_buf)[PS_CODE_KEY_MAX];
    int nval, valcap;
    uint64_t *prev_codes;       /* distinct codes referenced by the previous snapshot */
    int nprev, prevcap;
    int prev_all_current;       /* ... and the code counter vouched for every one of them, */
    uint32_t prev_counter;      /* at this value */
    uint64_t last_full_ns;      /* when the interpreter list was last checked */
    /* read lists, kept between snapshots so a steady-state sample allocates nothing */
    struct ps_iov *iov;
    int iovcap;
    int *ok;
    int okcap;
};

/* The state of one ps_py_sample call: the read list being planned (kept in the thread cache
 * between snapshots so a steady-state sample allocates nothing) and what round 0 brought back
 * that later steps need. */
struct ps_tick {
    struct ps_thread_cache *tc;
    int niov;                   /* entries of tc->iov planned for this round */
    uint64_t now;
    int full;                   /* this tick re-reads the interpreter list and GIL pointers */
    int fresh;                  /* the thread lists were rebuilt during this tick */
    int32_t gil_lo, gil_len;    /* the span of a GIL struct read in round 0 */
    int ts_size;                /* bytes of a thread state copied */
    uint64_t head, gil_word[2], generation;
    uint64_t interp_words[PS_PY_MAX_INTERPS][4]; /* next, tstate head, GIL pointer */
    uint64_t gil_state[PS_PY_MAX_INTERPS][3];    /* last holder, locked, enabled */
    uint32_t tlbc_generation;   /* free-threaded 3.14+: read in round 0 */
    uint8_t gil_span[PS_PY_MAX_INTERPS][32];
    int first_val_iov;          /* round 0: the first read that is no list read */
    uint32_t counter;           /* the code counter read in round 0 */
    int counter_iov;
    int recheck_budget;         /* sleeping threads whose window ran out asked this tick */
};

/* Adds one read to the round being planned; returns its index. */
static int ps_tick_add(struct ps_tick *tk, uint64_t addr, void *buf, size_t len)
{
    struct ps_thread_cache *tc = tk->tc;
    if (tk->niov == tc->iovcap) {
        tc->iovcap = PS_MAX(tc->iovcap * 2, 64);
        tc->iov = ps_xrealloc(tc->iov, sizeof(struct ps_iov) * (size_t)tc->iovcap);
    }
    tc->iov[tk->niov] = (struct ps_iov){addr, buf, len};
    return tk->niov++;
}

/* Reads the planned round as one batch; tc->ok[i] then says whether read i arrived. */
static int ps_tick_read(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    if (tk->niov > tc->okcap) {
        tc->okcap = PS_MAX(tk->niov, tc->okcap * 2);
        tc->ok = ps_xrealloc(tc->ok, sizeof(int) * (size_t)tc->okcap);
    }
    return ps_mem_readv_each(&py->mem, tc->iov, tk->niov, tc->ok);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rd64(const uint8_t *b, int32_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

static uint32_t rd32(const uint8_t *b, int32_t off)
{
    uint32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

static uint32_t ps_addr_hash(uint64_t addr, uint32_t cap)
{
    return (uint32_t)(((addr >> 3) * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* Empties the map, with room for `want` keys. */
static void ps_addrmap_reset(struct ps_addrmap *m, int want)
{
    uint32_t cap = 64;
    while (cap < 2u * (uint32_t)want)
        cap *= 2;
    if (cap > m->cap) {
        free(m->keys);
        free(m->vals);
        m->keys = ps_xmalloc(sizeof(uint64_t) * cap);
        m->vals = ps_xmalloc(sizeof(int) * cap);
        m->cap = cap;
    }
    memset(m->keys, 0, sizeof(uint64_t) * m->cap);
    m->n = 0;
}

/* The index stored for addr, or -1. */
static int ps_addrmap_get(const struct ps_addrmap *m, uint64_t addr)
{
    if (!m->cap || !addr)
        return -1;
    for (uint32_t h = ps_addr_hash(addr, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (m->keys[h] == addr)
            return m->vals[h];
        if (!m->keys[h])
            return -1;
    }
}

/* Stores addr -> val; returns 1 when addr was there already (its value is kept). */
static int ps_addrmap_put(struct ps_addrmap *m, uint64_t addr, int val)
{
    if (2 * (m->n + 1) > m->cap) {
        struct ps_addrmap old = *m;
        memset(m, 0, sizeof *m);
        ps_addrmap_reset(m, (int)old.n + 1);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.keys[i])
                ps_addrmap_put(m, old.keys[i], old.vals[i]);
        free(old.keys);
        free(old.vals);
    }
    uint32_t h = ps_addr_hash(addr, m->cap);
    while (m->keys[h] && m->keys[h] != addr)
        h = (h + 1) & (m->cap - 1);
    if (m->keys[h])
        return 1;
    m->keys[h] = addr;
    m->vals[h] = val;
    m->n++;
    return 0;
}

static void ps_addrmap_release(struct ps_addrmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static struct ps_twalk *ps_walk_slot(struct ps_thread_cache *tc, int i)
{
    if (i >= tc->nwalks) {
        int n = PS_MAX(i + 1, tc->nwalks * 2);
        tc->walks = ps_xrealloc(tc->walks, sizeof(*tc->walks) * (size_t)n);
        for (int k = tc->nwalks; k < n; k++) {
            tc->walks[k] = ps_xcalloc(1, sizeof(struct ps_twalk));
            tc->walks[k]->tce = -1;
        }
        tc->nwalks = n;
    }
    return tc->walks[i];
}

static struct ps_tcache_entry *ps_tcache_get(struct ps_py *py, uint64_t tstate)
{
    struct ps_thread_cache *tc = py->threads;
    int i = ps_addrmap_get(&tc->vmap, tstate);
    if (i >= 0)
        return &tc->v[i];
    if (tc->n == tc->cap) {
        tc->cap = tc->cap ? tc->cap * 2 : 16;
        tc->v = ps_xrealloc(tc->v, sizeof(struct ps_tcache_entry) * (size_t)tc->cap);
    }
    ps_addrmap_put(&tc->vmap, tstate, tc->n);
    struct ps_tcache_entry *e = &tc->v[tc->n++];
    memset(e, 0, sizeof *e);
    e->tstate = tstate;
    e->statfd = -1;
    e->schedfd = -1;
    return e;
}

static void ps_tcache_close_sched(struct ps_py *py, struct ps_tcache_entry *e)
{
    if (e->schedfd >= 0) {
        close(e->schedfd);
        py->sched_fds_left++;
    }
    e->schedfd = -1;
}

static void ps_tcache_close(struct ps_py *py, struct ps_tcache_entry *e)
{
    if (e->statfd >= 0)
        close(e->statfd);
    e->statfd = -1;
    ps_tcache_close_sched(py, e);
}

/* Drops the entries of thread states no longer listed (after a rebuild, whose list lmap
 * indexes), and re-indexes the rest. */
static void ps_tcache_drop_stale(struct ps_py *py)
{
    struct ps_thread_cache *tc = py->threads;
    for (int i = 0; i < tc->n;) {
        if (ps_addrmap_get(&tc->lmap, tc->v[i].tstate) >= 0) {
            i++;
            continue;
        }
        ps_tcache_close(py, &tc->v[i]);
        tc->v[i] = tc->v[--tc->n];
    }
    ps_addrmap_reset(&tc->vmap, tc->n);
    for (int i = 0; i < tc->n; i++)
        ps_addrmap_put(&tc->vmap, tc->v[i].tstate, i);
}

/* Is the thread running (or runnable)? /proc/PID/task/TID/syscall answers "running" for a task
 * in TASK_RUNNING, for about a third of the cost of formatting the whole stat line (1 us
 * against 3.3 us here); any other answer (a blocked system call's number and arguments) means
 * it sleeps. Where that file cannot be read (no CONFIG_HAVE_ARCH_TRACEHOOK, a stricter LSM),
 * the state letter of /proc/PID/task/TID/stat is used. Returns 'R', the stat letter, 'S' for
 * "not running" from the syscall file, or 0 when neither can be read. */
static char ps_task_state(struct ps_py *py, struct ps_tcache_entry *e)
{
    if (!e->tid || !py->pid)
        return 0;
    char path[96];
    if (e->statfd < 0 && e->state_src == PS_STATE_SYSCALL) {
        snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)py->pid, (int)e->tid);
        e->statfd = open(path, O_RDONLY | O_CLOEXEC);
        if (e->statfd < 0 && (errno == EMFILE || errno == ENFILE))
            return 0;
        if (e->statfd < 0)
            e->state_src = PS_STATE_STAT;
    }
    if (e->statfd < 0 && e->state_src == PS_STATE_STAT) {
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)py->pid, (int)e->tid);
        e->statfd = open(path, O_RDONLY | O_CLOEXEC);
        if (e->statfd < 0)
            return 0;
    }
    char buf[512];
    py->state_reads++;
    ssize_t n = pread(e->statfd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        close(e->statfd);
        e->statfd = -1;
        if (e->state_src == PS_STATE_SYSCALL && errno != ESRCH) {
            e->state_src = PS_STATE_STAT; /* denied or unsupported here: try stat next time */
        }
        return 0;
    }
    buf[n] = '\0';
    if (e->state_src == PS_STATE_SYSCALL)
        return strncmp(buf, "running", 7) == 0 ? 'R' : 'S';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* A fingerprint of /proc/PID/task/TID/schedstat (CPU time, run-queue wait, times scheduled in),
 * or 0 when that file cannot be read. A third of the cost of the syscall file here (1.1 us
 * against 3.0 us). The count of times scheduled in grows as soon as the thread gets a CPU, so a
 * sleeper whose fingerprint is the one read just before it was last found asleep has not run
 * since: it is asleep still without asking for its state. One descriptor more per thread: kept
 * open only while descriptors are plentiful (py->sched_fds_left). */
static uint64_t ps_task_sched(struct ps_py *py, struct ps_tcache_entry *e)
{
    if (!e->tid || !py->pid || e->schedfd == -2)
        return 0;
    if (e->schedfd < 0) {
        if (py->sched_fds_left <= 0)
            return 0;
        char path[96];
        snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)py->pid, (int)e->tid);
        e->schedfd = open(path, O_RDONLY | O_CLOEXEC);
        if (e->schedfd < 0) {
            e->schedfd = errno == EMFILE || errno == ENFILE ? -1 : -2;
            if (e->schedfd == -1)
                py->sched_fds_left = 0;
            return 0;
        }
        py->sched_fds_left--;
    }
    char buf[96];
    py->sched_reads++;
    ssize_t n = pread(e->schedfd, buf, sizeof buf, 0);
    if (n <= 0) {
        ps_tcache_close_sched(py, e);
        return 0;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (ssize_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)buf[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* ---- thread lists ----------------------------------------------------------------------- */

static int ps_list_add_tstate(struct ps_thread_cache *tc, uint64_t ts, uint64_t interp)
{
    if (tc->ntstates >= PS_PY_MAX_THREADS)
        return PS_ECORRUPT;
    if (tc->ntstates == tc->tcap) {
        tc->tcap = tc->tcap ? tc->tcap * 2 : 16;
        tc->tstates = ps_xrealloc(tc->tstates, sizeof(uint64_t) * (size_t)tc->tcap);
        tc->tstate_interp = ps_xrealloc(tc->tstate_interp, sizeof(uint64_t) * (size_t)tc->tcap);
    }
    tc->tstates[tc->ntstates] = ts;
    tc->tstate_interp[tc->ntstates] = interp;
    tc->ntstates++;
    return 0;
}

static uint64_t ps_interp_head_ptr(const struct ps_py *py)
{
    if (py->off.flags & PS_PYF_INTERP_HEAD_SYM)
        return py->interp_head_addr;
    return py->runtime + (uint64_t)py->off.rt_interp_head;
}

/* 3.12/3.13: where the counter that numbers new code objects lives, 0 if unknown. With
 * several interpreters on 3.13 each has its own counter: the gate is then not used. */
static uint64_t ps_code_counter_addr(const struct ps_py *py)
{
    const struct ps_thread_cache *tc = py->threads;
    if (py->off.is_code_counter > 0)
        return tc->valid && tc->ninterps == 1 ? tc->interps[0] + (uint64_t)py->off.is_code_counter
                                              : 0;
    return py->code_counter_addr;
}

/* Is a cached entry known valid without reading it? Only while the code counter has not moved
 * since the entry was last validated (see ps_py.code_counter). */
static int ps_code_current(const struct ps_py *py, const struct ps_code *e, uint32_t counter)
{
    return py->code_gate && e->ver_stamped && e->ver_counter == counter;
}

static void ps_code_stamp(const struct ps_py *py, struct ps_code *e)
{
    e->ver_stamped = (uint8_t)(py->code_gate != 0);
    e->ver_counter = py->code_counter;
}

/* Slow path: walk interpreters and thread states with dependent reads, rebuilding the cache.
 * Thread-state copies land in the walk slots, so the snapshot can use them directly. */
static int ps_lists_rebuild(struct ps_py *py)
{
    struct ps_thread_cache *tc = py->threads;
    const struct ps_py_offsets *o = &py->off;
    tc->valid = 0;
    tc->ninterps = 0;
    tc->ntstates = 0;
    ps_addrmap_reset(&tc->lmap, PS_MAX(tc->tcap, 16));
    uint64_t interp = 0;
    int rc;
    if (!(o->flags & PS_PYF_INTERP_HEAD_SYM) || py->interp_head_addr) {
        rc = ps_mem_read_u64(&py->mem, ps_interp_head_ptr(py), &interp);
    } else {
        /* 2.7/3.6 without interp_head: the GIL holder's interpreter. */
        uint64_t cur = 0;
        rc = ps_mem_read_u64(&py->mem, py->tstate_current_addr, &cur);
        if (rc == 0 && cur)
            rc = ps_mem_read_u64(&py->mem, cur + (uint64_t)o->ts_interp, &interp);
    }
    if (rc < 0)
        return rc;
    if (!interp) {
        ps_err_set("the interpreter is not initialised yet, or already finalised");
        return PS_ENOTPY;
    }
    while (interp && tc->ninterps < PS_PY_MAX_INTERPS) {
        for (int k = 0; k < tc->ninterps; k++)
            if (tc->interps[k] == interp)
                return PS_ECORRUPT;
        uint64_t head, next, gil = 0;
        if ((rc = ps_mem_read_u64(&py->mem, interp + (uint64_t)o->is_tstate_head, &head)) < 0 ||
            (rc = ps_mem_read_u64(&py->mem, interp + (uint64_t)o->is_next, &next)) < 0)
            return rc;
        if (o->gil_model == PS_GIL_INTERP &&
            (rc = ps_mem_read_u64(&py->mem, interp + (uint64_t)o->is_ceval_gil, &gil)) < 0)
            return rc;
        tc->interps[tc->ninterps] = interp;
        tc->gil_addr[tc->ninterps] = gil;
        tc->ninterps++;
        uint64_t ts = head;
        while (ts) {
            if (ps_addrmap_put(&tc->lmap, ts, tc->ntstates))
                return PS_ECORRUPT; /* a cycle */
            struct ps_twalk *w = ps_walk_slot(tc, tc->ntstates);
            /* At most the copy's size: a layout from the target's _Py_DebugOffsets may give a
             * larger struct (the fields read were checked to lie inside, ps_layout_fits). */
            if ((rc = ps_mem_read(&py->mem, ts, w->ts,
                                  (size_t)PS_MIN(o->ts_size, PS_TS_READ_MAX))) < 0)
                return rc;
            if (rd64(w->ts, o->ts_interp) != interp)
                return PS_ECORRUPT;
            if ((rc = ps_list_add_tstate(tc, ts, interp)) < 0)
                return rc;
            ts = rd64(w->ts, o->ts_next);
        }
        interp = next;
    }
    tc->valid = 1;
    return 0;
}

/* ---- frames ----------------------------------------------------------------------------- */

static const uint8_t *ps_region_lookup(struct ps_twalk *w, uint64_t addr, size_t len)
{
    /* Frames follow each other inside a chunk: the region of the last hit first. */
    int last = w->last_region < w->nregions ? w->last_region : 0;
    for (int k = 0; k < w->nregions; k++) {
        int i = k == 0 ? last : (k <= last ? k - 1 : k);
        struct ps_region *r = &w->regions[i];
        if (addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr)) {
            r->used = 1;
            w->last_region = i;
            return r->buf + (addr - r->addr);
        }
    }
    if (w->frame_buf_addr && addr == w->frame_buf_addr)
        return w->frame_buf;
    return NULL;
}

/* Makes regions[i] ready to receive a copy of [addr, addr + len), at the same alignment as
 * addr modulo PS_COPY_ALIGN (see ps_util.h). Its old contents are not kept. */
static void ps_region_reserve(struct ps_twalk *w, int i, uint64_t addr, size_t len)
{
    if (i >= w->regcap) {
        int cap = PS_MIN(PS_MAX(i + 1, w->regcap * 2), PS_MAX_REGIONS);
        w->regions = ps_xrealloc(w->regions, sizeof(struct ps_region) * (size_t)cap);
        memset(w->regions + w->regcap, 0, sizeof(struct ps_region) * (size_t)(cap - w->regcap));
        w->regcap = cap;
    }
    struct ps_region *r = &w->regions[i];
    size_t need = PS_COPY_SHIFT(addr) + len;
    if (r->cap < need) {
        size_t cap = PS_MAX(need, (size_t)r->cap + r->cap / 2);
        r->base = ps_xalloc_aligned(r->base, cap);
        r->cap = (uint32_t)cap;
    }
    r->buf = r->base + PS_COPY_SHIFT(addr);
}

static void ps_region_set(struct ps_twalk *w, int i, uint64_t addr, size_t len)
{
    ps_region_reserve(w, i, addr, len); /* may move the array */
    struct ps_region *r = &w->regions[i];
    r->addr = addr;
    r->len = (uint32_t)len;
    r->chunk = 0;
    r->used = 0;
}

static uint32_t ps_fspec_slot(uint64_t addr, int hcap)
{
    return (uint32_t)(((addr >> 3) * 0x9E3779B97F4A7C15ull) >> 40) & (uint32_t)(hcap - 1);
}

/* Slot k of fspec_buf holds frame object fspec_addr[k] at its own alignment (see ps_util.h). */
static size_t ps_fspec_stride(size_t flen)
{
    return ((flen + PS_COPY_ALIGN - 1) & ~(size_t)(PS_COPY_ALIGN - 1)) + PS_COPY_ALIGN;
}

static uint8_t *ps_fspec_copy(const struct ps_twalk *w, int k, size_t flen)
{
    return w->fspec_buf + (size_t)k * ps_fspec_stride(flen) + PS_COPY_SHIFT(w->fspec_addr[k]);
}

/* <= 3.10: the frame objects this walk went through become the next snapshot's guesses. */
static void ps_fspec_remember(struct ps_twalk *w, size_t flen)
{
    int n = w->err ? 0 : w->nraw;
    if (n > w->fspec_cap) {
        w->fspec_addr = ps_xrealloc(w->fspec_addr, sizeof(uint64_t) * (size_t)n);
        w->fspec_buf = ps_xalloc_aligned(w->fspec_buf, ps_fspec_stride(flen) * (size_t)n);
        w->fspec_ok = ps_xrealloc(w->fspec_ok, (size_t)n);
        w->fspec_cap = n;
    }
    int hcap = 16;
    while (hcap < 2 * n)
        hcap *= 2;
    if (hcap > w->fspec_hcap) {
        w->fspec_hash = ps_xrealloc(w->fspec_hash, sizeof(uint32_t) * (size_t)hcap);
        w->fspec_hcap = hcap;
    }
    memset(w->fspec_hash, 0, sizeof(uint32_t) * (size_t)w->fspec_hcap);
    for (int k = 0; k < n; k++) {
        uint64_t a = w->raw_faddr[k];
        w->fspec_addr[k] = a;
        uint32_t h = ps_fspec_slot(a, w->fspec_hcap);
        while (w->fspec_hash[h] && w->fspec_addr[w->fspec_hash[h] - 1] != a)
            h = (h + 1) & (uint32_t)(w->fspec_hcap - 1);
        if (!w->fspec_hash[h])
            w->fspec_hash[h] = (uint32_t)k + 1;
    }
    w->nfspec = n;
}

/* <= 3.10: the copy of frame object f read in round 0, or NULL. Walks go innermost first, so
 * the next guess is usually the one after the last hit; the hash finds the rest (a stack that
 * grew or shrank at the top). */
static const uint8_t *ps_fspec_lookup(struct ps_twalk *w, uint64_t f, size_t flen)
{
    if (w->spec_frame_iov < 0 || !w->nfspec)
        return NULL;
    int k = -1;
    if (w->fspec_cursor < w->nfspec && w->fspec_addr[w->fspec_cursor] == f) {
        k = w->fspec_cursor;
    } else {
        uint32_t h = ps_fspec_slot(f, w->fspec_hcap);
        for (int probes = 0; probes < w->fspec_hcap && w->fspec_hash[h]; probes++) {
            if (w->fspec_addr[w->fspec_hash[h] - 1] == f) {
                k = (int)w->fspec_hash[h] - 1;
                break;
            }
            h = (h + 1) & (uint32_t)(w->fspec_hcap - 1);
        }
    }
    if (k < 0 || !w->fspec_ok[k])
        return NULL;
    w->fspec_cursor = k + 1;
    return ps_fspec_copy(w, k, flen);
}

/* Room for one more raw frame (arrays grow by doubling, up to PS_PY_MAX_DEPTH). */
static void ps_raw_reserve(struct ps_twalk *w)
{
    if (w->nraw < w->rawcap)
        return;
    int cap = PS_MIN(PS_MAX(w->rawcap * 2, 64), PS_PY_MAX_DEPTH);
    w->raw_faddr = ps_xrealloc(w->raw_faddr, sizeof(uint64_t) * (size_t)cap);
    w->raw_code = ps_xrealloc(w->raw_code, sizeof(uint64_t) * (size_t)cap);
    w->raw_instr = ps_xrealloc(w->raw_instr, sizeof(int64_t) * (size_t)cap);
    w->raw_entry = ps_xrealloc(w->raw_entry, (size_t)cap);
    w->raw_ptr = ps_xrealloc(w->raw_ptr, sizeof(struct ps_code *) * (size_t)cap);
    w->raw_gen = ps_xrealloc(w->raw_gen, sizeof(uint32_t) * (size_t)cap);
    w->raw_tlbc = ps_xrealloc(w->raw_tlbc, sizeof(int32_t) * (size_t)cap);
    w->rawcap = cap;
}

/* Appends a raw frame; returns 0 when the stack is cut at PS_PY_MAX_DEPTH instead. */
static int ps_raw_push(struct ps_twalk *w, uint64_t code, int64_t instr, uint8_t entry)
{
    if (w->nraw >= PS_PY_MAX_DEPTH) {
        w->truncated = 1;
        w->next_frame = 0;
        return 0;
    }
    ps_raw_reserve(w);
    w->raw_code[w->nraw] = code;
    w->raw_instr[w->nraw] = instr;
    w->raw_entry[w->nraw] = entry;
    w->raw_tlbc[w->nraw] = 0;
    w->nraw++;
    return 1;
}

/* Cycle check (Brent) over the addresses of the frames walked so far, in O(1) memory: a chain
 * that comes back to an earlier frame (torn or corrupt links, e.g. A -> B -> A among frames
 * read one by one) is an error instead of a 4096-frame stack costing one read per frame.
 * The monotonic check only covers the current chunk, and `prev == f` only self-loops. */
static int ps_frame_cycle(struct ps_twalk *w, uint64_t f)
{
    if (f == w->cycle_mark)
        return 1;
    if (++w->cycle_len == w->cycle_power) {
        w->cycle_mark = f;
        w->cycle_power *= 2;
        w->cycle_len = 0;
    }
    return 0;
}

/* Walks as far as local copies allow. Leaves w->next_frame set (and w->done 0) when the next
 * frame must be read in another round. */
static void ps_walk_local(struct ps_py *py, struct ps_twalk *w)
{
    const struct ps_py_offsets *o = &py->off;
    int guard = 0;
    while (w->next_frame && !w->err && !w->truncated) {
        if (++guard > PS_PY_MAX_DEPTH * 2) {
            w->err = PS_ECORRUPT;
            break;
        }
        uint64_t f = w->next_frame;
        if (f & 7) {
            w->err = PS_ECORRUPT;
            break;
        }
        if (o->frame_model == PS_FRAMES_OBJECTS) {
            const uint8_t *b = ps_region_lookup(w, f, (size_t)o->fo_size);
            if (!b)
                b = ps_fspec_lookup(w, f, (size_t)o->fo_size);
            if (!b)
                return; /* read it next round */
            uint64_t code = rd64(b, o->fo_code);
            int32_t lasti = (int32_t)rd32(b, o->fo_lasti);
            uint64_t back = rd64(b, o->fo_back);
            if (back == f || ps_frame_cycle(w, f)) {
                w->err = PS_ECORRUPT;
                break;
            }
            if (ps_raw_push(w, code, lasti, 1)) /* <= 3.10: one C eval call per frame */
                w->raw_faddr[w->nraw - 1] = f;
            w->next_frame = back;
            w->frame_buf_addr = 0;
            continue;
        }
        const uint8_t *b = ps_region_lookup(w, f, (size_t)o->if_size);
        if (!b)
            return;
        uint64_t code = rd64(b, o->if_code);
        uint64_t prev = rd64(b, o->if_previous);
        uint8_t owner = b[o->if_owner];
        if (o->flags & PS_PYF_TAGGED_CODE)
            code &= ~(uint64_t)3;
        if (prev == f || ps_frame_cycle(w, f)) {
            w->err = PS_ECORRUPT;
            break;
        }
        /* Frames inside one chunk get older toward lower addresses. */
        if (w->nregions && f >= w->regions[0].addr && f < w->regions[0].addr + w->regions[0].len) {
            if (w->last_chunk_frame && f >= w->last_chunk_frame) {
                w->err = PS_ETORN;
                break;
            }
            w->last_chunk_frame = f;
        }
        int skip = o->if_owner_skip_min && owner >= o->if_owner_skip_min;
        if (owner > o->if_owner_max) {
            w->err = PS_ECORRUPT;
        } else if (!skip && code && code == py->init_cleanup) {
            /* The __init__ shim: interpreter plumbing with no source line, not shown. */
        } else if (!skip && code) {
            ps_raw_push(w, code, (int64_t)rd64(b, o->if_instr),
                        o->if_is_entry != PS_OFF_NONE && b[o->if_is_entry]); /* 3.11 */
            if (o->if_tlbc_index != PS_OFF_NONE && w->nraw && !w->truncated)
                w->raw_tlbc[w->nraw - 1] = (int32_t)rd32(b, o->if_tlbc_index);
        } else if (skip && w->nraw > 0)
            /* 3.12+: an entry (shim) frame sits below the first Python frame that one C eval
             * activation ran, i.e. below the frame pushed just before it. */
            w->raw_entry[w->nraw - 1] = 1;
        w->next_frame = prev;
        w->frame_buf_addr = 0;
    }
}

/* The oldest data-stack chunk copied so far: follow chunk->previous from the current chunk
 * (regions[0]) through the copied chunk regions, whatever slots they occupy. */
static const struct ps_region *ps_oldest_chunk(const struct ps_twalk *w,
                                               const struct ps_py_offsets *o)
{
    const struct ps_region *c = &w->regions[0];
    for (int hops = 0; hops < PS_MAX_REGIONS && c->len >= 32; hops++) {
        uint64_t p = rd64(c->buf, o->chunk_previous);
        const struct ps_region *next = NULL;
        for (int i = 1; i < w->nregions && !next; i++)
            if (w->regions[i].chunk && w->regions[i].addr == p && w->regions[i].len >= 32)
                next = &w->regions[i];
        if (!next)
            break;
        c = next;
    }
    return c;
}

/* Slot for a new copy: the next free one, or when all are taken the newest single-frame copy
 * (already walked past; it only served the read-ahead), so older chunks can still be copied. */
static int ps_region_slot(const struct ps_twalk *w)
{
    if (w->nregions < PS_MAX_REGIONS)
        return w->nregions;
    for (int i = w->nregions - 1; i > 0; i--)
        if (!w->regions[i].chunk)
            return i;
    return -1;
}

/* Plans this round's read for a thread that stopped on an uncopied frame. */
static void ps_plan_frame_read(struct ps_py *py, struct ps_twalk *w, struct ps_tick *tk)
{
    const struct ps_py_offsets *o = &py->off;
    uint64_t f = w->next_frame;
    size_t flen = (size_t)(o->frame_model == PS_FRAMES_OBJECTS ? o->fo_size : o->if_size);
    w->pending_region = -1;
    w->pending_guess = 0;
    /* A frame in the previous data-stack chunk: copy that chunk's used part up to the frame,
     * so the rest of a deep stack resolves locally. */
    int slot = o->frame_model == PS_FRAMES_INTERP && w->nregions > 0 ? ps_region_slot(w) : -1;
    if (slot > 0 && w->no_guess_frame != f) {
        /* Chunk regions start at a chunk header, whose first word links the older chunk. */
        const struct ps_region *cur = ps_oldest_chunk(w, o);
        if (cur->len >= 32) {
            uint64_t prev_chunk = rd64(cur->buf, o->chunk_previous);
            if (prev_chunk && f > prev_chunk && f - prev_chunk < PS_CHUNK_COPY_MAX) {
                size_t len = (size_t)(f - prev_chunk) + flen;
                ps_region_set(w, slot, prev_chunk, len);
                w->regions[slot].chunk = 1;
                ps_tick_add(tk, prev_chunk, w->regions[slot].buf, len);
                w->pending_region = slot;
                w->pending_guess = 1;
                w->pending = 1;
                return;
            }
        }
    }
    /* A frame outside every chunk (3.11+): into a region of its own, so the next snapshot can
     * read it ahead (see ps_twalk.hints). */
    if (slot > 0) {
        ps_region_set(w, slot, f, flen);
        ps_tick_add(tk, f, w->regions[slot].buf, flen);
        w->pending_region = slot;
        w->pending = 1;
        return;
    }
    w->frame_buf_addr = f;
    ps_tick_add(tk, f, w->frame_buf, flen);
    w->pending = 1;
}

/* ---- code validation -------------------------------------------------------------------- */

static void ps_val_reserve(struct ps_thread_cache *tc, int n)
{
    if (n <= tc->valcap)
        return;
    tc->valcap = PS_MAX(n, tc->valcap * 2);
    tc->val_codes = ps_xrealloc(tc->val_codes, sizeof(uint64_t) * (size_t)tc->valcap);
    tc->val_buf = ps_xrealloc(tc->val_buf, PS_CODE_KEY_MAX * (size_t)tc->valcap);
}

/* Codes first referenced by raw frames [from..) in this snapshot: load misses now (slow path)
 * and list hits for validation. */
static void ps_note_codes(struct ps_py *py, struct ps_twalk *w, int from)
{
    struct ps_thread_cache *tc = py->threads;
    int32_t koff;
    uint32_t klen;
    int keyed = ps_code_key_span(&py->off, &koff, &klen);
    struct ps_code *e = NULL;
    for (int i = from; i < w->nraw; i++) {
        /* Recursion repeats a code object: reuse the previous frame's lookup. */
        if (!e || e->addr != w->raw_code[i] || py->codes->generation != w->raw_gen[i - 1])
            e = ps_code_cache_find(py->codes, w->raw_code[i]);
        if (!e) {
            int err;
            e = ps_code_load(py->codes, &py->mem, &py->off, py->code_type, w->raw_code[i], &err);
            if (e) {
                e->seen_tick = py->tick;
                ps_code_stamp(py, e);
            }
            w->raw_ptr[i] = e;
            w->raw_gen[i] = py->codes->generation;
            continue;
        }
        w->raw_ptr[i] = e;
        w->raw_gen[i] = py->codes->generation;
        if (e->seen_tick == py->tick || !keyed)
            continue;
        e->seen_tick = py->tick;
        if (ps_code_current(py, e, py->code_counter))
            continue;
        ps_val_reserve(tc, tc->nval + 1);
        tc->val_codes[tc->nval++] = e->addr;
    }
}

/* Appends the validation reads of val_codes[from..nval) (val_buf is not resized after this). */
static void ps_val_iovs(struct ps_py *py, int from, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = py->threads;
    int32_t koff;
    uint32_t klen;
    if (!ps_code_key_span(&py->off, &koff, &klen))
        return;
    for (int i = from; i < tc->nval; i++)
        ps_tick_add(tk, tc->val_codes[i] + (uint64_t)koff, tc->val_buf[i], klen);
}

static void ps_apply_validations(struct ps_py *py, int first, const int *ok)
{
    struct ps_thread_cache *tc = py->threads;
    for (int i = first; i < tc->nval; i++) {
        struct ps_code *e = ps_code_cache_find(py->codes, tc->val_codes[i]);
        if (!e)
            continue;
        if (!ok[i - first] || !ps_code_key_matches(&py->off, e, tc->val_buf[i]))
            ps_code_cache_remove(py->codes, e); /* reloaded when resolved */
        else
            ps_code_stamp(py, e);
    }
}

/* ---- the snapshot ----------------------------------------------------------------------- */

/* Is raw frame k the outermost frame of an eval activation? The outermost frame of a
 * complete walk began the first one. */
static uint8_t ps_raw_entry(const struct ps_twalk *w, int k)
{
    return w->raw_entry[k] || (k == w->nraw - 1 && !w->truncated && !w->err);
}

/* Lists a code object for validation in next snapshot's round 0 (once per snapshot). */
static void ps_list_prev_code(struct ps_py *py, struct ps_code *e)
{
    struct ps_thread_cache *tc = py->threads;
    if (!e || tc->nprev >= PS_VALIDATE_MAX || e->listed_tick == py->tick)
        return;
    e->listed_tick = py->tick;
    if (!ps_code_current(py, e, py->code_counter))
        tc->prev_all_current = 0;
    if (tc->nprev == tc->prevcap) {
        tc->prevcap = tc->prevcap ? tc->prevcap * 2 : 64;
        tc->prev_codes = ps_xrealloc(tc->prev_codes, sizeof(uint64_t) * (size_t)tc->prevcap);
    }
    tc->prev_codes[tc->nprev++] = e->addr;
}

/* How many of the outermost frames in snapshot slot t are exactly what resolving walk w would
 * give them? Frames can be kept when w resolved into this very slot last time without error
 * and the code cache has lost no entry since (so an entry pointer still means the same code
 * object and line table): then each frame with the same entry, instruction and entry flag at
 * the same distance from the outermost frame resolves the same. A deep stack whose top moves
 * costs line lookups for its top frames only. */
static int ps_kept_frames(const struct ps_py *py, const struct ps_twalk *w,
                          const struct ps_py_snapshot *s, const struct ps_py_thread *t)
{
    uint32_t gen = py->codes->generation;
    if (w->err || !w->resolved_ok || w->resolved_snap != s || w->resolved_gen != gen)
        return 0;
    int n = w->nraw, old_n = t->nframes, kept = 0;
    while (kept < n && kept < old_n) {
        int k = n - 1 - kept;
        const struct ps_py_frame *f = &t->frames[old_n - 1 - kept];
        if (w->raw_ptr[k] != f->code || w->raw_gen[k] != gen || w->raw_instr[k] != f->instr ||
            ps_raw_entry(w, k) != f->entry)
            break;
        kept++;
    }
    return kept;
}

void ps_py_snapshot_init(struct ps_py_snapshot *s)
{
    s->n = 0;
    s->cap = 0;
    s->t = NULL;
    s->reads = 0;
}

void ps_py_snapshot_release(struct ps_py_snapshot *s)
{
    for (int i = 0; i < s->cap; i++)
        free(s->t[i].frames);
    free(s->t);
    ps_py_snapshot_init(s);
}

static struct ps_py_thread *ps_snapshot_slot(struct ps_py_snapshot *s, int i)
{
    if (i >= s->cap) {
        int n = PS_MAX(i + 1, s->cap ? s->cap * 2 : 4);
        s->t = ps_xrealloc(s->t, sizeof(struct ps_py_thread) * (size_t)n);
        memset(s->t + s->cap, 0, sizeof(struct ps_py_thread) * (size_t)(n - s->cap));
        s->cap = n;
    }
    return &s->t[i];
}

/* The fields the walker reads from a thread state's copy: 8-byte ones, then 4-byte ones (each
 * must lie inside the copy, ps_layout_fits). */
#define PS_TS_FIELDS(o)                                                                     \
    {(o)->ts_next, (o)->ts_interp, (o)->ts_frame, (o)->ts_cframe, (o)->ts_thread_id,        \
     (o)->ts_native_thread_id, (o)->ts_datastack_chunk, (o)->ts_datastack_top,              \
     (o)->ts_datastack_limit}
#define PS_TS_WORDS(o)                                                                      \
    {(o)->ts_status, (o)->ts_state,                                                         \
     (o)->flags & PS_PYF_HOLDS_GIL_INT ? (o)->ts_holds_gil : PS_OFF_NONE}

/* Does the layout fit the walker's fixed-size copies? A layout overlaid from the target's own
 * _Py_DebugOffsets is only as trustworthy as the target's memory: structs up to 1 MiB pass
 * ps_debugoff_parse, but a thread state is copied into PS_TS_READ_MAX bytes and a frame into
 * PS_FRAME_READ_MAX, so every field read from those copies must lie inside them. */
static int ps_layout_fits(const struct ps_py_offsets *o)
{
    int32_t ts = PS_MIN(o->ts_size, PS_TS_READ_MAX);
    const int32_t ts_fields[] = PS_TS_FIELDS(o);
    for (size_t i = 0; i < PS_ARRAY_LEN(ts_fields); i++)
        if (ts_fields[i] != PS_OFF_NONE && (ts_fields[i] < 0 || ts_fields[i] > ts - 8))
            return 0;
    const int32_t ts_words[] = PS_TS_WORDS(o);
    for (size_t i = 0; i < PS_ARRAY_LEN(ts_words); i++)
        if (ts_words[i] != PS_OFF_NONE && (ts_words[i] < 0 || ts_words[i] > ts - 4))
            return 0;
    if (o->if_tlbc_index != PS_OFF_NONE &&
        (o->if_tlbc_index < 0 || o->if_tlbc_index > o->if_size - 4))
        return 0;
    if (o->gil_enabled != PS_OFF_NONE && (o->gil_enabled < 0 || o->gil_enabled > 28))
        return 0; /* read with the GIL's other words, in one span of at most 32 bytes */
    if (o->frame_model == PS_FRAMES_OBJECTS)
        return o->fo_size > 0 && o->fo_size <= PS_FRAME_READ_MAX && o->fo_back >= 0 &&
               o->fo_back <= o->fo_size - 8 && o->fo_code >= 0 && o->fo_code <= o->fo_size - 8 &&
               o->fo_lasti >= 0 && o->fo_lasti <= o->fo_size - 4;
    return o->if_size > 0 && o->if_size <= PS_FRAME_READ_MAX && o->if_code >= 0 &&
           o->if_code <= o->if_size - 8 && o->if_previous >= 0 &&
           o->if_previous <= o->if_size - 8 && o->if_instr >= 0 &&
           o->if_instr <= o->if_size - 8 && o->if_owner >= 0 && o->if_owner < o->if_size &&
           (o->if_is_entry == PS_OFF_NONE || (o->if_is_entry >= 0 && o->if_is_entry < o->if_size));
}

int ps_py_attach_fake(struct ps_py *py)
{
    if (!ps_layout_fits(&py->off)) {
        ps_err_set("Python %d.%d: the interpreter's layout (thread state %d bytes, frame %d "
                   "bytes) does not fit what pysample copies; cannot read this version safely",
                   py->major, py->minor, py->off.ts_size,
                   py->off.frame_model == PS_FRAMES_OBJECTS ? py->off.fo_size : py->off.if_size);
        return PS_EVERSION;
    }
    if (!py->codes) {
        py->codes = ps_xcalloc(1, sizeof(struct ps_code_cache));
        ps_code_cache_init(py->codes);
    }
    if (!py->threads)
        py->threads = ps_xcalloc(1, sizeof(struct ps_thread_cache));
    if (py->tid_offset == 0)
        py->tid_offset = -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        py->sched_fds_left = (int)PS_MIN(rl.rlim_cur / 2, (rlim_t)1 << 20) - 64;
    else
        py->sched_fds_left = 1 << 19;
    return 0;
}

void ps_py_detach(struct ps_py *py)
{
    if (py->codes) {
        ps_code_cache_release(py->codes);
        free(py->codes);
    }
    struct ps_thread_cache *tc = py->threads;
    if (tc) {
        for (int i = 0; i < tc->n; i++)
            ps_tcache_close(py, &tc->v[i]);
        for (int i = 0; i < tc->nwalks; i++) {
            struct ps_twalk *w = tc->walks[i];
            for (int r = 0; r < w->regcap; r++)
                free(w->regions[r].base);
            free(w->regions);
            free(w->hints);
            free(w->hint_ok);
            free(w->fspec_addr);
            free(w->fspec_buf);
            free(w->fspec_ok);
            free(w->fspec_hash);
            free(w->raw_faddr);
            free(w->raw_code);
            free(w->raw_instr);
            free(w->raw_entry);
            free(w->raw_ptr);
            free(w->raw_gen);
            free(w->raw_tlbc);
            free(w);
        }
        free(tc->walks);
        free(tc->v);
        ps_addrmap_release(&tc->vmap);
        ps_addrmap_release(&tc->lmap);
        free(tc->tstates);
        free(tc->tstate_interp);
        free(tc->val_codes);
        free(tc->val_buf);
        free(tc->prev_codes);
        free(tc->iov);
        free(tc->ok);
        free(tc);
    }
    ps_mem_close(&py->mem);
    ps_maps_release(&py->maps);
    free(py->exe);
    free(py->lib);
    free(py->cwd);
    free(py->stdlib_prefix);
    memset(py, 0, sizeof *py);
}

int ps_pick_tid_offset(const uint8_t *blk, int n, int span, const pid_t *tids, int ntids,
                       pid_t pid)
{
    int found = -1;
    /* glibc x86_64/aarch64 keeps the TID at 720 (0x2d0); try it first, then scan. At 720 a
     * thread that has just exited may hold 0 (the kernel clears it) and one that has just
     * started a TID missing from the list read before: the main thread's block holding the
     * process ID, or half of the blocks holding listed TIDs, suffice. The scan needs every
     * thread to agree. */
    for (int pass = 0; n > 0 && pass < 2 && found < 0; pass++) {
        for (int off = pass ? 0 : 720; off + 4 <= span && found < 0; off += 4) {
            int all = 1, hits = 0, anchor = 0;
            for (int i = 0; i < n && all; i++) {
                int32_t v;
                memcpy(&v, blk + (size_t)i * span + off, 4);
                int hit = 0;
                for (int k = 0; k < ntids && !hit; k++)
                    hit = tids[k] == v;
                for (int j = 0; j < i && hit; j++) /* distinct threads, distinct TIDs */
                    hit = memcmp(blk + (size_t)j * span + off, &v, 4) != 0;
                hits += hit;
                anchor |= hit && v == pid;
                all = hit || (!pass && v >= 0);
            }
            if (all && hits > 0 && (hits * 2 >= n || (!pass && anchor)))
                found = off;
            if (!pass)
                break;
        }
    }
    return found;
}

/* <= 3.10 has no native thread id: find the TID inside glibc's struct pthread, as the offset at
 * which the threads' pthread_t blocks hold the process's TIDs; tried again on the next fresh
 * thread list until found. */
static void ps_find_tid_offset(struct ps_py *py)
{
    struct ps_thread_cache *tc = py->threads;
    if (py->tid_offset >= 0 || !py->pid || tc->ntstates == 0)
        return;
    pid_t *tids;
    int ntids;
    if (ps_proc_tasks(py->pid, &tids, &ntids) < 0)
        return;
    enum { SPAN = 1024, NBLK = 16 };
    uint8_t(*blk)[SPAN] = ps_xmalloc((size_t)NBLK * SPAN);
    /* A thread that is starting has no ident yet (or its creator's), one that is ending may
     * have lost its block: the threads whose own block reads stand for all. The thread list
     * is newest first, so the last thread state, the oldest, is read too: it is most often the
     * main thread, whose block always holds the process ID (the anchor), while under thread
     * churn the newest ones may all have ended by the time their blocks are read. */
    int nread = 0;
    uint64_t seen[NBLK];
    for (int k = 0; k < tc->ntstates && nread < NBLK; k++) {
        int i = k < NBLK - 1 ? k : tc->ntstates - 1;
        uint64_t ident = rd64(py->threads->walks[i]->ts, py->off.ts_thread_id);
        int dup = 0; /* a starting thread holds its creator's ident until it runs */
        for (int j = 0; j < nread && !dup; j++)
            dup = seen[j] == ident;
        if (ident && !dup && ps_mem_read(&py->mem, ident, blk[nread], SPAN) == 0)
            seen[nread++] = ident;
        if (i == tc->ntstates - 1)
            break;
    }
    int found = ps_pick_tid_offset(&blk[0][0], nread, SPAN, tids, ntids, py->pid);
    free(blk);
    free(tids);
    if (found >= 0)
        py->tid_offset = found;
}

/* Until when a thread the kernel last showed asleep at `last`, asleep at the same stack since
 * `first`, is taken as still asleep: the window grows with how long it has slept there, from a
 * tenth of py->idle_trust_ns (PS_IDLE_TRUST_NS) to all of it, stretched per thread by up to
 * 15/16 so that the re-checks of many threads spread over the ticks. */
static uint64_t ps_quiet_until(const struct ps_py *py, uint64_t first, uint64_t last, pid_t tid)
{
    uint64_t base = py->idle_trust_ns ? py->idle_trust_ns : PS_IDLE_TRUST_NS;
    uint64_t win = PS_MIN(PS_MAX(last - first, base / 10), base);
    return last + win + win / 16 * (uint64_t)((uint32_t)tid % 16);
}

/* ---- one tick: plan a round, read it, validate, walk, resolve ---------------------------- */

/* Starts a tick: counters, the cache trim, and the thread lists when none is cached. */
static int ps_tick_begin(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = py->threads;
    const struct ps_py_offsets *o = &py->off;
    memset(tk, 0, sizeof *tk);
    tk->tc = tc;
    tk->counter_iov = -1;
    py->tick++;
    tc->nval = 0;
    ps_code_cache_trim(py->codes);
    /* The interpreter list and GIL pointers change rarely: they are re-read every
     * PS_FULL_CHECK_NS; thread lists (new threads are pushed at the head) every snapshot. */
    tk->now = ps_now_ns();
    tk->full = !tc->valid || tk->now - tc->last_full_ns >= PS_FULL_CHECK_NS;
    if (tk->full)
        tc->last_full_ns = tk->now;
    tk->gil_lo = PS_MIN(o->gil_last_holder, o->gil_locked);
    if (o->gil_enabled != PS_OFF_NONE) /* free-threaded: `enabled` leads the GIL struct */
        tk->gil_lo = PS_MIN(tk->gil_lo, o->gil_enabled);
    tk->gil_len = PS_MAX(o->gil_last_holder + 8, o->gil_locked + 4) - tk->gil_lo;
    tk->ts_size = PS_MIN(o->ts_size, PS_TS_READ_MAX);
    if (!tc->valid) {
        int rc = ps_lists_rebuild(py);
        if (rc < 0)
            return rc;
        tk->fresh = 1;
    }
    return 0;
}

/* Round 0, the list part: head, GIL, cached interpreters and thread states. */
static void ps_round0_plan_lists(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    if (tk->full && (!(o->flags & PS_PYF_INTERP_HEAD_SYM) || py->interp_head_addr))
        ps_tick_add(tk, ps_interp_head_ptr(py), &tk->head, 8);
    else
        tk->head = tc->interps[0];
    if (o->gil_model == PS_GIL_TSTATE_CURRENT_SYM && py->tstate_current_addr)
        ps_tick_add(tk, py->tstate_current_addr, &tk->gil_word[0], 8);
    else if (o->gil_model == PS_GIL_RUNTIME)
        ps_tick_add(tk, py->runtime + (uint64_t)o->rt_tstate_current, &tk->gil_word[0], 8);
    for (int i = 0; i < tc->ninterps; i++) {
        uint64_t in = tc->interps[i];
        uint64_t *words = tk->interp_words[i];
        words[0] = i + 1 < tc->ninterps ? tc->interps[i + 1] : 0;
        words[2] = tc->gil_addr[i];
        if (tk->full)
            ps_tick_add(tk, in + (uint64_t)o->is_next, &words[0], 8);
        ps_tick_add(tk, in + (uint64_t)o->is_tstate_head, &words[1], 8);
        if (o->gil_model == PS_GIL_INTERP) {
            if (tk->full)
                ps_tick_add(tk, in + (uint64_t)o->is_ceval_gil, &words[2], 8);
            if (tc->gil_addr[i] && tk->gil_len > 0 &&
                tk->gil_len <= (int32_t)sizeof tk->gil_span[i])
                ps_tick_add(tk, tc->gil_addr[i] + (uint64_t)tk->gil_lo, tk->gil_span[i],
                            (size_t)tk->gil_len);
        }
        if (i == 0 && o->is_code_generation != PS_OFF_NONE && o->is_code_generation > 0)
            ps_tick_add(tk, in + (uint64_t)o->is_code_generation, &tk->generation, 8);
        if (i == 0 && o->is_tlbc_generation > 0)
            ps_tick_add(tk, in + (uint64_t)o->is_tlbc_generation, &tk->tlbc_generation, 4);
    }
    if (!tk->fresh)
        for (int i = 0; i < tc->ntstates; i++)
            ps_tick_add(tk, tc->tstates[i], ps_walk_slot(tc, i)->ts, (size_t)tk->ts_size);
}

/* Round 0, the code part: the code counter first (read before the keys it vouches for), then
 * the keys of last snapshot's codes, except those the counter vouched for last time: when it
 * has moved since, they are validated in a later round (ps_note_codes). */
static void ps_round0_plan_codes(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    int32_t koff;
    uint32_t klen;
    if (!ps_code_key_span(&py->off, &koff, &klen))
        return;
    uint64_t caddr = ps_code_counter_addr(py);
    if (caddr)
        tk->counter_iov = ps_tick_add(tk, caddr, &tk->counter, 4);
    ps_val_reserve(tc, tc->nprev);
    /* When the counter vouched for every listed code as they were listed, and it is still
     * the value they were listed under, the loop below would skip them all. */
    int vouched = tc->prev_all_current && py->code_gate && tc->prev_counter == py->code_counter;
    for (int i = 0; i < tc->nprev && i < PS_VALIDATE_MAX && !vouched; i++) {
        struct ps_code *e = ps_code_cache_find(py->codes, tc->prev_codes[i]);
        if (!e || ps_code_current(py, e, py->code_counter))
            continue;
        e->seen_tick = py->tick;
        tc->val_codes[tc->nval] = e->addr;
        ps_tick_add(tk, e->addr + (uint64_t)koff, tc->val_buf[tc->nval], klen);
        tc->nval++;
    }
}

/* Round 0, the guesses for round 1 (see ps_twalk.spec_tstate), last: their failure is no list
 * change. */
static void ps_round0_plan_guesses(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = ps_walk_slot(tc, i);
        w->spec_chunk_iov = w->spec_cf_iov = w->spec_hint_iov = w->spec_frame_iov = -1;
        w->spec_chunk_ok = w->spec_cf_ok = 0;
        w->hints_issued = 0;
        w->fspec_cursor = 0;
        if (tk->fresh || w->spec_tstate != tc->tstates[i])
            continue;
        if (w->quiet && tk->now < ps_quiet_until(py, w->quiet_first_ns, w->quiet_ns, w->quiet_tid))
            continue; /* asleep last time: its thread state alone first (ps_walk_may_skip) */
        w->spec_tick = py->tick;
        if (o->frame_model == PS_FRAMES_OBJECTS) {
            if (w->nfspec) {
                w->spec_frame_iov = tk->niov;
                for (int k = 0; k < w->nfspec; k++)
                    ps_tick_add(tk, w->fspec_addr[k], ps_fspec_copy(w, k, (size_t)o->fo_size),
                                (size_t)o->fo_size);
            }
            continue;
        }
        if (w->spec_chunk) {
            ps_region_reserve(w, 0, w->spec_chunk, w->spec_len);
            w->spec_chunk_iov = ps_tick_add(tk, w->spec_chunk, w->regions[0].buf, w->spec_len);
        }
        /* The _PyCFrame and the entry frames both live on the C stack: next to each other in
         * the list, the reader can fetch them as one range. */
        if (w->spec_cf)
            w->spec_cf_iov = ps_tick_add(tk, w->spec_cf + (uint64_t)o->cf_current_frame,
                                         &w->spec_cf_frame, 8);
        if (w->nhints) {
            w->spec_hint_iov = tk->niov;
            for (int k = 0; k < w->nhints; k++) {
                struct ps_hint *h = &w->hints[k];
                ps_region_set(w, 1 + k, h->addr, h->len);
                w->regions[1 + k].chunk = h->chunk;
                ps_tick_add(tk, h->addr, w->regions[1 + k].buf, h->len);
            }
            w->hints_issued = w->nhints;
        }
    }
}

/* Plans round 0: everything a stack that keeps its shape needs, in one read. */
static void ps_round0_plan(struct ps_py *py, struct ps_tick *tk)
{
    tk->niov = 0;
    ps_round0_plan_lists(py, tk);
    tk->first_val_iov = tk->niov;
    ps_round0_plan_codes(py, tk);
    ps_round0_plan_guesses(py, tk);
}

/* Do the cached lists still describe the target, after round 0 re-read their links? */
static int ps_lists_unchanged(struct ps_py *py, const struct ps_tick *tk)
{
    const struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    int same = tk->head == tc->interps[0];
    for (int i = 0; same && i < tc->ninterps; i++) {
        uint64_t next = i + 1 < tc->ninterps ? tc->interps[i + 1] : 0;
        same = tk->interp_words[i][0] == next;
        if (o->gil_model == PS_GIL_INTERP)
            same = same && tk->interp_words[i][2] == tc->gil_addr[i];
    }
    for (int i = 0, t = 0; same && i < tc->ninterps; i++) {
        uint64_t expect = tk->interp_words[i][1];
        while (t < tc->ntstates && tc->tstate_interp[t] == tc->interps[i]) {
            const struct ps_twalk *w = tc->walks[t];
            same = tc->tstates[t] == expect && rd64(w->ts, o->ts_interp) == tc->interps[i];
            if (!same)
                break;
            expect = rd64(w->ts, o->ts_next);
            t++;
        }
        same = same && expect == 0;
    }
    return same;
}

/* Validates what round 0 brought: which guesses arrived, the code counter and the keys of
 * last snapshot's codes, the GIL words, and whether the cached lists still hold (else they are
 * rebuilt with dependent reads). */
static int ps_round0_check(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    const int *ok = tc->ok;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = tc->walks[i];
        w->spec_chunk_ok = w->spec_chunk_iov >= 0 && ok[w->spec_chunk_iov];
        w->spec_cf_ok = w->spec_cf_iov >= 0 && ok[w->spec_cf_iov];
        for (int h = 0; h < w->hints_issued; h++)
            w->hint_ok[h] = (uint8_t)ok[w->spec_hint_iov + h];
        for (int k = 0; w->spec_frame_iov >= 0 && k < w->nfspec; k++)
            w->fspec_ok[k] = (uint8_t)ok[w->spec_frame_iov + k];
    }
    int first_val_iov = tk->first_val_iov;
    for (int i = 0; i < first_val_iov; i++)
        if (!ok[i]) {
            /* A cached pointer went bad (a thread exited): rebuild and retry once. */
            tc->valid = 0;
            break;
        }
    if (tk->counter_iov >= 0) {
        /* 0: the counter ran out, stuck */
        py->code_gate = ok[tk->counter_iov] && tk->counter != 0;
        py->code_counter = tk->counter;
        first_val_iov++;
    } else {
        py->code_gate = 0;
    }
    ps_apply_validations(py, 0, ok + first_val_iov);
    for (int i = 0; i < tc->ninterps && o->gil_model == PS_GIL_INTERP; i++) {
        uint32_t locked;
        tk->gil_state[i][0] = rd64(tk->gil_span[i], o->gil_last_holder - tk->gil_lo);
        memcpy(&locked, tk->gil_span[i] + (o->gil_locked - tk->gil_lo), 4);
        tk->gil_state[i][1] = locked;
        tk->gil_state[i][2] = o->gil_enabled == PS_OFF_NONE ||
                              rd32(tk->gil_span[i], o->gil_enabled - tk->gil_lo) != 0;
    }
    if (tc->valid && !tk->fresh && !ps_lists_unchanged(py, tk))
        tc->valid = 0;
    if (!tc->valid) {
        int rc = ps_lists_rebuild(py);
        if (rc < 0)
            return rc;
        /* GIL words for a rebuilt list are read directly. */
        for (int i = 0; i < tc->ninterps; i++) {
            if (o->gil_model == PS_GIL_INTERP && tc->gil_addr[i]) {
                uint32_t enabled = 1;
                tk->gil_state[i][0] = tk->gil_state[i][1] = 0;
                ps_mem_read_u64(&py->mem, tc->gil_addr[i] + (uint64_t)o->gil_last_holder,
                                &tk->gil_state[i][0]);
                ps_mem_read(&py->mem, tc->gil_addr[i] + (uint64_t)o->gil_locked,
                            &tk->gil_state[i][1], 4);
                if (o->gil_enabled != PS_OFF_NONE)
                    ps_mem_read_u32(&py->mem, tc->gil_addr[i] + (uint64_t)o->gil_enabled,
                                    &enabled);
                tk->gil_state[i][2] = enabled != 0;
            }
        }
        tk->fresh = 1;
    }
    if (tk->fresh) {
        ps_tcache_drop_stale(py);
        if (o->ts_native_thread_id == PS_OFF_NONE)
            ps_find_tid_offset(py);
    }
    if (o->is_code_generation > 0 && tc->ninterps) {
        if (tk->generation != py->code_generation) {
            ps_code_cache_clear(py->codes);
            py->code_generation = tk->generation;
        }
    }
    if (o->is_tlbc_generation > 0 && tc->ninterps)
        py->tlbc_generation = tk->tlbc_generation; /* cached co_tlbc entries follow it */
    return 0;
}

/* Does thread state ts (of interpreter interp) hold the GIL, as round 0 read it? */
static int ps_holds_gil(const struct ps_py *py, const struct ps_tick *tk, uint64_t ts,
                        uint64_t interp)
{
    const struct ps_thread_cache *tc = tk->tc;
    if (py->off.gil_model != PS_GIL_INTERP)
        return tk->gil_word[0] == ts;
    int gil = 0;
    for (int k = 0; k < tc->ninterps; k++)
        if (tc->interps[k] == interp)
            gil = tk->gil_state[k][1] != 0 && tk->gil_state[k][0] == ts;
    return gil;
}

/* The thread-state fields a walk starts from: its current frame (or _PyCFrame), data-stack
 * chunk and top, and thread id. */
static void ps_walk_origin(const struct ps_py_offsets *o, const struct ps_twalk *w,
                           uint64_t v[4])
{
    v[0] = rd64(w->ts, (o->flags & PS_PYF_CFRAME) ? o->ts_cframe : o->ts_frame);
    v[1] = o->ts_datastack_chunk != PS_OFF_NONE ? rd64(w->ts, o->ts_datastack_chunk) : 0;
    v[2] = o->ts_datastack_top != PS_OFF_NONE ? rd64(w->ts, o->ts_datastack_top) : 0;
    v[3] = rd64(w->ts, o->ts_thread_id);
}

/* May walk slot i keep its last walk (see ps_twalk.quiet)? */
static int ps_walk_may_skip(struct ps_py *py, const struct ps_tick *tk, int i)
{
    const struct ps_thread_cache *tc = tk->tc;
    const struct ps_twalk *w = tc->walks[i];
    /* Free-threaded: a thread runs Python code without taking any lock round 0 could see. */
    if ((py->off.flags & PS_PYF_FREE_THREADED) || !w->quiet || tk->fresh ||
        tk->now >= ps_quiet_until(py, w->quiet_first_ns, w->quiet_ns, w->quiet_tid) ||
        w->tstate != tc->tstates[i] || w->spec_tick == py->tick)
        return 0;
    uint64_t v[4];
    ps_walk_origin(&py->off, w, v);
    return v[0] == w->seen_frame && v[1] == w->seen_chunk && v[2] == w->seen_top &&
           v[3] == w->seen_ident && !ps_holds_gil(py, tk, w->tstate, tc->tstate_interp[i]);
}

/* Round 1 for one thread: start its walk from the fresh thread state, taking round 0's copies
 * where they match and planning a read of the chunk / first frame where they do not. */
static void ps_round1_plan_thread(struct ps_py *py, struct ps_tick *tk, int i)
{
    struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    struct ps_twalk *w = tc->walks[i];
    w->skip = ps_walk_may_skip(py, tk, i);
    if (w->skip) {
        w->done = 1;
        return;
    }
    w->quiet = 0;
    /* Round 0 carried this slot's guesses (a slot beyond a list that grew did not). */
    int spec = w->spec_tick == py->tick && w->spec_tstate == tc->tstates[i];
    w->tstate = tc->tstates[i];
    w->nraw = 0;
    w->err = 0;
    w->truncated = 0;
    w->nregions = 0;
    w->pending = 0;
    w->pending_region = -1;
    w->pending_guess = 0;
    w->frame_buf_addr = 0;
    w->last_chunk_frame = 0;
    w->cycle_mark = 0;
    w->cycle_power = 1;
    w->cycle_len = 0;
    w->cframe_frame = 0;
    w->no_guess_frame = 0;
    w->done = 0;
    w->chunk_iov = w->cf_iov = -1;
    if (!spec) {
        w->spec_chunk_ok = w->spec_cf_ok = 0;
        w->spec_frame_iov = -1;
        w->hints_issued = 0;
    }
    if (o->frame_model == PS_FRAMES_OBJECTS) {
        w->next_frame = rd64(w->ts, o->ts_frame);
        if (w->next_frame && !ps_fspec_lookup(w, w->next_frame, (size_t)o->fo_size)) {
            w->frame_buf_addr = w->next_frame;
            w->chunk_iov = ps_tick_add(tk, w->next_frame, w->frame_buf, (size_t)o->fo_size);
        }
        w->fspec_cursor = 0;
        return;
    }
    if (o->flags & PS_PYF_CFRAME) {
        uint64_t cf = rd64(w->ts, o->ts_cframe);
        w->next_frame = 0;
        if (cf && cf == w->spec_cf && w->spec_cf_ok)
            w->cframe_frame = w->spec_cf_frame;
        else if (cf)
            w->cf_iov = ps_tick_add(tk, cf + (uint64_t)o->cf_current_frame, &w->cframe_frame, 8);
    } else {
        w->next_frame = rd64(w->ts, o->ts_frame);
    }
    uint64_t chunk = rd64(w->ts, o->ts_datastack_chunk);
    uint64_t top = rd64(w->ts, o->ts_datastack_top);
    w->chunk_addr = chunk;
    if (chunk && top > chunk && top - chunk <= PS_CHUNK_COPY_MAX) {
        if (chunk == w->spec_chunk && w->spec_chunk_ok && top - chunk <= w->spec_len) {
            /* Round 0 copied it already: keep the buffer, set the used length. */
            struct ps_region *r = &w->regions[0];
            r->addr = chunk;
            r->len = (uint32_t)(top - chunk);
            r->used = 0;
        } else {
            ps_region_set(w, 0, chunk, (size_t)(top - chunk));
            w->chunk_iov = ps_tick_add(tk, chunk, w->regions[0].buf, (size_t)(top - chunk));
        }
        w->regions[0].chunk = 1;
        w->nregions = 1;
    }
}

static void ps_round1_plan(struct ps_py *py, struct ps_tick *tk)
{
    tk->niov = 0;
    for (int i = 0; i < tk->tc->ntstates; i++)
        ps_round1_plan_thread(py, tk, i);
}

/* Maps round 1's failures back to threads and keeps the read-ahead copies that arrived. */
static void ps_round1_check(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    const int *ok = tc->ok;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = tc->walks[i];
        if (w->skip)
            continue;
        if (o->frame_model == PS_FRAMES_OBJECTS) {
            if (w->chunk_iov >= 0 && !ok[w->chunk_iov])
                w->err = PS_EFAULT;
            continue;
        }
        if (w->cf_iov >= 0 && !ok[w->cf_iov])
            w->err = PS_EFAULT;
        if ((o->flags & PS_PYF_CFRAME) && rd64(w->ts, o->ts_cframe))
            w->next_frame = w->cframe_frame;
        if (w->nregions && w->chunk_iov >= 0 && !ok[w->chunk_iov])
            w->nregions = 0; /* the chunk went away: frames are read one by one */
        if (!w->nregions)
            continue;
        /* Keep the read-ahead copies that arrived (swapping buffers, never sharing). */
        for (int h = 0; h < w->hints_issued; h++) {
            if (!w->hint_ok[h])
                continue;
            struct ps_region tmp = w->regions[w->nregions];
            w->regions[w->nregions] = w->regions[1 + h];
            w->regions[1 + h] = tmp;
            w->nregions++;
        }
    }
}

/* After a walk round's read: what each thread's pending frame read brought. */
static void ps_walk_round_check(struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    const int *ok = tc->ok;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = tc->walks[i];
        if (!w->pending)
            continue;
        w->pending = 0;
        if (!ok[w->iov_index] && w->pending_region >= 0 && w->pending_region < w->nregions) {
            /* A reused slot whose read failed must not answer lookups. */
            ps_region_set(w, w->pending_region, 0, 0);
        }
        if (ok[w->iov_index]) {
            if (w->pending_region >= 0) {
                w->nregions = PS_MAX(w->nregions, w->pending_region + 1);
                w->last_chunk_frame = 0;
            }
        } else if (w->pending_region >= 0 && w->pending_guess) {
            w->no_guess_frame = w->next_frame; /* not a chunk after all: read the frame */
        } else {
            w->err = PS_EFAULT;
            w->done = 1;
        }
        w->pending_region = -1;
    }
}

/* Rounds 2..: walk every thread as far as its copies go, then read what is missing (and
 * validate codes first seen), until every walk is done. */
static int ps_walk_rounds(struct ps_py *py, struct ps_tick *tk)
{
    struct ps_thread_cache *tc = tk->tc;
    for (int round = 0; round < PS_PY_MAX_DEPTH + 8; round++) {
        tk->niov = 0;
        int val_from = tc->nval;
        for (int i = 0; i < tc->ntstates; i++) {
            struct ps_twalk *w = tc->walks[i];
            if (w->done)
                continue;
            int before = w->nraw;
            if (!w->err)
                ps_walk_local(py, w);
            ps_note_codes(py, w, before);
            if (w->err || !w->next_frame || w->truncated) {
                w->done = 1;
                continue;
            }
            w->iov_index = tk->niov;
            ps_plan_frame_read(py, w, tk);
        }
        int nframe_iov = tk->niov;
        ps_val_iovs(py, val_from, tk);
        if (tk->niov == 0)
            break;
        int rc = ps_tick_read(py, tk);
        if (rc < 0)
            return rc;
        ps_apply_validations(py, val_from, tc->ok + nframe_iov);
        ps_walk_round_check(tk);
    }
    return 0;
}

/* Guesses for the next snapshot's round 0: where the chunk, _PyCFrame and frames were. */
static void ps_guesses_remember(struct ps_py *py)
{
    struct ps_thread_cache *tc = py->threads;
    const struct ps_py_offsets *o = &py->off;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = tc->walks[i];
        if (w->skip)
            continue; /* the guesses of its last walk stand */
        w->spec_tstate = w->tstate;
        w->nhints = 0;
        if (o->frame_model == PS_FRAMES_OBJECTS) {
            ps_fspec_remember(w, (size_t)o->fo_size);
            continue;
        }
        if (w->nregions > w->hintcap) {
            w->hintcap = w->nregions;
            w->hints = ps_xrealloc(w->hints, sizeof(struct ps_hint) * (size_t)w->hintcap);
            w->hint_ok = ps_xrealloc(w->hint_ok, (size_t)w->hintcap);
        }
        for (int r = 1; r < w->nregions && w->regions[0].chunk; r++)
            if (w->regions[r].used)
                w->hints[w->nhints++] =
                    (struct ps_hint){w->regions[r].addr, w->regions[r].len, w->regions[r].chunk};
        w->spec_cf = (o->flags & PS_PYF_CFRAME) ? rd64(w->ts, o->ts_cframe) : 0;
        uint64_t chunk = rd64(w->ts, o->ts_datastack_chunk);
        uint64_t top = rd64(w->ts, o->ts_datastack_top);
        w->spec_chunk = 0;
        if (chunk && top > chunk && top - chunk <= PS_CHUNK_COPY_MAX) {
            /* A little past the top, so that a stack a few frames deeper next time still
             * fits (every byte copied costs, a cold one most). Never past the chunk. */
            uint64_t end = top + PS_SPEC_SLACK;
            uint64_t limit = o->ts_datastack_limit != PS_OFF_NONE
                                 ? rd64(w->ts, o->ts_datastack_limit)
                                 : (top + 4095) & ~(uint64_t)4095;
            if (limit < top || limit - chunk > PS_CHUNK_COPY_MAX)
                limit = top;
            w->spec_chunk = chunk;
            w->spec_len = (uint32_t)(PS_MIN(end, limit) - chunk);
        }
    }
}

/* Resolve, identity: the cache entry of walk slot w's thread, its TID and comm name looked up
 * again whenever its thread id changed. */
static struct ps_tcache_entry *ps_resolve_identity(struct ps_py *py, struct ps_twalk *w,
                                                   struct ps_py_thread *t)
{
    struct ps_thread_cache *tc = py->threads;
    const struct ps_py_offsets *o = &py->off;
    /* The entry found last time for this slot, unless the cache changed since: keeps the
     * lookup O(1) per thread instead of a scan of every thread per thread. */
    struct ps_tcache_entry *ce = w->tce >= 0 && w->tce < tc->n && tc->v[w->tce].tstate == w->tstate
                                     ? &tc->v[w->tce]
                                     : ps_tcache_get(py, w->tstate);
    w->tce = (int)(ce - tc->v);
    ce->interp = t->interp;
    t->ident = rd64(w->ts, o->ts_thread_id);
    if (ce->ident != t->ident || !ce->tid) {
        ce->ident = t->ident;
        ce->tid = 0;
        ps_tcache_close(py, ce);
        ce->quiet_sched = 0;
        ce->state_src = PS_STATE_SYSCALL;
        ce->running_seen_ns = 0;
        ce->quiet_ns = 0;
        if (o->ts_native_thread_id != PS_OFF_NONE) {
            ce->tid = (pid_t)rd64(w->ts, o->ts_native_thread_id);
        } else if (py->tid_offset >= 0 && t->ident) {
            int32_t v;
            if (ps_mem_read(&py->mem, t->ident + (uint64_t)py->tid_offset, &v, 4) == 0)
                ce->tid = v;
        }
        ce->name[0] = '\0';
        ce->pyname_tried = 0;
        ce->comm_tried = 0;
        if (ce->tid && py->pid && tc->ntstates == 1) {
            ce->comm_tried = 1;
            if (ps_proc_comm(py->pid, ce->tid, ce->name, sizeof ce->name) < 0) {
                /* A fork() without PyOS_AfterFork_Child (uWSGI workers by default, other
                 * embedders) leaves the parent's TID in the only thread state: it is this
                 * process's main thread now. */
                ce->tid = py->pid;
                ps_proc_comm(py->pid, ce->tid, ce->name, sizeof ce->name);
            }
        }
    }
    t->tid = ce->tid;
    return ce;
}

/* Resolve, activity: does thread t hold the GIL (or, with no GIL, is it attached), and is it
 * running (the idle verdict)? */
static void ps_resolve_activity(struct ps_py *py, struct ps_tick *tk,
                                struct ps_twalk *w, struct ps_tcache_entry *ce,
                                struct ps_py_thread *t)
{
    const struct ps_thread_cache *tc = tk->tc;
    const struct ps_py_offsets *o = &py->off;
    t->gil = 0;
    t->nogil = 0;
    if (o->gil_model == PS_GIL_INTERP) {
        for (int k = 0; k < tc->ninterps; k++)
            if (tc->interps[k] == t->interp) {
                t->nogil = !tk->gil_state[k][2];
                /* A disabled GIL keeps a stale last holder: it is nobody's. */
                t->gil = !t->nogil && tk->gil_state[k][1] != 0 &&
                         tk->gil_state[k][0] == t->tstate;
            }
    } else {
        t->gil = tk->gil_word[0] == t->tstate;
    }
    t->attached = o->ts_state != PS_OFF_NONE && rd32(w->ts, o->ts_state) == 1;
    /* Without a GIL, an attached thread is what the GIL holder is with one. */
    int busy = t->nogil ? t->attached : t->gil;
    /* Asking the kernel costs a system call per thread, the dearest part of a tick after
     * the read itself. A thread that holds the GIL runs Python code (or C code that keeps
     * the interpreter to itself): once the kernel has shown it running while it held the
     * GIL, it is taken as running for PS_GIL_TRUST_NS while it keeps holding it. A blocking
     * call made without releasing the GIL is seen at the next check, and from then on
     * every tick checks again until the kernel shows it running.
     * The other way round, a thread the kernel showed asleep (a pool thread waiting for work,
     * a thread in sleep() or a blocking read) stays asleep while its Python stack does not
     * move and it does not take the GIL: it is taken as idle without asking, for
     * PS_IDLE_TRUST_NS, stretched by up to as much again per thread so that the re-checks
     * of many threads spread over the ticks. What that misses is a C call that first blocks
     * and then computes without the GIL and without returning, for at most that window. */
    t->state = 0;
    w->quiet = 0;
    if (!py->read_thread_state) {
        t->idle = 0;
        return;
    }
    uint64_t trust = py->gil_trust_ns ? py->gil_trust_ns : PS_GIL_TRUST_NS;
    uint64_t code = w->nraw ? w->raw_code[0] : 0;
    int64_t instr = w->nraw ? w->raw_instr[0] : 0;
    int same = ce->quiet_ns && !t->err && ce->quiet_depth == w->nraw && ce->quiet_code == code &&
               ce->quiet_instr == instr;
    if (busy && ce->running_seen_ns && tk->now - ce->running_seen_ns < trust) {
        t->state = 'R';
    } else if (!busy && same &&
               (tk->now < ps_quiet_until(py, ce->quiet_first_ns, ce->quiet_ns, ce->tid) ||
                tk->recheck_budget <= 0)) {
        /* Still asleep; past its window but over this tick's budget, it waits a tick. */
        t->state = ce->quiet_state;
    } else {
        uint64_t sched = 0;
        if (!busy && same) {
            tk->recheck_budget--;
            /* The re-check of a sleeper: not scheduled in since it was last found asleep
             * (schedstat unchanged), it is asleep still; else its state is read. */
            sched = ps_task_sched(py, ce);
            if (sched && sched == ce->quiet_sched) {
                t->state = ce->quiet_state;
                ce->quiet_ns = tk->now;
                goto decided;
            }
        }
        t->state = ps_task_state(py, ce);
        ce->running_seen_ns = busy && t->state == 'R' ? tk->now : 0;
        if (t->state && t->state != 'R' && !t->err) {
            if (!same)
                ce->quiet_first_ns = tk->now;
            ce->quiet_ns = tk->now;
            ce->quiet_state = t->state;
            ce->quiet_code = code;
            ce->quiet_instr = instr;
            ce->quiet_depth = w->nraw;
            ce->quiet_sched = sched; /* read before the state: any run since shows */
        } else {
            ce->quiet_ns = 0;
            ce->quiet_sched = 0;
        }
    }
decided:
    t->idle = t->state && t->state != 'R';
    /* Free-threaded builds never skip a walk (ps_walk_may_skip), so their sleepers keep their
     * round-0 guesses rather than being marked quiet. */
    if (!(py->off.flags & PS_PYF_FREE_THREADED) && t->idle && !t->gil && !t->err &&
        !t->truncated && ce->quiet_ns) {
        uint64_t v[4];
        ps_walk_origin(&py->off, w, v);
        w->quiet = 1;
        w->quiet_ns = ce->quiet_ns;
        w->quiet_first_ns = ce->quiet_first_ns;
        w->quiet_tid = ce->tid;
        w->seen_frame = v[0];
        w->seen_chunk = v[1];
        w->seen_top = v[2];
        w->seen_ident = v[3];
    }
}

/* Resolve, frames: walk slot w's raw frames into t's frames (code entry, line, entry flag),
 * keeping the outermost ones that resolve as last time (ps_kept_frames). */
static void ps_resolve_frames(struct ps_py *py, struct ps_twalk *w,
                              const struct ps_py_snapshot *s, struct ps_py_thread *t)
{
    const struct ps_py_offsets *o = &py->off;
    if (w->skip && w->resolved_ok && w->resolved_snap == s &&
        w->resolved_gen == py->codes->generation && t->nframes == w->nraw) {
        /* A sleeping thread whose last walk stands (ps_walk_may_skip): its frames are this
         * slot's already, every one kept. */
        t->kept = t->nframes;
        t->err = 0;
        t->truncated = w->truncated;
        return;
    }
    int kept = ps_kept_frames(py, w, s, t);
    if (w->nraw > t->frames_cap) {
        int cap = PS_MIN(PS_MAX(w->nraw, t->frames_cap * 2), PS_PY_MAX_DEPTH);
        t->frames = ps_xrealloc(t->frames, sizeof t->frames[0] * (size_t)cap);
        t->frames_cap = cap;
    }
    if (kept && t->nframes != w->nraw)
        memmove(&t->frames[w->nraw - kept], &t->frames[t->nframes - kept],
                sizeof t->frames[0] * (size_t)kept);
    t->kept = kept;
    t->err = w->err;
    t->truncated = w->truncated;
    t->nframes = 0;
    w->resolved_ok = 0;
    w->resolved_snap = s;
    int k = 0;
    for (; k < w->nraw - kept && !t->err; k++) {
        /* The entry found while walking, unless the cache lost entries since. */
        struct ps_code *e = w->raw_ptr[k] && w->raw_gen[k] == py->codes->generation
                                ? w->raw_ptr[k]
                                : ps_code_cache_find(py->codes, w->raw_code[k]);
        if (!e) {
            int err;
            e = ps_code_load(py->codes, &py->mem, o, py->code_type, w->raw_code[k], &err);
            if (!e) {
                t->err = err == PS_EFAULT ? PS_ETORN : PS_ECORRUPT;
                break;
            }
            e->seen_tick = py->tick;
            ps_code_stamp(py, e);
        }
        int64_t instr = w->raw_instr[k];
        if (w->raw_tlbc[k]) {
            /* Free-threaded: this thread runs its own copy of the bytecode; measure the
             * instruction from that copy, as if in the code object's own. */
            uint64_t start;
            if (ps_code_tlbc_start(e, &py->mem, o, w->raw_tlbc[k], py->tlbc_generation,
                                   &start) < 0) {
                t->err = PS_ETORN;
                break;
            }
            instr = (int64_t)(e->code_start + ((uint64_t)instr - start));
        }
        int32_t line = ps_code_line(o, e, instr);
        if (line == -2) {
            t->err = PS_ETORN;
            break;
        }
        t->frames[k].code = e;
        t->frames[k].tlbc = w->raw_tlbc[k];
        t->frames[k].instr = w->raw_instr[k];
        t->frames[k].line = line;
        t->frames[k].entry = ps_raw_entry(w, k);
    }
    if (t->err) {
        t->nframes = k;
        t->kept = 0;
    } else {
        t->nframes = w->nraw;
        w->resolved_ok = 1;
        w->resolved_gen = py->codes->generation;
    }
}

/* Resolves every walk into the snapshot, and lists the codes it references for validation in
 * the next snapshot's round 0 (recursion repeats a code: listed once). */
static void ps_resolve_threads(struct ps_py *py, struct ps_tick *tk, struct ps_py_snapshot *s)
{
    struct ps_thread_cache *tc = py->threads;
    /* Re-checks of sleeping threads are spread: at most an eighth of the threads (at least 64)
     * per tick, so that when ticks run late every window running out at once cannot make each
     * tick ask about every thread (and so run later still). */
    tk->recheck_budget = PS_MAX(64, tc->ntstates / 8);
    tc->nprev = 0;
    tc->prev_all_current = 1;
    tc->prev_counter = py->code_counter;
    for (int i = 0; i < tc->ntstates; i++) {
        struct ps_twalk *w = tc->walks[i];
        struct ps_py_thread *t = ps_snapshot_slot(s, s->n);
        t->tstate = w->tstate;
        t->interp = tc->tstate_interp[i];
        struct ps_tcache_entry *ce = ps_resolve_identity(py, w, t);
        ps_resolve_frames(py, w, s, t);
        ps_resolve_activity(py, tk, w, ce, t);
        for (int f = 0; f < t->nframes; f++)
            if (!f || t->frames[f].code != t->frames[f - 1].code)
                ps_list_prev_code(py, t->frames[f].code);
        s->n++;
    }
}

/* One snapshot of every thread (see the header of this file for the rounds). */
int ps_py_sample(struct ps_py *py, struct ps_py_snapshot *s)
{
    struct ps_tick tk;
    uint64_t reads0 = py->mem.remote_reads;
    s->n = 0;
    int rc = ps_tick_begin(py, &tk);
    if (rc < 0)
        goto out;
    ps_round0_plan(py, &tk);
    if ((rc = ps_tick_read(py, &tk)) < 0 || (rc = ps_round0_check(py, &tk)) < 0)
        goto out;
    ps_round1_plan(py, &tk);
    if ((rc = ps_tick_read(py, &tk)) < 0)
        goto out;
    ps_round1_check(py, &tk);
    if ((rc = ps_walk_rounds(py, &tk)) < 0)
        goto out;
    ps_guesses_remember(py);
    ps_resolve_threads(py, &tk, s);
out:
    s->reads = py->mem.remote_reads - reads0;
    return rc;
}

void ps_py_thread_name(struct ps_py *py, const struct ps_py_thread *t, char *buf, size_t sz)
{
    struct ps_tcache_entry *e = ps_tcache_get(py, t->tstate);
    if (!e->comm_tried) {
        e->comm_tried = 1;
        if (e->tid && py->pid && !e->name[0])
            ps_proc_comm(py->pid, e->tid, e->name, sizeof e->name);
    }
    if (!e->pyname_tried && t->ident) {
        /* Up to 3.13 comm is the process name: prefer threading's name, looked up once per
         * thread, together with every other thread of the same interpreter not looked up yet
         * (one walk of threading._active for them all, not one per thread). */
        struct ps_thread_cache *tc = py->threads;
        uint64_t *ids = ps_xmalloc(sizeof(uint64_t) * (size_t)(tc->n + 1));
        struct ps_tcache_entry **who = ps_xmalloc(sizeof(*who) * (size_t)(tc->n + 1));
        char (*names)[PS_TN_NAME_SIZE] = ps_xmalloc(sizeof(*names) * (size_t)(tc->n + 1));
        int n = 0;
        ids[n] = t->ident;
        who[n++] = e;
        for (int k = 0; k < tc->n; k++)
            if (&tc->v[k] != e && !tc->v[k].pyname_tried && tc->v[k].ident &&
                tc->v[k].interp == t->interp) {
                ids[n] = tc->v[k].ident;
                who[n++] = &tc->v[k];
            }
        e->pyname_tried = 1;
        int found = ps_py_thread_names(py, t->interp, ids, n, names);
        for (int i = 0; i < n; i++) {
            if (found > 0 && names[i][0])
                snprintf(who[i]->name, sizeof who[i]->name, "%s", names[i]);
            /* Looked up: a thread threading does not know (or a version without its names)
             * keeps its comm name rather than costing another walk per thread. */
            if (found >= 0 || found == PS_EVERSION)
                who[i]->pyname_tried = 1;
        }
        free(ids);
        free(who);
        free(names);
    }
    snprintf(buf, sz, "%s", e->name);
}
