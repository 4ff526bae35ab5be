/* test_procs.c — the multi-process pieces: the descendant walk of proc/proc.c over a real
 * process tree, the per-process summary a profile carries (core/profile.c), and the table
 * footer lines that print it (out/table.c).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ps_output.h"
#include "ps_proc.h"
#include "ps_profile.h"
#include "ps_util.h"

/* ---- ps_proc_descendants ----------------------------------------------------------------- */

/* Forks child -> grandchild, both blocked reading `hold` until it is closed; the child reports
 * the grandchild's PID on `report` once both exist. */
static pid_t spawn_tree(int hold[2], pid_t *grandchild)
{
    int report[2];
    cr_assert_eq(pipe(hold), 0);
    cr_assert_eq(pipe(report), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(hold[1]);
        close(report[0]);
        pid_t g = fork();
        if (g == 0) {
            char c;
            alarm(60);
            while (read(hold[0], &c, 1) > 0)
                ;
            _exit(0);
        }
        if (write(report[1], &g, sizeof g) != (ssize_t)sizeof g)
            _exit(1);
        char c;
        alarm(60);
        while (read(hold[0], &c, 1) > 0)
            ;
        waitpid(g, NULL, 0);
        _exit(0);
    }
    close(hold[0]);
    close(report[1]);
    cr_assert_eq(read(report[0], grandchild, sizeof *grandchild), (ssize_t)sizeof *grandchild);
    close(report[0]);
    return child;
}

Test(procs, descendants_of_a_tree_in_order)
{
    int hold[2];
    pid_t grandchild = 0;
    pid_t child = spawn_tree(hold, &grandchild);
    pid_t *v = NULL;
    int n = -1;
    cr_assert_eq(ps_proc_descendants(getpid(), &v, &n), 0);
    cr_assert_eq(n, 2, "descendants: %d", n);
    cr_assert_eq(v[0], child, "first %d, child %d", (int)v[0], (int)child);
    cr_assert_eq(v[1], grandchild, "second %d, grandchild %d", (int)v[1], (int)grandchild);
    free(v);

    /* The child alone has the grandchild below it. */
    cr_assert_eq(ps_proc_descendants(child, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0], grandchild);
    free(v);

    close(hold[1]);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* Gone and reaped: no such process. */
    cr_assert_eq(ps_proc_descendants(child, &v, &n), PS_ENOPROC);
    cr_assert_null(v);
    cr_assert_eq(n, 0);
}

Test(procs, descendants_none)
{
    pid_t *v = (pid_t *)&v;
    int n = -1;
    int hold[2];
    pid_t grandchild;
    pid_t child = spawn_tree(hold, &grandchild);
    cr_assert_eq(ps_proc_descendants(grandchild, &v, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(v);
    close(hold[1]);
    waitpid(child, NULL, 0);
}

/* ---- the per-process summary in the table ------------------------------------------------ */

static uint32_t frame(struct ps_profile *p, const char *name, const char *file, int line)
{
    uint32_t f = file ? ps_intern_str(p->in, file, strlen(file)) : 0;
    return ps_intern_frame(p->in, ps_intern_str(p->in, name, strlen(name)), f, line);
}

static void add(struct ps_profile *p, const char *root, uint64_t count)
{
    uint32_t fr[2] = {frame(p, root, NULL, 0), frame(p, "work", "app.py", 3)};
    ps_profile_add(p, ps_intern_stack(p->in, fr, 2), count);
}

static char *table(const struct ps_profile *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(ps_table_write(f, p, NULL), 0);
    fclose(f);
    return buf;
}

/* The line of `text` that starts with `prefix`, as a new string ("" if none). */
static char *line_of(const char *text, const char *prefix)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, strlen(prefix)) == 0) {
            const char *e = strchr(l, '\n');
            return strndup(l, e ? (size_t)(e - l) : strlen(l));
        }
    }
    return strdup("");
}

static void check_line(const char *text, const char *prefix, const char *expected)
{
    char *l = line_of(text, prefix);
    cr_assert_str_eq(l, expected, "table:\n%s", text);
    free(l);
}

Test(procs, table_summary_lines)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, "process 10:\"python3 app.py\"", 30);
    add(&p, "process 11:\"worker\"", 10);
    struct ps_proc_summary s10 = {10, "python3 app.py", 30, 15, 30, 0};
    struct ps_proc_summary s11 = {11, "worker", 10, 1, 4, 5};
    struct ps_proc_summary s12 = {12, "idle master", 0, 0, 0, 7};
    ps_profile_add_proc(&p, &s10);
    ps_profile_add_proc(&p, &s11);
    ps_profile_add_proc(&p, &s12);
    s10.cmdline = "changed"; /* the profile keeps its own copy */
    cr_assert_eq(p.nprocs, 3);
    cr_assert_str_eq(p.procs[0].cmdline, "python3 app.py");

    char *t = table(&p);
    check_line(t, "Process 10 ",
               "Process 10 \"python3 app.py\": 30 samples (75.0%), GIL held: 50.0%, active: 100.0%");
    check_line(t, "Process 11 ",
               "Process 11 \"worker\": 10 samples (25.0%), GIL held: 10.0%, active: 40.0%, "
               "idle left out: 5");
    check_line(t, "Process 12 ", "Process 12 \"idle master\": 0 samples (0.0%), idle left out: 7");
    free(t);
    ps_profile_release(&p);
    cr_assert_null(p.procs);
    cr_assert_eq(p.nprocs, 0);
}

Test(procs, table_without_summary_unchanged)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, "process 10:\"python3 app.py\"", 3);
    add(&p, "process 11:\"worker\"", 1);
    char *t = table(&p);
    check_line(t, "Process 10 ", "Process 10 \"python3 app.py\": 3 samples (75.0%)");
    check_line(t, "Process 11 ", "Process 11 \"worker\": 1 samples (25.0%)");
    free(t);
    ps_profile_release(&p);
}

Test(procs, table_reused_pid_adds_up)
{
    struct ps_profile p;
    ps_profile_init(&p);
    add(&p, "process 10:\"job\"", 4);
    struct ps_proc_summary a = {10, "job", 2, 2, 2, 0};
    struct ps_proc_summary b = {10, "job", 2, 0, 1, 3};
    ps_profile_add_proc(&p, &a);
    ps_profile_add_proc(&p, &b);
    char *t = table(&p);
    check_line(t, "Process 10 ",
               "Process 10 \"job\": 4 samples (100.0%), GIL held: 50.0%, active: 75.0%, "
               "idle left out: 3");
    cr_assert_null(strstr(t, "0 samples (0.0%)"), "no extra line for the reused PID:\n%s", t);
    free(t);
    ps_profile_release(&p);
}
