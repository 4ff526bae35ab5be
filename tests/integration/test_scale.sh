#!/usr/bin/env bash
# test_scale.sh -- many threads and deep stacks, against real interpreters:
#   - fixtures/many_threads.py with 500 idle threads and 5 busy ones, under every CPython found:
#     `record` keeps the 5 busy functions (exact lines) and leaves every idle thread out by
#     default; with --idle --threads all 500 idle threads are there, each under its own
#     threading name;
#   - 4 000 idle threads and one busy one, under the oldest and the newest CPython found:
#     `dump` lists every thread with its frames and `attach` samples the busy one, each exiting
#     0 with its peak memory (GNU time) under a bound far below the 1.1 GB of 4 200 threads
#     before (a memory check, not a timing one);
#   - fixtures/deep_busy.py at 5 000 frames, under every CPython found: the dump is cut at the
#     depth limit with the right innermost frames, and on 3.11+ (data-stack chunks) `attach`
#     takes at most 3 remote reads per tick once the first (cold) tick is past.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "scale ($PYSAMPLE)"
ps_require_pysample

MANY=many_threads.py
DEEP=deep_busy.py
NIDLE=500
NBUSY=5
NBIG=4000
BIG_RSS_KB=262144          # 256 MiB for 4 000 threads (4 200 took 1.1 GB before)
if [[ -n ${PS_SANITIZED:-} ]]; then
    BIG_RSS_KB=$((BIG_RSS_KB * 4)) # ASan's shadow memory and quarantine
fi
DEEP_DEPTH=5000
MAX_DEPTH=4096             # PS_PY_MAX_DEPTH
COLD_READS=64              # the first walk of a 5 000-frame stack: about one read per chunk
WARM_READS=3               # per tick after it

L_BUSY=()
for ((k = 0; k < NBUSY; k++)); do
    L_BUSY[k]=$(ps_fixture_line "$MANY" "busy_$k") || { ps_fail "$MANY has its LINE tags"; ps_finish; }
done
if ! L_IDLE_WAIT=$(ps_fixture_line "$MANY" idle_wait) ||
    ! L_IDLE_SLEEP=$(ps_fixture_line "$MANY" idle_sleep) ||
    ! L_SPIN=$(ps_fixture_line "$DEEP" spin_body) ||
    ! L_DESCEND=$(ps_fixture_line "$DEEP" descend_call); then
    ps_fail "fixtures have their LINE tags"
    ps_finish
fi
if [[ ! -x /usr/bin/time ]]; then
    ps_fail "GNU time is installed (peak memory of pysample)" "apt-get install time (make deps)"
fi

# leaf_count FOLDED FRAME: samples whose innermost frame is FRAME.
leaf_count() {
    awk -v f="$2" '!/^#/ && NF { n = $NF; sub(/ [0-9]+$/, ""); k = split($0, a, ";");
        if (a[k] == f) s += n } END { print s + 0 }' "$1"
}
# frame_count FOLDED TEXT: samples whose stack holds a frame containing TEXT.
frame_count() {
    awk -v f="$2" '!/^#/ && NF && index($0, f) { s += $NF } END { print s + 0 }' "$1"
}
# idle_thread_names FOLDED: the names of the thread roots whose stacks are in idle_wait or
# idle_sleep, one per line, sorted, distinct.
idle_thread_names() {
    awk -v a="idle_wait (" -v b="idle_sleep (" '!/^#/ && NF && (index($0, a) || index($0, b)) {
        r = $0; sub(/;.*/, "", r); sub(/^thread \([0-9]+\): /, "", r); print r }' "$1" | sort -u
}
# footer_value TEXT KEY: the number after "KEY: " in a statistics footer.
footer_value() { sed -n "s/^$2: \\([0-9.]*\\).*/\\1/p" <<<"$1" | head -n 1; }
# max_rss FILE: the "maxrss N" line GNU time wrote into FILE.
max_rss() { sed -n 's/^maxrss \([0-9]*\)$/\1/p' "$1" | tail -n 1; }

# assert_left_running NAME PID: as ps_assert_running, with one awk over every thread's stat
# (ps_assert_running forks twice per thread, minutes for 4 000 threads).
assert_left_running() {
    local bad
    if [[ ! -d /proc/$2 ]]; then
        ps_fail "$1" "process $2 is gone"
        return 0
    fi
    bad=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " ");
        if (f[1] ~ /^[TtZX]$/) print FILENAME ": state " f[1] }' /proc/"$2"/task/*/stat 2>/dev/null) || true
    if [[ -n $bad ]]; then
        ps_fail "$1" "$bad"
    else
        ps_pass "$1"
    fi
}

# ---- 500 idle threads, 5 busy -------------------------------------------------------------------

check_pool() {
    local py=$1 label=$2 pid dir k busy idle names nnames bad
    ps_start_fixture "$py" "$MANY" "$NIDLE" "$NBUSY" || return 0
    pid=$PS_FIXTURE_PID
    dir=$PS_TMP/pool.$pid
    mkdir -p "$dir"

    ps_run "$PYSAMPLE" record -p "$pid" -r 100 -d 3 -o "$dir/cpu.folded" --no-progress
    ps_assert_status "$label $NIDLE+$NBUSY threads: record exits 0" 0
    for ((k = 0; k < NBUSY; k++)); do
        busy=$(leaf_count "$dir/cpu.folded" "busy_$k ($MANY:${L_BUSY[k]})")
        ps_assert_true "$label busy thread $k is in the profile (busy_$k at line ${L_BUSY[k]})" \
            "$(echo "--- folded:"; grep -v '^#' "$dir/cpu.folded" | head -n 20)" test "$busy" -gt 0
    done
    idle=$(($(frame_count "$dir/cpu.folded" "idle_wait (") + $(frame_count "$dir/cpu.folded" "idle_sleep (")))
    ps_assert_eq "$label idle threads are left out by default (samples in idle_wait/idle_sleep)" \
        0 "$idle"

    ps_run "$PYSAMPLE" record -p "$pid" -r 20 -d 1 --idle --threads -o "$dir/wall.folded" --no-progress
    ps_assert_status "$label $NIDLE+$NBUSY threads: record --idle --threads exits 0" 0
    ps_assert_true "$label --idle: idle_wait at line $L_IDLE_WAIT is in the profile" "" \
        test "$(frame_count "$dir/wall.folded" "idle_wait ($MANY:$L_IDLE_WAIT)")" -gt 0
    ps_assert_true "$label --idle: idle_sleep at line $L_IDLE_SLEEP is in the profile" "" \
        test "$(frame_count "$dir/wall.folded" "idle_sleep ($MANY:$L_IDLE_SLEEP)")" -gt 0
    names=$(idle_thread_names "$dir/wall.folded")
    nnames=$(grep -c . <<<"$names" || true)
    bad=$(grep -v -E '^idle-[0-9]+$' <<<"$names" || true)
    ps_assert_eq "$label --idle --threads: every idle thread, under its own threading name" \
        "$NIDLE names idle-N" "$nnames names$([[ -z $bad ]] && echo " idle-N")" \
        "$(echo "--- names that are not idle-N:"; head -n 5 <<<"$bad")"
    assert_left_running "$label target left running" "$pid"
    ps_stop "$pid"
}

# ---- 4 000 threads --------------------------------------------------------------------------------

check_big() {
    local py=$1 label=$2 pid dir rss threads waits sleeps busy n
    ps_start_fixture "$py" "$MANY" "$NBIG" 1 || return 0
    pid=$PS_FIXTURE_PID
    dir=$PS_TMP/big.$pid
    mkdir -p "$dir"

    ps_run /usr/bin/time -o "$dir/dump.time" -f 'maxrss %M' "$PYSAMPLE" dump "$pid"
    ps_assert_status "$label $NBIG threads: dump exits 0" 0
    threads=$(grep -c '^Thread ' "$PS_OUT_FILE" || true)
    ps_assert_eq "$label $NBIG threads: dump lists every thread" "$((NBIG + 2))" "$threads"
    waits=$(grep -c -F "    idle_wait ($MANY:$L_IDLE_WAIT)" "$PS_OUT_FILE" || true)
    sleeps=$(grep -c -F "    idle_sleep ($MANY:$L_IDLE_SLEEP)" "$PS_OUT_FILE" || true)
    ps_assert_eq "$label $NBIG threads: dump frames (idle_wait / idle_sleep at their lines)" \
        "$((NBIG / 2)) / $((NBIG / 2))" "$waits / $sleeps"
    busy=$(grep -c -F "    busy_0 ($MANY:${L_BUSY[0]})" "$PS_OUT_FILE" || true)
    ps_assert_eq "$label $NBIG threads: dump shows the busy thread" 1 "$busy"
    rss=$(max_rss "$dir/dump.time")
    ps_assert_true "$label $NBIG threads: dump peak memory ${rss:-?} KB <= $BIG_RSS_KB KB" \
        "$(cat "$dir/dump.time")" test "${rss:-999999999}" -le "$BIG_RSS_KB"

    ps_run /usr/bin/time -o "$dir/attach.time" -f 'maxrss %M' "$PYSAMPLE" attach -r 20 -d 1 "$pid"
    ps_assert_status "$label $NBIG threads: attach exits 0" 0
    n=$(footer_value "$PS_OUT" "Sample count")
    ps_assert_true "$label $NBIG threads: attach sampled the busy thread" "$(ps_run_context)" \
        grep -q -E "^ *[0-9.]+ +[0-9.]+ +[0-9.]+ +$MANY:${L_BUSY[0]}:busy_0\$" "$PS_OUT_FILE"
    ps_assert_true "$label $NBIG threads: attach took samples (${n:-?})" "$(ps_run_context)" \
        test "${n:-0}" -gt 0
    rss=$(max_rss "$dir/attach.time")
    ps_assert_true "$label $NBIG threads: attach peak memory ${rss:-?} KB <= $BIG_RSS_KB KB" \
        "$(cat "$dir/attach.time")" test "${rss:-999999999}" -le "$BIG_RSS_KB"
    assert_left_running "$label target left running" "$pid"
    ps_stop "$pid"
}

# ---- 5 000 frames ---------------------------------------------------------------------------------

check_deep() {
    local py=$1 label=$2 chunks=$3 pid frames ticks per total warm
    ps_start_fixture "$py" "$DEEP" "$DEEP_DEPTH" || return 0
    pid=$PS_FIXTURE_PID

    ps_run "$PYSAMPLE" dump "$pid"
    ps_assert_status "$label $DEEP_DEPTH frames: dump exits 0" 0
    frames=$(awk '/^Thread /{ t++ } t == 1 && /^    [^ .]/ { print substr($0, 5) }' "$PS_OUT_FILE")
    ps_assert_eq "$label $DEEP_DEPTH frames: dump cut at the depth limit" "$MAX_DEPTH" \
        "$(grep -c . <<<"$frames" || true)"
    # The spin loop is one line (its body) under another (the for): a dump lands on either.
    ps_assert_match "$label $DEEP_DEPTH frames: innermost frames" \
        "^descend \\($DEEP:($L_SPIN|$((L_SPIN - 1)))\\)"$'\n'"descend \\($DEEP:$L_DESCEND\\)"$'\n'"descend \\($DEEP:$L_DESCEND\\)\$" \
        "$(head -n 3 <<<"$frames")"
    ps_assert_true "$label $DEEP_DEPTH frames: dump says where it was cut" "$(ps_run_context)" \
        grep -q -F "(outer frames cut at depth $MAX_DEPTH)" "$PS_OUT_FILE"

    if ((chunks)); then
        ps_run "$PYSAMPLE" attach -r 100 -d 1 "$pid"
        ps_assert_status "$label $DEEP_DEPTH frames: attach exits 0" 0
        ticks=$(sed -n 's/^Ticks: \([0-9]*\),.*/\1/p' <<<"$PS_OUT")
        per=$(sed -n 's/^Remote reads: \([0-9.]*\) per tick.*/\1/p' <<<"$PS_OUT")
        if [[ -z $ticks || -z $per ]] || ((ticks < 2)); then
            ps_fail "$label $DEEP_DEPTH frames: reads per tick" "no ticks/reads in the footer" \
                "$(ps_run_context)"
        else
            total=$(awk -v p="$per" -v t="$ticks" 'BEGIN { printf "%.0f", p * t }')
            warm=$(awk -v a="$total" -v t="$ticks" -v c="$COLD_READS" \
                'BEGIN { w = (a - c) / (t - 1); printf "%.2f", (w < 0 ? 0 : w) }')
            ps_assert_true "$label $DEEP_DEPTH frames: at most $WARM_READS reads per tick after the first ($per per tick over $ticks ticks, so <= $warm)" \
                "$(ps_run_context)" awk -v w="$warm" -v m="$WARM_READS" 'BEGIN { exit !(w <= m) }'
        fi
    fi
    assert_left_running "$label target left running" "$pid"
    ps_stop "$pid"
}

PS_FIXTURE_CWD=$PS_FIXTURES
mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "at least one CPython interpreter found" "see ps_find_pythons in lib.sh"
    ps_finish
fi
VERSIONS=()
for i in "${!PYTHONS[@]}"; do
    VERSIONS[i]=$(ps_python_version "${PYTHONS[i]}") || VERSIONS[i]=
done
# The 4 000-thread case on the oldest and the newest (one per frame model, bounded in time).
OLDEST=$(for i in "${!PYTHONS[@]}"; do [[ -n ${VERSIONS[i]} ]] && echo "${VERSIONS[i]} $i"; done |
    sort -V | head -n 1 | cut -d' ' -f2)
NEWEST=$(for i in "${!PYTHONS[@]}"; do [[ -n ${VERSIONS[i]} ]] && echo "${VERSIONS[i]} $i"; done |
    sort -V | tail -n 1 | cut -d' ' -f2)
for i in "${!PYTHONS[@]}"; do
    py=${PYTHONS[i]}
    ver=${VERSIONS[i]}
    if [[ -z $ver ]]; then
        ps_fail "$py reports its version"
        continue
    fi
    label="[$ver $py]"
    IFS=. read -r major minor _ <<<"$ver"
    check_pool "$py" "$label"
    if [[ $i == "$OLDEST" || $i == "$NEWEST" ]]; then
        check_big "$py" "$label"
    fi
    check_deep "$py" "$label" "$((major > 3 || (major == 3 && minor >= 11)))"
done
ps_finish
