#!/usr/bin/env bash
# test_dump.sh -- `pysample dump` against fixtures/two_threads.py under every CPython found:
# header lines, both threads' exact frames (names, short and full file names, line numbers
# taken from the fixture's "# LINE:" tags), thread states, --json shape and agreement with
# the text output, -v, repeatability, and that the target is left running.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "dump ($PYSAMPLE)"
ps_require_pysample

FIXTURE=two_threads.py
UNICODE_NAME=$'\xc3\xbcnicode_func'   # "ünicode_func", UTF-8
PY3=$(ps_python3) || PY3=
if [[ -z $PY3 ]]; then
    ps_fail "a Python 3 to check --json output with" "none found"
fi

if ! L_MAIN_BLOCK=$(ps_fixture_line "$FIXTURE" main_block) ||
    ! L_MAIN_CALL=$(ps_fixture_line "$FIXTURE" main_call) ||
    ! L_WORKER_SLEEP=$(ps_fixture_line "$FIXTURE" worker_sleep) ||
    ! L_WORKER_RUN=$(ps_fixture_line "$FIXTURE" worker_run); then
    ps_fail "fixture $FIXTURE has its LINE tags"
    ps_finish
fi

# expected_main SHORTNAME / expected_worker_top SHORTNAME RUN: the frame lines the fixture
# guarantees (innermost first).
expected_main() {
    printf '%s (%s:%s)\n' "$UNICODE_NAME" "$1" "$L_MAIN_BLOCK" "<module>" "$1" "$L_MAIN_CALL"
}
expected_worker_top() {
    printf '%s (%s:%s)\n' sleep_forever "$1" "$L_WORKER_SLEEP" "$2" "$1" "$L_WORKER_RUN"
}

# check_frames LABEL DUMPFILE PID WTID FILENAME RUN THREADING_RE: both threads' frames.
# THREADING_RE matches the file part of the threading.py frames below the worker's run().
check_frames() {
    local label=$1 file=$2 pid=$3 wtid=$4 name=$5 run=$6 tre=$7 rest bad
    local ctx
    ctx=$(echo "--- dump:"; cat "$file")
    ps_assert_eq "$label: main thread frames" "$(expected_main "$name")" \
        "$(ps_thread_frames "$file" "$pid")" "$ctx"
    ps_assert_eq "$label: worker thread innermost frames" "$(expected_worker_top "$name" "$run")" \
        "$(ps_thread_frames "$file" "$wtid" | head -n 2)" "$ctx"
    rest=$(ps_thread_frames "$file" "$wtid" | tail -n +3)
    bad=$(grep -v -E "^[^ ]+ \\($tre:[0-9]+\\)\$" <<<"$rest" || true)
    if [[ -z $rest ]]; then
        ps_fail "$label: threading.py frames below $run" "no frames below $run" "$ctx"
    elif [[ -n $bad ]]; then
        ps_fail "$label: threading.py frames below $run" "frames not in threading.py:" "$bad" "$ctx"
    else
        ps_pass "$label: threading.py frames below $run"
    fi
    ps_assert_match "$label: worker's outermost frame is threading's _bootstrap" \
        "_bootstrap \\($tre:[0-9]+\\)\$" "$(tail -n 1 <<<"$rest")" "$ctx"
}

check_interpreter() {
    local py=$1 ver major minor run label pid wtid others text full json line2 exe
    if ! ver=$(ps_python_version "$py"); then
        ps_fail "$py reports its version"
        return 0
    fi
    label="[$ver $py]"
    IFS=. read -r major minor _ <<<"$ver"
    if ((major > 3 || (major == 3 && minor >= 11))); then run=Worker.run; else run=run; fi

    PS_FIXTURE_CWD=$PS_FIXTURES
    ps_start_fixture "$py" "$FIXTURE" || return 0
    pid=$PS_FIXTURE_PID
    mapfile -t others < <(ps_other_tasks "$pid")
    if ((${#others[@]} != 1)); then
        ps_fail "$label: fixture runs exactly two threads" "other tasks: ${others[*]:-none}"
        ps_stop "$pid"
        return 0
    fi
    wtid=${others[0]}
    if ! ps_wait_blocked "$pid"; then
        ps_fail "$label: both fixture threads block in the kernel" "thread states: $PS_BLOCKED_STATES"
        ps_stop "$pid"
        return 0
    fi

    # --- text
    ps_run "$PYSAMPLE" dump "$pid"
    ps_assert_status "$label: dump exits 0" 0
    text=$PS_OUT_FILE
    ps_assert_eq "$label: process line" "Process $pid: $PS_FIXTURE_CMD" "$(sed -n 1p "$text")"
    line2=$(sed -n 2p "$text")
    # A free-threaded interpreter (3.13t+) is named so: "Python 3.15.2 free-threaded (...)".
    ft=$(timeout 30 "$py" -c 'import sysconfig; print(" free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")' 2>/dev/null || true)
    if [[ $line2 =~ ^Python\ ${ver//./\\.}${ft}\ \((/.+)\)$ ]]; then
        ps_pass "$label: python version line"
        exe=${BASH_REMATCH[1]}
        ps_assert_eq "$label: python executable is the interpreter started" \
            "$(readlink -f "$(ps_python_host "$py")")" "$(readlink -f "$exe" || echo "$exe")"
    else
        ps_fail "$label: python version line" "expected: Python $ver (/path/to/python)" \
            "actual:   $line2"
    fi
    ps_assert_eq "$label: two thread headers" 2 "$(grep -c '^Thread ' "$text" || true)" \
        "$(cat "$text")"
    ps_assert_match "$label: main thread header (tid = pid, idle, no gil)" \
        "^Thread $pid \".*\" \\(idle\\)\$" "$(ps_thread_header "$text" "$pid")"
    ps_assert_match "$label: worker thread header (idle, no gil)" \
        "^Thread $wtid \".*\" \\(idle\\)\$" "$(ps_thread_header "$text" "$wtid")"
    check_frames "$label" "$text" "$pid" "$wtid" "$FIXTURE" "$run" 'threading\.py'

    # --- repeatable: nothing in the target moves, so neither may the output
    ps_run "$PYSAMPLE" dump "$pid"
    ps_assert_eq "$label: second dump is identical" "$(cat "$text")" "$PS_OUT"

    # --- full file names
    ps_run "$PYSAMPLE" dump --full-filenames "$pid"
    ps_assert_status "$label: dump --full-filenames exits 0" 0
    full=$PS_OUT_FILE
    check_frames "$label --full-filenames" "$full" "$pid" "$wtid" "$PS_FIXTURE_PATH" "$run" \
        '/[^ ]*/threading\.py'

    # --- json
    ps_run "$PYSAMPLE" dump --json "$pid"
    ps_assert_status "$label: dump --json exits 0" 0
    json=$PS_OUT_FILE
    if [[ -n $PY3 ]]; then
        if PYTHONIOENCODING=utf-8 timeout 30 "$PY3" -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$json" 2>"$PS_TMP/json.err"; then
            ps_pass "$label: --json output parses"
        else
            ps_fail "$label: --json output parses" "$(cat "$PS_TMP/json.err")" "--- output:" "$(cat "$json")"
        fi
        if PYTHONIOENCODING=utf-8 timeout 30 "$PY3" "$PS_ROOT/tests/integration/dump_json.py" "$json" \
            >"$PS_TMP/json.txt" 2>"$PS_TMP/json.err"; then
            ps_pass "$label: --json has the documented shape"
            check_frames "$label --json" "$PS_TMP/json.txt" "$pid" "$wtid" "$FIXTURE" "$run" \
                'threading\.py'
            ps_assert_eq "$label: --json says what the text dump says" "$(cat "$text")" \
                "$(cat "$PS_TMP/json.txt")"
            ps_assert_eq "$label: --json pid" "Process $pid: $PS_FIXTURE_CMD" \
                "$(sed -n 1p "$PS_TMP/json.txt")"
            if PYTHONIOENCODING=utf-8 timeout 30 "$PY3" "$PS_ROOT/tests/integration/dump_json.py" --full \
                "$json" >"$PS_TMP/json-full.txt" 2>/dev/null; then
                ps_assert_eq "$label: --json paths are the full file names" "$(cat "$full")" \
                    "$(cat "$PS_TMP/json-full.txt")"
            fi
        else
            ps_fail "$label: --json has the documented shape" "$(cat "$PS_TMP/json.err")" \
                "--- output:" "$(cat "$json")"
        fi
    fi

    # --- options may also follow the PID (the documented form: dump PID [--json] ...)
    ps_run "$PYSAMPLE" dump "$pid" --full-filenames
    ps_assert_status "$label: dump PID --full-filenames exits 0" 0
    ps_assert_eq "$label: dump PID --full-filenames = dump --full-filenames PID" "$(cat "$full")" \
        "$PS_OUT"
    ps_run "$PYSAMPLE" dump "$pid" --json
    ps_assert_status "$label: dump PID --json exits 0" 0
    ps_assert_eq "$label: dump PID --json = dump --json PID" "$(cat "$json")" "$PS_OUT"

    # --- verbose: same stacks, and more said
    ps_run "$PYSAMPLE" dump -v "$pid"
    ps_assert_status "$label: dump -v exits 0" 0
    ps_assert_eq "$label: dump -v main thread frames" "$(expected_main "$FIXTURE")" \
        "$(ps_thread_frames "$PS_OUT_FILE" "$pid")"
    ps_assert_true "$label: dump -v says more than dump" \
        "stdout+stderr of -v ($(cat "$PS_OUT_FILE" "$PS_ERR_FILE" | wc -c) bytes) not longer than without ($(wc -c <"$text") bytes)" \
        test "$(cat "$PS_OUT_FILE" "$PS_ERR_FILE" | wc -c)" -gt "$(wc -c <"$text")"

    ps_assert_running "$label: target still running, no thread stopped" "$pid"
    ps_stop "$pid"

    # --- short names: relative to the target's working directory when the file is under it
    PS_FIXTURE_CWD=$PS_ROOT
    if ps_start_fixture "$py" "$FIXTURE"; then
        pid=$PS_FIXTURE_PID
        ps_run "$PYSAMPLE" dump "$pid"
        ps_assert_status "$label (cwd = repository root): dump exits 0" 0
        ps_assert_eq "$label (cwd = repository root): names relative to the working directory" \
            "$(expected_main "fixtures/$FIXTURE")" "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" \
            "$(ps_run_context)"
        ps_stop "$pid"
    fi

    # --- short names: what follows site-packages/ for a file outside the working directory
    local sp=$PS_TMP/prefix-$major.$minor/lib/python$major.$minor/site-packages/demo_pkg
    mkdir -p "$sp" "$PS_TMP/empty"
    cp "$PS_FIXTURES/$FIXTURE" "$sp/$FIXTURE"
    PS_FIXTURE_CWD=$PS_TMP/empty
    if ps_start_fixture "$py" "$sp/$FIXTURE"; then
        pid=$PS_FIXTURE_PID
        ps_run "$PYSAMPLE" dump "$pid"
        ps_assert_status "$label (site-packages): dump exits 0" 0
        ps_assert_eq "$label (site-packages): names after site-packages/" \
            "$(expected_main "demo_pkg/$FIXTURE")" "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" \
            "$(ps_run_context)"
        ps_stop "$pid"
    fi
    PS_FIXTURE_CWD=
}

mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "CPython interpreters found" \
        "none under $(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions/*/bin/python, no /usr/bin/python3.11"
fi
for py in "${PYTHONS[@]}"; do
    check_interpreter "$py"
done

ps_finish
