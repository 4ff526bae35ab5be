/* ps_arch.c (x86_64) — register numbers and the ptrace register read for x86_64.
 *
 * Used by src/native/unwind.c through include/ps_arch.h. libunwind numbers come from
 * libunwind-x86_64.h (UNW_X86_64_RBP 6, RSP 7, RIP 16); DWARF numbers from the System V
 * x86-64 psABI (rbp 6, rsp 7, return-address column 16), which libdw uses as well.
 */
#include <elf.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "ps_arch.h"
#include "ps_util.h"

const struct ps_arch ps_arch = {
    .name = "x86_64",
    .unw_pc = 16,
    .unw_sp = 7,
    .unw_fp = 6,
    .dwarf_pc = 16,
    .dwarf_sp = 7,
    .dwarf_fp = 6,
    .dwarf_ra = 16,
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
    out->pc = r.rip;
    out->sp = r.rsp;
    out->fp = r.rbp;
    return 0;
}

void ps_arch_cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}
