#!/usr/bin/env bash
# lib.sh -- shared helpers for the integration tests, sourced by tests/integration/test_*.sh
# and tests/demo.sh: finding the CPython interpreters, starting fixtures that signal readiness
# through a FIFO, killing every started process at exit, assertions that show what differed,
# and the pass/fail counter behind the final "N passed, N failed" line.
#
# Environment: PYSAMPLE (binary under test; default: pysample at the repository root, i.e.
# ./pysample from there), PS_TIMEOUT (seconds for any single wait, default 30; tripled when
# PS_SANITIZED is set).
#
# Helpers that can fail return non-zero only where documented; assertions always return 0 and
# count instead, so a failed check never aborts a script under `set -e`.
#
# shellcheck disable=SC2034  # globals set here are read by the scripts that source this file

PS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PS_FIXTURES=$PS_ROOT/fixtures
PS_TIMEOUT=${PS_TIMEOUT:-30}
if [[ -n ${PS_SANITIZED:-} ]]; then
    PS_TIMEOUT=$((PS_TIMEOUT * 3))
fi
PYSAMPLE=${PYSAMPLE:-$PS_ROOT/pysample}
case $PYSAMPLE in
    /*) ;;
    *) PYSAMPLE=$PWD/$PYSAMPLE ;;
esac

PS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pysample-test.XXXXXX")
PS_PASSED=0
PS_FAILED=0
PS_COUNTING=0           # 1 once ps_tests_begin ran: the EXIT trap then reports an abort
PS_SUMMARY_DONE=0
PS_PIDS=()              # every process started; killed (kill -9) at exit
PS_FDS=()               # FIFO descriptors held open until every started process is gone
ps__err_line=
ps__err_cmd=

# ---- cleanup ------------------------------------------------------------------------------------

ps__cleanup() {
    local pid fd
    {
        for pid in "${PS_PIDS[@]}"; do
            kill -9 "$pid" || true
        done
        wait || true
    } 2>/dev/null
    for fd in "${PS_FDS[@]}"; do
        exec {fd}>&-
    done
    PS_PIDS=()
    PS_FDS=()
    rm -rf "$PS_TMP"
}

ps__on_exit() {
    local rc=$?
    trap - EXIT ERR
    ps__cleanup
    if [[ $PS_COUNTING == 1 && $PS_SUMMARY_DONE != 1 ]]; then
        if [[ -n $ps__err_line ]]; then
            ps_fail "script aborted with status $rc at line $ps__err_line: $ps__err_cmd"
        else
            ps_fail "script aborted with status $rc (the shell's message above says where)"
        fi
        ps__summary
        exit 1
    fi
    exit "$rc"
}

trap ps__on_exit EXIT
trap 'ps__err_line=$LINENO; ps__err_cmd=$BASH_COMMAND' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- counting -----------------------------------------------------------------------------------

# ps_tests_begin TITLE: start counting; from now on the script must end with ps_finish.
ps_tests_begin() {
    PS_COUNTING=1
    echo "== $1"
}

ps_pass() {
    PS_PASSED=$((PS_PASSED + 1))
    echo "ok   $1"
}

# ps_fail NAME [DETAIL...]: count a failure; each DETAIL is printed indented below the name.
ps_fail() {
    local name=$1 line
    shift
    PS_FAILED=$((PS_FAILED + 1))
    echo "FAIL $name"
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/     | /'
    done
}

ps__summary() {
    PS_SUMMARY_DONE=1
    echo "$PS_PASSED passed, $PS_FAILED failed"
}

# ps_finish: print the summary line and exit, non-zero if anything failed.
ps_finish() {
    ps__summary
    if ((PS_FAILED > 0)); then
        exit 1
    fi
    exit 0
}

# ps_require_pysample: fail and finish at once when the binary under test is not there.
ps_require_pysample() {
    if [[ ! -x $PYSAMPLE ]]; then
        ps_fail "binary under test exists" "$PYSAMPLE is not an executable file" \
            "build it with: make pysample (or set PYSAMPLE=/path/to/pysample)"
        ps_finish
    fi
}

# ---- running commands ---------------------------------------------------------------------------

# ps_run CMD...: run CMD bounded by PS_TIMEOUT; sets PS_RC, and PS_OUT_FILE / PS_ERR_FILE /
# PS_OUT / PS_ERR (files keep exact bytes, the variables lose trailing newlines).
PS_RUN_SEQ=0
ps_run() {
    PS_RUN_SEQ=$((PS_RUN_SEQ + 1))
    PS_OUT_FILE=$PS_TMP/run$PS_RUN_SEQ.out
    PS_ERR_FILE=$PS_TMP/run$PS_RUN_SEQ.err
    PS_RC=0
    timeout -k 5 "$PS_TIMEOUT" "$@" >"$PS_OUT_FILE" 2>"$PS_ERR_FILE" </dev/null || PS_RC=$?
    PS_OUT=$(cat "$PS_OUT_FILE")
    PS_ERR=$(cat "$PS_ERR_FILE")
    PS_RUN_CMD="$*"
}

# Context lines describing the last ps_run, for failure messages.
ps_run_context() {
    echo "command: $PS_RUN_CMD"
    echo "exit status: $PS_RC$( ((PS_RC == 124)) && echo " (timed out after ${PS_TIMEOUT}s)")"
    echo "--- stdout:"
    cat "$PS_OUT_FILE"
    echo "--- stderr:"
    cat "$PS_ERR_FILE"
}

# ---- assertions (always return 0) -------------------------------------------------------------

# ps_assert_eq NAME EXPECTED ACTUAL [CONTEXT]: exact string equality; shows a unified diff.
ps_assert_eq() {
    local name=$1 expected=$2 actual=$3 context=${4:-}
    if [[ $expected == "$actual" ]]; then
        ps_pass "$name"
        return 0
    fi
    printf '%s\n' "$expected" >"$PS_TMP/expected"
    printf '%s\n' "$actual" >"$PS_TMP/actual"
    ps_fail "$name" "$(diff -u --label expected --label actual "$PS_TMP/expected" "$PS_TMP/actual")" \
        ${context:+"$context"}
    return 0
}

# ps_assert_status NAME EXPECTED: exit status of the last ps_run.
ps_assert_status() {
    if [[ $PS_RC == "$2" ]]; then
        ps_pass "$1"
    else
        ps_fail "$1" "expected exit status $2, got $PS_RC" "$(ps_run_context)"
    fi
    return 0
}

# ps_assert_match NAME ERE TEXT [CONTEXT]: TEXT (as a whole) matches the extended regex ERE.
ps_assert_match() {
    local name=$1 re=$2 text=$3 context=${4:-}
    if [[ $text =~ $re ]]; then
        ps_pass "$name"
    else
        ps_fail "$name" "expected to match: $re" "actual: $text" ${context:+"$context"}
    fi
    return 0
}

# ps_assert_true NAME DETAIL CMD...: CMD succeeds; DETAIL is printed if it does not.
ps_assert_true() {
    local name=$1 detail=$2
    shift 2
    if "$@"; then
        ps_pass "$name"
    else
        ps_fail "$name" "$detail"
    fi
    return 0
}

# ps_assert_running NAME PID: PID exists, is no zombie, and none of its threads is stopped.
ps_assert_running() {
    local name=$1 pid=$2 stat state bad=
    if [[ ! -d /proc/$pid ]]; then
        ps_fail "$name" "process $pid is gone"
        return 0
    fi
    for stat in /proc/"$pid"/task/*/stat; do
        state=$(sed 's/.*) //' "$stat" 2>/dev/null | cut -d' ' -f1) || continue
        case $state in
            T | t | Z | X) bad+="${stat%/stat}: state $state"$'\n' ;;
        esac
    done
    if [[ -n $bad ]]; then
        ps_fail "$name" "${bad%$'\n'}"
    else
        ps_pass "$name"
    fi
    return 0
}

# ---- interpreters -------------------------------------------------------------------------------

# ps_find_pythons: one interpreter path per line, oldest version first: every pyenv build
# (versions/*/bin/python) that runs, /usr/bin/python3.11 if present and working, then the
# interpreters of the provisioned sid chroot (tests/provision_sid.sh; PS_SID_ROOT, default
# /var/cache/pysample/sid): python3.14 and python3.15, and every free-threaded build installed
# there as opt/py3XXt/bin/python3.XXt (how to make one: README.md). A chroot interpreter is
# listed as a wrapper (ps_sid_wrapper) that runs it in a container-like root; the ones the
# provisioning promises are listed even when missing or broken, so the tests using them fail
# instead of skipping. PS_PYTHONS=ERE keeps only the paths it matches (for a quick local run).
PS_SID_ROOT=${PS_SID_ROOT:-/var/cache/pysample/sid}
ps_find_pythons() {
    ps__find_pythons | grep -E -- "${PS_PYTHONS:-.}" || true
}
ps__find_pythons() {
    local root py v
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for py in "$root"/versions/*/bin/python /usr/bin/python3.11; do
        [[ -x $py ]] || continue
        if timeout 30 "$py" -c 'import sys, threading' >/dev/null 2>&1; then
            printf '%s\t%s\n' "$(basename "$(dirname "$(dirname "$py")")")" "$py"
        fi
    done | sort -t $'\t' -k1,1V -s | cut -f2
    [[ -f $PS_SID_ROOT/.pysample-provisioned ]] || return 0
    {
        for v in 3.14 3.15; do
            printf '%s\t%s\n' "$v" "$(ps_sid_wrapper "/usr/bin/python$v" "sid-python$v")"
        done
        for py in "$PS_SID_ROOT"/opt/py3*t/bin/python3.*t; do
            [[ -x $py ]] || continue
            v=${py##*/python}
            printf '%s\t%s\n' "$v" "$(ps_sid_wrapper "${py#"$PS_SID_ROOT"}" "sid-python$v")"
        done
    } | sort -t $'\t' -k1,1V -s | cut -f2
}

# ps_sid_wrapper PY NAME: the path of an executable that runs PY (a path inside the sid chroot)
# as a container would: in a private mount namespace, chrooted into PS_SID_ROOT, with the
# temporary directory and the repository bind-mounted at their own paths (so fixtures, FIFOs
# and output files are where the test expects them) and the caller's working directory kept.
# Every step execs, so the wrapper's PID is the interpreter's PID.
ps_sid_wrapper() {
    local py=$1 name=$2 dir=$PS_TMP/sidpy tmp
    tmp=$(cd "${TMPDIR:-/tmp}" && pwd -P)
    mkdir -p "$dir"
    if [[ ! -x $dir/$name ]]; then
        cat >"$dir/$name.new" <<WRAP
#!/bin/sh
# Runs $py of $PS_SID_ROOT in a container-like root (see tests/integration/lib.sh).
exec unshare --mount --propagation private -- /bin/sh -c '
r=\$1; shift
for d in "$tmp" "$PS_ROOT"; do
    mkdir -p "\$r\$d" && mount --bind "\$d" "\$r\$d" || exit 127
done
exec chroot "\$r" /bin/sh -c "cd \\"\\\$0\\" 2>/dev/null || cd /; exec \\"\\\$@\\"" "\$PWD" "\$@"
' sh "$PS_SID_ROOT" "$py" "\$@"
WRAP
        chmod +x "$dir/$name.new"
        echo "$py" >"$dir/$name.inner"
        mv "$dir/$name.new" "$dir/$name"
    fi
    echo "$dir/$name"
}

# ps_python_argv0 PY: the interpreter's path as the target itself sees it (its argv[0] and
# cmdline): PY, or for a chroot wrapper the path inside the chroot.
ps_python_argv0() {
    if [[ -f $1.inner ]]; then
        cat "$1.inner"
    else
        echo "$1"
    fi
}

# ps_python_host PY: the interpreter's executable as the host sees it (/proc/PID/exe): PY, or
# for a chroot wrapper the file under PS_SID_ROOT.
ps_python_host() {
    if [[ -f $1.inner ]]; then
        echo "$PS_SID_ROOT$(cat "$1.inner")"
    else
        echo "$1"
    fi
}

# ps_python_in_chroot PY: true for a chroot wrapper.
ps_python_in_chroot() {
    [[ -f $1.inner ]]
}

# ps_python_version PY: X.Y.Z as the interpreter reports it.
ps_python_version() {
    timeout 30 "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'
}

# ps_python_free_threaded PY: a build without the GIL (3.13t and later).
ps_python_free_threaded() {
    [[ $(timeout 30 "$1" -c 'import sysconfig; print(sysconfig.get_config_var("Py_GIL_DISABLED") or 0)' 2>/dev/null) == 1 ]]
}

# ps_python3: a Python 3 to run helper scripts with (/usr/bin/python3 preferred).
ps_python3() {
    local py
    if [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
        return 0
    fi
    while IFS= read -r py; do
        if timeout 30 "$py" -c 'import sys; sys.exit(sys.version_info[0] < 3)' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done < <(ps_find_pythons | tac)
    return 1
}

# ---- fixtures -----------------------------------------------------------------------------------

# ps_fixture_line FIXTURE TAG: the line number marked "# LINE:TAG" in the fixture (exactly one).
ps_fixture_line() {
    local file=$1 lines
    [[ $file == /* ]] || file=$PS_FIXTURES/$file
    lines=$(grep -n -E "# LINE:$2\$" "$file" | cut -d: -f1) || true
    if [[ -z $lines || $lines == *$'\n'* ]]; then
        echo "lib.sh: expected exactly one '# LINE:$2' in $file, found: ${lines:-none}" >&2
        return 1
    fi
    echo "$lines"
}

# ps_start_fixture PY FIXTURE [ARGS...]: start "PY FIXTURE FIFO ARGS..." in the background in
# directory PS_FIXTURE_CWD (default: the fixtures directory) and wait, at most PS_TIMEOUT
# seconds, for the "ready <pid>" line it writes to FIFO. FIXTURE is a path or a name under
# fixtures/. On success returns 0 and sets PS_FIXTURE_PID, PS_FIXTURE_READY (the whole line),
# PS_FIXTURE_FIFO, PS_FIXTURE_PATH (absolute), PS_FIXTURE_CMD (its command line, space-joined).
# On failure counts a failure with the fixture's stderr and returns 1.
PS_FIXTURE_SEQ=0
ps_start_fixture() {
    local py=$1 fixture=$2 dir fd line pid cwd=${PS_FIXTURE_CWD:-$PS_FIXTURES}
    shift 2
    [[ $fixture == /* ]] || fixture=$PS_FIXTURES/$fixture
    PS_FIXTURE_SEQ=$((PS_FIXTURE_SEQ + 1))
    dir=$(mktemp -d "$PS_TMP/fixture$PS_FIXTURE_SEQ.XXXXXX") || return 1
    PS_FIXTURE_FIFO=$dir/ready
    PS_FIXTURE_PATH=$fixture
    PS_FIXTURE_CMD="$(ps_python_argv0 "$py") $fixture $PS_FIXTURE_FIFO${*:+ $*}"
    PS_FIXTURE_PID=
    PS_FIXTURE_READY=
    mkfifo "$PS_FIXTURE_FIFO" || return 1
    # Held open read-write: opening never blocks, the fixture's open for writing never blocks,
    # and the wrapper below can always report the fixture's exit without a reader waiting.
    exec {fd}<>"$PS_FIXTURE_FIFO"
    PS_FDS+=("$fd")
    # The wrapper records the fixture's PID and, if the fixture ends, writes "exited STATUS"
    # to the FIFO, so a fixture that dies early fails the wait at once instead of timing out.
    (
        trap - ERR
        set +e
        cd "$cwd" || { echo "exited cd" >"$PS_FIXTURE_FIFO"; exit 1; }
        "$py" "$fixture" "$PS_FIXTURE_FIFO" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null &
        echo "$!" >"$dir/pid"
        { wait "$!"; } 2>/dev/null
        echo "exited $?" >"$PS_FIXTURE_FIFO"
    ) &

    if ! IFS= read -r -t "$PS_TIMEOUT" -u "$fd" line; then
        pid=$(cat "$dir/pid" 2>/dev/null) || true
        [[ -n $pid ]] && PS_PIDS+=("$pid")
        ps_fail "start $fixture under $py" "no readiness line within ${PS_TIMEOUT}s" \
            "--- fixture stderr:" "$(cat "$dir/stderr" 2>/dev/null)"
        return 1
    fi
    if [[ ! $line =~ ^ready\ ([0-9]+)( .*)?$ ]]; then
        pid=$(cat "$dir/pid" 2>/dev/null) || true
        [[ -n $pid ]] && PS_PIDS+=("$pid")
        ps_fail "start $fixture under $py" "fixture did not become ready: $line" \
            "--- fixture stderr:" "$(cat "$dir/stderr" 2>/dev/null)"
        return 1
    fi
    PS_FIXTURE_PID=${BASH_REMATCH[1]}
    PS_FIXTURE_READY=$line
    PS_PIDS+=("$PS_FIXTURE_PID")
    return 0
}

# ps_stop PID: kill a process this script started (kill -9), and reap it if it is a child of
# this shell (fixtures are reaped by their wrapper). It stays in PS_PIDS, which is harmless.
ps_stop() {
    {
        kill -9 "$1" || true
        wait "$1" || true
    } 2>/dev/null
}

# ps_wait_blocked PID: wait, at most PS_TIMEOUT seconds, until every thread of PID sleeps in the
# kernel (state S). A fixture signals readiness just before its last blocking call, so for a
# moment after "ready" its thread may still be runnable; tests that assert idle states call
# this first. Busy-checks /proc without forking (no sleep). Returns 1 on timeout, with the
# states seen in PS_BLOCKED_STATES.
ps_wait_blocked() {
    local pid=$1 deadline=$((SECONDS + PS_TIMEOUT)) stat line rest all
    while :; do
        all=1
        PS_BLOCKED_STATES=
        for stat in /proc/"$pid"/task/*/stat; do
            line=
            { IFS= read -r line <"$stat"; } 2>/dev/null || true
            rest=${line##*) }
            PS_BLOCKED_STATES+="${stat#/proc/"$pid"/task/}=${rest%% *} "
            [[ ${rest%% *} == S ]] || all=0
        done
        [[ -d /proc/$pid ]] || return 1
        ((all)) && return 0
        ((SECONDS < deadline)) || return 1
    done
}

# ps_other_task PID: the thread IDs of PID other than PID itself, one per line.
ps_other_tasks() {
    local t
    for t in /proc/"$1"/task/*; do
        t=${t##*/}
        [[ $t == "$1" ]] || echo "$t"
    done
}

# ---- dump output ------------------------------------------------------------------------------

# ps_thread_frames FILE TID: the frame lines (indentation removed) of thread TID in a text dump.
ps_thread_frames() {
    awk -v head="Thread $2 \"" '
        /^Thread / { inside = (index($0, head) == 1); next }
        /^[ \t]*$/ { inside = 0; next }
        inside && /^    / { print substr($0, 5) }
    ' "$1"
}

# ps_thread_header FILE TID: the header line(s) of thread TID in a text dump.
ps_thread_header() {
    grep -F -- "Thread $2 \"" "$1" | grep '^Thread ' || true
}

# ---- bounded waits (no sleep in tests) -------------------------------------------------------

# pause: a bounded 50 ms pause between polls of a condition.
pause() { timeout 0.05 tail -f /dev/null || true; }

# poll_until CMD...: run CMD every 50 ms until it succeeds, at most PS_TIMEOUT seconds.
poll_until() {
    local i
    for ((i = 0; i < PS_TIMEOUT * 20; i++)); do
        "$@" && return 0
        pause
    done
    return 1
}

progress_at_least() { # progress_at_least ERRFILE MIN: --progress reported >= MIN samples
    local n
    n=$(grep -oE '[0-9]+ samples' "$1" 2>/dev/null | tail -n 1 | cut -d' ' -f1) || true
    [[ -n $n && $n -ge $2 ]]
}

exited() { # exited PID: gone or a zombie
    ! kill -0 "$1" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

# wait_exit PID: bounded wait for a background child of this shell; sets WAIT_RC.
wait_exit() {
    WAIT_RC=timeout
    poll_until exited "$1" || return 1
    WAIT_RC=0
    wait "$1" || WAIT_RC=$?
}
