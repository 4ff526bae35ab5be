/* ps_profile.h — interning (strings -> frames -> stacks, dense integer ids) and the profile:
 * sample counts per stack plus the session's self-statistics.
 *
 * Hot-path contract: once a string, frame or stack has been seen, interning it again does no
 * allocation and no formatting (hash lookups only). Memory grows with unique stacks, never with
 * the number of samples. Ids are dense and start at 1; 0 means "none".
 * Process and thread roots (--subprocesses, --threads) are ordinary frames with file 0 and
 * line 0 whose name is the full root text, e.g. `process 42:"python app.py"`.
 */
#ifndef PS_PROFILE_H
#define PS_PROFILE_H

#include <stddef.h>
#include <stdint.h>

struct ps_intern;

struct ps_frame_key {
    uint32_t name;  /* string id of the function (qualname on 3.11+) */
    uint32_t file;  /* string id of the file name, 0 if unknown */
    int32_t line;   /* 0 if unknown */
};

struct ps_intern *ps_intern_new(void);
void ps_intern_free(struct ps_intern *in);
uint32_t ps_intern_str(struct ps_intern *in, const char *s, size_t len);
const char *ps_intern_str_get(const struct ps_intern *in, uint32_t id);
/* Length of string `id` (it may hold NUL bytes; ps_intern_str_get's text stops at the first). */
size_t ps_intern_str_len(const struct ps_intern *in, uint32_t id);
uint32_t ps_intern_frame(struct ps_intern *in, uint32_t name, uint32_t file, int32_t line);
const struct ps_frame_key *ps_intern_frame_get(const struct ps_intern *in, uint32_t id);
/* frames[] is root -> leaf. n may be 0 (an empty stack has an id too). */
uint32_t ps_intern_stack(struct ps_intern *in, const uint32_t *frames, uint32_t n);
const uint32_t *ps_intern_stack_get(const struct ps_intern *in, uint32_t id, uint32_t *n);
uint32_t ps_intern_nstacks(const struct ps_intern *in);
uint32_t ps_intern_nframes(const struct ps_intern *in);
/* Bytes of heap held by the interner (for the memory-flatness test and the bench). */
size_t ps_intern_bytes(const struct ps_intern *in);

/* Why a thread-sample was dropped. */
#define PS_DROPS(X)                        \
    X(TORN, "torn read")                   \
    X(VANISHED, "thread vanished")         \
    X(READ, "read error")                  \
    X(CORRUPT, "bad frame data")           \
    X(DEPTH, "stack too deep")             \
    X(PROCESS, "process gone")
enum ps_drop {
#define PS_X_DROP(n, s) PS_DROP_##n,
    PS_DROPS(PS_X_DROP)
#undef PS_X_DROP
    PS_DROP__COUNT
};
const char *ps_drop_name(enum ps_drop d);

/* Self-statistics of a session; written into every output. */
struct ps_stats {
    double rate_hz;            /* requested */
    double duration_s;         /* wall time of the session */
    uint64_t ticks;            /* sampling ticks taken */
    uint64_t late_ticks;       /* ticks that started after their deadline + one interval */
    uint64_t missed_ticks;     /* deadlines that passed without a tick (a stall of N intervals
                                  misses N), not in ticks */
    uint64_t thread_samples;   /* thread-samples counted into the profile */
    uint64_t truncated;        /* of those, stacks deeper than the limit: kept, outermost
                                  frames cut (not a drop) */
    uint64_t dropped[PS_DROP__COUNT];
    uint64_t idle_skipped;     /* idle thread-samples left out (default mode) */
    uint64_t gil_samples;      /* counted thread-samples whose thread held the GIL */
    uint64_t nogil_samples;    /* counted thread-samples of free-threaded targets running
                                  without a GIL (no holder: `gil_samples` does not apply) */
    uint64_t attached_samples; /* ... and of those, the thread was attached (running Python
                                  or C that did not detach): the no-GIL "holds the GIL" */
    uint64_t active_samples;   /* counted thread-samples whose thread was running */
    uint64_t remote_reads;     /* syscalls against the target(s) */
    uint64_t sample_ns_min, sample_ns_median, sample_ns_max; /* wall time to take one tick */
    uint64_t sample_cpu_ns_min, sample_cpu_ns_median, sample_cpu_ns_max; /* its CPU time */
    uint64_t native_samples;   /* --native: thread-samples with C frames merged */
    uint64_t native_failed;    /* --native: C stack not readable (Python frames kept alone) */
    uint64_t native_mismatch;  /* --native: C and Python frames did not line up */
    uint64_t stop_ns_min, stop_ns_median, stop_ns_max; /* --native: how long a thread stopped */
};
uint64_t ps_stats_dropped_total(const struct ps_stats *s);

/* Free-form metadata carried into outputs as `# key: value` lines. */
#define PS_META_MAX 32
struct ps_meta {
    int n;
    char *key[PS_META_MAX];
    char *val[PS_META_MAX];
};

/* One process of a live --subprocesses session, as the sampler counted it. Filled by the
 * session when sampling ends (ps_profile_add_proc), printed by the table writer; not carried
 * in folded files (which keep per-process samples in their `process PID:"cmd"` roots). */
struct ps_proc_summary {
    int pid;
    char *cmdline;             /* owned by the profile */
    uint64_t samples;          /* thread-samples counted into the profile */
    uint64_t gil_samples;      /* of those, the thread held the GIL */
    uint64_t active_samples;   /* of those, the thread was running (not idle) */
    uint64_t idle_skipped;     /* idle thread-samples left out (default mode) */
    uint64_t nogil_samples;    /* of the counted, taken while it ran without a GIL
                                  (free-threaded) */
    uint64_t attached_samples; /* ... and the thread was attached */
};

struct ps_profile {
    struct ps_intern *in;
    uint64_t *counts;          /* indexed by stack id */
    uint32_t counts_cap;
    uint64_t total;            /* sum of counts */
    double interval_s;         /* seconds per sample (1/rate); from metadata when read from files */
    struct ps_stats stats;
    int has_stats;             /* stats were measured (live) or read back */
    struct ps_meta meta;       /* pysample version, python version, pid, command, ... */
    struct ps_proc_summary *procs; /* per process, root first (live --subprocesses only) */
    int nprocs;
};

void ps_profile_init(struct ps_profile *p);
void ps_profile_release(struct ps_profile *p);
/* Adds `count` samples of stack `stack_id` (no allocation once counts_cap covers the id).
 * Stack id 0 is ignored. */
void ps_profile_add(struct ps_profile *p, uint32_t stack_id, uint64_t count);
/* Copies key and val; replacing a key frees its old value; val NULL removes the key. Keys past
 * PS_META_MAX are dropped. */
void ps_meta_set(struct ps_meta *m, const char *key, const char *val);
const char *ps_meta_get(const struct ps_meta *m, const char *key);
/* Appends a copy of *sum (cmdline duplicated; NULL becomes "") to p->procs. */
void ps_profile_add_proc(struct ps_profile *p, const struct ps_proc_summary *sum);
size_t ps_profile_bytes(const struct ps_profile *p);
/* Adds src into dst (re-interned): each count becomes round(count x scale), at least 1;
 * statistics counters and durations add up, min/median/max combine as min/max/max, rate and
 * interval are kept from dst when set, metadata keys dst lacks are copied. Used by `report`
 * to weight files recorded at different rates by their own intervals. */
void ps_profile_merge(struct ps_profile *dst, const struct ps_profile *src, double scale);

#endif
