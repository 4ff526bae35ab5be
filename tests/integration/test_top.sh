#!/usr/bin/env bash
# test_top.sh -- `pysample top`, driven in detached tmux sessions of known size: the header and
# the known functions of cpu_split.py (with their def lines and 50/35/15 shares) under every
# interpreter; then, on the oldest and newest with a GIL, the keys (sort, shares since start,
# pause, thread view, reset, resize, quit), the terminal given back after q, Ctrl-C, SIGTERM
# and a crash, a target that exits while watched, `top -- CMD` with the command's exit
# status, --subprocesses with the per-process view, a piped run (| head), and bad input.
# The target is always left running; every wait is a bounded poll of the pane.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "top ($PYSAMPLE)"
ps_require_pysample
if ! command -v tmux >/dev/null; then
    ps_fail "tmux is installed" "install the Debian package tmux (or run: sudo make deps)"
    ps_finish
fi

FIX=cpu_split.py
L_UNIT=$(grep -n '^def unit' "$PS_FIXTURES/$FIX" | cut -d: -f1)
L_HEAVY=$(grep -n '^def heavy' "$PS_FIXTURES/$FIX" | cut -d: -f1)
L_MEDIUM=$(grep -n '^def medium' "$PS_FIXTURES/$FIX" | cut -d: -f1)
L_LIGHT=$(grep -n '^def light' "$PS_FIXTURES/$FIX" | cut -d: -f1)
L_BODY=$(ps_fixture_line "$FIX" unit_body)
L_LOOP=$(ps_fixture_line "$FIX" unit_loop)
L_CHILD=$(grep -n '^def child_work' "$PS_FIXTURES/fork_children.py" | cut -d: -f1)
PY3=$(ps_python3) || { ps_fail "a Python 3" "none found"; ps_finish; }

# A private tmux server (its socket in the test's directory, no configuration), killed at exit
# with the rest.
tm() { tmux -S "$PS_TMP/tmux.sock" -f /dev/null "$@"; }
SESSION_SEQ=0

# start_view W H CMD...: runs CMD in a new detached session of W x H cells; sets SESSION,
# VIEW_PANE (the shell that runs CMD) and STATUS_FILE (written with CMD's exit status when it
# ends, with the terminal settings before and after in STATUS_FILE.before/.after).
start_view() {
    local w=$1 h=$2 pane q
    shift 2
    SESSION_SEQ=$((SESSION_SEQ + 1))
    SESSION=view$SESSION_SEQ
    STATUS_FILE=$PS_TMP/$SESSION.status
    printf -v q '%q ' "$@"
    # The terminal settings are saved before and after; the pane then stays (for a look at
    # what the view left behind) until the server is killed.
    tm new-session -d -s "$SESSION" -x "$w" -y "$h" \
        "ulimit -c 0; stty -g >$STATUS_FILE.before; $q 2>$PS_TMP/$SESSION.err; echo \$? >$STATUS_FILE.tmp; stty -g >$STATUS_FILE.after; mv $STATUS_FILE.tmp $STATUS_FILE; exec tail -f /dev/null"
    VIEW_PANE=$(tm display-message -p -t "$SESSION" '#{pane_pid}')
    PS_PIDS+=("$VIEW_PANE")
    if ((SESSION_SEQ == 1)); then
        PS_PIDS+=("$(tm display-message -p '#{pid}')")
    fi
}

pause() { timeout 0.05 tail -f /dev/null || true; } # one bounded 50 ms step of a poll

screen() { tm capture-pane -p -t "$SESSION" 2>/dev/null || true; }

# wait_screen ERE: bounded poll until the pane matches ERE (grep -E); SCREEN holds the last
# capture. Returns 1 on timeout.
wait_screen() {
    local deadline=$((SECONDS + PS_TIMEOUT))
    while :; do
        SCREEN=$(screen)
        grep -qE -- "$1" <<<"$SCREEN" && return 0
        [[ -e $STATUS_FILE ]] && { SCREEN=$(screen); grep -qE -- "$1" <<<"$SCREEN" && return 0; return 1; }
        ((SECONDS < deadline)) || return 1
        pause
    done
}

# wait_first HEAD_ERE ROW_ERE: bounded poll until the pane matches HEAD_ERE and its first row
# (line 6) matches ROW_ERE.
wait_first() {
    local deadline=$((SECONDS + PS_TIMEOUT))
    while :; do
        SCREEN=$(screen)
        grep -qE -- "$1" <<<"$SCREEN" && grep -qE -- "$2" <<<"$(sed -n 6p <<<"$SCREEN")" && return 0
        [[ -e $STATUS_FILE ]] && return 1
        ((SECONDS < deadline)) || return 1
        pause
    done
}

# first_ok NAME HEAD_ERE ROW_ERE
first_ok() {
    if wait_first "$2" "$3"; then ps_pass "$1"
    else ps_fail "$1" "pane never showed '$2' with a first row matching: $3" "--- pane:" "$SCREEN"; fi
}

# poll_until FN: bounded poll until FN (which reads SCREEN) succeeds on a fresh capture.
poll_until() {
    local deadline=$((SECONDS + PS_TIMEOUT))
    while :; do
        SCREEN=$(screen)
        "$1" && return 0
        ((SECONDS < deadline)) || return 1
        pause
    done
}

# The view redrawn at 70x14: 14 lines, none wider than 70, header + 8 rows + the key line.
resized_70x14() {
    [[ $(wc -l <<<"$SCREEN") == 14 ]] &&
        [[ $(sed -n 1p <<<"$SCREEN") == "pysample top: pid "* ]] &&
        [[ $(sed -n 14p <<<"$SCREEN") == "1-4/o c O C sort  i interval/start  t threads  p proce"* ]] &&
        [[ $(awk '{ if (length($0) > m) m = length($0) } END { print m }' <<<"$SCREEN") -le 70 ]] &&
        [[ $(grep -cE '^ +[0-9.]+ +[0-9.]+ +[0-9.]+s ' <<<"$SCREEN") == 8 ]]
}

# No [paused] in the title, and the sample count past the one frozen at the pause ($frozen).
unpaused_and_counting() {
    local n
    n=$(samples_total "$SCREEN")
    ! grep -q '^pysample top: .*\[paused\]' <<<"$SCREEN" && [[ -n $n && $n -gt $frozen ]]
}

# wait_status: bounded poll until the view's command has ended; sets VIEW_RC.
wait_status() {
    local deadline=$((SECONDS + PS_TIMEOUT))
    VIEW_RC=timeout
    while [[ ! -e $STATUS_FILE ]]; do
        ((SECONDS < deadline)) || return 1
        pause
    done
    VIEW_RC=$(cat "$STATUS_FILE")
}

# screen_ok NAME ERE: the pane shows ERE now (or soon).
screen_ok() {
    if wait_screen "$2"; then ps_pass "$1"
    else ps_fail "$1" "pane never matched: $2" "--- pane:" "$SCREEN" "--- stderr:" \
        "$(cat "$PS_TMP/$SESSION.err" 2>/dev/null)"; fi
}

# row_of FUNCTION [TEXT]: the first row of FUNCTION in TEXT (default: SCREEN).
row_of() { grep -E "^ +[0-9.]+ +[0-9.]+ +[0-9.]+s +[0-9.]+s  .*\\b$1 \\(" <<<"${2:-$SCREEN}" | head -n 1 || true; }
# (Shares are checked loosely, within 15 points: the exact split is test_sessions.sh's; on a
# loaded machine a second of samples sees few scheduling periods of the target.)
# field N ROW: column N of a row (1 %Own, 2 %Total, 3 OwnTime, 4 TotalTime, without the s).
field() { awk -v n="$1" '{ v = $n; sub(/s$/, "", v); print v }' <<<"$2"; }
near() { "$PY3" -c 'import sys; a,b,e,tol=map(float,sys.argv[1:]); sys.exit(0 if b>0 and abs(100*a/b-e)<=tol else 1)' "$@"; }
ge() { "$PY3" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$@"; }
samples_total() { grep -oE 'Samples: [0-9]+ \(total [0-9]+\)' <<<"$1" | grep -oE '[0-9]+\)' | tr -d ')' || true; }

# quit_view TAG PID: q ends the view with status 0 and PID still runs.
quit_view() {
    tm send-keys -t "$SESSION" q
    wait_status || true
    if [[ $VIEW_RC == 0 ]]; then ps_pass "$1 q quits with status 0"
    else ps_fail "$1 q quits with status 0" "status: $VIEW_RC" "$(cat "$PS_TMP/$SESSION.err")"; fi
    ps_assert_running "$1 target still running" "$2"
    terminal_restored "$1"
}

# terminal_restored TAG: the view gave the terminal back: same settings as before it started,
# and the full-screen view is gone from the pane.
terminal_restored() {
    local before after
    before=$(cat "$STATUS_FILE.before" 2>/dev/null) || true
    after=$(cat "$STATUS_FILE.after" 2>/dev/null) || true
    if [[ -n $before && $before == "$after" ]] && ! screen | grep -q '^pysample top:'; then
        ps_pass "$1 terminal restored (settings, screen)"
    else
        ps_fail "$1 terminal restored (settings, screen)" "before: $before" "after:  $after" \
            "--- pane:" "$(screen)"
    fi
}

mapfile -t PYTHONS < <(ps_find_pythons)
((${#PYTHONS[@]})) || { ps_fail "some CPython interpreter found" "none"; ps_finish; }
# The key-driven cases run on the oldest and the newest interpreter with a GIL.
GIL_PYTHONS=()
for PY in "${PYTHONS[@]}"; do
    ps_python_free_threaded "$PY" || GIL_PYTHONS+=("$PY")
done
((${#GIL_PYTHONS[@]})) || { ps_fail "some CPython interpreter with a GIL found" "none"; ps_finish; }

# ---- every interpreter: header, functions with their lines, shares ---------------------------
for PY in "${PYTHONS[@]}"; do
    V=$(ps_python_version "$PY")
    tag="[$V]"
    ps_start_fixture "$PY" "$FIX" || continue
    pid=$PS_FIXTURE_PID
    start_view 120 30 "$PYSAMPLE" top "$pid" -r 500 --delay 0.5
    # Wait until the since-start times stand on about 800 samples.
    if wait_screen "^ +[0-9.]+ +[0-9.]+ +[0-9.]+s +(1\\.[6-9]|[2-9]\\.)[0-9]*s  unit \\("; then
        ps_pass "$tag the view shows unit() after 1.6 s"
    else
        ps_fail "$tag the view shows unit() after 1.6 s" "--- pane:" "$SCREEN" "--- stderr:" \
            "$(cat "$PS_TMP/$SESSION.err" 2>/dev/null)"
        tm kill-session -t "$SESSION" 2>/dev/null || true
        ps_stop "$pid"
        continue
    fi
    head1=$(sed -n 1p <<<"$SCREEN")
    ps_assert_match "$tag title: target and Python version" \
        "^pysample top: pid $pid, Python $V  .*cpu_split\\.py" "$head1"
    ps_assert_match "$tag counts line" \
        "^Threads: 1  Processes: 1  Samples: [0-9]+ \\(total [0-9]+\\)  Rate: [0-9.]+ Hz of 500  Late: [0-9]+ \\(total [0-9]+\\)  Dropped: [0-9]+" \
        "$(sed -n 2p <<<"$SCREEN")"
    share="GIL: [0-9.]+%"
    ps_python_free_threaded "$PY" && share="No GIL, attached: [0-9.]+%"
    ps_assert_match "$tag shares line" \
        "^$share  Active: 100\\.0%  Over: last interval \\([0-9.]+s; [0-9.]+s in all\\)  Sort: %Own  View: functions" \
        "$(sed -n 3p <<<"$SCREEN")"
    ps_assert_match "$tag column header" "^  %Own  %Total   OwnTime  TotalTime  Function *\$" \
        "$(sed -n 5p <<<"$SCREEN")"
    unit=$(row_of unit)
    ps_assert_match "$tag first row: unit() at its def line" "unit \\([^)]*cpu_split\\.py:$L_UNIT\\)\$" \
        "$(sed -n 6p <<<"$SCREEN")"
    if ge "$(field 1 "$unit")" 90; then ps_pass "$tag unit() owns >= 90% of the last interval"
    else ps_fail "$tag unit() owns >= 90% of the last interval" "row: $unit"; fi
    tot=$(field 4 "$unit")
    for pair in "heavy:$L_HEAVY:50" "medium:$L_MEDIUM:35" "light:$L_LIGHT:15"; do
        IFS=: read -r fn line share <<<"$pair"
        r=$(row_of "$fn")
        if [[ $r =~ $fn\ \([^\)]*cpu_split\.py:$line\)$ ]] && near "$(field 4 "$r")" "$tot" "$share" 15; then
            ps_pass "$tag $fn() at line $line, TotalTime ~${share}% of unit()'s"
        else
            ps_fail "$tag $fn() at line $line, TotalTime ~${share}% of unit()'s" "row: $r" "unit: $unit"
        fi
    done
    ps_assert_match "$tag key help on the last line" "^1-4/o c O C sort" "$(sed -n 30p <<<"$SCREEN")"
    quit_view "$tag" "$pid"
    ps_stop "$pid"
done

# ---- keys, on the oldest and the newest interpreter ------------------------------------------
KEY_PYTHONS=("${GIL_PYTHONS[0]}")
((${#GIL_PYTHONS[@]} > 1)) && KEY_PYTHONS+=("${GIL_PYTHONS[${#GIL_PYTHONS[@]} - 1]}")
for PY in "${KEY_PYTHONS[@]}"; do
    V=$(ps_python_version "$PY")
    tag="[$V keys]"
    ps_start_fixture "$PY" "$FIX" || continue
    pid=$PS_FIXTURE_PID
    start_view 120 30 "$PYSAMPLE" top "$pid" --lines -r 200 --delay 0.2
    screen_ok "$tag --lines: rows per line, unit's body first" \
        "^ +[0-9.]+ +[0-9.]+ +[0-9.]+s +[0-9.]+s  unit \\([^)]*cpu_split\\.py:($L_BODY|$L_LOOP)\\)"
    ps_assert_match "$tag --lines: column says Line" "Line" "$(sed -n 5p <<<"$SCREEN")"

    # 2 (and c): by %Total -- a caller line with no own time comes first; 1 (and o): unit's.
    for keys in "2 1" "c o"; do
        read -r k_total k_own <<<"$keys"
        tm send-keys -t "$SESSION" "$k_total"
        first_ok "$tag key $k_total sorts by %Total" "Sort: %Total" '^ +0\.0 +100\.0 '
        tm send-keys -t "$SESSION" "$k_own"
        first_ok "$tag key $k_own sorts by %Own again" "Sort: %Own" \
            '^ +[1-9][0-9.]* +[0-9.]+ +[0-9.]+s +[0-9.]+s  unit \('
    done
    tm send-keys -t "$SESSION" 4
    first_ok "$tag key 4 sorts by TotalTime" "Sort: TotalTime" '^ +[0-9.]+ +[0-9.]+ +0\.00s '
    tm send-keys -t "$SESSION" 3
    first_ok "$tag key 3 sorts by OwnTime, unit first" "Sort: OwnTime" \
        '^ +[0-9.]+ +[0-9.]+ +[0-9.]+s +[0-9.]+s  unit \('
    tm send-keys -t "$SESSION" 1 i
    screen_ok "$tag key i: shares since start" "Over: since start"
    tm send-keys -t "$SESSION" i
    screen_ok "$tag key i again: last interval" "Over: last interval"

    # Space pauses: the figures stand still over several refresh periods, then move again.
    tm send-keys -t "$SESSION" Space
    screen_ok "$tag space: [paused] in the title" "^pysample top: .*\\[paused\\]"
    frozen=$(samples_total "$SCREEN")
    end=$((SECONDS + 2))
    moved=
    while ((SECONDS < end)); do
        now=$(samples_total "$(screen)")
        [[ $now == "$frozen" ]] || moved=$now
        pause
    done
    if [[ -n $frozen && -z $moved ]]; then ps_pass "$tag paused: the sample count stays at $frozen"
    else ps_fail "$tag paused: the sample count stays" "frozen at '$frozen', then '$moved'"; fi
    tm send-keys -t "$SESSION" Space
    if poll_until unpaused_and_counting; then
        ps_pass "$tag space again: counting goes on"
    else
        ps_fail "$tag space again: counting goes on" "frozen at $frozen" "--- pane:" "$SCREEN"
    fi

    # t: a thread column; the main thread's TID is the PID.
    tm send-keys -t "$SESSION" t
    screen_ok "$tag key t: per-thread view" "View: lines, per thread"
    ps_assert_match "$tag key t: Thread column" "  Thread +Line" "$(sed -n 5p <<<"$SCREEN")"
    ps_assert_match "$tag key t: rows name the main thread" \
        "s  $pid [^ ]* +unit \\(" "$(sed -n 6p <<<"$SCREEN")"
    tm send-keys -t "$SESSION" t
    screen_ok "$tag key t again: threads merged" "View: lines$"

    # p without --subprocesses says what it needs.
    tm send-keys -t "$SESSION" p
    screen_ok "$tag key p without --subprocesses explains" "p: a view per process needs --subprocesses"

    # r: counts start again.
    before=$(samples_total "$(screen)")
    tm send-keys -t "$SESSION" r
    deadline=$((SECONDS + PS_TIMEOUT))
    after=$before
    while ((SECONDS < deadline)) && [[ -n $after && $after -ge $before ]]; do
        pause
        after=$(samples_total "$(screen)")
    done
    if [[ -n $before && -n $after && $after -lt $before ]]; then
        ps_pass "$tag key r resets the counts ($before -> $after)"
    else ps_fail "$tag key r resets the counts" "before $before, after $after"; fi

    # Resize: the view follows the new size (key line at the new bottom, lines cut to width).
    tm resize-window -t "$SESSION" -x 70 -y 14
    if poll_until resized_70x14; then
        ps_pass "$tag resize to 70x14: 8 rows, key line at the bottom, lines cut to 70"
    else
        ps_fail "$tag resize to 70x14" "--- pane:" "$SCREEN"
    fi
    # Scrolling: Down shows the rows from the second on, Home from the first again.
    nrows=$(grep -oE '\[rows 1-8 of [0-9]+\]' <<<"$SCREEN" | grep -oE '[0-9]+\]' | tr -d ']') || true
    if [[ -n $nrows ]]; then
        ps_pass "$tag 70x14: the column line says rows 1-8 of $nrows"
        tm send-keys -t "$SESSION" Down
        screen_ok "$tag Down scrolls one row" "\\[rows 2-9 of [0-9]+\\]"
        tm send-keys -t "$SESSION" PageDown
        screen_ok "$tag PgDn scrolls a page (or to the end)" \
            "\\[rows ([1-9][0-9]|[3-9])-[0-9]+ of [0-9]+\\]"
        tm send-keys -t "$SESSION" Home
        screen_ok "$tag Home goes back to the first row" "\\[rows 1-8 of [0-9]+\\]"
    else
        ps_fail "$tag 70x14: the column line says which rows are shown" "--- pane:" "$SCREEN"
    fi
    tm resize-window -t "$SESSION" -x 120 -y 30
    screen_ok "$tag resize back to 120x30" \
        "$(printf '^1-4/o c O C sort  i interval/start  t threads  p processes  space pause  r reset  q quit')"
    ps_assert_eq "$tag 30 lines again" 30 "$(wc -l <<<"$SCREEN")"
    quit_view "$tag" "$pid"
    ps_stop "$pid"

    # Ctrl-C ends the view too, with the terminal given back.
    ps_start_fixture "$PY" "$FIX" || continue
    pid=$PS_FIXTURE_PID
    start_view 100 20 "$PYSAMPLE" top "$pid"
    screen_ok "$tag view up (Ctrl-C case)" "unit \\("
    tm send-keys -t "$SESSION" C-c
    wait_status || true
    ps_assert_eq "$tag Ctrl-C quits with status 0" 0 "$VIEW_RC"
    ps_assert_running "$tag target still running after Ctrl-C" "$pid"
    terminal_restored "$tag Ctrl-C:"

    # SIGTERM (e.g. from a supervisor) gives the terminal back as well.
    start_view 100 20 "$PYSAMPLE" top "$pid"
    screen_ok "$tag view up (SIGTERM case)" "unit \\("
    viewer=$(pgrep -P "$VIEW_PANE" | head -n 1) || true
    if [[ -n $viewer ]]; then
        kill -TERM "$viewer"
        wait_status || true
        ps_assert_eq "$tag SIGTERM ends the view with status 0" 0 "$VIEW_RC"
        terminal_restored "$tag SIGTERM:"
    else
        ps_fail "$tag SIGTERM case: the view's PID" "no child of the pane shell $VIEW_PANE"
    fi
    ps_assert_running "$tag target still running after SIGTERM" "$pid"

    # A crash (SIGSEGV) still gives the terminal back before pysample dies of it.
    start_view 100 20 "$PYSAMPLE" top "$pid"
    screen_ok "$tag view up (SIGSEGV case)" "unit \\("
    viewer=$(pgrep -P "$VIEW_PANE" | head -n 1) || true
    if [[ -n $viewer ]]; then
        kill -SEGV "$viewer"
        wait_status || true
        if [[ -n ${PS_SANITIZED:-} ]]; then
            ps_assert_true "$tag SIGSEGV: pysample dies (status $VIEW_RC)" "status $VIEW_RC" \
                test "$VIEW_RC" != 0 -a "$VIEW_RC" != timeout
        else
            ps_assert_eq "$tag SIGSEGV: pysample dies of it (139)" 139 "$VIEW_RC"
        fi
        terminal_restored "$tag SIGSEGV:"
    else
        ps_fail "$tag SIGSEGV case: the view's PID" "no child of the pane shell $VIEW_PANE"
    fi
    ps_assert_running "$tag target still running after pysample's crash" "$pid"
    ps_stop "$pid"
done

PY=${GIL_PYTHONS[${#GIL_PYTHONS[@]} - 1]}
V=$(ps_python_version "$PY")

# ---- a target that exits while watched --------------------------------------------------------
if ps_start_fixture "$PY" "$FIX" 1.5; then
    pid=$PS_FIXTURE_PID
    start_view 120 30 "$PYSAMPLE" top "$pid" --delay 0.3
    screen_ok "[$V exit] the view says the process exited" "process $pid exited; last figures kept \\(q to quit\\)"
    ps_assert_match "[$V exit] title says [ended]" "\\[ended\\]" "$(sed -n 1p <<<"$SCREEN")"
    ps_assert_match "[$V exit] the last figures stay" "unit \\(" "$(row_of unit)"
    ps_assert_true "[$V exit] the view stays until q" "it ended by itself" test ! -e "$STATUS_FILE"
    tm send-keys -t "$SESSION" 2
    screen_ok "[$V exit] keys still work after the exit" "Sort: %Total"
    tm send-keys -t "$SESSION" q
    wait_status || true
    ps_assert_eq "[$V exit] q quits with status 0" 0 "$VIEW_RC"
    terminal_restored "[$V exit]"
fi

# ---- top -- CMD: the command's exit status ----------------------------------------------------
start_view 120 30 "$PYSAMPLE" top --delay 0.3 -- "$PY" "$PS_FIXTURES/$FIX" - 1.5 3
screen_ok "[$V cmd] top -- CMD shows the command's functions" "heavy \\([^)]*cpu_split\\.py:$L_HEAVY\\)"
screen_ok "[$V cmd] the view says the command exited with status 3" \
    "$PY \\(pid [0-9]+\\) exited with status 3; last figures kept \\(q to quit\\)"
tm send-keys -t "$SESSION" q
wait_status || true
ps_assert_eq "[$V cmd] pysample exits with the command's status" 3 "$VIEW_RC"

# ---- --subprocesses and the per-process view ---------------------------------------------------
if ps_start_fixture "$PY3" fork_children.py 3; then
    pid=$PS_FIXTURE_PID
    start_view 130 30 "$PYSAMPLE" top "$pid" --subprocesses --delay 0.3
    screen_ok "[subprocesses] child_work shows, at its def line" "child_work \\([^)]*fork_children\\.py:$L_CHILD\\)"
    tm send-keys -t "$SESSION" p
    screen_ok "[subprocesses] key p: a Process column" "  Process Function"
    screen_ok "[subprocesses] key p: a child's PID on child_work's row" \
        "s  [0-9]+ +child_work \\([^)]*fork_children\\.py:[0-9]+\\)"
    child=$(grep -oE 's  [0-9]+ +child_work' <<<"$SCREEN" | head -n 1 | awk '{print $2}')
    ps_assert_true "[subprocesses] that PID is a child, not the parent" "row: $child" \
        test -n "$child" -a "$child" != "$pid"
    ps_assert_match "[subprocesses] Processes: in the header" "Processes: [12] " "$(sed -n 2p <<<"$SCREEN")"
    quit_view "[subprocesses]" "$pid"
    ps_stop "$pid"
fi

# ---- not a terminal: plain tables, and | head ends it cleanly ----------------------------------
if ps_start_fixture "$PY" "$FIX"; then
    pid=$PS_FIXTURE_PID
    out=$PS_TMP/piped.out
    rc=0
    set +o pipefail
    timeout -k 5 "$PS_TIMEOUT" "$PYSAMPLE" top "$pid" --delay 0.2 -r 200 2>"$PS_TMP/piped.err" |
        head -n 30 >"$out"
    rc=${PIPESTATUS[0]}
    set -o pipefail
    ps_assert_eq "[$V piped] | head: exit status 0, nothing on stderr" "0:" "$rc:$(cat "$PS_TMP/piped.err")"
    ps_assert_eq "[$V piped] 30 lines read" 30 "$(wc -l <"$out")"
    ps_assert_match "[$V piped] a plain title line with the time" \
        "^pysample top: pid $pid, Python $V  .*cpu_split\\.py.*  [0-9]{2}:[0-9]{2}:[0-9]{2}\$" "$(head -n 1 "$out")"
    ps_assert_true "[$V piped] no terminal control sequences" "$(grep -c $'\e' "$out") lines with ESC" \
        test "$(grep -c $'\e' "$out")" = 0
    ps_assert_match "[$V piped] unit() in the table" "unit \\([^)]*cpu_split\\.py:$L_UNIT\\)" \
        "$(row_of unit "$(cat "$out")")"
    ps_assert_true "[$V piped] several tables, one per interval" "$(cat "$out")" \
        test "$(grep -c '^pysample top:' "$out")" -ge 2
    ps_assert_running "[$V piped] target still running" "$pid"
    # --threads: the per-thread view from the start (plain tables have no keys).
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3 -d 0.7 --threads
    ps_assert_status "[$V piped] --threads: status 0" 0
    ps_assert_match "[$V piped] --threads: a Thread column" "  Thread +Function" "$PS_OUT"
    ps_assert_match "[$V piped] --threads: the main thread's TID on unit()'s row" \
        "s  $pid [^ ]* +unit \\(" "$(row_of unit "$PS_OUT")"
    # --duration in plain mode: tables, the last one final; --rows bounds each table.
    ps_run "$PYSAMPLE" top "$pid" --delay 0.2 -d 0.7 --rows 3
    ps_assert_status "[$V piped] -d 0.7 ends with status 0" 0
    ps_assert_match "[$V piped] -d: the last table says sampling stopped" \
        "sampling stopped after 0.7s; last figures kept" "$PS_OUT"
    ps_assert_true "[$V piped] --rows 3: at most 3 rows per table" "$PS_OUT" \
        test "$(awk '/^  %Own/ { n = 0; next } /^ +[0-9.]+ +[0-9.]+ +[0-9.]+s / { if (++n > m) m = n } END { print m + 0 }' "$PS_OUT_FILE")" = 3
    ps_stop "$pid"
fi

# ---- not a terminal, and the target exits: the last table says so, status 0 -------------------
if ps_start_fixture "$PY" "$FIX" 1.0; then
    pid=$PS_FIXTURE_PID
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3
    ps_assert_status "[$V piped exit] status 0 when the target exits" 0
    ps_assert_match "[$V piped exit] the last table says the process exited" \
        "process $pid exited; last figures kept"$'\n'"  %Own" "$PS_OUT"
    ps_assert_match "[$V piped exit] ... with unit() in it" "unit \\(" "$(row_of unit "$(tail -n 12 "$PS_OUT_FILE")")"
fi

# ---- --idle, --gil and --native (plain tables, the same options as record and attach) ---------
# idle_threads.py: a busy main thread and three blocked ones (sleep, Event.wait, accept).
L_BUSY=$(ps_fixture_line idle_threads.py busy_work)
L_SLEEP=$(ps_fixture_line idle_threads.py sleeper)
L_ACCEPT=$(ps_fixture_line idle_threads.py acceptor)
for PY in "${KEY_PYTHONS[@]}"; do
    V=$(ps_python_version "$PY")
    ps_start_fixture "$PY" idle_threads.py || continue
    pid=$PS_FIXTURE_PID
    last_table() { awk '/^pysample top:/ { t = "" } { t = t $0 "\n" } END { printf "%s", t }' "$PS_OUT_FILE"; }
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3 -d 0.9 --lines
    ps_assert_status "[$V idle] without --idle: status 0" 0
    t=$(last_table)
    ps_assert_match "[$V idle] without --idle: busy_work's line owns 100%" \
        "^ +100\\.0 +100\\.0 .*  busy_work \\([^)]*idle_threads\\.py:$L_BUSY\\)" "$(row_of busy_work "$t")"
    ps_assert_true "[$V idle] without --idle: no row for the sleeping thread" "$t" \
        test -z "$(row_of sleeper "$t")"
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3 -d 0.9 --lines --idle
    ps_assert_status "[$V idle] --idle: status 0" 0
    t=$(last_table)
    for pair in "busy_work:$L_BUSY" "sleeper:$L_SLEEP"; do
        IFS=: read -r fn line <<<"$pair"
        r=$(row_of "$fn" "$t")
        if [[ $r =~ $fn\ \([^\)]*idle_threads\.py:$line\)$ ]] && near "$(field 1 "$r")" 100 25 8; then
            ps_pass "[$V idle] --idle: $fn() at line $line owns ~25% (one thread of four)"
        else
            ps_fail "[$V idle] --idle: $fn() at line $line owns ~25% (one thread of four)" "row: $r" "--- table:" "$t"
        fi
    done
    ps_assert_match "[$V idle] --idle: the blocked accept() thread at its line" \
        "acceptor \\([^)]*idle_threads\\.py:$L_ACCEPT\\)" "$(row_of acceptor "$t")"
    ps_assert_match "[$V idle] --idle: Active in the header is about a quarter" \
        "Active: (1[7-9]|2[0-9]|3[0-3])\\.[0-9]%" "$t"
    # --gil keeps only the samples of the thread holding the GIL: --idle adds nothing then.
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3 -d 0.9 --lines --idle --gil
    ps_assert_status "[$V gil] --idle --gil: status 0" 0
    t=$(last_table)
    ps_assert_match "[$V gil] --idle --gil: busy_work's line owns 100%" \
        "^ +100\\.0 +100\\.0 .*  busy_work \\([^)]*idle_threads\\.py:$L_BUSY\\)" "$(row_of busy_work "$t")"
    ps_assert_true "[$V gil] --idle --gil: no row for the threads that wait without the GIL" "$t" \
        test -z "$(row_of sleeper "$t")$(row_of acceptor "$t")"
    # --native: the interpreter's C functions with their source lines under busy_work.
    ps_run "$PYSAMPLE" top "$pid" --delay 0.3 -d 0.9 --native
    ps_assert_status "[$V native] --native: status 0" 0
    t=$(last_table)
    ps_assert_match "[$V native] --native: busy_work still at its def line" \
        "busy_work \\([^)]*idle_threads\\.py:[0-9]+\\)" "$(row_of busy_work "$t")"
    # One row per line of the table: a C function of the interpreter, named with its file.c:line.
    if grep -qE '^ +[0-9.]+ +[0-9.]+ +[0-9.]+s +[0-9.]+s  [A-Za-z_][A-Za-z0-9_.]* \([A-Za-z0-9_]+\.[ch]:[0-9]+\)$' <<<"$t"; then
        ps_pass "[$V native] --native: rows for C functions with file.c:line"
    else
        ps_fail "[$V native] --native: rows for C functions with file.c:line" "--- table:" "$t"
    fi
    ps_assert_running "[$V native] target still running, not left stopped" "$pid"
    ps_assert_true "[$V native] no thread of the target left in t/T" \
        "$(cat /proc/"$pid"/task/*/stat 2>/dev/null | awk '{print $3}' | tr -d '\n')" \
        sh -c "! cat /proc/$pid/task/*/stat | awk '{print \$3}' | grep -q '[tT]'"
    ps_stop "$pid"
done
for PY in "${PYTHONS[@]}"; do
    ps_python_free_threaded "$PY" || continue
    V=$(ps_python_version "$PY")
    ps_start_fixture "$PY" idle_threads.py || continue
    ps_run "$PYSAMPLE" top "$PS_FIXTURE_PID" --gil -d 0.5
    ps_assert_status "[$V gil] --gil on a free-threaded build: usage error 64" 64
    ps_assert_match "[$V gil] --gil on a free-threaded build: one line naming the cause" \
        "^pysample: [^"$'\n'"]*(free-threaded|GIL)[^"$'\n'"]*\$" "$PS_ERR"
    ps_stop "$PS_FIXTURE_PID"
done

# ---- bad input -----------------------------------------------------------------------------------
ps_run "$PYSAMPLE" top
ps_assert_status "no PID: usage error 64" 64
ps_assert_match "no PID: one line naming the fix" "^pysample: top: missing PID .*--help" "$PS_ERR"
ps_run "$PYSAMPLE" top 12x
ps_assert_status "bad PID: usage error 64" 64
ps_run "$PYSAMPLE" top --delay 0 1
ps_assert_status "--delay 0: usage error 64" 64
# The same bounds as record and attach: a rate out of range would make the deadline arithmetic
# spin (1e-11 Hz), so it is refused before attaching, in one line naming the range.
for bad in "-r 1e-11|rate '1e-11' (expected samples per second from 0.001 to 100000)" \
    "-r 0|rate '0' (expected samples per second from 0.001 to 100000)" \
    "-r 100001|rate '100001' (expected samples per second from 0.001 to 100000)" \
    "-d 0|duration '0' (expected seconds from 0.001 to 10000000)" \
    "--delay 1e-9|delay '1e-9' (expected seconds from 0.01 to 3600)" \
    "--rows 2.5|row count '2.5' (expected a whole number)"; do
    args=${bad%%|*} want=${bad#*|}
    # shellcheck disable=SC2086  # the option and its value are two words
    ps_run "$PYSAMPLE" top $args 1
    ps_assert_status "top $args: usage error 64" 64
    ps_assert_eq "top $args: one line naming the range" \
        "pysample: top: invalid $want (see 'pysample top --help')" "$PS_ERR"
done
ps_run "$PYSAMPLE" top 1 -- true
ps_assert_status "PID and CMD: usage error 64" 64
ps_run "$PYSAMPLE" top $$
ps_assert_status "a shell is not Python: status 2" 2
ps_assert_match "not Python: one line" "^pysample: [^"$'\n'"]*not a Python process[^"$'\n'"]*\$" "$PS_ERR"
ps_run "$PYSAMPLE" top -- /nonexistent/cmd
ps_assert_status "a command that cannot run: status 2" 2
ps_assert_match "a command that cannot run: one line" "^pysample: top: cannot run '/nonexistent/cmd': No such file" "$PS_ERR"

tm kill-server 2>/dev/null || true
ps_finish
