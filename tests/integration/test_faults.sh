#!/usr/bin/env bash
# test_faults.sh -- the fault suite: pysample never hurts the target, never loses what it
# sampled, and never crashes or hangs on what a process or a file throws at it. Against real
# processes: a deleted libpython / executable (read through /proc/PID/map_files), a target in
# another mount namespace, an unprivileged user, a target killed mid-session whose PID is taken
# by a new process, thread churn, code-object churn, 5000-deep recursion, 100 KB and non-UTF-8
# names, asyncio and generators (under every CPython found), SIGINT/SIGTERM/SIGHUP/SIGPIPE,
# outputs that cannot be written or replace a file, and `report` on garbage, truncated, huge
# and adversarial folded files (one FILE:LINE error line, bounded time and memory).
#
# "Samples lost" is measured in every recording as the difference between the samples the
# session counted (the `# samples:` metadata) and the sum of the counts written in the file;
# it must be 0. For steady targets sampled with --idle the ticks are accounted for as well:
# ticks x threads = samples + dropped (by reason).
# shellcheck disable=SC2317  # helpers are called through poll_until
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "faults ($PYSAMPLE)"
ps_require_pysample

PY3=$(ps_python3) || { ps_fail "a Python 3 to generate and check files with" "none found"; ps_finish; }
FAULTS=faults.py
UNICODE_NAME=$'\xc3\xbcnicode_func'
FFFD=$'\xef\xbf\xbd'
RECORD_SECONDS=${PS_FAULT_SECONDS:-1.5}
mapfile -t PYTHONS < <(ps_find_pythons)
if ((${#PYTHONS[@]} == 0)); then
    ps_fail "find CPython interpreters" "ps_find_pythons found none"
    ps_finish
fi

# ---- helpers --------------------------------------------------------------------------------


meta() { # meta FILE KEY: value of "# KEY=VALUE" (quotes removed)
    sed -n "s/^# $2=//p" "$1" 2>/dev/null | head -n 1 | sed 's/^"\(.*\)"$/\1/'
}

drop_of() { # drop_of FILE REASON: N from "# dropped: ...,REASON=N,..."
    meta "$1" dropped | tr ',' '\n' | sed -n "s/^$2=//p"
}

count_sum() { # count_sum FILE: sum of the counts of every stack line
    grep -v '^#' "$1" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'
}

# check_folded LABEL FILE: a complete folded file: first line "# pysample: ", a "# dropped:"
# line with every reason, only "STACK COUNT" lines after the metadata, no sample lost (the sum
# of the counts equals "# samples:"), and `pysample report` reads it.
check_folded() {
    local label=$1 f=$2 samples sum bad
    if [[ ! -s $f ]]; then
        ps_fail "$label: output file written" "$f is missing or empty"
        return 0
    fi
    ps_assert_match "$label: file starts with '# pysample='" '^# pysample=' "$(head -n 1 "$f")"
    ps_assert_match "$label: dropped samples counted in the metadata" \
        '^torn=[0-9]+,vanished=[0-9]+,read=[0-9]+,corrupt=[0-9]+,depth=[0-9]+,process=[0-9]+$' \
        "$(meta "$f" dropped)"
    bad=$(grep -v '^#' "$f" | grep -cvE '^.* [0-9]+$' || true)
    ps_assert_eq "$label: every stack line ends in a count" 0 "$bad"
    samples=$(meta "$f" samples)
    sum=$(count_sum "$f")
    ps_assert_eq "$label: samples lost (counted - written)" 0 "$((${samples:-0} - sum))" \
        "# samples=${samples:-missing}, sum of counts: $sum"
    ps_run "$PYSAMPLE" report "$f"
    ps_assert_status "$label: pysample report reads the file" 0
}

# frames_of FILE: every distinct frame of the recording, one per line.
frames_of() {
    grep -v '^#' "$1" | sed 's/ [0-9]*$//' | tr ';' '\n' | sort -u
}

# has_frame LABEL FILE ERE: some frame of FILE matches ERE exactly.
has_frame() {
    # (no grep -q: with pipefail, a reader that stops early fails the pipeline)
    if frames_of "$2" | grep -xE -- "$3" >/dev/null; then
        ps_pass "$1"
    else
        ps_fail "$1" "no frame matches: $3" "frames: $(frames_of "$2" | cut -c1-120 | head -40)"
    fi
}

py_version() { ps_python_version "$1" 2>/dev/null || echo "?"; }

# at_least MAJOR MINOR VERSION: VERSION (X.Y.Z) >= MAJOR.MINOR
at_least() {
    local ma mi
    IFS=. read -r ma mi _ <<<"$3"
    ((ma > $1 || (ma == $1 && mi >= $2)))
}

# ---- 1. deleted libpython / executable: found through /proc/PID/map_files -------------------

L_MAIN_BLOCK=$(ps_fixture_line two_threads.py main_block)
L_MAIN_CALL=$(ps_fixture_line two_threads.py main_call)
expected_main=$(printf '%s (two_threads.py:%s)\n<module> (two_threads.py:%s)' \
    "$UNICODE_NAME" "$L_MAIN_BLOCK" "$L_MAIN_CALL")

# dump_deleted LABEL WRAPPER FILE: start two_threads.py through WRAPPER (a script that runs the
# interpreter from copies), delete FILE (the copy of libpython or of the executable) once the
# fixture is ready, check the maps say "(deleted)", then dump and record it.
dump_deleted() {
    local label=$1 wrapper=$2 file=$3 pid
    PS_FIXTURE_CWD=$PS_FIXTURES
    ps_start_fixture "$wrapper" two_threads.py || return 0
    pid=$PS_FIXTURE_PID
    rm -f "$file"
    if [[ -e $file ]] || ! grep -qF -- "$file (deleted)" "/proc/$pid/maps"; then
        ps_fail "$label: the interpreter runs from a deleted file" \
            "no mapping of '$file (deleted)'" "$(grep -E 'python|\.so' "/proc/$pid/maps" | head -5)"
        ps_stop "$pid"
        return 0
    fi
    ps_pass "$label: the interpreter runs from a deleted file"
    ps_run "$PYSAMPLE" dump "$pid"
    ps_assert_status "$label: dump exits 0" 0
    ps_assert_eq "$label: main thread frames" "$expected_main" \
        "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" "$(ps_run_context)"
    ps_run "$PYSAMPLE" record -p "$pid" --idle -d 0.3 -r 200 -o "$PS_TMP/deleted.folded"
    ps_assert_status "$label: record exits 0" 0
    has_frame "$label: record sees the main thread's frame" "$PS_TMP/deleted.folded" \
        "$UNICODE_NAME \\(two_threads\\.py:$L_MAIN_BLOCK\\)"
    ps_assert_running "$label: target still running" "$pid"
    ps_stop "$pid"
}

n_shared=0
for py in "${PYTHONS[@]}"; do
    # A chroot interpreter already runs from another root (section 2's case, covered by every
    # suite); the copies made here are for interpreters of this root.
    ps_python_in_chroot "$py" && continue
    lib=$(readelf -d "$py" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(libpython[^]]*\)\].*/\1/p' | head -n 1)
    [[ -n $lib ]] || continue
    libpath=$(readlink -f "$(dirname "$(readlink -f "$py")")/../lib/$lib") || true
    if [[ ! -f $libpath ]]; then
        ps_fail "[$py] find its $lib" "not at $libpath"
        continue
    fi
    n_shared=$((n_shared + 1))
    d=$(mktemp -d "$PS_TMP/dellib.XXXXXX")
    cp "$libpath" "$d/$lib"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$d" "$py" >"$d/run.sh"
    chmod +x "$d/run.sh"
    dump_deleted "[$(py_version "$py") deleted $lib]" "$d/run.sh" "$d/$lib"
done
if ((n_shared == 0)); then
    echo "skip deleted libpython (no interpreter with a shared libpython found)"
fi

if [[ -x /usr/bin/python3.11 ]] && ! readelf -d /usr/bin/python3.11 | grep 'NEEDED.*libpython' >/dev/null; then
    d=$(mktemp -d "$PS_TMP/delexe.XXXXXX")
    cp /usr/bin/python3.11 "$d/python3.11-copy"
    printf '#!/bin/sh\nexec %q "$@"\n' "$d/python3.11-copy" >"$d/run.sh"
    chmod +x "$d/run.sh"
    dump_deleted "[3.11 deleted executable]" "$d/run.sh" "$d/python3.11-copy"
else
    echo "skip deleted executable (no /usr/bin/python3.11 with a static libpython)"
fi

# ---- 2. another mount namespace: the path in the maps does not exist here --------------------

if [[ $(id -u) != 0 ]]; then
    echo "skip mount namespace (needs root to unshare -m and mount)"
elif ! unshare -m true 2>/dev/null; then
    echo "skip mount namespace (unshare -m is not permitted here)"
else
    for py in /usr/bin/python3.11 "${PYTHONS[@]}"; do
        [[ -x $py ]] || continue
        ps_python_in_chroot "$py" && continue
        d=$(mktemp -d "$PS_TMP/mntns.XXXXXX")
        mkdir "$d/mnt"
        # In its own mount namespace the fixture runs from a tmpfs over $d/mnt holding a copy of
        # the interpreter (and of libpython, if it has one); here $d/mnt stays empty.
        lib=$(readelf -d "$py" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(libpython[^]]*\)\].*/\1/p' | head -n 1)
        real=$(readlink -f "$py")
        libsrc=
        [[ -n $lib ]] && libsrc=$(readlink -f "$(dirname "$real")/../lib/$lib")
        {
            echo '#!/bin/sh'
            printf 'mount -t tmpfs pysample-test %q || exit 1\n' "$d/mnt"
            printf 'cp %q %q || exit 1\n' "$real" "$d/mnt/python"
            [[ -n $libsrc ]] && printf 'cp %q %q || exit 1\n' "$libsrc" "$d/mnt/$lib"
            printf 'LD_LIBRARY_PATH=%q PYTHONHOME=%q exec %q "$@"\n' "$d/mnt" \
                "$(dirname "$(dirname "$real")")" "$d/mnt/python"
        } >"$d/inner.sh"
        printf '#!/bin/sh\nexec unshare -m --propagation private %q "$@"\n' "$d/inner.sh" >"$d/run.sh"
        chmod +x "$d/inner.sh"
        chmod +x "$d/run.sh"
        label="[$(py_version "$py") other mount namespace]"
        PS_FIXTURE_CWD=$PS_FIXTURES
        if ps_start_fixture "$d/run.sh" two_threads.py; then
            pid=$PS_FIXTURE_PID
            if [[ -e $d/mnt/python ]] || ! grep -q "$d/mnt/python" "/proc/$pid/maps"; then
                ps_fail "$label: the interpreter's path exists only in the target's namespace" \
                    "$(grep -E "$d" "/proc/$pid/maps" | head -3)"
            else
                ps_pass "$label: the interpreter's path exists only in the target's namespace"
                ps_run "$PYSAMPLE" dump "$pid"
                ps_assert_status "$label: dump exits 0" 0
                ps_assert_eq "$label: main thread frames" "$expected_main" \
                    "$(ps_thread_frames "$PS_OUT_FILE" "$pid")" "$(ps_run_context)"
                ps_assert_running "$label: target still running" "$pid"
            fi
            ps_stop "$pid"
        fi
        # Two interpreters are enough: a static one and a shared-libpython one.
        [[ -n $lib ]] && break
    done
fi

# ---- 3. unprivileged user: record and attach refused with the CAP_SYS_PTRACE hint ------------
# (dump as nobody is in test_errors.sh)

if [[ $(id -u) != 0 ]]; then
    echo "skip permission denied (needs root to start a target nobody cannot read)"
elif ! command -v setpriv >/dev/null; then
    echo "skip permission denied (setpriv not installed: util-linux)"
else
    PS_FIXTURE_CWD=$PS_FIXTURES
    if ps_start_fixture "$PY3" two_threads.py; then
        pid=$PS_FIXTURE_PID
        chmod 711 "$PS_TMP"
        pub=$(mktemp -d "$PS_TMP/nobody.XXXXXX")
        chmod 777 "$pub"
        for cmd in record attach; do
            if [[ $cmd == record ]]; then
                ps_run setpriv --reuid=65534 --regid=65534 --clear-groups -- \
                    "$PYSAMPLE" record -p "$pid" -d 1 -o "$pub/x.folded"
            else
                ps_run setpriv --reuid=65534 --regid=65534 --clear-groups -- \
                    "$PYSAMPLE" attach -d 1 "$pid"
            fi
            ps_assert_status "$cmd as nobody: exit 2" 2
            ps_assert_eq "$cmd as nobody: one line on stderr" 1 "$(grep -c '' "$PS_ERR_FILE")" "$(ps_run_context)"
            ps_assert_match "$cmd as nobody: permission denied, with the CAP_SYS_PTRACE hint" \
                '^pysample: .*permission denied.*CAP_SYS_PTRACE' "$PS_ERR"
            ps_assert_eq "$cmd as nobody: nothing on stdout" "" "$PS_OUT"
        done
        ps_assert_true "record as nobody: no output file" "$(ls -la "$pub")" test ! -e "$pub/x.folded"
        ps_assert_running "as nobody: target still running" "$pid"
        ps_stop "$pid"
    fi
fi

# ---- 4. the target is killed mid-session and its PID taken by a new process -----------------

replace_pid() {
    local out=$PS_TMP/replace.folded facts=$PS_TMP/replace.facts ctl=$PS_TMP/replace.sh
    # Runs as PID 1 of a fresh PID namespace, where nothing else takes PIDs: A (cpu_split.py)
    # is recorded at 1 kHz; once 50 samples are in, A is killed and reaped, ns_last_pid is set
    # so that B (faults.py impostor) gets A's PID, and the recording must end on its own with
    # A's samples and nothing of B's. In odd rounds the recorder is stopped (SIGSTOP) from
    # before A dies until B runs, so that it resumes with B already at A's PID.
    cat >"$ctl" <<'EOF'
set -u
py=$1 pysample=$2 fixtures=$3 dir=$4 out=$5 rounds=$6
pause() { timeout 0.05 tail -f /dev/null || true; }
cd "$fixtures" || exit 1
for ((r = 1; r <= rounds; r++)); do
    rm -f "$dir/a.ready" "$dir/b.ready" "$dir/rec.err"
    mkfifo "$dir/a.ready" "$dir/b.ready"
    exec 3<>"$dir/a.ready" 4<>"$dir/b.ready"
    "$py" cpu_split.py "$dir/a.ready" >/dev/null 2>&1 &
    a=$!
    read -r -t 30 -u 3 line || { echo "round $r: A not ready"; exit 1; }
    "$pysample" record --progress -p "$a" -r 1000 -d 60 -o "$out.$r" 2>"$dir/rec.err" &
    rec=$!
    for ((i = 0; i < 600; i++)); do
        n=$(grep -oE '[0-9]+ samples' "$dir/rec.err" 2>/dev/null | tail -n 1 | cut -d' ' -f1)
        [[ -n $n && $n -ge 50 ]] && break
        pause
    done
    # Odd rounds: the recorder is stopped across the switch, so its next walk certainly reads
    # the new process at the old PID (at the very same addresses for a non-PIE interpreter).
    ((r % 2)) && kill -STOP "$rec"
    kill -9 "$a"
    wait "$a" 2>/dev/null
    # The recorder ending at this moment may take a PID for a moment (a sanitizer's helper
    # task): then B is started again.
    for ((t = 0; t < 5; t++)); do
        echo $((a - 1)) >/proc/sys/kernel/ns_last_pid
        "$py" faults.py "$dir/b.ready" impostor >/dev/null 2>&1 &
        b=$!
        [[ $b == "$a" ]] && break
        kill -9 "$b"
        wait "$b" 2>/dev/null
    done
    read -r -t 30 -u 4 line || echo "round $r: B not ready"
    ((r % 2)) && kill -CONT "$rec"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$rec" 2>/dev/null || break
        pause
    done
    b_alive=0
    kill -0 "$b" 2>/dev/null && b_alive=1
    if kill -0 "$rec" 2>/dev/null; then
        kill -9 "$rec"
        rc=timeout
        wait "$rec" 2>/dev/null
    else
        wait "$rec"
        rc=$?
    fi
    echo "round $r a=$a b=$b rc=$rc b_alive_after=$b_alive"
    kill -9 "$b"
    wait "$b" 2>/dev/null
    exec 3>&- 4>&-
done
EOF
    [[ -z $REPLACE_SKIP ]] || return 0
    local py=$1 rounds=$2 label r line a b rc alive
    label="[$(py_version "$py") PID replaced]"
    timeout -k 5 $((PS_TIMEOUT * 4)) unshare --pid --fork --kill-child --mount-proc \
        bash "$ctl" "$py" "$PYSAMPLE" "$PS_FIXTURES" "$PS_TMP" "$out" "$rounds" >"$facts" 2>&1 || true
    for ((r = 1; r <= rounds; r++)); do
        line=$(grep "^round $r " "$facts" || true)
        if [[ ! $line =~ a=([0-9]+)\ b=([0-9]+)\ rc=([0-9a-z]+)\ b_alive_after=([01]) ]]; then
            ps_fail "$label round $r ran" "$(cat "$facts")"
            continue
        fi
        a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]} rc=${BASH_REMATCH[3]} alive=${BASH_REMATCH[4]}
        ps_assert_eq "$label round $r: the new process got the old PID" "$a" "$b"
        ps_assert_eq "$label round $r: record ends when its target dies, exit 0" 0 "$rc"
        ps_assert_eq "$label round $r: the new process was still running when it ended" 1 "$alive"
        check_folded "$label round $r" "$out.$r"
        ps_assert_eq "$label round $r: the target's exit counted once (dropped process=1)" 1 \
            "$(drop_of "$out.$r" process)"
        has_frame "$label round $r: the old process's samples kept" "$out.$r" 'unit \(cpu_split\.py:[0-9]+\)'
        ps_assert_eq "$label round $r: none of the new process's frames" "" \
            "$(frames_of "$out.$r" | grep -E 'impostor|faults\.py' || true)"
    done
}

REPLACE_SKIP=
if [[ $(id -u) != 0 ]]; then
    REPLACE_SKIP="needs root for a PID namespace and ns_last_pid"
elif ! unshare --pid --fork --kill-child --mount-proc true 2>/dev/null; then
    REPLACE_SKIP="unshare --pid --fork --mount-proc is not permitted here"
fi
[[ -z $REPLACE_SKIP ]] || echo "skip PID replacement ($REPLACE_SKIP)"
# Every layout once, and three times in a row with one interpreter.
replace_pid "$PY3" 3
for py in "${PYTHONS[@]}"; do
    [[ $(readlink -f "$py") == $(readlink -f "$PY3") ]] || replace_pid "$py" 1
done

# ---- 5. hard targets under every CPython: churn, depth, names, asyncio ----------------------

# record_mode PY MODE: start faults.py MODE, record it, check the file; sets OUT and VER.
record_mode() {
    local py=$1 mode=$2 label pid
    VER=$(py_version "$py")
    label="[$VER $mode]"
    OUT=$PS_TMP/$mode-$VER.folded
    PS_FIXTURE_CWD=$PS_FIXTURES
    ps_start_fixture "$py" "$FAULTS" "$mode" || { OUT=; return 0; }
    pid=$PS_FIXTURE_PID
    ps_run "$PYSAMPLE" record -p "$pid" -d "$RECORD_SECONDS" -r 200 -o "$OUT"
    if [[ $PS_RC == 0 || $PS_RC == 1 ]]; then
        ps_pass "$label: record exits 0 or 1 (got $PS_RC)"
    else
        ps_fail "$label: record exits 0 or 1" "$(ps_run_context)"
    fi
    RECORD_RC=$PS_RC
    check_folded "$label" "$OUT"
    ps_assert_running "$label: target still running, no thread stopped" "$pid"
    ps_stop "$pid"
}

for py in "${PYTHONS[@]}"; do
    # thread churn
    record_mode "$py" threads
    if [[ -n $OUT ]]; then
        rate=${PS_FIXTURE_READY##*threads_per_s=}
        ps_assert_true "[$VER threads] the fixture churns threads ($rate per second)" \
            "fewer than 200 threads per second" test "${rate:-0}" -ge 200
        ps_assert_true "[$VER threads] samples recorded" "$(head -20 "$OUT")" \
            test "$(count_sum "$OUT")" -gt 0
    fi

    # code-object churn: every generated function keeps its own file (no stale cache entry)
    record_mode "$py" code
    if [[ -n $OUT ]]; then
        has_frame "[$VER code] freshly compiled functions sampled" "$OUT" 'gen_func_[0-9]+ \(<gen-[0-9]+>:[0-9]+\)'
        mism=$(frames_of "$OUT" | sed -nE 's/^gen_func_([0-9]+) \(<gen-([0-9]+)>:[0-9]+\)$/\1 \2/p' |
            awk '$1 != $2' | head -5)
        ps_assert_eq "[$VER code] no generated function shown with another one's file" "" "$mism"
        mism=$(frames_of "$OUT" | grep -E '^churnmod_func ' | grep -vE '\(.*churnmod\.py:[0-9]+\)$' || true)
        ps_assert_eq "[$VER code] reloaded module's function keeps its file" "" "$mism"
    fi

    # 5000-deep recursion: deeper than 4096 frames, counted as truncated (not dropped), cut
    record_mode "$py" deep
    if [[ -n $OUT ]]; then
        ps_assert_true "[$VER deep] truncated samples counted ($(meta "$OUT" truncated))" \
            "$(grep '^# ' "$OUT" | head -20)" test "$(meta "$OUT" truncated)" -gt 0
        ps_assert_eq "[$VER deep] truncated samples are not drops" 0 "$(drop_of "$OUT" depth)"
        maxdepth=$(grep -v '^#' "$OUT" | awk -F';' '{ if (NF > m) m = NF } END { print m + 0 }')
        ps_assert_eq "[$VER deep] the deepest stack kept has 4096 frames" 4096 "$maxdepth"
        leaf=$(awk -F';' '!/^#/ && NF == 4096 { print $(NF-1) ";" $NF; exit }' "$OUT" |
            sed -E 's/ [0-9]+$//; s/ \([^;]*\)//g')
        ps_assert_match "[$VER deep] the innermost frames are kept (outer ones cut)" \
            '^(deep_bottom;busy|recurse;deep_bottom)$' "$leaf"
    fi

    # 100 KB and non-UTF-8 names
    record_mode "$py" names
    if [[ -n $OUT ]]; then
        ps_assert_eq "[$VER names] exit 0 (no frame refused)" 0 "$RECORD_RC"
        has_frame "[$VER names] a 100 000-character name is cut to 1024 and '...'" "$OUT" \
            "$(printf 'h%.0s' {1..1024})\\.\\.\\. \\(/srv/app/huge_name\\.py:2\\)"
        has_frame "[$VER names] a 100 000-character file name is cut to 4096 and '...'" "$OUT" \
            "longfile_func \\(/srv/$(printf 'd%.0s' {1..4091})\\.\\.\\.:2\\)"
        has_frame "[$VER names] a non-UTF-8 file name byte becomes U+FFFD" "$OUT" \
            "badfile_func \\(/srv/app/caf$FFFD\\.py:2\\)"
        if at_least 3 8 "$VER"; then
            has_frame "[$VER names] a non-UTF-8 function name becomes U+FFFD" "$OUT" \
                "badname_$FFFD \\(/srv/app/badname\\.py:2\\)"
        fi
    fi

    # asyncio tasks and nested generators
    record_mode "$py" async
    if [[ -n $OUT ]]; then
        has_frame "[$VER async] nested generator frames" "$OUT" 'gen_inner \(faults\.py:[0-9]+\)'
        if at_least 3 5 "$VER"; then
            has_frame "[$VER async] coroutine frames" "$OUT" 'leaf_coro \(faults_async\.py:[0-9]+\)'
        fi
    fi
done

# ---- 6. signals: every output written; SIGPIPE quiet; the target never left stopped ---------

L_WORKER_SLEEP=$(ps_fixture_line two_threads.py worker_sleep)
PS_FIXTURE_CWD=$PS_FIXTURES
if ps_start_fixture "$PY3" two_threads.py && ps_wait_blocked "$PS_FIXTURE_PID"; then
    pid=$PS_FIXTURE_PID
    for sig in INT TERM HUP; do
        out=$PS_TMP/sig-$sig.folded
        "$PYSAMPLE" record --progress --idle -r 200 -p "$pid" -o "$out" -f folded,table \
            >/dev/null 2>"$PS_TMP/sig.err" &
        rpid=$!
        PS_PIDS+=("$rpid")
        if ! poll_until progress_at_least "$PS_TMP/sig.err" 20; then
            ps_fail "SIG$sig: record starts sampling" "$(cat "$PS_TMP/sig.err")"
            ps_stop "$rpid"
            continue
        fi
        kill -"$sig" "$rpid"
        wait_exit "$rpid" || ps_stop "$rpid"
        ps_assert_eq "SIG$sig: record exits 0" 0 "$WAIT_RC" "$(cat "$PS_TMP/sig.err")"
        check_folded "SIG$sig" "$out"
        ps_assert_true "SIG$sig: the table is written too" "$(ls -la "$PS_TMP")" \
            grep -q '^Sample count: ' "${out%.folded}.txt"
        # Two threads, both with Python frames, every tick: all of it accounted for.
        ticks=$(meta "$out" ticks)
        accounted=$(($(meta "$out" samples) + $(drop_of "$out" torn) + $(drop_of "$out" vanished) +
            $(drop_of "$out" read) + $(drop_of "$out" corrupt)))
        ps_assert_eq "SIG$sig: ticks x 2 threads = samples + dropped" "$((ticks * 2))" "$accounted" \
            "$(grep '^#' "$out")"
        has_frame "SIG$sig: the worker's frame" "$out" "sleep_forever \\(two_threads\\.py:$L_WORKER_SLEEP\\)"
        ps_assert_eq "SIG$sig: no error on stderr" "" \
            "$(grep -vE '^pysample: ([0-9.]+s, [0-9]+ samples|wrote )' "$PS_TMP/sig.err" || true)"
        ps_assert_running "SIG$sig: target left running, no thread stopped" "$pid"
    done

    # SIGPIPE: the reader of standard output goes away.
    set +e
    "$PYSAMPLE" dump "$pid" 2>"$PS_TMP/pipe.err" | head -n 1 >"$PS_TMP/pipe.out"
    st=${PIPESTATUS[0]}
    set -e
    ps_assert_eq "dump | head -1: the first line" "Process $pid: $PS_FIXTURE_CMD" "$(cat "$PS_TMP/pipe.out")"
    ps_assert_match "dump | head -1: exit 0, or 1 when the pipe closed first (got $st)" '^[01]$' "$st"
    ps_assert_eq "dump | head -1: nothing on stderr" "" "$(cat "$PS_TMP/pipe.err")"
    # Deterministic: standard output is a pipe whose reader is already closed.
    cat >"$PS_TMP/closed_stdout.py" <<'EOF'
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
p = subprocess.Popen(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)
os.close(w)
err = p.communicate(timeout=120)[1]
sys.stderr.write(err.decode("utf-8", "replace"))
sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)
EOF
    ps_run "$PY3" "$PS_TMP/closed_stdout.py" "$PYSAMPLE" dump "$pid"
    ps_assert_status "dump into a closed pipe: exit 1 (documented: stdout closed early)" 1
    ps_assert_eq "dump into a closed pipe: nothing on stderr" "" "$PS_ERR"
    ps_run "$PY3" "$PS_TMP/closed_stdout.py" "$PYSAMPLE" attach -d 0.3 "$pid"
    ps_assert_status "attach into a closed pipe: exit 1" 1
    ps_assert_eq "attach into a closed pipe: nothing on stderr" "" "$PS_ERR"
    ps_assert_running "after SIGPIPE: target left running" "$pid"

    # ---- 7. outputs ---------------------------------------------------------------------------
    ps_run "$PYSAMPLE" record -p "$pid" -d 0.3 -o /dev/full
    ps_assert_status "record -o /dev/full: exit 2" 2
    ps_assert_eq "record -o /dev/full: one line, saying the write failed" \
        "pysample: record: cannot write /dev/full: No space left on device" "$PS_ERR"

    ps_run "$PYSAMPLE" record -p "$pid" -d 0.3 -o /proc/pysample-test.folded
    ps_assert_status "record -o /proc/x (cannot be created): exit 2" 2
    ps_assert_eq "record -o /proc/x: one line" 1 "$(grep -c '' "$PS_ERR_FILE")"
    ps_assert_match "record -o /proc/x: names the path" '^pysample: record: cannot write /proc/pysample-test\.folded' "$PS_ERR"

    # The directory disappears during the recording: the samples cannot be written there, the
    # message says so (exit 2) and where they went instead (the working directory).
    gone=$(mktemp -d "$PS_TMP/gone.XXXXXX")
    gcwd=$(mktemp -d "$PS_TMP/gonecwd.XXXXXX")
    (cd "$gcwd" && exec "$PYSAMPLE" record --progress --idle -r 200 -p "$pid" -o "$gone/x.folded") \
        >/dev/null 2>"$PS_TMP/gone.err" &
    rpid=$!
    PS_PIDS+=("$rpid")
    if poll_until progress_at_least "$PS_TMP/gone.err" 10; then
        rm -rf "$gone"
        kill -TERM "$rpid"
        wait_exit "$rpid" || ps_stop "$rpid"
        ps_assert_eq "output directory removed while recording: exit 2" 2 "$WAIT_RC"
        ps_assert_match "output directory removed while recording: one line saying the write failed, and where the samples went" \
            "^pysample: record: cannot write $gone/x\\.folded: No such file or directory; wrote $gcwd/x\\.folded instead \\([1-9][0-9]* samples\\)\$" \
            "$(grep -vE '^pysample: [0-9.]+s, [0-9]+ samples' "$PS_TMP/gone.err")"
        ps_assert_true "output directory removed while recording: the samples are kept" "no $gcwd/x.folded" \
            grep -q ' [0-9][0-9]*$' "$gcwd/x.folded"
    else
        ps_fail "record into a directory to be removed starts" "$(cat "$PS_TMP/gone.err")"
        ps_stop "$rpid"
    fi

    # An existing file is replaced atomically: new inode, mode kept, a reader holding the old
    # file still reads the old content, no temporary file left behind.
    adir=$(mktemp -d "$PS_TMP/atomic.XXXXXX")
    printf 'old content\n' >"$adir/prof.folded"
    chmod 640 "$adir/prof.folded"
    ino_old=$(stat -c %i "$adir/prof.folded")
    exec {oldfd}<"$adir/prof.folded"
    ps_run "$PYSAMPLE" record -p "$pid" --idle -d 0.3 -r 200 -o "$adir/prof.folded"
    ps_assert_status "record over an existing file: exit 0" 0
    ps_assert_true "record over an existing file: a new inode" "inode stayed $ino_old" \
        test "$(stat -c %i "$adir/prof.folded")" != "$ino_old"
    ps_assert_eq "record over an existing file: mode kept" 640 "$(stat -c %a "$adir/prof.folded")"
    ps_assert_eq "a reader holding the old file still reads the old content" "old content" "$(cat <&"$oldfd")"
    exec {oldfd}<&-
    check_folded "record over an existing file" "$adir/prof.folded"
    ps_assert_eq "record over an existing file: no temporary file left" "prof.folded" "$(ls -A "$adir")"
    ps_assert_running "after the output tests: target left running" "$pid"
    ps_stop "$pid"
fi

# ---- 8. report on hostile files -------------------------------------------------------------

RD=$PS_TMP/report
mkdir -p "$RD"
"$PY3" - "$RD" <<'EOF'
import os, random, sys
d = sys.argv[1]
def w(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
r = random.Random(1)
w("garbage.bin", bytes(r.getrandbits(8) for _ in range(1 << 20)))
w("no_count.folded", b"a (x.py:1);b (x.py:2) 3\na;b\n")
w("negative.folded", b"a;b 3\na;c -5\n")
w("overflow.folded", b"a;b 3\na;c 99999999999999999999999\n")
w("sum_overflow.folded", b"a;b 18446744073709551615\na;c 1\n")
w("nul.folded", b"a;b 3\na;\x00c 5\n")
w("long_line.folded", b"a;b 1\n" + b"x" * (1 << 20) + b"\n")
w("long_frame_ok.folded", b"a;" + b"y" * (1 << 20) + b" 7\n")
# a recording cut in the middle of its last line
lines = [b"# pysample: 0.1.0", b"# rate: 100"] + [b"main (app.py:1);f%d (app.py:%d) %d" % (i, i, i + 1) for i in range(100)]
text = b"\n".join(lines) + b"\n"
w("truncated.folded", text[: len(text) - 5])  # the last line loses " 100\n"
# 100+ MiB: a valid file (1000 stacks repeated), and the same with a bad line at the end
block = b"".join(b"main (app.py:1);work_%d (app.py:%d);leaf (lib/x.py:%d) %d\n" % (i, i, i % 13, i + 1) for i in range(1000))
reps = (100 << 20) // len(block) + 1
with open(os.path.join(d, "huge.folded"), "wb") as f:
    f.write(b"# pysample: 0.1.0\n# rate: 100\n")
    for _ in range(reps):
        f.write(block)
with open(os.path.join(d, "huge.facts"), "w") as f:
    f.write("%d %d\n" % (reps * sum(range(1, 1001)), 2 + reps * 1000))
# 100 MiB of one line without a newline
with open(os.path.join(d, "one_line.bin"), "wb") as f:
    chunk = b"z" * (1 << 20)
    for _ in range(100):
        f.write(chunk)
EOF
cp "$RD/huge.folded" "$RD/huge_bad.folded"
printf 'main;oops\n' >>"$RD/huge_bad.folded"
read -r huge_total huge_lines <"$RD/huge.facts"

# bad_report LABEL FILE LINE WHY: `report FILE` fails with exactly "pysample: FILE:LINE: WHY",
# exit 2, within bounded time and memory (check_cost).
bad_report() {
    local label=$1 f=$RD/$2 line=$3 why=$4
    ps_run /usr/bin/time -f '%M %e' -o "$RD/time" "$PYSAMPLE" report "$f"
    ps_assert_status "report $label: exit 2" 2
    ps_assert_eq "report $label: one error line with FILE:LINE" "pysample: $f:$line: $why" \
        "$(grep -v '^Command exited' "$PS_ERR_FILE")"
    ps_assert_eq "report $label: nothing on stdout" "" "$PS_OUT"
    check_cost "report $label"
}
# check_cost LABEL: the last ps_run under /usr/bin/time took < 60 s and < 200 MB (400 MB for a
# sanitized build: ASan keeps freed blocks in quarantine and adds its shadow memory).
check_cost() {
    local kb secs mb=200
    [[ -z ${PS_SANITIZED:-} ]] || mb=400
    read -r kb secs < <(tail -n 1 "$RD/time") || true
    ps_assert_true "$1: under $mb MB (${kb:-?} KB)" "max RSS ${kb:-?} KB" test "${kb:-999999999}" -lt $((mb * 1024))
    ps_assert_true "$1: under 60 s (${secs:-?} s)" "took ${secs:-?} s" \
        "$PY3" -c 'import sys; sys.exit(not float(sys.argv[1]) < 60)' "${secs:-999}"
}
if [[ ! -x /usr/bin/time ]]; then
    ps_fail "/usr/bin/time is installed (Debian package time)" "needed to measure memory"
else
    bad_report "garbage (binary)" garbage.bin 1 "NUL byte in line"
    bad_report "a line without a count" no_count.folded 2 "missing sample count"
    bad_report "a negative count" negative.folded 2 "negative sample count"
    bad_report "an overflowing count" overflow.folded 2 "sample count too large"
    bad_report "counts whose sum overflows" sum_overflow.folded 2 "sample counts overflow the total"
    bad_report "a NUL byte" nul.folded 2 "NUL byte in line"
    bad_report "a 1 MB line without a count" long_line.folded 2 "missing sample count"
    bad_report "a truncated recording" truncated.folded 102 "sample count is not a non-negative integer"
    bad_report "100 MB on one line" one_line.bin 1 "line longer than 64 MiB"
    bad_report "100 MB with a bad last line" huge_bad.folded "$((huge_lines + 1))" "missing sample count"

    ps_run /usr/bin/time -f '%M %e' -o "$RD/time" "$PYSAMPLE" report -f folded "$RD/long_frame_ok.folded"
    ps_assert_status "report of a 1 MB frame with a count: exit 0" 0
    ps_assert_eq "report of a 1 MB frame with a count: written back whole" \
        "$(grep -v '^#' "$RD/long_frame_ok.folded" | md5sum)" "$(grep -v '^#' "$PS_OUT_FILE" | md5sum)"

    ps_run "$PYSAMPLE" report -f folded -o /dev/full "$RD/long_frame_ok.folded"
    ps_assert_status "report -o /dev/full: exit 2" 2
    ps_assert_eq "report -o /dev/full: one line, saying the write failed" \
        "pysample: cannot write /dev/full: No space left on device" "$PS_ERR"

    ps_run /usr/bin/time -f '%M %e' -o "$RD/time" "$PYSAMPLE" report "$RD/huge.folded"
    ps_assert_status "report of 100 MB: exit 0" 0
    ps_assert_match "report of 100 MB: every sample counted" "Sample count: $huge_total" "$PS_OUT"
    check_cost "report of 100 MB"

    # SIGPIPE: report | head -1 on a table far longer than a pipe holds
    "$PY3" -c 'import sys
with open(sys.argv[1], "w") as f:
    for i in range(200000):
        f.write("main (app.py:1);func_%d (mod_%d.py:%d) %d\n" % (i, i % 100, i % 1000 + 1, i % 7 + 1))' "$RD/wide.folded"
    set +e
    "$PYSAMPLE" report "$RD/wide.folded" 2>"$PS_TMP/pipe.err" | head -n 1 >"$PS_TMP/pipe.out"
    st=${PIPESTATUS[0]}
    set -e
    ps_assert_match "report | head -1: the first line of the table" '^  %   cumulative      self' \
        "$(cat "$PS_TMP/pipe.out")"
    ps_assert_eq "report | head -1: exit 1 (documented: standard output closed early)" 1 "$st"
    ps_assert_eq "report | head -1: nothing on stderr" "" "$(cat "$PS_TMP/pipe.err")"
fi

ps_finish
