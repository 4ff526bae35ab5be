#!/usr/bin/env bash
# test_edges.sh -- sessions at the edges: a target that calls exec() (into Python again, or into
# a program that is not Python) under every CPython found; `record -- CMD` of a command that
# never runs Python; rates and durations out of range; threads that are starting (no TID yet)
# and frames with no known line; statistics that must agree with themselves (min <= median <=
# max, a stall counted as the ticks it missed, a sub-Hz session not worth more seconds than it
# lasted); one line per failure when the Python subprocesses of a shell cannot be read.
#
# Every failure is checked for its exit status and its single stderr line; every recording for
# the samples it kept; every target for threads left stopped (t/T).
# shellcheck disable=SC2317  # helpers are called through poll_until
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "edges ($PYSAMPLE)"
ps_require_pysample

mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "find CPython interpreters" "ps_find_pythons found none"
    ps_finish
fi
L_BEFORE=$(ps_fixture_line exec_self.py before)
L_AFTER=$(ps_fixture_line exec_self.py after)

# ---- helpers --------------------------------------------------------------------------------


meta() { sed -n "s/^# $2=//p" "$1" 2>/dev/null | head -n 1 | sed 's/^"\(.*\)"$/\1/'; }
drop_of() { meta "$1" dropped | tr ',' '\n' | sed -n "s/^$2=//p"; }
count_sum() { grep -v '^#' "$1" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'; }
frames_of() { grep -v '^#' "$1" | sed 's/ [0-9]*$//' | tr ';' '\n' | sort -u; }

has_frame() { # has_frame LABEL FILE ERE: some frame of FILE matches ERE exactly
    if frames_of "$2" | grep -xE -- "$3" >/dev/null; then
        ps_pass "$1"
    else
        ps_fail "$1" "no frame matches: $3" "frames: $(frames_of "$2" | cut -c1-120 | head -40)"
    fi
}

# messages FILE: stderr lines other than --progress lines and "wrote FILE" lines.
messages() {
    grep -vE '^pysample: ([0-9.]+s, [0-9]+ samples|wrote )' "$1" || true
}

# check_stat_order LABEL TABLEFILE: every "min A us, median B us, max C us" has A <= B <= C.
check_stat_order() {
    local label=$1 f=$2 line bad=0 n=0
    while IFS= read -r line; do
        n=$((n + 1))
        awk -v l="$line" 'BEGIN {
            if (match(l, /min [0-9.]+ us, median [0-9.]+ us, max [0-9.]+ us/) == 0) exit 1
            split(substr(l, RSTART, RLENGTH), w, " ")
            exit !(w[2] + 0 <= w[5] + 0 && w[5] + 0 <= w[8] + 0)
        }' || bad=$((bad + 1))
    done < <(grep -E 'min [0-9.]+ us, median' "$f" || true)
    if ((n > 0 && bad == 0)); then
        ps_pass "$label: min <= median <= max ($n statistics)"
    else
        ps_fail "$label: min <= median <= max ($n statistics, $bad out of order)" "$(cat "$f")"
    fi
}

# ---- 1. rates and durations out of range: one usage line, exit 64 ---------------------------

bad_number() { # bad_number WHAT OPTION VALUE COMMAND...
    local what=$1 opt=$2 val=$3
    shift 3
    ps_run "$PYSAMPLE" "$@" "$opt" "$val" "$$"
    ps_assert_status "$* $opt '$val': exit 64" 64
    ps_assert_eq "$* $opt '$val': one stderr line" 1 "$(grep -c '' "$PS_ERR_FILE")"
    ps_assert_match "$* $opt '$val': names the $what and its range" \
        "^pysample: .*invalid $what .*from [0-9.]+ to [0-9]+" "$PS_ERR"
}
for v in 1e-11 0 -5 nan NaN inf -inf 1e400 1e-400 100001 0x10 5abc "" \
    "$(printf '9%.0s' {1..300})"; do
    bad_number rate -r "$v" attach
done
bad_number rate --rate 1e-11 attach -d 1
bad_number duration -d nan attach
bad_number duration -d inf attach
bad_number duration -d 1e-300 attach
bad_number duration -d 1e8 attach
ps_run "$PYSAMPLE" record -r 1e-11 -o "$PS_TMP/never.folded" -- /bin/true
ps_assert_status "record -r 1e-11 -- CMD: exit 64 before running anything" 64
ps_assert_true "record -r 1e-11 -- CMD: no file written" "$(ls "$PS_TMP")" \
    test ! -e "$PS_TMP/never.folded"

# ---- 2. record -- CMD that never runs Python ------------------------------------------------

# record_cmd NAME STATUS HINT CMD...: the command's status, an empty folded file, one message
# line saying it exited without running Python (HINT: "subprocesses" when it should suggest
# --subprocesses, else "" when it must not).
record_cmd() {
    local name=$1 status=$2 hint=$3 out=$PS_TMP/cmd$PS_RUN_SEQ.folded msg
    shift 3
    ps_run "$PYSAMPLE" record -o "$out" -- "$@"
    ps_assert_status "$name: exits with the command's status" "$status"
    msg=$(messages "$PS_ERR_FILE")
    ps_assert_eq "$name: one message line" 1 "$(printf '%s\n' "$msg" | grep -c .)" "$(ps_run_context)"
    ps_assert_match "$name: says it exited without running Python" \
        "^pysample: record: '.*' exited without running Python; nothing was sampled" "$msg"
    if [[ $msg == *zombie* ]]; then
        ps_fail "$name: no word of a zombie" "$msg"
    else
        ps_pass "$name: no word of a zombie"
    fi
    if [[ -n $hint ]]; then
        ps_assert_match "$name: suggests --subprocesses" "add --subprocesses" "$msg"
    elif [[ $msg == *--subprocesses* ]]; then
        ps_fail "$name: does not suggest --subprocesses" "$msg"
    else
        ps_pass "$name: does not suggest --subprocesses"
    fi
    if [[ -f $out ]]; then
        ps_pass "$name: the file is written, as the man page says"
        ps_assert_eq "$name: with no samples" 0 "$(count_sum "$out")"
        ps_assert_match "$name: a folded file" '^# pysample=' "$(head -n 1 "$out")"
    else
        ps_fail "$name: the file is written, as the man page says" "$(ps_run_context)"
    fi
}
record_cmd "record -- /bin/sleep 0.2" 0 "" /bin/sleep 0.2
record_cmd "record -- /bin/false" 1 "" /bin/false
record_cmd "record -- sh -c 'sleep 0.2; exit 3'" 3 subprocesses /bin/sh -c '/bin/sleep 0.2; exit 3'

# A command that stays non-Python for more than a second: a line says what pysample waits for.
ps_run "$PYSAMPLE" record -o "$PS_TMP/long.folded" -- /bin/sleep 1.3
ps_assert_status "record -- /bin/sleep 1.3: exit 0" 0
ps_assert_match "record -- /bin/sleep 1.3: says early that it is not Python" \
    "pysample: record: '/bin/sleep' \(pid [0-9]+\) does not run Python; waiting for it" "$PS_ERR"

# --duration, or a signal, ends the wait for Python: one line, the same empty file, and the
# command's own status once it exits.
ps_run "$PYSAMPLE" record -d 0.3 -o "$PS_TMP/dur.folded" -- /bin/sh -c '/bin/sleep 0.8; exit 5'
ps_assert_status "record -d 0.3 -- non-Python: the command's status" 5
msg=$(messages "$PS_ERR_FILE")
ps_assert_eq "record -d 0.3 -- non-Python: one message line" 1 "$(printf '%s\n' "$msg" | grep -c .)" "$msg"
ps_assert_match "record -d 0.3 -- non-Python: says the duration ran out and it waits" \
    "^pysample: record: the duration ran out before '/bin/sh' ran Python; nothing was sampled; waiting for it \(pid [0-9]+\) to exit$" "$msg"
ps_assert_true "record -d 0.3 -- non-Python: the file is written" "$msg" test -f "$PS_TMP/dur.folded"
"$PYSAMPLE" record -o "$PS_TMP/int.folded" -- /bin/sleep 2 >/dev/null 2>"$PS_TMP/int.err" &
rp=$!
PS_PIDS+=("$rp")
if poll_until grep -q 'does not run Python; waiting' "$PS_TMP/int.err"; then
    kill -INT "$rp"
    wait_exit "$rp" || true
    ps_assert_eq "record -- non-Python, Ctrl-C: the command's status" 0 "$WAIT_RC"
    ps_assert_match "record -- non-Python, Ctrl-C: one line says it stopped and waits" \
        "^pysample: record: stopped before '/bin/sleep' ran Python; nothing was sampled; waiting for it \(pid [0-9]+\) to exit$" \
        "$(messages "$PS_TMP/int.err" | grep -v 'does not run Python; waiting')"
    ps_assert_true "record -- non-Python, Ctrl-C: the file is written" "$(cat "$PS_TMP/int.err")" \
        test -f "$PS_TMP/int.folded"
else
    ps_fail "record -- non-Python, Ctrl-C: the waiting line" "$(cat "$PS_TMP/int.err")"
    ps_stop "$rp"
fi

# With --subprocesses, the Python child of the shell is sampled.
PY_LAST=${PYTHONS[${#PYTHONS[@]} - 1]}
ps_run "$PYSAMPLE" record --subprocesses -r 200 -o "$PS_TMP/sub.folded" -- /bin/sh -c \
    "\"$PY_LAST\" \"$PS_FIXTURES/exec_self.py\" - after; exit 4"
ps_assert_status "record --subprocesses -- sh -c PY: the shell's status" 4
has_frame "record --subprocesses -- sh -c PY: the Python child is sampled" "$PS_TMP/sub.folded" \
    "after_exec \(.*exec_self\.py:$L_AFTER\)"

# ---- 3. a target that calls exec(), under every CPython --------------------------------------

# exec_case PY MODE: start exec_self.py MODE, record it until it has samples, let it exec, and
# let the recording end by itself.
exec_case() {
    local py=$1 mode=$2 ver out err rp fpid msg
    ver=$(ps_python_version "$py" 2>/dev/null || echo "?")
    local tag="[$ver exec $mode]"
    ps_start_fixture "$py" exec_self.py "$mode" || return 0
    fpid=$PS_FIXTURE_PID
    out=$PS_TMP/exec-$ver-$mode.folded
    err=$PS_TMP/exec-$ver-$mode.err
    "$PYSAMPLE" record -p "$fpid" -r 200 --progress -o "$out" >/dev/null 2>"$err" &
    rp=$!
    PS_PIDS+=("$rp")
    if ! poll_until progress_at_least "$err" 20; then
        ps_fail "$tag samples before the exec" "$(cat "$err")"
        ps_stop "$rp"
        ps_stop "$fpid"
        return 0
    fi
    kill -USR1 "$fpid"
    if ! wait_exit "$rp"; then
        ps_fail "$tag the recording ends by itself" "$(cat "$err")"
        ps_stop "$rp"
        ps_stop "$fpid"
        return 0
    fi
    ps_assert_eq "$tag exit 0 (the exec is no error)" 0 "$WAIT_RC" "$(cat "$err")"
    msg=$(messages "$err")
    ps_assert_eq "$tag one message line" 1 "$(printf '%s\n' "$msg" | grep -c .)" "$msg"
    if [[ $mode == python ]]; then
        ps_assert_match "$tag the note says it is sampled on" \
            "^pysample: process $fpid ran exec\(\) into .* \(Python [0-9.]+\): sampled on$" "$msg"
    else
        ps_assert_match "$tag the note says the new program is not Python" \
            "^pysample: process $fpid ran exec\(\) into .*sleep, which is not Python: its sampling ended there \([0-9]+ samples kept\)$" \
            "$msg"
    fi
    if [[ ! -s $out ]]; then
        ps_fail "$tag file written" "$(cat "$err")"
    else
        ps_assert_eq "$tag samples kept (counted - written)" 0 "$(($(meta "$out" samples) - $(count_sum "$out")))"
        # A walk that overlaps the exec itself (the old memory gone, /proc not yet showing the
        # new program) may fail its read once, and into Python one more may overlap the new
        # interpreter's start (seen once on 3.14t, whose start is slower); before, every tick
        # after the exec failed.
        local most=1
        [[ $mode == python ]] && most=2
        ps_assert_true "$tag at most $most read errors, at the exec" "$(grep '^#' "$out")" \
            test "$(drop_of "$out" read)" -le "$most"
        has_frame "$tag before the exec: before_exec at its line" "$out" \
            "before_exec \(exec_self\.py:$L_BEFORE\)"
        if [[ $mode == python ]]; then
            has_frame "$tag after the exec: after_exec at its line" "$out" \
                "after_exec \(exec_self\.py:$L_AFTER\)"
        fi
    fi
    if [[ $mode == sleep ]]; then
        ps_assert_running "$tag the exec'd program runs on, not stopped" "$fpid"
        ps_assert_match "$tag it is the new program" "sleep" "$(cat "/proc/$fpid/comm" 2>/dev/null)"
    fi
    ps_stop "$fpid"
}
for py in "${PYTHONS[@]}"; do
    exec_case "$py" python
    exec_case "$py" sleep
done

# Free-threaded builds: --gil refuses a target whose GIL is disabled, at attach and at an exec
# into one (started with PYTHON_GIL=1, the fixture execs itself without it).
for py in "${PYTHONS[@]}"; do
    ps_python_free_threaded "$py" || continue
    ver=$(ps_python_version "$py" 2>/dev/null || echo "?")t
    tag="[$ver --gil]"
    ps_start_fixture "$py" exec_self.py nogil || continue
    fpid=$PS_FIXTURE_PID
    ps_run "$PYSAMPLE" attach --gil -d 1 "$fpid"
    ps_assert_status "$tag GIL disabled: exit 64" 64
    ps_assert_match "$tag GIL disabled: one line naming the cause and the fix" \
        "^pysample: --gil: process $fpid runs a free-threaded Python [0-9.]+.* with the GIL disabled.*PYTHON_GIL=1$" \
        "$PS_ERR"
    ps_assert_running "$tag GIL disabled: the target runs on" "$fpid"
    ps_stop "$fpid"

    PYTHON_GIL=1 ps_start_fixture "$py" exec_self.py nogil || continue
    fpid=$PS_FIXTURE_PID
    out=$PS_TMP/gil-exec-$ver.folded
    err=$PS_TMP/gil-exec-$ver.err
    "$PYSAMPLE" record -p "$fpid" --gil -r 200 --progress -o "$out" >/dev/null 2>"$err" &
    rp=$!
    PS_PIDS+=("$rp")
    if ! poll_until progress_at_least "$err" 20; then
        ps_fail "$tag PYTHON_GIL=1: the GIL holder is sampled" "$(cat "$err")"
        ps_stop "$rp"
        ps_stop "$fpid"
        continue
    fi
    kill -USR1 "$fpid"
    if ! wait_exit "$rp"; then
        ps_fail "$tag the recording ends at the exec" "$(cat "$err")"
        ps_stop "$rp"
        ps_stop "$fpid"
        continue
    fi
    ps_assert_eq "$tag exec into the GIL disabled: exit 0" 0 "$WAIT_RC" "$(cat "$err")"
    ps_assert_match "$tag the note says why its sampling ended" \
        "^pysample: process $fpid ran exec\(\) into .*: it runs a free-threaded Python [0-9.]+.* with the GIL disabled, and --gil counts only a GIL holder; its sampling ended there \([0-9]+ samples kept\)$" \
        "$(messages "$err")"
    has_frame "$tag before the exec: before_exec at its line" "$out" \
        "before_exec \(exec_self\.py:$L_BEFORE\)"
    ps_stop "$fpid"
done

# ---- 4. threads that are starting, frames with no known line, under every CPython -------------

# `dump` of a process that starts and ends threads all the time: never `Thread 0 ""` (a thread
# state whose thread has no TID yet), and the main thread always under its own TID.
for py in "${PYTHONS[@]}"; do
    ver=$(ps_python_version "$py" 2>/dev/null || echo "?")
    ps_start_fixture "$py" faults.py threads || continue
    fpid=$PS_FIXTURE_PID
    # (a dump torn by the churn more often than its retries allow fails with exit 2 and its
    # one line; on a loaded machine a few do, and they are not counted)
    bad=0 main=0 ok=0 why=
    for _ in $(seq 20); do
        ps_run "$PYSAMPLE" dump "$fpid"
        if ((PS_RC != 0)); then
            why=$PS_ERR
            continue
        fi
        ok=$((ok + 1))
        bad=$((bad + $(grep -cE '^Thread (0|\?) ' "$PS_OUT_FILE" || true)))
        main=$((main + $(grep -c "^Thread $fpid \"MainThread\"" "$PS_OUT_FILE" || true)))
    done
    ps_assert_true "[$ver churn] most of 20 dumps succeed ($ok)" "$why" test "$ok" -ge 10
    ps_assert_eq "[$ver churn] no thread without a TID" 0 "$bad" "$(cat "$PS_OUT_FILE")"
    ps_assert_eq "[$ver churn] the main thread under its TID in every dump" "$ok" "$main" "$(cat "$PS_OUT_FILE")"
    ps_assert_running "[$ver churn] the target is not stopped" "$fpid"
    ps_stop "$fpid"
done

# Interpreter start-up, imports, generators, coroutines and threads at 2 kHz: every frame has a
# line (the function's first line when the instruction has none), no table row says ":0:".
cat >"$PS_TMP/lines.py" <<'PY'
import threading, json, email.parser, collections, re
def gen():
    for i in range(200000):
        yield i
def run():
    sum(gen())
ts = [threading.Thread(target=run) for _ in range(6)]
for t in ts:
    t.start()
for t in ts:
    t.join()
PY
for py in "${PYTHONS[@]}"; do
    ver=$(ps_python_version "$py" 2>/dev/null || echo "?")
    out=$PS_TMP/lines-$ver.folded
    ps_run "$PYSAMPLE" record -r 2000 --idle -f folded,table -o "$out" -- "$py" "$PS_TMP/lines.py"
    ps_assert_status "[$ver lines] record -- exits 0" 0
    if [[ ! -s $out ]]; then
        ps_fail "[$ver lines] file written" "$PS_ERR"
        continue
    fi
    noline=$(frames_of "$out" | grep -vE '^(process|thread) ' | grep -vE ':[1-9][0-9]*\)$' || true)
    ps_assert_eq "[$ver lines] every frame has a line ($(frames_of "$out" | grep -c .) frames)" "" "$noline"
    ps_assert_eq "[$ver lines] no table row at line 0" "" "$(grep -E '^ *[0-9.]+ +[0-9.]+ +[0-9.]+  .*:0:' "${out%.folded}.txt" || true)"
    has_frame "[$ver lines] the generator at its line" "$out" "gen \(.*lines\.py:4\)"
done

# 3.13+ pushes a frame of a static code object (_Py_InitCleanup: name and file "__init__", no
# line) between a class call and its Python __init__: plumbing, left out of every stack.
cat >"$PS_TMP/shim.py" <<'PY'
class A:
    def __init__(self):
        self.x = sum(range(50))
for _ in range(400000):
    A()
PY
for py in "${PYTHONS[@]}"; do
    ver=$(ps_python_version "$py" 2>/dev/null || echo "?")
    out=$PS_TMP/shim-$ver.folded
    ps_run "$PYSAMPLE" record -r 1000 -o "$out" -- "$py" "$PS_TMP/shim.py"
    ps_assert_status "[$ver init shim] record -- exits 0" 0
    has_frame "[$ver init shim] __init__ at its line" "$out" "(A\.)?__init__ \(.*shim\.py:3\)"
    ps_assert_eq "[$ver init shim] no shim frame (__init__ without a file or line)" "" \
        "$(frames_of "$out" | grep -vE ':[1-9][0-9]*\)$' | head -3)"
done

# ---- 5. statistics that agree with themselves ------------------------------------------------

# A sampler stalled for half a second at 100 Hz misses about 50 ticks, not one.
ps_start_fixture "$PY_LAST" exec_self.py python
if [[ -n $PS_FIXTURE_PID ]]; then
    fpid=$PS_FIXTURE_PID
    tab=$PS_TMP/stall.table
    err=$PS_TMP/stall.err
    "$PYSAMPLE" attach -r 100 --progress "$fpid" >"$tab" 2>"$err" &
    rp=$!
    PS_PIDS+=("$rp")
    if poll_until progress_at_least "$err" 20; then
        kill -STOP "$rp"
        for _ in 1 2 3 4 5 6 7 8 9 10; do pause; done # 0.5 s
        kill -CONT "$rp"
        n0=$(grep -oE '[0-9]+ samples' "$err" | tail -n 1 | cut -d' ' -f1)
        poll_until progress_at_least "$err" $((n0 + 20)) || true
        kill -INT "$rp"
        wait_exit "$rp" || true
        ps_assert_eq "stall: attach ends with exit 0" 0 "$WAIT_RC" "$(cat "$err")"
        line=$(grep '^Ticks: ' "$tab" || true)
        ticks=$(sed -nE 's/^Ticks: ([0-9]+),.*/\1/p' <<<"$line")
        missed=$(sed -nE 's/.*missed: ([0-9]+) .*/\1/p' <<<"$line")
        dur=$(sed -nE 's/.* over ([0-9.]+) seconds$/\1/p' "$tab")
        ps_assert_true "stall: the missed ticks are counted (${missed:-none}; $line)" "$(cat "$tab")" \
            test "${missed:-0}" -ge 30
        # (no lower bound: on a loaded machine ticks run late by less than an interval too)
        ps_assert_true "stall: ticks + missed fit the session ($ticks + ${missed:-0} in ${dur}s)" \
            "$(cat "$tab")" awk -v t="$ticks" -v m="${missed:-0}" -v d="$dur" \
            'BEGIN { exit !(t + m <= d * 100 + 2) }'
        check_stat_order "stall" "$tab"
    else
        ps_fail "stall: attach samples" "$(cat "$err")"
        ps_stop "$rp"
    fi
    ps_assert_running "stall: the target is not stopped" "$fpid"
    ps_stop "$fpid"
fi

# One tick at 0.01 Hz in a half-second session stands for half a second, not 100 seconds; the
# interval written in the file keeps `report` saying the same.
ps_start_fixture "$PY_LAST" exec_self.py python
if [[ -n $PS_FIXTURE_PID ]]; then
    fpid=$PS_FIXTURE_PID
    ps_run "$PYSAMPLE" attach -r 0.01 -d 0.5 -o "$PS_TMP/subhz.folded" "$fpid"
    ps_assert_status "0.01 Hz for 0.5 s: exit 0" 0
    ps_assert_eq "0.01 Hz for 0.5 s: one sample" "Sample count: 1" "$(grep '^Sample count:' "$PS_OUT_FILE")"
    total=$(sed -nE 's/^Total time: ([0-9.]+) seconds$/\1/p' "$PS_OUT_FILE")
    ps_assert_true "0.01 Hz for 0.5 s: total time within the session (${total}s)" "$PS_OUT" \
        awk -v t="${total:-1e9}" 'BEGIN { exit !(t >= 0.4 && t <= 0.7) }'
    check_stat_order "0.01 Hz for 0.5 s" "$PS_OUT_FILE"
    ps_run "$PYSAMPLE" report "$PS_TMP/subhz.folded"
    rtotal=$(sed -nE 's/^Total time: ([0-9.]+) seconds$/\1/p' "$PS_OUT_FILE")
    ps_assert_eq "0.01 Hz for 0.5 s: report says the same total" "$total" "$rtotal"
    ps_assert_running "0.01 Hz: the target is not stopped" "$fpid"
    ps_stop "$fpid"
fi

# ---- 6. one line per failure: Python subprocesses that cannot be read -----------------------

# A shell that nobody may read, whose Python child is not dumpable (PR_SET_DUMPABLE 0: its maps
# and memory are closed even to its own user; the Python is one nobody can run, not one under
# /root): `dump --subprocesses` and `record --subprocesses` as nobody name that cause in one
# line, not a second line saying there is no Python child.
if [[ $(id -u) != 0 ]] || ! command -v setpriv >/dev/null; then
    echo "skip unreadable subprocesses (needs root and setpriv)"
else
    PY_NOBODY=$(ps_python3)
    chmod 711 "$PS_TMP"
    pub=$(mktemp -d "$PS_TMP/nobody.XXXXXX")
    chmod 777 "$pub"
    cat >"$pub/undumpable.py" <<'PY'
import ctypes, os, signal, sys, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
signal.alarm(600)
f = open(sys.argv[1], "w")
f.write("ready %d\n" % os.getpid())
f.close()
while True:
    time.sleep(1)
PY
    mkfifo -m 666 "$pub/ready"
    exec {ufd}<>"$pub/ready"
    PS_FDS+=("$ufd")
    setpriv --reuid=65534 --regid=65534 --clear-groups -- /bin/sh -c '"$@"; exit $?' sh \
        "$PY_NOBODY" "$pub/undumpable.py" "$pub/ready" </dev/null >/dev/null 2>&1 &
    shpid=$!
    PS_PIDS+=("$shpid")
    if IFS= read -r -t "$PS_TIMEOUT" -u "$ufd" line && [[ $line =~ ^ready\ ([0-9]+)$ ]]; then
        kid=${BASH_REMATCH[1]}
        PS_PIDS+=("$kid")
        ps_run setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PYSAMPLE" dump --subprocesses "$shpid"
        ps_assert_status "dump --subprocesses, child unreadable: exit 2" 2
        ps_assert_eq "dump --subprocesses, child unreadable: one line" 1 "$(grep -c '' "$PS_ERR_FILE")" "$(ps_run_context)"
        ps_assert_match "dump --subprocesses, child unreadable: names the child and the cause" \
            "^pysample: dump: process $kid left out: .*permission denied" "$PS_ERR"
        ps_run setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PYSAMPLE" record --subprocesses \
            -p "$shpid" -d 0.5 -o "$pub/y.folded"
        ps_assert_status "record --subprocesses, child unreadable: exit 2" 2
        ps_assert_eq "record --subprocesses, child unreadable: one line" 1 "$(grep -c '' "$PS_ERR_FILE")" "$(ps_run_context)"
        ps_assert_match "record --subprocesses, child unreadable: names the cause" \
            "^pysample: $shpid is not Python, and its subprocesses could not be sampled: .*permission denied" "$PS_ERR"
        ps_assert_running "unreadable child: not stopped" "$kid"
        ps_stop "$kid"
    else
        ps_fail "start an undumpable Python child as nobody" "${line:-no readiness line}"
    fi
    ps_stop "$shpid"
fi

ps_finish
