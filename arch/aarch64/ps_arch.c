/* ps_arch.c (aarch64) — register numbers and the ptrace register read for 64-bit Arm.
 *
 * Used by src/native/unwind.c through include/ps_arch.h. libunwind numbers come from
 * libunwind-aarch64.h (UNW_AARCH64_X29 29, SP 31, PC 32); DWARF numbers from AADWARF64
 * (x29 29, sp 31, pc 32; the CIE return-address column is x30, 30), which libdw uses as well.
 */
#include <elf.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "ps_arch.h"
#include "ps_util.h"

const struct ps_arch ps_arch = {
    .name = "aarch64",
    .unw_pc = 32,
    .unw_sp = 31,
    .unw_fp = 29,
    .dwarf_pc = 32,
    .dwarf_sp = 31,
    .dwarf_fp = 29,
    .dwarf_ra = 30,
    .pc_is_return = 1,
};

int ps_arch_read_regs(pid_t tid, struct ps_arch_regs *out)
{
    struct user_regs_struct r;
    struct iovec iov = {&r, sizeof r};
    if (ptrace(PTRACE_GETREGSET, tid, (void *)(uintptr_t)NT_PRSTATUS, &iov) != 0)
        return ps_err_from_errno(errno);
    if (iov.iov_len < sizeof r)
        return PS_ESHORT;
    out->pc = r.pc;
    out->sp = r.sp;
    out->fp = r.regs[29];
    return 0;
}

void ps_arch_cpu_relax(void)
{
    __asm__ __volatile__("yield" ::: "memory");
}
