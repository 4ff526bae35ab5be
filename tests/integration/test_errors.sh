#!/usr/bin/env bash
# test_errors.sh -- `pysample dump` refusing targets it cannot attach to (no such process, not
# Python, a zombie, permission denied: exit 2) and bad command lines (exit 64). Each failure must
# print exactly one line on stderr, starting "pysample: " and naming the cause, and nothing on
# stdout.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "errors ($PYSAMPLE)"
ps_require_pysample

# check_error NAME STATUS CAUSE_ERE: the last ps_run failed as described.
check_error() {
    local name=$1 status=$2 cause=$3 ctx
    ctx=$(ps_run_context)
    ps_assert_status "$name: exit status $status" "$status"
    ps_assert_eq "$name: exactly one line on stderr" 1 "$(awk 'END { print NR }' "$PS_ERR_FILE")" "$ctx"
    ps_assert_match "$name: stderr starts with 'pysample: '" '^pysample: ' "$PS_ERR" "$ctx"
    if grep -q -i -E -- "$cause" "$PS_ERR_FILE"; then
        ps_pass "$name: message names the cause ($cause)"
    else
        ps_fail "$name: message names the cause ($cause)" "$ctx"
    fi
    ps_assert_eq "$name: nothing on stdout" "" "$PS_OUT" "$ctx"
}

# --- no such process: a PID with no /proc entry, searched down from the top of the PID space
unused=
pid_max=$(cat /proc/sys/kernel/pid_max)
for ((p = pid_max - 1; p > pid_max - 10000 && p > 300; p--)); do
    if [[ ! -e /proc/$p ]]; then
        unused=$p
        break
    fi
done
if [[ -z $unused ]]; then
    ps_fail "find an unused PID" "every PID from $((pid_max - 1)) down is taken"
else
    ps_run "$PYSAMPLE" dump "$unused"
    check_error "dump $unused (no such process)" 2 'no such process'
fi

# --- not Python: cat, proven to be running (it echoes a line back) before it is dumped
catdir=$(mktemp -d "$PS_TMP/cat.XXXXXX")
mkfifo "$catdir/in" "$catdir/out"
exec {cat_in}<>"$catdir/in" {cat_out}<>"$catdir/out"
PS_FDS+=("$cat_in" "$cat_out")
cat <"$catdir/in" >"$catdir/out" &
cat_pid=$!
PS_PIDS+=("$cat_pid")
echo ping >&"$cat_in"
if IFS= read -r -t "$PS_TIMEOUT" -u "$cat_out" line && [[ $line == ping ]]; then
    ps_run "$PYSAMPLE" dump "$cat_pid"
    check_error "dump $cat_pid (cat, not Python)" 2 'not a python process'
    ps_assert_running "dump $cat_pid (cat, not Python): target still running" "$cat_pid"
else
    ps_fail "start cat as a non-Python target" "no echo within ${PS_TIMEOUT}s"
fi
ps_stop "$cat_pid"

# --- zombie: an exited child its Python parent never reaps
PY3=$(ps_python3) || PY3=
if [[ -z $PY3 ]]; then
    ps_fail "a Python 3 to run fixtures/zombie_parent.py with" "none found"
elif ps_start_fixture "$PY3" zombie_parent.py; then
    read -r _ parent zombie <<<"$PS_FIXTURE_READY"
    zstate=$(sed 's/.*) //' "/proc/$zombie/stat" 2>/dev/null | cut -d' ' -f1) || zstate=
    if [[ $zstate == Z ]]; then
        ps_run "$PYSAMPLE" dump "$zombie"
        check_error "dump $zombie (zombie)" 2 'zombie'
    else
        ps_fail "zombie_parent.py leaves a zombie" "process $zombie (child of $parent) has state '${zstate:-gone}'"
    fi
    ps_stop "$parent"
fi

# --- permission denied: an unprivileged user dumping a process owned by root
if [[ $(id -u) != 0 ]]; then
    echo "skip permission denied (needs root to start a target the test user cannot read)"
elif ! command -v setpriv >/dev/null; then
    echo "skip permission denied (setpriv not installed: util-linux)"
elif [[ -z $PY3 ]]; then
    ps_fail "permission denied: a Python 3 target" "no Python 3 found"
elif ps_start_fixture "$PY3" two_threads.py; then
    ps_run setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PYSAMPLE" dump "$PS_FIXTURE_PID"
    check_error "dump $PS_FIXTURE_PID as nobody (permission denied)" 2 'permission denied'
    ps_assert_running "dump as nobody: target still running" "$PS_FIXTURE_PID"
    ps_stop "$PS_FIXTURE_PID"
fi

# --- usage errors
ps_run "$PYSAMPLE" dump
check_error "dump without PID (usage)" 64 'pid'
ps_run "$PYSAMPLE" dump abc
check_error "dump abc (usage)" 64 'abc'
ps_run "$PYSAMPLE" dump 12abc
check_error "dump 12abc (usage)" 64 '12abc'
ps_run "$PYSAMPLE" no-such-command
check_error "unknown command (usage)" 64 'no-such-command'

ps_finish
