/* test_native_root.c — Criterion suites for the parts of src/native that must not depend on
 * pysample's own view of the target's files: unwind tables found in memory (ehframe.c, checked
 * against the dynamic linker's own view of this process and on synthetic images), data symbols
 * never naming a PC, the unnamed start-up frames a merge hides, and the maps-path views of
 * proc.c.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ps_native.h"
#include "ps_proc.h"
#include "ps_util.h"

/* ---- unwind tables of this process ------------------------------------------------------- */

static int nr_read_self(void *arg, uint64_t addr, void *buf, size_t len)
{
    (void)arg;
    memcpy(buf, (const void *)(uintptr_t)addr, len);
    return 0;
}

struct nr_want {
    uint64_t pc;
    uint64_t hdr;     /* PT_GNU_EH_FRAME of the object holding pc, as the dynamic linker sees it */
    uint64_t lo, hi;
};

static int nr_find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct nr_want *w = arg;
    uint64_t lo = UINT64_MAX, hi = 0, hdr = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            lo = PS_MIN(lo, info->dlpi_addr + (ph->p_vaddr & ~(uint64_t)4095));
            hi = PS_MAX(hi, info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
        } else if (ph->p_type == PT_GNU_EH_FRAME) {
            hdr = info->dlpi_addr + ph->p_vaddr;
        }
    }
    if (w->pc >= lo && w->pc < hi) {
        w->hdr = hdr;
        w->lo = lo;
        w->hi = hi;
        return 1;
    }
    return 0;
}

static void nr_check_pc(const struct ps_maps *maps, uint64_t pc, const char *what)
{
    struct nr_want w = {pc, 0, 0, 0};
    cr_assert(dl_iterate_phdr(nr_find_object, &w), "%s: no object holds it", what);
    cr_assert_neq(w.hdr, 0, "%s: its object has no PT_GNU_EH_FRAME", what);
    struct ps_native_unwtab t;
    int rc = ps_native_unwtab_find(maps, pc, nr_read_self, NULL, &t);
    cr_assert_eq(rc, 0, "%s: %s", what, ps_err_detail());
    cr_expect_eq(t.hdr, w.hdr, "%s: .eh_frame_hdr at 0x%llx, the dynamic linker says 0x%llx",
                 what, (unsigned long long)t.hdr, (unsigned long long)w.hdr);
    cr_expect_eq(t.lo, w.lo, "%s: range start", what);
    cr_expect_eq(t.hi, w.hi, "%s: range end", what);
    cr_expect(pc >= t.lo && pc < t.hi, "%s: pc inside the range", what);
    /* The table: fde_count as written in the header (udata4 in every toolchain's output),
     * sorted by initial location. */
    const uint8_t *h = (const uint8_t *)(uintptr_t)t.hdr;
    cr_expect_eq(h[0], 1);
    cr_expect_eq(h[3], 0x3b);
    cr_expect_eq(t.table, t.hdr + 12);
    uint32_t count;
    memcpy(&count, h + 8, 4);
    cr_expect_eq(t.count, count);
    const int32_t *e = (const int32_t *)(uintptr_t)t.table;
    for (uint64_t i = 1; i < t.count; i++)
        cr_assert_leq(e[2 * (i - 1)], e[2 * i], "%s: table sorted", what);
    /* The entry for pc: the last initial location at or below it lies in the range too. */
    int64_t rel = (int64_t)(pc - t.hdr);
    uint64_t k = 0;
    while (k + 1 < t.count && e[2 * (k + 1)] <= rel)
        k++;
    cr_expect_leq(e[2 * k], rel, "%s: an FDE starts at or below the pc", what);
}

static int nr_marker(int x)
{
    return x * 3 + 1;
}

Test(native_unwtab, matches_the_dynamic_linker)
{
    struct ps_maps maps;
    cr_assert_eq(ps_maps_read(getpid(), &maps), 0);
    nr_check_pc(&maps, (uint64_t)(uintptr_t)&nr_marker, "this binary");
    nr_check_pc(&maps, (uint64_t)(uintptr_t)&qsort, "libc's qsort");
    nr_check_pc(&maps, (uint64_t)(uintptr_t)&dl_iterate_phdr, "dl_iterate_phdr");
    ps_maps_release(&maps);
    (void)nr_marker(1);
}

Test(native_unwtab, anonymous_and_unmapped)
{
    struct ps_maps maps;
    /* Between two inaccessible pages, so that the kernel cannot merge it with a neighbouring
     * anonymous mapping (which would move the start reported). */
    uint8_t *area = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(area, MAP_FAILED);
    void *anon = area + 4096;
    cr_assert_eq(mprotect(anon, 4096, PROT_READ | PROT_WRITE), 0);
    cr_assert_eq(ps_maps_read(getpid(), &maps), 0);
    struct ps_native_unwtab t;
    cr_expect_eq(ps_native_unwtab_find(&maps, (uint64_t)(uintptr_t)anon + 8, nr_read_self, NULL,
                                       &t),
                 PS_ENOSYM);
    cr_expect_eq(t.map_lo, (uint64_t)(uintptr_t)anon, "the mapping is reported");
    cr_expect_eq(ps_native_unwtab_find(&maps, 0x10, nr_read_self, NULL, &t), PS_EFAULT);
    ps_maps_release(&maps);
    munmap(area, 3 * 4096);
}

/* ---- unwind tables of a synthetic image -------------------------------------------------- */

/* One file mapped at 0x10000 (offset 0, r--) and 0x11000 (offset 0x1000, r-x), its ELF
 * header, program headers and .eh_frame_hdr in a buffer that the reader serves. */
#define NR_BASE 0x10000u
struct nr_image {
    uint8_t mem[0x3000];
};

static int nr_read_image(void *arg, uint64_t addr, void *buf, size_t len)
{
    struct nr_image *im = arg;
    if (addr < NR_BASE || addr + len > NR_BASE + sizeof im->mem)
        return -1;
    memcpy(buf, im->mem + (addr - NR_BASE), len);
    return 0;
}

static void nr_build(struct nr_image *im, uint8_t table_enc, uint32_t count, int with_eh)
{
    memset(im, 0, sizeof *im);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)im->mem;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_type = ET_DYN;
    eh->e_phoff = sizeof *eh;
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 3;
    Elf64_Phdr *ph = (Elf64_Phdr *)(im->mem + sizeof *eh);
    ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0, .p_vaddr = 0, .p_filesz = 0x1000,
                         .p_memsz = 0x1000};
    ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0x1000, .p_vaddr = 0x1000,
                         .p_filesz = 0x2000, .p_memsz = 0x2000};
    ph[2] = (Elf64_Phdr){.p_type = with_eh ? PT_GNU_EH_FRAME : PT_NOTE, .p_offset = 0x800,
                         .p_vaddr = 0x800, .p_filesz = 12 + 8 * count, .p_memsz = 12 + 8 * count};
    uint8_t *h = im->mem + 0x800;
    h[0] = 1;
    h[1] = 0x1b;      /* pcrel | sdata4 */
    h[2] = 0x03;      /* udata4 */
    h[3] = table_enc;
    memcpy(h + 8, &count, 4);
}

static void nr_maps(struct ps_maps *m)
{
    static const char text[] =
        "00010000-00011000 r--p 00000000 08:01 77 /opt/app/lib/libx.so\n"
        "00011000-00013000 r-xp 00001000 08:01 77 /opt/app/lib/libx.so\n";
    cr_assert_eq(ps_maps_parse(text, sizeof text - 1, m), 0);
}

Test(native_unwtab, synthetic_image)
{
    struct nr_image im;
    struct ps_maps maps;
    struct ps_native_unwtab t;
    nr_maps(&maps);

    nr_build(&im, 0x3b, 5, 1);
    cr_assert_eq(ps_native_unwtab_find(&maps, 0x11234, nr_read_image, &im, &t), 0, "%s",
                 ps_err_detail());
    cr_expect_eq(t.hdr, 0x10800);
    cr_expect_eq(t.table, 0x1080c);
    cr_expect_eq(t.count, 5);
    cr_expect_eq(t.lo, 0x10000);
    cr_expect_eq(t.hi, 0x13000);

    nr_build(&im, 0x1b, 5, 1); /* a table that cannot be binary-searched */
    cr_expect_eq(ps_native_unwtab_find(&maps, 0x11234, nr_read_image, &im, &t), PS_ENOSYM);
    cr_expect(strstr(ps_err_detail(), "binary-search") != NULL, "%s", ps_err_detail());

    nr_build(&im, 0x3b, 5, 0); /* no PT_GNU_EH_FRAME */
    cr_expect_eq(ps_native_unwtab_find(&maps, 0x11234, nr_read_image, &im, &t), PS_ENOSYM);
    cr_expect(strstr(ps_err_detail(), "no .eh_frame_hdr") != NULL, "%s", ps_err_detail());

    nr_build(&im, 0x3b, 1000000, 1); /* a count the segment cannot hold */
    ((Elf64_Phdr *)(im.mem + sizeof(Elf64_Ehdr)))[2].p_memsz = 64;
    cr_expect_eq(ps_native_unwtab_find(&maps, 0x11234, nr_read_image, &im, &t), PS_ENOSYM);

    nr_build(&im, 0x3b, 5, 1); /* no ELF header where the file's first mapping is */
    im.mem[1] = 'X';
    cr_expect_eq(ps_native_unwtab_find(&maps, 0x11234, nr_read_image, &im, &t), PS_ENOSYM);
    ps_maps_release(&maps);
}

/* ---- symbols ----------------------------------------------------------------------------- */

int nr_data_object[64] = {1};

Test(native_symbolize, data_symbols_never_name_a_pc)
{
    struct ps_native_symtab *t = ps_native_symtab_new(getpid());
    cr_assert_not_null(t, "%s", ps_err_detail());
    struct ps_native_sym s;
    uint64_t pc = (uint64_t)(uintptr_t)&nr_data_object[10];
    ps_native_symtab_lookup(t, pc, 1, &s);
    cr_expect(s.name == NULL || strcmp(s.name, "nr_data_object") != 0,
              "a PC inside a data object was named %s", s.name);
    /* A function is still named after a flush of everything (what an exec asks for). */
    cr_assert_eq(ps_native_symtab_flush(t), 0, "%s", ps_err_detail());
    cr_assert_eq(ps_native_symtab_lookup(t, (uint64_t)(uintptr_t)&nr_marker + 1, 1, &s), 0);
    cr_expect_str_eq(s.name, "nr_marker");
    ps_native_symtab_free(t);
}

/* ---- merge: unnamed start-up frames ------------------------------------------------------ */

static struct ps_native_sym nr_sym(const char *name, const char *lib)
{
    struct ps_native_sym s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.lib = lib;
    ps_native_classify(name, lib, &s.is_eval, &s.is_plumbing);
    return s;
}

Test(native_merge, unnamed_start_up_is_hidden)
{
    static struct ps_code c_module = {.name = "<module>", .file = "a.py"};
    struct ps_py_frame py[1] = {{&c_module, 3, 1}};
    struct ps_native_sym s[6];
    int n = 0;
    s[n++] = nr_sym("clock_nanosleep", "libc.so.6");
    s[n++] = nr_sym(NULL, "libc.so.6");            /* an internal libc function: kept */
    s[n++] = nr_sym("_PyEval_EvalFrameDefault", "python3.14");
    s[n++] = nr_sym("Py_BytesMain", "python3.14");
    s[n++] = nr_sym(NULL, "libc.so.6");            /* __libc_start_call_main, unnamed */
    s[n++] = nr_sym("__libc_start_main", "libc.so.6");
    struct ps_merged_frame m[16];
    struct ps_merge_stats st;
    int k = ps_native_merge(s, n, 1, py, 1, 0, m, 16, &st);
    cr_assert_eq(k, 3);
    cr_expect_str_eq(m[0].name, "clock_nanosleep");
    cr_expect_eq(m[1].kind, PS_MERGED_NATIVE);
    cr_expect_null(m[1].name, "the unnamed frame inside the stack stays");
    cr_expect_eq(m[2].kind, PS_MERGED_PYTHON, "<module> is the outermost frame");
    cr_expect_eq(st.hidden, 3);
    /* An incomplete stack has no known start: nothing unnamed is hidden. */
    k = ps_native_merge(s, n - 1, 0, py, 1, 0, m, 16, &st);
    cr_expect_eq(k, 4);
    cr_expect_null(m[3].name);
    /* --all shows everything. */
    k = ps_native_merge(s, n, 1, py, 1, 1, m, 16, &st);
    cr_expect_eq(k, 6);
}

/* ---- proc: paths as the target names them ------------------------------------------------ */

Test(native_root, own_root_leaves_paths_alone)
{
    char buf[256];
    const char *p = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    cr_expect_eq(ps_proc_target_view(getpid(), p), p);
    ps_proc_root_path(getpid(), p, buf, sizeof buf);
    char want[256];
    snprintf(want, sizeof want, "/proc/%d/root%s", (int)getpid(), p);
    cr_expect_str_eq(buf, want);
}

Test(native_root, tracer_of_an_untraced_thread)
{
    pid_t tracer = -1;
    cr_assert_eq(ps_proc_tracer(getpid(), getpid(), &tracer), 0);
    cr_expect_eq(tracer, 0);
}
