/* top.c — `pysample top PID` / `top -- CMD ARGS...`: a live view of where a process (and, with
 * --subprocesses, its Python children) spends its time, refreshed every --delay seconds.
 *
 * The ordinary sampler (core/sampler.c) fills an ordinary profile; its hook calls back here
 * between ticks to read keys and redraw. Figures come from out/top.c. On a terminal the view
 * is full-screen (ncurses); otherwise a plain table is printed every interval.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ps_cmd.h"
#include "ps_sampler.h"
#include "ps_top.h"
#include "ps_util.h"

#define PS_TOP_KEY_PERIOD 0.05 /* seconds between looks at the keyboard */

struct ps_top_ui {
    struct ps_top top;
    struct ps_sampler *s;
    double delay;             /* seconds between refreshes */
    int max_rows;             /* plain mode: rows per table (0 = all) */
    int screen;               /* full-screen view (else plain tables) */
    int paused, quit, ended;  /* ended: the targets exited or --duration passed */
    int pipe_closed;          /* plain mode: stdout's reader went away */
    uint32_t first, shown;    /* screen: the first row shown (scrolling), rows that fit */
    uint64_t next_refresh;
    char target[64], cmdline[200], status[200];
    int threads, procs;
    struct ps_strbuf sb;
};

/* ---- signals and the terminal ----------------------------------------------------------- */

static volatile sig_atomic_t ps_top_stop;
static volatile sig_atomic_t ps_top_curses; /* the screen is in curses mode */
static SCREEN *ps_top_scr;
static FILE *ps_top_tty; /* keys come from /dev/tty when stdin is not the terminal */

static void ps_top_endwin(void)
{
    if (ps_top_curses) {
        ps_top_curses = 0;
        endwin();
    }
}

static void ps_top_on_signal(int sig)
{
    ps_top_stop = sig;
}

static const int ps_top_crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction ps_top_crash_old[PS_ARRAY_LEN(ps_top_crash_signals)];

/* A crash still gives the terminal back, then goes on as before (the handler that was there,
 * e.g. a sanitizer's report, or the default: death by the same signal). */
static void ps_top_on_crash(int sig)
{
    ps_top_endwin();
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_top_crash_signals); i++)
        if (ps_top_crash_signals[i] == sig)
            sigaction(sig, &ps_top_crash_old[i], NULL);
    raise(sig);
}

static void ps_top_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ps_top_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the sampler's wait wakes up */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = ps_top_on_crash;
    for (size_t i = 0; i < PS_ARRAY_LEN(ps_top_crash_signals); i++)
        sigaction(ps_top_crash_signals[i], &sa, &ps_top_crash_old[i]);
    atexit(ps_top_endwin);
}

/* Starts the full-screen view; 0, or -1 when the terminal cannot do it. */
static int ps_top_screen_open(void)
{
    FILE *in = stdin;
    if (!isatty(STDIN_FILENO)) {
        int fd = open("/dev/tty", O_RDONLY | O_CLOEXEC);
        in = fd >= 0 ? fdopen(fd, "r") : NULL;
        if (!in) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        ps_top_tty = in;
    }
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C");
    ps_top_scr = newterm(NULL, stdout, in);
    if (!ps_top_scr)
        return -1;
    ps_top_curses = 1;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    return 0;
}

/* ---- what the header says ---------------------------------------------------------------- */

static void ps_top_info(struct ps_top_ui *u)
{
    struct ps_sampler *s = u->s;
    u->threads = u->procs = 0;
    for (int i = 0; i < s->ntargets; i++) {
        if (!s->targets[i]->alive)
            continue;
        u->procs++;
        u->threads += s->targets[i]->snap.n;
    }
    if (s->ntargets && !u->target[0]) {
        struct ps_target *t = s->targets[0];
        snprintf(u->target, sizeof u->target, "pid %d, Python %s", (int)t->pid, t->py.version);
        snprintf(u->cmdline, sizeof u->cmdline, "%s", t->cmdline);
        for (char *c = u->cmdline; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
    }
}

/* "pysample top: pid N, Python V  [paused]  CMDLINE": what matters first, for narrow screens. */
static void ps_top_title(struct ps_top_ui *u, struct ps_strbuf *sb)
{
    ps_sb_printf(sb, "pysample top: %s", u->target);
    if (u->paused)
        ps_sb_adds(sb, "  [paused]");
    if (u->ended)
        ps_sb_adds(sb, "  [ended]");
    ps_sb_printf(sb, "  %s", u->cmdline);
}

/* "Threads: N  Processes: N  " + the counts of out/top.c */
static void ps_top_counts_line(struct ps_top_ui *u, struct ps_strbuf *sb)
{
    ps_sb_printf(sb, "Threads: %d  Processes: %d  ", u->threads, u->procs);
    ps_top_counts_text(&u->top, sb, 0);
}

/* ---- full-screen view --------------------------------------------------------------------- */

/* Cuts sb to w columns (a UTF-8 sequence taken as one). */
static void ps_top_cut(struct ps_strbuf *sb, int w)
{
    int cols = 0;
    for (size_t i = 0; sb->buf && i < sb->len; i++) {
        if (((unsigned char)sb->buf[i] & 0xc0) == 0x80)
            continue;
        if (cols++ == w) {
            sb->buf[sb->len = i] = '\0';
            return;
        }
    }
}

static void ps_top_put(int y, struct ps_strbuf *sb, int attr)
{
    if (y >= LINES)
        return;
    if (attr)
        attron(attr);
    mvaddstr(y, 0, sb->buf ? sb->buf : "");
    if (attr) {
        for (int x = (int)sb->len; x < COLS; x++)
            addch(' ');
        attroff(attr);
    }
}

static void ps_top_draw(struct ps_top_ui *u)
{
    struct ps_strbuf *sb = &u->sb;
    int w = COLS;
    erase();
    int y = 0;
    ps_sb_reset(sb);
    ps_top_title(u, sb);
    ps_top_cut(sb, w);
    ps_top_put(y++, sb, A_BOLD);
    ps_sb_reset(sb);
    ps_top_counts_line(u, sb);
    ps_top_cut(sb, w);
    ps_top_put(y++, sb, 0);
    ps_sb_reset(sb);
    ps_top_shares_text(&u->top, sb, w);
    ps_top_put(y++, sb, 0);
    ps_sb_reset(sb);
    ps_sb_adds(sb, u->status);
    ps_top_cut(sb, w);
    ps_top_put(y++, sb, 0);
    int last = LINES - 1; /* the key line */
    u->shown = last > y + 1 ? (uint32_t)(last - y - 1) : 0;
    if (u->first + u->shown > u->top.nrows)
        u->first = u->top.nrows > u->shown ? u->top.nrows - u->shown : 0;
    ps_sb_reset(sb);
    ps_top_columns(&u->top, sb, 0);
    if (u->top.nrows > u->shown && u->shown)
        ps_sb_printf(sb, "   [rows %u-%u of %u]", u->first + 1, u->first + u->shown, u->top.nrows);
    ps_top_cut(sb, w);
    ps_top_put(y++, sb, A_REVERSE);
    for (uint32_t i = u->first; y < last && i < u->top.nrows; i++) {
        ps_sb_reset(sb);
        ps_top_row_text(&u->top, i, sb, w);
        ps_top_put(y++, sb, 0);
    }
    ps_sb_reset(sb);
    ps_sb_adds(sb, "1-4/o c O C sort  i interval/start  t threads  p processes  "
                   "space pause  r reset  q quit");
    ps_top_cut(sb, w);
    if (last >= y)
        ps_top_put(last, sb, A_REVERSE);
    refresh();
}

/* Handles one key; returns 1 when the view must be drawn again. */
static int ps_top_key(struct ps_top_ui *u, int ch, uint64_t now)
{
    struct ps_top *t = &u->top;
    int rebuild = 1;
    u->status[0] = u->ended ? u->status[0] : '\0';
    switch (ch) {
    case '1': case 'o': t->sort = PS_TOP_SORT_OWN_PCT; break;
    case '2': case 'c': t->sort = PS_TOP_SORT_TOTAL_PCT; break;
    case '3': case 'O': t->sort = PS_TOP_SORT_OWN_TIME; break;
    case '4': case 'C': t->sort = PS_TOP_SORT_TOTAL_TIME; break;
    case 'i': t->since_start = !t->since_start; break;
    case 't': t->per_thread = !t->per_thread; break;
    case 'p':
        if (u->s->opts.subprocesses)
            t->per_proc = !t->per_proc;
        else if (!u->ended)
            snprintf(u->status, sizeof u->status, "p: a view per process needs --subprocesses");
        break;
    case ' ':
        u->paused = !u->paused;
        if (!u->paused)
            u->next_refresh = now; /* fresh figures at once */
        rebuild = 0;
        break;
    case 'r':
        ps_top_reset(t, now);
        u->next_refresh = now + (uint64_t)(u->delay * 1e9);
        rebuild = 0;
        break;
    case KEY_DOWN: case 'j': u->first++; rebuild = 0; break;
    case KEY_UP: case 'k': u->first -= u->first > 0; rebuild = 0; break;
    case KEY_NPAGE: u->first += u->shown ? u->shown : 1; rebuild = 0; break;
    case KEY_PPAGE: u->first -= PS_MIN(u->first, u->shown ? u->shown : 1); rebuild = 0; break;
    case KEY_HOME: case 'g': u->first = 0; rebuild = 0; break;
    case 'q': case 'Q':
        u->quit = 1;
        return 0;
    case KEY_RESIZE:
    case 12: /* Ctrl-L */
        rebuild = 0;
        break;
    default:
        return 0;
    }
    if (rebuild)
        ps_top_build(t);
    return 1;
}

/* Reads every pending key; returns 1 when the view must be drawn again. */
static int ps_top_keys(struct ps_top_ui *u, uint64_t now)
{
    int dirty = 0, ch;
    while (!u->quit && (ch = getch()) != ERR)
        dirty |= ps_top_key(u, ch, now);
    return dirty;
}

/* ---- plain tables ------------------------------------------------------------------------- */

static void ps_top_print(struct ps_top_ui *u)
{
    struct ps_strbuf *sb = &u->sb;
    time_t now = time(NULL);
    struct tm tm;
    char stamp[16];
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
    ps_sb_reset(sb);
    ps_top_title(u, sb);
    ps_sb_printf(sb, "  %s\n", stamp);
    ps_top_counts_line(u, sb);
    ps_sb_addc(sb, '\n');
    ps_top_shares_text(&u->top, sb, 0);
    ps_sb_addc(sb, '\n');
    if (u->status[0])
        ps_sb_printf(sb, "%s\n", u->status);
    ps_top_columns(&u->top, sb, 0);
    ps_sb_addc(sb, '\n');
    for (uint32_t i = 0; i < u->top.nrows && (!u->max_rows || (int)i < u->max_rows); i++) {
        ps_top_row_text(&u->top, i, sb, 0);
        ps_sb_addc(sb, '\n');
    }
    ps_sb_addc(sb, '\n');
    if (fwrite(sb->buf, 1, sb->len, stdout) != sb->len || fflush(stdout) != 0) {
        if (errno == EPIPE) {
            /* `pysample top PID | head`: the reader has what it wanted. */
            u->pipe_closed = 1;
            __fpurge(stdout);
            clearerr(stdout);
        }
        u->quit = 1;
    }
}

/* ---- the sampler's hook ------------------------------------------------------------------- */

static int ps_top_hook(struct ps_sampler *s, void *arg)
{
    struct ps_top_ui *u = arg;
    (void)s;
    uint64_t now = ps_now_ns();
    int dirty = u->screen ? ps_top_keys(u, now) : 0;
    if (u->quit)
        return 1;
    /* The sampler calls back every --delay seconds in plain mode (refresh each time), every
     * PS_TOP_KEY_PERIOD on a screen (refresh when the delay is up, give or take half that). */
    if (!u->paused &&
        (!u->screen || now + (uint64_t)(PS_TOP_KEY_PERIOD / 2 * 1e9) >= u->next_refresh)) {
        u->next_refresh = now + (uint64_t)(u->delay * 1e9);
        ps_top_info(u);
        ps_top_refresh(&u->top, now);
        if (!u->screen) {
            ps_top_print(u);
            return u->quit;
        }
        dirty = 1;
    }
    if (dirty)
        ps_top_draw(u);
    return 0;
}

/* ---- launching a command ------------------------------------------------------------------ */


/* Attaches to a freshly launched child as soon as it runs an interpreter. */
static int ps_top_attach_child(struct ps_sampler *s, pid_t pid, int *status)
{
    for (;;) {
        int rc = ps_sampler_add_root(s, pid);
        if (rc == 0)
            return 0;
        if (rc != PS_ENOTPY && rc != PS_EELF && rc != PS_EFAULT && rc != PS_EVERSION)
            return rc;
        if (waitpid(pid, status, WNOHANG) == pid)
            return PS_ENOPROC;
        if (ps_top_stop)
            return PS_EINTERRUPTED;
        struct timespec ts = {0, 1000000}; /* 1 ms between attempts while the child starts */
        nanosleep(&ts, NULL);
    }
}

static int ps_top_exit_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return PS_EXIT_FAIL;
}

/* ---- options ------------------------------------------------------------------------------ */

static void ps_top_help(FILE *f)
{
    fprintf(f,
            "usage: pysample top [OPTIONS] PID\n"
            "       pysample top [OPTIONS] -- CMD [ARGS...]\n"
            "\n"
            "A live view of where PID (or CMD) spends its time, refreshed every --delay seconds.\n"
            "Keys: 1-4 (or o c O C) sort by %%Own, %%Total, OwnTime, TotalTime; i shares over the\n"
            "last interval / since the start; t per thread; p per process; space pause;\n"
            "r reset; arrows, j k, PgUp PgDn, Home scroll; q quit.\n"
            "Not on a terminal: a plain table every interval.\n"
            "\n"
            "  -r, --rate HZ          samples per second, 0.001 to 100000 (default 100)\n"
            "      --delay SEC        seconds between refreshes, 0.01 to 3600 (default 1)\n"
            "  -d, --duration SEC     stop sampling after SEC seconds, 0.001 to 10000000 (the view\n"
            "                         stays until q)\n"
            "      --lines            one row per line instead of per function\n"
            "      --function         one row per function (the default)\n"
            "      --threads          start with one row per function and thread (key t)\n"
            "      --subprocesses     also sample Python child processes\n"
            "      --idle             keep idle threads (default: dropped)\n"
            "      --gil              only the thread holding the GIL\n"
            "      --native           also C frames (extensions, libraries), merged in place;\n"
            "                         stops each sampled thread for tens of microseconds\n"
            "      --full-filenames   do not shorten file names\n"
            "      --rows N           plain tables: at most N rows (default 20, 0 = all)\n"
            "      --plain            plain tables even on a terminal\n"
            "  -v, --verbose          more detail on stderr\n");
}

enum {
    OPT_DELAY = 1000,
    OPT_LINES,
    OPT_FUNCTION,
    OPT_SUBPROCESSES,
    OPT_IDLE,
    OPT_GIL,
    OPT_NATIVE,
    OPT_FULL,
    OPT_ROWS,
    OPT_PLAIN,
    OPT_THREADS,
};

/* Returns 0, PS_EXIT_USAGE after an error line, or -1 after --help. */
static int ps_top_parse(int argc, char **argv, struct ps_sampler_opts *so, struct ps_top_ui *u,
                        int *by_line, int *plain, int *argi)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"lines", no_argument, NULL, OPT_LINES},
        {"function", no_argument, NULL, OPT_FUNCTION},
        {"subprocesses", no_argument, NULL, OPT_SUBPROCESSES},
        {"idle", no_argument, NULL, OPT_IDLE},
        {"gil", no_argument, NULL, OPT_GIL},
        {"native", no_argument, NULL, OPT_NATIVE},
        {"full-filenames", no_argument, NULL, OPT_FULL},
        {"rows", required_argument, NULL, OPT_ROWS},
        {"plain", no_argument, NULL, OPT_PLAIN},
        {"threads", no_argument, NULL, OPT_THREADS},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, ":r:d:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (ps_cmd_parse_number("top", "rate", "samples per second", optarg, PS_CMD_RATE_MIN,
                                    PS_CMD_RATE_MAX, &so->rate_hz))
                return PS_EXIT_USAGE;
            break;
        case 'd':
            if (ps_cmd_parse_number("top", "duration", "seconds", optarg, PS_CMD_DURATION_MIN,
                                    PS_CMD_DURATION_MAX, &so->duration_s))
                return PS_EXIT_USAGE;
            break;
        case OPT_DELAY:
            if (ps_cmd_parse_number("top", "delay", "seconds", optarg, 0.01, 3600, &u->delay))
                return PS_EXIT_USAGE;
            break;
        case OPT_ROWS:
            if (ps_cmd_parse_number("top", "row count", "a whole number", optarg, 0, 1e6, &v))
                return PS_EXIT_USAGE;
            if (v != (int)v)
                return ps_cmd_usage_error("top", "invalid row count '%s' (expected a whole number)",
                                          optarg);
            u->max_rows = (int)v;
            break;
        case OPT_LINES: *by_line = 1; break;
        case OPT_FUNCTION: *by_line = 0; break;
        case OPT_SUBPROCESSES: so->subprocesses = 1; break;
        case OPT_IDLE: so->idle = 1; break;
        case OPT_GIL: so->gil_only = 1; break;
        case OPT_NATIVE: so->native = 1; break;
        case OPT_FULL: so->full_filenames = 1; break;
        case OPT_PLAIN: *plain = 1; break;
        case OPT_THREADS: u->top.per_thread = 1; break;
        case 'v': ps_verbose++; break;
        case 'h': ps_top_help(stdout); return -1;
        case ':':
            return ps_cmd_usage_error("top", "option '%s' needs a value", argv[optind - 1]);
        default:
            return ps_cmd_usage_error("top", "unknown option '%s'", argv[optind - 1]);
        }
    }
    *argi = optind;
    return 0;
}

/* ---- the command -------------------------------------------------------------------------- */

int cmd_top(int argc, char **argv)
{
    struct ps_top_ui u;
    memset(&u, 0, sizeof u);
    u.delay = 1.0;
    u.max_rows = 20;
    struct ps_sampler_opts so;
    memset(&so, 0, sizeof so);
    so.rate_hz = 100;
    int by_line = 0, plain = 0, argi = 0;
    /* Options end at "--": what follows is the command, its options its own. */
    int nopt = argc;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            nopt = i;
            break;
        }
    int rc = ps_top_parse(nopt, argv, &so, &u, &by_line, &plain, &argi);
    if (rc)
        return rc < 0 ? PS_EXIT_OK : rc;
    char **cmd = nopt < argc ? argv + nopt + 1 : NULL;
    if (cmd && !cmd[0])
        return ps_cmd_usage_error("top", "no command after '--'");
    if (cmd && argi < nopt)
        return ps_cmd_usage_error("top", "give either PID or -- CMD, not both");
    if (!cmd && argi >= nopt)
        return ps_cmd_usage_error("top", "missing PID (or -- CMD ARGS...)");
    if (!cmd && argi != nopt - 1)
        return ps_cmd_usage_error("top", "too many arguments");
    pid_t pid = 0;
    if (!cmd && (pid = ps_cmd_parse_pid("top", argv[argi])) < 0)
        return PS_EXIT_USAGE;
    u.screen = !plain && isatty(STDOUT_FILENO);

    /* Every stack gets its thread root, so that the per-thread view is one key away. */
    so.threads = 1;
    so.by_function = !by_line;
    ps_top_signals();
    if (cmd) {
        pid = ps_cmd_launch("top", cmd, u.screen);
        if (pid < 0)
            return PS_EXIT_FAIL;
        so.child = pid;
    }
    struct ps_profile prof;
    ps_profile_init(&prof);
    struct ps_sampler s;
    ps_sampler_init(&s, &so, &prof, &ps_top_stop);
    int child_status = -1;
    rc = cmd ? ps_top_attach_child(&s, pid, &child_status) : ps_sampler_add_root(&s, pid);
    if (rc < 0) {
        int status;
        if (cmd && rc == PS_ENOPROC)
            status = (fprintf(stderr, "pysample: top: '%s' exited before it ran Python\n", cmd[0]),
                      PS_EXIT_FAIL);
        else if (cmd && rc == PS_EINTERRUPTED)
            status = PS_EXIT_OK;
        else
            status = ps_cmd_attach_error(pid, rc);
        if (cmd && child_status == -1)
            while (waitpid(pid, &child_status, 0) < 0 && errno == EINTR)
                ;
        ps_sampler_release(&s);
        ps_profile_release(&prof);
        return status;
    }

    if (u.screen && ps_top_screen_open() < 0) {
        const char *term = getenv("TERM");
        fprintf(stderr, "pysample: top: cannot use the terminal (TERM=%s); printing plain tables "
                        "instead (set TERM, or use --plain)\n", term ? term : "unset");
        u.screen = 0;
    }
    u.s = &s;
    int per_thread = u.top.per_thread; /* --threads, before the view existed */
    ps_top_init(&u.top, &prof, by_line, ps_now_ns());
    u.top.per_thread = per_thread;
    ps_top_info(&u);
    u.next_refresh = ps_now_ns() + (uint64_t)(u.delay * 1e9);
    s.opts.hook = ps_top_hook;
    s.opts.hook_arg = &u;
    s.opts.hook_period_s = u.screen ? PS_MIN(PS_TOP_KEY_PERIOD, u.delay) : u.delay;
    if (u.screen)
        ps_top_draw(&u);
    ps_sampler_run(&s);

    /* Sampling is over: a quit key, a signal, --duration, or every target has exited. */
    if (!u.quit && !ps_top_stop) {
        u.ended = 1;
        int alive = 0;
        for (int i = 0; i < s.ntargets; i++)
            alive += s.targets[i]->alive;
        if (s.child_status != -1)
            snprintf(u.status, sizeof u.status, "%s (pid %d) exited with status %d; last figures "
                     "kept%s", cmd[0], (int)pid, ps_top_exit_status(s.child_status),
                     u.screen ? " (q to quit)" : "");
        else if (!alive)
            snprintf(u.status, sizeof u.status, "process %d exited; last figures kept%s", (int)pid,
                     u.screen ? " (q to quit)" : "");
        else
            snprintf(u.status, sizeof u.status, "sampling stopped after %gs; last figures kept%s",
                     so.duration_s, u.screen ? " (q to quit)" : "");
        ps_top_info(&u);
        int final = !u.paused; /* paused: the final figures come when the pause ends */
        if (final)
            ps_top_refresh(&u.top, ps_now_ns());
        if (!u.screen) {
            ps_top_print(&u);
        } else {
            ps_top_draw(&u);
            timeout(100);
            while (!u.quit && !ps_top_stop) {
                int ch = getch();
                if (ch == ERR || !ps_top_key(&u, ch, ps_now_ns()))
                    continue;
                if (!final && !u.paused) {
                    final = 1;
                    ps_top_refresh(&u.top, ps_now_ns());
                }
                ps_top_draw(&u);
            }
        }
    }
    ps_top_endwin();
    if (ps_top_scr) {
        delscreen(ps_top_scr);
        ps_top_scr = NULL;
    }
    if (ps_top_tty) {
        fclose(ps_top_tty);
        ps_top_tty = NULL;
    }
    int status = PS_EXIT_OK;
    if (cmd) {
        int st = s.child_status != -1 ? s.child_status : -1;
        if (st == -1) {
            fprintf(stderr, "pysample: top: waiting for '%s' (pid %d) to exit\n", cmd[0], (int)pid);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        }
        if (st != -1)
            status = ps_top_exit_status(st);
    }
    ps_sb_release(&u.sb);
    ps_top_release(&u.top);
    ps_sampler_release(&s);
    ps_profile_release(&prof);
    return status;
}
