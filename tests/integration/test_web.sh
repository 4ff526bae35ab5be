#!/usr/bin/env bash
# test_web.sh -- pysample on real web servers and multi-process targets:
#   - gunicorn (Debian's, 3 sync workers) serving fixtures/webapp.py under load: `record
#     --subprocesses` on the master finds every worker and slow_handler dominates their samples,
#     a handler sleeping in time.sleep is left out by default and kept with --idle, `dump
#     --subprocesses` prints master and workers, `attach --subprocesses` prints per-process
#     GIL/active shares, and the server keeps serving with no process left stopped;
#   - uWSGI with the python3 plugin (libpython loaded into a binary not named python): `dump`
#     catches a /slow request in flight, `record` on the worker records slow_handler;
#   - fixtures/idle_threads.py under every CPython found: idle threads are left out by default
#     and all kept (and counted as idle) with --idle --threads;
#   - --subprocesses on a target without Python children, on a non-Python parent, and on a
#     target whose Python children keep exiting during the session.
# Servers listen on unix sockets in the test's directory (no port races); tests/integration/
# web_client.py drives them. Every wait is a bounded poll on a condition.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "web servers and subprocesses ($PYSAMPLE)"
ps_require_pysample

CLIENT=$PS_ROOT/tests/integration/web_client.py
GUNICORN=${PS_GUNICORN:-/usr/bin/gunicorn}
UWSGI=${PS_UWSGI:-/usr/bin/uwsgi}
PY3=$(ps_python3) || PY3=
if [[ -z $PY3 ]]; then
    ps_fail "a Python 3 to drive the servers with" "none found"
    ps_finish
fi
if ! L_SLOW=$(ps_fixture_line webapp.py slow_work) ||
    ! L_APP=$(ps_fixture_line webapp.py app_call) ||
    ! L_SLEEP=$(ps_fixture_line webapp.py sleep_wait) ||
    ! L_BUSY=$(ps_fixture_line idle_threads.py busy_work) ||
    ! L_SLEEPER=$(ps_fixture_line idle_threads.py sleeper) ||
    ! L_WAITER=$(ps_fixture_line idle_threads.py waiter) ||
    ! L_ACCEPTOR=$(ps_fixture_line idle_threads.py acceptor) ||
    ! L_CHILD=$(ps_fixture_line fork_children.py child_work); then
    ps_fail "fixtures have their LINE tags"
    ps_finish
fi
SLOW_FRAME="slow_handler (webapp.py:$L_SLOW)"
SLEEP_FRAME="sleepy_handler (webapp.py:$L_SLEEP)"

# ---- helpers ------------------------------------------------------------------------------------

# children_of PID: the PIDs of PID's children, one per line.
children_of() {
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true
}

# pause_briefly: about 50 ms between two polls of a condition.
pause_briefly() {
    timeout 0.05 tail -f /dev/null || true
}

# folded_leaves FILE [PID...]: "COUNT<TAB>LEAF FRAME" lines, largest first, added up over the
# stacks whose process root is one of the PIDs (over all stacks when none is given).
folded_leaves() {
    local file=$1
    shift
    awk -v pids="$*" '
        BEGIN { n = split(pids, p, " "); for (i = 1; i <= n; i++) want[p[i]] = 1 }
        /^#/ || NF == 0 { next }
        {
            c = $NF
            s = substr($0, 1, length($0) - length(c) - 1)
            if (n) {
                if (!match(s, /^process [0-9]+:/)) next
                if (!(substr(s, 9, RLENGTH - 9) in want)) next
            }
            k = split(s, fr, ";")
            sum[fr[k]] += c
        }
        END { for (l in sum) printf "%d\t%s\n", sum[l], l }' "$file" 2>/dev/null |
        sort -t $'\t' -k1,1nr -k2,2 || true
}

# folded_roots FILE: the PIDs of the `process PID:"..."` roots, sorted, one per line.
folded_roots() {
    folded_stacks "$1" | grep -o -E '^process [0-9]+:' | grep -o -E '[0-9]+' | sort -n -u || true
}

# folded_meta FILE KEY: the value of the `# KEY=VALUE` line, quotes removed (empty if none).
folded_meta() {
    sed -n "s/^# $2=//p" "$1" 2>/dev/null | head -n 1 | sed 's/^"\(.*\)"$/\1/' || true
}

# folded_stacks FILE: the stack lines (no metadata).
folded_stacks() {
    grep -v '^#' "$1" 2>/dev/null || true
}

# sorted_words WORDS...: the words sorted numerically, space-separated.
sorted_words() {
    printf '%s\n' "$@" | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# check_dominant_leaf NAME FILE EXPECTED [PID...]: EXPECTED is the leaf with the most samples
# among the stacks of PIDs, with more than half of them.
check_dominant_leaf() {
    local name=$1 file=$2 expected=$3 leaves top total count
    shift 3
    leaves=$(folded_leaves "$file" "$@")
    top=$(head -n 1 <<<"$leaves" | cut -f2)
    count=$(head -n 1 <<<"$leaves" | cut -f1)
    total=$(awk -F '\t' '{ t += $1 } END { print t + 0 }' <<<"$leaves")
    if [[ $top == "$expected" ]] && ((count * 2 > total)); then
        ps_pass "$name"
    else
        ps_fail "$name" "expected leaf: $expected, with more than half of $total samples" \
            "leaves (samples, frame):" "$(head -n 8 <<<"$leaves")"
    fi
}

# start_server LOG CMD...: start a server in the background in the fixtures directory (so
# that pysample shortens its file names to webapp.py); its PID in SERVER_PID, added to the
# PIDs killed at exit.
start_server() {
    local log=$1
    shift
    (cd "$PS_FIXTURES" && exec "$@") >"$log" 2>&1 </dev/null &
    SERVER_PID=$!
    PS_PIDS+=("$SERVER_PID")
}

# wait_workers MASTER SOCKET COUNT LOG: poll (bounded by PS_TIMEOUT) until MASTER has COUNT
# children and answers on SOCKET; sets WORKERS (sorted). Counts a failure and returns 1 if not.
wait_workers() {
    local master=$1 sock=$2 count=$3 log=$4 deadline=$((SECONDS + PS_TIMEOUT)) kids
    WORKERS=()
    while :; do
        mapfile -t kids < <(children_of "$master")
        if ((${#kids[@]} == count)) &&
            timeout 10 "$PY3" "$CLIENT" get "$sock" /pid 1 >/dev/null 2>&1; then
            mapfile -t WORKERS < <(printf '%s\n' "${kids[@]}" | sort -n)
            PS_PIDS+=("${WORKERS[@]}")
            return 0
        fi
        if ((SECONDS >= deadline)) || [[ ! -d /proc/$master ]]; then
            ps_fail "server $master up with $count worker(s) within ${PS_TIMEOUT}s" \
                "children: ${kids[*]:-none}" "--- server log:" "$(tail -n 30 "$log")"
            return 1
        fi
        pause_briefly
    done
}

# start_load SOCKET CLIENTS STOPFILE OUT [PATH]: a background client keeping the server busy
# until STOPFILE exists (or 3 x PS_TIMEOUT seconds pass); its PID in LOAD_PID.
start_load() {
    rm -f "$3"
    timeout -k 5 $((PS_TIMEOUT * 3 + 10)) "$PY3" "$CLIENT" load "$1" "$2" $((PS_TIMEOUT * 3)) "$3" \
        ${5:+"$5"} >"$4" 2>&1 </dev/null &
    LOAD_PID=$!
    PS_PIDS+=("$LOAD_PID")
}

# stop_load STOPFILE: end the background client and reap it (it stops within one request).
stop_load() {
    touch "$1"
    wait "$LOAD_PID" 2>/dev/null || true
}

# served_pids OUT: the PIDs the load client got answers from, sorted.
served_pids() {
    sed -n 's/^served \([0-9]*\) [0-9]*$/\1/p' "$1" | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# dump_pids FILE: the PIDs of the "Process PID: ..." lines of a text dump, in order.
dump_pids() {
    sed -n 's/^Process \([0-9]*\): .*/\1/p' "$1" | tr '\n' ' ' | sed 's/ $//'
}

# json_pids FILE: the "pid" of each element of {"processes": [...]}, in order.
json_pids() {
    timeout 30 "$PY3" -c '
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
assert set(doc) == {"processes"}, sorted(doc)
print(" ".join(str(p["pid"]) for p in doc["processes"]))
for p in doc["processes"]:
    assert isinstance(p["threads"], list) and p["command"] and p["python"]["version"], p
' "$1"
}

# ---- gunicorn -----------------------------------------------------------------------------------

test_gunicorn() {
    local label="[gunicorn]" dir=$PS_TMP/gunicorn master sock w out leaves line
    if [[ ! -x $GUNICORN ]]; then
        ps_fail "$label installed" "$GUNICORN not found (Debian package gunicorn)"
        return 0
    fi
    mkdir -p "$dir"
    sock=$dir/http.sock
    start_server "$dir/server.log" "$GUNICORN" --chdir "$PS_FIXTURES" --workers 3 \
        --worker-class sync --bind "unix:$sock" --pid "$dir/master.pid" --timeout 120 \
        webapp:application
    master=$SERVER_PID
    wait_workers "$master" "$sock" 3 "$dir/server.log" || return 0
    ps_pass "$label master $master up with workers ${WORKERS[*]}"
    ps_assert_eq "$label pid file names the master" "$master" "$(cat "$dir/master.pid" 2>/dev/null)"

    # --- dump --subprocesses: the master first, then every worker
    ps_run "$PYSAMPLE" dump --subprocesses "$master"
    ps_assert_status "$label dump --subprocesses exits 0" 0
    out=$PS_OUT_FILE
    ps_assert_eq "$label dump --subprocesses: master first, then the workers" \
        "$master $(sorted_words "${WORKERS[@]}")" \
        "$(read -r -a got <<<"$(dump_pids "$out")"; echo "${got[0]:-} $(sorted_words "${got[@]:1}")")" \
        "$(cat "$out")"
    ps_assert_eq "$label dump --subprocesses: a Python line per process" 4 \
        "$(grep -c -E '^Python 3\.[0-9]+\.[0-9]+ \(/.*python3.*\)$' "$out" || true)" "$(cat "$out")"
    ps_assert_eq "$label dump --subprocesses: every process is gunicorn" 4 \
        "$(grep -c -E '^Process [0-9]+: .*gunicorn' "$out" || true)"
    ps_run "$PYSAMPLE" dump "$master"
    ps_assert_eq "$label dump without --subprocesses: the master alone" "$master" \
        "$(dump_pids "$PS_OUT_FILE")"
    ps_run "$PYSAMPLE" dump --subprocesses --json "$master"
    ps_assert_status "$label dump --subprocesses --json exits 0" 0
    ps_assert_eq "$label dump --subprocesses --json: processes in the text's order" \
        "$(dump_pids "$out")" "$(json_pids "$PS_OUT_FILE" 2>&1)"

    # --- record the whole server under load
    start_load "$sock" 4 "$dir/stop" "$dir/load.out"
    ps_run "$PYSAMPLE" record -p "$master" --subprocesses -d 5 -o "$dir/out.folded" --no-progress
    local rec_ctx
    rec_ctx=$(ps_run_context)
    stop_load "$dir/stop"
    ps_assert_status "$label record --subprocesses exits 0" 0
    ps_assert_eq "$label load reached every worker (precondition)" "$(sorted_words "${WORKERS[@]}")" \
        "$(served_pids "$dir/load.out")" "$(cat "$dir/load.out")"
    if [[ ! -s $dir/out.folded ]]; then
        ps_fail "$label record wrote $dir/out.folded" "$rec_ctx"
    else
        for w in "${WORKERS[@]}"; do
            line=$(grep -m 1 -E "^process $w:\"[^\"]*gunicorn[^\"]*\";" "$dir/out.folded" || true)
            ps_assert_true "$label worker $w has a process root naming gunicorn" \
                "roots: $(folded_roots "$dir/out.folded" | tr '\n' ' ')" test -n "$line"
        done
        check_dominant_leaf "$label $SLOW_FRAME dominates the workers' samples" \
            "$dir/out.folded" "$SLOW_FRAME" "${WORKERS[@]}"
        leaves=$(folded_stacks "$dir/out.folded" | grep -c -F "application (webapp.py:$L_APP);$SLOW_FRAME " || true)
        ps_assert_true "$label slow_handler is called from application (webapp.py:$L_APP)" \
            "no stack has application;slow_handler" test "$leaves" -gt 0
        ps_assert_eq "$label # processes counts master and workers" 4 \
            "$(folded_meta "$dir/out.folded" processes)"
    fi

    # --- a handler that waits (time.sleep) uses no CPU: left out by default, kept with --idle
    start_load "$sock" 3 "$dir/stop" "$dir/sleep.out" /sleep
    ps_run "$PYSAMPLE" record -p "$master" --subprocesses -d 2 -o "$dir/sleep-cpu.folded" \
        --no-progress
    ps_assert_status "$label record during /sleep requests exits 0" 0
    ps_run "$PYSAMPLE" record -p "$master" --subprocesses --idle -d 2 \
        -o "$dir/sleep-wall.folded" --no-progress
    ps_assert_status "$label record --idle during /sleep requests exits 0" 0
    stop_load "$dir/stop"
    ps_assert_true "$label /sleep requests were served (precondition)" "$(cat "$dir/sleep.out")" \
        test -n "$(served_pids "$dir/sleep.out")"
    # A sample can catch a thread in the instant it goes to sleep or wakes up (running, its
    # frame still at the sleep line): a handful, against hundreds of sleeping samples.
    local cpu_sleep wall_sleep
    cpu_sleep=$(folded_leaves "$dir/sleep-cpu.folded" | awk -F '\t' -v f="$SLEEP_FRAME" \
        '$2 == f { n += $1 } END { print n + 0 }')
    wall_sleep=$(folded_leaves "$dir/sleep-wall.folded" | awk -F '\t' -v f="$SLEEP_FRAME" \
        '$2 == f { n += $1 } END { print n + 0 }')
    ps_assert_true "$label --idle: the sleeping handler is kept" \
        "$(head -c 3000 "$dir/sleep-wall.folded")" test "$wall_sleep" -ge 50
    ps_assert_true "$label default: the sleeping handler is left out (at most 20% of --idle's)" \
        "$cpu_sleep samples in $SLEEP_FRAME without --idle, $wall_sleep with" \
        test "$((cpu_sleep * 5))" -le "$wall_sleep"
    ps_assert_match "$label --idle: idle samples counted" '^[1-9][0-9]*$' \
        "$(folded_meta "$dir/sleep-wall.folded" idle_samples)"

    # --- attach: per-process GIL and active shares in the table footer
    start_load "$sock" 4 "$dir/stop" "$dir/load2.out"
    ps_run "$PYSAMPLE" attach --subprocesses -d 2 --no-progress "$master"
    stop_load "$dir/stop"
    ps_assert_status "$label attach --subprocesses exits 0" 0
    out=$PS_OUT_FILE
    for w in "${WORKERS[@]}"; do
        ps_assert_match "$label attach: worker $w line with its GIL and active shares" \
            "Process $w \"[^\"]*gunicorn[^\"]*\": [1-9][0-9]* samples \([0-9.]+%\), (GIL held|no GIL, attached): [0-9.]+%, active: 100\.0%" \
            "$(grep -E "^Process $w " "$out" || true)" "$(cat "$out")"
    done
    ps_assert_match "$label attach: the idle master's line counts the idle samples left out" \
        "^Process $master \"[^\"]*gunicorn[^\"]*\": [0-9]+ samples \([0-9.]+%\).*, idle left out: [1-9][0-9]*\$" \
        "$(grep -E "^Process $master " "$out" || true)" "$(cat "$out")"

    # --- the server is unharmed
    ps_run "$PY3" "$CLIENT" get "$sock" /slow
    ps_assert_status "$label a request succeeds after pysample exits" 0
    ps_assert_eq "$label the same workers serve (none restarted)" "$(sorted_words "${WORKERS[@]}")" \
        "$(children_of "$master" | sort -n | tr '\n' ' ' | sed 's/ $//')"
    ps_assert_running "$label master $master running, no thread stopped" "$master"
    for w in "${WORKERS[@]}"; do
        ps_assert_running "$label worker $w running, no thread stopped" "$w"
    done
    ps_stop "$master"
    for w in "${WORKERS[@]}"; do
        ps_stop "$w"
    done
}

# ---- uWSGI --------------------------------------------------------------------------------------

test_uwsgi() {
    local label="[uwsgi]" dir=$PS_TMP/uwsgi master worker sock out found=0 i frames
    if [[ ! -x $UWSGI ]]; then
        ps_fail "$label installed" "$UWSGI not found (Debian packages uwsgi, uwsgi-plugin-python3)"
        return 0
    fi
    mkdir -p "$dir"
    sock=$dir/http.sock
    start_server "$dir/server.log" "$UWSGI" --plugin python3 --http-socket "$sock" \
        --wsgi-file "$PS_FIXTURES/webapp.py" --master --processes 1 --pidfile "$dir/master.pid" \
        --die-on-term --need-app
    master=$SERVER_PID
    wait_workers "$master" "$sock" 1 "$dir/server.log" || return 0
    worker=${WORKERS[0]}
    ps_pass "$label master $master up with worker $worker"
    ps_assert_eq "$label the worker answers" "$worker" \
        "$(timeout 30 "$PY3" "$CLIENT" get "$sock" /pid 2>&1 | tr -d '\n')"

    # --- an idle worker: attached through the plugin's libpython
    ps_run "$PYSAMPLE" dump "$worker"
    ps_assert_status "$label dump of the idle worker exits 0" 0
    ps_assert_match "$label dump: the worker's uwsgi command line" "^Process $worker: .*uwsgi.*webapp\.py" \
        "$(sed -n 1p "$PS_OUT_FILE")" "$(ps_run_context)"
    ps_assert_match "$label dump: Python found in the uwsgi binary's libpython" \
        '^Python 3\.[0-9]+\.[0-9]+ \(/[^)]*uwsgi[^)]*\)$' "$(sed -n 2p "$PS_OUT_FILE")" \
        "$(ps_run_context)"

    # --- a /slow request in flight
    start_load "$sock" 1 "$dir/stop" "$dir/load.out"
    for ((i = 0; i < 200 && !found; i++)); do
        ps_run "$PYSAMPLE" dump "$worker"
        if ((PS_RC == 0)) && grep -q -F "    $SLOW_FRAME" "$PS_OUT_FILE"; then
            found=1
        fi
    done
    if ((found)); then
        ps_pass "$label dump catches $SLOW_FRAME in flight (attempt $i)"
        frames=$(grep -E '^    ' "$PS_OUT_FILE" | sed 's/^    //' | head -n 2)
        ps_assert_eq "$label in-flight stack: slow_handler called by application" \
            "$SLOW_FRAME"$'\n'"application (webapp.py:$L_APP)" "$frames" "$(cat "$PS_OUT_FILE")"
    else
        ps_fail "$label dump catches $SLOW_FRAME in flight" "not in 200 dumps; last:" \
            "$(ps_run_context)" "--- load:" "$(cat "$dir/load.out")"
    fi

    ps_run "$PYSAMPLE" record -p "$worker" -d 2 -o "$dir/worker.folded" --no-progress
    ps_assert_status "$label record -p worker exits 0" 0
    if [[ -s $dir/worker.folded ]]; then
        check_dominant_leaf "$label record -p worker: $SLOW_FRAME dominates" "$dir/worker.folded" \
            "$SLOW_FRAME"
    else
        ps_fail "$label record -p worker wrote a file" "$(ps_run_context)"
    fi

    ps_run "$PYSAMPLE" record -p "$master" --subprocesses -d 2 -o "$dir/all.folded" --no-progress
    ps_assert_status "$label record --subprocesses on the master exits 0" 0
    ps_assert_eq "$label record --subprocesses: the worker's samples under its process root" \
        "$worker" "$(folded_roots "$dir/all.folded" | tr '\n' ' ' | sed 's/ $//')" \
        "$(head -c 3000 "$dir/all.folded")"
    stop_load "$dir/stop"

    # --- forked without PyOS_AfterFork_Child: the worker's thread is its own, and waiting is idle
    ps_run "$PYSAMPLE" dump "$worker"
    ps_assert_match "$label dump: the worker's thread is the worker's main thread" \
        "^Thread $worker " "$(grep '^Thread ' "$PS_OUT_FILE" || true)" "$(ps_run_context)"
    start_load "$sock" 1 "$dir/stop" "$dir/sleep.out" /sleep
    ps_run "$PYSAMPLE" record -p "$worker" -d 2 -o "$dir/sleep-cpu.folded" --no-progress
    ps_run "$PYSAMPLE" record -p "$worker" -d 2 --idle -o "$dir/sleep-wall.folded" --no-progress
    stop_load "$dir/stop"
    local cpu_sleep wall_sleep
    cpu_sleep=$(folded_leaves "$dir/sleep-cpu.folded" | awk -F '\t' -v f="$SLEEP_FRAME" \
        '$2 == f { n += $1 } END { print n + 0 }')
    wall_sleep=$(folded_leaves "$dir/sleep-wall.folded" | awk -F '\t' -v f="$SLEEP_FRAME" \
        '$2 == f { n += $1 } END { print n + 0 }')
    ps_assert_true "$label --idle: the sleeping handler is kept" "$wall_sleep samples" \
        test "$wall_sleep" -ge 50
    ps_assert_true "$label default: the sleeping handler is left out (at most 5% of --idle's)" \
        "$cpu_sleep samples without --idle, $wall_sleep with" test "$((cpu_sleep * 20))" -le "$wall_sleep"

    ps_run "$PYSAMPLE" dump --subprocesses "$master"
    ps_assert_status "$label dump --subprocesses on the master exits 0" 0
    ps_assert_eq "$label dump --subprocesses: master, then worker" "$master $worker" \
        "$(dump_pids "$PS_OUT_FILE")" "$(ps_run_context)"

    ps_run "$PY3" "$CLIENT" get "$sock" /fast
    ps_assert_status "$label a request succeeds after pysample exits" 0
    ps_assert_running "$label master running, no thread stopped" "$master"
    ps_assert_running "$label worker running, no thread stopped" "$worker"
    ps_stop "$master"
    ps_stop "$worker"
}

# ---- idle threads under every CPython -----------------------------------------------------------

test_idle_threads() {
    local py=$1 ver label pid tid tids bad dir stacks samples idle missing=
    ver=$(ps_python_version "$py") || ver=unknown
    label="[idle $ver]"
    ps_start_fixture "$py" idle_threads.py || return 0
    pid=$PS_FIXTURE_PID
    mapfile -t tids < <(ps_other_tasks "$pid")
    if ((${#tids[@]} != 3)); then
        ps_fail "$label fixture runs four threads" "other tasks: ${tids[*]:-none}"
        ps_stop "$pid"
        return 0
    fi
    dir=$PS_TMP/idle-$ver
    mkdir -p "$dir"
    # The three idle threads signal just before their blocking call; on a free-threaded build
    # they truly run until they park, so wait (bounded) until the kernel shows each asleep.
    local deadline=$((SECONDS + PS_TIMEOUT)) t st asleep=0
    while ((asleep < ${#tids[@]} && SECONDS < deadline)); do
        asleep=0
        for t in "${tids[@]}"; do
            st=$(sed 's/.*) //' "/proc/$pid/task/$t/stat" 2>/dev/null | cut -d' ' -f1) || true
            [[ $st == S ]] && asleep=$((asleep + 1))
        done
    done

    # --- default: only the busy thread
    ps_run "$PYSAMPLE" record -p "$pid" -d 2 -o "$dir/cpu.folded" --no-progress
    ps_assert_status "$label record exits 0" 0
    stacks=$(folded_stacks "$dir/cpu.folded")
    bad=$(grep -E '(^|;)(sleeper|waiter|acceptor) \(' <<<"$stacks" || true)
    ps_assert_true "$label default: no stack of an idle thread" "$bad" test -z "$bad"
    ps_assert_true "$label default: some samples" "empty profile" test -n "$stacks"
    check_dominant_leaf "$label default: the busy line dominates" "$dir/cpu.folded" \
        "busy_work (idle_threads.py:$L_BUSY)"
    ps_assert_match "$label default: idle samples counted as left out" '^[1-9][0-9]*$' \
        "$(folded_meta "$dir/cpu.folded" idle_skipped)"
    ps_assert_eq "$label default: no idle_samples line" "" \
        "$(folded_meta "$dir/cpu.folded" idle_samples)"

    # --- --idle --threads: every thread, idle ones counted
    ps_run "$PYSAMPLE" record -p "$pid" -d 2 --idle --threads -o "$dir/wall.folded" --no-progress
    ps_assert_status "$label --idle --threads exits 0" 0
    stacks=$(folded_stacks "$dir/wall.folded")
    for tid in "$pid" "${tids[@]}"; do
        grep -q -E "^thread \($tid\)" <<<"$stacks" || missing+=" $tid"
    done
    ps_assert_eq "$label --idle --threads: a root for each of the 4 threads" "" "$missing" \
        "$(cut -d';' -f1 <<<"$stacks" | sort | uniq -c)"
    ps_assert_true "$label --idle: sleeper's stack ends in sleeper (idle_threads.py:$L_SLEEPER)" \
        "$(head -c 2000 <<<"$stacks")" \
        grep -q -E ";sleeper \(idle_threads\.py:$L_SLEEPER\) [0-9]+\$" <<<"$stacks"
    ps_assert_true "$label --idle: waiter (idle_threads.py:$L_WAITER) kept" "" \
        grep -q -F ";waiter (idle_threads.py:$L_WAITER);" <<<"$stacks"
    ps_assert_true "$label --idle: acceptor (idle_threads.py:$L_ACCEPTOR) kept" "" \
        grep -q -F ";acceptor (idle_threads.py:$L_ACCEPTOR)" <<<"$stacks"
    samples=$(folded_meta "$dir/wall.folded" samples)
    idle=$(folded_meta "$dir/wall.folded" idle_samples)
    ps_assert_eq "$label --idle: idle_samples = samples - active_samples" \
        "$((samples - $(folded_meta "$dir/wall.folded" active_samples)))" "$idle"
    ps_assert_true "$label --idle: 3 of 4 threads idle -> idle_samples > samples / 2" \
        "idle_samples=$idle samples=$samples" test "$((idle * 2))" -gt "$samples"
    ps_assert_eq "$label --idle: mode wall" wall "$(folded_meta "$dir/wall.folded" mode)"

    ps_assert_running "$label target still running, no thread stopped" "$pid"
    ps_stop "$pid"
}

# ---- --subprocesses without / with short-lived children -----------------------------------------

test_subprocesses() {
    local label="[subprocesses]" dir=$PS_TMP/subproc pid parent roots kids child alive n=0 i
    local plain plain_json
    mkdir -p "$dir"
    ps_start_fixture "$PY3" two_threads.py || return 0
    pid=$PS_FIXTURE_PID
    # two_threads.py's stacks do not move: the outputs can be compared byte for byte.
    ps_run "$PYSAMPLE" dump "$pid"
    plain=$(cat "$PS_OUT_FILE")
    ps_run "$PYSAMPLE" dump --json "$pid"
    plain_json=$(cat "$PS_OUT_FILE")

    ps_run "$PYSAMPLE" record -p "$pid" --subprocesses --idle -d 1 -o "$dir/alone.folded" --no-progress
    ps_assert_status "$label no Python children: record exits 0" 0
    ps_assert_eq "$label no Python children: only the parent's root" "$pid" \
        "$(folded_roots "$dir/alone.folded")"
    ps_assert_eq "$label no Python children: # processes: 1" 1 \
        "$(folded_meta "$dir/alone.folded" processes)"
    ps_run "$PYSAMPLE" dump --subprocesses "$pid"
    ps_assert_status "$label no Python children: dump --subprocesses exits 0" 0
    ps_assert_eq "$label no Python children: dump --subprocesses is the plain dump" "$plain" \
        "$(cat "$PS_OUT_FILE")"
    ps_run "$PYSAMPLE" dump --subprocesses --json "$pid"
    ps_assert_eq "$label no Python children: --json is {\"processes\":[plain --json]}" \
        "{\"processes\":[$plain_json]}" "$(cat "$PS_OUT_FILE")"

    # The fixture's parent is lib.sh's wrapper subshell: bash, not Python.
    parent=$(sed 's/.*) //' /proc/"$pid"/stat | cut -d' ' -f2)
    ps_run "$PYSAMPLE" dump "$parent"
    ps_assert_status "$label non-Python parent $parent: plain dump refuses (exit 2)" 2
    ps_run "$PYSAMPLE" dump --subprocesses "$parent"
    ps_assert_status "$label non-Python parent: dump --subprocesses exits 0" 0
    ps_assert_eq "$label non-Python parent: dump shows its Python child only, as dump does" \
        "$plain" "$(cat "$PS_OUT_FILE")" "$(ps_run_context)"
    ps_assert_eq "$label non-Python parent: nothing on stderr" "" "$PS_ERR"
    ps_run "$PYSAMPLE" dump --subprocesses --json "$parent"
    ps_assert_eq "$label non-Python parent: --json lists the child" "$pid" \
        "$(json_pids "$PS_OUT_FILE" 2>&1)"
    ps_run "$PYSAMPLE" record -p "$parent" --subprocesses --idle -d 1 -o "$dir/parent.folded" --no-progress
    ps_assert_status "$label non-Python parent: record --subprocesses exits 0" 0
    ps_assert_eq "$label non-Python parent: record has the child's root only" "$pid" \
        "$(folded_roots "$dir/parent.folded")"
    ps_stop "$pid"

    # A non-Python process without Python children: one error line.
    ps_run "$PYSAMPLE" dump --subprocesses "$$"
    ps_assert_status "$label bash without Python children: exit 2" 2
    ps_assert_match "$label bash without Python children: one line naming the cause" \
        "^pysample: $$ has no Python subprocesses, and .*not a Python process" "$PS_ERR"
    ps_assert_eq "$label bash without Python children: nothing on stdout" "" "$PS_OUT"

    # --- children that keep exiting during the session
    ps_start_fixture "$PY3" fork_children.py || return 0
    pid=$PS_FIXTURE_PID
    ps_run "$PYSAMPLE" record -p "$pid" --subprocesses -d 3 -o "$dir/fork.folded" --no-progress
    ps_assert_status "$label exiting children: record exits 0" 0
    ps_assert_eq "$label exiting children: no warning on stderr" "" \
        "$(grep -v '^pysample: wrote ' "$PS_ERR_FILE" || true)"
    mapfile -t kids < "$PS_FIXTURE_FIFO.pids"
    mapfile -t roots < <(folded_roots "$dir/fork.folded")
    for child in "${roots[@]}"; do
        [[ $child == "$pid" ]] && continue
        if printf '%s\n' "${kids[@]}" | grep -q -x "$child" &&
            grep -q -E "^process $child:[^;]*;.*;child_work \(fork_children\.py:$L_CHILD\) [0-9]+\$" \
                "$dir/fork.folded"; then
            n=$((n + 1))
        fi
    done
    ps_assert_true "$label exiting children: at least 3 children recorded in child_work" \
        "children with child_work samples: $n; roots: ${roots[*]:-none}; forked: ${#kids[@]}" \
        test "$n" -ge 3
    alive=
    for child in "${roots[@]}"; do
        [[ $child != "$pid" && -d /proc/$child ]] && alive+=" $child"
    done
    ps_assert_true "$label exiting children: recorded children exited before the end" \
        "still running:$alive" test "$(wc -w <<<"$alive")" -le 1
    ps_assert_match "$label exiting children: the session ran its full duration" \
        '^(2\.9|[3-9])' "$(folded_meta "$dir/fork.folded" duration)"
    for ((i = 1; i <= 5; i++)); do
        ps_run "$PYSAMPLE" dump --subprocesses "$pid"
        ps_assert_status "$label exiting children: dump --subprocesses #$i exits 0" 0
        ps_assert_eq "$label exiting children: dump --subprocesses #$i says nothing on stderr" "" \
            "$PS_ERR"
    done
    ps_assert_running "$label forking parent still running" "$pid"
    ps_stop "$pid"
}

test_gunicorn
test_uwsgi
mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "CPython interpreters found" "none"
fi
for py in "${PYTHONS[@]}"; do
    test_idle_threads "$py"
done
test_subprocesses

ps_finish
