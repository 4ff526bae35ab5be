/* ps_proc.h — a target process seen through /proc: existence and state, command line,
 * memory maps, threads (tasks) and their scheduler state.
 *
 * All paths go through /proc/PID/..., and files named in the maps are opened through
 * /proc/PID/root/<path> so that targets in other mount namespaces (containers) work.
 */
#ifndef PS_PROC_H
#define PS_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ps_map {
    uint64_t start, end, offset;
    uint64_t inode;
    char perms[5];     /* "r-xp" */
    int deleted;       /* path ended in " (deleted)" (suffix removed from path) */
    char *path;        /* "" for anonymous mappings, "[stack]", ... */
};

struct ps_maps {
    struct ps_map *v;
    int n;
};

/* Parse the text of /proc/PID/maps. Malformed lines fail with PS_EFORMAT. */
int ps_maps_parse(const char *text, size_t len, struct ps_maps *out);
int ps_maps_read(pid_t pid, struct ps_maps *out);
void ps_maps_release(struct ps_maps *m);
/* Mapping containing addr, or NULL. Binary search (maps are sorted). */
const struct ps_map *ps_maps_find(const struct ps_maps *m, uint64_t addr);
/* Is [addr, addr+len) inside one readable mapping? */
int ps_maps_readable(const struct ps_maps *m, uint64_t addr, size_t len);

/* Process state char from /proc/PID/stat ('R','S','Z',...). PS_ENOPROC if gone. */
int ps_proc_state(pid_t pid, char *state);
/* Thread state char from /proc/PID/task/TID/stat. PS_EGONE if the thread is gone. */
int ps_proc_task_state(pid_t pid, pid_t tid, char *state);
/* Command line with NULs turned into spaces (heap string). */
int ps_proc_cmdline(pid_t pid, char **out);
/* /proc/PID/task/TID/comm without the newline. */
int ps_proc_comm(pid_t pid, pid_t tid, char *buf, size_t sz);
/* readlink of /proc/PID/<what> ("exe", "cwd") as a heap string. */
int ps_proc_link(pid_t pid, const char *what, char **out);
/* TracerPid of a thread: the process tracing it (strace, gdb, pysample --native), 0 if none. */
int ps_proc_tracer(pid_t pid, pid_t tid, pid_t *tracer);
/* `path` as the target itself names it. The kernel prints paths in /proc/PID/maps relative to
 * the reader's root, so for a target whose root lies below pysample's (a chroot: its root reads
 * as /srv/root from here) the maps say /srv/root/usr/lib/libc.so.6 for its /usr/lib/libc.so.6;
 * that prefix is removed. Paths of a target in another mount namespace (a container) come in
 * the target's own terms already and are returned as they are. Points into `path`. */
const char *ps_proc_target_view(pid_t pid, const char *path);
/* A path to open a file the target maps as `path` (as its maps show it): /proc/PID/root
 * followed by ps_proc_target_view(path). */
void ps_proc_root_path(pid_t pid, const char *path, char *buf, size_t sz);
/* Kernel TIDs of all tasks. Heap array, count in *n. */
int ps_proc_tasks(pid_t pid, pid_t **tids, int *n);
/* Parent PID; children PIDs from each task's children file. */
int ps_proc_ppid(pid_t pid, pid_t *ppid);
int ps_proc_children(pid_t pid, pid_t **kids, int *n);
/* Every descendant of pid (children, grandchildren, ...), each before its own children and
 * siblings in the kernel's order; pid itself is not included. A process that exits while the
 * tree is read is simply missing. Heap array (NULL when there are none), count in *n.
 * PS_ENOPROC when pid itself is gone. At most 65536 descendants are listed. */
int ps_proc_descendants(pid_t pid, pid_t **out, int *n);
/* The process start time (clock ticks since boot, field 22): detects PID reuse. */
int ps_proc_starttime(pid_t pid, uint64_t *ticks);
/* What exec() changes while the PID and start time stay: the executable's device and inode
 * and the start addresses of the code and the stack (fields 26 and 28 of /proc/PID/stat,
 * placed anew by every exec under ASLR). Fields that cannot be read are 0. */
struct ps_proc_image {
    uint64_t exe_dev, exe_ino, startcode, startstack;
};
int ps_proc_image(pid_t pid, struct ps_proc_image *img);
/* 1 when b is another program image than a: a field a knows differs in b (0 included: in
 * the middle of an exec, or after the process released its memory). */
int ps_proc_image_changed(const struct ps_proc_image *a, const struct ps_proc_image *b);
/* NSpid: the PID as seen inside the target's own PID namespace (innermost), or pid. */
pid_t ps_proc_nspid(pid_t pid);

#endif
