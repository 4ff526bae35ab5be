# scale_bench.sh -- the scale sections of `make bench`, sourced by tests/bench/run_bench.sh
# (which defines note, emit, record, calc, meta, cpu_field, start_fixture, ...):
#   many threads: CPU per idle thread per tick (1 000 idle threads against none), 200 threads
#     at 1 kHz, 1 000 threads at 100 Hz, 16 worker processes x 20 threads with --subprocesses;
#   deep stacks: reads and CPU per sample at 1 000 / 2 500 / 5 000 frames;
#   CPython's own sampler (python3.15 -m profiling.sampling, from the Debian sid chroot at
#     BENCH_SID) side by side on the same fixtures: CPU per sample and achieved rate at depth
#     10/50/200, the many-thread cases, and the 50/35/15 split, with the ratios. pysample runs
#     on 3.15 when it can read it, else on the chroot's 3.14 (the nearest), and says so.
# Environment: BENCH_SCALE=0 skips the many-thread and deep sections, BENCH_CPYTHON=0 the side
# by side; BENCH_SID (default /var/cache/pysample/sid).
# shellcheck shell=bash

BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_CPYTHON=${BENCH_CPYTHON:-1}
BENCH_SID=${BENCH_SID:-/var/cache/pysample/sid}
MT_IDLE=1000

# max_err H M L: the largest distance of the shares H/M/L (percent) from 50/35/15, in points.
max_err() {
    awk -v h="$1" -v m="$2" -v l="$3" 'function a(x) { return x < 0 ? -x : x }
        BEGIN { e = a(h - 50); if (a(m - 35) > e) e = a(m - 35); if (a(l - 15) > e) e = a(l - 15)
                printf "%.1f", e }'
}

# split_shares FILE KIND: "H M L", the cumulative percent of samples in heavy/medium/light, from
# CPython's collapsed stacks (KIND cpython: frames "file:func:line") or a folded file (pysample).
split_shares() {
    awk -v k="$2" '!/^#/ && NF { n = $NF; t += n
            if (k == "cpython") { h = ":heavy:"; m = ":medium:"; l = ":light:" }
            else { h = ";heavy ("; m = ";medium ("; l = ";light (" }
            if (index($0, h)) H += n; if (index($0, m)) M += n; if (index($0, l)) L += n }
        END { if (t) printf "%.1f %.1f %.1f\n", 100 * H / t, 100 * M / t, 100 * L / t }' "$1"
}

# pin_all PID: every thread of a running fixture on CPU 1 (pin_target moves the main one only).
pin_all() { ((${#PIN_T[@]})) && taskset -a -p -c 1 "$1" >/dev/null 2>&1 || true; }

# tick_cpu PID RATE BASE: CPU per tick of pysample on PID at RATE, the long recording minus the
# short one (attach, thread discovery and output cancel). Sets T_OK, T_WHY, T_CPU (us), T_TICKS,
# T_READS (per tick), and R_* of the long run.
tick_cpu() {
    local pid=$1 rate=$2 base=$3 s_cpu s_ticks s_reads
    T_OK=0 T_WHY='' T_CPU='' T_TICKS='' T_READS=''
    record "$pid" "$rate" "$BENCH_SHORT" "$base-short"
    ((R_OK)) || { T_WHY=$R_WHY; return 0; }
    s_cpu=$R_CPU s_ticks=$R_TICKS s_reads=$R_READS
    record "$pid" "$rate" "$BENCH_DUR" "$base-long"
    ((R_OK)) || { T_WHY=$R_WHY; return 0; }
    if ((R_TICKS <= s_ticks)); then
        T_WHY="the ${BENCH_DUR}s recording took no more ticks ($R_TICKS) than the ${BENCH_SHORT}s one ($s_ticks)"
        return 0
    fi
    T_TICKS=$((R_TICKS - s_ticks))
    T_CPU=$(calc 2 "($R_CPU - $s_cpu) / $T_TICKS")
    T_READS=$(calc 2 "($R_READS - $s_reads) / $T_TICKS")
    T_OK=1
}

# ---- many threads -------------------------------------------------------------------------------

if ((BENCH_SCALE)); then
    note "scale 1/3 many threads: $MAIN_LABEL many_threads.py, 1 busy + 0/$MT_IDLE/200 idle threads, 16 x 20 workers"
    c0='' c1=''
    for n in 0 "$MT_IDLE"; do
        if ! start_fixture "$MAIN_PY" many_threads.py "$n" 1; then
            not_measured "$n idle threads" "fixtures/many_threads.py did not start"
            continue
        fi
        pid=$PS_FIXTURE_PID
        pin_all "$pid"
        tick_cpu "$pid" 100 "$PS_TMP/mt-$n"
        if ((!T_OK)); then
            not_measured "$n idle threads at 100 Hz" "$T_WHY"
        else
            pj="\"idle_threads\":$n,\"busy_threads\":1,\"rate\":100,\"ticks\":$T_TICKS"
            emit cpu_per_tick_threads_us "$MAIN_LABEL" "$pj" "$n idle + 1 busy" "$T_CPU" info "" \
                "pysample CPU per tick (wait4, long minus short run), $T_READS reads per tick"
            [[ $n == 0 ]] && c0=$T_CPU || c1=$T_CPU
            if [[ $n != 0 ]]; then
                # The long run of that measurement gives the achieved rate as well.
                ach=$(calc 3 "$R_TICKS / $R_DUR / 100")
                emit achieved_ratio "$MAIN_LABEL" "$pj,\"duration_s\":$R_DUR" "$n threads @ 100 Hz" "$ach" ge 0.99 \
                    "$R_TICKS ticks in ${R_DUR}s, $R_LATE late"
            fi
        fi
        ps_stop "$pid"
    done
    if [[ -n $c0 && -n $c1 ]]; then
        emit cpu_per_idle_thread_us "$MAIN_LABEL" "\"idle_threads\":$MT_IDLE,\"rate\":100" \
            "$MT_IDLE idle threads" "$(calc 3 "($c1 - $c0) / $MT_IDLE")" le 1 \
            "(CPU per tick with $MT_IDLE idle threads - with none) / $MT_IDLE"
    fi

    if start_fixture "$MAIN_PY" many_threads.py 200 1; then
        pid=$PS_FIXTURE_PID
        pin_all "$pid"
        record "$pid" 1000 "$BENCH_RATE_DUR" "$PS_TMP/mt-200-1k"
        if ((R_OK)); then
            pj="\"idle_threads\":200,\"busy_threads\":1,\"rate\":1000,\"ticks\":$R_TICKS,\"duration_s\":$R_DUR"
            emit achieved_ratio "$MAIN_LABEL" "$pj" "200 threads @ 1 kHz" "$(calc 3 "$R_TICKS / $R_DUR / 1000")" ge 0.95 \
                "$R_TICKS ticks in ${R_DUR}s"
            emit late_ticks_pct "$MAIN_LABEL" "$pj,\"late_ticks\":$R_LATE" "200 threads @ 1 kHz" \
                "$(calc 2 "100 * $R_LATE / $R_TICKS")" lt 1 "$R_LATE late of $R_TICKS"
        else
            not_measured "200 threads at 1 kHz" "$R_WHY"
        fi
        ps_stop "$pid"
    else
        not_measured "200 threads at 1 kHz" "fixtures/many_threads.py did not start"
    fi

    # 16 worker processes of 20 threads (1 busy each), one pysample with --subprocesses.
    if start_fixture "$MAIN_PY" many_threads.py 19 1 16; then
        pid=$PS_FIXTURE_PID
        workers=${PS_FIXTURE_READY##* }
        for w in ${workers//,/ }; do pin_all "$w"; done
        base=$PS_TMP/mt-workers
        # Two recordings, the second twice as long: attaching to 17 processes costs the same in
        # both, so the difference in each worker's samples over the difference in time is the
        # rate it was sampled at once attached.
        d1=$BENCH_RATE_DUR d2=$(calc 1 "2 * $BENCH_RATE_DUR") ok=1
        for d in "$d1" "$d2"; do
            log_cmd "16 workers x 20 threads" "$PYSAMPLE" record -p "$pid" --subprocesses -r 100 \
                -d "$d" -o "$base-$d.folded"
            rc=0
            "${REC_PIN[@]}" "$BENCH_BUILD/cpurun" -o "$base-$d.cpu" -k "$(calc 0 "$d + 60")" \
                "$PYSAMPLE" record -p "$pid" --subprocesses -r 100 -d "$d" \
                -o "$base-$d.folded" >"$base-$d.out" 2>"$base-$d.err" </dev/null || rc=$?
            if ((rc != 0 && rc != 1)) || [[ -z $(meta "$base-$d.folded" duration) ]]; then
                not_measured "16 workers" "pysample record exited $rc: $(first_line "$base-$d.err")"
                ok=0
                break
            fi
        done
        if ((ok)); then
            # Samples per worker: its busy thread is sampled at every tick it is seen.
            per=$(awk '!/^#/ && NF && /^process / { r = $0; sub(/;.*/, "", r); sub(/:.*/, "", r)
                    if (FILENAME == ARGV[1]) a[r] += $NF; else b[r] += $NF }
                END { for (k in b) print b[k] - a[k] }' "$base-$d1.folded" "$base-$d2.folded" | sort -n)
            nproc_seen=$(grep -c . <<<"$per" || true)
            worst=$(head -n 1 <<<"$per")
            dd=$(calc 3 "$(meta "$base-$d2.folded" duration) - $(meta "$base-$d1.folded" duration)")
            emit achieved_ratio "$MAIN_LABEL" "\"workers\":16,\"threads\":20,\"rate\":100,\"processes_sampled\":$nproc_seen" \
                "16 x 20 workers @ 100 Hz (worst)" "$(calc 3 "${worst:-0} / $dd / 100")" ge 0.99 \
                "the worst of $nproc_seen processes: its busy thread's samples in a ${d2}s minus a ${d1}s recording, over the ${dd}s between; pysample CPU $(calc 1 "100 * $(cpu_field "$base-$d2.cpu" cpu_us) / $(cpu_field "$base-$d2.cpu" wall_us)")%"
        fi
        ps_stop "$pid"
        for w in ${workers//,/ }; do ps_stop "$w"; done
    else
        not_measured "16 workers" "fixtures/many_threads.py did not start"
    fi

    # ---- deep stacks ----------------------------------------------------------------------------
    note "scale 2/3 deep stacks: $MAIN_LABEL deep_busy.py at 1000/2500/5000 frames, 1 kHz"
    for depth in 1000 2500 5000; do
        if ! start_fixture "$MAIN_PY" deep_busy.py "$depth"; then
            not_measured "depth $depth" "fixtures/deep_busy.py did not start"
            continue
        fi
        pid=$PS_FIXTURE_PID
        pin_target "$pid"
        tick_cpu "$pid" 1000 "$PS_TMP/deep-$depth"
        if ((T_OK)); then
            pj="\"depth\":$depth,\"rate\":1000,\"ticks\":$T_TICKS"
            emit reads_per_sample "$MAIN_LABEL" "$pj" "depth $depth" "$T_READS" le 3 \
                "remote syscalls per tick (stacks are cut at 4096 frames)"
            emit cpu_per_tick_total_us "$MAIN_LABEL" "$pj" "depth $depth" "$T_CPU" info "" \
                "wait4 CPU per tick, long minus short run; tick CPU median $R_TICKCPU us"
        else
            not_measured "depth $depth" "$T_WHY"
        fi
        ps_stop "$pid"
    done
fi

# ---- CPython's own sampler side by side ------------------------------------------------------------

# cpy_session BASE MODE RATE FIXTURE ARGS...: in a private mount namespace (the chroot needs a
# /proc), starts FIXTURE under the chroot's python3.15 and runs `profiling.sampling attach` on it
# for BENCH_SHORT and BENCH_DUR seconds (rounded up to whole seconds) under cpurun. Sets C_OK,
# C_WHY, C_CPU (us per sample, long minus short), C_RATE (samples/s of the long run), C_SAMPLES,
# C_DUR, and leaves the long run's collapsed stacks in BASE.collapsed.
cpy_session() {
    local base=$1 mode=$2 rate=$3 fix=$4 short long rc=0 n1 n2 c1 c2
    shift 4
    C_OK=0 C_WHY='' C_CPU='' C_RATE='' C_SAMPLES='' C_DUR=''
    short=$(calc 0 "$BENCH_SHORT + 0.499") long=$(calc 0 "$BENCH_DUR + 0.499")
    ((short < 1)) && short=1
    ((long <= short)) && long=$((short + 1))
    cp "$PS_FIXTURES/$fix" "$BENCH_SID/tmp/psbench/"
    log_cmd "CPython 3.15 sampler (in the chroot, CPU from wait4)" unshare -m "(mount --bind /proc $BENCH_SID/proc;" \
        chroot "$BENCH_SID" /usr/bin/python3.15 -m profiling.sampling attach -a --mode "$mode" \
        -r "$rate" -d "$long" --collapsed -o OUT PID")"
    timeout -k 5 $((short + long + 120)) unshare -m bash -c '
        set -u
        sid=$1 base=$2 mode=$3 rate=$4 short=$5 long=$6 cpurun=$7 fix=$8
        shift 8
        mount --bind /proc "$sid/proc" || exit 9
        fifo=/tmp/psbench/ready.$$
        rm -f "$sid$fifo"
        mkfifo "$sid$fifo" || exit 9
        exec 3<>"$sid$fifo"
        chroot "$sid" /usr/bin/python3.15 "/tmp/psbench/$fix" "$fifo" "$@" >/dev/null 2>"$base.fixture.err" &
        fx=$!
        if ! read -r -t 120 line <&3 || [[ $line != ready* ]]; then
            kill -9 "$fx"
            exit 8
        fi
        fxpid=${line#ready }
        fxpid=${fxpid%% *}
        for d in "$short" "$long"; do
            "$cpurun" -o "$base.$d.cpu" -k $((d + 60)) chroot "$sid" /usr/bin/python3.15 \
                -m profiling.sampling attach -a --mode "$mode" -r "$rate" -d "$d" --collapsed \
                -o "/tmp/psbench/out.$$.$d" "$fxpid" >"$base.$d.out" 2>&1
            mv "$sid/tmp/psbench/out.$$.$d" "$base.$d.collapsed" 2>/dev/null
        done
        for w in $(echo "$line" | sed -n "s/.* workers //p" | tr , " "); do kill -9 "$w"; done
        kill -9 "$fx"
        rm -f "$sid$fifo"
    ' _ "$BENCH_SID" "$base" "$mode" "$rate" "$short" "$long" "$BENCH_BUILD/cpurun" "$fix" "$@" || rc=$?
    if ((rc != 0)); then
        C_WHY="the chroot session failed (status $rc$( ((rc == 8)) && echo ": fixture not ready"))"
        return 0
    fi
    n1=$(sed -n 's/^Captured \([0-9]*\) samples.*/\1/p' "$base.$short.out")
    n2=$(sed -n 's/^Captured \([0-9]*\) samples.*/\1/p' "$base.$long.out")
    C_DUR=$(sed -n 's/^Captured [0-9]* samples in \([0-9.]*\) seconds.*/\1/p' "$base.$long.out")
    c1=$(cpu_field "$base.$short.cpu" cpu_us 2>/dev/null) || true
    c2=$(cpu_field "$base.$long.cpu" cpu_us 2>/dev/null) || true
    if [[ -z $n1 || -z $n2 || -z $c1 || -z $c2 || -z $C_DUR ]] || ((n2 <= n1)); then
        C_WHY="no sample counts: $(first_line "$base.$long.out")"
        return 0
    fi
    C_SAMPLES=$n2
    C_CPU=$(calc 2 "($c2 - $c1) / ($n2 - $n1)")
    C_RATE=$(calc 1 "$n2 / $C_DUR")
    cp "$base.$long.collapsed" "$base.collapsed" 2>/dev/null || true
    C_OK=1
}

# cpy_side NAME PARAMS_TEXT PJ MODE RATE FIXTURE ARGS...: CPython's sampler and pysample on the
# same fixture at the same rate: CPU per sample, achieved samples/s, and the ratios.
cpy_side() {
    local name=$1 pt=$2 pj=$3 mode=$4 rate=$5 fix=$6 pid p_cpu p_rate
    shift 6
    cpy_session "$PS_TMP/cpy-$name" "$mode" "$rate" "$fix" "$@"
    if ((!C_OK)); then
        emit cpython_cpu_per_sample_us "3.15" "$pj,\"error\":$(json_str "$C_WHY")" "$pt" null failed "" "$C_WHY"
        return 0
    fi
    emit cpython_cpu_per_sample_us "$CPY_LABEL" "$pj,\"rate\":$rate,\"samples\":$C_SAMPLES" "$pt" "$C_CPU" info "" \
        "profiling.sampling attach -a --mode $mode: process CPU (wait4) per sample, long minus short run"
    emit cpython_rate_hz "$CPY_LABEL" "$pj,\"rate\":$rate" "$pt" "$C_RATE" info "" "$C_SAMPLES samples in ${C_DUR}s"
    if ! PS_FIXTURE_CWD=$PS_FIXTURES start_fixture "$PSY_PY" "$fix" "$@"; then
        not_measured "pysample beside CPython's sampler ($pt)" "$fix did not start under $PSY_PY"
        return 0
    fi
    pid=$PS_FIXTURE_PID
    tick_cpu "$pid" "$rate" "$PS_TMP/psy-$name"
    ps_stop "$pid"
    for w in $(sed -n 's/.* workers //p' <<<"$PS_FIXTURE_READY" | tr , ' '); do ps_stop "$w"; done
    if ((!T_OK)); then
        not_measured "pysample beside CPython's sampler ($pt)" "$T_WHY"
        return 0
    fi
    p_rate=$(calc 1 "$R_TICKS / $R_DUR")
    p_cpu=$T_CPU
    emit pysample_cpu_per_sample_us "$PSY_LABEL" "$pj,\"rate\":$rate" "$pt" "$p_cpu" info "" \
        "pysample record: process CPU (wait4) per tick, long minus short run$PSY_NOTE"
    emit pysample_rate_hz "$PSY_LABEL" "$pj,\"rate\":$rate" "$pt" "$p_rate" info "" "$R_TICKS ticks in ${R_DUR}s"
    emit cpython_over_pysample_cpu "-" "$pj,\"rate\":$rate" "$pt" "$(calc 2 "$C_CPU / $p_cpu")" ge 1 \
        "CPython's CPU per sample / pysample's (> 1: pysample cheaper)$PSY_NOTE"
    emit pysample_over_cpython_rate "-" "$pj,\"rate\":$rate" "$pt" "$(calc 2 "$p_rate / $C_RATE")" ge 1 \
        "pysample's achieved rate / CPython's (> 1: pysample faster)$PSY_NOTE"
}

if ((BENCH_CPYTHON)); then
    if [[ ! -x $BENCH_SID/usr/bin/python3.15 ]] || ! command -v unshare >/dev/null; then
        not_measured "CPython's own sampler" "no $BENCH_SID/usr/bin/python3.15 (or no unshare)"
    else
        mkdir -p "$BENCH_SID/tmp/psbench"
        CPY_LABEL="$(chroot "$BENCH_SID" /usr/bin/python3.15 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') (sid)"
        # pysample on the chroot's 3.15 if it reads it, else the nearest it reads (3.14).
        PSY_PY= PSY_NOTE=
        for cand in /usr/bin/python3.15 /usr/bin/python3.14; do
            [[ -x $BENCH_SID$cand ]] || continue
            # A launcher that runs a fixture (copied in) under the chroot's interpreter, as in a
            # container, and relays its readiness line from a FIFO inside the chroot to the host
            # FIFO ps_start_fixture waits on.
            launcher=$PS_TMP/sid-${cand##*/}
            cat >"$launcher" <<EOF
#!/usr/bin/env bash
f=\$1 fifo=\$2
shift 2
cp "\$f" "$BENCH_SID/tmp/psbench/" || exit 1
inner=/tmp/psbench/ready.\$\$
rm -f "$BENCH_SID\$inner"
mkfifo "$BENCH_SID\$inner" || exit 1
exec 3<>"$BENCH_SID\$inner"
chroot "$BENCH_SID" "$cand" "/tmp/psbench/\${f##*/}" "\$inner" "\$@" &
child=\$!
read -r line <&3 && echo "\$line" >"\$fifo"
wait "\$child"
st=\$?
rm -f "$BENCH_SID\$inner"
exit "\$st"
EOF
            chmod +x "$launcher"
            if start_fixture "$launcher" "$PS_FIXTURES/deep_busy.py" 10 2>/dev/null; then
                if "$PYSAMPLE" dump "$PS_FIXTURE_PID" >/dev/null 2>&1; then
                    PSY_PY=$launcher
                fi
                ps_stop "$PS_FIXTURE_PID"
            fi
            [[ -n $PSY_PY ]] && break
        done
        if [[ -z $PSY_PY ]]; then
            not_measured "pysample beside CPython's sampler" "pysample reads neither 3.15 nor 3.14 in $BENCH_SID"
        else
            v=$(chroot "$BENCH_SID" "${cand}" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
            PSY_LABEL="$v (sid)"
            [[ $cand != */python3.15 ]] &&
                PSY_NOTE="; pysample on $v (it does not read 3.15 yet), CPython's sampler on 3.15"
            note "scale 3/3 CPython's sampler ($CPY_LABEL) beside pysample ($PSY_LABEL)"
            for depth in 10 50 200; do
                cpy_side "depth$depth" "depth $depth @ 100 kHz" "\"depth\":$depth" cpu 100000 deep_busy.py "$depth"
            done
            cpy_side "t200" "200 threads @ 1 kHz" "\"idle_threads\":200" cpu 1000 many_threads.py 200 1
            cpy_side "t1000" "1000 threads @ 100 Hz" "\"idle_threads\":1000" cpu 100 many_threads.py 1000 1
            # The 50/35/15 split: cumulative shares of heavy/medium/light in both profiles.
            cpy_session "$PS_TMP/cpy-split" cpu 1000 cpu_split.py
            if ((C_OK)) && read -r sh sm sl < <(split_shares "$PS_TMP/cpy-split.collapsed" cpython) &&
                [[ -n $sl ]]; then
                emit cpython_split_max_error_pts "$CPY_LABEL" "\"heavy\":$sh,\"medium\":$sm,\"light\":$sl" \
                    "50/35/15" "$(max_err "$sh" "$sm" "$sl")" le "$SPLIT_TOLERANCE" "heavy $sh%, medium $sm%, light $sl%"
            else
                emit cpython_split_max_error_pts "3.15" "\"error\":$(json_str "${C_WHY:-no samples}")" "50/35/15" \
                    null failed "" "${C_WHY:-no samples}"
            fi
            if PS_FIXTURE_CWD=$PS_FIXTURES start_fixture "$PSY_PY" "$PS_FIXTURES/cpu_split.py"; then
                pid=$PS_FIXTURE_PID
                record "$pid" 1000 "$SPLIT_SECONDS" "$PS_TMP/psy-split"
                ps_stop "$pid"
                if ((R_OK)) && read -r sh sm sl < <(split_shares "$PS_TMP/psy-split.folded" folded) &&
                    [[ -n $sl ]]; then
                    emit pysample_split_max_error_pts "$PSY_LABEL" "\"heavy\":$sh,\"medium\":$sm,\"light\":$sl" \
                        "50/35/15" "$(max_err "$sh" "$sm" "$sl")" le "$SPLIT_TOLERANCE" \
                        "heavy $sh%, medium $sm%, light $sl%$PSY_NOTE"
                else
                    not_measured "pysample split beside CPython's" "${R_WHY:-no samples}"
                fi
            fi
        fi
    fi
fi
