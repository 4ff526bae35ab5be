/* proc.c — facts about a target process and its threads from /proc: state, command line,
 * links (exe, cwd), tasks, children, start time, namespaced PID.
 *
 * Used by discovery, the walker (thread idle state), the subprocess follower and `dump
 * --subprocesses` (the descendant walk).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_proc.h"
#include "ps_util.h"

/* Parses the state char and optionally later fields of a stat line. The comm field can contain
 * spaces and ')', so fields are counted from the last ')'. */
static int ps_stat_after_comm(const char *text, const char **rest)
{
    const char *rp = strrchr(text, ')');
    if (!rp || rp[1] != ' ' || !rp[2])
        return PS_EFORMAT;
    *rest = rp + 2;
    return 0;
}

static int ps_read_stat(const char *path, char *state, uint64_t *starttime, pid_t *ppid)
{
    char buf[1024];
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT || errno == ESRCH ? PS_ENOPROC : ps_err_from_errno(errno);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n == 0)
        return PS_ENOPROC;
    buf[n] = '\0';
    const char *rest;
    if (ps_stat_after_comm(buf, &rest) < 0)
        return PS_EFORMAT;
    if (state)
        *state = rest[0];
    if (ppid)
        *ppid = (pid_t)strtol(rest + 2, NULL, 10);
    if (starttime) {
        /* rest starts at field 3 (state); starttime is field 22. */
        const char *p = rest;
        for (int field = 3; field < 22 && p; field++) {
            p = strchr(p, ' ');
            if (p)
                p++;
        }
        if (!p)
            return PS_EFORMAT;
        *starttime = strtoull(p, NULL, 10);
    }
    return 0;
}

int ps_proc_state(pid_t pid, char *state)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return ps_read_stat(path, state, NULL, NULL);
}

int ps_proc_task_state(pid_t pid, pid_t tid, char *state)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    int rc = ps_read_stat(path, state, NULL, NULL);
    return rc == PS_ENOPROC ? PS_EGONE : rc;
}

int ps_proc_starttime(pid_t pid, uint64_t *ticks)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return ps_read_stat(path, NULL, ticks, NULL);
}

int ps_proc_image(pid_t pid, struct ps_proc_image *img)
{
    memset(img, 0, sizeof *img);
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        img->exe_dev = (uint64_t)sb.st_dev;
        img->exe_ino = (uint64_t)sb.st_ino;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT || errno == ESRCH ? PS_ENOPROC : ps_err_from_errno(errno);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p;
    if (n == 0 || ps_stat_after_comm(buf, &p) < 0)
        return PS_ENOPROC;
    /* p is at field 3 (state). */
    for (int field = 3; field <= 28 && p; field++) {
        if (field == 26)
            img->startcode = strtoull(p, NULL, 10);
        if (field == 28)
            img->startstack = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return 0;
}

int ps_proc_image_changed(const struct ps_proc_image *a, const struct ps_proc_image *b)
{
    if (a->exe_ino && b->exe_ino && (a->exe_ino != b->exe_ino || a->exe_dev != b->exe_dev))
        return 1;
    /* Mid-exec the new memory exists before its code and stack addresses are set (0). */
    if (a->startcode && a->startcode != b->startcode)
        return 1;
    return a->startstack && a->startstack != b->startstack;
}

int ps_proc_ppid(pid_t pid, pid_t *ppid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return ps_read_stat(path, NULL, NULL, ppid);
}

int ps_proc_cmdline(pid_t pid, char **out)
{
    char path[64], *text;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    long n = ps_read_file(path, &text, 1u << 16);
    if (n < 0)
        return (int)n;
    while (n > 0 && text[n - 1] == '\0')
        n--;
    for (long i = 0; i < n; i++)
        if (text[i] == '\0' || text[i] == '\n')
            text[i] = ' ';
    text[n] = '\0';
    *out = text;
    return 0;
}

int ps_proc_comm(pid_t pid, pid_t tid, char *buf, size_t sz)
{
    char path[96], *text;
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    long n = ps_read_file(path, &text, 256);
    if (n < 0)
        return (int)n;
    while (n > 0 && (text[n - 1] == '\n'))
        text[--n] = '\0';
    snprintf(buf, sz, "%s", text);
    free(text);
    return 0;
}

int ps_proc_link(pid_t pid, const char *what, char **out)
{
    char path[96], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return ps_err_from_errno(errno);
    buf[n] = '\0';
    static const char del[] = " (deleted)";
    if ((size_t)n >= sizeof del - 1 && strcmp(buf + n - (sizeof del - 1), del) == 0)
        buf[n - (sizeof del - 1)] = '\0';
    *out = ps_xstrdup(buf);
    return 0;
}

int ps_proc_tracer(pid_t pid, pid_t tid, pid_t *tracer)
{
    char path[96], *text;
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    *tracer = 0;
    long n = ps_read_file(path, &text, 1u << 16);
    if (n < 0)
        return (int)n;
    const char *p = strstr(text, "\nTracerPid:");
    int rc = p && sscanf(p + 11, "%d", tracer) == 1 ? 0 : PS_EFORMAT;
    free(text);
    return rc;
}

const char *ps_proc_target_view(pid_t pid, const char *path)
{
    char link[96], root[4096];
    snprintf(link, sizeof link, "/proc/%d/root", (int)pid);
    ssize_t n = readlink(link, root, sizeof root - 1);
    if (n <= 1 || root[0] != '/')
        return path; /* the same root as ours ("/"), or unknown */
    root[n] = '\0';
    if (strncmp(path, root, (size_t)n) == 0 && path[n] == '/')
        return path + n;
    return path;
}

void ps_proc_root_path(pid_t pid, const char *path, char *buf, size_t sz)
{
    snprintf(buf, sz, "/proc/%d/root%s", (int)pid, ps_proc_target_view(pid, path));
}

static int ps_pid_list_add(pid_t **v, int *n, int *cap, pid_t x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = ps_xrealloc(*v, sizeof(pid_t) * (size_t)*cap);
    }
    (*v)[(*n)++] = x;
    return 0;
}

int ps_proc_tasks(pid_t pid, pid_t **tids, int *n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? PS_ENOPROC : ps_err_from_errno(errno);
    int cap = 0;
    *tids = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        ps_pid_list_add(tids, n, &cap, (pid_t)atoi(e->d_name));
    }
    closedir(d);
    return 0;
}

int ps_proc_children(pid_t pid, pid_t **kids, int *n)
{
    pid_t *tids;
    int ntids, cap = 0;
    int rc = ps_proc_tasks(pid, &tids, &ntids);
    if (rc < 0)
        return rc;
    *kids = NULL;
    *n = 0;
    for (int i = 0; i < ntids; i++) {
        char path[96], *text;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)tids[i]);
        long len = ps_read_file(path, &text, 1u << 20);
        if (len < 0)
            continue;
        char *p = text;
        while (*p) {
            char *endp;
            long v = strtol(p, &endp, 10);
            if (endp == p)
                break;
            ps_pid_list_add(kids, n, &cap, (pid_t)v);
            p = endp;
            while (*p == ' ')
                p++;
        }
        free(text);
    }
    free(tids);
    return 0;
}

#define PS_MAX_DESCENDANTS 65536

int ps_proc_descendants(pid_t pid, pid_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    pid_t *kids;
    int nk, cap = 0;
    int rc = ps_proc_children(pid, &kids, &nk);
    if (rc < 0)
        return rc;
    /* Depth-first with an explicit stack; children are pushed in reverse so that they come
     * out in the kernel's order. The seen-check guards against a PID reused while reading. */
    pid_t *stack = NULL;
    int ns = 0, scap = 0;
    for (int k = nk - 1; k >= 0; k--)
        ps_pid_list_add(&stack, &ns, &scap, kids[k]);
    free(kids);
    while (ns > 0 && *n < PS_MAX_DESCENDANTS) {
        pid_t p = stack[--ns];
        int seen = p == pid;
        for (int i = 0; i < *n && !seen; i++)
            seen = (*out)[i] == p;
        if (seen)
            continue;
        ps_pid_list_add(out, n, &cap, p);
        if (ps_proc_children(p, &kids, &nk) < 0)
            continue; /* exited meanwhile */
        for (int k = nk - 1; k >= 0; k--)
            ps_pid_list_add(&stack, &ns, &scap, kids[k]);
        free(kids);
    }
    free(stack);
    return 0;
}

pid_t ps_proc_nspid(pid_t pid)
{
    char path[64], *text;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (ps_read_file(path, &text, 1u << 16) < 0)
        return pid;
    pid_t inner = pid;
    char *line = strstr(text, "\nNSpid:");
    if (line) {
        char *p = line + 7, *endp;
        for (;;) {
            long v = strtol(p, &endp, 10);
            if (endp == p)
                break;
            inner = (pid_t)v;
            p = endp;
        }
    }
    free(text);
    return inner;
}
