/* unwind.c — stops one thread of the target briefly and unwinds its C stack (first step of
 * native/: symbolize.c names the PCs, merge.c adds the Python frames). Owns struct ps_native:
 * PTRACE_SEIZE on first use, PTRACE_INTERRUPT + bounded wait per unwind, libunwind over a copy
 * of the stack with unwind tables found in the target's memory (ehframe.c), resume before
 * anything else; and every way of letting go (detach, poll, the atexit hook, the signal-safe
 * emergency path, Ctrl-Z).
 */
#include <errno.h>
#include <libunwind-ptrace.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ps_arch.h"
#include "ps_native.h"
#include "ps_proc.h"
#include "ps_util.h"

#define PS_POLL_INTERVAL_NS 1000000ull     /* ps_native_unwind polls the others this often */
#define PS_EMERGENCY_WAIT_NS 5000000ull    /* per thread, in ps_native_emergency_detach */
#define PS_DETACH_WAIT_NS 1000000000ull    /* per thread, in ps_native_detach_all: once we have
                                              interrupted a thread it must stop and be let go,
                                              even when a loaded machine schedules it late */
#define PS_STACK_COPY_FIRST (32u << 10)    /* bytes of stack copied by a thread's first unwind */
#define PS_STACK_COPY_MIN (8u << 10)
#define PS_STACK_COPY_MAX (1u << 20)
#define PS_STACK_BELOW_SP 128              /* the x86-64 red zone */
#define PS_PAGE 4096u
#define PS_PAGE_CACHE_MAX 1024u            /* read-only pages kept (4 MiB); then start over */

/* What libunwind's accessors get as their argument during one unwind. */
struct ps_unw_ctx {
    void *upt;                /* _UPT_create(tid): libunwind's per-thread ptrace context */
    uint64_t lo, hi;          /* the copy of the stack, [lo, hi), in buf */
    const uint8_t *buf;
    uint64_t reach;           /* highest stack address read, to size the next copy */
};

struct ps_seized {
    pid_t tid;
    struct ps_unw_ctx ctx;
    uint32_t copy_len;        /* stack bytes to copy next time */
    int pending;              /* interrupted, stop not seen yet (the wait timed out) */
    int group_stop;           /* last seen in group-stop, left there with PTRACE_LISTEN */
};

struct ps_native {
    pid_t pid;
    unw_addr_space_t as;
    struct ps_native_symtab *syms;
    struct ps_seized *seized;
    int nseized, capseized;
    uint64_t stop_timeout_ns;
    uint64_t last_poll_ns;
    uint64_t seen_refreshes;  /* symtab refreshes already answered with unw_flush_cache */
    uint8_t *stack;           /* one stack copy at a time (unwinds are sequential) */
    size_t stack_cap;
    /* Pages of read-only mappings (unwind tables, code) that libunwind read, by address. */
    struct ps_maps maps;
    struct ps_page {
        uint64_t addr;        /* page address + 1; 0 = empty slot */
        uint8_t *data;
    } *pages;
    uint32_t npages;
    uint64_t page_reads;      /* statistics: pages copied from the target */
    /* Unwind tables by module (ehframe.c), found on first use; emptied with the maps. */
    struct ps_modtab {
        uint64_t lo, hi;      /* addresses this entry answers for */
        int kind;             /* PS_MODTAB_* */
        struct ps_native_unwtab tab;
    } *mods;
    int nmods, capmods;
    int maps_reread;          /* the maps were read again during this unwind */
    int exec_seen;            /* a seized thread reported PTRACE_EVENT_EXEC: flush first */
    int epoch;                /* ps_let_go_epoch when the seized list was last valid */
};

enum {
    PS_MODTAB_TABLE = 1,      /* tab is the module's .eh_frame_hdr table */
    PS_MODTAB_SAMEFILE,       /* no table in memory; the maps' path names the very file the
                                 target mapped (same root): libunwind may open it itself */
    PS_MODTAB_NONE,           /* no unwind table (anonymous or foreign code): frame chain */
};

/* The library's table search, exported but not declared by libunwind's headers. */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as, unw_word_t ip,
                                              unw_dyn_info_t *di, unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

/* ---- libunwind accessors: _UPT's, with stack reads served from one copy ------------------- */

/* The thread's stack is copied with one process_vm_readv while it is stopped, instead of one
 * PTRACE_PEEKDATA per word; everything else (registers, unwind tables, other memory) goes to
 * libunwind's ptrace accessors. libunwind hands the accessors either our context (from the
 * cursor) or, from inside _UPT_find_proc_info, the _UPT context itself; ps_unw_cur (one unwind
 * at a time, on the tracer thread) tells them apart. */
static struct ps_unw_ctx *ps_unw_cur;
static struct ps_native *ps_unw_native;

static void ps_pages_clear(struct ps_native *n)
{
    if (!n->pages)
        return;
    for (uint32_t i = 0; i < 2 * PS_PAGE_CACHE_MAX; i++) {
        free(n->pages[i].data);
        n->pages[i].data = NULL;
        n->pages[i].addr = 0;
    }
    n->npages = 0;
}

/* A word of a read-only file mapping, through a cache of whole pages: unwind tables are read
 * a word at a time, and they do not change. Returns 0, or -1 when not applicable. */
static int ps_ro_read(struct ps_native *n, uint64_t addr, unw_word_t *val)
{
    uint64_t page = addr & ~(uint64_t)(PS_PAGE - 1);
    if (addr - page + sizeof *val > PS_PAGE)
        return -1;
    const struct ps_map *m = ps_maps_find(&n->maps, addr);
    if (!m || m->perms[0] != 'r' || m->perms[1] == 'w' || !m->path[0] || m->path[0] == '[')
        return -1;
    if (!n->pages)
        n->pages = ps_xcalloc(2 * PS_PAGE_CACHE_MAX, sizeof *n->pages);
    uint32_t mask = 2 * PS_PAGE_CACHE_MAX - 1;
    uint32_t i = (uint32_t)((page >> 12) * 0x9e3779b1u) & mask;
    while (n->pages[i].addr && n->pages[i].addr != page + 1)
        i = (i + 1) & mask;
    if (!n->pages[i].addr) {
        if (n->npages >= PS_PAGE_CACHE_MAX) {
            ps_pages_clear(n);
            return ps_ro_read(n, addr, val);
        }
        uint8_t *data = ps_xmalloc(PS_PAGE);
        struct iovec local = {data, PS_PAGE};
        struct iovec remote = {(void *)(uintptr_t)page, PS_PAGE};
        if (process_vm_readv(n->pid, &local, 1, &remote, 1, 0) != (ssize_t)PS_PAGE) {
            free(data);
            return -1;
        }
        n->pages[i].addr = page + 1;
        n->pages[i].data = data;
        n->npages++;
        n->page_reads++;
    }
    memcpy(val, n->pages[i].data + (addr - page), sizeof *val);
    return 0;
}

static void *ps_upt_of(void *arg)
{
    return ps_unw_cur && arg == ps_unw_cur ? ps_unw_cur->upt : arg;
}

static int ps_acc_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
                      void *arg)
{
    struct ps_unw_ctx *c = ps_unw_cur;
    if (c && !write && (arg == c || arg == c->upt) && addr >= c->lo) {
        if (addr < c->lo + PS_STACK_COPY_MAX && addr + sizeof *val > c->reach)
            c->reach = addr + sizeof *val;
        if (addr + sizeof *val <= c->hi) {
            memcpy(val, c->buf + (addr - c->lo), sizeof *val);
            return 0;
        }
    }
    if (!write && ps_unw_native && ps_ro_read(ps_unw_native, addr, val) == 0)
        return 0;
    /* Anything else word by word, always through the thread being unwound (it is stopped). */
    return _UPT_accessors.access_mem(as, addr, val, write, c ? c->upt : arg);
}

static int ps_read_target(void *arg, uint64_t addr, void *buf, size_t len)
{
    struct ps_native *n = arg;
    struct iovec local = {buf, len};
    struct iovec remote = {(void *)(uintptr_t)addr, len};
    return process_vm_readv(n->pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

static void ps_modtabs_clear(struct ps_native *n)
{
    n->nmods = 0;
}

/* Re-reads the target's maps (a module appeared, or the image changed): every cache keyed by
 * address goes with them. libunwind's own cache is flushed only between unwinds (flush_unw),
 * never from inside one of its callbacks. */
static void ps_maps_refresh(struct ps_native *n, int flush_unw)
{
    if (flush_unw)
        unw_flush_cache(n->as, 0, 0);
    ps_pages_clear(n);
    ps_modtabs_clear(n);
    ps_maps_release(&n->maps);
    if (ps_maps_read(n->pid, &n->maps) < 0)
        memset(&n->maps, 0, sizeof n->maps);
}

/* Does the target's `path` (under its own root) name the file pysample sees at `path`? */
static int ps_same_file(pid_t pid, const char *path)
{
    char theirs[4200];
    struct stat a, b;
    if (path[0] != '/')
        return 0;
    ps_proc_root_path(pid, path, theirs, sizeof theirs);
    return stat(theirs, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* The unwind-table entry answering for ip (found and cached on first use), or NULL. */
static const struct ps_modtab *ps_modtab_get(struct ps_native *n, uint64_t ip)
{
    for (int i = 0; i < n->nmods; i++)
        if (ip >= n->mods[i].lo && ip < n->mods[i].hi)
            return &n->mods[i];
    if (!ps_maps_find(&n->maps, ip)) {
        if (n->maps_reread)
            return NULL;
        n->maps_reread = 1; /* mapped since the maps were read (dlopen): once per unwind */
        ps_maps_refresh(n, 0);
    }
    struct ps_modtab e;
    memset(&e, 0, sizeof e);
    int rc = ps_native_unwtab_find(&n->maps, ip, ps_read_target, n, &e.tab);
    if (rc == PS_EFAULT)
        return NULL;
    if (rc == 0) {
        e.lo = e.tab.lo;
        e.hi = e.tab.hi;
        e.kind = PS_MODTAB_TABLE;
    } else {
        const struct ps_map *m = ps_maps_find(&n->maps, ip);
        e.lo = e.tab.map_lo;
        e.hi = e.tab.map_hi;
        e.kind = m && ps_same_file(n->pid, m->path) ? PS_MODTAB_SAMEFILE : PS_MODTAB_NONE;
        ps_log(2, "native: %s: %s", m ? m->path : "?",
               e.kind == PS_MODTAB_SAMEFILE ? "unwind table from the file" : ps_err_detail());
    }
    if (n->nmods == n->capmods) {
        n->capmods = n->capmods ? n->capmods * 2 : 32;
        n->mods = ps_xrealloc(n->mods, sizeof *n->mods * (size_t)n->capmods);
    }
    n->mods[n->nmods] = e;
    return &n->mods[n->nmods++];
}

static int ps_acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                                 int need, void *arg)
{
    struct ps_native *n = ps_unw_native;
    const struct ps_modtab *t = n && n->maps.n ? ps_modtab_get(n, ip) : NULL;
    if (n && n->maps.n && (!t || t->kind == PS_MODTAB_NONE))
        return -UNW_ENOINFO;
    if (t && t->kind == PS_MODTAB_TABLE) {
        unw_dyn_info_t di;
        memset(&di, 0, sizeof di);
        di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
        di.start_ip = t->tab.lo;
        di.end_ip = t->tab.hi;
        di.u.rti.segbase = t->tab.hdr;
        di.u.rti.table_data = t->tab.table;
        di.u.rti.table_len = t->tab.count * 8 / sizeof(unw_word_t);
        return UNW_OBJ(dwarf_search_unwind_table)(as, ip, &di, pi, need, arg);
    }
    /* The file the target mapped is the one its maps name for us too (or the maps are
     * unknown): libunwind's own lookup opens it. */
    return _UPT_accessors.find_proc_info(as, ip, pi, need, ps_upt_of(arg));
}

static void ps_acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
    _UPT_accessors.put_unwind_info(as, pi, ps_upt_of(arg));
}

static int ps_acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
    return _UPT_accessors.get_dyn_info_list_addr(as, addr, ps_upt_of(arg));
}

static int ps_acc_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
                      void *arg)
{
    return _UPT_accessors.access_reg(as, reg, val, write, ps_upt_of(arg));
}

static int ps_acc_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                        void *arg)
{
    return _UPT_accessors.access_fpreg(as, reg, val, write, ps_upt_of(arg));
}

static int ps_acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    (void)as;
    (void)c;
    (void)arg;
    return -UNW_EINVAL; /* never resume the target through libunwind */
}

static int ps_acc_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
                            unw_word_t *off, void *arg)
{
    /* Never used (symbolize.c names PCs); libunwind's version opens files by the maps' path,
     * which is another file for a target under another root. */
    (void)as;
    (void)addr;
    (void)buf;
    (void)len;
    (void)off;
    (void)arg;
    return -UNW_ENOINFO;
}

static unw_accessors_t ps_accessors = {
    .find_proc_info = ps_acc_find_proc_info,
    .put_unwind_info = ps_acc_put_unwind_info,
    .get_dyn_info_list_addr = ps_acc_get_dyn_info_list_addr,
    .access_mem = ps_acc_mem,
    .access_reg = ps_acc_reg,
    .access_fpreg = ps_acc_fpreg,
    .resume = ps_acc_resume,
    .get_proc_name = ps_acc_proc_name,
};

/* ---- the static list behind the emergency path -------------------------------------------- */

/* Seized TIDs of every struct ps_native, readable from a signal handler: slots [0, hi) are
 * valid, 0 marks a hole. Only the tracer thread writes; stores are atomic. */
static pid_t ps_emerg_tids[PS_NATIVE_MAX_SEIZED];
static int ps_emerg_hi;
static int ps_hooks_installed;

static const int ps_crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction ps_crash_old[PS_ARRAY_LEN(ps_crash_signals)];

static int ps_emerg_add(pid_t tid)
{
    int hi = __atomic_load_n(&ps_emerg_hi, __ATOMIC_RELAXED);
    for (int i = 0; i < hi; i++)
        if (__atomic_load_n(&ps_emerg_tids[i], __ATOMIC_RELAXED) == 0) {
            __atomic_store_n(&ps_emerg_tids[i], tid, __ATOMIC_SEQ_CST);
            return 0;
        }
    if (hi >= PS_NATIVE_MAX_SEIZED)
        return PS_ERANGE;
    __atomic_store_n(&ps_emerg_tids[hi], tid, __ATOMIC_SEQ_CST);
    __atomic_store_n(&ps_emerg_hi, hi + 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void ps_emerg_remove(pid_t tid)
{
    int hi = __atomic_load_n(&ps_emerg_hi, __ATOMIC_RELAXED);
    for (int i = 0; i < hi; i++)
        if (__atomic_load_n(&ps_emerg_tids[i], __ATOMIC_RELAXED) == tid)
            __atomic_store_n(&ps_emerg_tids[i], 0, __ATOMIC_SEQ_CST);
}

/* ---- raw ptrace helpers (syscalls only: also used from signal handlers) -------------------- */

static long ps_ptrace(long req, pid_t tid, long addr, long data)
{
    return syscall(SYS_ptrace, req, (long)tid, addr, data);
}

static uint64_t ps_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ps_is_group_stop_sig(int sig)
{
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* What a wait status means for a seized thread. */
enum ps_stop_kind {
    PS_STOP_NONE = 0,     /* nothing reported */
    PS_STOP_GONE,         /* exited, killed, or not our tracee any more */
    PS_STOP_TRAP,         /* PTRACE_EVENT_STOP of an interrupt (or another trap) */
    PS_STOP_GROUP,        /* PTRACE_EVENT_STOP in group-stop (SIGSTOP & co.) */
    PS_STOP_SIGNAL,       /* signal-delivery-stop: *sig must be re-injected */
    PS_STOP_OTHER,        /* some other ptrace event: resume with 0 */
    PS_STOP_EXEC,         /* PTRACE_EVENT_EXEC: the image changed; resume with 0 */
};

static enum ps_stop_kind ps_wait_once(pid_t tid, int *sig)
{
    int st = 0;
    pid_t w;
    do
        w = waitpid(tid, &st, __WALL | WNOHANG);
    while (w < 0 && errno == EINTR);
    *sig = 0;
    if (w < 0)
        return PS_STOP_GONE; /* ECHILD */
    if (w == 0)
        return PS_STOP_NONE;
    if (WIFEXITED(st) || WIFSIGNALED(st))
        return PS_STOP_GONE;
    if (!WIFSTOPPED(st))
        return PS_STOP_OTHER;
    int event = (st >> 16) & 0xff;
    if (event == PTRACE_EVENT_STOP)
        return ps_is_group_stop_sig(WSTOPSIG(st)) ? PS_STOP_GROUP : PS_STOP_TRAP;
    if (event == 0) {
        *sig = WSTOPSIG(st);
        return PS_STOP_SIGNAL;
    }
    return event == PTRACE_EVENT_EXEC ? PS_STOP_EXEC : PS_STOP_OTHER;
}

/* Lets go of one thread using syscalls only, waiting at most timeout_ns for it to stop.
 * Returns 1 detached (or gone), 0 could not (it never stopped; the kernel detaches at exit). */
static int ps_detach_one(pid_t tid, uint64_t timeout_ns)
{
    int sig;
    /* A stop that was reported but not collected (a signal to pass on, or our interrupt). */
    enum ps_stop_kind k = ps_wait_once(tid, &sig);
    if (k == PS_STOP_GONE)
        return 1;
    if (k != PS_STOP_NONE)
        return ps_ptrace(PTRACE_DETACH, tid, 0, k == PS_STOP_SIGNAL ? sig : 0) == 0 ||
               errno == ESRCH;
    /* Stopped with its status already collected (e.g. we crashed mid-unwind). */
    if (ps_ptrace(PTRACE_DETACH, tid, 0, 0) == 0)
        return 1;
    /* Running: the kernel only detaches a stopped tracee. */
    if (ps_ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0)
        return errno == ESRCH;
    uint64_t deadline = ps_mono_ns() + timeout_ns;
    for (;;) {
        k = ps_wait_once(tid, &sig);
        if (k == PS_STOP_GONE)
            return 1;
        if (k != PS_STOP_NONE)
            return ps_ptrace(PTRACE_DETACH, tid, 0, k == PS_STOP_SIGNAL ? sig : 0) == 0 ||
                   errno == ESRCH;
        if (ps_mono_ns() >= deadline)
            return 0;
        sched_yield();
    }
}

void ps_native_emergency_detach(void)
{
    int hi = __atomic_load_n(&ps_emerg_hi, __ATOMIC_SEQ_CST);
    for (int i = 0; i < hi; i++) {
        pid_t tid = __atomic_exchange_n(&ps_emerg_tids[i], 0, __ATOMIC_SEQ_CST);
        if (tid > 0)
            ps_detach_one(tid, PS_EMERGENCY_WAIT_NS);
    }
}

/* ---- job control: Ctrl-Z lets every thread go ---------------------------------------------
 * A stopped pysample must not hold a target thread stopped. SIGTSTP/SIGTTIN/SIGTTOU (when their
 * disposition was the default, i.e. stop) are caught: every listed thread is let go, then
 * pysample stops itself with SIGSTOP; after SIGCONT each struct ps_native notices the new
 * epoch, forgets the threads that were let go, and seizes them again on their next unwind.
 * While the tracer is inside a ptrace sequence (ps_busy) the stop waits for its end, a few
 * milliseconds at most (the stop timeout of one thread). */

static const int ps_job_signals[] = {SIGTSTP, SIGTTIN, SIGTTOU};
static struct sigaction ps_job_old[PS_ARRAY_LEN(ps_job_signals)];
static volatile sig_atomic_t ps_busy;        /* nesting depth of ptrace sequences */
static volatile sig_atomic_t ps_job_pending; /* a stop signal came while busy */
static volatile sig_atomic_t ps_let_go_epoch; /* times every thread was let go for a stop */

/* Lets go of every listed thread, all at once: interrupt those running, then detach each as its
 * stop arrives, within one shared deadline. A thread that does not stop in time stays listed
 * (and traced, its interrupt pending). Syscalls only. */
static void ps_let_go_listed(uint64_t timeout_ns)
{
    int hi = __atomic_load_n(&ps_emerg_hi, __ATOMIC_SEQ_CST);
    for (int i = 0; i < hi; i++) {
        pid_t tid = __atomic_load_n(&ps_emerg_tids[i], __ATOMIC_SEQ_CST);
        if (tid <= 0)
            continue;
        int sig;
        enum ps_stop_kind k = ps_wait_once(tid, &sig);
        int done;
        if (k == PS_STOP_GONE)
            done = 1;
        else if (k != PS_STOP_NONE)
            done = ps_ptrace(PTRACE_DETACH, tid, 0, k == PS_STOP_SIGNAL ? sig : 0) == 0 ||
                   errno == ESRCH;
        else if (ps_ptrace(PTRACE_DETACH, tid, 0, 0) == 0) /* stopped, status collected */
            done = 1;
        else
            done = ps_ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 && errno == ESRCH;
        if (done)
            __atomic_store_n(&ps_emerg_tids[i], 0, __ATOMIC_SEQ_CST);
    }
    uint64_t deadline = ps_mono_ns() + timeout_ns;
    for (;;) {
        int left = 0;
        for (int i = 0; i < hi; i++) {
            pid_t tid = __atomic_load_n(&ps_emerg_tids[i], __ATOMIC_SEQ_CST);
            if (tid <= 0)
                continue;
            int sig;
            enum ps_stop_kind k = ps_wait_once(tid, &sig);
            if (k == PS_STOP_NONE) {
                left++;
                continue;
            }
            if (k == PS_STOP_GONE ||
                ps_ptrace(PTRACE_DETACH, tid, 0, k == PS_STOP_SIGNAL ? sig : 0) == 0 ||
                errno == ESRCH)
                __atomic_store_n(&ps_emerg_tids[i], 0, __ATOMIC_SEQ_CST);
            else
                left++;
        }
        if (!left || ps_mono_ns() >= deadline)
            return;
        sched_yield();
    }
}

/* Lets every thread go and stops pysample; returns after SIGCONT. Async-signal-safe. */
static void ps_job_stop(void)
{
    int saved = errno;
    ps_job_pending = 0;
    ps_let_go_listed(PS_DETACH_WAIT_NS);
    ps_let_go_epoch++;
    raise(SIGSTOP);
    errno = saved;
}

static void ps_job_handler(int sig)
{
    (void)sig;
    if (ps_busy) {
        ps_job_pending = 1;
        return;
    }
    ps_job_stop();
}

static void ps_busy_enter(void)
{
    ps_busy++;
}

static void ps_busy_leave(void)
{
    if (--ps_busy == 0 && __atomic_exchange_n(&ps_job_pending, 0, __ATOMIC_SEQ_CST))
        ps_job_stop();
}

static int ps_emerg_contains(pid_t tid)
{
    int hi = __atomic_load_n(&ps_emerg_hi, __ATOMIC_RELAXED);
    for (int i = 0; i < hi; i++)
        if (__atomic_load_n(&ps_emerg_tids[i], __ATOMIC_RELAXED) == tid)
            return 1;
    return 0;
}

static void ps_seized_drop(struct ps_native *n, int i);

/* After a job-control stop: forget the threads that were let go (they are seized again on
 * their next unwind); one that could not be let go is still ours, its interrupt pending. */
static void ps_resync(struct ps_native *n)
{
    if (n->epoch == ps_let_go_epoch)
        return;
    n->epoch = ps_let_go_epoch;
    for (int i = 0; i < n->nseized;) {
        if (ps_emerg_contains(n->seized[i].tid)) {
            n->seized[i].pending = 1;
            i++;
        } else {
            ps_seized_drop(n, i);
        }
    }
}

static void ps_native_atexit(void)
{
    ps_native_emergency_detach();
}

/* Crash of pysample itself: let the target go, then let the previous disposition (default:
 * core dump; or a sanitizer's report) handle the signal. */
static void ps_crash_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    ps_native_emergency_detach();
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_crash_signals); i++)
        if (ps_crash_signals[i] == sig)
            sigaction(sig, &ps_crash_old[i], NULL);
    /* A fault re-executes and faults again under the restored handler; a sent signal (abort,
     * kill) is raised again. */
    if (si->si_code <= 0 || sig == SIGABRT)
        raise(sig);
}

static void ps_install_hooks(void)
{
    if (ps_hooks_installed)
        return;
    ps_hooks_installed = 1;
    atexit(ps_native_atexit);
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_crash_signals); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = ps_crash_handler;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(ps_crash_signals[i], &sa, &ps_crash_old[i]);
    }
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_job_signals); i++) {
        /* Only where the signal would stop pysample: an ignored one stays ignored. */
        if (sigaction(ps_job_signals[i], NULL, &ps_job_old[i]) != 0 ||
            ps_job_old[i].sa_handler != SIG_DFL)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = ps_job_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(ps_job_signals[i], &sa, NULL);
    }
}

/* ---- the per-process state --------------------------------------------------------------- */

/* "process 4242 (strace)" for the tracer of a thread, in buf. */
static void ps_tracer_desc(pid_t tracer, char *buf, size_t sz)
{
    char comm[64];
    if (ps_proc_comm(tracer, tracer, comm, sizeof comm) == 0)
        snprintf(buf, sz, "process %d (%s)", (int)tracer, comm);
    else
        snprintf(buf, sz, "process %d", (int)tracer);
}

/* A thread has one tracer at a time: fails with the one line to show when another process
 * (a debugger, strace) traces a thread of pid already. */
static int ps_check_not_traced(pid_t pid)
{
    pid_t *tids = NULL;
    int ntids = 0;
    if (ps_proc_tasks(pid, &tids, &ntids) < 0)
        return 0; /* gone or unreadable: said by whoever reads it next */
    int rc = 0;
    for (int i = 0; i < ntids && rc == 0; i++) {
        pid_t tracer = 0;
        if (ps_proc_tracer(pid, tids[i], &tracer) == 0 && tracer > 0 && tracer != getpid()) {
            char who[128];
            ps_tracer_desc(tracer, who, sizeof who);
            ps_err_set("thread %d is already traced by %s, and a thread has one tracer at a "
                       "time — detach or end that tracer first, or sample without --native",
                       (int)tids[i], who);
            rc = PS_EPERM;
        }
    }
    free(tids);
    return rc;
}

struct ps_native *ps_native_new(pid_t pid)
{
    if (ps_check_not_traced(pid) < 0)
        return NULL;
    struct ps_native_symtab *syms = ps_native_symtab_new(pid);
    if (!syms)
        return NULL;
    unw_addr_space_t as = unw_create_addr_space(&ps_accessors, 0);
    if (!as) {
        ps_native_symtab_free(syms);
        ps_err_set("libunwind: cannot create an address space");
        return NULL;
    }
    unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
    struct ps_native *n = ps_xcalloc(1, sizeof *n);
    n->epoch = ps_let_go_epoch;
    n->pid = pid;
    n->as = as;
    n->syms = syms;
    n->stop_timeout_ns = PS_NATIVE_STOP_TIMEOUT_NS;
    if (ps_maps_read(pid, &n->maps) < 0)
        memset(&n->maps, 0, sizeof n->maps); /* no page cache; reads go word by word */
    return n;
}

void ps_native_set_stop_timeout(struct ps_native *n, uint64_t ns)
{
    n->stop_timeout_ns = ns ? ns : PS_NATIVE_STOP_TIMEOUT_NS;
}

static void ps_seized_drop(struct ps_native *n, int i)
{
    struct ps_seized *s = &n->seized[i];
    ps_emerg_remove(s->tid);
    if (s->ctx.upt)
        _UPT_destroy(s->ctx.upt);
    n->seized[i] = n->seized[--n->nseized];
}

void ps_native_detach_all(struct ps_native *n)
{
    if (!n)
        return;
    ps_busy_enter();
    ps_resync(n);
    while (n->nseized > 0) {
        struct ps_seized *s = &n->seized[n->nseized - 1];
        ps_detach_one(s->tid, PS_MAX(n->stop_timeout_ns, PS_DETACH_WAIT_NS));
        ps_seized_drop(n, n->nseized - 1);
    }
    ps_busy_leave();
}

void ps_native_free(struct ps_native *n)
{
    if (!n)
        return;
    ps_native_detach_all(n);
    free(n->seized);
    free(n->stack);
    ps_pages_clear(n);
    free(n->pages);
    ps_maps_release(&n->maps);
    free(n->mods);
    unw_destroy_addr_space(n->as);
    ps_native_symtab_free(n->syms);
    free(n);
}

void ps_native_flush(struct ps_native *n)
{
    ps_native_symtab_flush(n->syms);
    ps_maps_refresh(n, 1);
    n->seen_refreshes = ps_native_symtab_refreshes(n->syms);
    n->maps_reread = 0;
    n->exec_seen = 0;
}

int ps_native_seized_count(const struct ps_native *n)
{
    return n->nseized;
}

static struct ps_seized *ps_seized_find(struct ps_native *n, pid_t tid)
{
    for (int i = 0; i < n->nseized; i++)
        if (n->seized[i].tid == tid)
            return &n->seized[i];
    return NULL;
}

static int ps_seize(struct ps_native *n, pid_t tid, struct ps_seized **out)
{
    if (tid == getpid() || tid == (pid_t)syscall(SYS_gettid)) {
        ps_err_set("refusing to stop pysample's own thread %d", (int)tid);
        return PS_EUSAGE;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d", (int)n->pid, (int)tid);
    if (access(path, F_OK) != 0) {
        ps_err_set("thread %d of process %d is gone", (int)tid, (int)n->pid);
        return PS_EGONE;
    }
    ps_install_hooks();
    if (ps_emerg_add(tid) < 0) {
        ps_err_set("more than %d threads stopped for native stacks", PS_NATIVE_MAX_SEIZED);
        return PS_ERANGE;
    }
    /* Never PTRACE_O_EXITKILL: the target must outlive us. PTRACE_O_TRACEEXEC tells an exec,
     * after which every module, table and symbol is read again (ps_native_flush). */
    if (ps_ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACEEXEC) != 0) {
        int e = errno;
        ps_emerg_remove(tid);
        if (e == ESRCH) {
            ps_err_set("thread %d of process %d is gone", (int)tid, (int)n->pid);
            return PS_EGONE;
        }
        pid_t tracer = 0;
        if (e == EPERM && ps_proc_tracer(n->pid, tid, &tracer) == 0 && tracer > 0) {
            char who[128];
            ps_tracer_desc(tracer, who, sizeof who);
            ps_err_set("cannot trace thread %d of process %d: it is traced by %s", (int)tid,
                       (int)n->pid, who);
        } else {
            ps_err_set("cannot trace thread %d of process %d: %s%s", (int)tid, (int)n->pid,
                       strerror(e), e == EPERM ? " (no CAP_SYS_PTRACE, or ptrace is restricted)" : "");
        }
        return e == EPERM ? PS_EPERM : ps_err_from_errno(e);
    }
    if (n->nseized == n->capseized) {
        n->capseized = n->capseized ? n->capseized * 2 : 16;
        n->seized = ps_xrealloc(n->seized, sizeof(*n->seized) * (size_t)n->capseized);
    }
    struct ps_seized *s = &n->seized[n->nseized++];
    memset(s, 0, sizeof *s);
    s->tid = tid;
    s->ctx.upt = _UPT_create(tid);
    s->copy_len = PS_STACK_COPY_FIRST;
    *out = s;
    return 0;
}

/* Resumes a stopped thread the way its stop asks for. */
static void ps_resume(pid_t tid, enum ps_stop_kind k, int sig)
{
    if (k == PS_STOP_GROUP)
        ps_ptrace(PTRACE_LISTEN, tid, 0, 0);
    else
        ps_ptrace(PTRACE_CONT, tid, 0, k == PS_STOP_SIGNAL ? sig : 0);
}

static int ps_poll_busy(struct ps_native *n);

int ps_native_poll(struct ps_native *n)
{
    ps_busy_enter();
    ps_resync(n);
    int done = ps_poll_busy(n);
    ps_busy_leave();
    return done;
}

static int ps_poll_busy(struct ps_native *n)
{
    int done = 0;
    n->last_poll_ns = ps_mono_ns();
    for (int i = 0; i < n->nseized;) {
        struct ps_seized *s = &n->seized[i];
        int sig, gone = 0;
        /* A thread reports one stop at a time; a few rounds drain what queued up. */
        for (int round = 0; round < 4; round++) {
            enum ps_stop_kind k = ps_wait_once(s->tid, &sig);
            if (k == PS_STOP_NONE)
                break;
            done++;
            if (k == PS_STOP_GONE) {
                gone = 1;
                break;
            }
            s->pending = 0;
            s->group_stop = k == PS_STOP_GROUP;
            if (k == PS_STOP_EXEC)
                n->exec_seen = 1;
            ps_resume(s->tid, k, sig);
        }
        if (gone)
            ps_seized_drop(n, i);
        else
            i++;
    }
    return done;
}

/* Waits (bounded) for the stop our PTRACE_INTERRUPT asked for, passing on any signal that
 * stops the thread first. Returns PS_STOP_TRAP/GROUP, PS_STOP_GONE, or PS_STOP_NONE on
 * timeout. */
static enum ps_stop_kind ps_wait_stop(struct ps_native *n, pid_t tid)
{
    uint64_t deadline = ps_mono_ns() + n->stop_timeout_ns;
    for (unsigned spins = 0;; spins++) {
        int sig;
        enum ps_stop_kind k = ps_wait_once(tid, &sig);
        switch (k) {
        case PS_STOP_TRAP:
        case PS_STOP_GROUP:
        case PS_STOP_GONE:
            return k;
        case PS_STOP_EXEC:
            n->exec_seen = 1;
            /* fall through */
        case PS_STOP_SIGNAL:
        case PS_STOP_OTHER:
            /* Not our stop: pass the signal on; the interrupt stays pending and follows. */
            ps_resume(tid, k, sig);
            continue;
        case PS_STOP_NONE:
            break;
        }
        if (ps_mono_ns() >= deadline)
            return PS_STOP_NONE;
        /* The stop normally arrives within microseconds; let the target's CPU go meanwhile. */
        if (spins >= 16)
            sched_yield();
    }
}

/* Copies the stopped thread's stack from its SP up, sized by what the last unwind used. */
static void ps_copy_stack(struct ps_native *n, struct ps_seized *s, uint64_t sp)
{
    struct ps_unw_ctx *c = &s->ctx;
    c->lo = c->hi = c->reach = 0;
    c->buf = NULL;
    if (sp < PS_STACK_BELOW_SP)
        return;
    size_t len = (size_t)s->copy_len + PS_STACK_BELOW_SP;
    if (n->stack_cap < len) {
        n->stack = ps_xrealloc(n->stack, len);
        n->stack_cap = len;
    }
    struct iovec local = {n->stack, len};
    struct iovec remote = {(void *)(uintptr_t)(sp - PS_STACK_BELOW_SP), len};
    /* A partial read (the stack's mapping ends first) is fine: the copy is what was read. */
    ssize_t got = process_vm_readv(s->tid, &local, 1, &remote, 1, 0);
    c->lo = sp - PS_STACK_BELOW_SP;
    c->hi = c->lo + (got > 0 ? (uint64_t)got : 0);
    c->buf = n->stack;
}

/* Next copy: what this unwind read of the stack, with some room; always within bounds. */
static void ps_size_next_copy(struct ps_seized *s)
{
    const struct ps_unw_ctx *c = &s->ctx;
    if (!c->reach || c->reach <= c->lo)
        return;
    uint64_t want = c->reach - c->lo + 4096;
    want = (want + 4095) & ~(uint64_t)4095;
    s->copy_len = (uint32_t)PS_MAX(PS_STACK_COPY_MIN, PS_MIN(want, PS_STACK_COPY_MAX));
}

/* Walks the stopped thread's stack into st. */
static void ps_unwind_stopped(struct ps_native *n, struct ps_seized *s, struct ps_native_stack *st)
{
    unw_cursor_t c;
    st->n = 0;
    st->complete = 0;
    struct ps_arch_regs regs;
    int have_regs = ps_arch_read_regs(s->tid, &regs) == 0;
    ps_copy_stack(n, s, have_regs ? regs.sp : 0);
    ps_unw_cur = &s->ctx;
    ps_unw_native = n;
    if (s->ctx.upt && unw_init_remote(&c, n->as, &s->ctx) == 0) {
        unw_word_t prev_ip = 0, prev_sp = 0;
        for (;;) {
            unw_word_t ip = 0, sp = 0;
            if (unw_get_reg(&c, ps_arch.unw_pc, &ip) < 0 || unw_get_reg(&c, ps_arch.unw_sp, &sp) < 0)
                break;
            if (ip == 0) { /* the outermost frame's return address */
                st->complete = st->n > 0;
                break;
            }
            /* Stacks grow down: a caller never has a lower SP; the same frame twice is a loop. */
            if (st->n > 0 && (sp < prev_sp || (sp == prev_sp && ip == prev_ip)))
                break;
            st->pcs[st->n++] = ip;
            prev_ip = ip;
            prev_sp = sp;
            if (st->n >= PS_NATIVE_MAX_FRAMES)
                break;
            int r = unw_step(&c);
            if (r == 0) {
                st->complete = 1;
                break;
            }
            if (r < 0)
                break;
        }
    }
    ps_unw_cur = NULL;
    ps_unw_native = NULL;
    ps_size_next_copy(s);
    s->ctx.buf = NULL;
    if (st->n == 0 && have_regs && regs.pc)
        st->pcs[st->n++] = regs.pc; /* libunwind could not start: at least the current PC */
}

static int ps_unwind_stack_busy(struct ps_native *n, pid_t tid, struct ps_native_stack *st,
                                ps_native_stopped_fn fn, void *arg);

int ps_native_unwind_stack(struct ps_native *n, pid_t tid, struct ps_native_stack *st,
                           ps_native_stopped_fn fn, void *arg)
{
    ps_busy_enter();
    ps_resync(n);
    int rc = ps_unwind_stack_busy(n, tid, st, fn, arg);
    ps_busy_leave();
    return rc;
}

static int ps_unwind_stack_busy(struct ps_native *n, pid_t tid, struct ps_native_stack *st,
                                ps_native_stopped_fn fn, void *arg)
{
    st->n = 0;
    st->complete = 0;
    st->stopped_ns = 0;
    st->group_stopped = 0;
    ps_native_symtab_next_generation(n->syms);
    uint64_t refreshes = ps_native_symtab_refreshes(n->syms);
    if (refreshes != n->seen_refreshes || n->maps_reread) {
        /* The module list changed (dlopen/dlclose): drop cached unwind info and pages. */
        ps_maps_refresh(n, 1);
        n->seen_refreshes = refreshes;
        n->maps_reread = 0;
    }
    if (ps_mono_ns() - n->last_poll_ns >= PS_POLL_INTERVAL_NS)
        ps_native_poll(n);
    if (n->exec_seen)
        ps_native_flush(n);

    struct ps_seized *s = ps_seized_find(n, tid);
    if (!s) {
        int rc = ps_seize(n, tid, &s);
        if (rc < 0)
            return rc;
    }
    uint64_t t0 = ps_now_ns();
    /* A stop reported already (a signal to pass on; a SIGCONT notification, a group-stop, or
     * the trap of an earlier interrupt whose wait timed out) is passed on or used first: an
     * interrupt sent on top of a pending trap would stop the thread once more after we
     * resume it. */
    enum ps_stop_kind k = PS_STOP_NONE;
    for (int i = 0; i < 8; i++) {
        int sig;
        enum ps_stop_kind d = ps_wait_once(tid, &sig);
        if (d == PS_STOP_SIGNAL || d == PS_STOP_OTHER || d == PS_STOP_EXEC) {
            if (d == PS_STOP_EXEC)
                n->exec_seen = 1;
            ps_resume(tid, d, sig);
            continue;
        }
        k = d;
        break;
    }
    if (k == PS_STOP_NONE) {
        if (!s->pending && ps_ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) {
            int e = errno;
            ps_seized_drop(n, (int)(s - n->seized));
            ps_err_set("cannot interrupt thread %d: %s", (int)tid, strerror(e));
            return e == ESRCH ? PS_EGONE : ps_err_from_errno(e);
        }
        s->pending = 1;
        k = ps_wait_stop(n, tid);
    }
    if (k == PS_STOP_GONE) {
        ps_seized_drop(n, (int)(s - n->seized));
        ps_err_set("thread %d exited", (int)tid);
        return PS_EGONE;
    }
    if (k == PS_STOP_NONE) {
        /* Still running (e.g. in uninterruptible sleep). The interrupt stays pending:
         * ps_native_poll() or the detach resumes the thread when the stop comes. */
        st->stopped_ns = ps_now_ns() - t0;
        ps_err_set("thread %d did not stop within %llu ms", (int)tid,
                   (unsigned long long)(n->stop_timeout_ns / 1000000));
        return PS_EIO;
    }
    s->pending = 0;
    s->group_stop = k == PS_STOP_GROUP;
    ps_unwind_stopped(n, s, st);
    if (fn)
        fn(arg, tid);
    ps_resume(tid, k, 0);
    st->stopped_ns = ps_now_ns() - t0;
    st->group_stopped = s->group_stop;
    return st->n;
}

int ps_native_unwind(struct ps_native *n, pid_t tid, uint64_t *pcs, int max, uint64_t *stopped_ns)
{
    struct ps_native_stack *st = ps_xmalloc(sizeof *st);
    int rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    if (stopped_ns)
        *stopped_ns = st->stopped_ns;
    if (rc > 0) {
        rc = PS_MIN(rc, PS_MAX(max, 0));
        memcpy(pcs, st->pcs, sizeof(uint64_t) * (size_t)rc);
    }
    free(st);
    return rc;
}

/* ---- symbolization entry points (the cache lives in symbolize.c) -------------------------- */

int ps_native_symbolize(struct ps_native *n, uint64_t pc, int innermost, struct ps_native_sym *out)
{
    return ps_native_symtab_lookup(n->syms, pc, innermost, out);
}

void ps_native_symbolize_stack(struct ps_native *n, const struct ps_native_stack *st,
                               struct ps_native_sym *syms)
{
    for (int i = 0; i < st->n; i++)
        ps_native_symtab_lookup(n->syms, st->pcs[i], i == 0, &syms[i]);
}

void ps_native_cache_stats(const struct ps_native *n, struct ps_native_cache_stats *out)
{
    ps_native_symtab_stats(n->syms, out);
}
