/* ps_elf.h — symbols and load bias of an ELF file mapped into a target (libelf).
 *
 * Discovery opens the executable and any libpython through /proc/PID/root (or map_files for
 * deleted files), looks symbols up in .dynsym then .symtab, and turns a symbol value into a
 * runtime address with the load bias: bias = start of the offset-0 mapping - lowest PT_LOAD
 * vaddr (page-aligned); 0 for ET_EXEC.
 */
#ifndef PS_ELF_H
#define PS_ELF_H

#include <stddef.h>
#include <stdint.h>

struct ps_elf {
    int fd;
    void *elf;          /* Elf * */
    int is_exec;        /* ET_EXEC (non-PIE): bias is 0 */
    uint64_t min_vaddr; /* lowest PT_LOAD p_vaddr, rounded down to the page size */
    char *path;
};

int ps_elf_open(struct ps_elf *e, const char *path);
void ps_elf_close(struct ps_elf *e);

struct ps_elf_sym {
    const char *name;   /* in: symbol name */
    uint64_t value;     /* out: st_value (0 if not found) */
    uint64_t size;      /* out: st_size */
    int found;          /* out: 1 = .dynsym, 2 = .symtab, 0 = not found */
};
/* Looks every symbol up in one pass over .dynsym, then .symtab for those still missing.
 * Returns the number found (>= 0) or a negative PS_E* code. Only defined symbols count. */
int ps_elf_lookup(struct ps_elf *e, struct ps_elf_sym *syms, int n);

/* Load bias from the start address of the file's offset-0 mapping. */
uint64_t ps_elf_bias(const struct ps_elf *e, uint64_t offset0_start);

/* Reads initialized bytes at a virtual address from the file itself (PT_LOAD file contents),
 * e.g. Py_Version or _Py_DebugOffsets without touching the process. Bytes past p_filesz (.bss)
 * are PS_ERANGE. */
int ps_elf_read_vaddr(struct ps_elf *e, uint64_t vaddr, void *buf, size_t len);

#endif
