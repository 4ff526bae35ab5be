/* ps_mem.h — one reader interface over a target's memory.
 *
 * Implementations: a live process (process_vm_readv, falling back to pread on /proc/PID/mem)
 * and a fake in-memory source used by unit tests and fuzzers. All reads are all-or-nothing:
 * a short read is an error (PS_EFAULT / PS_ESHORT), never a partial success.
 * Every call to the target counts in `remote_reads` (a readv of many iovecs counts once when
 * it is satisfied by one syscall), which is how pysample measures its own cost per sample.
 */
#ifndef PS_MEM_H
#define PS_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ps_iov {
    uint64_t addr;
    void *buf;
    size_t len;
};

struct ps_mem;

struct ps_mem_ops {
    /* Read len bytes at addr into buf. 0 or negative PS_E*. */
    int (*read)(struct ps_mem *m, uint64_t addr, void *buf, size_t len);
    /* Read every iov; 0 only if all were read whole. */
    int (*readv)(struct ps_mem *m, const struct ps_iov *iov, int n);
    void (*close)(struct ps_mem *m);
    /* Optional: read every iov, reporting each one's success in ok[] (1 read whole, 0 not);
     * returns 0, or a negative PS_E* when the process is gone or unreadable as a whole. */
    int (*readv_each)(struct ps_mem *m, const struct ps_iov *iov, int n, int *ok);
};

struct ps_mem {
    const struct ps_mem_ops *ops;
    pid_t pid;          /* 0 for the fake source */
    int memfd;          /* /proc/PID/mem when process_vm_readv is unavailable, else -1 */
    int use_pread;      /* 1 once process_vm_readv failed with ENOSYS/EPERM and pread works */
    uint64_t remote_reads; /* syscalls issued against the target */
    uint64_t bytes_read;
    void *fake;         /* fake source state */
    struct ps_mem_batch *batch; /* live readv_each: grouping scratch, allocated on first use */
};

/* Maximum iovecs per process_vm_readv call (IOV_MAX is 1024 on Linux). */
#define PS_MEM_MAX_IOV 1024

int ps_mem_open_pid(struct ps_mem *m, pid_t pid);
void ps_mem_close(struct ps_mem *m);

static inline int ps_mem_read(struct ps_mem *m, uint64_t addr, void *buf, size_t len)
{
    return m->ops->read(m, addr, buf, len);
}
static inline int ps_mem_readv(struct ps_mem *m, const struct ps_iov *iov, int n)
{
    return m->ops->readv(m, iov, n);
}
/* Reads every iov and reports which were read whole in ok[]: a bad address costs its own iov,
 * not the batch. Live targets pay one more syscall per failed iov (process_vm_readv stops at
 * the first iov it cannot read and is restarted after it). Returns 0, or PS_ENOPROC/PS_EPERM
 * (or another negative PS_E*) when nothing can be read at all. */
int ps_mem_readv_each(struct ps_mem *m, const struct ps_iov *iov, int n, int *ok);
/* Convenience: read one pointer-sized (8 byte) value. */
int ps_mem_read_u64(struct ps_mem *m, uint64_t addr, uint64_t *out);
int ps_mem_read_u32(struct ps_mem *m, uint64_t addr, uint32_t *out);

/* Fake source: a set of byte regions at fixed addresses. Reads that are not entirely inside
 * one region fail with PS_EFAULT, like an unmapped address in a live target. */
void ps_mem_fake_init(struct ps_mem *m);
/* Adds a zero-filled region and returns a pointer to its bytes (owned by the source),
 * to be filled by the caller. Regions must not overlap. */
void *ps_mem_fake_region(struct ps_mem *m, uint64_t addr, size_t len);
/* Copies data into the source at addr (which must lie inside one region). 0 or PS_EFAULT. */
int ps_mem_fake_write(struct ps_mem *m, uint64_t addr, const void *data, size_t len);

#endif
