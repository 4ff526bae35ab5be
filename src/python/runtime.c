/* runtime.c — find the CPython interpreter inside a PID: which ELF file holds it, where
 * _PyRuntime / interp_head are, which version runs, and which layout to use.
 *
 * Strategies, in order: symbols of the executable and of any libpython in the maps (then of
 * any other mapped ELF, for hosts that embed the interpreter under another name); version from
 * Py_Version, _Py_DebugOffsets, the file name, then the `version` string buffer. Each step that
 * decided something is written to py->how for -v.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_debugoff.h"
#include "ps_elf.h"
#include "ps_python.h"
#include "ps_util.h"

static void ps_how(struct ps_py *py, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ps_how(struct ps_py *py, const char *fmt, ...)
{
    size_t len = strlen(py->how);
    if (len + 2 >= sizeof py->how)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(py->how + len, sizeof py->how - len, fmt, ap);
    va_end(ap);
    len = strlen(py->how);
    if (len + 1 < sizeof py->how) {
        py->how[len] = '\n';
        py->how[len + 1] = '\0';
    }
}

/* Version "X.Y" parsed out of a file name like libpython3.9.so.1.0 or python3.12. */
static int ps_version_from_name(const char *path, int *major, int *minor)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *p = strstr(base, "python");
    if (!p)
        return -1;
    p += 6;
    char *end;
    long ma = strtol(p, &end, 10);
    if (end == p || *end != '.')
        return -1;
    const char *q = end + 1;
    long mi = strtol(q, &end, 10);
    if (end == q || (ma != 2 && ma != 3) || mi < 0 || mi > 99)
        return -1;
    *major = (int)ma;
    *minor = (int)mi;
    return 0;
}

static int ps_is_libpython(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int ma, mi;
    return strncmp(base, "libpython", 9) == 0 && ps_version_from_name(base, &ma, &mi) == 0;
}

enum {
    SYM_RUNTIME,
    SYM_PY_VERSION,
    SYM_CODE_TYPE,
    SYM_INTERP_HEAD,
    SYM_TSTATE_CURRENT,
    SYM_VERSION_BUF,
    SYM_VERSION_BUF0,
    SYM_STRING_TYPE,
    SYM_NEXT_FUNC_VERSION,
    SYM_INIT_CLEANUP,
    SYM__COUNT
};

struct ps_candidate {
    const struct ps_map *map0;   /* offset-0 mapping */
    const char *path;            /* as in maps */
};

/* Opens the file behind a mapping as the target sees it: /proc/PID/root/<path>, or for a
 * deleted file /proc/PID/map_files/<start>-<end>. */
static int ps_open_mapped_elf(struct ps_py *py, const struct ps_map *m, struct ps_elf *e)
{
    char path[4200];
    if (m->deleted)
        snprintf(path, sizeof path, "/proc/%d/map_files/%llx-%llx", (int)py->pid,
                 (unsigned long long)m->start, (unsigned long long)m->end);
    else
        ps_proc_root_path(py->pid, m->path, path, sizeof path);
    int rc = ps_elf_open(e, path);
    if (rc < 0 && !m->deleted) {
        /* A file replaced on disk but not marked deleted: fall back to map_files. */
        snprintf(path, sizeof path, "/proc/%d/map_files/%llx-%llx", (int)py->pid,
                 (unsigned long long)m->start, (unsigned long long)m->end);
        rc = ps_elf_open(e, path);
    }
    return rc;
}

static int ps_read_version_string(struct ps_py *py, uint64_t addr)
{
    char buf[32];
    if (ps_mem_read(&py->mem, addr, buf, sizeof buf) < 0)
        return -1;
    buf[sizeof buf - 1] = '\0';
    int ma, mi, mc;
    if (sscanf(buf, "%d.%d.%d", &ma, &mi, &mc) != 3 || (ma != 2 && ma != 3))
        return -1;
    if (py->major && (ma != py->major || mi != py->minor))
        return -1;
    py->major = ma;
    py->minor = mi;
    py->micro = mc;
    return 0;
}

/* Tries one ELF file; returns 1 if it holds the interpreter (py filled), 0 if not. */
static int ps_try_candidate(struct ps_py *py, const struct ps_candidate *c, int *perm_denied)
{
    struct ps_elf e;
    int rc = ps_open_mapped_elf(py, c->map0, &e);
    if (rc < 0) {
        if (rc == PS_EPERM)
            *perm_denied = 1;
        ps_how(py, "  %s: cannot open (%s)", c->path, ps_strerror(rc));
        return 0;
    }
    struct ps_elf_sym syms[SYM__COUNT] = {
        [SYM_RUNTIME] = {"_PyRuntime", 0, 0, 0},
        [SYM_PY_VERSION] = {"Py_Version", 0, 0, 0},
        [SYM_CODE_TYPE] = {"PyCode_Type", 0, 0, 0},
        [SYM_INTERP_HEAD] = {"interp_head", 0, 0, 0},
        [SYM_TSTATE_CURRENT] = {"_PyThreadState_Current", 0, 0, 0},
        [SYM_VERSION_BUF] = {"version", 0, 0, 0},
        [SYM_VERSION_BUF0] = {"version.0", 0, 0, 0}, /* the same static, as gcc names it */
        [SYM_STRING_TYPE] = {"PyString_Type", 0, 0, 0},
        [SYM_NEXT_FUNC_VERSION] = {"_Py_next_func_version", 0, 0, 0}, /* 3.12, .symtab */
        [SYM_INIT_CLEANUP] = {"_Py_InitCleanup", 0, 0, 0}, /* 3.13+: a class's __init__ shim */
    };
    ps_elf_lookup(&e, syms, SYM__COUNT);
    int has_interp = syms[SYM_RUNTIME].found || syms[SYM_INTERP_HEAD].found ||
                     syms[SYM_TSTATE_CURRENT].found;
    if (!has_interp || !syms[SYM_CODE_TYPE].found) {
        ps_how(py, "  %s: no interpreter symbols", c->path);
        ps_elf_close(&e);
        return 0;
    }
    uint64_t bias = ps_elf_bias(&e, c->map0->start);
    py->lib = ps_xstrdup(c->path);
    py->code_type = bias + syms[SYM_CODE_TYPE].value;
    if (syms[SYM_INIT_CLEANUP].found)
        py->init_cleanup = bias + syms[SYM_INIT_CLEANUP].value;
    ps_how(py, "interpreter symbols in %s (%s, load bias 0x%llx)", c->path,
           e.is_exec ? "ET_EXEC" : "ET_DYN", (unsigned long long)bias);
    if (syms[SYM_RUNTIME].found) {
        py->runtime = bias + syms[SYM_RUNTIME].value;
        ps_how(py, "_PyRuntime at 0x%llx (.%s)", (unsigned long long)py->runtime,
               syms[SYM_RUNTIME].found == 1 ? "dynsym" : "symtab");
    }
    if (syms[SYM_INTERP_HEAD].found)
        py->interp_head_addr = bias + syms[SYM_INTERP_HEAD].value;
    if (syms[SYM_TSTATE_CURRENT].found)
        py->tstate_current_addr = bias + syms[SYM_TSTATE_CURRENT].value;

    /* Version, most reliable first. */
    if (syms[SYM_PY_VERSION].found) {
        uint32_t hex;
        if (ps_mem_read(&py->mem, bias + syms[SYM_PY_VERSION].value, &hex, 4) == 0 ||
            ps_elf_read_vaddr(&e, syms[SYM_PY_VERSION].value, &hex, 4) == 0) {
            py->hexversion = hex;
            py->major = (int)(hex >> 24);
            py->minor = (int)((hex >> 16) & 0xff);
            py->micro = (int)((hex >> 8) & 0xff);
            ps_how(py, "version 0x%08x from Py_Version", hex);
        }
    }
    if (!py->major && py->runtime) {
        char head[24];
        if (ps_mem_read(&py->mem, py->runtime, head, sizeof head) == 0 &&
            memcmp(head, PS_DEBUGOFF_COOKIE, 8) == 0) {
            uint64_t hex;
            memcpy(&hex, head + 8, 8);
            py->hexversion = (uint32_t)hex;
            py->major = (int)(hex >> 24);
            py->minor = (int)((hex >> 16) & 0xff);
            py->micro = (int)((hex >> 8) & 0xff);
            ps_how(py, "version 0x%08llx from _Py_DebugOffsets", (unsigned long long)hex);
        }
    }
    int have_micro = py->major != 0;
    if (!py->major && ps_version_from_name(c->path, &py->major, &py->minor) == 0)
        ps_how(py, "version %d.%d from the file name %s", py->major, py->minor, c->path);
    if (!py->major && syms[SYM_STRING_TYPE].found) {
        py->major = 2;
        py->minor = 7;
        ps_how(py, "version 2.7 from PyString_Type");
    }
    for (int k = SYM_VERSION_BUF; k <= SYM_VERSION_BUF0 && !have_micro; k++)
        if (syms[k].found && ps_read_version_string(py, bias + syms[k].value) == 0) {
            have_micro = 1;
            ps_how(py, "version %d.%d.%d from the sys.version buffer (%s)", py->major, py->minor,
                   py->micro, syms[k].name);
        }
    if (py->major == 3 && py->minor == 12 && syms[SYM_NEXT_FUNC_VERSION].found) {
        py->code_counter_addr = bias + syms[SYM_NEXT_FUNC_VERSION].value;
        ps_how(py, "code counter _Py_next_func_version at 0x%llx",
               (unsigned long long)py->code_counter_addr);
    }
    ps_elf_close(&e);
    return 1;
}

/* The offset-0 mapping the loader made for this file: the highest one at or below the file's
 * executable mapping. A file can be mapped more than once (e.g. read by someone with mmap), and
 * the lowest offset-0 mapping is then not the one the code runs from. */
static const struct ps_map *ps_offset0_map(const struct ps_maps *maps, const struct ps_map *m)
{
    const struct ps_map *exec = NULL, *best = NULL, *lowest = NULL;
    for (int i = 0; i < maps->n; i++) {
        const struct ps_map *x = &maps->v[i];
        if (x->inode == m->inode && strcmp(x->path, m->path) == 0 && x->perms[2] == 'x' &&
            (!exec || x->start < exec->start))
            exec = x;
    }
    for (int i = 0; i < maps->n; i++) {
        const struct ps_map *x = &maps->v[i];
        if (x->offset != 0 || x->inode != m->inode || strcmp(x->path, m->path) != 0)
            continue;
        if (!lowest || x->start < lowest->start)
            lowest = x;
        if (exec && x->start <= exec->start && (!best || x->start > best->start))
            best = x;
    }
    return best ? best : lowest;
}

static int ps_find_interpreter(struct ps_py *py)
{
    struct ps_candidate cands[64];
    int n = 0;
    char searched[512] = "";
    /* 1. the executable, 2. libpython*, 3. any other mapped ELF with code. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < py->maps.n && n < (int)PS_ARRAY_LEN(cands); i++) {
            const struct ps_map *m = &py->maps.v[i];
            if (m->path[0] != '/' || m->offset != 0)
                continue;
            int is_exe = py->exe && strcmp(m->path, py->exe) == 0;
            int is_lib = ps_is_libpython(m->path);
            if ((pass == 0 && !is_exe) || (pass == 1 && (!is_lib || is_exe)) ||
                (pass == 2 && (is_exe || is_lib)))
                continue;
            int dup = 0;
            for (int k = 0; k < n; k++)
                dup |= strcmp(cands[k].path, m->path) == 0;
            if (dup)
                continue;
            if (pass == 2) {
                /* Only files that have an executable mapping are worth opening. */
                int exec = 0;
                for (int k = 0; k < py->maps.n; k++)
                    exec |= py->maps.v[k].inode == m->inode && py->maps.v[k].perms[2] == 'x' &&
                            strcmp(py->maps.v[k].path, m->path) == 0;
                if (!exec)
                    continue;
            }
            const struct ps_map *m0 = ps_offset0_map(&py->maps, m);
            cands[n].map0 = m0 ? m0 : m;
            cands[n].path = m->path;
            n++;
        }
    }
    int perm = 0;
    for (int i = 0; i < n; i++) {
        if (ps_try_candidate(py, &cands[i], &perm))
            return 0;
        if (i < 4) {
            size_t len = strlen(searched);
            snprintf(searched + len, sizeof searched - len, "%s%s", len ? ", " : "", cands[i].path);
        }
    }
    if (perm) {
        ps_err_set("cannot read the executable or libraries of %d: permission denied — run as "
                   "root or grant CAP_SYS_PTRACE (docker: --cap-add SYS_PTRACE)",
                   (int)py->pid);
        return PS_EPERM;
    }
    ps_err_set("%d is not a Python process: no CPython interpreter symbols in %s%s — pass the "
               "PID of a python process (or of a worker that embeds libpython)",
               (int)py->pid, n ? searched : "any mapped file", n > 4 ? ", ..." : "");
    return PS_ENOTPY;
}

/* The newest built-in table of a build kind, for minors newer than every table. */
static const struct ps_py_offsets *ps_newest_table(int free_threaded)
{
    int n;
    const struct ps_py_offsets *const *all = ps_pyoffsets_all(&n), *best = NULL;
    for (int i = 0; i < n; i++)
        if (!(all[i]->flags & PS_PYF_FREE_THREADED) == !free_threaded && all[i]->major == 3 &&
            (!best || all[i]->minor > best->minor))
            best = all[i];
    return best;
}

int ps_py_pick_layout(struct ps_py *py)
{
    /* 3.13+: the debug offsets come first, since they say which build kind (default or
     * free-threaded) runs, and so which table applies. */
    struct ps_debugoff d;
    int rc = PS_ENOTPY, have_dbo = py->major == 3 && py->minor >= 13 && py->runtime;
    int ft = 0;
    if (have_dbo) {
        unsigned char raw[PS_DEBUGOFF_MAX_BYTES];
        size_t len = sizeof raw;
        while (len >= 1024 && ps_mem_read(&py->mem, py->runtime, raw, len) < 0)
            len /= 2;
        rc = len >= 1024 ? ps_debugoff_parse(raw, len, &d) : PS_EFAULT;
        /* Without a valid block, the free_threaded word (offset 16) still tells the build. */
        ft = rc == 0 ? d.free_threaded != 0 : len >= 1024 && raw[16] != 0;
    }
    const struct ps_py_offsets *base = ps_pyoffsets_lookup_build(py->major, py->minor, ft);
    const struct ps_py_offsets *newest = ps_newest_table(ft);
    int newer = 0;
    if (!base && py->major == 3 && newest && py->minor > newest->minor) {
        base = newest;
        newer = 1;
    }
    if (!base) {
        ps_err_set("Python %d.%d%s is not supported (supported: 2.7, 3.6 to 3.15, free-threaded "
                   "3.13t to 3.15t, and newer 3.x with valid debug offsets)",
                   py->major, py->minor, ft ? " (free-threaded)" : "");
        return PS_EVERSION;
    }
    py->off = *base;
    ps_how(py, "layout: built-in table for %d.%d%s%s", base->major, base->minor,
           base->flags & PS_PYF_FREE_THREADED ? "t (free-threaded build)" : "",
           base->flags & PS_PYF_DERIVED ? " (derived, not from installed headers)" : "");
    if (have_dbo) {
        if (rc == 0) {
            int diff = ps_debugoff_apply(&d, base, &py->off);
            py->debug_offsets_used = 1;
            ps_how(py, "layout: _Py_DebugOffsets read from the target (%s positions; %d field%s "
                       "differ from the table)",
                   d.layout == 13 ? "3.13" : d.layout == 14 ? "3.14" : "3.15", diff,
                   diff == 1 ? "" : "s");
        } else if (newer || (py->hexversion & 0xf0) != 0xf0) {
            ps_err_set("Python %d.%d: %s; cannot read this version safely", py->major, py->minor,
                       ps_err_detail() ? ps_err_detail() : "no valid _Py_DebugOffsets");
            return PS_EVERSION;
        } else {
            ps_how(py, "layout: _Py_DebugOffsets unusable (%s); using the table", ps_strerror(rc));
        }
    } else if (py->hexversion && (py->hexversion & 0xf0) != 0xf0 && py->major == 3 &&
               py->minor >= 11) {
        ps_how(py, "note: pre-release %d.%d (0x%08x); layout from the final release's table",
               py->major, py->minor, py->hexversion);
    }
    return 0;
}

int ps_py_gil_disabled(struct ps_py *py)
{
    const struct ps_py_offsets *o = &py->off;
    if (!(o->flags & PS_PYF_FREE_THREADED) || o->gil_enabled == PS_OFF_NONE || !py->runtime)
        return 0;
    uint64_t interp, gil;
    uint32_t enabled;
    int rc;
    if ((rc = ps_mem_read_u64(&py->mem, py->runtime + (uint64_t)o->rt_interp_head, &interp)) < 0 ||
        (rc = ps_mem_read_u64(&py->mem, interp + (uint64_t)o->is_ceval_gil, &gil)) < 0 ||
        (rc = ps_mem_read_u32(&py->mem, gil + (uint64_t)o->gil_enabled, &enabled)) < 0)
        return rc;
    return enabled == 0;
}

static void ps_find_stdlib(struct ps_py *py)
{
    /* The stdlib lives in <prefix>/lib/pythonX.Y/; derive <prefix> from the file holding the
     * interpreter (…/lib/libpythonX.Y.so or …/bin/pythonX.Y). */
    const char *src = py->lib ? py->lib : py->exe;
    if (!src)
        return;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", src);
    char *slash = strrchr(buf, '/');
    if (!slash)
        return;
    *slash = '\0';
    slash = strrchr(buf, '/');
    if (slash && (strcmp(slash, "/lib") == 0 || strcmp(slash, "/bin") == 0 ||
                  strcmp(slash, "/lib64") == 0))
        *slash = '\0';
    else if (strstr(buf, "/lib/x86_64-linux-gnu") || strstr(buf, "/lib/aarch64-linux-gnu"))
        *strstr(buf, "/lib/") = '\0';
    size_t len = strlen(buf) + 32;
    py->stdlib_prefix = ps_xmalloc(len);
    snprintf(py->stdlib_prefix, len, "%s/lib/python%d.%d/", buf, py->major, py->minor);
}

/* The one message for every "not allowed to read this process" failure. */
static void ps_err_permission(pid_t pid, const char *what)
{
    ps_err_set("cannot read %s of %d: permission denied — run as root or grant CAP_SYS_PTRACE "
               "(docker: --cap-add SYS_PTRACE; check /proc/sys/kernel/yama/ptrace_scope)",
               what, (int)pid);
}

/* The working directory as the target sees it. For a chrooted target (a container seen from
 * the host) /proc/PID/cwd names the host's path (/var/lib/x/root/app) while the target's file
 * names are relative to its own root (/app/x.py): strip the root's path. */
static void ps_cwd_in_root(pid_t pid, char **cwd)
{
    char *root = NULL;
    if (!*cwd || ps_proc_link(pid, "root", &root) < 0)
        return;
    size_t n = strlen(root);
    if (n > 1 && strncmp(*cwd, root, n) == 0 && ((*cwd)[n] == '/' || (*cwd)[n] == '\0')) {
        char *in = ps_xstrdup((*cwd)[n] ? *cwd + n : "/");
        free(*cwd);
        *cwd = in;
    }
    free(root);
}

int ps_py_attach(struct ps_py *py, pid_t pid)
{
    memset(py, 0, sizeof *py);
    py->pid = pid;
    py->tid_offset = -1;
    py->read_thread_state = 1;
    ps_err_clear();
    char state = 0;
    int rc = ps_proc_state(pid, &state);
    if (rc == PS_ENOPROC) {
        ps_err_set("no such process: %d — check the PID (e.g. with ps or pgrep)", (int)pid);
        return rc;
    }
    if (rc < 0) {
        ps_err_set("cannot read /proc/%d/stat: %s", (int)pid, ps_strerror(rc));
        return rc;
    }
    if (state == 'Z' || state == 'X') {
        ps_err_set("process %d is a zombie (it has exited; its parent has not reaped it) — "
                   "nothing to sample",
                   (int)pid);
        return PS_EZOMBIE;
    }
    rc = ps_maps_read(pid, &py->maps);
    if (rc == PS_EPERM) {
        ps_err_permission(pid, "memory maps");
        return rc;
    }
    if (rc < 0) {
        ps_err_set("cannot read /proc/%d/maps: %s", (int)pid, ps_strerror(rc));
        return rc == PS_ENOPROC ? rc : PS_EIO;
    }
    if (py->maps.n == 0) {
        ps_err_set("process %d has no memory maps (a kernel thread or exiting process)", (int)pid);
        return PS_EZOMBIE;
    }
    ps_proc_link(pid, "exe", &py->exe);
    ps_proc_link(pid, "cwd", &py->cwd);
    ps_cwd_in_root(pid, &py->cwd);
    ps_mem_open_pid(&py->mem, pid);
    rc = ps_find_interpreter(py);
    if (rc < 0)
        return rc;
    if (!py->major) {
        ps_err_set("found CPython symbols in %s but could not tell its version", py->lib);
        return PS_EVERSION;
    }
    rc = ps_py_pick_layout(py);
    if (rc < 0)
        return rc;
    if (py->micro || py->hexversion)
        snprintf(py->version, sizeof py->version, "%d.%d.%d", py->major, py->minor, py->micro);
    else
        snprintf(py->version, sizeof py->version, "%d.%d", py->major, py->minor);
    ps_find_stdlib(py);
    /* A first read proves that memory is readable (permissions) before the caller walks. */
    uint64_t probe = py->runtime ? py->runtime : py->interp_head_addr ? py->interp_head_addr
                                                                      : py->tstate_current_addr;
    uint64_t word;
    rc = ps_mem_read(&py->mem, probe, &word, sizeof word);
    if (rc == PS_EPERM) {
        ps_err_permission(pid, "memory");
        return rc;
    }
    if (rc < 0) {
        ps_err_set("cannot read memory of %d: %s", (int)pid, ps_strerror(rc));
        return rc == PS_ENOPROC ? rc : PS_EIO;
    }
    return ps_py_attach_fake(py);
}

const char *ps_py_short_filename(const struct ps_py *py, const char *file)
{
    static const char *const markers[] = {"/site-packages/", "/dist-packages/"};
    if (py->cwd && py->cwd[0] == '/' && py->cwd[1]) {
        size_t n = strlen(py->cwd);
        if (strncmp(file, py->cwd, n) == 0 && file[n] == '/')
            return file + n + 1;
    }
    for (size_t i = 0; i < PS_ARRAY_LEN(markers); i++) {
        const char *p = strstr(file, markers[i]);
        if (p)
            return p + strlen(markers[i]);
    }
    if (py->stdlib_prefix) {
        size_t n = strlen(py->stdlib_prefix);
        if (strncmp(file, py->stdlib_prefix, n) == 0)
            return file + n;
    }
    /* Any other ".../lib/pythonX.Y/" (a venv's base interpreter, Debian's /usr/lib/python3.11). */
    const char *p = strstr(file, "/lib/python");
    if (p) {
        const char *q = strchr(p + 11, '/');
        if (q && q - p < 20)
            return q + 1;
    }
    return file;
}
