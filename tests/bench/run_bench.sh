#!/usr/bin/env bash
# run_bench.sh -- `make bench`: measures pysample against its performance targets on the
# interpreters installed here and prints one JSON line per figure as it goes, then a table
# (figure, interpreter, parameters, value, target, status). A benchmark, not a test: a figure
# off target is reported as "over"/"under", never an error; the exit status is 1 only when
# something could not be measured at all (a tool failed to build, pysample failed to record).
#
# Usage: tests/bench/run_bench.sh PYSAMPLE
#
# Sections (in order): the cost of one remote read (readcost.c); pysample's CPU time and remote
# reads per sample at depth 10/50/200 (fixtures/deep_busy.py, CPU from wait4() via cpurun.c,
# start-up cost removed by subtracting a short recording from a long one); achieved rate and
# late ticks at 1-100 kHz; target slowdown (fixtures/fixed_work.py, unprofiled vs profiled,
# alternating); profiler RSS over a long recording; accuracy of a known CPU split
# (fixtures/cpu_split.py); Debian's austin side by side where it works; then (scale_bench.sh)
# many threads, deep stacks and CPython 3.15's own sampler side by side.
#
# Environment:
#   BENCH_WRITE=1     also write the table, the machine and the commands to BENCHMARKS.md
#   BENCH_LONG=SEC    length of the RSS recording (default 60; 600 for the 10-minute figure)
#   BENCH_DUR=SEC     length of each CPU-per-sample recording (default 5)
#   BENCH_SHORT=SEC   length of the start-up-cost recording subtracted from it (default 0.5)
#   BENCH_RATE_DUR=SEC  length of each sustained-rate recording (default 3)
#   BENCH_PAIRS=N     unprofiled/profiled pairs per rate for the slowdown (default 15)
#   BENCH_WORK=N      work units of fixed_work.py per run (default 1000, about 1 s)
#   BENCH_VERSIONS    X.Y list for the per-sample figures (default "2.7 3.9 3.10 3.11 3.12 3.13
#                     3.14 3.15 3.14t 3.15t"; X.Yt: a free-threaded build; 3.14+ from the sid chroot)
#   BENCH_PY=X.Y      interpreter for the rate, slowdown, RSS and accuracy sections (default 3.12)
#   BENCH_AUSTIN=0    skip the austin comparison (default 1: install austin if missing, as root)
#   BENCH_SCALE=0, BENCH_CPYTHON=0, BENCH_SID=DIR   see tests/bench/scale_bench.sh
set -euo pipefail

if (($# != 1)); then
    echo "usage: tests/bench/run_bench.sh PYSAMPLE" >&2
    exit 64
fi
if [[ ! -x $1 || -d $1 ]]; then
    echo "run_bench.sh: $1 is not an executable file — build it with: make pysample" >&2
    exit 2
fi
PYSAMPLE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

BENCH_WRITE=${BENCH_WRITE:-0}
BENCH_LONG=${BENCH_LONG:-60}
BENCH_DUR=${BENCH_DUR:-5}
BENCH_SHORT=${BENCH_SHORT:-0.5}
BENCH_RATE_DUR=${BENCH_RATE_DUR:-3}
BENCH_PAIRS=${BENCH_PAIRS:-15}
BENCH_WORK=${BENCH_WORK:-1000}
BENCH_VERSIONS=${BENCH_VERSIONS:-2.7 3.9 3.10 3.11 3.12 3.13 3.14 3.15 3.14t 3.15t}
BENCH_PY=${BENCH_PY:-3.12}
BENCH_AUSTIN=${BENCH_AUSTIN:-1}
DEPTHS=(10 50 200)
CPU_RATE=1000
SPLIT_SECONDS=5
SPLIT_TOLERANCE=3       # points; the bound the session tests use for the same fixture
OLD_PATH_CONST=3        # reads per sample allowed on top of one per frame (3.10 and older)

BENCH_BUILD=$PS_ROOT/build/bench
RESULTS=$PS_TMP/results.tsv
COMMANDS=$PS_TMP/commands.txt
MEASURE_FAILED=()
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_T0=$SECONDS
: >"$RESULTS"
: >"$COMMANDS"

# ---- helpers ------------------------------------------------------------------------------------

note() { printf 'bench: %s\n' "$*" >&2; }

# not_measured WHAT WHY: a figure that could not be measured at all (makes the exit status 1).
not_measured() {
    MEASURE_FAILED+=("$1: $2")
    note "could not measure $1: $2"
}

# log_cmd SECTION CMD...: remember the first command of each section for BENCHMARKS.md.
log_cmd() {
    local section=$1
    shift
    grep -q -F -x -- "# $section" "$COMMANDS" && return 0
    { echo "# $section"; echo "$*"; } >>"$COMMANDS"
}

# calc DECIMALS EXPR: floating-point arithmetic on numbers this script produced.
calc() { awk "BEGIN { printf \"%.$1f\", ($2) }"; }

# meta FILE KEY: the value of a "# KEY: VALUE" metadata line of a folded file.
meta() { awk -v k="# $2=" 'index($0, k) == 1 { v = substr($0, length(k) + 1); if (v ~ /^".*"$/) v = substr(v, 2, length(v) - 2); print v; exit }' "$1"; }

# cpu_field FILE KEY: one "key=value" field of a cpurun report.
cpu_field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# json_str TEXT: TEXT as a JSON string (quotes, backslashes and control characters escaped).
json_str() { "$PY3" -c 'import json, sys; sys.stdout.write(json.dumps(sys.argv[1]))' "$1"; }

# first_line FILE: the first non-empty line of FILE, or "(no output)".
first_line() {
    local l
    l=$(grep -m1 -v '^[[:space:]]*$' "$1" 2>/dev/null) || true
    echo "${l:-(no output)}"
}

# median_of VALUE... / min_of / max_of
median_of() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
min_of() { printf '%s\n' "$@" | sort -g | head -n1; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n1; }

# emit FIGURE LABEL PARAMS_JSON PARAMS_TEXT VALUE OP TARGET [DETAIL]: one figure. LABEL is the
# interpreter ("3.12.1", "3.11.2 (debian)", or "-"); OP is le, lt, ge, info (no target) or
# failed (VALUE null, DETAIL says why). Prints the JSON line and keeps the table row.
emit() {
    local fig=$1 label=$2 pj=$3 pt=$4 val=$5 op=$6 tgt=$7 detail=${8:-} ok tshow status pyjson build
    case $op in
        le) ok=$(awk -v v="$val" -v t="$tgt" 'BEGIN { print (v + 0 <= t + 0) ? "true" : "false" }'); tshow="<= $tgt" ;;
        lt) ok=$(awk -v v="$val" -v t="$tgt" 'BEGIN { print (v + 0 < t + 0) ? "true" : "false" }'); tshow="< $tgt" ;;
        ge) ok=$(awk -v v="$val" -v t="$tgt" 'BEGIN { print (v + 0 >= t + 0) ? "true" : "false" }'); tshow=">= $tgt" ;;
        *) ok=null; tshow="-"; tgt= ;;
    esac
    case $ok in
        true) status=ok ;;
        false) [[ $op == ge ]] && status=under || status=over ;;
        *) [[ $op == failed ]] && status=failed || status=- ;;
    esac
    if [[ $label == - ]]; then
        pyjson=null
    else
        pyjson="\"${label%% *}\""
        if [[ $label == *"("*")" ]]; then
            build=${label#*(}
            pyjson+=",\"build\":\"${build%)}\""
        fi
    fi
    printf '{"bench":"%s","python":%s%s,"value":%s,"target":%s,"ok":%s}\n' \
        "$fig" "$pyjson" "${pj:+,$pj}" "$val" "${tgt:-null}" "$ok"
    [[ $val == null ]] && val=-
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fig" "$label" "${pt:--}" "$val" "$tshow" "$status" "$detail" >>"$RESULTS"
}

# interpreter_label PY: "X.Y.Z", with " (debian)" for the system interpreter.
interpreter_label() {
    local v
    v=$(ps_python_version "$1") || return 1
    [[ $(ps_python_argv0 "$1") == *t ]] && v+=t
    case $1 in
        /usr/bin/*) echo "$v (debian)" ;;
        *) if ps_python_in_chroot "$1"; then echo "$v (sid)"; else echo "$v"; fi ;;
    esac
}

# start_fixture PY FIXTURE ARGS...: ps_start_fixture with its messages on stderr.
start_fixture() { ps_start_fixture "$@" >&2; }

# record PID RATE DURATION BASE: pysample record under cpurun (on CPU 0 unless REC_PIN is
# emptied). Sets R_OK (1 when a folded file
# with ticks was written), R_WHY, R_CPU (µs), R_TICKS, R_READS, R_LATE, R_DUR, R_TICKWALL.
record() {
    local pid=$1 rate=$2 dur=$3 base=$4 rc=0
    R_OK=0 R_WHY='' R_CPU='' R_TICKS='' R_READS='' R_LATE='' R_DUR='' R_TICKWALL='' R_TICKCPU=''
    log_cmd "pysample record (CPU time from wait4)" "${REC_PIN[@]}" "$BENCH_BUILD/cpurun" -o "$base.cpu" \
        "$PYSAMPLE" record -p "$pid" -r "$rate" -d "$dur" -o "$base.folded"
    "${REC_PIN[@]}" "$BENCH_BUILD/cpurun" -o "$base.cpu" -k "$(calc 0 "$dur + 60")" \
        "$PYSAMPLE" record -p "$pid" -r "$rate" -d "$dur" -o "$base.folded" \
        >"$base.out" 2>"$base.err" </dev/null || rc=$?
    if ((rc != 0 && rc != 1)) || [[ ! -s $base.folded || ! -s $base.cpu ]]; then
        R_WHY="pysample record exited $rc: $(first_line "$base.err")"
        return 0
    fi
    R_CPU=$(cpu_field "$base.cpu" cpu_us)
    R_TICKS=$(meta "$base.folded" ticks)
    R_READS=$(meta "$base.folded" remote_reads)
    R_LATE=$(meta "$base.folded" late_ticks)
    R_DUR=$(meta "$base.folded" duration)
    R_TICKWALL=$(meta "$base.folded" sample_time_us | cut -d/ -f2)
    R_TICKCPU=$(meta "$base.folded" sample_cpu_us | cut -d/ -f2)
    if [[ -z $R_TICKS || $R_TICKS == 0 || -z $R_READS || -z $R_CPU ]]; then
        R_WHY="no ticks recorded ($(first_line "$base.err"))"
        return 0
    fi
    R_OK=1
}

# austin_run PID RATE DURATION BASE: austin under cpurun, stopped with SIGINT after DURATION.
# Sets A_OK, A_WHY, A_CPU (µs), A_SAMPLES (one output line per thread-sample).
austin_run() {
    local pid=$1 rate=$2 dur=$3 base=$4 rc=0
    A_OK=0 A_WHY='' A_CPU='' A_SAMPLES=''
    log_cmd "austin (CPU time from wait4, stopped by SIGINT)" "${REC_PIN[@]}" "$BENCH_BUILD/cpurun" -o "$base.cpu" \
        -i "$dur" austin -i "$(calc 0 "1000000 / $rate")" -p "$pid" -o "$base.austin"
    "${REC_PIN[@]}" "$BENCH_BUILD/cpurun" -o "$base.cpu" -i "$dur" -k "$(calc 0 "$dur + 30")" \
        austin -i "$(calc 0 "1000000 / $rate")" -p "$pid" -o "$base.austin" \
        >"$base.out" 2>"$base.err" </dev/null || rc=$?
    A_SAMPLES=$(grep -c '^Thread ' "$base.austin" 2>/dev/null) || A_SAMPLES=0
    A_CPU=$(cpu_field "$base.cpu" cpu_us 2>/dev/null) || true
    if ((rc != 0 && rc != 130)) || ((A_SAMPLES == 0)) || [[ -z $A_CPU ]]; then
        A_WHY="exit status $rc, $A_SAMPLES samples in ${dur}s: $(first_line "$base.err")"
        return 0
    fi
    A_OK=1
}

# ---- build the tools ----------------------------------------------------------------------------

mkdir -p "$BENCH_BUILD"
for tool in readcost cpurun; do
    gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -o "$BENCH_BUILD/$tool" "$PS_ROOT/tests/bench/$tool.c" || {
        echo "run_bench.sh: cannot build tests/bench/$tool.c" >&2
        exit 1
    }
done

# ---- interpreters -------------------------------------------------------------------------------

declare -A PY_BY_MINOR=()   # X.Y -> pyenv interpreter (first found)
DEB_PY=
while IFS= read -r py; do
    v=$(ps_python_version "$py") || continue
    mm=${v%.*}
    [[ $(ps_python_argv0 "$py") == *t ]] && mm+=t
    if [[ $py == /usr/bin/* ]]; then
        DEB_PY=$py
    elif [[ -z ${PY_BY_MINOR[$mm]:-} ]]; then
        PY_BY_MINOR[$mm]=$py
    fi
done < <(ps_find_pythons)
CPU_PYS=()
for mm in $BENCH_VERSIONS; do
    if [[ -n ${PY_BY_MINOR[$mm]:-} ]]; then
        CPU_PYS+=("${PY_BY_MINOR[$mm]}")
    else
        note "no Python $mm installed; its per-sample figures are skipped"
    fi
done
[[ -n $DEB_PY ]] && CPU_PYS+=("$DEB_PY")
MAIN_PY=${PY_BY_MINOR[$BENCH_PY]:-}
if [[ -z $MAIN_PY ]]; then
    MAIN_PY=$(ps_find_pythons | tail -n1)
    note "no Python $BENCH_PY installed; using $MAIN_PY for the rate, slowdown, RSS and accuracy sections"
fi
if [[ -z $MAIN_PY ]]; then
    echo "run_bench.sh: no Python interpreter found (pyenv versions or /usr/bin/python3.11)" >&2
    exit 2
fi
MAIN_LABEL=$(interpreter_label "$MAIN_PY")
PY3=$(ps_python3) || PY3=$MAIN_PY

HAVE_AUSTIN=0
if [[ $BENCH_AUSTIN == 1 ]]; then
    if command -v austin >/dev/null 2>&1; then
        HAVE_AUSTIN=1
    elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        note "installing Debian's austin for the side-by-side figures"
        if DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y austin >"$PS_TMP/apt.log" 2>&1; then
            HAVE_AUSTIN=1
        else
            note "apt-get install austin failed: $(tail -n1 "$PS_TMP/apt.log"); austin figures skipped"
        fi
    else
        note "austin is not installed (and this is not root); austin figures skipped"
    fi
fi

# With two CPUs or more, targets run on CPU 1 and pysample (and readcost) on CPU 0, so the
# scheduler putting the profiler on the busy target's CPU (or moving either) is not part of a
# figure. pin_target PID pins a running fixture; unpin_target PID lets it go anywhere again.
PIN_T=() PIN_P=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    PIN_T=(taskset -c 1) PIN_P=(taskset -c 0)
fi
REC_PIN=("${PIN_P[@]}") # how record() starts pysample
pin_target() { ((${#PIN_T[@]})) && taskset -p -c 1 "$1" >/dev/null 2>&1 || true; }
unpin_target() { ((${#PIN_T[@]})) && taskset -p -c "0-$(($(nproc) - 1))" "$1" >/dev/null 2>&1 || true; }

# ---- 1. the cost of one remote read -------------------------------------------------------------

note "1/7 remote read cost (readcost, 5 batches of 20000 reads) and the cost of a tick's sleep"
READ_US=
READ_COLD_US=
SLEEP_US=
log_cmd "remote read cost" "${PIN_P[@]}" "$BENCH_BUILD/readcost" 20000 5
if timeout -k 5 120 "${PIN_P[@]}" "$BENCH_BUILD/readcost" 20000 5 >"$PS_TMP/readcost.out" 2>"$PS_TMP/readcost.err"; then
    while read -r method bytes cpu wall; do
        case $method in
            sleep_abs_*)
                period=${method#sleep_abs_}
                emit tick_sleep_cpu_us - "\"interval_us\":${period%us},\"period_us\":$wall" \
                    "sleep every $period" "$cpu" info "" "CPU per absolute-deadline sleep; achieved period $wall us"
                [[ $period == 1000us ]] && SLEEP_US=$cpu
                ;;
            *)
                emit read_cost_us - "\"method\":\"$method\",\"bytes\":$bytes,\"wall_us\":$wall" \
                    "$method$( ((bytes)) && echo " $bytes B")" "$cpu" info "" "CPU per call; wall $wall us"
                [[ $method == process_vm_readv && $bytes == 8 ]] && READ_US=$cpu
                [[ $method == process_vm_readv_1khz ]] && READ_COLD_US=$cpu
                ;;
        esac
    done <"$PS_TMP/readcost.out"
fi
if [[ -z $READ_US ]]; then
    not_measured "remote read cost" "$(first_line "$PS_TMP/readcost.err")"
fi

# ---- 2. CPU and remote reads per sample by depth (and austin beside it) -------------------------

note "2/7 CPU and reads per sample: ${#CPU_PYS[@]} interpreters, depths ${DEPTHS[*]}, ${BENCH_DUR}s - ${BENCH_SHORT}s at $CPU_RATE Hz"
for py in "${CPU_PYS[@]}"; do
    label=$(interpreter_label "$py") || { not_measured "interpreter $py" "does not report its version"; continue; }
    minor=$(cut -d. -f2 <<<"$label")
    major=$(cut -d. -f1 <<<"$label")
    new_layout=0
    ((major == 3 && minor >= 11)) && new_layout=1
    depths=("${DEPTHS[@]}")
    [[ $py == /usr/bin/* ]] && depths=(50)
    for depth in "${depths[@]}"; do
        what="$label depth $depth"
        if ! start_fixture "$py" deep_busy.py "$depth"; then
            not_measured "$what" "fixtures/deep_busy.py did not start"
            continue
        fi
        pid=$PS_FIXTURE_PID
        if [[ $PS_FIXTURE_READY != "ready $pid depth $depth" ]]; then
            not_measured "$what" "fixture reported '$PS_FIXTURE_READY'"
            ps_stop "$pid"
            continue
        fi
        pin_target "$pid"
        base=$PS_TMP/cpu-${label%% *}-$depth
        record "$pid" "$CPU_RATE" "$BENCH_SHORT" "$base-short"
        s_ok=$R_OK s_why=$R_WHY s_cpu=$R_CPU s_ticks=$R_TICKS s_reads=$R_READS
        record "$pid" "$CPU_RATE" "$BENCH_DUR" "$base-long"
        if ((!s_ok || !R_OK)); then
            not_measured "$what" "${s_why:-$R_WHY}"
            ps_stop "$pid"
            continue
        fi
        if ((R_TICKS <= s_ticks)); then
            not_measured "$what" "the ${BENCH_DUR}s recording took no more ticks ($R_TICKS) than the ${BENCH_SHORT}s one ($s_ticks)"
            ps_stop "$pid"
            continue
        fi
        dt=$((R_TICKS - s_ticks))
        cpu=$(calc 2 "($R_CPU - $s_cpu) / $dt")
        reads=$(calc 2 "($R_READS - $s_reads) / $dt")
        startup=$(calc 1 "($s_cpu - $cpu * $s_ticks) / 1000")
        pj="\"depth\":$depth,\"rate\":$CPU_RATE,\"ticks\":$dt${SLEEP_US:+,\"sleep_us\":$SLEEP_US}"
        detail="$dt ticks; tick wall median ${R_TICKWALL} us${SLEEP_US:+; a 1 kHz sleep alone costs $SLEEP_US us}"
        if awk -v c="$cpu" 'BEGIN { exit !(c <= 0) }'; then
            # Start-up noise larger than the whole difference (a loaded machine): fall back to
            # the long run alone, start-up included, which can only overstate the cost.
            cpu=$(calc 2 "$R_CPU / $R_TICKS")
            startup=
            pj+=",\"includes_startup\":true"
            detail="$R_TICKS ticks, start-up included (the ${BENCH_SHORT}s run cost more than the difference); tick wall median ${R_TICKWALL} us"
        fi
        # The work of one sample: pysample's own thread CPU clock around a tick (median of the
        # measured ticks), i.e. without the sleep between ticks, which is reported beside it.
        tick=${R_TICKCPU:-$cpu}
        tdetail="median of pysample's thread CPU per tick (wall median ${R_TICKWALL} us); total with the sleep and wake-up between ticks: $cpu us"
        if ((new_layout)); then
            tgt=10
            ((depth > 50)) && tgt=15
            emit reads_per_sample "$label" "$pj" "depth $depth" "$reads" le 3 "remote syscalls per tick"
            emit cpu_per_sample_us "$label" "$pj" "depth $depth" "$tick" le "$tgt" "$tdetail"
            if [[ -n $READ_US ]]; then
                emit cpu_per_sample_reads "$label" "$pj,\"read_us\":$READ_US" "depth $depth" \
                    "$(calc 2 "$tick / $READ_US")" info "" "CPU per sample / one ${READ_US} us read in a tight loop (warm)"
            fi
            if [[ -n $READ_COLD_US ]]; then
                op=info
                ((depth == 50)) && op=le
                emit cpu_per_sample_cold_reads "$label" "$pj,\"read_us\":$READ_COLD_US" "depth $depth" \
                    "$(calc 2 "$tick / $READ_COLD_US")" "$op" 4 "CPU per sample / one ${READ_COLD_US} us read taken at 1 kHz and timed like a sample"
            fi
        else
            tgt=$((depth + OLD_PATH_CONST))
            emit reads_per_sample "$label" "$pj" "depth $depth" "$reads" le "$tgt" "frame objects: <= 1 per frame + $OLD_PATH_CONST"
            emit cpu_per_sample_us "$label" "$pj" "depth $depth" "$tick" info "" "$tdetail"
            if [[ -n $READ_US ]]; then
                emit cpu_per_sample_reads "$label" "$pj,\"read_us\":$READ_US" "depth $depth" \
                    "$(calc 2 "$tick / $READ_US")" le "$tgt" "CPU per sample / one ${READ_US} us read"
            fi
        fi
        emit cpu_per_tick_total_us "$label" "$pj" "depth $depth" "$cpu" info "" "$detail"
        if ((depth == 50 && ${#PIN_P[@]})) && [[ $py == "$MAIN_PY" ]]; then
            # The same without pinning: the scheduler may wake pysample on the target's CPU.
            unpin_target "$pid"
            REC_PIN=()
            record "$pid" "$CPU_RATE" "$BENCH_SHORT" "$base-unpinned"
            REC_PIN=("${PIN_P[@]}")
            pin_target "$pid"
            if ((R_OK)) && [[ -n $R_TICKCPU ]]; then
                emit cpu_per_sample_unpinned_us "$label" "$pj" "depth $depth" "$R_TICKCPU" info "" \
                    "as cpu_per_sample_us, neither process pinned to a CPU"
            else
                not_measured "$what unpinned" "${R_WHY:-no sample_cpu_us}"
            fi
        fi

        if ((depth == 50)) && [[ -n $startup ]]; then
            emit startup_cpu_ms "$label" "\"depth\":$depth" "attach+write" "$startup" info "" \
                "CPU of a ${BENCH_SHORT}s recording minus its samples"
        fi
        # Debian's austin beside it, at depth 50, on the same process.
        if ((depth == 50 && HAVE_AUSTIN)); then
            abase=$PS_TMP/austin-${label%% *}
            austin_run "$pid" "$CPU_RATE" "$BENCH_SHORT" "$abase-short"
            if ((A_OK)); then
                as_cpu=$A_CPU as_n=$A_SAMPLES
                austin_run "$pid" "$CPU_RATE" "$BENCH_DUR" "$abase-long"
            fi
            if ((!A_OK)); then
                note "austin failed on $label: $A_WHY"
                emit austin_cpu_per_sample_us "$label" "\"depth\":50,\"error\":$(json_str "$A_WHY")" "depth 50" null failed "" \
                    "austin 1.0.1 failed: $A_WHY"
            elif ((A_SAMPLES <= as_n)); then
                note "austin took no more samples in ${BENCH_DUR}s than in ${BENCH_SHORT}s on $label"
                emit austin_cpu_per_sample_us "$label" "\"depth\":50,\"error\":\"no more samples in the long run\"" "depth 50" null failed "" \
                    "austin 1.0.1 failed: $A_SAMPLES samples in ${BENCH_DUR}s, $as_n in ${BENCH_SHORT}s"
            else
                acpu=$(calc 2 "($A_CPU - $as_cpu) / ($A_SAMPLES - $as_n)")
                emit austin_cpu_per_sample_us "$label" "\"depth\":50,\"rate\":$CPU_RATE,\"samples\":$((A_SAMPLES - as_n))" \
                    "depth 50" "$acpu" info "" "austin 1.0.1, same fixture and rate"
                emit austin_ratio "$label" "\"depth\":50,\"austin_us\":$acpu,\"pysample_us\":$cpu" "depth 50" \
                    "$(calc 2 "$acpu / $cpu")" info "" "austin CPU per sample / pysample's"
            fi
        fi
        ps_stop "$pid"
    done
done

# ---- 3. sustained rate and late ticks -----------------------------------------------------------

note "3/7 sustained rate: $MAIN_LABEL depth 50, ${BENCH_RATE_DUR}s at 1/10/50/100 kHz"
if start_fixture "$MAIN_PY" deep_busy.py 50; then
    pid=$PS_FIXTURE_PID
    pin_target "$pid"
    for rate in 1000 10000 50000 100000; do
        record "$pid" "$rate" "$BENCH_RATE_DUR" "$PS_TMP/rate-$rate"
        if ((!R_OK)); then
            not_measured "rate $rate Hz" "$R_WHY"
            continue
        fi
        achieved=$(calc 0 "$R_TICKS / $R_DUR")
        late=$(calc 2 "100 * $R_LATE / $R_TICKS")
        load=$(calc 1 "100 * $R_CPU / ($(cpu_field "$PS_TMP/rate-$rate.cpu" wall_us))")
        op=ge lop=lt
        ((rate > 50000)) && op=info lop=info
        pj="\"depth\":50,\"rate\":$rate,\"ticks\":$R_TICKS,\"duration_s\":$R_DUR"
        emit achieved_rate_hz "$MAIN_LABEL" "$pj" "$((rate / 1000)) kHz" "$achieved" "$op" \
            "$(calc 0 "$rate * 0.99")" "$R_TICKS ticks in ${R_DUR}s; tick wall median ${R_TICKWALL} us"
        emit late_ticks_pct "$MAIN_LABEL" "$pj,\"late_ticks\":$R_LATE" "$((rate / 1000)) kHz" "$late" "$lop" 1 \
            "$R_LATE late of $R_TICKS"
        emit profiler_cpu_pct "$MAIN_LABEL" "\"depth\":50,\"rate\":$rate" "$((rate / 1000)) kHz" "$load" info "" \
            "pysample CPU time / wall time"
    done
    ps_stop "$pid"
else
    not_measured "sustained rate" "fixtures/deep_busy.py did not start under $MAIN_PY"
fi

# ---- 4. target slowdown -------------------------------------------------------------------------

note "4/7 target slowdown: $MAIN_LABEL fixed_work.py $BENCH_WORK, $BENCH_PAIRS pairs at 100 Hz / 1 kHz / 10 kHz"
# wall_of OUTFILE: the "wall SECONDS" the fixture printed.
wall_of() { awk '$1 == "wall" { print $2; exit }' "$1"; }
log_cmd "target slowdown, unprofiled" "${PIN_T[@]}" "$MAIN_PY" "$PS_FIXTURES/fixed_work.py" "$BENCH_WORK"
for rate in 100 1000 10000; do
    base_w=() prof_w=() why=
    for ((i = 0; i < BENCH_PAIRS; i++)); do
        # Alternate which run goes first so a drifting machine load does not favour one side.
        for side in $( ((i % 2)) && echo "prof base" || echo "base prof"); do
            out=$PS_TMP/slow-$rate-$i-$side
            rc=0
            if [[ $side == base ]]; then
                timeout -k 5 300 "${PIN_T[@]}" "$MAIN_PY" "$PS_FIXTURES/fixed_work.py" "$BENCH_WORK" \
                    >"$out.out" 2>"$out.err" </dev/null || rc=$?
            else
                log_cmd "target slowdown, profiled" "${PIN_P[@]}" "$PYSAMPLE" record -r "$rate" -o "$out.folded" -- \
                    "${PIN_T[@]}" "$MAIN_PY" "$PS_FIXTURES/fixed_work.py" "$BENCH_WORK"
                timeout -k 5 300 "${PIN_P[@]}" "$PYSAMPLE" record -r "$rate" -o "$out.folded" -- \
                    "${PIN_T[@]}" "$MAIN_PY" "$PS_FIXTURES/fixed_work.py" "$BENCH_WORK" \
                    >"$out.out" 2>"$out.err" </dev/null || rc=$?
                if ((rc == 0)) && [[ $(meta "$out.folded" ticks 2>/dev/null) =~ ^[1-9] ]]; then :; else
                    why="profiled run exited $rc with no ticks: $(first_line "$out.err")"
                fi
            fi
            w=$(wall_of "$out.out")
            if ((rc != 0)) || [[ -z $w ]]; then
                why=${why:-"$side run exited $rc: $(first_line "$out.err")"}
                break 2
            fi
            if [[ $side == base ]]; then base_w+=("$w"); else prof_w+=("$w"); fi
        done
    done
    if [[ -n $why ]]; then
        not_measured "slowdown at $rate Hz" "$why"
        continue
    fi
    bm=$(median_of "${base_w[@]}") pm=$(median_of "${prof_w[@]}")
    bmin=$(min_of "${base_w[@]}") bmax=$(max_of "${base_w[@]}")
    pmin=$(min_of "${prof_w[@]}") pmax=$(max_of "${prof_w[@]}")
    slow=$(calc 2 "100 * ($pm / $bm - 1)")
    noise=$(calc 1 "100 * ($bmax - $bmin) / $bm")
    op=le
    ((rate > 1000)) && op=info
    rate_text="$rate Hz"
    ((rate >= 1000)) && rate_text="$((rate / 1000)) kHz"
    emit slowdown_pct "$MAIN_LABEL" "\"rate\":$rate,\"pairs\":$BENCH_PAIRS,\"base_spread_pct\":$noise,\"base_median_s\":$bm,\"base_min_s\":$bmin,\"base_max_s\":$bmax,\"prof_median_s\":$pm,\"prof_min_s\":$pmin,\"prof_max_s\":$pmax" \
        "$rate_text" "$slow" "$op" 1 \
        "median ${pm}s [$pmin-$pmax] vs ${bm}s [$bmin-$bmax]; unprofiled spread ${noise}%"
    # The same pairs compared pair by pair (each profiled run against the unprofiled run next
    # to it), which takes out the machine's drift between pairs.
    ratios=()
    for ((i = 0; i < ${#base_w[@]}; i++)); do
        ratios+=("$(calc 6 "${prof_w[$i]} / ${base_w[$i]}")")
    done
    paired=$(calc 2 "100 * ($(median_of "${ratios[@]}") - 1)")
    emit slowdown_paired_pct "$MAIN_LABEL" "\"rate\":$rate,\"pairs\":$BENCH_PAIRS" "$rate_text" "$paired" info "" \
        "median over pairs of profiled / unprofiled wall time (min $(calc 2 "100 * ($(min_of "${ratios[@]}") - 1)")%, max $(calc 2 "100 * ($(max_of "${ratios[@]}") - 1)")%)"
done

# ---- 5. profiler RSS over a long recording ------------------------------------------------------

note "5/7 profiler RSS: $MAIN_LABEL cpu_split.py at 1 kHz for ${BENCH_LONG}s"
if start_fixture "$MAIN_PY" cpu_split.py; then
    pid=$PS_FIXTURE_PID
    out=$PS_TMP/rss.folded
    log_cmd "profiler RSS (VmRSS polled)" "$PYSAMPLE" record -p "$pid" -r 1000 -d "$BENCH_LONG" -o "$out"
    "$PYSAMPLE" record -p "$pid" -r 1000 -d "$BENCH_LONG" -o "$out" >"$PS_TMP/rss.out" 2>"$PS_TMP/rss.err" </dev/null &
    rpid=$!
    PS_PIDS+=("$rpid")
    step=$(((BENCH_LONG + 29) / 30))
    samples=()   # "seconds kib"
    t0=$SECONDS
    for ((i = 0; i < BENCH_LONG / step + 30; i++)); do
        timeout "$step" tail -f /dev/null || true
        rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$rpid/status" 2>/dev/null) || rss=
        state=$(awk '{ print $3 }' "/proc/$rpid/stat" 2>/dev/null) || state=
        [[ -z $rss || $state == Z ]] && break
        samples+=("$((SECONDS - t0)) $rss")
    done
    kill -9 "$rpid" 2>/dev/null || true
    rrc=0
    wait "$rpid" 2>/dev/null || rrc=$?
    ps_stop "$pid"
    if ((${#samples[@]} < 3)) || [[ ! -s $out ]]; then
        not_measured "profiler RSS" "pysample exited $rrc after ${#samples[@]} readings: $(first_line "$PS_TMP/rss.err")"
    else
        n=${#samples[@]}
        # Start: the first reading at least 2 s in (attach and first stacks done).
        first=0
        for ((i = 0; i < n; i++)); do
            if (($(cut -d' ' -f1 <<<"${samples[$i]}") >= 2)); then first=$i; break; fi
        done
        read -r ts rs <<<"${samples[$first]}"
        read -r tm rm <<<"${samples[$(((first + n - 1) / 2))]}"
        read -r te re <<<"${samples[$((n - 1))]}"
        ticks=$(meta "$out" ticks)
        pj="\"rate\":1000,\"seconds\":$BENCH_LONG,\"ticks\":${ticks:-0}"
        emit rss_kib "$MAIN_LABEL" "$pj,\"at_s\":$ts" "start (${ts}s)" "$rs" info ""
        emit rss_kib "$MAIN_LABEL" "$pj,\"at_s\":$tm" "middle (${tm}s)" "$rm" info ""
        emit rss_kib "$MAIN_LABEL" "$pj,\"at_s\":$te" "end (${te}s)" "$re" info "" "${ticks:-?} ticks, $(meta "$out" samples) samples"
        emit rss_growth_kib "$MAIN_LABEL" "$pj,\"from_s\":$ts,\"to_s\":$te" "${ts}s to ${te}s" "$((re - rs))" le 64 \
            "flat: unique stacks are all seen in the first second"
    fi
else
    not_measured "profiler RSS" "fixtures/cpu_split.py did not start under $MAIN_PY"
fi

# ---- 6. accuracy of a known CPU split -----------------------------------------------------------

note "6/7 accuracy: $MAIN_LABEL cpu_split.py (50/35/15) for ${SPLIT_SECONDS}s at 1 kHz"
if start_fixture "$MAIN_PY" cpu_split.py; then
    pid=$PS_FIXTURE_PID
    record "$pid" 1000 "$SPLIT_SECONDS" "$PS_TMP/split"
    ps_stop "$pid"
    if ((R_OK)) && "$PY3" "$PS_ROOT/tests/integration/folded_stats.py" "$PS_TMP/split.folded" heavy medium light \
        >"$PS_TMP/split.stats" 2>&1; then
        total=$(awk '$1 == "total" { print $2 }' "$PS_TMP/split.stats")
        maxerr=0 shares=
        for fe in heavy:50 medium:35 light:15; do
            fn=${fe%%:*} want=${fe##*:}
            c=$(awk -v f="$fn" '$1 == f && NF == 2 { print $2 }' "$PS_TMP/split.stats")
            share=$(calc 1 "100 * ${c:-0} / ($total > 0 ? $total : 1)")
            shares+="$fn $share% (want $want); "
            maxerr=$(calc 1 "(e = $share - $want) < 0 ? ($maxerr > -e ? $maxerr : -e) : ($maxerr > e ? $maxerr : e)")
            emit split_share_pct "$MAIN_LABEL" "\"function\":\"$fn\",\"expected\":$want" "$fn" "$share" info "" "expected $want%"
        done
        emit split_max_error_pts "$MAIN_LABEL" "\"samples\":$total" "50/35/15" "$maxerr" le "$SPLIT_TOLERANCE" "${shares%; }"
    else
        not_measured "accuracy" "${R_WHY:-folded_stats.py failed: $(first_line "$PS_TMP/split.stats")}"
    fi
else
    not_measured "accuracy" "fixtures/cpu_split.py did not start under $MAIN_PY"
fi

# ---- many threads, deep stacks, CPython's own sampler (tests/bench/scale_bench.sh) -------------------

# shellcheck source=tests/bench/scale_bench.sh
source "$PS_ROOT/tests/bench/scale_bench.sh"

# ---- 7. the table ----------------------------------------------------------------------------------

note "7/7 done in $((SECONDS - BENCH_T0))s"
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# table_text: the aligned plain-text table.
table_text() {
    { printf 'figure\tinterpreter\tparameters\tvalue\ttarget\tstatus\tdetail\n'; cat "$RESULTS"; } |
        awk -F'\t' '
            { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf[NR] = NF }
            END {
                for (r = 1; r <= NR; r++) {
                    line = ""
                    for (i = 1; i <= nf[r]; i++) {
                        fmt = (i == 4) ? "%" w[i] "s" : "%-" w[i] "s"
                        line = line (i > 1 ? "  " : "") sprintf(fmt, cell[r, i])
                    }
                    sub(/ +$/, "", line)
                    print line
                }
            }'
}

echo
table_text
over=$(awk -F'\t' '$6 == "over" || $6 == "under"' "$RESULTS" | wc -l)
echo
echo "$(wc -l <"$RESULTS") figures, $over off target; load average $START_LOAD at start, $END_LOAD at end"

if [[ $BENCH_WRITE == 1 ]]; then
    md=$PS_ROOT/BENCHMARKS.md
    {
        echo "# pysample benchmarks"
        echo
        echo "Produced by \`BENCH_WRITE=1 make bench\` (tests/bench/run_bench.sh) on $START_DATE."
        echo "Status \"over\"/\"under\" marks a figure off its target; \"-\" is a figure without one."
        echo
        echo "## Machine"
        echo
        echo "- CPUs (nproc): $(nproc)"
        echo "- CPU model: $(lscpu 2>/dev/null | awk -F: '/^Model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }')"
        echo "- Kernel: $(uname -srm)"
        echo "- Date: $START_DATE"
        echo "- Load average: $START_LOAD at start, $END_LOAD at end"
        echo "- pysample: $("$PYSAMPLE" --version 2>/dev/null | head -n1 | sed 's/^pysample //' || true) ($PYSAMPLE)"
        echo
        echo "## Results"
        echo
        echo "| figure | interpreter | parameters | value | target | status | detail |"
        echo "|---|---|---|---:|---|---|---|"
        sed 's/|/\\|/g; s/\t/ | /g; s/^/| /; s/$/ |/' "$RESULTS"
        echo
        echo "## How each figure is measured"
        echo
        echo "- **read_cost_us**: tests/bench/readcost.c, CPU time per call (median of 5 batches of 20000) reading a"
        echo "  forked child in a tight loop (warm caches); \`cpu_per_sample_reads\` divides by the 8-byte"
        echo "  process_vm_readv figure. \`process_vm_readv_1khz\` is one 8-byte read after each 1 ms sleep, timed"
        echo "  like a sample (this thread's CPU clock just before and after; median of 5 x 200): a read as cold as a"
        echo "  sample's. \`cpu_per_sample_cold_reads\` divides by it: like with like, the reads-worth target."
        echo "- **tick_sleep_cpu_us**: readcost.c again, CPU time of one clock_nanosleep to an absolute deadline"
        echo "  (every 1 ms and every 20 us), and the period the timer really delivers: the part of each"
        echo "  sample's CPU that is the sampler's sleep and wake-up, not its reads."
        echo "- **cpu_per_sample_us**: the work of one sample. fixtures/deep_busy.py at a fixed depth, recorded"
        echo "  at $CPU_RATE Hz for ${BENCH_DUR}s; the median of pysample's own thread CPU clock read around a tick"
        echo "  (\`# sample_cpu_us:\`, one tick in eight is measured), i.e. the reads, the idle check and the"
        echo "  interning, without the sleep between ticks. The fixture runs on CPU 1 and pysample on CPU 0"
        echo "  (\`cpu_per_sample_unpinned_us\`: the same without pinning, for the main interpreter). Targets: 3.11+"
        echo "  <= 10 us (depth <= 50), <= 15 us (depth 200), <= 4 reads' worth of CPU at depth 50."
        echo "- **cpu_per_tick_total_us**, **reads_per_sample**: the same fixture recorded for ${BENCH_DUR}s and for"
        echo "  ${BENCH_SHORT}s; (CPU, remote reads) of the long run minus the short run, over the difference in"
        echo "  ticks, so attach and output costs cancel. CPU is user + system time of the pysample process from"
        echo "  wait4() (tests/bench/cpurun.c), so it includes the sleep and wake-up between ticks"
        echo "  (tick_sleep_cpu_us); reads are pysample's own \`# remote_reads:\` count. Targets: 3.11+ <= 3"
        echo "  reads; 3.10 and older <= 1 read per frame + $OLD_PATH_CONST."
        echo "- **achieved_rate_hz**, **late_ticks_pct**: \`# ticks:\` / \`# duration:\` and \`# late_ticks:\` of a"
        echo "  ${BENCH_RATE_DUR}s recording of deep_busy.py at depth 50."
        echo "- **slowdown_pct**: fixtures/fixed_work.py $BENCH_WORK (it prints its own wall time) run $BENCH_PAIRS times"
        echo "  unprofiled and $BENCH_PAIRS times under \`pysample record -- \`, alternating; medians compared."
        echo "  **slowdown_paired_pct**: the median over pairs of each profiled run's wall time over its"
        echo "  neighbouring unprofiled run's (drift between pairs cancels)."
        echo "  With two CPUs or more the target is pinned to CPU 1 and pysample to CPU 0 (taskset) in both;"
        echo "  so are the fixtures and pysample (and readcost, and austin) in the per-sample and rate sections."
        echo "- **rss_kib**, **rss_growth_kib**: VmRSS of \`pysample record\` polled every few seconds while it"
        echo "  records fixtures/cpu_split.py at 1 kHz for ${BENCH_LONG}s."
        echo "- **split_max_error_pts**: fixtures/cpu_split.py (50/35/15 by construction) recorded ${SPLIT_SECONDS}s at 1 kHz."
        echo "- **austin_***: Debian's austin 1.0.1 on the same deep_busy.py process at the same rate, CPU per"
        echo "  sample measured the same way (stopped with SIGINT); status \"failed\" gives its first error line."
        echo "- **cpu_per_idle_thread_us**: fixtures/many_threads.py with 1 busy thread and $MT_IDLE idle ones against"
        echo "  1 busy and none, recorded at 100 Hz; the difference in CPU per tick (as cpu_per_tick_total_us) over"
        echo "  $MT_IDLE. **achieved_ratio**: ticks / duration / requested rate of recordings with 1 000 threads at"
        echo "  100 Hz, 200 at 1 kHz, and 16 worker processes of 20 threads (\`--subprocesses\`, the worst process:"
        echo "  its busy thread's samples); all threads of the fixtures pinned to CPU 1."
        echo "- **reads_per_sample** at depth 1000/2500/5000: deep_busy.py on $MAIN_LABEL as above (stacks are cut at"
        echo "  4096 frames)."
        echo "- **cpython_***, **pysample_*** side by side: \`python3.15 -m profiling.sampling attach -a --mode cpu\`"
        echo "  from the Debian sid chroot ($BENCH_SID, in a private mount namespace with /proc bound in) on"
        echo "  fixtures run by the chroot's python3.15; its CPU per sample is its process CPU (wait4) of a long"
        echo "  minus a short run over the difference in samples it reports, its rate the samples it reports over"
        echo "  its duration. pysample is measured the same way on the same fixtures run by the chroot's"
        echo "  interpreter: 3.15 when it reads it, else 3.14 (the detail column says so). Ratios > 1 favour pysample."
        echo
        echo "## Commands"
        echo
        echo '```'
        echo "BENCH_WRITE=1 make bench"
        echo "# environment: BENCH_LONG=$BENCH_LONG BENCH_DUR=$BENCH_DUR BENCH_SHORT=$BENCH_SHORT BENCH_RATE_DUR=$BENCH_RATE_DUR BENCH_PAIRS=$BENCH_PAIRS BENCH_WORK=$BENCH_WORK"
        echo "# first command of each kind, as run:"
        sed "s|$PS_TMP|\$TMP|g; s|$PS_ROOT/||g" "$COMMANDS"
        echo '```'
    } >"$md.tmp"
    mv "$md.tmp" "$md"
    note "wrote $md"
fi

if ((${#MEASURE_FAILED[@]} > 0)); then
    echo
    echo "not measured:"
    printf '  %s\n' "${MEASURE_FAILED[@]}"
    exit 1
fi
exit 0
