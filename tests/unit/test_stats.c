/* test_stats.c — the statistics that must agree with themselves: missed ticks and truncated
 * samples written to folded files and read back, printed in the table apart from drops; a frame
 * without a known line shown as `file:?:function`, never `file:0:function`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

static void add1(struct ps_profile *p, const char *name, const char *file, int line, uint64_t n)
{
    uint32_t id = ps_intern_frame(p->in, ps_intern_str(p->in, name, strlen(name)),
                                  ps_intern_str(p->in, file, strlen(file)), line);
    ps_profile_add(p, ps_intern_stack(p->in, &id, 1), n);
}

static char *render(const struct ps_profile *p, int table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(table ? ps_table_write(f, p, NULL) : ps_folded_write(f, p, NULL), 0);
    fclose(f);
    return buf;
}

static void sample_profile(struct ps_profile *p)
{
    ps_profile_init(p);
    p->has_stats = 1;
    p->interval_s = 0.01;
    p->stats = (struct ps_stats){.rate_hz = 100, .duration_s = 3, .ticks = 120, .late_ticks = 1,
                                 .missed_ticks = 175, .thread_samples = 120, .truncated = 7,
                                 .dropped = {[PS_DROP_TORN] = 2},
                                 .sample_ns_min = 1000, .sample_ns_median = 2000,
                                 .sample_ns_max = 1750000000};
    add1(p, "f", "a.py", 3, 120);
}

Test(stats, missed_and_truncated_round_trip)
{
    struct ps_profile p, q;
    sample_profile(&p);
    char *out = render(&p, 0);
    cr_expect(strstr(out, "# missed_ticks=175\n") != NULL, "%s", out);
    cr_expect(strstr(out, "# truncated=7\n") != NULL, "%s", out);
    cr_expect(strstr(out, "depth=0,") != NULL, "truncated samples are not depth drops: %s", out);
    ps_profile_init(&q);
    FILE *f = fmemopen(out, strlen(out), "r");
    cr_assert_eq(ps_folded_read(f, "s.folded", &q), 0, "%s", ps_err_detail());
    fclose(f);
    cr_expect_eq(q.stats.missed_ticks, 175);
    cr_expect_eq(q.stats.truncated, 7);
    cr_expect_eq(q.stats.late_ticks, 1);
    cr_expect_eq(ps_stats_dropped_total(&q.stats), 2);
    free(out);
    ps_profile_release(&p);
    ps_profile_release(&q);
}

Test(stats, table_footer_says_what_the_numbers_are)
{
    struct ps_profile p;
    sample_profile(&p);
    char *out = render(&p, 1);
    cr_expect(strstr(out, "Ticks: 120, late: 1 (0.8%), missed: 175 (deadlines passed without a "
                          "tick)\n") != NULL, "%s", out);
    cr_expect(strstr(out, "Dropped samples: 2 (torn read: 2)\n") != NULL, "%s", out);
    cr_expect(strstr(out, "Truncated samples: 7 (counted, outermost frames cut)\n") != NULL, "%s",
              out);
    cr_expect(strstr(out, "Sample count: 120\n") != NULL, "%s", out);
    free(out);
    /* Nothing missed, nothing truncated: the lines stay as they were. */
    p.stats.missed_ticks = 0;
    p.stats.truncated = 0;
    out = render(&p, 1);
    cr_expect(strstr(out, "Ticks: 120, late: 1 (0.8%)\n") != NULL, "%s", out);
    cr_expect(strstr(out, "Truncated") == NULL, "%s", out);
    free(out);
    ps_profile_release(&p);
}

Test(stats, unknown_line_is_a_question_mark)
{
    struct ps_profile p;
    ps_profile_init(&p);
    p.interval_s = 0.01;
    add1(&p, "gen", "/srv/app/g.py", 0, 5);
    add1(&p, "run", "/srv/app/g.py", 12, 3);
    char *out = render(&p, 1);
    cr_expect(strstr(out, "  g.py:?:gen\n") != NULL, "%s", out);
    cr_expect(strstr(out, ":0:") == NULL, "%s", out);
    cr_expect(strstr(out, "  g.py:12:run\n") != NULL, "%s", out);
    free(out);
    ps_profile_release(&p);
}
