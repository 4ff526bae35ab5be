/* elfsym.c — libelf access to the executable / libpython of a target: symbol lookup
 * (.dynsym, then .symtab), the lowest PT_LOAD address for the load bias, and reads of
 * initialized data straight from the file.
 *
 * Used only by python/runtime.c during discovery; never on the sampling hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ps_elf.h"
#include "ps_util.h"

int ps_elf_open(struct ps_elf *e, const char *path)
{
    memset(e, 0, sizeof *e);
    e->fd = -1;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return PS_EELF;
    e->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (e->fd < 0) {
        int err = errno;
        ps_err_set("cannot open %s: %s", path, strerror(err));
        return err == EACCES || err == EPERM ? PS_EPERM : PS_EELF;
    }
    Elf *elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
    if (!elf || elf_kind(elf) != ELF_K_ELF) {
        if (elf)
            elf_end(elf);
        close(e->fd);
        e->fd = -1;
        ps_err_set("%s is not an ELF file", path);
        return PS_EELF;
    }
    e->elf = elf;
    e->path = ps_xstrdup(path);
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf, &eh)) {
        ps_elf_close(e);
        return PS_EELF;
    }
    e->is_exec = eh.e_type == ET_EXEC;
    size_t nph = 0;
    elf_getphdrnum(elf, &nph);
    uint64_t lo = UINT64_MAX;
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr < lo)
            lo = ph.p_vaddr;
    }
    if (lo == UINT64_MAX) {
        ps_elf_close(e);
        return PS_EELF;
    }
    long page = sysconf(_SC_PAGESIZE);
    e->min_vaddr = lo & ~((uint64_t)(page > 0 ? page : 4096) - 1);
    return 0;
}

void ps_elf_close(struct ps_elf *e)
{
    if (e->elf)
        elf_end(e->elf);
    if (e->fd >= 0)
        close(e->fd);
    free(e->path);
    memset(e, 0, sizeof *e);
    e->fd = -1;
}

static int ps_elf_scan(Elf *elf, Elf_Scn *scn, struct ps_elf_sym *syms, int n, int tag)
{
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_entsize == 0)
        return 0;
    Elf_Data *data = elf_getdata(scn, NULL);
    if (!data)
        return 0;
    size_t count = sh.sh_size / sh.sh_entsize;
    int found = 0;
    for (size_t i = 0; i < count; i++) {
        GElf_Sym s;
        if (!gelf_getsym(data, (int)i, &s) || s.st_shndx == SHN_UNDEF || s.st_name == 0)
            continue;
        const char *name = elf_strptr(elf, sh.sh_link, s.st_name);
        if (!name)
            continue;
        for (int k = 0; k < n; k++) {
            if (!syms[k].found && strcmp(syms[k].name, name) == 0) {
                syms[k].value = s.st_value;
                syms[k].size = s.st_size;
                syms[k].found = tag;
                found++;
                break;
            }
        }
    }
    return found;
}

int ps_elf_lookup(struct ps_elf *e, struct ps_elf_sym *syms, int n)
{
    int found = 0;
    for (int k = 0; k < n; k++) {
        syms[k].value = syms[k].size = 0;
        syms[k].found = 0;
    }
    static const GElf_Word kinds[2] = {SHT_DYNSYM, SHT_SYMTAB};
    for (int pass = 0; pass < 2 && found < n; pass++) {
        Elf_Scn *scn = NULL;
        while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
            GElf_Shdr sh;
            if (gelf_getshdr(scn, &sh) && sh.sh_type == kinds[pass])
                found += ps_elf_scan(e->elf, scn, syms, n, pass + 1);
        }
    }
    return found;
}

uint64_t ps_elf_bias(const struct ps_elf *e, uint64_t offset0_start)
{
    if (e->is_exec)
        return 0;
    return offset0_start - e->min_vaddr;
}

int ps_elf_read_vaddr(struct ps_elf *e, uint64_t vaddr, void *buf, size_t len)
{
    size_t nph = 0;
    elf_getphdrnum(e->elf, &nph);
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
            continue;
        if (vaddr < ph.p_vaddr || vaddr - ph.p_vaddr >= ph.p_memsz)
            continue;
        uint64_t off = vaddr - ph.p_vaddr;
        if (off + len > ph.p_filesz)
            return PS_ERANGE;
        ssize_t r = pread(e->fd, buf, len, (off_t)(ph.p_offset + off));
        return r == (ssize_t)len ? 0 : PS_EIO;
    }
    return PS_ERANGE;
}
