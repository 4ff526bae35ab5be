/* ps_threadnames.h — Python-level thread names (threading.Thread.name) read out of a target.
 *
 * Up to 3.13 the OS thread name (/proc comm) of every thread is the process name (3.14+ sets it
 * from the Thread name, cut to 15 bytes, but not for the main thread, which keeps the process
 * name); the names users gave their threads live in Python objects: interp->modules["threading"]._active, a dict
 * {ident: Thread}, and each Thread's instance attribute `_name` (`_Thread__name` on 2.7).
 * ps_py_thread_names() follows that chain with bounded, validated reads. It never writes to the
 * target and any inconsistency (a torn or corrupt object) just leaves names empty.
 */
#ifndef PS_THREADNAMES_H
#define PS_THREADNAMES_H

#include <stdint.h>

#include "ps_python.h"

#define PS_TN_NAME_SIZE 64        /* bytes per name, NUL included (longer names end in "...") */

/* For each i < n, fills names[i] with the name of the threading.Thread whose ident (the
 * pthread_t, as in PyThreadState.thread_id) is idents[i], in the interpreter at address `interp`
 * (PyInterpreterState; a thread's ps_py_thread.interp). names[i] is "" when that thread is not
 * found. Returns the number of names found, or a negative PS_E* code when nothing could be read:
 * PS_EVERSION (no layout for this version or build), PS_ENOPROC, or PS_ECORRUPT/PS_EFAULT
 * (threading not imported, torn state). Default and free-threaded builds each have their rows. */
int ps_py_thread_names(struct ps_py *py, uint64_t interp, const uint64_t *idents, int n,
                       char (*names)[PS_TN_NAME_SIZE]);

#endif
