/* output.c — the writer registry and the one way profiles reach a file.
 *
 * Commands pick a writer by name (ps_writer_find) and hand it to ps_output_write_path, which
 * writes to stdout, to a device/FIFO directly, or to a temporary file in the target's directory
 * that is flushed, fsync'ed and renamed over the target, so readers never see half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_output.h"
#include "ps_util.h"

static const struct ps_writer ps_writers[] = {
    {"folded", "folded", ps_folded_write},
    {"table", "txt", ps_table_write},
    {"svg", "svg", ps_svg_write},
    {"speedscope", "speedscope.json", ps_speedscope_write},
    {"pprof", "pb.gz", ps_pprof_write},
    {"callgrind", "callgrind", ps_callgrind_write},
    {"pstats", "pstats", ps_pstats_write},
};

const struct ps_writer *ps_writer_find(const char *name)
{
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_writers); i++)
        if (strcmp(ps_writers[i].name, name) == 0)
            return &ps_writers[i];
    return NULL;
}

const struct ps_writer *ps_writer_for_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_writers); i++) {
        size_t el = strlen(ps_writers[i].ext);
        if (len > el + 1 && base[len - el - 1] == '.' &&
            strcmp(base + len - el, ps_writers[i].ext) == 0)
            return &ps_writers[i];
    }
    if (len > 5 && strcmp(base + len - 5, ".json") == 0)
        return ps_writer_find("speedscope");
    if (len > 5 && strcmp(base + len - 5, ".prof") == 0)
        return ps_writer_find("pstats");
    return NULL;
}

const char *ps_writer_names(void)
{
    static char names[256];
    if (!names[0]) {
        size_t len = 0;
        for (size_t i = 0; i < PS_ARRAY_LEN(ps_writers); i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                    ps_writers[i].name);
    }
    return names;
}

static int ps_code_from_errno(int e)
{
    switch (e) {
    case EACCES:
    case EPERM:
        return PS_EPERM;
    case ENOMEM:
        return PS_ENOMEM;
    default:
        return PS_EIO;
    }
}

static int ps_write_fail(const char *path, int e)
{
    if (!e)
        e = EIO;
    ps_err_set("cannot write %s: %s", path, strerror(e));
    return ps_code_from_errno(e);
}

/* Runs the writer on an open stream and flushes it; returns 0 or an errno value. */
static int ps_write_stream(const struct ps_writer *w, FILE *f, const struct ps_profile *p,
                           const struct ps_out_opts *o)
{
    errno = 0;
    int rc = w->write(f, p, o);
    int e = errno;
    if (fflush(f) != 0)
        return errno ? errno : EIO;
    if (rc || ferror(f))
        return e ? e : EIO;
    return 0;
}

/* Devices and FIFOs (/dev/stdout, /dev/full, a named pipe) are written in place. */
static int ps_write_direct(const struct ps_writer *w, const char *path, const struct ps_profile *p,
                           const struct ps_out_opts *o)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ps_write_fail(path, errno);
    int e = ps_write_stream(w, f, p, o);
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    return e ? ps_write_fail(path, e) : 0;
}

static mode_t ps_new_file_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

int ps_output_write_path(const struct ps_writer *w, const char *path, const struct ps_profile *p,
                         const struct ps_out_opts *o)
{
    if (strcmp(path, "-") == 0) {
        int e = ps_write_stream(w, stdout, p, o);
        if (e) {
            ps_err_set("cannot write to standard output: %s", strerror(e));
            errno = e; /* callers may stay quiet on EPIPE (output piped into head) */
            return ps_code_from_errno(e);
        }
        return 0;
    }

    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            return ps_write_fail(path, EISDIR);
        return ps_write_direct(w, path, p, o);
    }

    /* Replace the file a symlink points at, not the link. */
    char *target = NULL;
    struct stat lst;
    if (exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
        target = realpath(path, NULL);
    const char *dest = target ? target : path;

    const char *slash = strrchr(dest, '/');
    size_t dirlen = slash ? (size_t)(slash - dest) + 1 : 0;
    const char *base = slash ? slash + 1 : dest;
    size_t tmpsz = dirlen + strlen(base) + 16;
    char *tmp = ps_xmalloc(tmpsz);
    snprintf(tmp, tmpsz, "%.*s.%s.XXXXXX", (int)dirlen, dest, base);

    int rc = 0;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = ps_write_fail(path, errno);
        goto out;
    }
    if (fchmod(fd, exists ? (st.st_mode & 07777) : ps_new_file_mode()) != 0) {
        rc = ps_write_fail(path, errno);
        close(fd);
        unlink(tmp);
        goto out;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        rc = ps_write_fail(path, errno);
        close(fd);
        unlink(tmp);
        goto out;
    }
    int e = ps_write_stream(w, f, p, o);
    if (!e && fsync(fileno(f)) != 0)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, dest) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        rc = ps_write_fail(path, e);
        goto out;
    }
    /* Make the rename itself durable; failure here loses nothing already written. */
    char *dir = dirlen ? ps_xstrndup(dest, dirlen) : ps_xstrdup(".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
out:
    free(tmp);
    free(target);
    return rc;
}
