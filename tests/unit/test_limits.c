/* test_limits.c — Criterion suite `limits`: what the walker and the maps lookups do at their
 * limits, over the fake interpreter (fakepy.c): names and file names longer than the code
 * cache keeps are cut with "...", never refused (a refused code object drops every sample of
 * its frames); absurd string lengths are still refused; a layout whose fields lie beyond the
 * bytes the walker copies per thread state or frame (corrupt _Py_DebugOffsets) is refused at
 * attach; ps_maps_readable on ranges that wrap around the top of the address space, maps
 * lines whose permissions are not permissions, and an error detail built from the previous one.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fakepy.h"
#include "ps_python.h"
#include "ps_util.h"

#define TID 4301

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A one-thread world whose frame runs a code object named `name` in `file`. */
static struct fp_world *one_frame(int major, int minor, const char *name, const char *file,
                                  uint64_t *code)
{
    struct fp_world *w = fp_new(major, minor);
    static const int lines[4] = {7, 8, 8, 9};
    struct fp_code_spec c = {name, name, file, 7, lines, 4};
    *code = fp_code(w, &c);
    struct fp_frame f = {*code, 1, FP_PY, 0};
    fp_thread(w, TID, &f, 1, 0);
    return w;
}

static void long_names(int major, int minor)
{
    char *name = repeat('n', 3000), *file = repeat('f', 6000);
    file[0] = '/';
    uint64_t code;
    struct fp_world *w = one_frame(major, minor, name, file, &code);
    cr_assert_eq(fp_attach(w), 0);
    struct ps_py_snapshot snap;
    ps_py_snapshot_init(&snap);
    cr_assert_eq(ps_py_sample(&w->py, &snap), 0);
    const struct ps_py_thread *t = fp_snap_thread(&snap, TID);
    cr_assert_not_null(t);
    cr_assert_eq(t->err, 0, "%d.%d: a long name made the frame fail (%s)", major, minor,
                 ps_strerror(t->err));
    cr_assert_eq(t->nframes, 1);
    const char *got_name = t->frames[0].code->name, *got_file = t->frames[0].code->file;
    cr_expect_eq(strlen(got_name), 1024 + 3, "%d.%d: name of %zu bytes", major, minor,
                 strlen(got_name));
    cr_expect_eq(strncmp(got_name, name, 1024), 0);
    cr_expect_str_eq(got_name + 1024, "...");
    cr_expect_eq(strlen(got_file), 4096 + 3, "%d.%d: file of %zu bytes", major, minor,
                 strlen(got_file));
    cr_expect_eq(strncmp(got_file, file, 4096), 0);
    cr_expect_str_eq(got_file + 4096, "...");
    cr_expect_eq(t->frames[0].line, 8);

    /* A length no string can have is a corrupt (or torn) header: refused as before. */
    uint64_t p_name;
    int32_t off = w->lay.co_qualname >= 0 ? w->lay.co_qualname : w->lay.co_name;
    cr_assert_eq(ps_mem_read_u64(&w->py.mem, code + (uint64_t)off, &p_name), 0);
    int32_t len_off = w->lay.str_model == PS_STR_BYTES27 ? w->lay.var_ob_size : w->lay.str_length;
    uint64_t absurd = (uint64_t)1 << 40;
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, p_name + (uint64_t)len_off, &absurd, 8), 0);
    /* Rewritten with a new key (co_version, pointers, generation) so the cached entry is read
     * again, then pointed back at the string with the absurd length. */
    static const int lines[4] = {7, 8, 8, 9};
    struct fp_code_spec other = {"x", "x", "/x.py", 7, lines, 4};
    fp_code_rewrite(w, code, &other, 1);
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, code + (uint64_t)off, &p_name, 8), 0);
    if (w->lay.is_code_generation >= 0)
        fp_bump_generation(w);
    cr_assert_eq(ps_py_sample(&w->py, &snap), 0);
    t = fp_snap_thread(&snap, TID);
    cr_assert_not_null(t);
    cr_expect_neq(t->err, 0, "%d.%d: a 2^40-character name was accepted", major, minor);
    ps_py_snapshot_release(&snap);
    fp_free(w);
    free(name);
    free(file);
}

Test(limits, long_names_are_cut_27) { long_names(2, 7); }
Test(limits, long_names_are_cut_36) { long_names(3, 6); }
Test(limits, long_names_are_cut_310) { long_names(3, 10); }
Test(limits, long_names_are_cut_311) { long_names(3, 11); }
Test(limits, long_names_are_cut_312) { long_names(3, 12); }
Test(limits, long_names_are_cut_313) { long_names(3, 13); }
Test(limits, long_names_are_cut_314) { long_names(3, 14); }

/* Every built-in layout fits the walker's copies. */
Test(limits, builtin_layouts_fit)
{
    int n;
    const struct ps_py_offsets *const *all = ps_pyoffsets_all(&n);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        struct ps_py py;
        memset(&py, 0, sizeof py);
        py.off = *all[i];
        py.major = all[i]->major;
        py.minor = all[i]->minor;
        cr_expect_eq(ps_py_attach_fake(&py), 0, "built-in %d.%d layout refused", py.major,
                     py.minor);
        ps_py_detach(&py);
    }
}

/* _Py_DebugOffsets (3.13: thread_state.size at 152, .next at 168; interpreter_frame.size at
 * 224) can describe structs up to 1 MiB; fields beyond the walker's copies must be refused
 * at attach, not read past a buffer. */
Test(limits, debug_offsets_beyond_the_copies_are_refused)
{
    uint64_t code;
    struct fp_world *w = one_frame(3, 13, "f", "/f.py", &code);
    cr_assert_eq(fp_attach(w), 0);
    uint64_t v = 0xF0000; /* a thread state of 960 KiB: allowed, only the first 4 KiB is read */
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime + 152, &v, 8), 0);
    cr_assert_eq(ps_py_pick_layout(&w->py), 0);
    cr_assert_eq(w->py.off.ts_size, 0xF0000);
    cr_assert_eq(ps_py_attach_fake(&w->py), 0, "fields inside the first 4 KiB must be fine");

    v = 5000; /* thread_state.datastack_chunk beyond the 4 KiB copy */
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime + 208, &v, 8), 0);
    cr_assert_eq(ps_py_pick_layout(&w->py), 0, "the block itself is consistent");
    cr_expect_eq(ps_py_attach_fake(&w->py), PS_EVERSION);
    cr_expect_not_null(ps_err_detail());

    v = 0x1000; /* interpreter_frame.size beyond the 512-byte frame copy */
    uint64_t chunk = (uint64_t)w->lay.ts_datastack_chunk; /* back to the real one */
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime + 208, &chunk, 8), 0);
    uint64_t fsize;
    cr_assert_eq(ps_mem_read_u64(&w->py.mem, w->runtime + 224, &fsize), 0);
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime + 224, &v, 8), 0);
    cr_assert_eq(ps_py_pick_layout(&w->py), 0);
    cr_expect_eq(ps_py_attach_fake(&w->py), PS_EVERSION);

    /* every field read from the copy is checked, the data stack's limit too */
    cr_assert_eq(ps_mem_fake_write(&w->py.mem, w->runtime + 224, &fsize, 8), 0);
    cr_assert_eq(ps_py_pick_layout(&w->py), 0);
    cr_expect_eq(ps_py_attach_fake(&w->py), 0, "the real sizes back");
    w->py.off.ts_datastack_limit = 5000;
    cr_expect_eq(ps_py_attach_fake(&w->py), PS_EVERSION);
    fp_free(w);
}

Test(limits, readable_never_wraps_the_address_space)
{
    static const char text[] = "1000-2000 r--p 00000000 00:00 0\n"
                               "fffffffffffff000-ffffffffffffffff r--p 00000000 00:00 0\n";
    struct ps_maps m;
    cr_assert_eq(ps_maps_parse(text, sizeof text - 1, &m), 0);
    cr_expect(ps_maps_readable(&m, 0xfffffffffffff000ull, 0xffe));
    cr_expect(ps_maps_readable(&m, 0xfffffffffffff000ull, 0xfff));
    /* [addr, 2^64) would include the byte at 2^64 - 1, which the mapping excludes */
    cr_expect_not(ps_maps_readable(&m, 0xfffffffffffff000ull, 0x1000));
    cr_expect_not(ps_maps_readable(&m, 0xfffffffffffff000ull, 0x2000));
    cr_expect_not(ps_maps_readable(&m, 0x1000, SIZE_MAX));
    cr_expect(ps_maps_readable(&m, 0x1000, 0x1000));
    ps_maps_release(&m);
}

Test(limits, maps_permissions_must_be_permissions)
{
    static const char nul[] = "1000-2000 r\0-p 00000000 00:00 0\n";
    static const char junk[] = "1000-2000 rwxq 00000000 00:00 0\n";
    static const char ok[] = "1000-2000 r-xs 00000000 00:00 0\n";
    struct ps_maps m;
    cr_expect_eq(ps_maps_parse(nul, sizeof nul - 1, &m), PS_EFORMAT);
    cr_expect_eq(ps_maps_parse(junk, sizeof junk - 1, &m), PS_EFORMAT);
    cr_assert_eq(ps_maps_parse(ok, sizeof ok - 1, &m), 0);
    cr_expect_str_eq(m.v[0].perms, "r-xs");
    ps_maps_release(&m);
}

/* Callers add context to a lower layer's detail by passing ps_err_detail() to ps_err_set. */
Test(limits, err_detail_may_quote_itself)
{
    ps_err_set("inner %d", 42);
    ps_err_set("outer: %s; more", ps_err_detail());
    cr_expect_str_eq(ps_err_detail(), "outer: inner 42; more");
    ps_err_clear();
}
