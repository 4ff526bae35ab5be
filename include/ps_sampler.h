/* ps_sampler.h — the sampling session: a fixed-rate clock on absolute deadlines that walks every
 * target's threads each tick and counts interned stacks into a profile.
 *
 * Steady state: no allocation and no formatting per tick (frames and stacks are interned by id,
 * root frames cached). Late ticks are counted, never made up with a burst. The session ends on
 * the duration, on a stop request (signal), or when every target has exited; what was sampled
 * is always kept.
 */
#ifndef PS_SAMPLER_H
#define PS_SAMPLER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "ps_hist.h"
#include "ps_native.h"
#include "ps_profile.h"
#include "ps_python.h"

struct ps_sampler;

struct ps_sampler_opts {
    double rate_hz;         /* samples per second */
    double duration_s;      /* 0 = until stopped or the targets exit */
    int idle;               /* keep idle threads */
    int gil_only;           /* only the GIL holder */
    int threads;            /* a "thread (TID): NAME" root frame */
    int by_function;        /* aggregate by function (first line) instead of current line */
    int full_filenames;     /* keep co_filename as is */
    int subprocesses;       /* follow Python descendants (and their children) */
    int progress;           /* a progress line on stderr */
    int native;             /* merge C frames (stops each counted thread briefly per sample) */
    pid_t child;            /* record -- CMD: the launched child, reaped by the sampler */
    /* Called by ps_sampler_run after a tick, once every hook_period_s seconds (the first time
     * one period after the start); a nonzero return ends the run. NULL: never. */
    int (*hook)(struct ps_sampler *s, void *arg);
    void *hook_arg;
    double hook_period_s;
};

struct ps_target {
    pid_t pid;
    uint64_t starttime;     /* /proc start time: a reused PID is a different target */
    struct ps_py py;
    struct ps_py_snapshot snap;
    int pidfd;              /* readable once this very process has exited (PID reuse-proof) */
    int exit_watched;       /* the wait before this tick polled pidfd until the tick began */
    int exit_seen;          /* ... and saw it become readable */
    struct ps_native *nat;  /* --native: ptrace/libunwind/libdw state of this process */
    struct ps_py_snapshot nsnap; /* --native: Python frames read while a thread is stopped */
    uint32_t root_frame;    /* `process PID:"cmdline"` (subprocesses) */
    int alive;
    struct ps_proc_image image; /* the program it runs: exec() changes it */
    uint64_t exec_ns;       /* it exec'd at about this time and is not re-attached yet, or 0 */
    uint64_t exec_retry_ns; /* next re-attach attempt */
    uint64_t exec_pause_ns; /* between attempts while its program stays the same */
    char *exec_into;        /* the program its last exec() during this session ran, or NULL */
    int exec_note;          /* 1 + the index in notes of that exec's "sampled on" note, 0: none */
    uint64_t samples;       /* thread-samples counted for this process */
    uint64_t gil_samples, active_samples;
    uint64_t nogil_samples, attached_samples; /* free-threaded, GIL disabled (see ps_stats) */
    uint64_t idle_skipped;  /* idle thread-samples left out (default mode) */
    char *cmdline;
    /* The stack each snapshot slot counted at the previous walk: its outermost frames are
     * reused while they stay the same (ps_py_thread.kept), and the whole stack id when
     * nothing changed (a thread spinning on one line, or blocked). */
    struct ps_stack_memo {
        uint64_t walk;      /* t->walks when it was counted, 0 = none */
        pid_t tid;
        uint32_t troot, id;
        int nframes;        /* Python frames in it */
        uint32_t *ids;      /* the stack counted, outermost first (root frames included) */
        uint32_t cap;
    } *memo;
    int memo_cap;
    uint64_t walks;         /* walks of this target (ps_py_sample calls), to date */
    uint32_t space;         /* its address space (--native PCs): new at attach and at exec */
};

struct ps_sampler {
    struct ps_sampler_opts opts;
    struct ps_profile *prof;
    struct ps_target **targets;
    int ntargets, cap;
    uint64_t watched_ns;    /* when the last wait that watched the pidfds returned */
    volatile sig_atomic_t *stop;
    int child_status;       /* wait status of opts.child once reaped, -1 before */
    struct ps_hist hist;    /* tick durations, ns: exact min/max, median within 1/128 */
    struct ps_hist cpu_hist; /* tick CPU times (measured ticks), ns */
    /* thread root frames, cached by (pid, tid) */
    struct { pid_t pid, tid; uint32_t frame; } *troots;
    int ntroots, troots_cap;
    uint64_t last_scan_ns;
    uint64_t scan_cost_ns;          /* wall time of the last subprocess scan */
    uint64_t last_image_ns; /* last look for targets that exec'd */
    char child_err[512];    /* first reason a subprocess that may be Python was not sampled */
    int child_rc;           /* ... and its PS_E* code */
    char **notes;           /* one line each for the user (a target exec'd), printed by cmd/ */
    int nnotes;
    /* --native */
    struct ps_native_stack *nst;
    struct ps_native_sym *nsyms;
    struct ps_merged_frame *merged;
    int nmerged_max;
    /* native PC (+ inline index) in one address space -> frame id */
    struct { uint64_t key; uint32_t space, frame; } *pcmap;
    uint32_t pcmap_cap, pcmap_n;
    uint32_t spaces;        /* address spaces handed out (ps_target.space) */
    struct ps_hist stop_hist;   /* thread stop times, ns */
    uint32_t *stack;            /* frame ids of the stack being counted */
};

void ps_sampler_init(struct ps_sampler *s, const struct ps_sampler_opts *o, struct ps_profile *p,
                     volatile sig_atomic_t *stop);
void ps_sampler_release(struct ps_sampler *s);
/* Attaches to pid (and, with subprocesses, its Python descendants). Returns 0 or PS_E*, with
 * ps_err_detail() explaining; with subprocesses a non-Python root is accepted when it has
 * Python descendants. */
int ps_sampler_add_root(struct ps_sampler *s, pid_t pid);
/* Runs until duration / stop / all targets gone. Fills prof->stats and metadata. */
int ps_sampler_run(struct ps_sampler *s);

/* A target that calls exec() keeps its PID and start time: the sampler notices the new
 * program image (ps_proc_image) when a walk fails and every 100 ms, re-attaches when the new
 * program is Python (within a second: libpython is mapped after the exec), and otherwise
 * ends that target's sampling with what it had; either way it adds a note. */

/* One tick: sample every live target into the profile. Exposed for tests and the bench. */
int ps_sampler_tick(struct ps_sampler *s);

#endif
