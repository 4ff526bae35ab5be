/* report.c — `pysample report FILE...`: re-render saved folded files offline.
 *
 * Thin: parses options, streams every file through the folded reader (out/) into one merged
 * profile, and hands it to the chosen writer (table by default, on stdout or to -o FILE).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_cmd.h"
#include "ps_output.h"
#include "ps_util.h"

static void ps_report_help(FILE *f)
{
    fprintf(f,
            "usage: pysample report [-f FORMAT] [-o FILE] [--function] FILE...\n"
            "\n"
            "Read folded-stack files (pysample's own, py-spy raw, Austin collapsed, Tachyon,\n"
            "pyflame or plain folded; FILE '-' is standard input), merge them, and print\n"
            "them again in another format.\n"
            "\n"
            "  -f, --format FORMAT   %s (default: from the -o extension, else table)\n"
            "  -o, --output FILE     write FILE (atomically) instead of standard output\n"
            "      --function        table: one row per function instead of per line\n"
            "  -h, --help            this help\n",
            ps_writer_names());
}

/* Reads one file into p; prints the error line and returns PS_EXIT_FAIL on failure. */
static int ps_report_read(const char *path, struct ps_profile *p)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pysample: cannot open %s: %s\n", path, strerror(errno));
        return PS_EXIT_FAIL;
    }
    ps_err_clear();
    int rc = ps_folded_read(f, is_stdin ? "<stdin>" : path, p);
    if (!is_stdin)
        fclose(f);
    if (rc) {
        const char *d = ps_err_detail();
        fprintf(stderr, "pysample: %s\n", d ? d : ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

static int ps_rate_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* Merges the files into p. Files at different rates are weighted by their own interval: the
 * shortest interval is the unit, and a sample of a file at interval I counts I / unit. The
 * result does not depend on the order of the files. */
static void ps_report_merge(struct ps_profile *p, struct ps_profile *files, int n)
{
    double unit = 0;
    double *rates = ps_xcalloc((size_t)n + 1, sizeof *rates);
    int nrates = 0;
    for (int i = 0; i < n; i++) {
        double iv = files[i].interval_s;
        if (iv <= 0)
            continue;
        if (unit <= 0 || iv < unit)
            unit = iv;
        double hz = 1.0 / iv;
        int seen = 0;
        for (int j = 0; j < nrates; j++)
            if (rates[j] > hz * 0.999999 && rates[j] < hz * 1.000001)
                seen = 1;
        if (!seen)
            rates[nrates++] = hz;
    }
    p->interval_s = unit;
    if (nrates > 1) {
        p->stats.rate_hz = 1.0 / unit;
        qsort(rates, (size_t)nrates, sizeof *rates, ps_rate_cmp);
        char buf[256];
        size_t len = 0;
        for (int j = 0; j < nrates && len < sizeof buf - 32; j++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%g", j ? "," : "", rates[j]);
        ps_meta_set(&p->meta, "rates", buf);
        fprintf(stderr, "pysample: report: files recorded at %s Hz; samples weighted to %g Hz "
                        "(each file by its own interval)\n",
                buf, 1.0 / unit);
    }
    free(rates);
    for (int i = 0; i < n; i++) {
        double iv = files[i].interval_s;
        ps_profile_merge(p, &files[i], iv > 0 && unit > 0 ? iv / unit : 1.0);
    }
}

int cmd_report(int argc, char **argv)
{
    enum { OPT_FUNCTION = 256 };
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"function", no_argument, NULL, OPT_FUNCTION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = NULL, *output = NULL;
    struct ps_out_opts o = {0};

    optind = 0; /* full re-initialisation: argv[0] is "report" */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":f:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case OPT_FUNCTION:
            o.by_function = 1;
            break;
        case 'h':
            ps_report_help(stdout);
            return PS_EXIT_OK;
        case ':':
            return ps_cmd_usage_error("report", "option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 128 && strncmp(argv[optind - 1], "--", 2) != 0)
                return ps_cmd_usage_error("report", "unknown option '-%c'", optopt);
            return ps_cmd_usage_error("report", "bad option '%s'", argv[optind - 1]);
        }
    }

    const struct ps_writer *w = NULL;
    if (format) {
        w = ps_writer_find(format);
        if (!w)
            return ps_cmd_usage_error("report", "unknown format '%s' (valid formats: %s)", format,
                                      ps_writer_names());
    } else if (output) {
        w = ps_writer_for_path(output);
    }
    if (!w)
        w = ps_writer_find("table");
    if (optind >= argc) {
        fprintf(stderr, "pysample: report: no input files (usage: pysample report [-f FORMAT] "
                        "[-o FILE] [--function] FILE...)\n");
        return PS_EXIT_USAGE;
    }

    /* Each file on its own first, so that each is weighted by its own interval. */
    int nfiles = argc - optind;
    struct ps_profile *files = ps_xcalloc((size_t)nfiles, sizeof *files);
    int status = PS_EXIT_OK;
    for (int i = 0; i < nfiles && status == PS_EXIT_OK; i++) {
        ps_profile_init(&files[i]);
        status = ps_report_read(argv[optind + i], &files[i]);
    }
    struct ps_profile p;
    ps_profile_init(&p);
    if (status == PS_EXIT_OK)
        ps_report_merge(&p, files, nfiles);
    for (int i = 0; i < nfiles; i++)
        if (files[i].in)
            ps_profile_release(&files[i]);
    free(files);
    if (status == PS_EXIT_OK) {
        ps_err_clear();
        int rc = ps_output_write_path(w, output ? output : "-", &p, &o);
        if (rc && !output && errno == EPIPE) {
            status = PS_EXIT_WARN; /* the reader went away (| head): not worth a message */
        } else if (rc) {
            const char *d = ps_err_detail();
            fprintf(stderr, "pysample: %s\n", d ? d : ps_strerror(rc));
            status = PS_EXIT_FAIL;
        }
    }
    ps_profile_release(&p);
    return status;
}
