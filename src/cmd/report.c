/* report.c — `pysample report FILE...`: re-render saved folded files offline.
 *
 * Thin: parses options, streams every file through the folded reader (out/) into one merged
 * profile, and hands it to the chosen writer (table by default, on stdout or to -o FILE).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
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

    struct ps_profile p;
    ps_profile_init(&p);
    int status = PS_EXIT_OK;
    for (int i = optind; i < argc && status == PS_EXIT_OK; i++)
        status = ps_report_read(argv[i], &p);
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
