/* test_native.c — Criterion suites for src/native and arch/: the architecture table, frame
 * classification, merging (synthetic stacks), symbolizing this binary, and against a forked
 * multi-threaded C target: unwinding, timing over 1000 unwinds, signals passed on, group-stop
 * kept, exiting threads, a thread that cannot stop (vfork), detaching; plus ps_py_frame.entry.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakepy.h"
#include "ps_arch.h"
#include "ps_native.h"
#include "ps_util.h"

/* ---- arch ------------------------------------------------------------------------------- */

Test(native_arch, matches_libunwind_and_uname)
{
    struct utsname u;
    cr_assert_eq(uname(&u), 0);
    cr_expect_str_eq(ps_arch.name, u.machine);
    cr_expect_eq(ps_arch.unw_pc, UNW_REG_IP);
    cr_expect_eq(ps_arch.unw_sp, UNW_REG_SP);
#if defined(__x86_64__)
    cr_expect_eq(ps_arch.unw_fp, UNW_X86_64_RBP);
#elif defined(__aarch64__)
    cr_expect_eq(ps_arch.unw_fp, UNW_AARCH64_X29);
#endif
    cr_expect(ps_arch.pc_is_return);
}

/* ---- classification --------------------------------------------------------------------- */

struct cls {
    const char *name, *lib;
    int eval, plumbing;
};

Test(native_classify, table)
{
    static const struct cls v[] = {
        {"_PyEval_EvalFrameDefault", "libpython3.12.so.1.0", 1, 0},
        {"_PyEval_EvalFrameDefault", "python3.11", 1, 0},
        {"_PyEval_EvalFrameDefault.cold", "libpython3.12.so.1.0", 1, 0},
        {"PyEval_EvalFrameEx", "libpython2.7.so.1.0", 1, 0},
        {"_TAIL_CALL_LOAD_FAST", "libpython3.15.so", 2, 0},
        {"_PyEval_Vector", "libpython3.12.so.1.0", 0, 1},
        {"_PyFunction_Vectorcall", "python3.11", 0, 1},
        {"PyObject_Vectorcall", "libpython3.12.so.1.0", 0, 1},
        {"PyObject_CallObject", "libpython3.12.so.1.0", 0, 1},
        {"_PyObject_MakeTpCall", "libpython3.12.so.1.0", 0, 1},
        {"method_vectorcall_VARARGS", "libpython3.12.so.1.0", 0, 1},
        {"cfunction_call", "libpython3.12.so.1.0", 0, 1},
        {"slot_tp_call", "libpython3.12.so.1.0", 0, 1},
        {"pymain_run_python.constprop.0", "libpython3.12.so.1.0", 0, 1},
        {"Py_BytesMain", "libpython3.12.so.1.0", 0, 1},
        {"main", "python3.12", 0, 1},
        {"_PyRun_SimpleFileObject", "libpython3.12.so.1.0", 0, 1},
        {"run_mod", "libpython3.12.so.1.0", 0, 1},
        {"run_file", "libpython3.6m.so.1.0", 0, 1},
        {"_Py_UnixMain", "libpython3.7m.so.1.0", 0, 1},
        {"thread_run", "libpython3.12.so.1.0", 0, 1},
        {"pythread_wrapper", "libpython3.12.so.1.0", 0, 1},
        {NULL, "python3.11", 0, 1},            /* unnamed interpreter internals */
        {"__libc_start_main", "libc.so.6", 0, 1},
        {"__libc_start_call_main", "libc.so.6", 0, 1},
        {"_start", "python3.12", 0, 1},
        {"start_thread", "libc.so.6", 0, 1},
        {"clone3", "libc.so.6", 0, 1},
        /* kept: real work, and foreign modules' own functions */
        {"time_sleep", "libpython3.12.so.1.0", 0, 0},
        {"list_sort_impl", "libpython3.12.so.1.0", 0, 0},
        {"qsort_r", "libc.so.6", 0, 0},
        {"main", "myapp", 0, 0},                /* an embedding application's main */
        {"call_function", "cb_ext.so", 0, 0},   /* plumbing names count in the interpreter only */
        {"PyObject_CallObject_helper", "cb_ext.so", 0, 0},
        {NULL, "libfoo.so", 0, 0},
        {"_PyEval_EvalFrameDefaultX", "libpython3.12.so.1.0", 0, 0},
    };
    for (size_t i = 0; i < PS_ARRAY_LEN(v); i++) {
        uint8_t ev = 9, pl = 9;
        ps_native_classify(v[i].name, v[i].lib, &ev, &pl);
        cr_expect_eq(ev, v[i].eval, "%s in %s: is_eval %d, want %d", v[i].name, v[i].lib, ev,
                     v[i].eval);
        cr_expect_eq(pl, v[i].plumbing, "%s in %s: is_plumbing %d, want %d", v[i].name,
                     v[i].lib, pl, v[i].plumbing);
    }
}

Test(native_classify, labels)
{
    char buf[256];
    struct ps_native_sym s = {0};
    s.pc = 0x1234;
    s.lib = "libc.so.6";
    s.offset = 0x99;
    s.name = "qsort";
    ps_native_sym_label(&s, buf, sizeof buf);
    cr_expect_str_eq(buf, "qsort (libc.so.6)");
    s.file = "cb_ext.c";
    s.line = 12;
    ps_native_sym_label(&s, buf, sizeof buf);
    cr_expect_str_eq(buf, "qsort (cb_ext.c:12)");
    s.name = NULL;
    ps_native_sym_label(&s, buf, sizeof buf);
    cr_expect_str_eq(buf, "?? (libc.so.6+0x99)");
    s.lib = "";
    ps_native_sym_label(&s, buf, sizeof buf);
    cr_expect_str_eq(buf, "?? (0x1234)");
}

/* ---- merging ---------------------------------------------------------------------------- */

static struct ps_native_sym nsym(const char *name, const char *lib)
{
    struct ps_native_sym s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.lib = lib;
    s.pc = (uint64_t)(uintptr_t)name;
    ps_native_classify(name, lib, &s.is_eval, &s.is_plumbing);
    return s;
}

#define LP "libpython3.12.so.1.0"
#define LC "libc.so.6"
#define LX "_ctypes.so"

static struct ps_code c_compare = {.name = "compare", .file = "cb.py"};
static struct ps_code c_sort = {.name = "sort_pair", .file = "cb.py"};
static struct ps_code c_module = {.name = "<module>", .file = "cb.py"};
static struct ps_code c_extra = {.name = "extra", .file = "cb.py"};

/* "name" for native frames, "py:name:line" for Python frames, joined by '|'. */
static void merged_text(const struct ps_merged_frame *m, int n, char *buf, size_t sz)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < sz; i++) {
        int w;
        if (m[i].kind == PS_MERGED_PYTHON)
            w = snprintf(buf + len, sz - len, "%spy:%s:%d", i ? "|" : "", m[i].code->name,
                         m[i].pyline);
        else
            w = snprintf(buf + len, sz - len, "%s%s%s", i ? "|" : "",
                         m[i].name ? m[i].name : "??", m[i].unmatched_eval ? "!" : "");
        len += (size_t)w;
    }
}

/* The qsort-callback stack of 3.12: native innermost first. */
static int qsort_stack(struct ps_native_sym *s)
{
    int n = 0;
    s[n++] = nsym("clock_nanosleep", LC);
    s[n++] = nsym("time_sleep", LP);
    s[n++] = nsym("cfunction_vectorcall_O", LP);
    s[n++] = nsym("_PyEval_EvalFrameDefault", LP);
    s[n++] = nsym("_PyFunction_Vectorcall", LP);
    s[n++] = nsym("_CallPythonObject", LX);
    s[n++] = nsym("qsort_r", LC);
    s[n++] = nsym("PyCFuncPtr_call", LX);
    s[n++] = nsym("_PyObject_MakeTpCall", LP);
    s[n++] = nsym("_PyEval_EvalFrameDefault", LP);
    s[n++] = nsym("PyEval_EvalCode", LP);
    s[n++] = nsym("main", "python3.12");
    s[n++] = nsym("__libc_start_main", LC);
    s[n++] = nsym("_start", "python3.12");
    return n;
}

static const struct ps_py_frame py3[] = {
    {&c_compare, 39, 1},
    {&c_sort, 51, 0},
    {&c_module, 74, 1},
};

Test(native_merge, python_runs_inside_c_inside_python)
{
    struct ps_native_sym s[32];
    int n = qsort_stack(s);
    struct ps_merged_frame m[64];
    struct ps_merge_stats st;
    char text[1024];
    int k = ps_native_merge(s, n, 1, py3, 3, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|py:compare:39|_CallPythonObject|qsort_r|"
                           "PyCFuncPtr_call|py:sort_pair:51|py:<module>:74");
    cr_expect_eq(st.eval_activations, 2);
    cr_expect_eq(st.python_activations, 2);
    cr_expect_eq(st.unmatched_python, 0);
    cr_expect_eq(st.unmatched_eval, 0);
    cr_expect_eq(st.hidden, 7);
    cr_expect_eq(st.truncated, 0);

    /* show_all keeps the plumbing; eval frames are still replaced. */
    k = ps_native_merge(s, n, 1, py3, 3, 1, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|cfunction_vectorcall_O|py:compare:39|"
                           "_PyFunction_Vectorcall|_CallPythonObject|qsort_r|PyCFuncPtr_call|"
                           "_PyObject_MakeTpCall|py:sort_pair:51|py:<module>:74|PyEval_EvalCode|"
                           "main|__libc_start_main|_start");
    cr_expect_eq(st.hidden, 0);

    /* Incomplete native stack, same counts: pairing from the inner end gives the same. */
    k = ps_native_merge(s, n, 0, py3, 3, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|py:compare:39|_CallPythonObject|qsort_r|"
                           "PyCFuncPtr_call|py:sort_pair:51|py:<module>:74");
}

Test(native_merge, one_activation_per_frame_before_311)
{
    struct ps_native_sym s[16];
    int n = 0;
    s[n++] = nsym("floatsleep", "libpython2.7.so.1.0");
    s[n++] = nsym("PyEval_EvalFrameEx", "libpython2.7.so.1.0");
    s[n++] = nsym("fast_function", "libpython2.7.so.1.0");
    s[n++] = nsym("PyEval_EvalFrameEx", "libpython2.7.so.1.0");
    s[n++] = nsym("PyEval_EvalCodeEx", "libpython2.7.so.1.0");
    s[n++] = nsym("PyEval_EvalFrameEx", "libpython2.7.so.1.0");
    s[n++] = nsym("run_mod", "libpython2.7.so.1.0");
    struct ps_py_frame py[] = {{&c_compare, 1, 1}, {&c_sort, 2, 1}, {&c_module, 3, 1}};
    struct ps_merged_frame m[32];
    struct ps_merge_stats st;
    char text[512];
    int k = ps_native_merge(s, n, 0, py, 3, 0, m, 32, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "floatsleep|py:compare:1|py:sort_pair:2|py:<module>:3");
    cr_expect_eq(st.eval_activations, 3);
    cr_expect_eq(st.python_activations, 3);
    cr_expect_eq(st.unmatched_python + st.unmatched_eval, 0);
}

Test(native_merge, adjacent_eval_frames_are_one_activation)
{
    struct ps_native_sym s[8];
    int n = 0;
    s[n++] = nsym("_TAIL_CALL_LOAD_ATTR", "libpython3.15.so");
    s[n++] = nsym("_TAIL_CALL_CALL", "libpython3.15.so");
    s[n++] = nsym("_PyEval_EvalFrameDefault", "libpython3.15.so");
    s[n++] = nsym("Py_RunMain", "libpython3.15.so");
    struct ps_py_frame py[] = {{&c_sort, 5, 0}, {&c_module, 6, 1}};
    struct ps_merged_frame m[16];
    struct ps_merge_stats st;
    char text[256];
    int k = ps_native_merge(s, n, 1, py, 2, 0, m, 16, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "py:sort_pair:5|py:<module>:6");
    cr_expect_eq(st.eval_activations, 1);
}

Test(native_merge, more_python_than_activations)
{
    struct ps_native_sym s[32];
    int n = qsort_stack(s);
    /* An extra innermost group (e.g. the walk saw a call the C stack did not show yet). */
    struct ps_py_frame py[] = {{&c_extra, 7, 1}, {&c_compare, 39, 1}, {&c_sort, 51, 0},
                               {&c_module, 74, 1}};
    struct ps_merged_frame m[64];
    struct ps_merge_stats st;
    char text[1024];
    /* Complete C stack: paired from the outer end, the extra group sits just inside the
     * innermost activation. */
    int k = ps_native_merge(s, n, 1, py, 4, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|py:extra:7|py:compare:39|"
                           "_CallPythonObject|qsort_r|PyCFuncPtr_call|py:sort_pair:51|"
                           "py:<module>:74");
    cr_expect_eq(st.python_activations, 3);
    cr_expect_eq(st.eval_activations, 2);
    cr_expect_eq(st.unmatched_python, 1);
    cr_expect_eq(st.unmatched_eval, 0);

    /* Truncated C stack (only the inner activation seen): paired from the inner end, the
     * outer groups go after every native frame. */
    k = ps_native_merge(s, 6, 0, py3, 3, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|py:compare:39|_CallPythonObject|"
                           "py:sort_pair:51|py:<module>:74");
    cr_expect_eq(st.eval_activations, 1);
    cr_expect_eq(st.unmatched_python, 2);
}

Test(native_merge, more_activations_than_python)
{
    struct ps_native_sym s[32];
    int n = qsort_stack(s);
    struct ps_py_frame py[] = {{&c_sort, 51, 0}, {&c_module, 74, 1}};
    struct ps_merged_frame m[64];
    struct ps_merge_stats st;
    char text[1024];
    int k = ps_native_merge(s, n, 1, py, 2, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|_PyEval_EvalFrameDefault!|"
                           "_CallPythonObject|qsort_r|PyCFuncPtr_call|py:sort_pair:51|"
                           "py:<module>:74");
    cr_expect_eq(st.unmatched_eval, 1);
    cr_expect_eq(st.unmatched_python, 0);

    /* No Python frames at all: every activation stays as a C frame. */
    k = ps_native_merge(s, n, 1, NULL, 0, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|time_sleep|_PyEval_EvalFrameDefault!|"
                           "_CallPythonObject|qsort_r|PyCFuncPtr_call|_PyEval_EvalFrameDefault!");
    cr_expect_eq(st.unmatched_eval, 2);

    /* No C frames: the Python frames alone. */
    k = ps_native_merge(s, 0, 0, py3, 3, 0, m, 64, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "py:compare:39|py:sort_pair:51|py:<module>:74");
    cr_expect_eq(st.unmatched_python, 3);
}

Test(native_merge, inlined_calls_and_truncation)
{
    static const struct ps_native_inline inl[] = {
        {"pysleep", "timemodule.c", 2182, 0},
        {"_PyObject_VectorcallTstate", "pycore_call.h", 92, 1},
    };
    struct ps_native_sym s[8];
    int n = 0;
    s[n++] = nsym("clock_nanosleep", LC);
    s[n] = nsym("time_sleep", LP);
    s[n].ninlined = 2;
    s[n++].inlined = inl;
    s[n] = nsym("_PyEval_EvalFrameDefault", LP);
    s[n].ninlined = 1; /* calls inlined into the loop are part of the activation */
    s[n++].inlined = inl + 1;
    struct ps_py_frame py[] = {{&c_module, 3, 1}};
    struct ps_merged_frame m[16];
    struct ps_merge_stats st;
    char text[512];
    int k = ps_native_merge(s, n, 0, py, 1, 0, m, 16, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|pysleep|time_sleep|py:<module>:3");
    cr_expect_eq(m[1].inlined, 1);
    cr_expect_str_eq(m[1].file, "timemodule.c");
    cr_expect_eq(m[1].line, 2182);
    cr_expect_eq(m[2].inlined, 0);
    cr_expect_eq(st.hidden, 1);

    k = ps_native_merge(s, n, 0, py, 1, 1, m, 16, &st);
    merged_text(m, k, text, sizeof text);
    cr_expect_str_eq(text, "clock_nanosleep|pysleep|_PyObject_VectorcallTstate|time_sleep|"
                           "py:<module>:3");

    k = ps_native_merge(s, n, 0, py, 1, 0, m, 2, &st);
    cr_expect_eq(k, 2);
    cr_expect_eq(st.truncated, 1);
}

/* ---- symbolizing this binary --------------------------------------------------------------- */

__attribute__((noinline)) static uint64_t nt_marker_function(int x)
{
    __asm__ volatile("" ::: "memory");
    return (uint64_t)x * 3;
}

static uint64_t nt_ra_seen;

__attribute__((noinline)) static void nt_capture_return(void)
{
    nt_ra_seen = (uint64_t)(uintptr_t)__builtin_return_address(0);
    __asm__ volatile("" ::: "memory");
}

static int nt_call_line;

__attribute__((noinline)) static void nt_caller(void)
{
    nt_call_line = __LINE__; nt_capture_return();
    __asm__ volatile("" ::: "memory");
}

static const char *nt_self_name(void)
{
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    const char *b = strrchr(exe, '/');
    return b ? b + 1 : exe;
}

Test(native_symbolize, own_functions)
{
    struct ps_native_symtab *t = ps_native_symtab_new(getpid());
    cr_assert_not_null(t, "%s", ps_err_detail());
    struct ps_native_sym s;
    uint64_t pc = (uint64_t)(uintptr_t)&nt_marker_function + 1;
    cr_assert_eq(ps_native_symtab_lookup(t, pc, 1, &s), 0);
    cr_expect_str_eq(s.name, "nt_marker_function");
    cr_expect_str_eq(s.lib, nt_self_name());
    cr_expect_str_eq(s.file, "test_native.c");
    cr_expect_gt(s.line, 0);
    cr_expect_eq(s.pc, pc);
    cr_expect_eq(s.is_eval, 0);
    cr_expect_eq(s.is_plumbing, 0);

    /* A return address is looked up at pc - 1: the line of the call, in the caller. */
    nt_caller();
    cr_assert_eq(ps_native_symtab_lookup(t, nt_ra_seen, 0, &s), 0);
    cr_expect_str_eq(s.name, "nt_caller");
    cr_expect_eq(s.line, nt_call_line, "line %d, want %d", s.line, nt_call_line);

    /* Cached: the same answer from the cache. */
    struct ps_native_cache_stats cs0, cs1;
    ps_native_symtab_stats(t, &cs0);
    struct ps_native_sym again;
    cr_assert_eq(ps_native_symtab_lookup(t, nt_ra_seen, 0, &again), 0);
    ps_native_symtab_stats(t, &cs1);
    cr_expect_eq(cs1.hits, cs0.hits + 1);
    cr_expect_eq(cs1.misses, cs0.misses);
    cr_expect_eq(again.name, s.name);

    /* Nothing is mapped at page zero: unknown, after one refresh of the module list. */
    cr_expect_eq(ps_native_symtab_lookup(t, 0x10, 1, &s), PS_ENOSYM);
    cr_expect_null(s.name);
    cr_expect_str_eq(s.lib, "");
    ps_native_symtab_stats(t, &cs1);
    cr_expect_eq(cs1.refreshes, 1);
    cr_expect_eq(ps_native_symtab_lookup(t, 0x18, 1, &s), PS_ENOSYM);
    ps_native_symtab_stats(t, &cs0);
    cr_expect_eq(cs0.refreshes, 1, "at most one refresh per stack");
    ps_native_symtab_next_generation(t);
    cr_expect_eq(ps_native_symtab_lookup(t, 0x20, 1, &s), PS_ENOSYM);
    ps_native_symtab_stats(t, &cs0);
    cr_expect_eq(cs0.refreshes, 2);
    ps_native_symtab_free(t);
    (void)nt_marker_function(1);
}

Test(native_symbolize, many_pcs_stay_bounded)
{
    /* More distinct PCs than the cache keeps: the cache starts over between stacks and every
     * answer handed out within a stack stays valid. */
    struct ps_native_symtab *t = ps_native_symtab_new(getpid());
    cr_assert_not_null(t);
    uint64_t base = (uint64_t)(uintptr_t)&nt_marker_function;
    struct ps_native_sym first;
    cr_assert_eq(ps_native_symtab_lookup(t, base + 1, 1, &first), 0);
    for (int gen = 0; gen < 4; gen++) {
        for (int i = 0; i < 30000; i++) {
            struct ps_native_sym s;
            ps_native_symtab_lookup(t, 0x1000000 + (uint64_t)gen * 1000000 + (uint64_t)i, 1, &s);
        }
        if (gen == 0)
            cr_expect_str_eq(first.name, "nt_marker_function"); /* still valid */
        ps_native_symtab_next_generation(t);
    }
    struct ps_native_cache_stats cs;
    ps_native_symtab_stats(t, &cs);
    cr_expect_leq(cs.entries, 1 << 16);
    ps_native_symtab_free(t);
}

/* ---- a live multi-threaded C target ------------------------------------------------------- */

#define NT_THREADS 4
#define NT_DEPTH 30

enum nt_kind { NT_NONE = 0, NT_BLOCK, NT_SPIN, NT_INLINE, NT_VFORK };

struct nt_shared {
    volatile int ready;
    volatile pid_t tid[NT_THREADS];
    volatile int usr1;
    volatile int stop_spin;
    volatile unsigned long sink;
    int kind[NT_THREADS];
    int pipes[NT_THREADS][2];
};

static struct nt_shared *nt_sh;

static void nt_on_usr1(int sig)
{
    (void)sig;
    __atomic_add_fetch(&nt_sh->usr1, 1, __ATOMIC_SEQ_CST);
}

__attribute__((noinline)) static int nt_leaf_block(int idx)
{
    char c;
    ssize_t r = read(nt_sh->pipes[idx][0], &c, 1);
    nt_sh->sink += (unsigned long)r;
    return (int)r;
}

__attribute__((noinline)) static int nt_leaf_spin(int idx)
{
    while (!nt_sh->stop_spin)
        nt_sh->sink += (unsigned long)idx;
    return 0;
}

__attribute__((noinline)) static int nt_recurse(int idx, int depth)
{
    int r;
    if (depth == 0)
        r = nt_sh->kind[idx] == NT_SPIN ? nt_leaf_spin(idx) : nt_leaf_block(idx);
    else
        r = nt_recurse(idx, depth - 1);
    nt_sh->sink += (unsigned long)r; /* no tail call */
    return r + 1;
}

static inline __attribute__((always_inline)) int nt_inlined_middle(int idx)
{
    int r = nt_leaf_block(idx);
    nt_sh->sink += (unsigned long)r;
    return r + 2;
}

__attribute__((noinline)) static int nt_inline_outer(int idx)
{
    int r = nt_inlined_middle(idx);
    nt_sh->sink += (unsigned long)r;
    return r;
}

static void *nt_thread(void *arg)
{
    int idx = (int)(intptr_t)arg;
    nt_sh->tid[idx] = (pid_t)syscall(SYS_gettid);
    __atomic_add_fetch(&nt_sh->ready, 1, __ATOMIC_SEQ_CST);
    switch (nt_sh->kind[idx]) {
    case NT_INLINE:
        nt_inline_outer(idx);
        break;
    case NT_VFORK: {
        pid_t c = vfork();
        if (c == 0) {
            char b;
            ssize_t r = read(nt_sh->pipes[idx][0], &b, 1);
            _exit(r == 1 ? 0 : 1);
        }
        if (c > 0)
            waitpid(c, NULL, 0);
        nt_leaf_block(idx); /* the pipe is drained: stays here */
        break;
    }
    default:
        nt_recurse(idx, NT_DEPTH);
        break;
    }
    return NULL;
}

static uint64_t nt_now(void)
{
    return ps_now_ns();
}

/* Forks a target running one thread per kinds[i] (NT_NONE ends the list); returns its pid once
 * every thread started. Its main thread waits in pause(). */
static pid_t nt_spawn(const int *kinds)
{
    nt_sh = mmap(NULL, sizeof *nt_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(nt_sh, MAP_FAILED);
    memset(nt_sh, 0, sizeof *nt_sh);
    int n = 0;
    for (; n < NT_THREADS && kinds[n] != NT_NONE; n++) {
        nt_sh->kind[n] = kinds[n];
        cr_assert_eq(pipe(nt_sh->pipes[n]), 0);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGUSR1, nt_on_usr1);
        alarm(120);
        for (int i = 0; i < n; i++) {
            pthread_t th;
            if (pthread_create(&th, NULL, nt_thread, (void *)(intptr_t)i) != 0)
                _exit(2);
        }
        for (;;)
            pause();
    }
    uint64_t deadline = nt_now() + 10ull * 1000000000ull;
    while (__atomic_load_n(&nt_sh->ready, __ATOMIC_SEQ_CST) < n && nt_now() < deadline)
        sched_yield();
    cr_assert_eq(nt_sh->ready, n, "target threads did not start");
    return pid;
}

static void nt_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
}

static char nt_state(pid_t pid, pid_t tid)
{
    char st = 0;
    if (ps_proc_task_state(pid, tid, &st) < 0)
        return 0;
    return st;
}

static int nt_tracer(pid_t pid, pid_t tid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    char *text = NULL;
    if (ps_read_file(path, &text, 1 << 16) < 0)
        return -1;
    const char *p = strstr(text, "TracerPid:");
    int v = p ? atoi(p + 10) : -1;
    free(text);
    return v;
}

/* Waits (bounded, no sleep) until the thread is in state `want` (or, with want 0, not in a
 * stop); returns its last state. */
static char nt_wait_state(pid_t pid, pid_t tid, char want, struct ps_native *poll_n)
{
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    char st;
    for (;;) {
        if (poll_n)
            ps_native_poll(poll_n);
        st = nt_state(pid, tid);
        int done = want ? st == want : (st != 't' && st != 'T');
        if (done || nt_now() >= deadline)
            return st;
        sched_yield();
    }
}

static void nt_expect_running(pid_t pid, pid_t tid, const char *when)
{
    char st = nt_state(pid, tid);
    cr_expect(st != 't' && st != 'T' && st != 0, "%s: thread %d is in state '%c'", when, (int)tid,
              st ? st : '?');
}

/* The struct ps_native of a test: a generous stop timeout, since a loaded machine (parallel
 * test runs, sanitizers) can leave a runnable thread unscheduled for longer than the default. */
static struct ps_native *nt_native_new(pid_t pid)
{
    struct ps_native *n = ps_native_new(pid);
    cr_assert_not_null(n, "%s", ps_err_detail());
    ps_native_set_stop_timeout(n, 2000ull * 1000000ull);
    return n;
}

static int nt_count_name(const struct ps_native_sym *s, int n, const char *name)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += s[i].name && strcmp(s[i].name, name) == 0;
    return k;
}

static int nt_index_of(const struct ps_native_sym *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (s[i].name && strcmp(s[i].name, name) == 0)
            return i;
    return -1;
}

struct nt_regs_seen {
    struct ps_arch_regs regs;
    int rc;
};

static void nt_read_regs(void *arg, pid_t tid)
{
    struct nt_regs_seen *r = arg;
    r->rc = ps_arch_read_regs(tid, &r->regs);
}

static void nt_check_deep_stack(struct ps_native *n, pid_t pid, pid_t tid, const char *leaf)
{
    struct ps_native_stack *st = malloc(sizeof *st);
    struct ps_native_sym *syms = calloc(PS_NATIVE_MAX_FRAMES, sizeof *syms);
    struct nt_regs_seen seen = {{0, 0, 0}, -1};
    int rc = ps_native_unwind_stack(n, tid, st, nt_read_regs, &seen);
    cr_assert_gt(rc, 0, "unwind: %s (%s)", ps_strerror(rc), ps_err_detail());
    nt_expect_running(pid, tid, "after the unwind");
    cr_expect_eq(seen.rc, 0);
    cr_expect_eq(st->pcs[0], seen.regs.pc, "innermost PC %#llx, registers say %#llx",
                 (unsigned long long)st->pcs[0], (unsigned long long)seen.regs.pc);
    cr_expect_eq(st->complete, 1);
    cr_expect_gt(st->stopped_ns, 0);
    ps_native_symbolize_stack(n, st, syms);
    char all[8192] = "";
    for (int i = 0; i < st->n && strlen(all) < sizeof all - 300; i++) {
        char l[256];
        ps_native_sym_label(&syms[i], l, sizeof l);
        strcat(all, l);
        strcat(all, "\n");
    }
    cr_expect_eq(nt_count_name(syms, st->n, "nt_recurse"), NT_DEPTH + 1, "stack:\n%s", all);
    int li = nt_index_of(syms, st->n, leaf), ri = nt_index_of(syms, st->n, "nt_recurse");
    cr_expect(li >= 0 && li < ri, "%s inside nt_recurse; stack:\n%s", leaf, all);
    cr_expect_eq(nt_index_of(syms, st->n, "nt_thread"), ri + NT_DEPTH + 1, "stack:\n%s", all);
    cr_expect_str_eq(syms[ri].file, "test_native.c");
    const char *outer = syms[st->n - 1].name;
    cr_expect(outer && (strstr(outer, "clone") || strcmp(outer, "start_thread") == 0),
              "outermost frame %s", outer ? outer : "??");
    free(syms);
    free(st);
}

Test(native_unwind, blocked_and_running_threads)
{
    int kinds[] = {NT_BLOCK, NT_SPIN, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    struct ps_native *n = nt_native_new(pid);
    /* The spinning thread needs a moment to get from its start into the leaf. */
    nt_check_deep_stack(n, pid, nt_sh->tid[0], "nt_leaf_block");
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    while (nt_sh->sink == 0 && nt_now() < deadline)
        sched_yield();
    nt_check_deep_stack(n, pid, nt_sh->tid[1], "nt_leaf_spin");
    cr_expect_eq(ps_native_seized_count(n), 2);
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[0]), getpid());
    ps_native_detach_all(n);
    cr_expect_eq(ps_native_seized_count(n), 0);
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[0]), 0);
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[1]), 0);
    nt_expect_running(pid, nt_sh->tid[0], "after detach");
    nt_expect_running(pid, nt_sh->tid[1], "after detach");
    nt_sh->stop_spin = 1;
    ps_native_free(n);
    nt_kill(pid);
}

static int nt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(native_unwind, thousand_unwinds_timing, .timeout = 120)
{
    int kinds[] = {NT_BLOCK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    int depth = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    cr_assert_gt(depth, NT_DEPTH);
    uint64_t first = st->stopped_ns;
    enum { N = 1000 };
    static uint64_t ns[N];
    for (int i = 0; i < N; i++) {
        int rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
        cr_assert_eq(rc, depth, "unwind %d: %d frames, want %d", i, rc, depth);
        ns[i] = st->stopped_ns;
    }
    nt_expect_running(pid, tid, "after 1000 unwinds");
    qsort(ns, N, sizeof ns[0], nt_cmp_u64);
    cr_log_info("native unwind, %d C frames: first %.1f us; over %d: min %.1f us, median %.1f us, "
                "p99 %.1f us, max %.1f us",
                depth, first / 1e3, N, ns[0] / 1e3, ns[N / 2] / 1e3, ns[N * 99 / 100] / 1e3,
                ns[N - 1] / 1e3);
    /* Loose bound (a loaded machine, sanitizers): a steady-state stop is far below this. */
    cr_expect_lt(ns[N / 2], 20ull * 1000000ull, "median stop %.1f us", ns[N / 2] / 1e3);
    free(st);
    ps_native_free(n);
    nt_kill(pid);
}

Test(native_unwind, signals_reach_the_target)
{
    int kinds[] = {NT_BLOCK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    cr_assert_gt(ps_native_unwind_stack(n, tid, st, NULL, NULL), 0);

    /* Between samples: the signal stops the seized thread; ps_native_poll passes it on. */
    cr_assert_eq(syscall(SYS_tgkill, pid, tid, SIGUSR1), 0);
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    while (nt_sh->usr1 < 1 && nt_now() < deadline) {
        ps_native_poll(n);
        sched_yield();
    }
    cr_expect_eq(nt_sh->usr1, 1, "the handler ran %d times", nt_sh->usr1);

    /* A signal that arrives right before an unwind: the unwind passes it on and still stops. */
    cr_assert_eq(syscall(SYS_tgkill, pid, tid, SIGUSR1), 0);
    deadline = nt_now() + 5ull * 1000000000ull;
    while (nt_state(pid, tid) != 't' && nt_now() < deadline)
        sched_yield();
    cr_expect_eq(nt_state(pid, tid), 't', "the signal stops a seized thread");
    int rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    cr_expect_gt(rc, NT_DEPTH, "unwind after a signal: %d", rc);
    deadline = nt_now() + 5ull * 1000000000ull;
    while (nt_sh->usr1 < 2 && nt_now() < deadline)
        sched_yield();
    cr_expect_eq(nt_sh->usr1, 2);
    nt_expect_running(pid, tid, "after the signal");
    free(st);
    ps_native_free(n);
    nt_kill(pid);
}

Test(native_unwind, group_stop_is_kept)
{
    int kinds[] = {NT_BLOCK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    cr_assert_gt(ps_native_unwind_stack(n, tid, st, NULL, NULL), 0);
    cr_expect_eq(st->group_stopped, 0);

    cr_assert_eq(kill(pid, SIGSTOP), 0);
    /* If the seized thread takes the SIGSTOP, it stops for the tracer first: polling passes the
     * signal on, then the group stops. */
    char s = nt_wait_state(pid, pid, 'T', n);
    cr_expect_eq(s, 'T', "main thread state '%c' after SIGSTOP", s);
    int rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    cr_expect_gt(rc, NT_DEPTH, "unwind of a group-stopped thread: %d", rc);
    cr_expect_eq(st->group_stopped, 1);
    /* Left stopped, as job control wants. */
    s = nt_state(pid, tid);
    cr_expect(s == 't' || s == 'T', "thread state '%c' while the process is stopped", s);
    ps_native_poll(n);
    s = nt_state(pid, tid);
    cr_expect(s == 't' || s == 'T', "after a poll: '%c'", s);

    /* SIGCONT: every seized thread reports one more stop (the notification); the poll
     * resumes it. */
    cr_assert_eq(kill(pid, SIGCONT), 0);
    int resumed = 0;
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    do {
        resumed += ps_native_poll(n);
        s = nt_state(pid, tid);
    } while ((!resumed || s == 't' || s == 'T') && nt_now() < deadline && sched_yield() == 0);
    cr_expect_geq(resumed, 1, "no notification seen after SIGCONT");
    cr_expect(s != 't' && s != 'T', "thread state '%c' after SIGCONT", s);
    rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    cr_expect_gt(rc, NT_DEPTH);
    cr_expect_eq(st->group_stopped, 0);
    nt_expect_running(pid, tid, "at the end");
    free(st);
    ps_native_free(n);
    nt_kill(pid);
}

Test(native_unwind, exiting_thread_is_gone)
{
    int kinds[] = {NT_BLOCK, NT_BLOCK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    cr_assert_gt(ps_native_unwind_stack(n, tid, st, NULL, NULL), 0);
    cr_assert_gt(ps_native_unwind_stack(n, nt_sh->tid[1], st, NULL, NULL), 0);
    cr_expect_eq(ps_native_seized_count(n), 2);
    char one = 1;
    cr_assert_eq(write(nt_sh->pipes[0][1], &one, 1), 1); /* the thread returns and exits */
    int rc = 0;
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    while (nt_now() < deadline) {
        rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
        if (rc < 0)
            break;
        sched_yield();
    }
    cr_expect_eq(rc, PS_EGONE, "unwind of an exited thread: %d", rc);
    cr_expect_eq(ps_native_seized_count(n), 1);
    /* Reaped: no zombie task left behind in the target. */
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d", (int)pid, (int)tid);
    deadline = nt_now() + 5ull * 1000000000ull;
    while (access(path, F_OK) == 0 && nt_now() < deadline)
        sched_yield();
    cr_expect_neq(access(path, F_OK), 0, "task %d still listed", (int)tid);
    cr_expect_eq(ps_native_unwind_stack(n, tid, st, NULL, NULL), PS_EGONE);
    cr_expect_eq(ps_native_unwind(n, getpid(), st->pcs, 4, NULL), PS_EUSAGE);
    nt_expect_running(pid, nt_sh->tid[1], "the other thread");
    free(st);
    ps_native_free(n);
    nt_kill(pid);
}

Test(native_unwind, thread_that_cannot_stop_is_never_left_stopped)
{
    int kinds[] = {NT_VFORK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    /* vfork's parent waits uninterruptibly until the child exits: it cannot stop. */
    char s = nt_wait_state(pid, tid, 'D', NULL);
    cr_assert_eq(s, 'D', "thread state '%c', want D (in vfork)", s);
    struct ps_native *n = nt_native_new(pid);
    ps_native_set_stop_timeout(n, 20ull * 1000000ull);
    struct ps_native_stack *st = malloc(sizeof *st);
    uint64_t t0 = nt_now();
    int rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    uint64_t took = nt_now() - t0;
    cr_expect_eq(rc, PS_EIO, "unwind of a thread in vfork: %d", rc);
    cr_expect_lt(took, 2ull * 1000000000ull, "the wait is bounded (took %llu ns)",
                 (unsigned long long)took);
    cr_expect_eq(nt_state(pid, tid), 'D');
    /* The vfork child exits: the pending interrupt stops the thread, the poll resumes it. */
    char one = 1;
    cr_assert_eq(write(nt_sh->pipes[0][1], &one, 1), 1);
    s = nt_wait_state(pid, tid, 'S', n);
    cr_expect_eq(s, 'S', "after the vfork child exited, back to sleep in its read: '%c'", s);
    rc = ps_native_unwind_stack(n, tid, st, NULL, NULL);
    cr_expect_gt(rc, 0, "unwind afterwards: %d", rc);
    nt_expect_running(pid, tid, "at the end");
    free(st);
    ps_native_free(n);
    cr_expect_eq(nt_tracer(pid, tid), 0);
    nt_kill(pid);
}

Test(native_unwind, inlined_call_reported)
{
    int kinds[] = {NT_INLINE, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    pid_t tid = nt_sh->tid[0];
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    struct ps_native_sym *syms = calloc(PS_NATIVE_MAX_FRAMES, sizeof *syms);
    /* The thread may still be on its way into the read. */
    uint64_t deadline = nt_now() + 5ull * 1000000000ull;
    int oi = -1;
    while (nt_now() < deadline) {
        cr_assert_gt(ps_native_unwind_stack(n, tid, st, NULL, NULL), 0);
        ps_native_symbolize_stack(n, st, syms);
        oi = nt_index_of(syms, st->n, "nt_inline_outer");
        if (oi >= 0 && nt_index_of(syms, st->n, "nt_leaf_block") >= 0)
            break;
        sched_yield();
    }
    cr_assert_geq(oi, 0);
    cr_assert_geq(syms[oi].ninlined, 1);
    cr_expect_str_eq(syms[oi].inlined[0].name, "nt_inlined_middle");
    cr_expect_str_eq(syms[oi].inlined[0].file, "test_native.c");
    cr_expect_gt(syms[oi].inlined[0].line, 0);
    cr_expect_str_eq(syms[oi].file, "test_native.c");
    cr_expect_neq(syms[oi].line, syms[oi].inlined[0].line, "call site vs. inside the inline");
    free(syms);
    free(st);
    ps_native_free(n);
    nt_kill(pid);
}

Test(native_unwind, emergency_detach_lets_go)
{
    int kinds[] = {NT_BLOCK, NT_BLOCK, NT_NONE};
    pid_t pid = nt_spawn(kinds);
    struct ps_native *n = nt_native_new(pid);
    struct ps_native_stack *st = malloc(sizeof *st);
    cr_assert_gt(ps_native_unwind_stack(n, nt_sh->tid[0], st, NULL, NULL), 0);
    cr_assert_gt(ps_native_unwind_stack(n, nt_sh->tid[1], st, NULL, NULL), 0);
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[0]), getpid());
    ps_native_emergency_detach();
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[0]), 0);
    cr_expect_eq(nt_tracer(pid, nt_sh->tid[1]), 0);
    nt_expect_running(pid, nt_sh->tid[0], "after the emergency detach");
    nt_expect_running(pid, nt_sh->tid[1], "after the emergency detach");
    free(st);
    ps_native_free(n); /* finds nothing left to do */
    nt_kill(pid);
}

/* ---- the walker's entry marks (fakepy) ------------------------------------------------------ */

static uint64_t nt_code(struct fp_world *w, const char *name)
{
    static const int lines[4] = {10, 11, 12, 13};
    struct fp_code_spec c = {name, name, "/app/x.py", 10, lines, 4};
    return fp_code(w, &c);
}

/* Frames a (innermost), b, c, d; on 3.12+ with entry frames after b and after d. */
static void nt_entry_case(int major, int minor)
{
    struct fp_world *w = fp_new(major, minor);
    cr_assert_not_null(w);
    int entries = w->lay.if_owner_skip_min > 0;
    uint64_t a = nt_code(w, "a"), b = nt_code(w, "b"), c = nt_code(w, "c"), d = nt_code(w, "d");
    struct fp_frame f[8];
    int n = 0;
    f[n++] = (struct fp_frame){a, 1, FP_PY, 0};
    f[n++] = (struct fp_frame){b, 1, FP_PY, 0};
    if (entries)
        f[n++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    f[n++] = (struct fp_frame){c, 1, FP_PY, 0};
    f[n++] = (struct fp_frame){d, 1, FP_PY, 0};
    if (entries)
        f[n++] = (struct fp_frame){0, 0, FP_ENTRY, 0};
    int t = fp_thread(w, 4242, f, n, 0);
    if (w->lay.if_is_entry != PS_OFF_NONE) {
        /* 3.11: b started an activation too (fakepy marks only the outermost). */
        uint8_t one = 1;
        cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->t[t].frame_addr[1] +
                                       (uint64_t)w->lay.if_is_entry, &one, 1), 0);
    }
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot s;
    ps_py_snapshot_init(&s);
    cr_assert_eq(ps_py_sample(&w->py, &s), 0);
    const struct ps_py_thread *th = fp_snap_thread(&s, 4242);
    cr_assert_not_null(th);
    cr_assert_eq(th->nframes, 4, "%d.%d: %d frames", major, minor, th->nframes);
    int every = w->lay.frame_model == PS_FRAMES_OBJECTS;
    int want[4] = {every, 1, every, 1};
    if (w->lay.frame_model == PS_FRAMES_INTERP && !entries && w->lay.if_is_entry == PS_OFF_NONE)
        cr_assert_fail("%d.%d: no way to find activations", major, minor);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(th->frames[i].entry, want[i], "%d.%d: frame %d (%s) entry %d, want %d",
                     major, minor, i, th->frames[i].code->name, th->frames[i].entry, want[i]);
    ps_py_snapshot_release(&s);
    fp_free(w);
}

Test(native_entry, marks_per_version)
{
    static const int versions[][2] = {{2, 7}, {3, 6}, {3, 9}, {3, 10}, {3, 11}, {3, 12}, {3, 13}};
    for (size_t i = 0; i < PS_ARRAY_LEN(versions); i++)
        nt_entry_case(versions[i][0], versions[i][1]);
}
