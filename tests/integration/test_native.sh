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
        $(pkg-config --libs libelf libdw libunwind-ptrace zlib) -lpthread 2>"$PS_TMP/probe.err"; then
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
    ps_assert_running "$label: target running after record --native" "$pid"
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

ps_finish
