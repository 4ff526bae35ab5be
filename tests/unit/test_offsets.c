/* test_offsets.c — the built-in CPython layout tables (python/offsets_data.c): spot checks
 * against values verified on the installed interpreters, lookup behaviour, and internal
 * consistency of every table (offsets inside their structs, models matching the fields).
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include "ps_pyoffsets.h"

static const struct ps_py_offsets *get(int major, int minor)
{
    const struct ps_py_offsets *o = ps_pyoffsets_lookup(major, minor);
    cr_assert_not_null(o, "no table for %d.%d", major, minor);
    cr_assert_eq(o->major, major);
    cr_assert_eq(o->minor, minor);
    return o;
}

Test(offsets, spot_values_27_36)
{
    const struct ps_py_offsets *o = get(2, 7);
    cr_assert(o->flags & PS_PYF_INTERP_HEAD_SYM);
    cr_assert_eq(o->gil_model, PS_GIL_TSTATE_CURRENT_SYM);
    cr_assert_eq(o->str_model, PS_STR_BYTES27);
    cr_assert_eq(o->line_format, PS_LINES_LNOTAB27);
    cr_assert_eq(o->frame_model, PS_FRAMES_OBJECTS);
    cr_assert_eq(o->var_ob_size, 16);
    cr_assert_eq(o->bytes_sval, 36);
    cr_assert_eq(o->ts_prev, PS_OFF_NONE);
    cr_assert_eq(o->ts_next, 0);
    cr_assert_eq(o->ts_frame, 16);
    cr_assert_eq(o->ts_thread_id, 144);
    cr_assert_eq(o->fo_lasti, 120);
    cr_assert_eq(o->co_firstlineno, 96);
    cr_assert_eq(o->co_linetable, 104);
    cr_assert_eq(o->rt_interp_head, PS_OFF_NONE);
    cr_assert_eq(o->str_state, PS_OFF_NONE);

    o = get(3, 6);
    cr_assert(o->flags & PS_PYF_INTERP_HEAD_SYM);
    cr_assert_eq(o->gil_model, PS_GIL_TSTATE_CURRENT_SYM);
    cr_assert_eq(o->line_format, PS_LINES_LNOTAB);
    cr_assert_eq(o->ts_size, 2272);
    cr_assert_eq(o->co_filename, 96);
    cr_assert_eq(o->str_ascii_size, 48);
}

Test(offsets, spot_values_37_310)
{
    const struct ps_py_offsets *o = get(3, 7);
    cr_assert_not(o->flags & PS_PYF_INTERP_HEAD_SYM);
    cr_assert_eq(o->gil_model, PS_GIL_RUNTIME);
    cr_assert_eq(o->rt_interp_head, 24);
    cr_assert_eq(o->rt_tstate_current, 1480);
    cr_assert_eq(o->rt_gil_last_holder, 1272);
    cr_assert_eq(o->rt_gil_locked, 1280);
    cr_assert_eq(o->fo_lasti, 104);

    o = get(3, 8);
    cr_assert_eq(o->rt_tstate_current, 1368);
    cr_assert_eq(o->is_modules, 56);

    o = get(3, 9);
    cr_assert_eq(o->rt_tstate_current, 568);
    cr_assert_eq(o->is_modules, 856);

    o = get(3, 10);
    cr_assert_eq(o->fo_lasti_scale, 2);
    cr_assert_eq(o->fo_lasti, 96);
    cr_assert_eq(o->line_format, PS_LINES_LINETABLE310);
    cr_assert_eq(o->co_linetable, 120);
    for (int minor = 6; minor <= 9; minor++)
        cr_assert_eq(get(3, minor)->fo_lasti_scale, 1, "3.%d", minor);
}

Test(offsets, spot_values_311_314)
{
    const struct ps_py_offsets *o = get(3, 11);
    cr_assert_eq(o->frame_model, PS_FRAMES_INTERP);
    cr_assert_eq(o->if_owner, 69);
    cr_assert_eq(o->if_is_entry, 68);
    cr_assert_eq(o->if_code, 32);
    cr_assert_eq(o->if_previous, 48);
    cr_assert_eq(o->if_owner_skip_min, 0);
    cr_assert_eq(o->ts_cframe, 56);
    cr_assert_eq(o->cf_current_frame, 8);
    cr_assert_eq(o->ts_native_thread_id, 160);
    cr_assert_eq(o->rt_tstate_current, 576);
    cr_assert_eq(o->str_ascii_size, 48);
    cr_assert(o->flags & PS_PYF_CFRAME);
    cr_assert(o->flags & PS_PYF_HAS_QUALNAME);

    o = get(3, 12);
    cr_assert_eq(o->ts_native_thread_id, 144);
    cr_assert_eq(o->ts_thread_id, 136);
    cr_assert_eq(o->cf_current_frame, 0);
    cr_assert_eq(o->gil_model, PS_GIL_INTERP);
    cr_assert_eq(o->is_ceval_gil, 384);
    cr_assert_eq(o->gil_last_holder, 8);
    cr_assert_eq(o->gil_locked, 16);
    cr_assert_eq(o->if_owner_skip_min, 3);
    cr_assert_eq(o->str_ascii_size, 40);
    cr_assert_eq(o->str_compact_size, 56);
    cr_assert_eq(o->co_version, 92);
    cr_assert_eq(o->rt_tstate_current, PS_OFF_NONE);

    o = get(3, 13);
    cr_assert_eq(o->rt_interp_head, 632);
    cr_assert_eq(o->ts_frame, 72);
    cr_assert_eq(o->ts_cframe, PS_OFF_NONE);
    cr_assert_eq(o->ts_status, 32);
    cr_assert_eq(o->ts_holds_gil, 5);
    cr_assert(o->flags & PS_PYF_HOLDS_GIL_BIT);
    cr_assert(o->flags & PS_PYF_DEBUG_OFFSETS);
    cr_assert_not(o->flags & PS_PYF_CFRAME);
    cr_assert_not(o->flags & PS_PYF_DERIVED);
    cr_assert_eq(o->is_ceval_gil, 16);
    cr_assert_eq(o->co_code_adaptive, 200);

    /* 3.14 and 3.15: generated from Debian's 3.14.10 / 3.15.2 headers (with the -D_Py_TIER2=3
     * -D_Py_JIT of their PY_CORE_CFLAGS); values as measured against the binaries. */
    o = get(3, 14);
    cr_assert_not(o->flags & PS_PYF_DERIVED);
    cr_assert(o->flags & PS_PYF_TAGGED_CODE);
    cr_assert(o->flags & PS_PYF_HOLDS_GIL_INT);
    cr_assert_not(o->flags & PS_PYF_HOLDS_GIL_BIT);
    cr_assert_not(o->flags & PS_PYF_FREE_THREADED);
    cr_assert_eq(o->rt_interp_head, 808);
    cr_assert_eq(o->ts_holds_gil, 36);
    cr_assert_eq(o->if_owner, 74);
    cr_assert_eq(o->if_localsplus, 80);
    cr_assert_eq(o->if_owner_skip_min, 3);
    cr_assert_eq(o->tuple_ob_item, 32);
    cr_assert_eq(o->is_code_generation, 7992);
    cr_assert_eq(o->is_modules, 7688);
    cr_assert_eq(o->is_size, 225864);
    cr_assert_eq(o->ts_size, 832);
    cr_assert_eq(o->rt_size, 316616);
    cr_assert_eq(o->rt_interp_main, 816);
    cr_assert_eq(o->ts_state, 44);
    cr_assert_eq(o->if_owner_max, 4);
    cr_assert_eq(o->co_code_adaptive, 208);

    o = get(3, 15);
    cr_assert(o->flags & PS_PYF_TAGGED_CODE);
    cr_assert(o->flags & PS_PYF_HOLDS_GIL_INT);
    cr_assert_eq(o->rt_interp_head, 936);
    cr_assert_eq(o->is_modules, 7592);
    cr_assert_eq(o->is_code_generation, 7944);
    cr_assert_eq(o->ts_size, 888);
    cr_assert_eq(o->ts_thread_id, 176);
    cr_assert_eq(o->ts_native_thread_id, 184);
    cr_assert_eq(o->ts_datastack_chunk, 256);
    cr_assert_eq(o->ts_holds_gil, 36);
    cr_assert_eq(o->ts_state, 48);
    cr_assert_eq(o->if_owner, 74);
    cr_assert_eq(o->if_owner_max, 3, "3.15 dropped FRAME_OWNED_BY_CSTACK");
    cr_assert_eq(o->co_code_adaptive, 208);
    cr_assert_eq(o->co_tlbc, PS_OFF_NONE);
}

/* Free-threaded tables: 32-byte object header (ob_tid ... ob_ref_shared), code fields +16,
 * 3.14t+ string state bits 8/11/12, thread-local bytecode, GIL "enabled" word in front. */
Test(offsets, spot_values_free_threaded)
{
    for (int minor = 13; minor <= 15; minor++) {
        const struct ps_py_offsets *o = ps_pyoffsets_lookup_build(3, minor, 1);
        cr_assert_not_null(o, "3.%dt", minor);
        cr_assert(o->flags & PS_PYF_FREE_THREADED, "3.%dt", minor);
        cr_assert_neq(o, ps_pyoffsets_lookup(3, minor));
        cr_assert_eq(o->ob_type, 24, "3.%dt", minor);
        cr_assert_eq(o->var_ob_size, 32, "3.%dt", minor);
        cr_assert_eq(o->str_length, 32, "3.%dt", minor);
        cr_assert_eq(o->str_state, 48, "3.%dt", minor);
        cr_assert_eq(o->str_ascii_size, 56, "3.%dt", minor);
        cr_assert_eq(o->str_compact_size, 72, "3.%dt", minor);
        cr_assert_eq(o->co_version, 108, "3.%dt", minor);
        cr_assert_eq(o->co_filename, 128, "3.%dt", minor);
        cr_assert_eq(o->co_firstlineno, 84, "3.%dt", minor);
        cr_assert_eq(o->gil_enabled, 0, "3.%dt", minor);
        cr_assert_eq(o->gil_last_holder, 16, "3.%dt", minor);
        cr_assert_eq(o->gil_locked, 24, "3.%dt", minor);
        if (minor == 13) {
            cr_assert_eq(o->is_code_counter, 20092);
            cr_assert_eq(o->str_kind_shift, 2, "3.13t keeps interned:2");
            cr_assert_eq(o->str_compact_bit, 5);
            cr_assert_eq(o->str_ascii_bit, 6);
            cr_assert_eq(o->if_owner, 70);
            cr_assert_eq(o->if_tlbc_index, PS_OFF_NONE);
            cr_assert_eq(o->co_tlbc, PS_OFF_NONE);
            cr_assert_eq(o->co_code_adaptive, 216);
        } else {
            cr_assert_eq(o->str_kind_shift, 8, "3.%dt", minor);
            cr_assert_eq(o->str_compact_bit, 11, "3.%dt", minor);
            cr_assert_eq(o->str_ascii_bit, 12, "3.%dt", minor);
            cr_assert_eq(o->if_owner, 78, "3.%dt", minor);
            cr_assert_eq(o->if_tlbc_index, 72, "3.%dt", minor);
            cr_assert_eq(o->co_tlbc, 224, "3.%dt", minor);
            cr_assert_eq(o->co_code_adaptive, 232, "3.%dt", minor);
            cr_assert_gt(o->is_tlbc_generation, 0, "3.%dt", minor);
        }
    }
    cr_assert_null(ps_pyoffsets_lookup_build(3, 12, 1), "no free-threaded build before 3.13");
}

Test(offsets, lookup_unknown)
{
    cr_assert_null(ps_pyoffsets_lookup(3, 5));
    cr_assert_null(ps_pyoffsets_lookup(3, 16));
    cr_assert_null(ps_pyoffsets_lookup_build(3, 16, 1));
    cr_assert_null(ps_pyoffsets_lookup(2, 6));
    cr_assert_null(ps_pyoffsets_lookup(4, 0));
    cr_assert_null(ps_pyoffsets_lookup(0, 0));
    cr_assert_null(ps_pyoffsets_lookup(-1, -1));
}

Test(offsets, all_tables_listed_in_order)
{
    int n = -1;
    const struct ps_py_offsets *const *all = ps_pyoffsets_all(&n);
    cr_assert_eq(n, 14, "2.7, 3.6 .. 3.15, 3.13t .. 3.15t");
    cr_assert_eq(all[0]->major, 2);
    cr_assert_eq(all[0]->minor, 7);
    /* Version order, each default table directly followed by its free-threaded one. */
    int minor = 5;
    for (int i = 1; i < n; i++) {
        int ft = !!(all[i]->flags & PS_PYF_FREE_THREADED);
        cr_assert_eq(all[i]->major, 3);
        if (ft) {
            cr_assert_eq(all[i]->minor, minor, "table %d is 3.%dt", i, all[i]->minor);
            cr_assert_geq(minor, 13);
        } else {
            cr_assert_eq(all[i]->minor, ++minor, "table %d is 3.%d", i, all[i]->minor);
        }
        cr_assert_eq(ps_pyoffsets_lookup_build(3, all[i]->minor, ft), all[i]);
    }
    cr_assert_eq(minor, 15);
    /* Every table is generated from headers now. */
    for (int i = 0; i < n; i++)
        cr_assert_not(all[i]->flags & PS_PYF_DERIVED, "%d.%d", all[i]->major, all[i]->minor);
}

/* offset (+width) must be inside a struct of `size` bytes; NONE is allowed. */
static void inside(const struct ps_py_offsets *o, const char *name, int32_t off, int width,
                   int32_t size)
{
    if (off == PS_OFF_NONE)
        return;
    cr_assert_geq(off, 0, "%d.%d %s = %d", o->major, o->minor, name, off);
    cr_assert_gt(size, 0, "%d.%d %s = %d but its struct size is unknown", o->major, o->minor,
                 name, off);
    cr_assert_leq(off + width, size, "%d.%d %s = %d (+%d) outside size %d", o->major, o->minor,
                  name, off, width, size);
}

#define IN(field, width, size) inside(o, #field, o->field, (width), o->size)
#define SET(field)                                                                               \
    cr_assert_neq(o->field, PS_OFF_NONE, "%d.%d: " #field " missing", o->major, o->minor)
#define UNSET(field)                                                                             \
    cr_assert_eq(o->field, PS_OFF_NONE, "%d.%d: " #field " = %d", o->major, o->minor, o->field)

Test(offsets, tables_are_consistent)
{
    int n;
    const struct ps_py_offsets *const *all = ps_pyoffsets_all(&n);
    for (int i = 0; i < n; i++) {
        const struct ps_py_offsets *o = all[i];
        int v = o->major * 100 + o->minor;

        if (o->rt_size > 0) {
            IN(rt_interp_head, 8, rt_size);
            IN(rt_interp_main, 8, rt_size);
            IN(rt_tstate_current, 8, rt_size);
            IN(rt_gil_locked, 4, rt_size);
            IN(rt_gil_last_holder, 8, rt_size);
        } else {
            cr_assert_eq(o->rt_size, 0);
        }
        IN(is_next, 8, is_size);
        IN(is_tstate_head, 8, is_size);
        IN(is_id, 8, is_size);
        IN(is_modules, 8, is_size);
        IN(is_ceval_gil, 8, is_size);
        IN(is_code_generation, 8, is_size);
        IN(ts_prev, 8, ts_size);
        IN(ts_next, 8, ts_size);
        IN(ts_interp, 8, ts_size);
        IN(ts_frame, 8, ts_size);
        IN(ts_cframe, 8, ts_size);
        IN(ts_thread_id, 8, ts_size);
        IN(ts_native_thread_id, 8, ts_size);
        IN(ts_status, 4, ts_size);
        IN(ts_datastack_chunk, 8, ts_size);
        IN(ts_datastack_top, 8, ts_size);
        IN(ts_datastack_limit, 8, ts_size);
        IN(fo_back, 8, fo_size);
        IN(fo_code, 8, fo_size);
        IN(fo_lasti, 4, fo_size);
        IN(fo_lineno, 4, fo_size);
        IN(if_code, 8, if_size);
        IN(if_previous, 8, if_size);
        IN(if_instr, 8, if_size);
        IN(if_owner, 1, if_size);
        IN(if_is_entry, 1, if_size);
        IN(if_localsplus, 0, if_size);
        IN(co_filename, 8, co_size);
        IN(co_name, 8, co_size);
        IN(co_qualname, 8, co_size);
        IN(co_firstlineno, 4, co_size);
        IN(co_linetable, 8, co_size);
        IN(co_code, 8, co_size);
        IN(co_code_adaptive, 0, co_size);
        IN(co_version, 4, co_size);

        IN(ts_state, 4, ts_size);
        IN(if_tlbc_index, 4, if_size);
        IN(co_tlbc, 8, co_size);
        IN(is_tlbc_generation, 4, is_size);

        /* Objects: header (16 bytes, 32 free-threaded), then the var size; strings grow in
         * field order. */
        int ft = !!(o->flags & PS_PYF_FREE_THREADED);
        int hdr = ft ? 32 : 16;
        cr_assert_eq(o->ob_type, hdr - 8, "%d", v);
        cr_assert_eq(o->var_ob_size, hdr, "%d", v);
        cr_assert_geq(o->bytes_sval, o->var_ob_size + 8, "%d", v);
        cr_assert_geq(o->tuple_ob_item, o->var_ob_size + 8, "%d", v);
        cr_assert_eq(o->type_tp_name, hdr + 8, "%d", v);
        if (ft) {
            cr_assert_geq(v, 313);
            SET(gil_enabled);
            cr_assert_eq(o->if_tlbc_index != PS_OFF_NONE, v >= 314, "%d", v);
            cr_assert_eq(o->co_tlbc != PS_OFF_NONE, v >= 314, "%d", v);
        } else {
            UNSET(gil_enabled); UNSET(if_tlbc_index); UNSET(co_tlbc); UNSET(is_tlbc_generation);
        }
        if (v >= 313)
            SET(ts_state);
        else
            UNSET(ts_state);

        cr_assert(o->fo_lasti_scale == 1 || o->fo_lasti_scale == 2, "%d", v);
        cr_assert_eq(o->fo_lasti_scale, v == 310 ? 2 : 1, "%d", v);

        if (o->str_model == PS_STR_PEP393) {
            cr_assert_eq(o->str_length, o->var_ob_size, "%d", v);
            cr_assert_geq(o->str_state, o->str_length + 8, "%d", v);
            cr_assert_leq(o->str_state + 4, o->str_ascii_size, "%d", v);
            cr_assert_lt(o->str_ascii_size, o->str_compact_size, "%d", v);
            cr_assert_geq(o->str_data, o->str_compact_size - 8, "%d", v);
            cr_assert_leq(o->str_kind_shift + 3, 32, "%d", v);
            cr_assert_lt(o->str_compact_bit, 32, "%d", v);
            cr_assert_lt(o->str_ascii_bit, 32, "%d", v);
            /* kind (3 bits), compact, ascii do not overlap */
            int k = o->str_kind_shift;
            cr_assert(o->str_compact_bit < k || o->str_compact_bit >= k + 3, "%d", v);
            cr_assert(o->str_ascii_bit < k || o->str_ascii_bit >= k + 3, "%d", v);
            cr_assert_neq(o->str_ascii_bit, o->str_compact_bit);
        } else {
            cr_assert_eq(o->str_model, PS_STR_BYTES27);
            cr_assert_eq(v, 207);
            UNSET(str_state);
        }

        switch (o->frame_model) {
        case PS_FRAMES_OBJECTS:
            cr_assert_leq(v, 310);
            SET(ts_frame); SET(fo_back); SET(fo_code); SET(fo_lasti); SET(fo_size);
            UNSET(if_size); UNSET(if_code); UNSET(ts_cframe); UNSET(ts_datastack_chunk);
            cr_assert_eq(o->if_owner_skip_min, 0);
            break;
        case PS_FRAMES_INTERP:
            cr_assert_geq(v, 311);
            SET(if_size); SET(if_code); SET(if_previous); SET(if_instr); SET(if_owner);
            SET(if_localsplus); SET(ts_datastack_chunk); SET(chunk_previous); SET(chunk_size);
            SET(chunk_top); SET(chunk_data); SET(co_code_adaptive); SET(co_qualname);
            UNSET(fo_back); UNSET(fo_size); UNSET(co_code);
            cr_assert(o->flags & PS_PYF_HAS_NATIVE_TID, "%d", v);
            cr_assert(o->flags & PS_PYF_HAS_QUALNAME, "%d", v);
            cr_assert_eq(o->if_owner_skip_min, v == 311 ? 0 : 3, "%d", v);
            cr_assert_eq(o->if_owner_max, v == 311 ? 2 : v <= 314 ? (v == 314 ? 4 : 3) : 3,
                         "%d", v);
            if (o->flags & PS_PYF_CFRAME) {
                SET(ts_cframe); SET(cf_current_frame); UNSET(ts_frame);
            } else {
                SET(ts_frame); UNSET(ts_cframe);
            }
            break;
        default:
            cr_assert_fail("%d: bad frame model %d", v, o->frame_model);
        }

        switch (o->gil_model) {
        case PS_GIL_TSTATE_CURRENT_SYM:
            cr_assert(o->flags & PS_PYF_INTERP_HEAD_SYM, "%d", v);
            UNSET(rt_interp_head);
            break;
        case PS_GIL_RUNTIME:
            SET(rt_interp_head); SET(rt_tstate_current);
            SET(rt_gil_locked); SET(rt_gil_last_holder);
            break;
        case PS_GIL_INTERP:
            SET(rt_interp_head); SET(is_ceval_gil); SET(gil_last_holder); SET(gil_locked);
            UNSET(rt_tstate_current);
            break;
        default:
            cr_assert_fail("%d: bad gil model %d", v, o->gil_model);
        }

        if (o->flags & PS_PYF_HOLDS_GIL_BIT) {
            SET(ts_status);
            cr_assert(o->ts_holds_gil >= 0 && o->ts_holds_gil < 32, "%d", v);
        } else if (o->flags & PS_PYF_HOLDS_GIL_INT) {
            IN(ts_holds_gil, 4, ts_size);
            SET(ts_holds_gil);
        } else {
            UNSET(ts_holds_gil);
        }
        if (!(o->flags & PS_PYF_HAS_NATIVE_TID))
            UNSET(ts_native_thread_id);
        if (!(o->flags & PS_PYF_HAS_QUALNAME))
            UNSET(co_qualname);
        cr_assert_eq(!!(o->flags & PS_PYF_DEBUG_OFFSETS), v >= 313, "%d", v);
        cr_assert_eq(!!(o->flags & PS_PYF_TAGGED_CODE), v >= 314, "%d", v);
    }
}
