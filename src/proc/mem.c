/* mem.c — the memory reader: process_vm_readv against a live PID (many iovecs per call),
 * falling back to pread on /proc/PID/mem, and a fake in-memory source for tests and fuzzing.
 *
 * Sits under python/ (every remote read goes through here) and counts each syscall made
 * against the target so the sampler can report its reads per sample.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ps_mem.h"
#include "ps_util.h"

/* ---- live process ----------------------------------------------------------------------- */

static int ps_mem_pread(struct ps_mem *m, uint64_t addr, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        m->remote_reads++;
        ssize_t r = pread(m->memfd, (char *)buf + done, len - done, (off_t)(addr + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ps_err_from_errno(errno);
        }
        if (r == 0)
            return PS_ESHORT;
        done += (size_t)r;
    }
    m->bytes_read += len;
    return 0;
}

static int ps_mem_open_memfd(struct ps_mem *m)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)m->pid);
    m->memfd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->memfd < 0)
        return ps_err_from_errno(errno);
    m->use_pread = 1;
    return 0;
}

static int ps_mem_live_readv(struct ps_mem *m, const struct ps_iov *iov, int n)
{
    if (n <= 0)
        return 0;
    if (m->use_pread) {
        for (int i = 0; i < n; i++) {
            int rc = ps_mem_pread(m, iov[i].addr, iov[i].buf, iov[i].len);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    struct iovec local[PS_MEM_MAX_IOV], remote[PS_MEM_MAX_IOV];
    for (int base = 0; base < n;) {
        int k = PS_MIN(n - base, PS_MEM_MAX_IOV);
        size_t want = 0;
        for (int i = 0; i < k; i++) {
            local[i].iov_base = iov[base + i].buf;
            local[i].iov_len = iov[base + i].len;
            remote[i].iov_base = (void *)(uintptr_t)iov[base + i].addr;
            remote[i].iov_len = iov[base + i].len;
            want += iov[base + i].len;
        }
        m->remote_reads++;
        ssize_t r = process_vm_readv(m->pid, local, (unsigned long)k, remote, (unsigned long)k, 0);
        if (r < 0) {
            int e = errno;
            /* Seccomp profiles (containers) or old kernels refuse process_vm_readv while
             * /proc/PID/mem still works: try it once, then stay on it. */
            if ((e == ENOSYS || e == EPERM) && m->memfd == -1) {
                if (ps_mem_open_memfd(m) == 0)
                    return ps_mem_live_readv(m, iov + base, n - base);
                m->memfd = -2;
            }
            return ps_err_from_errno(e);
        }
        if ((size_t)r != want)
            return r == 0 ? PS_EFAULT : PS_ESHORT;
        m->bytes_read += want;
        base += k;
    }
    return 0;
}

/* Iovs next to each other in the list whose remote ranges lie close together (less than
 * PS_COALESCE_GAP bytes apart, so no page lies between them unread) are read as one range into
 * scratch and copied out: every iov costs the kernel a page-table walk and pin of its own, so
 * e.g. the interpreter and GIL fields, or <= 3.10 frame objects allocated one after another,
 * cost one iov instead of many. */
#define PS_COALESCE_GAP 1024
#define PS_COALESCE_MAX (64u << 10)

struct ps_mem_batch {
    struct iovec local[PS_MEM_MAX_IOV], remote[PS_MEM_MAX_IOV];
    int first[PS_MEM_MAX_IOV], count[PS_MEM_MAX_IOV];
    uint64_t lo[PS_MEM_MAX_IOV];
    uint8_t *scratch;
    size_t scratch_cap;
};

/* Reads one iov alone (a member of a group that failed). */
static int ps_mem_live_one(struct ps_mem *m, const struct ps_iov *v)
{
    struct iovec l = {v->buf, v->len}, r = {(void *)(uintptr_t)v->addr, v->len};
    m->remote_reads++;
    ssize_t got = process_vm_readv(m->pid, &l, 1, &r, 1, 0);
    if (got < 0 && errno != EFAULT)
        return ps_err_from_errno(errno);
    if (got == (ssize_t)v->len) {
        m->bytes_read += v->len;
        return 1;
    }
    return 0;
}

static int ps_mem_live_readv_each(struct ps_mem *m, const struct ps_iov *iov, int n, int *ok)
{
    if (!m->batch && !m->use_pread)
        m->batch = ps_xcalloc(1, sizeof *m->batch);
    struct ps_mem_batch *b = m->batch;
    int base = 0;
    while (base < n) {
        if (m->use_pread) {
            for (int i = base; i < n; i++) {
                int rc = ps_mem_pread(m, iov[i].addr, iov[i].buf, iov[i].len);
                if (rc == PS_ENOPROC || rc == PS_EPERM)
                    return rc;
                ok[i] = rc == 0;
            }
            return 0;
        }
        /* Group iovs [base..) into at most PS_MEM_MAX_IOV ranges. */
        int ng = 0, i = base;
        size_t scratch = 0;
        while (i < n && ng < PS_MEM_MAX_IOV) {
            uint64_t lo = iov[i].addr, hi = iov[i].addr + iov[i].len;
            int j = i + 1;
            while (j < n && iov[j].len) {
                uint64_t a = iov[j].addr, e = a + iov[j].len;
                uint64_t nlo = PS_MIN(lo, a), nhi = PS_MAX(hi, e);
                if (e < a || a > hi + PS_COALESCE_GAP || e + PS_COALESCE_GAP < lo ||
                    nhi - nlo > PS_COALESCE_MAX || !iov[i].len)
                    break;
                lo = nlo;
                hi = nhi;
                j++;
            }
            b->first[ng] = i;
            b->count[ng] = j - i;
            b->lo[ng] = lo;
            b->remote[ng].iov_base = (void *)(uintptr_t)lo;
            b->remote[ng].iov_len = (size_t)(hi - lo);
            if (j - i > 1) /* room to round up to PS_COPY_ALIGN, then to shift (below) */
                scratch += (size_t)(hi - lo) + 2 * PS_COPY_ALIGN;
            ng++;
            i = j;
        }
        if (scratch > b->scratch_cap) {
            b->scratch = ps_xalloc_aligned(b->scratch, scratch);
            b->scratch_cap = scratch;
        }
        size_t off = 0;
        for (int g = 0; g < ng; g++) {
            if (b->count[g] == 1) {
                b->local[g].iov_base = iov[b->first[g]].buf;
            } else {
                /* At the remote range's alignment (see ps_util.h). */
                off = (off + PS_COPY_ALIGN - 1) & ~(size_t)(PS_COPY_ALIGN - 1);
                off += PS_COPY_SHIFT(b->lo[g]);
                b->local[g].iov_base = b->scratch + off;
                off += b->remote[g].iov_len;
            }
            b->local[g].iov_len = b->remote[g].iov_len;
        }
        /* Read the groups; a group the kernel stops at is read member by member. */
        int g0 = 0;
        while (g0 < ng) {
            m->remote_reads++;
            ssize_t r = process_vm_readv(m->pid, b->local + g0, (unsigned long)(ng - g0),
                                         b->remote + g0, (unsigned long)(ng - g0), 0);
            if (r < 0) {
                int e = errno;
                if ((e == ENOSYS || e == EPERM) && m->memfd == -1) {
                    if (ps_mem_open_memfd(m) == 0) {
                        base = b->first[g0];
                        break; /* the rest through /proc/PID/mem */
                    }
                    m->memfd = -2;
                }
                if (e != EFAULT)
                    return ps_err_from_errno(e);
                r = 0;
            }
            /* Transfers stop at an iov boundary. */
            size_t left = (size_t)r;
            int g = g0;
            for (; g < ng && left >= b->remote[g].iov_len; g++) {
                left -= b->remote[g].iov_len;
                for (int k = b->first[g]; k < b->first[g] + b->count[g]; k++) {
                    if (b->count[g] > 1)
                        memcpy(iov[k].buf,
                               (uint8_t *)b->local[g].iov_base + (iov[k].addr - b->lo[g]),
                               iov[k].len);
                    ok[k] = 1;
                    m->bytes_read += iov[k].len;
                }
            }
            if (g < ng) {
                for (int k = b->first[g]; k < b->first[g] + b->count[g]; k++) {
                    int rc = b->count[g] == 1 ? 0 : ps_mem_live_one(m, &iov[k]);
                    if (rc < 0)
                        return rc;
                    ok[k] = rc;
                }
                g++;
            }
            g0 = g;
        }
        if (m->use_pread)
            continue;
        base = i;
    }
    return 0;
}

static int ps_mem_live_read(struct ps_mem *m, uint64_t addr, void *buf, size_t len)
{
    struct ps_iov v = {addr, buf, len};
    return ps_mem_live_readv(m, &v, 1);
}

static void ps_mem_live_close(struct ps_mem *m)
{
    if (m->memfd >= 0)
        close(m->memfd);
    m->memfd = -1;
    if (m->batch) {
        free(m->batch->scratch);
        free(m->batch);
        m->batch = NULL;
    }
}

static const struct ps_mem_ops ps_mem_live_ops = {
    ps_mem_live_read,
    ps_mem_live_readv,
    ps_mem_live_close,
    ps_mem_live_readv_each,
};

int ps_mem_open_pid(struct ps_mem *m, pid_t pid)
{
    memset(m, 0, sizeof *m);
    m->ops = &ps_mem_live_ops;
    m->pid = pid;
    m->memfd = -1;
    return 0;
}

void ps_mem_close(struct ps_mem *m)
{
    if (m->ops && m->ops->close)
        m->ops->close(m);
}

int ps_mem_readv_each(struct ps_mem *m, const struct ps_iov *iov, int n, int *ok)
{
    if (n <= 0)
        return 0;
    if (m->ops->readv_each)
        return m->ops->readv_each(m, iov, n, ok);
    /* Sources without it: the batch, then one by one when it fails. */
    int rc = ps_mem_readv(m, iov, n);
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            ok[i] = 1;
        return 0;
    }
    if (rc == PS_ENOPROC || rc == PS_EPERM)
        return rc;
    for (int i = 0; i < n; i++) {
        int r = ps_mem_read(m, iov[i].addr, iov[i].buf, iov[i].len);
        if (r == PS_ENOPROC)
            return r;
        ok[i] = r == 0;
    }
    return 0;
}

int ps_mem_read_u64(struct ps_mem *m, uint64_t addr, uint64_t *out)
{
    return ps_mem_read(m, addr, out, sizeof *out);
}

int ps_mem_read_u32(struct ps_mem *m, uint64_t addr, uint32_t *out)
{
    return ps_mem_read(m, addr, out, sizeof *out);
}

/* ---- fake source ------------------------------------------------------------------------ */

struct ps_fake_region {
    uint64_t addr;
    size_t len;
    unsigned char *bytes;
};

struct ps_fake {
    struct ps_fake_region *r;
    int n, cap;
};

static struct ps_fake_region *ps_fake_find(struct ps_fake *f, uint64_t addr, size_t len)
{
    for (int i = 0; i < f->n; i++) {
        struct ps_fake_region *r = &f->r[i];
        if (addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr))
            return r;
    }
    return NULL;
}

static int ps_mem_fake_read(struct ps_mem *m, uint64_t addr, void *buf, size_t len)
{
    m->remote_reads++;
    struct ps_fake_region *r = ps_fake_find(m->fake, addr, len);
    if (!r)
        return PS_EFAULT;
    memcpy(buf, r->bytes + (addr - r->addr), len);
    m->bytes_read += len;
    return 0;
}

static int ps_mem_fake_readv(struct ps_mem *m, const struct ps_iov *iov, int n)
{
    m->remote_reads++;
    for (int i = 0; i < n; i++) {
        struct ps_fake_region *r = ps_fake_find(m->fake, iov[i].addr, iov[i].len);
        if (!r)
            return PS_EFAULT;
        memcpy(iov[i].buf, r->bytes + (iov[i].addr - r->addr), iov[i].len);
        m->bytes_read += iov[i].len;
    }
    return 0;
}

/* Counts like the live reader: one call, plus one per failed iov (the restart after it). */
static int ps_mem_fake_readv_each(struct ps_mem *m, const struct ps_iov *iov, int n, int *ok)
{
    m->remote_reads++;
    for (int i = 0; i < n; i++) {
        struct ps_fake_region *r = ps_fake_find(m->fake, iov[i].addr, iov[i].len);
        ok[i] = r != NULL;
        if (!r) {
            if (i + 1 < n)
                m->remote_reads++;
            continue;
        }
        memcpy(iov[i].buf, r->bytes + (iov[i].addr - r->addr), iov[i].len);
        m->bytes_read += iov[i].len;
    }
    return 0;
}

static void ps_mem_fake_close(struct ps_mem *m)
{
    struct ps_fake *f = m->fake;
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->r[i].bytes);
    free(f->r);
    free(f);
    m->fake = NULL;
}

static const struct ps_mem_ops ps_mem_fake_ops = {
    ps_mem_fake_read,
    ps_mem_fake_readv,
    ps_mem_fake_close,
    ps_mem_fake_readv_each,
};

void ps_mem_fake_init(struct ps_mem *m)
{
    memset(m, 0, sizeof *m);
    m->ops = &ps_mem_fake_ops;
    m->memfd = -1;
    m->fake = ps_xcalloc(1, sizeof(struct ps_fake));
}

void *ps_mem_fake_region(struct ps_mem *m, uint64_t addr, size_t len)
{
    struct ps_fake *f = m->fake;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->r = ps_xrealloc(f->r, sizeof(struct ps_fake_region) * (size_t)f->cap);
    }
    struct ps_fake_region *r = &f->r[f->n++];
    r->addr = addr;
    r->len = len;
    r->bytes = ps_xcalloc(1, len);
    return r->bytes;
}

int ps_mem_fake_write(struct ps_mem *m, uint64_t addr, const void *data, size_t len)
{
    struct ps_fake_region *r = ps_fake_find(m->fake, addr, len);
    if (!r)
        return PS_EFAULT;
    memcpy(r->bytes + (addr - r->addr), data, len);
    return 0;
}
