/* symbolize.c — native PCs to function, library, file:line and inlined calls (second step of
 * native/, after unwind.c). A libdwfl session over the target's mappings (reported again, at
 * most once per unwind, for a PC outside every module, e.g. after dlopen), ELF symbols and
 * DWARF, cached by address; also the is_eval/is_plumbing classification merge.c relies on.
 * Every file is opened as the target sees it (its root, or map_files), separate debug files too.
 */
#include <dirent.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_native.h"
#include "ps_util.h"

#define PS_SYMCACHE_INITIAL 1024
#define PS_SYMCACHE_MAX (1u << 16)     /* entries; the cache starts over beyond 3/4 of this */

struct ps_symentry {
    uint64_t addr;                     /* looked-up address (pc or pc - 1) */
    struct ps_native_sym sym;          /* strings owned by this entry */
    struct ps_native_inline *inl;
    struct ps_symentry *next_spill;    /* entries that did not fit the table */
};

struct ps_native_symtab {
    pid_t pid;
    Dwfl *dwfl;
    struct ps_symentry **slots;        /* open addressing, linear probing */
    uint32_t cap, count;
    struct ps_symentry *spill;         /* freed at the next generation */
    int reset_pending;
    uint64_t generation, refresh_generation;
    uint64_t hits, misses, refreshes;
};

/* ---- classification --------------------------------------------------------------------- */

/* Interpreter plumbing, in the interpreter's own module only. A trailing '*' is a prefix. */
static const char *const ps_plumbing_py[] = {
    /* call machinery between one eval loop and the next */
    "_PyEval_Vector", "PyObject_Vectorcall*", "_PyObject_Vectorcall*", "PyObject_Call*",
    "_PyObject_Call*", "_PyObject_FastCall*", "_PyObject_MakeTpCall", "PyVectorcall_Call",
    "_PyVectorcall_Call", "_PyFunction_Vectorcall", "_PyFunction_FastCall*",
    "function_code_fastcall", "fast_function", "call_function", "do_call", "do_call_core",
    "ext_do_call",
    "method_vectorcall*", "cfunction_call*", "cfunction_vectorcall*", "_PyCFunction_FastCall*",
    "PyCFunction_Call", "_PyMethodDef_RawFastCall*", "_PyMethodDescr_FastCall*", "method_call",
    "instancemethod_call", "function_call", "slot_tp_call", "slot_tp_init", "type_call",
    "vectorcall_method", "vectorcall_unbound", "object_vacall", "PyEval_CallObject*",
    "PyEval_CallFunction", "PyEval_CallMethod", "PyEval_EvalCode*", "_PyEval_EvalCode*",
    "PyEval_EvalFrame", "_PyEval_EvalFrame",
    /* start-up */
    "main", "Py_Main", "Py_BytesMain", "Py_RunMain", "_Py_UnixMain", "pymain_*", "PyRun_*",
    "_PyRun_*", "pyrun_*", "run_mod", "run_eval_code_obj", "run_pyc_file", "run_file",
    "run_command", "run_module",
    /* thread bootstrap */
    "thread_run", "t_bootstrap", "pythread_wrapper",
};

/* Process and thread start, in any module. */
static const char *const ps_plumbing_any[] = {
    "_start", "__libc_start_*", "start_thread", "clone", "clone3", "__clone", "__clone3",
    "__GI___clone", "__GI___clone3", "__clone_internal",
};

/* Compares a name without its GCC clone suffix (".cold", ".part.N", ...) with a pattern. */
static int ps_name_matches(const char *name, size_t len, const char *pat)
{
    size_t pl = strlen(pat);
    if (pl && pat[pl - 1] == '*')
        return len >= pl - 1 && memcmp(name, pat, pl - 1) == 0;
    return len == pl && memcmp(name, pat, pl) == 0;
}

static int ps_name_in(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ps_name_matches(name, len, list[i]))
            return 1;
    return 0;
}

static int ps_lib_is_python(const char *lib)
{
    return lib && (strncmp(lib, "libpython", 9) == 0 || strncmp(lib, "python", 6) == 0);
}

void ps_native_classify(const char *name, const char *lib, uint8_t *is_eval, uint8_t *is_plumbing)
{
    *is_eval = 0;
    *is_plumbing = 0;
    if (!name || !*name) {
        /* Unnamed code inside the interpreter is its internals. */
        *is_plumbing = (uint8_t)ps_lib_is_python(lib);
        return;
    }
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    if (ps_name_matches(name, len, "_PyEval_EvalFrameDefault") ||
        ps_name_matches(name, len, "PyEval_EvalFrameEx")) {
        /* 2.7's loop is PyEval_EvalFrameEx; on 3.x it only forwards to the loop (merge.c
         * counts adjacent eval frames as one activation). */
        *is_eval = 1;
        return;
    }
    if (ps_name_matches(name, len, "_TAIL_CALL_*")) {
        *is_eval = 2;
        return;
    }
    if (ps_name_in(name, len, ps_plumbing_any, PS_ARRAY_LEN(ps_plumbing_any)) ||
        (ps_lib_is_python(lib) &&
         ps_name_in(name, len, ps_plumbing_py, PS_ARRAY_LEN(ps_plumbing_py))))
        *is_plumbing = 1;
}

void ps_native_sym_label(const struct ps_native_sym *s, char *buf, size_t sz)
{
    const char *lib = s->lib && s->lib[0] ? s->lib : NULL;
    if (s->name && s->file && s->line > 0)
        snprintf(buf, sz, "%s (%s:%d)", s->name, s->file, s->line);
    else if (s->name && lib)
        snprintf(buf, sz, "%s (%s)", s->name, lib);
    else if (s->name)
        snprintf(buf, sz, "%s", s->name);
    else if (lib)
        snprintf(buf, sz, "?? (%s+0x%llx)", lib, (unsigned long long)s->offset);
    else
        snprintf(buf, sz, "?? (0x%llx)", (unsigned long long)s->pc);
}

/* ---- libdwfl session -------------------------------------------------------------------- */

/* The pid whose files find_elf and find_debuginfo open (libdwfl gives the callbacks no context
 * of their own; all lookups happen on one thread). */
static pid_t ps_find_elf_pid;

/* Opens `path` if it is a regular file (a device in the maps could block on open). */
static int ps_open_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* /proc/PID/map_files/<start>-<end> of the mapping that starts at `start`: the very file the
 * target mapped, even when the name in its maps now means another file or none. */
static int ps_open_map_file(pid_t pid, uint64_t start, char *path, size_t sz)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/map_files", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int fd = -1;
    struct dirent *de;
    while (fd < 0 && (de = readdir(d)) != NULL) {
        unsigned long long lo;
        if (sscanf(de->d_name, "%llx-", &lo) == 1 && lo == start) {
            snprintf(path, sz, "%s/%s", dir, de->d_name);
            fd = ps_open_regular(path);
        }
    }
    closedir(d);
    return fd;
}

/* A module's file as the target sees it: /proc/PID/root/<path> (targets in containers or
 * chroots have another root), else the mapping itself through map_files. Never the path as
 * pysample sees it, which may name another build of the same library. Special mappings
 * ([vdso]) are read from memory by libdwfl. */
static int ps_find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
                       char **file_name, Elf **elfp)
{
    pid_t pid = ps_find_elf_pid;
    if (!name || name[0] != '/' || pid <= 0)
        return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
    char path[4200];
    int fd = -1;
    static const char del[] = " (deleted)";
    size_t nl = strlen(name);
    if (nl < sizeof del - 1 || strcmp(name + nl - (sizeof del - 1), del) != 0) {
        ps_proc_root_path(pid, name, path, sizeof path);
        fd = ps_open_regular(path);
    }
    if (fd < 0) {
        Dwarf_Addr low = 0;
        dwfl_module_info(mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
        fd = ps_open_map_file(pid, low, path, sizeof path);
    }
    if (fd < 0)
        return -1;
    *file_name = strdup(path);
    if (!*file_name) {
        close(fd);
        return -1;
    }
    *elfp = NULL;
    return fd;
}

/* Does the ELF file open on fd carry the build ID `id` (when the module has one)? */
static int ps_build_id_matches(int fd, const unsigned char *id, int idlen)
{
    if (idlen <= 0)
        return 1;
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!elf)
        return 0;
    const void *got = NULL;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &got);
    int ok = n == idlen && memcmp(got, id, (size_t)idlen) == 0;
    elf_end(elf);
    return ok;
}

/* Opens the first candidate that exists (and carries the module's build ID when `id`). */
static int ps_try_debug(const char *path, const unsigned char *id, int idlen, char **out)
{
    int fd = ps_open_regular(path);
    if (fd < 0)
        return -1;
    if (!ps_build_id_matches(fd, id, idlen) || !(*out = strdup(path))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Separate debug files, looked up the way the target's own tools would, under its root:
 *   <root>/usr/lib/debug/.build-id/NN/REST.debug          (then pysample's own /usr/lib/debug:
 *                                                           the build ID vouches for the file)
 *   <root><dir>/<debuglink>, <root><dir>/.debug/<debuglink>, <root>/usr/lib/debug<dir>/<debuglink>
 * where <dir> is the module's directory in the target. A candidate must carry the module's
 * build ID; a dwz alternate file (asked for with crc 0) is found next to the debug file. */
static int ps_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                             GElf_Addr base, const char *file_name, const char *debuglink,
                             GElf_Word crc, char **out)
{
    (void)userdata;
    (void)base;
    char root[64], path[8400];
    snprintf(root, sizeof root, "/proc/%d/root", (int)ps_find_elf_pid);
    const unsigned char *id = NULL;
    GElf_Addr idaddr;
    int idlen = debuglink && crc == 0 ? 0 : dwfl_module_build_id(mod, &id, &idaddr);
    int fd;
    if (debuglink && crc == 0) { /* a dwz alternate file: absolute, or relative to file_name */
        if (debuglink[0] == '/') {
            snprintf(path, sizeof path, "%s%s", root, debuglink);
        } else if (file_name) {
            const char *slash = strrchr(file_name, '/');
            snprintf(path, sizeof path, "%.*s/%s", slash ? (int)(slash - file_name) : 1,
                     slash ? file_name : ".", debuglink);
        } else {
            return -1;
        }
        return ps_try_debug(path, NULL, 0, out);
    }
    if (idlen > 0) {
        char hex[2 * 64 + 1];
        int n = PS_MIN(idlen, 64);
        for (int i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02x", id[i]);
        const char *roots[2] = {root, ""};
        for (int r = 0; r < 2; r++) {
            snprintf(path, sizeof path, "%s/usr/lib/debug/.build-id/%.2s/%s.debug", roots[r], hex,
                     hex + 2);
            if ((fd = ps_try_debug(path, id, idlen, out)) >= 0)
                return fd;
        }
    }
    if (!debuglink || !modname || modname[0] != '/')
        return -1;
    /* The module's directory as the target names it; pysample's own view of the same path is
     * tried last, and only where a build ID can vouch for what is found there. */
    const char *views[2] = {ps_proc_target_view(ps_find_elf_pid, modname), modname};
    const char *roots[2] = {root, ""};
    for (int v = 0; v < (idlen > 0 ? 2 : 1); v++) {
        const char *view = views[v], *slash = strrchr(view, '/');
        int dl = (int)(slash - view);
        for (int i = 0; i < 3; i++) {
            if (i == 0)
                snprintf(path, sizeof path, "%s%.*s/%s", roots[v], dl, view, debuglink);
            else if (i == 1)
                snprintf(path, sizeof path, "%s%.*s/.debug/%s", roots[v], dl, view, debuglink);
            else
                snprintf(path, sizeof path, "%s/usr/lib/debug%.*s/%s", roots[v], dl, view,
                         debuglink);
            if (file_name && strcmp(path, file_name) == 0)
                continue; /* the module itself */
            if ((fd = ps_try_debug(path, id, idlen, out)) >= 0)
                return fd;
        }
    }
    return -1;
}

static const Dwfl_Callbacks ps_dwfl_callbacks = {
    .find_elf = ps_find_elf,
    .find_debuginfo = ps_find_debuginfo,
};

static int ps_symtab_report(struct ps_native_symtab *t)
{
    ps_find_elf_pid = t->pid;
    dwfl_report_begin(t->dwfl);
    int r = dwfl_linux_proc_report(t->dwfl, t->pid);
    dwfl_report_end(t->dwfl, NULL, NULL);
    if (r != 0) {
        ps_err_set("libdw: cannot list the modules of process %d: %s", (int)t->pid,
                   r > 0 ? strerror(r) : dwfl_errmsg(-1));
        return r > 0 ? ps_err_from_errno(r) : PS_EIO;
    }
    return 0;
}

struct ps_native_symtab *ps_native_symtab_new(pid_t pid)
{
    struct ps_native_symtab *t = ps_xcalloc(1, sizeof *t);
    t->pid = pid;
    t->dwfl = dwfl_begin(&ps_dwfl_callbacks);
    if (!t->dwfl) {
        ps_err_set("libdw: %s", dwfl_errmsg(-1));
        free(t);
        return NULL;
    }
    if (ps_symtab_report(t) < 0) {
        dwfl_end(t->dwfl);
        free(t);
        return NULL;
    }
    t->cap = PS_SYMCACHE_INITIAL;
    t->slots = ps_xcalloc(t->cap, sizeof *t->slots);
    t->generation = 1;
    return t;
}

static void ps_symentry_free(struct ps_symentry *e)
{
    free((char *)e->sym.name);
    free((char *)e->sym.lib);
    free((char *)e->sym.file);
    for (int i = 0; i < e->sym.ninlined; i++) {
        free((char *)e->inl[i].name);
        free((char *)e->inl[i].file);
    }
    free(e->inl);
    free(e);
}

static void ps_symtab_clear(struct ps_native_symtab *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            ps_symentry_free(t->slots[i]);
            t->slots[i] = NULL;
        }
    t->count = 0;
}

static void ps_symtab_free_spill(struct ps_native_symtab *t)
{
    while (t->spill) {
        struct ps_symentry *e = t->spill;
        t->spill = e->next_spill;
        ps_symentry_free(e);
    }
}

void ps_native_symtab_free(struct ps_native_symtab *t)
{
    if (!t)
        return;
    ps_symtab_clear(t);
    ps_symtab_free_spill(t);
    free(t->slots);
    dwfl_end(t->dwfl);
    free(t);
}

void ps_native_symtab_next_generation(struct ps_native_symtab *t)
{
    t->generation++;
    ps_symtab_free_spill(t);
    if (t->reset_pending) {
        ps_symtab_clear(t);
        t->reset_pending = 0;
    }
}

uint64_t ps_native_symtab_refreshes(const struct ps_native_symtab *t)
{
    return t->refreshes;
}

void ps_native_symtab_stats(const struct ps_native_symtab *t, struct ps_native_cache_stats *out)
{
    out->hits = t->hits;
    out->misses = t->misses;
    out->refreshes = t->refreshes;
    out->entries = (int)t->count;
}

/* ---- the cache -------------------------------------------------------------------------- */

static uint32_t ps_addr_hash(uint64_t a)
{
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    a ^= a >> 33;
    return (uint32_t)a;
}

static struct ps_symentry *ps_cache_find(const struct ps_native_symtab *t, uint64_t addr)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = ps_addr_hash(addr) & mask;; i = (i + 1) & mask) {
        struct ps_symentry *e = t->slots[i];
        if (!e)
            return NULL;
        if (e->addr == addr)
            return e;
    }
}

static void ps_cache_put_slot(struct ps_native_symtab *t, struct ps_symentry *e)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = ps_addr_hash(e->addr) & mask;
    while (t->slots[i])
        i = (i + 1) & mask;
    t->slots[i] = e;
    t->count++;
}

static void ps_cache_insert(struct ps_native_symtab *t, struct ps_symentry *e)
{
    if ((t->count + 1) * 4 > t->cap * 3) {
        if (t->cap < PS_SYMCACHE_MAX) {
            struct ps_symentry **old = t->slots;
            uint32_t oldcap = t->cap;
            t->cap *= 2;
            t->slots = ps_xcalloc(t->cap, sizeof *t->slots);
            t->count = 0;
            for (uint32_t i = 0; i < oldcap; i++)
                if (old[i])
                    ps_cache_put_slot(t, old[i]);
            free(old);
        } else {
            /* Full: start over at the next unwind; strings handed out stay valid until then. */
            t->reset_pending = 1;
            if (t->count + 1 >= t->cap) {
                e->next_spill = t->spill;
                t->spill = e;
                return;
            }
        }
    }
    ps_cache_put_slot(t, e);
}

/* ---- DWARF ------------------------------------------------------------------------------ */

static const char *ps_basename(const char *path)
{
    if (!path)
        return NULL;
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static char *ps_dup_or_null(const char *s)
{
    return s ? ps_xstrdup(s) : NULL;
}

/* Name of a subprogram or inlined subroutine (through DW_AT_abstract_origin/specification). */
static const char *ps_die_name(Dwarf_Die *die)
{
    Dwarf_Attribute a;
    const char *n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
    if (!n)
        n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
    return n;
}

/* DW_AT_call_file / DW_AT_call_line of an inlined subroutine. */
static void ps_call_site(Dwarf_Die *cu, Dwarf_Die *die, const char **file, int *line)
{
    Dwarf_Attribute a;
    Dwarf_Word idx, ln;
    *file = NULL;
    *line = 0;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &a), &idx) == 0 &&
        dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && idx < nfiles)
        *file = dwarf_filesrc(files, idx, NULL, NULL);
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &a), &ln) == 0)
        *line = (int)ln;
}

/* Fills e from the module: ELF symbol, source line, inlined chain. */
static void ps_describe(Dwfl_Module *m, uint64_t addr, struct ps_symentry *e)
{
    Dwarf_Addr low = 0;
    const char *modname = dwfl_module_info(m, NULL, &low, NULL, NULL, NULL, NULL, NULL);
    e->sym.lib = ps_xstrdup(modname ? ps_basename(modname) : "");
    e->sym.offset = addr - low;

    GElf_Off off = 0;
    GElf_Sym esym;
    const char *sname = dwfl_module_addrinfo(m, addr, &off, &esym, NULL, NULL, NULL);
    /* A PC is never inside data: a data symbol "found" for it (e.g. _PyRuntime, when the
     * modules are those of an image the target replaced with exec) names nothing. */
    if (sname) {
        int type = GELF_ST_TYPE(esym.st_info);
        if (type == STT_OBJECT || type == STT_TLS || type == STT_COMMON || type == STT_SECTION ||
            type == STT_FILE)
            sname = NULL;
    }

    const char *file = NULL;
    int line = 0;
    Dwfl_Line *dl = dwfl_module_getsrc(m, addr);
    if (dl)
        file = dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);

    const char *dname = NULL;
    struct ps_native_inline inl[PS_NATIVE_MAX_INLINE];
    int ninl = 0;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(m, addr, &bias);
    if (cu) {
        /* dwarf_getscopes continues past an inlined subroutine with the scopes of its
         * abstract definition; the concrete chain (what was inlined into what) comes from
         * the parents of the innermost scope. */
        Dwarf_Die *scopes = NULL;
        int ns = dwarf_getscopes(cu, addr - bias, &scopes);
        if (ns > 0) {
            Dwarf_Die inner = scopes[0];
            free(scopes);
            scopes = NULL;
            ns = dwarf_getscopes_die(&inner, &scopes);
        }
        for (int i = 0; i < ns; i++) {
            int tag = dwarf_tag(&scopes[i]);
            if (tag == DW_TAG_inlined_subroutine) {
                /* The PC's position belongs to this inlined function; its call site is the
                 * position in the function it was inlined into. */
                if (ninl < PS_NATIVE_MAX_INLINE)
                    inl[ninl++] = (struct ps_native_inline){ps_die_name(&scopes[i]), file, line, 0};
                ps_call_site(cu, &scopes[i], &file, &line);
            } else if (tag == DW_TAG_subprogram) {
                dname = ps_die_name(&scopes[i]);
                break;
            }
        }
        free(scopes);
    }

    /* The DWARF name drops GCC's clone suffixes ("foo.constprop.0" is foo); otherwise the
     * ELF symbol, which also covers code without debug info. */
    /* ELF symbols of separate debug files carry versions ("clock_nanosleep@GLIBC_2.2.5"). */
    char unversioned[256];
    const char *at = sname ? strchr(sname, '@') : NULL;
    if (at && (size_t)(at - sname) < sizeof unversioned) {
        memcpy(unversioned, sname, (size_t)(at - sname));
        unversioned[at - sname] = '\0';
        sname = unversioned;
    }
    const char *name = sname;
    if (dname) {
        size_t dl_len = strlen(dname);
        if (!sname || (strncmp(sname, dname, dl_len) == 0 && sname[dl_len] == '.'))
            name = dname;
    }
    e->sym.name = ps_dup_or_null(name);
    e->sym.file = ps_dup_or_null(ps_basename(file));
    e->sym.line = file ? line : 0;
    ps_native_classify(e->sym.name, e->sym.lib, &e->sym.is_eval, &e->sym.is_plumbing);
    if (ninl) {
        e->inl = ps_xcalloc((size_t)ninl, sizeof *e->inl);
        for (int i = 0; i < ninl; i++) {
            uint8_t ev;
            e->inl[i].name = ps_dup_or_null(inl[i].name);
            e->inl[i].file = ps_dup_or_null(ps_basename(inl[i].file));
            e->inl[i].line = inl[i].file ? inl[i].line : 0;
            ps_native_classify(e->inl[i].name, e->sym.lib, &ev, &e->inl[i].is_plumbing);
        }
        e->sym.ninlined = ninl;
        e->sym.inlined = e->inl;
    }
}

static int ps_module_sig_one(Dwfl_Module *mod, void **userdata, const char *name,
                             Dwarf_Addr start, void *arg)
{
    (void)mod;
    (void)userdata;
    uint64_t *sig = arg;
    *sig = *sig * 0x100000001b3ull + (uint64_t)start;
    for (const char *p = name; p && *p; p++)
        *sig = *sig * 0x100000001b3ull + (unsigned char)*p;
    return DWARF_CB_OK;
}

/* A hash of the module list (names and load addresses): tells a report that changed it. */
static uint64_t ps_modules_signature(Dwfl *dwfl)
{
    uint64_t sig = 0xcbf29ce484222325ull;
    dwfl_getmodules(dwfl, ps_module_sig_one, &sig, 0);
    return sig;
}

int ps_native_symtab_flush(struct ps_native_symtab *t)
{
    ps_symtab_clear(t);
    ps_symtab_free_spill(t);
    t->reset_pending = 0;
    t->generation++;
    t->refreshes++;
    dwfl_end(t->dwfl);
    t->dwfl = dwfl_begin(&ps_dwfl_callbacks);
    if (!t->dwfl) {
        ps_err_set("libdw: %s", dwfl_errmsg(-1));
        return PS_EIO;
    }
    return ps_symtab_report(t);
}

int ps_native_symtab_lookup(struct ps_native_symtab *t, uint64_t pc, int innermost,
                            struct ps_native_sym *out)
{
    uint64_t addr = innermost || pc == 0 ? pc : pc - 1;
    struct ps_symentry *e = ps_cache_find(t, addr);
    if (e) {
        t->hits++;
    } else {
        t->misses++;
        ps_find_elf_pid = t->pid;
        Dwfl_Module *m = t->dwfl ? dwfl_addrmodule(t->dwfl, addr) : NULL;
        if (!m && t->dwfl && t->refresh_generation != t->generation) {
            /* Maybe mapped since the last report (dlopen): report again, once per unwind. */
            t->refresh_generation = t->generation;
            t->refreshes++;
            uint64_t before = ps_modules_signature(t->dwfl);
            if (ps_symtab_report(t) == 0)
                m = dwfl_addrmodule(t->dwfl, addr);
            /* Entries of modules that went away may be stale: when the module list changed,
             * start over at the next stack (strings handed out stay valid until then). */
            if (ps_modules_signature(t->dwfl) != before)
                t->reset_pending = 1;
        }
        e = ps_xcalloc(1, sizeof *e);
        e->addr = addr;
        if (m) {
            ps_describe(m, addr, e);
        } else {
            e->sym.lib = ps_xstrdup("");
            e->sym.offset = addr;
        }
        ps_cache_insert(t, e);
    }
    *out = e->sym;
    out->pc = pc;
    out->offset = e->sym.offset + (pc - addr);
    return out->name ? 0 : PS_ENOSYM;
}
