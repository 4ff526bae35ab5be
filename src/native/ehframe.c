/* ehframe.c — where a module's unwind table lies in the target's memory (for unwind.c): the
 * ELF header and program headers of the module are read from its first mapping, and the
 * PT_GNU_EH_FRAME segment gives the .eh_frame_hdr binary-search table that libunwind walks.
 * No file is opened, so a target in a container (another root), or one whose library was
 * replaced or deleted on disk, is unwound with the code it really runs.
 */
#include <elf.h>
#include <string.h>
#include <unistd.h>

#include "ps_native.h"
#include "ps_util.h"

/* DWARF pointer encodings (LSB, "DWARF Extensions", .eh_frame_hdr). */
#define PS_DW_EH_PE_omit 0xff
#define PS_DW_EH_PE_absptr 0x00
#define PS_DW_EH_PE_udata2 0x02
#define PS_DW_EH_PE_udata4 0x03
#define PS_DW_EH_PE_udata8 0x04
#define PS_DW_EH_PE_sdata2 0x0a
#define PS_DW_EH_PE_sdata4 0x0b
#define PS_DW_EH_PE_sdata8 0x0c
#define PS_DW_EH_PE_datarel 0x30
#define PS_EH_TABLE_MAX (1u << 24)     /* entries; far above any real library */
#define PS_EH_MAX_PHDRS 256

/* Bytes of a value in encoding `enc` (its low nibble), 0 if not supported here. */
static int ps_enc_size(uint8_t enc)
{
    switch (enc & 0x0f) {
    case PS_DW_EH_PE_absptr:
    case PS_DW_EH_PE_udata8:
    case PS_DW_EH_PE_sdata8:
        return 8;
    case PS_DW_EH_PE_udata4:
    case PS_DW_EH_PE_sdata4:
        return 4;
    case PS_DW_EH_PE_udata2:
    case PS_DW_EH_PE_sdata2:
        return 2;
    default:
        return 0;
    }
}

/* The mapping at file offset 0 of the file that `m` (index i in maps) maps: the ELF header is
 * there. Mappings of one file are adjacent and share path and inode. */
static const struct ps_map *ps_first_mapping(const struct ps_maps *maps, int i)
{
    const struct ps_map *m = &maps->v[i];
    for (int k = i; k >= 0; k--) {
        const struct ps_map *x = &maps->v[k];
        if (x->inode != m->inode || strcmp(x->path, m->path) != 0)
            break;
        if (x->offset == 0)
            return x;
    }
    return NULL;
}

int ps_native_unwtab_find(const struct ps_maps *maps, uint64_t ip, ps_native_read_fn rd,
                          void *arg, struct ps_native_unwtab *out)
{
    memset(out, 0, sizeof *out);
    const struct ps_map *m = ps_maps_find(maps, ip);
    if (!m) {
        ps_err_set("0x%llx is not mapped", (unsigned long long)ip);
        return PS_EFAULT;
    }
    out->map_lo = m->start;
    out->map_hi = m->end;
    if (!m->path[0] || (m->path[0] == '[' && strcmp(m->path, "[vdso]") != 0)) {
        ps_err_set("0x%llx is in an anonymous mapping", (unsigned long long)ip);
        return PS_ENOSYM;
    }
    const struct ps_map *base = ps_first_mapping(maps, (int)(m - maps->v));
    if (!base) {
        ps_err_set("%s: no mapping of its ELF header", m->path);
        return PS_ENOSYM;
    }
    Elf64_Ehdr eh;
    if (rd(arg, base->start, &eh, sizeof eh) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
        eh.e_phnum == 0 || eh.e_phnum > PS_EH_MAX_PHDRS ||
        eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > base->end - base->start) {
        ps_err_set("%s: no ELF header in its first mapping", m->path);
        return PS_ENOSYM;
    }
    Elf64_Phdr ph[PS_EH_MAX_PHDRS];
    if (rd(arg, base->start + eh.e_phoff, ph, sizeof(Elf64_Phdr) * eh.e_phnum) < 0) {
        ps_err_set("%s: program headers unreadable", m->path);
        return PS_ENOSYM;
    }
    /* The first mapping holds the PT_LOAD segment at file offset 0: the load bias follows. */
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t page = (uint64_t)(pg > 0 ? pg : 4096);
    const Elf64_Phdr *first = NULL, *eh_frame = NULL;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD) {
            if (!first || ph[i].p_offset < first->p_offset)
                first = &ph[i];
            lo = PS_MIN(lo, ph[i].p_vaddr & ~(page - 1));
            hi = PS_MAX(hi, ph[i].p_vaddr + ph[i].p_memsz);
        } else if (ph[i].p_type == PT_GNU_EH_FRAME) {
            eh_frame = &ph[i];
        }
    }
    if (!first || first->p_offset >= page) {
        ps_err_set("%s: no loadable segment at offset 0", m->path);
        return PS_ENOSYM;
    }
    uint64_t bias = base->start - (first->p_vaddr & ~(page - 1));
    out->lo = bias + lo;
    out->hi = bias + hi;
    if (ip < out->lo || ip >= out->hi) {
        ps_err_set("%s: 0x%llx lies outside its segments", m->path, (unsigned long long)ip);
        return PS_ENOSYM;
    }
    if (!eh_frame || eh_frame->p_memsz < 4) {
        ps_err_set("%s has no .eh_frame_hdr", m->path);
        return PS_ENOSYM;
    }
    /* .eh_frame_hdr: version, eh_frame_ptr_enc, fde_count_enc, table_enc, eh_frame_ptr,
     * fde_count, then the sorted table of (initial location, FDE address) pairs, each a
     * signed 4-byte offset from the start of .eh_frame_hdr. */
    uint64_t hdr = bias + eh_frame->p_vaddr;
    uint8_t h[4 + 8 + 8];
    size_t avail = (size_t)PS_MIN((uint64_t)sizeof h, eh_frame->p_memsz);
    if (rd(arg, hdr, h, avail) < 0) {
        ps_err_set("%s: .eh_frame_hdr unreadable", m->path);
        return PS_ENOSYM;
    }
    int ptr_size = ps_enc_size(h[1]), count_size = ps_enc_size(h[2]);
    if (h[0] != 1 || h[1] == PS_DW_EH_PE_omit || h[2] == PS_DW_EH_PE_omit || !ptr_size ||
        !count_size || h[3] != (PS_DW_EH_PE_datarel | PS_DW_EH_PE_sdata4) ||
        (size_t)(4 + ptr_size + count_size) > avail) {
        ps_err_set("%s: .eh_frame_hdr has no binary-search table", m->path);
        return PS_ENOSYM;
    }
    uint64_t count = 0;
    memcpy(&count, h + 4 + ptr_size, (size_t)count_size); /* little-endian (x86-64, aarch64) */
    uint64_t table_off = 4 + (uint64_t)ptr_size + (uint64_t)count_size;
    if (count == 0 || count > PS_EH_TABLE_MAX || table_off + count * 8 > eh_frame->p_memsz) {
        ps_err_set("%s: .eh_frame_hdr table of %llu entries does not fit its segment", m->path,
                   (unsigned long long)count);
        return PS_ENOSYM;
    }
    out->hdr = hdr;
    out->table = hdr + table_off;
    out->count = count;
    return 0;
}
