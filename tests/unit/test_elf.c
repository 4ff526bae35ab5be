/* test_elf.c — Criterion suite `elf`: symbol lookup, load bias and file reads (elf/elfsym.c) on
 * the interpreters this machine guarantees: pyenv's shared libpython3.12 (ET_DYN, with .symtab)
 * and Debian's static, non-PIE /usr/bin/python3.11 (ET_EXEC, stripped). Expected values come
 * from independent tools (nm, readelf, the dynamic loader, the interpreter itself), never from
 * reading the ELF with the code under test.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ps_elf.h"
#include "ps_proc.h"
#include "ps_util.h"

#define LIBPY312 "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"
#define PY311 "/usr/bin/python3.11"

static void need(const char *path)
{
    cr_assert_eq(access(path, R_OK), 0,
                 "%s is missing or unreadable; this machine is supposed to provide it (pyenv "
                 "3.12.1 build / Debian python3.11)",
                 path);
}

/* Runs `cmd` and returns its whole stdout (heap), failing the test if it does not run. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen(%s)", cmd);
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        ps_sb_add(&sb, buf, n);
    int st = pclose(p);
    cr_assert_eq(st, 0, "`%s` failed (status %d)", cmd, st);
    ps_sb_addc(&sb, '\0');
    return sb.buf;
}

/* The value nm prints for a defined symbol `name` ("ADDR TYPE NAME" lines); 0 if absent. */
static int nm_value(const char *nm_out, const char *name, uint64_t *value)
{
    const char *p = nm_out;
    size_t nl = strlen(name);
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        /* name is the last field, preceded by a space */
        if (len > nl + 1 && p[len - nl - 1] == ' ' && memcmp(p + len - nl, name, nl) == 0) {
            unsigned long long v;
            if (sscanf(p, "%llx", &v) == 1) {
                *value = v;
                return 1;
            }
        }
        p = e ? e + 1 : p + len;
    }
    return 0;
}

static char *nm(const char *flags, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "nm %s --defined-only '%s' 2>/dev/null", flags, path);
    return run(cmd);
}

/* ---- libpython3.12: ET_DYN ----------------------------------------------------------------- */

Test(elf, libpython312_symbols)
{
    need(LIBPY312);
    char *dyn = nm("-D", LIBPY312), *all = nm("", LIBPY312);
    uint64_t v_rt = 0, v_ver = 0, v_code = 0, v_version = 0, junk;
    cr_assert(nm_value(dyn, "_PyRuntime", &v_rt), "nm -D does not list _PyRuntime");
    cr_assert(nm_value(dyn, "Py_Version", &v_ver));
    cr_assert(nm_value(dyn, "PyCode_Type", &v_code));
    /* The static sys.version buffer is only in .symtab (gcc calls it `version` here; some
     * builds name it `version.0`). */
    cr_assert(!nm_value(dyn, "version", &junk), "`version` is not expected in .dynsym");
    cr_assert(nm_value(all, "version", &v_version), "nm does not list `version`");

    struct ps_elf e;
    int rc = ps_elf_open(&e, LIBPY312);
    cr_assert_eq(rc, 0, "ps_elf_open: %d (%s)", rc, ps_strerror(rc));
    cr_expect_eq(e.is_exec, 0, "a shared library is ET_DYN");
    struct ps_elf_sym syms[] = {
        {"_PyRuntime", 0, 0, 0},  {"Py_Version", 0, 0, 0},          {"PyCode_Type", 0, 0, 0},
        {"version", 0, 0, 0},     {"pysample_no_such_symbol", 0, 0, 0},
        {"version.0", 0, 0, 0},
    };
    int found = ps_elf_lookup(&e, syms, (int)PS_ARRAY_LEN(syms));
    cr_expect_eq(found, 4, "found %d", found);
    cr_expect_eq(syms[0].found, 1, "_PyRuntime from .dynsym");
    cr_expect_eq(syms[0].value, v_rt, "_PyRuntime 0x%llx, nm says 0x%llx",
                 (unsigned long long)syms[0].value, (unsigned long long)v_rt);
    cr_expect_gt(syms[0].size, 1000, "_PyRuntime size %llu", (unsigned long long)syms[0].size);
    cr_expect_eq(syms[1].found, 1);
    cr_expect_eq(syms[1].value, v_ver);
    cr_expect_eq(syms[1].size, 8, "Py_Version is a const unsigned long (readelf -s: 8)");
    cr_expect_eq(syms[2].value, v_code);
    cr_expect_eq(syms[3].found, 2, "`version` only in .symtab");
    cr_expect_eq(syms[3].value, v_version);
    cr_expect_eq(syms[4].found, 0);
    cr_expect_eq(syms[4].value, 0);
    cr_expect_eq(syms[5].found, 0, "this build has no version.0");

    /* Lookups are repeatable and reset their outputs. */
    syms[4].found = 9;
    syms[4].value = 123;
    cr_expect_eq(ps_elf_lookup(&e, syms, (int)PS_ARRAY_LEN(syms)), 4);
    cr_expect_eq(syms[4].found, 0);
    cr_expect_eq(syms[4].value, 0);
    ps_elf_close(&e);
    free(dyn);
    free(all);
}

Test(elf, libpython312_read_vaddr)
{
    need(LIBPY312);
    struct ps_elf e;
    cr_assert_eq(ps_elf_open(&e, LIBPY312), 0);
    struct ps_elf_sym syms[] = {{"Py_Version", 0, 0, 0}, {"version", 0, 0, 0}};
    cr_assert_eq(ps_elf_lookup(&e, syms, 2), 2);
    uint32_t hex = 0;
    int rc = ps_elf_read_vaddr(&e, syms[0].value, &hex, 4);
    cr_assert_eq(rc, 0, "read Py_Version: %d", rc);
    cr_expect_eq(hex, 0x030c01f0, "Py_Version 0x%08x, want 0x030c01f0 (3.12.1 final)", hex);
    /* `version` is .bss: nothing in the file backs it. */
    char buf[8];
    cr_expect_eq(ps_elf_read_vaddr(&e, syms[1].value, buf, sizeof buf), PS_ERANGE);
    /* An address in no PT_LOAD segment. */
    cr_expect_eq(ps_elf_read_vaddr(&e, 0x7fffffff0000ull, buf, 4), PS_ERANGE);
    ps_elf_close(&e);
}

/* The load bias formula against the dynamic loader: map the library, find its offset-0
 * mapping in /proc/self/maps, and the bias plus the symbol value must be where dlsym says. */
Test(elf, libpython312_bias_matches_the_loader)
{
    need(LIBPY312);
    char *lr = run("readelf -lW '" LIBPY312 "' | awk '$1 == \"LOAD\" {print $3; exit}'");
    unsigned long long first_load = strtoull(lr, NULL, 16);
    free(lr);

    struct ps_elf e;
    cr_assert_eq(ps_elf_open(&e, LIBPY312), 0);
    cr_expect_eq(e.min_vaddr, first_load & ~0xfffull, "min_vaddr 0x%llx, readelf 0x%llx",
                 (unsigned long long)e.min_vaddr, first_load);
    struct ps_elf_sym syms[] = {{"_PyRuntime", 0, 0, 0}, {"PyCode_Type", 0, 0, 0}};
    cr_assert_eq(ps_elf_lookup(&e, syms, 2), 2);
    cr_expect_eq(ps_elf_bias(&e, 0x7f0000000000ull), 0x7f0000000000ull - e.min_vaddr);

    void *h = dlopen(LIBPY312, RTLD_LAZY | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen: %s", dlerror());
    void *rt = dlsym(h, "_PyRuntime"), *ct = dlsym(h, "PyCode_Type");
    cr_assert_not_null(rt);
    struct ps_maps m;
    cr_assert_eq(ps_maps_read(getpid(), &m), 0);
    const struct ps_map *in = ps_maps_find(&m, (uint64_t)(uintptr_t)rt);
    cr_assert_not_null(in);
    /* The loader's offset-0 mapping is the last one of this file at or below the data; libelf
     * (ps_elf_open above maps the file too) may have put another offset-0 mapping elsewhere. */
    const struct ps_map *m0 = NULL;
    for (int i = 0; i < m.n; i++)
        if (m.v[i].offset == 0 && m.v[i].inode == in->inode &&
            strcmp(m.v[i].path, in->path) == 0 && m.v[i].start <= in->start)
            if (!m0 || m.v[i].start > m0->start)
                m0 = &m.v[i];
    cr_assert_not_null(m0, "no offset-0 mapping of %s", in->path);
    uint64_t bias = ps_elf_bias(&e, m0->start);
    cr_expect_eq(bias + syms[0].value, (uint64_t)(uintptr_t)rt,
                 "bias 0x%llx + _PyRuntime 0x%llx != dlsym 0x%llx", (unsigned long long)bias,
                 (unsigned long long)syms[0].value, (unsigned long long)(uintptr_t)rt);
    cr_expect_eq(bias + syms[1].value, (uint64_t)(uintptr_t)ct);
    ps_maps_release(&m);
    dlclose(h);
    ps_elf_close(&e);
}

/* ---- /usr/bin/python3.11: ET_EXEC, stripped ------------------------------------------------ */

Test(elf, python311_exec)
{
    need(PY311);
    char *dyn = nm("-D", PY311);
    uint64_t v_rt = 0, v_ver = 0;
    cr_assert(nm_value(dyn, "_PyRuntime", &v_rt), "nm -D does not list _PyRuntime");
    cr_assert(nm_value(dyn, "Py_Version", &v_ver));
    char *lr = run("readelf -lW '" PY311 "' | awk '$1 == \"LOAD\" {print $3; exit}'");
    unsigned long long first_load = strtoull(lr, NULL, 16);
    free(lr);

    struct ps_elf e;
    int rc = ps_elf_open(&e, PY311);
    cr_assert_eq(rc, 0, "ps_elf_open: %d (%s)", rc, ps_strerror(rc));
    cr_expect_eq(e.is_exec, 1, "non-PIE executable is ET_EXEC");
    cr_expect_eq(e.min_vaddr, first_load, "min_vaddr 0x%llx, readelf 0x%llx",
                 (unsigned long long)e.min_vaddr, first_load);
    /* ET_EXEC: symbol values are addresses, whatever the mapping start. */
    cr_expect_eq(ps_elf_bias(&e, first_load), 0);
    cr_expect_eq(ps_elf_bias(&e, 0x7f1234000000ull), 0);

    struct ps_elf_sym syms[] = {{"_PyRuntime", 0, 0, 0}, {"Py_Version", 0, 0, 0},
                                {"version", 0, 0, 0}};
    cr_expect_eq(ps_elf_lookup(&e, syms, 3), 2, "stripped: no .symtab for `version`");
    cr_expect_eq(syms[0].found, 1);
    cr_expect_eq(syms[0].value, v_rt, "_PyRuntime 0x%llx, nm -D says 0x%llx",
                 (unsigned long long)syms[0].value, (unsigned long long)v_rt);
    cr_expect_eq(syms[1].value, v_ver);
    cr_expect_eq(syms[2].found, 0);

    /* Py_Version from the file equals what the interpreter reports about itself. */
    char *hv = run(PY311 " -S -c 'import sys; print(hex(sys.hexversion))'");
    uint32_t want = (uint32_t)strtoul(hv, NULL, 16), got = 0;
    free(hv);
    cr_assert_eq(ps_elf_read_vaddr(&e, syms[1].value, &got, 4), 0);
    cr_expect_eq(got, want, "Py_Version 0x%08x, sys.hexversion 0x%08x", got, want);
    cr_expect_eq(got >> 16, 0x030b);
    ps_elf_close(&e);
    free(dyn);
}

/* ---- not ELF ------------------------------------------------------------------------------- */

Test(elf, not_elf)
{
    struct ps_elf e;
    char path[] = "/tmp/pysample-elf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char text[] = "#!/bin/sh\necho this is not an ELF file\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    cr_expect_eq(ps_elf_open(&e, path), PS_EELF);
    cr_expect_eq(e.fd, -1, "descriptor left open");

    /* Only the ELF header of a real file: no program headers to load. */
    need(PY311);
    FILE *src = fopen(PY311, "rb");
    cr_assert_not_null(src);
    unsigned char hdr[64];
    cr_assert_eq(fread(hdr, 1, sizeof hdr, src), sizeof hdr);
    fclose(src);
    FILE *dst = fopen(path, "wb");
    cr_assert_not_null(dst);
    cr_assert_eq(fwrite(hdr, 1, sizeof hdr, dst), sizeof hdr);
    fclose(dst);
    cr_expect_eq(ps_elf_open(&e, path), PS_EELF, "a bare ELF header is not usable");
    unlink(path);

    cr_expect_eq(ps_elf_open(&e, "/nonexistent/pysample/libpython.so"), PS_EELF);
    cr_expect_eq(ps_elf_open(&e, "/proc/self/status"), PS_EELF);
}
