/* threadnames_gen.c — prints the ps_tn_layout row of src/python/threadnames.c (dicts, modules,
 * ints, instance dicts) for the CPython headers it is compiled against. Not part of pysample;
 * the one place where version #ifs for these structs belong.
 *
 * tests/check_threadnames.sh compiles it once per installed header set (pyenv versions and
 * /usr/include/pythonX.Y, with the flags tests/check_offsets.sh uses) and compares its output with
 * the matching "BEGIN TN X.Y" block of the table in src/python/threadnames.c (free-threaded
 * builds: "BEGIN TN X.Yt", a row with .free_threaded = 1).
 *
 * Where a struct is private to CPython's .c files in some versions (PyDictKeysObject and its
 * entries before 3.11, PyModuleObject before 3.10), the row carries the layout those versions
 * use, checked against live interpreters (a test dict read back through ctypes).
 */
/* Some internal headers have unused parameters in their inline functions. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <Python.h>

#if PY_VERSION_HEX >= 0x03070000 && !defined(Py_BUILD_CORE)
#error "compile with -DPy_BUILD_CORE (and -I<include>/internal for 3.8+)"
#endif

#if PY_MAJOR_VERSION == 2
#include <longintrepr.h>
#elif PY_VERSION_HEX < 0x030b0000
#include <longintrepr.h>
#endif
#if PY_VERSION_HEX >= 0x030a0000
#include "pycore_moduleobject.h"
#endif
#if PY_VERSION_HEX >= 0x030b0000
#include "pycore_dict.h"
#include "pycore_object.h"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define OFF(type, member) ((long)offsetof(type, member))
#define NONE (-1L)

/* Row fields, in the order of struct ps_tn_layout; printed as grouped designated initializers. */
static long ma_mask = NONE, ma_table = NONE, ma_keys = NONE, ma_values = NONE;
static long ge_size, ge_hash, ge_key, ge_value;
static long ue_size = NONE, ue_key = NONE, ue_value = NONE;
static long dk_size = NONE, dk_log2_size = NONE, dk_log2_index_bytes = NONE, dk_kind = NONE,
            dk_kind_general = NONE, dk_nentries = NONE, dk_indices = NONE;
static long dv_values = NONE, dv_capacity = NONE, dv_valid = NONE;
static long md_dict, tp_basicsize, tp_flags, tp_dictoffset, ht_cached_keys = NONE, type_read;
static long mg_flag_dict = 0, mg_flag_inline = 0, mg_dict = NONE, mg_values = NONE;
static long lg_size, lg_digits, lg_tag_shift = NONE, lg_sign_mask = NONE, lg_shift, lg_digit_size,
            int_ival = NONE;
static const char *dict_model, *managed_model = "PS_TN_MANAGED_NONE", *long_model;

int main(void)
{
    /* dict objects and their entries */
#if PY_MAJOR_VERSION == 2
    dict_model = "PS_TN_DICT_TABLE";
    ma_mask = OFF(PyDictObject, ma_mask);
    ma_table = OFF(PyDictObject, ma_table);
    ge_size = (long)sizeof(PyDictEntry);
    ge_hash = OFF(PyDictEntry, me_hash);
    ge_key = OFF(PyDictEntry, me_key);
    ge_value = OFF(PyDictEntry, me_value);
#else
    ma_keys = OFF(PyDictObject, ma_keys);
    ma_values = OFF(PyDictObject, ma_values);
#if PY_VERSION_HEX < 0x030b0000
    /* PyDictKeysObject / PyDictKeyEntry live in Objects/dict-common.h (not installed):
     * dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, then dk_indices; entries
     * {me_hash, me_key, me_value} follow the dk_size indices of 1/2/4/8 bytes each. */
    dict_model = "PS_TN_DICT_KEYS";
    ge_size = 3 * (long)sizeof(void *);
    ge_hash = 0;
    ge_key = 8;
    ge_value = 16;
    dk_size = 8;
    dk_nentries = 32;
    dk_indices = 40;
    dv_values = 0; /* ma_values is a bare PyObject *[] */
#else
    dict_model = "PS_TN_DICT_KEYS_LOG2";
    ge_size = (long)sizeof(PyDictKeyEntry);
    ge_hash = OFF(PyDictKeyEntry, me_hash);
    ge_key = OFF(PyDictKeyEntry, me_key);
    ge_value = OFF(PyDictKeyEntry, me_value);
    ue_size = (long)sizeof(PyDictUnicodeEntry);
    ue_key = OFF(PyDictUnicodeEntry, me_key);
    ue_value = OFF(PyDictUnicodeEntry, me_value);
    dk_log2_size = OFF(PyDictKeysObject, dk_log2_size);
    dk_log2_index_bytes = OFF(PyDictKeysObject, dk_log2_index_bytes);
    dk_kind = OFF(PyDictKeysObject, dk_kind);
    dk_kind_general = DICT_KEYS_GENERAL;
    dk_nentries = OFF(PyDictKeysObject, dk_nentries);
    dk_indices = OFF(PyDictKeysObject, dk_indices);
    dv_values = OFF(PyDictValues, values);
#if PY_VERSION_HEX >= 0x030d0000
    dv_capacity = OFF(PyDictValues, capacity);
    dv_valid = OFF(PyDictValues, valid);
#endif
#endif
#endif

    /* module objects: PyModuleObject is private to Objects/moduleobject.c before 3.10 */
#if PY_VERSION_HEX >= 0x030a0000
    md_dict = OFF(PyModuleObject, md_dict);
#else
    md_dict = (long)sizeof(PyObject);
#endif

    /* type objects */
    tp_basicsize = OFF(PyTypeObject, tp_basicsize);
    tp_flags = OFF(PyTypeObject, tp_flags);
    tp_dictoffset = OFF(PyTypeObject, tp_dictoffset);
#if PY_MAJOR_VERSION == 3
    ht_cached_keys = OFF(PyHeapTypeObject, ht_cached_keys);
    type_read = ht_cached_keys + (long)sizeof(void *);
#else
    type_read = tp_dictoffset + (long)sizeof(Py_ssize_t);
#endif

    /* managed instance dicts (3.11+): where the accessors put them, relative to the object,
     * measured on a fake object whose type has the flags (they only do pointer arithmetic) */
#if PY_VERSION_HEX >= 0x030b0000
    static PyTypeObject tp;
    static union {
        PyObject o[8];
        char raw[256];
    } mem;
    PyObject *obj = &mem.o[4];
    mg_flag_dict = Py_TPFLAGS_MANAGED_DICT;
    tp.tp_flags = Py_TPFLAGS_MANAGED_DICT;
    tp.tp_basicsize = sizeof(PyObject);
    Py_SET_TYPE(obj, &tp);
#if PY_VERSION_HEX >= 0x030d0000
    managed_model = "PS_TN_MANAGED_INLINE";
    mg_flag_inline = Py_TPFLAGS_INLINE_VALUES;
    mg_dict = (long)((char *)_PyObject_ManagedDictPointer(obj) - (char *)obj);
#elif PY_VERSION_HEX >= 0x030c0000
    managed_model = "PS_TN_MANAGED_TAGGED";
    mg_dict = (long)((char *)_PyObject_DictOrValuesPointer(obj) - (char *)obj);
    {
        /* values are stored as (address - 1): the low bit tags them */
        static PyObject *aligned[2];
        PyDictOrValues dv;
        dv.values = (char *)aligned - 1;
        if (!_PyDictOrValues_IsValues(dv) ||
            (char *)_PyDictOrValues_GetValues(dv) != (char *)aligned) {
            fprintf(stderr, "threadnames_gen: unexpected PyDictOrValues tagging\n");
            return 1;
        }
    }
#else
    managed_model = "PS_TN_MANAGED_VALUES";
    mg_dict = (long)((char *)_PyObject_ManagedDictPointer(obj) - (char *)obj);
    mg_values = (long)((char *)_PyObject_ValuesPointer(obj) - (char *)obj);
#endif
#endif

    /* ints: thread idents are PyLong (3.x) or PyInt (2.7, PyLong when they do not fit) */
#if PY_VERSION_HEX >= 0x030c0000
    long_model = "PS_TN_LONG_TAG";
    lg_size = OFF(PyLongObject, long_value.lv_tag);
    lg_digits = OFF(PyLongObject, long_value.ob_digit);
    lg_tag_shift = _PyLong_NON_SIZE_BITS;
    lg_sign_mask = _PyLong_SIGN_MASK;
#else
    long_model = "PS_TN_LONG_SIZE";
    lg_size = OFF(PyVarObject, ob_size);
    lg_digits = OFF(PyLongObject, ob_digit);
#endif
    lg_shift = PyLong_SHIFT;
    lg_digit_size = (long)sizeof(digit);
#if PY_MAJOR_VERSION == 2
    int_ival = OFF(PyIntObject, ob_ival);
#endif

#ifdef Py_GIL_DISABLED
    const char *build = "t", *ft = ", .free_threaded = 1";
#else
    const char *build = "", *ft = "";
#endif
    printf("    /* BEGIN TN %d.%d%s */\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, build);
    printf("    {%d, %d, \"%s\", %s, %s, %s, .md_dict = %ld,\n", PY_MAJOR_VERSION,
           PY_MINOR_VERSION, PY_MAJOR_VERSION == 2 ? "_Thread__name" : "_name", dict_model,
           managed_model, long_model, md_dict);
    printf("     .ma = {%ld, %ld, %ld, %ld}, .ge = {%ld, %ld, %ld, %ld}, .ue = {%ld, %ld, %ld},\n",
           ma_mask, ma_table, ma_keys, ma_values, ge_size, ge_hash, ge_key, ge_value, ue_size,
           ue_key, ue_value);
    printf("     .dk = {%ld, %ld, %ld, %ld, %ld, %ld, %ld}, .dv = {%ld, %ld, %ld},\n", dk_size,
           dk_log2_size, dk_log2_index_bytes, dk_kind, dk_kind_general, dk_nentries, dk_indices,
           dv_values, dv_capacity, dv_valid);
    printf("     .tp = {%ld, %ld, %ld, %ld, %ld}, .mg = {0x%lx, 0x%lx, %ld, %ld},\n", tp_basicsize,
           tp_flags, tp_dictoffset, ht_cached_keys, type_read, mg_flag_dict, mg_flag_inline,
           mg_dict, mg_values);
    printf("     .lg = {%ld, %ld, %ld, %ld, %ld, %ld, %ld}%s},\n", lg_size, lg_digits, lg_tag_shift,
           lg_sign_mask, lg_shift, lg_digit_size, int_ival, ft);
    printf("    /* END TN %d.%d%s */\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, build);
    return 0;
}
