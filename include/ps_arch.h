/* ps_arch.h — the little that differs per CPU architecture: register numbers for native
 * unwinding, and the CPU's spin-wait hint.
 *
 * One implementation per architecture lives in arch/<uname -m>/ps_arch.c and only that one is
 * compiled in. It names the register numbers of the program counter, stack pointer and frame
 * pointer as libunwind, DWARF/libdw and ptrace see them, and reads a stopped thread's PC and SP
 * with PTRACE_GETREGSET. Nothing else in pysample is architecture specific; src/native/ uses
 * this interface and the generic libunwind/libdw calls only.
 */
#ifndef PS_ARCH_H
#define PS_ARCH_H

#include <stdint.h>
#include <sys/types.h>

struct ps_arch {
    const char *name;   /* "x86_64", "aarch64" (as uname -m prints it) */
    int unw_pc;         /* libunwind register numbers (UNW_X86_64_RIP, UNW_AARCH64_PC, ...) */
    int unw_sp;
    int unw_fp;
    int dwarf_pc;       /* DWARF register numbers (System V / AADWARF64), as libdw uses them */
    int dwarf_sp;
    int dwarf_fp;
    int dwarf_ra;       /* the CIE return-address column */
    int pc_is_return;   /* 1: a caller's PC is a return address, look up PC - 1 for its line */
};

/* The architecture pysample was built for. */
extern const struct ps_arch ps_arch;

/* The registers of a thread that unwinding starts from. */
struct ps_arch_regs {
    uint64_t pc, sp, fp;
};

/* Reads PC/SP/FP of `tid`, which must be in a ptrace-stop of the calling thread
 * (PTRACE_GETREGSET, NT_PRSTATUS, struct user_regs_struct). 0 or a negative PS_E* code. */
int ps_arch_read_regs(pid_t tid, struct ps_arch_regs *out);

/* One iteration of a busy-wait: tells the CPU this thread spins (x86 PAUSE, arm YIELD), which
 * saves power and leaves the sibling hyperthread the core. */
void ps_arch_cpu_relax(void);

#endif
