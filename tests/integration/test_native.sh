#!/usr/bin/env bash
# test_native.sh -- native stacks (src/native) against fixtures/native_callback.py under every
# CPython found: Python called back from C (libc's qsort through ctypes, and a C extension
# built here from fixtures/cb_ext.c) must come out as one merged stack, innermost first --
# the Python callback, the C frames that called it, the Python caller, <module> -- with no
# count mismatch, and every thread of the target running afterwards. Then the ways a tracer
# lets go: kill -9 of a tracer holding a thread seized (running or stopped) leaves the target
# running (the kernel detaches), and a crashing tracer's signal handler detaches by itself.
#
# The stacks come from tests/native/native_probe.c (compiled here against the objects of the
# build under test: build/obj, or build/asan/obj for the sanitized binary), which also prints
# the merge's counts, and from `pysample dump --native`, which must print the same frames.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "native stacks ($PYSAMPLE)"

FIXTURE=native_callback.py

# ---- the probe ------------------------------------------------------------------------------

build_probe() {
    local objdir cflags=() objs
    objdir=$(dirname "$PYSAMPLE")/obj
    [[ -d $objdir ]] || objdir=$PS_ROOT/build/obj
    if [[ $objdir == */asan/obj ]]; then
        # shellcheck disable=SC2054  # the comma belongs to the option
        cflags=(-fsanitize=address,undefined -fno-omit-frame-pointer)
    fi
    mapfile -t objs < <(find "$objdir/src" "$objdir/arch" -name '*.o' ! -path '*/src/main.o' 2>/dev/null | sort)
    if ((${#objs[@]} == 0)) || [[ ! -e $objdir/src/native/unwind.o ]]; then
        ps_fail "native probe builds" "no objects of src/native in $objdir" \
            "build them first: make pysample (or make build/asan/pysample)"
        return 1
    fi
    # shellcheck disable=SC2046
    if cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 "${cflags[@]}" -I"$PS_ROOT/include" \
        -o "$PS_TMP/native_probe" "$PS_ROOT/tests/native/native_probe.c" "${objs[@]}" \
        $(pkg-config --libs libelf libdw libunwind-ptrace zlib ncursesw) -lpthread 2>"$PS_TMP/probe.err"; then
        ps_pass "native probe builds"
        PROBE=$PS_TMP/native_probe
        return 0
    fi
    ps_fail "native probe builds" "$(cat "$PS_TMP/probe.err")"
    return 1
}

if ! build_probe; then
    ps_finish
fi

if ! L_CMP=$(ps_fixture_line "$FIXTURE" cmp_block) ||
    ! L_QSORT=$(ps_fixture_line "$FIXTURE" qsort_call) ||
    ! L_MAIN_QSORT=$(ps_fixture_line "$FIXTURE" main_qsort) ||
    ! L_EXT=$(ps_fixture_line "$FIXTURE" ext_block) ||
    ! L_EXT_CALL=$(ps_fixture_line "$FIXTURE" ext_call) ||
    ! L_MAIN_EXT=$(ps_fixture_line "$FIXTURE" main_ext); then
    ps_fail "fixture $FIXTURE has its LINE tags"
    ps_finish
fi
L_C_CALL=$(grep -n '/\* LINE:call \*/' "$PS_FIXTURES/cb_ext.c" | cut -d: -f1)

# ---- checking one merged stack ----------------------------------------------------------------

# check_merged LABEL DUMPFILE TID CALLBACK CALLER C_RE: the thread's Python frames are exactly
# CALLBACK, CALLER, <module> (given as "name:line"), a C frame matching C_RE lies between the
# first two, the innermost frame is a C frame, and the merge reported no mismatch.
check_merged() {
    local label=$1 file=$2 tid=$3 cb=$4 caller=$5 main=$6 cre=$7 frames py ctx stats
    frames=$(ps_thread_frames "$file" "$tid")
    ctx=$(echo "--- probe output:"; cat "$file")
    py=$(grep -E "\\($FIXTURE:[0-9]+\\)\$" <<<"$frames" || true)
    ps_assert_eq "$label: Python frames" \
        "$(printf '%s (%s:%s)\n' "${cb%%:*}" "$FIXTURE" "${cb##*:}" \
            "${caller%%:*}" "$FIXTURE" "${caller##*:}" "<module>" "$FIXTURE" "$main")" \
        "$py" "$ctx"
    # Positions (1-based) of the callback, the caller and the first C frame matching cre after
    # the callback.
    local pcb pcaller pc
    pcb=$(grep -n -F -x "${cb%%:*} ($FIXTURE:${cb##*:})" <<<"$frames" | head -n 1 | cut -d: -f1) || true
    pcaller=$(grep -n -F -x "${caller%%:*} ($FIXTURE:${caller##*:})" <<<"$frames" | head -n 1 | cut -d: -f1) || true
    pc=$(awk -v from="${pcb:-0}" -v re="$cre" 'NR > from && $0 ~ re { print NR; exit }' <<<"$frames") || true
    if [[ -n $pcb && -n $pcaller && -n $pc ]] && ((pcb < pc && pc < pcaller)); then
        ps_pass "$label: C frame /$cre/ between the callback and its caller"
    else
        ps_fail "$label: C frame /$cre/ between the callback and its caller" \
            "callback at ${pcb:-?}, C frame at ${pc:-?}, caller at ${pcaller:-?}" "$ctx"
    fi
    ps_assert_eq "$label: <module> is the outermost frame (start-up plumbing hidden)" \
        "<module> ($FIXTURE:$main)" "$(tail -n 1 <<<"$frames")" "$ctx"
    if [[ -n $pcb ]] && ((pcb > 1)); then
        ps_pass "$label: C frames above the callback (it sleeps in C)"
    else
        ps_fail "$label: C frames above the callback (it sleeps in C)" "$ctx"
    fi
    stats=$(awk -v head="Thread $tid \"" 'index($0, head) == 1 { on = 1; next } on && /^# / { print; exit }' "$file") || true
    ps_assert_match "$label: complete C stack, no mismatch, Python read while stopped" \
        'complete=1 .* unmatched_python=0 unmatched_eval=0 .*python_err=none$' "$stats" "$ctx"
}

# check_cli LABEL PROBE_OUTPUT PID: `pysample dump --native PID` prints the probe's frames.
check_cli() {
    local label=$1 probe=$2 pid=$3
    ps_run "$PYSAMPLE" dump --native "$pid"
    ps_assert_status "$label: pysample dump --native exits 0" 0
    ps_assert_eq "$label: pysample dump --native prints the merged stack" \
        "$(ps_thread_frames "$probe" "$pid" | sed 's/ \[inlined\]$//')" \
        "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" "$(ps_run_context)"
    ps_assert_running "$label: target running after pysample dump --native" "$pid"
}

# check_record LABEL PID CALLBACK CALLER C_RE: `pysample record --native` of the blocked thread
# gives stacks that read, root to leaf, <module> ... CALLER ... a C frame matching C_RE ...
# CALLBACK, every sample merged without mismatch, and the target left running.
check_record() {
    local label=$1 pid=$2 cb=$3 caller=$4 cre=$5 out=$PS_TMP/native-record.folded top order
    rm -f "$out"
    ps_run "$PYSAMPLE" record --native --idle -p "$pid" -d 1 -r 200 -o "$out" --no-progress
    ps_assert_status "$label: record --native exits 0" 0
    top=$(grep -v '^#' "$out" 2>/dev/null | sort -t' ' -k2 -nr | head -n 1 | sed 's/ [0-9]*$//' | tr ';' '\n')
    order=$(awk -v cb="${cb%%:*} ($FIXTURE:${cb##*:})" -v caller="${caller%%:*} ($FIXTURE:${caller##*:})" \
        -v re="$cre" '$0 == caller && !c { c = NR } c && !n && $0 ~ re { n = NR } $0 == cb && n { k = NR }
        END { print (c && n && k && c < n && n < k) ? "ok" : "caller=" c " c=" n " callback=" k }' <<<"$top")
    ps_assert_eq "$label: record --native: caller, then C frames, then the callback" ok "$order" \
        "--- top stack:" "$top"
    ps_assert_match "$label: record --native: every sample merged, none misaligned" \
        '^# native=merged=[1-9][0-9]*,failed=0,mismatch=0$' "$(grep '^# native=' "$out" 2>/dev/null)" \
        "$(grep '^#' "$out" 2>/dev/null)"
    check_grouped "$label" "$out"
    ps_assert_running "$label: target running after record --native" "$pid"
}

# check_grouped LABEL FOLDED: C frames without a name count once per module: no frame carries
# a raw address, and the table has one "[unknown]" row per module that had such frames.
check_grouped() {
    local label=$1 out=$2 libs rows
    ps_assert_eq "$label: no C frame named by its raw address" "" \
        "$(grep -v '^#' "$out" | tr ';' '\n' | grep -E '^\?\? |\+0x[0-9a-f]+\)' | head -n 3)"
    libs=$(grep -v '^#' "$out" | tr ';' '\n' | sed -n 's/^\[unknown\] (\(.*\))\( [0-9]*\)\{0,1\}$/\1/p' | sort -u)
    if [[ -z $libs ]]; then
        echo "skip $label: every C frame has a name here (no module to group)"
        return 0
    fi
    ps_run "$PYSAMPLE" report "$out" -f table
    rows=$(grep -E ':\[unknown\]$' "$PS_OUT_FILE" | sed 's/.*  //; s/:[0-9?]*:\[unknown\]$//' | sort)
    ps_assert_eq "$label: one table row per module of unnamed C frames" "$libs" "$rows" \
        "$(ps_run_context)"
}

# ---- per interpreter ------------------------------------------------------------------------

build_ext() {
    local py=$1 dir=$2 inc
    if ! inc=$(timeout 30 "$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null) ||
        [[ ! -e $inc/Python.h ]]; then
        EXT_SKIP="no Python.h for $py (${inc:-unknown include dir})"
        return 1
    fi
    mkdir -p "$dir"
    if ! cc -shared -fPIC -O0 -g -I"$inc" -o "$dir/cb_ext.so" "$PS_FIXTURES/cb_ext.c" \
        2>"$dir/build.err"; then
        EXT_SKIP="cb_ext.c does not build against $inc: $(head -n 3 "$dir/build.err")"
        return 1
    fi
    return 0
}

check_interpreter() {
    local py=$1 ver label pid out
    if ! ver=$(ps_python_version "$py"); then
        ps_fail "$py reports its version"
        return 0
    fi
    label="[$ver $py]"
    PS_FIXTURE_CWD=$PS_FIXTURES

    # --- qsort with a Python comparison function
    if ps_start_fixture "$py" "$FIXTURE" qsort; then
        pid=$PS_FIXTURE_PID
        if ps_wait_blocked "$pid"; then
            ps_run "$PROBE" dump "$pid"
            ps_assert_status "$label qsort: probe exits 0" 0
            out=$PS_OUT_FILE
            check_merged "$label qsort" "$out" "$pid" "compare:$L_CMP" "sort_pair:$L_QSORT" \
                "$L_MAIN_QSORT" 'qsort'
            ps_assert_running "$label qsort: target running, no thread stopped" "$pid"
            # Nothing moves in the target: a second look gives the same stack.
            ps_run "$PROBE" dump "$pid"
            ps_assert_eq "$label qsort: second dump, same frames" \
                "$(ps_thread_frames "$out" "$pid")" "$(ps_thread_frames "$PS_OUT_FILE" "$pid")"
            ps_run "$PROBE" dump --all "$pid"
            ps_assert_match "$label qsort: --all shows the eval-loop plumbing too" \
                '(^|.*'$'\n'')(_PyObject_MakeTpCall|_PyObject_Vectorcall|PyObject_Call|call_function|PyEval_EvalCodeEx|PyEval_EvalCode) \(' \
                "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" "$(ps_run_context)"
            ps_assert_running "$label qsort: target running after three dumps" "$pid"
            check_cli "$label qsort" "$out" "$pid"
            check_record "$label qsort" "$pid" "compare:$L_CMP" "sort_pair:$L_QSORT" "^qsort(_r)? \\("
        else
            ps_fail "$label qsort: fixture blocks" "thread states: $PS_BLOCKED_STATES"
        fi
        ps_stop "$pid"
    fi

    # --- a C extension calling back
    local extdir=$PS_TMP/ext-$ver
    EXT_SKIP=
    if ! build_ext "$py" "$extdir"; then
        echo "skip $label ext: $EXT_SKIP"
        return 0
    fi
    if ps_start_fixture "$py" "$FIXTURE" ext "$extdir"; then
        pid=$PS_FIXTURE_PID
        if ps_wait_blocked "$pid"; then
            ps_run "$PROBE" dump "$pid"
            ps_assert_status "$label ext: probe exits 0" 0
            out=$PS_OUT_FILE
            check_merged "$label ext" "$out" "$pid" "callback:$L_EXT" \
                "run_ext:$L_EXT_CALL" "$L_MAIN_EXT" "^call_twice \\(cb_ext\\.c:$L_C_CALL\\)\$"
            ps_assert_running "$label ext: target running, no thread stopped" "$pid"
            check_cli "$label ext" "$out" "$pid"
            check_record "$label ext" "$pid" "callback:$L_EXT" "run_ext:$L_EXT_CALL" \
                "^call_twice \\(cb_ext\\.c:$L_C_CALL\\)\$"
        else
            ps_fail "$label ext: fixture blocks" "thread states: $PS_BLOCKED_STATES"
        fi
        ps_stop "$pid"
    fi
}

mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "at least one CPython interpreter found" "none of pyenv's versions or /usr/bin/python3.11 runs"
    ps_finish
fi
for py in "${PYTHONS[@]}"; do
    check_interpreter "$py"
done

ps_run "$PYSAMPLE" dump --native --json 1
ps_assert_status "dump --native --json is a usage error (not supported yet)" 64

# ---- letting go -------------------------------------------------------------------------------

task_field() { # task_field PID TID FIELD: a "Field:" value of /proc/PID/task/TID/status
    awk -v f="$3:" '$1 == f { print $2; exit }' "/proc/$1/task/$2/status" 2>/dev/null || true
}

task_state() {
    local line
    { IFS= read -r line <"/proc/$1/task/$2/stat"; } 2>/dev/null || return 0
    line=${line##*) }
    echo "${line%% *}"
}

# start_probe MODE PID TID: the probe in the background, stdin held open (it waits for EOF),
# its first stdout line in PROBE_LINE. Sets PROBE_PID, PROBE_IN (fd).
start_probe() {
    local mode=$1 pid=$2 tid=$3 dir fd_out
    dir=$(mktemp -d "$PS_TMP/probe.XXXXXX")
    mkfifo "$dir/in" "$dir/out"
    exec {PROBE_IN}<>"$dir/in"
    exec {fd_out}<>"$dir/out"
    PS_FDS+=("$PROBE_IN" "$fd_out")
    "$PROBE" "$mode" "$pid" "$tid" <"$dir/in" >"$dir/out" 2>"$dir/err" &
    PROBE_PID=$!
    PS_PIDS+=("$PROBE_PID")
    PROBE_LINE=
    if ! IFS= read -r -t "$PS_TIMEOUT" -u "$fd_out" PROBE_LINE; then
        PROBE_LINE="(nothing within ${PS_TIMEOUT}s; stderr: $(cat "$dir/err"))"
    fi
}

NEWEST=${PYTHONS[${#PYTHONS[@]} - 1]}
PS_FIXTURE_CWD=$PS_FIXTURES
for mode in hold hold-stopped; do
    label="kill -9 of a tracer ($mode)"
    if ! ps_start_fixture "$NEWEST" "$FIXTURE" qsort; then
        continue
    fi
    pid=$PS_FIXTURE_PID
    ps_wait_blocked "$pid" || true
    start_probe "$mode" "$pid" "$pid"
    ps_assert_match "$label: the probe holds the thread" "^held $pid\$" "$PROBE_LINE"
    ps_assert_eq "$label: the thread is traced by the probe" "$PROBE_PID" \
        "$(task_field "$pid" "$pid" TracerPid)"
    if [[ $mode == hold-stopped ]]; then
        ps_assert_eq "$label: the thread is stopped while held" "t" "$(task_state "$pid" "$pid")"
    else
        ps_assert_eq "$label: the seized thread runs while held" "S" "$(task_state "$pid" "$pid")"
    fi
    ps_stop "$PROBE_PID" # kill -9, reaped: the kernel has detached by now
    ps_assert_eq "$label: no tracer after the kill" "0" "$(task_field "$pid" "$pid" TracerPid)"
    ps_assert_running "$label: target keeps running" "$pid"
    ps_stop "$pid"
done

label="crashing tracer"
if ps_start_fixture "$NEWEST" "$FIXTURE" qsort; then
    pid=$PS_FIXTURE_PID
    ps_wait_blocked "$pid" || true
    ps_run "$PROBE" crash-stopped "$pid" "$pid"
    ps_assert_status "$label: the probe's SIGABRT handler ran" 3
    # Reported by the crashing probe itself, after ps_native_emergency_detach() and before it
    # exited: the detach was its own doing, not the kernel's.
    ps_assert_match "$label: detached and running before the tracer died" \
        $'^stopped\nafter-emergency tracer=0 state=[RS]$' "$PS_OUT" "$(ps_run_context)"
    ps_assert_running "$label: target keeps running" "$pid"
    ps_stop "$pid"
fi

# ---- Ctrl-Z: a stopped pysample holds no thread ------------------------------------------------

proc_state() { # proc_state PID: the state letter of /proc/PID/stat
    local line
    { IFS= read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
    line=${line##*) }
    echo "${line%% *}"
}

# traced_by PID TRACER: 0 once some thread of PID is traced by TRACER (busy-checks /proc without
# forking, at most PS_TIMEOUT seconds).
traced_by() {
    local pid=$1 tracer=$2 deadline=$((SECONDS + PS_TIMEOUT)) t
    while ((SECONDS < deadline)); do
        for t in /proc/"$pid"/task/*; do
            [[ $(task_field "$pid" "${t##*/}" TracerPid) == "$tracer" ]] && return 0
        done
        [[ -d /proc/$tracer ]] || return 1
    done
    return 1
}

# wait_state PID LETTER: 0 once PID's state is LETTER (bounded as above).
wait_state() {
    local deadline=$((SECONDS + PS_TIMEOUT))
    while ((SECONDS < deadline)); do
        [[ $(proc_state "$1") == "$2" ]] && return 0
        [[ -d /proc/$1 ]] || return 1
    done
    return 1
}

L_WORKER_SLEEP=$(ps_fixture_line two_threads.py worker_sleep)
PS_FIXTURE_CWD=$PS_FIXTURES
if ps_start_fixture "$NEWEST" two_threads.py; then
    pid=$PS_FIXTURE_PID
    for try in 1 2 3; do
        label="Ctrl-Z during attach --native -r 1000 (try $try)"
        out=$PS_TMP/ctrlz.out
        "$PYSAMPLE" attach --native --idle -r 1000 -d 3 "$pid" >"$out" 2>"$PS_TMP/ctrlz.err" &
        spid=$!
        PS_PIDS+=("$spid")
        if ! traced_by "$pid" "$spid"; then
            ps_fail "$label: pysample seizes a thread" "$(cat "$PS_TMP/ctrlz.err")"
            ps_stop "$spid"
            continue
        fi
        kill -TSTP "$spid"
        if wait_state "$spid" T; then
            ps_pass "$label: pysample stops"
        else
            ps_fail "$label: pysample stops" "state $(proc_state "$spid")"
        fi
        held=
        for t in /proc/"$pid"/task/*; do
            t=${t##*/}
            st=$(task_state "$pid" "$t")
            tr=$(task_field "$pid" "$t" TracerPid)
            [[ $st == [tT] || $tr != 0 ]] && held+="thread $t: state $st, tracer $tr; "
        done
        ps_assert_eq "$label: every target thread runs untraced while pysample is stopped" "" "$held"
        kill -CONT "$spid"
        if traced_by "$pid" "$spid"; then
            ps_pass "$label: sampling seizes the threads again after SIGCONT"
        else
            ps_fail "$label: sampling seizes the threads again after SIGCONT" \
                "pysample state $(proc_state "$spid")"
        fi
        rc=0
        wait "$spid" || rc=$?
        ps_assert_eq "$label: the session exits 0" 0 "$rc" "$(cat "$PS_TMP/ctrlz.err")"
        ps_assert_match "$label: the table has the worker's frame" \
            "(^|"$'\n'")[ 0-9.]+  two_threads\\.py:$L_WORKER_SLEEP:sleep_forever"'($|'$'\n'')' \
            "$(cat "$out")" "$(cat "$out")"
        ps_assert_match "$label: native samples merged" '(^|'$'\n'')Native: [1-9][0-9]* samples merged' \
            "$(cat "$out")"
        ps_assert_running "$label: target running afterwards" "$pid"
    done
    ps_stop "$pid"
fi

# ---- a target traced by another process -------------------------------------------------------

label="--native on a traced target"
if ps_start_fixture "$NEWEST" "$FIXTURE" qsort; then
    pid=$PS_FIXTURE_PID
    ps_wait_blocked "$pid" || true
    start_probe hold "$pid" "$pid"
    ps_assert_match "$label: another tracer holds the thread" "^held $pid\$" "$PROBE_LINE"
    for cmd in attach dump; do
        if [[ $cmd == attach ]]; then
            ps_run "$PYSAMPLE" attach --native -d 1 "$pid"
        else
            ps_run "$PYSAMPLE" dump --native "$pid"
        fi
        ps_assert_status "$label: $cmd exits 2" 2
        ps_assert_match "$label: $cmd says which process traces it, in one line" \
            "^pysample: .*thread $pid is already traced by process $PROBE_PID \\(native_probe\\).* without --native\$" \
            "$PS_ERR" "$(ps_run_context)"
    done
    ps_stop "$PROBE_PID"
    ps_assert_running "$label: target running" "$pid"
    ps_stop "$pid"
fi

# ---- a target in a container: the Debian sid root ---------------------------------------------
# The fixture runs under the sid root in a mount namespace of its own, with a private /tmp that
# holds this script's directory at the same path (as a container sees its own files): its maps
# name paths that do not exist for pysample, which must read every file through /proc/PID/root.
# The extension's debug info is moved to a separate file, found by build ID or through
# .gnu_debuglink, under the target's root only. Two interpreters: sid's /usr/bin/python3.14 (the C and Python frames
# interleave only when its symbols are installed in the root: python3.14-dbg), and a pyenv
# build bound at /mnt/py inside the root (full symbols: they must interleave).

SID=${PS_SID_ROOT:-/var/cache/pysample/sid}

# sid_wrapper FILE PYROOT USRLIB CMD...: writes FILE, a script that runs CMD and its arguments
# in the sid root and the namespace described above, with PYROOT (if not empty) bound at
# /mnt/py, and USRLIB (if not empty) laid over the root's /usr/lib (an overlay only the target
# sees: files there exist under its root and nowhere else).
sid_wrapper() {
    local file=$1 pyroot=$2 usrlib=$3
    shift 3
    {
        echo '#!/usr/bin/env bash'
        printf 'exec unshare -m sh -c %q' 'mount -t tmpfs tmpfs "$0/tmp" && mkdir -p "$0$1" &&
            mount --bind "$1" "$0$1" &&
            { [ -z "$2" ] || { mount -t tmpfs tmpfs "$0/mnt" && mkdir "$0/mnt/py" &&
                mount --bind "$2" "$0/mnt/py"; }; } &&
            { [ -z "$3" ] || mount -t overlay overlay -o "lowerdir=$3:$0/usr/lib" "$0/usr/lib"; } &&
            shift 3 && exec chroot "$0" "$@"'
        printf ' %q' "$SID" "$PS_TMP" "$pyroot" "$usrlib" "$@"
        echo ' "$@"'
    } >"$file"
    chmod +x "$file"
}

# split_debug_build_id SO USRLIB: moves the DWARF of SO into USRLIB/debug/.build-id/NN/REST.debug
# (found by build ID alone: no .gnu_debuglink).
split_debug_build_id() {
    local so=$1 usrlib=$2 bid
    bid=$(readelf -n "$so" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    [[ -n $bid ]] || return 1
    mkdir -p "$usrlib/debug/.build-id/${bid:0:2}"
    objcopy --only-keep-debug "$so" "$usrlib/debug/.build-id/${bid:0:2}/${bid:2}.debug" &&
        objcopy --strip-debug "$so"
}

# split_debug SO: moves the DWARF of SO into .debug/SO.debug next to it (.gnu_debuglink).
split_debug() {
    local so=$1 dir
    dir=$(dirname "$so")/.debug
    mkdir -p "$dir"
    objcopy --only-keep-debug "$so" "$dir/$(basename "$so").debug" &&
        objcopy --strip-debug --add-gnu-debuglink="$dir/$(basename "$so").debug" "$so"
}

# check_container LABEL PYWRAPPER EXTDIR INTERLEAVE: the ext fixture under PYWRAPPER.
check_container() {
    local label=$1 py=$2 ext=$3 interleave=$4 pid probe frames order out fx
    fx=$CT/$FIXTURE
    ps_assert_eq "$label: the extension's debug info is in a separate file only" "" \
        "$(readelf -S "$ext/cb_ext.so" | grep -F .debug_info)"
    PS_FIXTURE_CWD=$CT
    ps_start_fixture "$py" "$fx" ext "$ext" || return 0
    pid=$PS_FIXTURE_PID
    ps_wait_blocked "$pid" || true
    ps_assert_eq "$label: the target runs under the sid root" "$SID" "$(readlink "/proc/$pid/root")"
    ps_run "$PROBE" dump "$pid"
    ps_assert_status "$label: probe exits 0" 0
    probe=$PS_OUT_FILE
    ps_assert_match "$label: complete C stack" '^# native=([5-9]|[1-9][0-9]+) complete=1 ' \
        "$(grep '^# native=' "$probe")" "$(cat "$probe")"
    ps_run "$PYSAMPLE" dump --native "$pid"
    ps_assert_status "$label: dump --native exits 0" 0
    frames=$(ps_thread_frames "$PS_OUT_FILE" "$pid")
    ps_assert_eq "$label: dump --native: the Python frames" \
        "$(printf '%s (%s:%s)\n' callback "$fx" "$L_EXT" run_ext "$fx" "$L_EXT_CALL" \
            "<module>" "$fx" "$L_MAIN_EXT")" \
        "$(grep -F "($fx:" <<<"$frames")" "$(ps_run_context)"
    ps_assert_match "$label: the extension's frame, from its debug file under the target's root" \
        "(^|"$'\n'")call_twice \\(cb_ext\\.c:$L_C_CALL\\)(\$|"$'\n'")" "$frames" "$(ps_run_context)"
    ps_assert_match "$label: libc of the sid root unwound (the frame the callback sleeps in)" \
        '(^|'$'\n'')clock_nanosleep \(' "$frames" "$(ps_run_context)"
    if ((interleave)); then
        order=$(awk -v cb="callback ($fx:$L_EXT)" -v c="call_twice (cb_ext.c:$L_C_CALL)" \
            -v caller="run_ext ($fx:$L_EXT_CALL)" \
            '$0 == cb { a = NR } $0 == c { b = NR } $0 == caller { d = NR }
             END { print (a && b && d && a < b && b < d) ? "ok" : a " " b " " d }' <<<"$frames")
        ps_assert_eq "$label: callback, then call_twice, then its caller" ok "$order" "$frames"
        ps_assert_eq "$label: no misalignment" "" "$(grep 'did not line up' "$PS_OUT_FILE")"
        ps_assert_eq "$label: <module> is the outermost frame" "<module> ($fx:$L_MAIN_EXT)" \
            "$(tail -n 1 <<<"$frames")" "$frames"
    else
        echo "skip $label: interleaving needs the interpreter's symbols (python3.14-dbg in $SID)"
    fi
    out=$PS_TMP/ct-record.folded
    rm -f "$out"
    ps_run "$PYSAMPLE" record --native --idle -p "$pid" -d 3 -r 100 -o "$out" --no-progress
    ps_assert_status "$label: record --native -d 3 -r 100 exits 0" 0
    # (a thread that did not stop within the bound counts as failed: rare, but a loaded
    # machine makes it happen; at most 5 % of the samples)
    ps_assert_eq "$label: record --native: samples with C frames" ok \
        "$(awk -F'[=,]' '/^# native=/ { print ($3 > 0 && $5 * 20 <= $3) ? "ok" : $0 }' "$out" 2>/dev/null)" \
        "$(grep '^#' "$out" 2>/dev/null)"
    ps_assert_match "$label: record --native: the extension's frame in the stacks" \
        "call_twice \\(cb_ext\\.c:$L_C_CALL\\)" "$(grep -v '^#' "$out" 2>/dev/null)"
    if ((interleave)); then
        ps_assert_match "$label: record --native: none misaligned" ',mismatch=0$' \
            "$(grep '^# native=' "$out" 2>/dev/null)"
    fi
    ps_assert_running "$label: target running after the container cases" "$pid"
    ps_stop "$pid"
}

if [[ ! -d $SID ]]; then
    echo "skip container: no sid root at $SID (tests/ provisioning makes one)"
elif [[ ! -x $SID/usr/bin/python3.14 ]]; then
    ps_fail "container: $SID/usr/bin/python3.14 exists" "the sid root lacks python3.14"
elif [[ $PS_TMP != /tmp/* ]]; then
    echo "skip container: the test directory $PS_TMP is not under /tmp"
else
    CT=$PS_TMP/ct
    mkdir -p "$CT/ext314"
    cp "$PS_FIXTURES/$FIXTURE" "$PS_FIXTURES/cb_ext.c" "$CT/"

    # sid's python3.14, the extension built in the root
    # (its debug file by build ID under the root's /usr/lib/debug, an overlay only it sees)
    label="[container 3.14 $SID]"
    sid_wrapper "$CT/python3.14" "" "$CT/usrlib" /usr/bin/python3.14
    if ! sid_wrapper "$CT/gcc" "" "" gcc ||
        ! "$CT/gcc" -shared -fPIC -O0 -g -I/usr/include/python3.14 -o "$CT/ext314/cb_ext.so" \
            "$CT/cb_ext.c" 2>"$CT/build.err" ||
        ! split_debug_build_id "$CT/ext314/cb_ext.so" "$CT/usrlib"; then
        ps_fail "$label: cb_ext.c builds in the sid root" "$(cat "$CT/build.err")"
    else
        bid=$(readelf -n "$SID/usr/bin/python3.14" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
        dbg=0
        [[ -n $bid && -e $SID/usr/lib/debug/.build-id/${bid:0:2}/${bid:2}.debug ]] && dbg=1
        check_container "$label" "$CT/python3.14" "$CT/ext314" "$dbg"
    fi

    # the newest pyenv build (shared libpython or not) under the same root, at /mnt/py
    pyroot=
    for py in "${PYTHONS[@]}"; do
        root=$(dirname "$(dirname "$py")")
        [[ $root == */.pyenv/versions/3.* ]] && pyroot=$root
    done
    if [[ -z $pyroot ]]; then
        echo "skip container: no pyenv CPython 3 to run under the sid root"
    else
        ver=$(ps_python_version "$pyroot/bin/python")
        label="[container $ver at /mnt/py in $SID]"
        sid_wrapper "$CT/pyenv-python" "$pyroot" "" env PYTHONHOME=/mnt/py \
            LD_LIBRARY_PATH=/mnt/py/lib /mnt/py/bin/python
        if build_ext "$pyroot/bin/python" "$CT/extpy" && split_debug "$CT/extpy/cb_ext.so"; then
            check_container "$label" "$CT/pyenv-python" "$CT/extpy" 1
        else
            ps_fail "$label: cb_ext.c builds for $pyroot" "${EXT_SKIP:-objcopy failed}"
        fi
    fi
fi

ps_finish
