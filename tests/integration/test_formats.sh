#!/usr/bin/env bash
# test_formats.sh -- every output format opened by its real client: `record -f LIST` of
# fixtures/cpu_split.py, then the SVG flame graph and speedscope JSON in headless Chromium
# (playwright-core from tests/install_clients.sh's npm cache, Debian's chromium), the folded
# file in speedscope and flamegraph.pl, pprof in `go tool pprof`, callgrind in
# callgrind_annotate, pstats in pstats on every interpreter found. Each client must show the
# fixture's functions with the file:line and the sample counts the folded file says. Also:
# `report` converts, hostile names, unknown formats, files at different rates, output-path
# errors before sampling and the fallback after a late write failure, invalid UTF-8.
# A client that cannot run is a failure, not a skip.
#
# PS_SCREENSHOT_DIR: when set, the flame graph screenshot is copied there (man/ uses one).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ps_tests_begin "formats ($PYSAMPLE)"
ps_require_pysample

NPM_PREFIX=${PS_NPM_PREFIX:-/var/cache/pysample/npm}
export NODE_PATH=$NPM_PREFIX/node_modules
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SPEEDSCOPE=$NODE_PATH/speedscope/dist/release
FLAMEGRAPH=${FLAMEGRAPH:-/usr/share/perl5/Devel/NYTProf/flamegraph.pl}
BROWSER=$PS_ROOT/tests/integration/formats_browser.js
STATS=$PS_ROOT/tests/integration/folded_stats.py
# go tool pprof offline, with its caches in the test's directory.
export HOME=$PS_TMP/home GOCACHE=$PS_TMP/gocache GOPATH=$PS_TMP/gopath GOFLAGS=-mod=mod \
    GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off
mkdir -p "$HOME"
FIXTURE=cpu_split.py
PY3=$(ps_python3) || PY3=

# ---- the clients are there --------------------------------------------------------------------
need() { # need NAME CMD...: the client runs (a failure, not a skip, when it does not)
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        ps_pass "client available: $name"
        return 0
    fi
    ps_fail "client available: $name" "'$*' failed — run 'make check' (installs Debian packages and tests/install_clients.sh)"
    return 1
}
ok=1
need chromium "$CHROMIUM" --version || ok=0
need node node --version || ok=0
need playwright-core test -f "$NODE_PATH/playwright-core/package.json" || ok=0
need "speedscope app" test -f "$SPEEDSCOPE/index.html" || ok=0
need "go tool pprof" go tool pprof -h || ok=0
need callgrind_annotate command -v callgrind_annotate || ok=0
need flamegraph.pl test -r "$FLAMEGRAPH" || ok=0
need python3 test -n "$PY3" || ok=0
if ((!ok)); then
    ps_finish
fi

if ! L_HEAVY=$(ps_fixture_line "$FIXTURE" heavy_call) || ! L_MEDIUM=$(ps_fixture_line "$FIXTURE" medium_call) ||
    ! L_LIGHT=$(ps_fixture_line "$FIXTURE" light_call); then
    ps_fail "fixture $FIXTURE has its LINE tags"
    ps_finish
fi

# count_of STATSFILE KEY: a number from folded_stats.py's output.
count_of() { awk -v k="$2" '$1 == k && NF == 2 { print $2; exit }' "$1"; }
# tsv KEY FILE: the value of the first "KEY<TAB>VALUE" line of formats_browser.js's output.
tsv() { awk -F'\t' -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# ---- record once, every format ---------------------------------------------------------------
PY=$(ps_find_pythons | grep -E '/3\.1[1-3][^/]*/bin/python$' | tail -n 1) || PY=
[[ -n $PY ]] || PY=$PY3
D=$PS_TMP/rec
mkdir -p "$D"
if ! ps_start_fixture "$PY" "$FIXTURE"; then
    ps_finish
fi
ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 2 -r 200 --no-progress \
    -f folded,svg,speedscope,pprof,callgrind,pstats,table -o "$D/cpu.folded"
ps_assert_status "record -f with seven formats exits 0" 0
for f in cpu.folded cpu.svg cpu.speedscope.json cpu.pb.gz cpu.callgrind cpu.pstats cpu.txt; do
    ps_assert_true "record wrote $f" "$D/$f missing or empty" test -s "$D/$f"
    ps_assert_match "record says where $f went" "wrote $D/$f \\([0-9]+ samples\\)" \
        "$(grep -F "wrote $D/$f " "$PS_ERR_FILE" || true)"
done
ps_assert_running "fixture running after record" "$PS_FIXTURE_PID"
"$PY3" "$STATS" "$D/cpu.folded" heavy medium light unit one_round >"$D/stats"
# The fixture's file name as the recording shows it (shortened, as without --full-filenames).
FPATH=$(grep -o -m 1 "heavy ([^;]*:$L_HEAVY)" "$D/cpu.folded" | sed 's/^heavy (//; s/:[0-9]*)$//') || FPATH=
ps_assert_match "folded file names the fixture's file" "(^|/)$FIXTURE\$" "$FPATH"
# stack_count FN LINE: samples whose stack has the frame "FN (FPATH:LINE)" (once per stack).
stack_count() {
    grep -v '^#' "$D/cpu.folded" | awk -v fr="$1 ($FPATH:$2)" '{
        n = $NF; st = substr($0, 1, length($0) - length(n) - 1); k = split(st, f, ";")
        for (i = 1; i <= k; i++) if (f[i] == fr) { s += n; break } } END { print s + 0 }'
}
# min_line FN: the smallest line of FN's frames in the folded file (pstats and callgrind place
# a function at the smallest line its samples show).
min_line() {
    grep -v '^#' "$D/cpu.folded" | tr ';' '\n' | sed -n "s/^$1 (${FPATH//\//\\/}:\([0-9]*\)).*/\1/p" | sort -n | head -n 1
}
TOTAL=$(count_of "$D/stats" total)
N_HEAVY=$(count_of "$D/stats" heavy)
N_MEDIUM=$(count_of "$D/stats" medium)
N_LIGHT=$(count_of "$D/stats" light)
N_UNIT=$(count_of "$D/stats" unit)
ps_assert_true "folded file has samples of heavy, medium, light (total ${TOTAL:-0})" \
    "$(cat "$D/stats")" test "${N_HEAVY:-0}" -gt 20 -a "${N_MEDIUM:-0}" -gt 10 -a "${N_LIGHT:-0}" -gt 3
# pct A B [DECIMALS]: 100 * A / B as the viewer prints it (toFixed rounds like printf).
pct() { awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { printf "%.*f", d, b ? 100 * a / b : 0 }'; }

# ---- folded: metadata that folded viewers skip ------------------------------------------------
bad=$(grep '^#' "$D/cpu.folded" | grep -E ' [0-9]+(\.[0-9]*)?$' || true)
ps_assert_eq "no metadata line ends in ' NUMBER' (folded viewers would read it as a stack)" "" "$bad"
ps_assert_match "folded metadata is '# key=value'" '^# pysample=[0-9.]+$' "$(head -n 1 "$D/cpu.folded")"
perl "$FLAMEGRAPH" "$D/cpu.folded" >"$D/fg.svg" 2>"$D/fg.err" || true
ps_assert_eq "flamegraph.pl: no '#' frame" 0 "$(grep -c '<title>#' "$D/fg.svg" || true)"
ps_assert_match "flamegraph.pl: heavy with the folded file's count" \
    "heavy \\($FPATH:$L_HEAVY\\) \\($N_HEAVY samples" "$(grep -o "heavy ([^<]*samples" "$D/fg.svg" | head -n 1)" \
    "$(cat "$D/fg.err")"
ps_assert_match "flamegraph.pl: all samples in the graph" "<title>all \\($TOTAL samples" \
    "$(grep -o '<title>all ([0-9]* samples' "$D/fg.svg" || true)"

# wait_for_progress ERRFILE MIN: bounded poll until the --progress line shows MIN samples.
wait_for_progress() {
    local i n
    for ((i = 0; i < PS_TIMEOUT * 20; i++)); do
        n=$(tr '\r' '\n' <"$1" 2>/dev/null | grep -oE '[0-9]+ samples' | tail -n 1 | cut -d' ' -f1) || true
        [[ -n $n && $n -ge $2 ]] && return 0
        timeout 0.05 tail -f /dev/null || true
    done
    return 1
}
# wait_exit PID: bounded wait for a background child of this shell; sets WAIT_RC.
wait_exit() {
    local i
    WAIT_RC=timeout
    for ((i = 0; i < PS_TIMEOUT * 20; i++)); do
        if ! kill -0 "$1" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; then
            WAIT_RC=0
            wait "$1" || WAIT_RC=$?
            return 0
        fi
        timeout 0.05 tail -f /dev/null || true
    done
    return 1
}

# ---- svg in Chromium --------------------------------------------------------------------------
SHOT=$D/flamegraph.png
PS_TIMEOUT=180 ps_run timeout 170 node "$BROWSER" svg "$D/cpu.svg" "$SHOT" '^heavy '
ps_assert_status "svg: Chromium opened the flame graph" 0
B=$PS_OUT_FILE
ps_assert_eq "svg: no script error, nothing fetched" none "$(tsv errors "$B")" "$(ps_run_context)"
ps_assert_match "svg: title names the target" "^pysample flame graph: .+ \\(pid $PS_FIXTURE_PID\\)\$" "$(tsv title "$B")"
ps_assert_eq "svg: title's tooltip has the whole command" "$PS_FIXTURE_CMD" "$(tsv title_full "$B")"
ps_assert_true "svg: title fits between the buttons" "title $(tsv title_width "$B") px wide" \
    test "$(tsv title_width "$B")" -lt 1000
ps_assert_match "svg: subtitle has the sample count" "^[0-9.]+ s, $TOTAL samples" "$(tsv subtitle "$B")"
ps_assert_match "svg: hover shows heavy, file:line, samples and %" \
    "^heavy \\($FPATH:$L_HEAVY\\) — $N_HEAVY samples, $(pct "$N_HEAVY" "$TOTAL" 2)%" "$(tsv details "$B")"
ps_assert_eq "svg: click zooms heavy to the full width" 1180.00 "$(tsv width_after "$B")"
ps_assert_eq "svg: reset zoom restores its width" "$(tsv width_before "$B")" "$(tsv width_reset "$B")"
ps_assert_eq "svg: reset button shown while zoomed" true "$(tsv reset_visible "$B")"
# The share is the browser's toFixed(1), which rounds a tie (51.25) up where printf rounds it to
# even: either tenth nearest to the exact share is right, the counts must be exact.
matched=$(tsv matched "$B")
if [[ $matched =~ ^Matched:\ ([0-9]+\.[0-9])%\ \($N_HEAVY\ of\ $TOTAL\ samples\)$ ]] &&
    awk -v s="${BASH_REMATCH[1]}" -v a="$N_HEAVY" -v b="$TOTAL" \
        'BEGIN { d = s - 100 * a / b; exit !(d <= 0.05 + 1e-9 && d >= -0.05 - 1e-9) }'; then
    ps_pass "svg: search prints the matched share"
else
    ps_fail "svg: search prints the matched share" \
        "expected: Matched: $(pct "$N_HEAVY" "$TOTAL")% ($N_HEAVY of $TOTAL samples), to a tenth" \
        "actual: $matched"
fi
ps_assert_true "svg: screenshot is a PNG" "$(file "$SHOT" 2>&1)" \
    bash -c "head -c 8 '$SHOT' | od -An -tx1 | grep -q '89 50 4e 47'"
if [[ -n ${PS_SCREENSHOT_DIR:-} && -s $SHOT ]]; then
    cp "$SHOT" "$PS_SCREENSHOT_DIR/pysample-flamegraph.png"
fi

# ---- speedscope app (JSON and folded) ---------------------------------------------------------
# sandwich_total FILE NAME: the Total sample count of the Sandwich rows named NAME, added up
# (speedscope keeps one row per name, file and line).
sandwich_total() {
    awk -F'\t' -v n="$2" '$1 == "row" { split($2, c, " \\| "); if (c[3] == n) { split(c[1], t, " "); s += t[1] } }
        END { print s + 0 }' "$1"
}
PS_TIMEOUT=180 ps_run timeout 170 node "$BROWSER" speedscope "$D/cpu.speedscope.json" "$SPEEDSCOPE"
ps_assert_status "speedscope: the app loaded the JSON from localhost" 0
S=$PS_OUT_FILE
ps_assert_eq "speedscope: no script error, nothing fetched elsewhere" none "$(tsv errors "$S")" "$(ps_run_context)"
for fn in heavy medium light unit; do
    n=$(count_of "$D/stats" "$fn")
    ps_assert_eq "speedscope: $fn total samples as in the folded file" "$n" "$(sandwich_total "$S" "$fn")" \
        "$(grep -F "| $fn |" "$S")"
done
ps_assert_match "speedscope: file shown for heavy" "\\| heavy \\| $FPATH\$" "$(grep -F "| heavy |" "$S" | head -n 1 | cut -f2)"
ps_assert_eq "speedscope JSON: heavy's frame has file and line" "$FPATH:$L_HEAVY" \
    "$("$PY3" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join("%s:%s" % (f["file"], f["line"]) for f in d["shared"]["frames"] if f["name"] == "heavy"))' "$D/cpu.speedscope.json")"
PS_TIMEOUT=180 ps_run timeout 170 node "$BROWSER" speedscope "$D/cpu.folded" "$SPEEDSCOPE"
ps_assert_status "speedscope: the app loaded the folded file" 0
S=$PS_OUT_FILE
ps_assert_eq "speedscope (folded): no row is a metadata line" 0 "$(grep -c -E '\| #' "$S" || true)"
ps_assert_eq "speedscope (folded): heavy total as in the folded file" "$N_HEAVY" \
    "$(sandwich_total "$S" "heavy ($FPATH:$L_HEAVY)")" "$(grep -F "heavy" "$S")"

# ---- pprof ------------------------------------------------------------------------------------
ps_run go tool pprof -top -lines "$D/cpu.pb.gz"
ps_assert_status "pprof: go tool pprof -top -lines reads the file" 0
ps_assert_eq "pprof: no warning" "" "$(grep -i -E 'warn|not available' "$PS_ERR_FILE" || true)"
interval_ms=5 # -r 200
for fn in heavy medium light; do
    line=$(ps_fixture_line "$FIXTURE" "${fn}_call")
    n=$(stack_count "$fn" "$line")
    # The cumulative column (4th): "995ms", or "1s" / "1.01s" from one second on.
    cum=$(grep -E " $fn $FPATH:$line\$" "$PS_OUT_FILE" | awk '{ v = $4; m = 1
        if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); m = 1000 }
        printf "%d", v * m + 0.5; exit }')
    ps_assert_true "pprof -top -lines: $fn at $FIXTURE:$line, cumulative as in the folded file" \
        "want $((n * interval_ms)) ms, got ${cum:-nothing} ms; $(ps_run_context)" \
        test "${cum:-x}" -ge $((n * interval_ms - 5)) -a "${cum:-x}" -le $((n * interval_ms + 5))
done
ps_run go tool pprof -traces -lines "$D/cpu.pb.gz"
ps_assert_status "pprof: go tool pprof -traces reads the file" 0
ps_assert_match "pprof -traces: a unit <- heavy <- one_round stack" \
    "unit $FPATH:[0-9]+"$'\n'" +heavy $FPATH:$L_HEAVY"$'\n'" +one_round $FPATH:" \
    "$(sed 's/^ *[0-9.]*m\?s  *//; s/^ */ /' "$PS_OUT_FILE" | sed 's/^ //' | tr -s ' ' | sed 's/^/ /')" \
    "$(head -n 40 "$PS_OUT_FILE")"
ps_assert_match "pprof: the file says its tool and rate" 'pysample [0-9.]+' "$(head -n 5 "$PS_OUT_FILE")"

# ---- callgrind --------------------------------------------------------------------------------
ps_run callgrind_annotate --inclusive=yes --include="$PS_FIXTURES" "$D/cpu.callgrind"
ps_assert_status "callgrind_annotate reads the file" 0
for fn in heavy medium light unit; do
    n=$(count_of "$D/stats" "$fn")
    ps_assert_match "callgrind_annotate: $fn inclusive as in the folded file" "^$n \\([ 0-9.]+%\\) +$FPATH:$fn\$" \
        "$(grep -E " $FPATH:$fn\$" "$PS_OUT_FILE" | head -n 1 | sed 's/^ *//; s/,//g')" "$(ps_run_context)"
done
ps_assert_match "callgrind_annotate: the source annotated by line" "^ *[0-9,]+ \\([ 0-9.]+%\\) +for i in range" \
    "$(grep -E 'for i in range\(20000\)' "$PS_OUT_FILE" | head -n 1)" "$(tail -n 40 "$PS_OUT_FILE")"

# ---- pstats on every interpreter --------------------------------------------------------------
PSTATS_CHECK='
import pstats, sys
s = pstats.Stats(sys.argv[1])
for (f, line, name), v in sorted(s.stats.items()):
    if name in ("heavy", "medium", "light", "unit"):
        print("%s %s:%d %d %.3f" % (name, f, line, v[1], v[3]))
'
while IFS= read -r py; do
    v=$(ps_python_version "$py") || continue
    ps_run "$py" -c "$PSTATS_CHECK" "$D/cpu.pstats"
    ps_assert_status "pstats on $v: pstats.Stats loads the file" 0
    for fn in heavy medium light; do
        n=$(count_of "$D/stats" "$fn")
        line=$(min_line "$fn")
        ps_assert_eq "pstats on $v: $fn ncalls = samples with it on the stack, at its line" \
            "$fn $FPATH:$line $n $(awk -v n="$n" 'BEGIN { printf "%.3f", n * 0.005 }')" \
            "$(grep "^$fn " "$PS_OUT_FILE" || true)" "$(ps_run_context)"
    done
    ps_run bash -c "printf 'sort cumulative\nstats 5\nquit\n' | '$py' -m pstats '$D/cpu.pstats'"
    ps_assert_match "python$v -m pstats shows heavy" "$FPATH:$L_HEAVY\\(heavy\\)" "$PS_OUT" "$(ps_run_context)"
done < <(ps_find_pythons)

# ---- report converts --------------------------------------------------------------------------
# same_profile KIND A B: the two files hold the same profile (what a client would show), whatever
# the order the writer put things in.
SAME_PROFILE='
import sys, json, marshal, re
kind, a, b = sys.argv[1:4]
def canon(path):
    if kind == "speedscope":
        d = json.load(open(path))
        fr = d["shared"]["frames"]
        out = []
        for p in d["profiles"]:
            for st, w in zip(p["samples"], p["weights"]):
                out.append((p["name"], tuple((fr[i]["name"], fr[i].get("file"), fr[i].get("line")) for i in st), w))
        return sorted(out)
    if kind == "svg":
        return sorted(re.findall(r"<title>(.*?)</title>", open(path, encoding="utf-8").read(), re.S))
    if kind == "pstats":
        return sorted((k, v[:4], sorted(v[4].items())) for k, v in marshal.load(open(path, "rb")).items())
    # callgrind name compression: "fn=(7) name" defines id 7 of its kind, "fn=(7)" refers to it;
    # the ids depend on the order of writing, so every reference is replaced by its name.
    names, blocks, cur = {}, [], []
    def expand(line):
        m = re.match(r"^(c?f[lnie]|cob|ob)=\((\d+)\)(?: (.*))?$", line)
        if not m:
            return line
        kind = m.group(1).lstrip("c")
        kind = {"fi": "fl", "fe": "fl"}.get(kind, kind)
        if m.group(3) is not None:
            names[(kind, m.group(2))] = m.group(3)
        return "%s=%s" % (m.group(1), names.get((kind, m.group(2)), "?"))
    for line in open(path):
        line = expand(line.strip())
        if line.startswith(("totals:", "summary:")):
            blocks.append((line,))  # a trailer, whatever block the writer put last
            continue
        if line.startswith(("fl=", "fn=")) and cur and not cur[-1].startswith("fl="):
            blocks.append(cur)
            cur = []
        cur.append(line)
    return sorted(map(tuple, blocks + [cur]))
print("same" if canon(a) == canon(b) else "different")
'
for f in callgrind speedscope pstats svg; do
    ext=$f
    [[ $f == speedscope ]] && ext=speedscope.json
    ps_run "$PYSAMPLE" report -f "$f" -o "$D/conv.$ext" "$D/cpu.folded"
    ps_assert_status "report -f $f converts the folded file" 0
    ps_assert_eq "report -f $f: the profile record wrote" same \
        "$("$PY3" -c "$SAME_PROFILE" "$f" "$D/conv.$ext" "$D/cpu.$ext" 2>&1)"
done
ps_run "$PYSAMPLE" report -o "$D/conv.pb.gz" "$D/cpu.folded"
ps_assert_status "report -o x.pb.gz picks pprof from the extension" 0
ps_assert_eq "report: pprof from the folded file shows the same top" \
    "$(go tool pprof -top "$D/cpu.pb.gz" 2>&1 | grep -E 'heavy|medium|light|unit')" \
    "$(go tool pprof -top "$D/conv.pb.gz" 2>&1 | grep -E 'heavy|medium|light|unit')"
ps_stop "$PS_FIXTURE_PID"

# ---- speedscope: one profile per process and thread -------------------------------------------
if ps_start_fixture "$PY3" fork_children.py; then
    ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" --subprocesses --threads -d 2 --no-progress \
        -f speedscope,folded -o "$D/procs.speedscope.json"
    ps_assert_status "record --subprocesses --threads -f speedscope,folded" 0
    ps_stop "$PS_FIXTURE_PID"
    # Profile names from the JSON, and the process/thread root pairs of the folded file: the same
    # set, one profile each, and each profile's weights add up to its roots' samples.
    ps_run "$PY3" -c '
import json, sys, collections
d = json.load(open(sys.argv[1]))
ss = sorted("%s %d" % (p["name"], sum(p["weights"])) for p in d["profiles"])
per = collections.Counter()
for line in open(sys.argv[2]):
    if line.startswith("#") or not line.strip():
        continue
    stack, n = line.rstrip("\n").rsplit(" ", 1)
    roots = []
    for f in stack.split(";"):
        if not (f.startswith("process ") or f.startswith("thread (")):
            break
        roots.append(f)
    per[" / ".join(roots) or "all threads"] += int(n)
fo = sorted("%s %d" % kv for kv in per.items())
print("same" if ss == fo else "different:\n%s\n---\n%s" % ("\n".join(ss), "\n".join(fo)))
print(len(set(n.split(" / ")[0].split(":")[0] for n in ss)))
' "$D/procs.speedscope.json" "$D/procs.folded"
    ps_assert_eq "speedscope: one profile per process and thread, with the folded file's samples" same \
        "$(head -n 1 "$PS_OUT_FILE")" "$(ps_run_context)"
    ps_assert_true "speedscope: profiles of several processes" "$(tail -n 1 "$PS_OUT_FILE") processes" \
        test "$(tail -n 1 "$PS_OUT_FILE")" -ge 2
fi

# ---- hostile names ----------------------------------------------------------------------------
H=$PS_TMP/hostile
mkdir -p "$H"
long=$(printf 'n%.0s' $(seq 1000))
{
    printf '# pysample=0.1.0\n# interval=10000\n'
    printf 'main (app.py:1);q"uo'"'"'te <b>& amp caf\xc3\xa9 \xff\xfe (we"ird <dir>/&.py:7) 5\n'
    printf 'main (app.py:1);%s (%s.py:2) 3\n' "$long" "$long"
    printf 'main (app.py:1);</script><script>alert(1)</script> (x.py:3) 2\n'
} >"$H/h.folded"
for f in svg speedscope pprof callgrind pstats table folded; do
    ps_run "$PYSAMPLE" report -f "$f" -o "$H/o.$f" "$H/h.folded"
    ps_assert_status "hostile names: report -f $f" 0
done
ps_run "$PY3" -c '
import sys, json, xml.dom.minidom
for f in sys.argv[1:]:
    data = open(f, "rb").read()
    data.decode("utf-8")                    # strict: no invalid UTF-8 copied
print("utf8 ok")
xml.dom.minidom.parse(sys.argv[1])
print("xml ok")
d = json.load(open(sys.argv[2], encoding="utf-8"))
names = [fr["name"] for fr in d["shared"]["frames"]]
print("json ok", len(names), max(len(n) for n in names))
' "$H/o.svg" "$H/o.speedscope" "$H/o.callgrind" "$H/o.table" "$H/o.folded"
ps_assert_eq "hostile names: valid UTF-8, the SVG parses as XML, JSON parses, 1000-char name kept" \
    $'utf8 ok\nxml ok\njson ok 4 1000' "$PS_OUT" "$(ps_run_context)"
PS_TIMEOUT=180 ps_run timeout 170 node "$BROWSER" svg "$H/o.svg" "$H/shot.png" 'script'
ps_assert_status "hostile names: Chromium opens the SVG" 0
ps_assert_eq "hostile names: no script ran from a name, nothing fetched" none "$(tsv errors "$PS_OUT_FILE")"
ps_assert_match "hostile names: the </script> name is shown as text" '^</script><script>alert\(1\)</script> \(x\.py:3\)' \
    "$(tsv details "$PS_OUT_FILE")"
ps_run go tool pprof -raw "$H/o.pprof"
ps_assert_status "hostile names: go tool pprof reads the file" 0
ps_assert_match "hostile names: pprof keeps the long name" "$long" "$PS_OUT"
ps_run callgrind_annotate "$H/o.callgrind"
ps_assert_status "hostile names: callgrind_annotate reads the file" 0
ps_run "$PY3" -c 'import pstats,sys; s=pstats.Stats(sys.argv[1]); print(len(s.stats))' "$H/o.pstats"
ps_assert_eq "hostile names: pstats loads all functions" 4 "$PS_OUT" "$(ps_run_context)"

# ---- bad formats and paths --------------------------------------------------------------------
ps_run "$PYSAMPLE" record -f folded,nope -o "$H/x.folded" -- "$PY3" -c pass
ps_assert_status "record -f with an unknown format: usage error" 64
ps_assert_match "record -f nope: one line naming it and the valid formats" \
    "^pysample: record: unknown format 'nope' \\(valid: folded, table, svg, speedscope, pprof, callgrind, pstats\\)" "$PS_ERR"
ps_run "$PYSAMPLE" report -f nope "$H/h.folded"
ps_assert_status "report -f nope: usage error" 64
ps_run "$PYSAMPLE" record -f folded,svg -o "$H/x.svg" -- "$PY3" -c pass
ps_assert_status "record -f folded,svg -o x.svg: two formats for one file is a usage error" 64
ps_assert_match "record -f folded,svg -o x.svg: says so" "formats folded and svg would both be written to $H/x\\.svg" "$PS_ERR"

if ! ps_start_fixture "$PY" "$FIXTURE"; then
    ps_finish
fi
start=$SECONDS
ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 20 -o /proc/version
ps_assert_status "record -o /proc/version fails" 2
ps_assert_true "record -o /proc/version fails before sampling" "took $((SECONDS - start)) s" test $((SECONDS - start)) -lt 10
ps_assert_match "record -o /proc/version: the cause" '^pysample: record: cannot write /proc/version: .*(/proc|kernel file system).* — choose another path with -o$' "$PS_ERR"
ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 20 -o "$H/no/such/dir/x.folded"
ps_assert_match "record into a missing directory: No such file or directory" 'cannot write .*/no/such/dir/x\.folded: No such file or directory' "$PS_ERR"
MNT=$PS_TMP/mnt
mkdir -p "$MNT"
if mount -t tmpfs -o size=4m tmpfs "$MNT" 2>/dev/null; then
    mount -o remount,ro "$MNT"
    ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 20 -o "$MNT/x.folded"
    ps_assert_status "record onto a read-only file system fails at once" 2
    ps_assert_match "read-only file system named as the cause" "cannot write $MNT/x\\.folded: Read-only file system" "$PS_ERR"
    # A late failure: the file system turns read-only while sampling; the samples are kept.
    mount -o remount,rw "$MNT"
    W=$PS_TMP/cwd
    mkdir -p "$W"
    (cd "$W" && exec timeout -k 5 "$PS_TIMEOUT" "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 20 --progress \
        -o "$MNT/late.folded" >"$W/out" 2>"$W/err") &
    rec=$!
    PS_PIDS+=("$rec")
    if wait_for_progress "$W/err" 20; then
        mount -o remount,ro "$MNT"
        kill -INT "$rec" 2>/dev/null || true
    fi
    wait_exit "$rec" || true
    ps_assert_eq "late write failure: exit status 2" 2 "$WAIT_RC" "$(cat "$W/err")"
    ps_assert_match "late write failure: says where the samples went" \
        "cannot write $MNT/late\\.folded: Read-only file system; wrote $W/late\\.folded instead \\([1-9][0-9]* samples\\)" \
        "$(tr '\r' '\n' <"$W/err" | grep 'instead' || true)" "$(cat "$W/err")"
    ps_assert_true "late write failure: the samples are in the working directory" "no $W/late.folded" \
        grep -q ' [0-9][0-9]*$' "$W/late.folded"
    umount "$MNT" || true
else
    ps_fail "mount a tmpfs for the read-only cases" "mount failed (needs root)"
fi

# ---- files at different rates -----------------------------------------------------------------
ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 1 -r 100 --no-progress -o "$H/r100.folded"
ps_run "$PYSAMPLE" record -p "$PS_FIXTURE_PID" -d 1 -r 10 --no-progress -o "$H/r10.folded"
ps_stop "$PS_FIXTURE_PID"
ps_run "$PYSAMPLE" report "$H/r100.folded" "$H/r10.folded"
ab=$PS_OUT
ps_assert_match "report of 100 Hz and 10 Hz files says how it weighted them" \
    'files recorded at 100,10 Hz; samples weighted to 100 Hz' "$PS_ERR"
ps_run "$PYSAMPLE" report "$H/r10.folded" "$H/r100.folded"
ba=$PS_OUT
ps_assert_eq "report: totals do not depend on the order of the files" \
    "$(grep -E '^(Total time|Sample count)' <<<"$ab")" "$(grep -E '^(Total time|Sample count)' <<<"$ba")"
t100=$("$PYSAMPLE" report "$H/r100.folded" | sed -n 's/^Total time: \([0-9.]*\) seconds$/\1/p')
t10=$("$PYSAMPLE" report "$H/r10.folded" | sed -n 's/^Total time: \([0-9.]*\) seconds$/\1/p')
ps_assert_eq "report: total time is the sum of each file's own" \
    "$(awk -v a="$t100" -v b="$t10" 'BEGIN { printf "%.2f", a + b }')" \
    "$(sed -n 's/^Total time: \([0-9.]*\) seconds$/\1/p' <<<"$ab" | awk '{ printf "%.2f", $1 }')"
ps_assert_eq "report: no achieved rate for a mix of rates" "" "$(grep 'achieved' <<<"$ab" || true)"

# ---- invalid UTF-8 in, valid UTF-8 out --------------------------------------------------------
printf 'main (a\xff.py:1);f\xc3 (b.py:2) 4\n' >"$H/bad8.folded"
for f in folded table svg speedscope callgrind; do
    ps_run "$PYSAMPLE" report -f "$f" -o "$H/out8.$f" "$H/bad8.folded"
    ps_assert_true "report -f $f: invalid UTF-8 not copied" "$(od -c "$H/out8.$f" | head -n 5)" \
        "$PY3" -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$H/out8.$f"
done
ps_assert_match "report: a bad byte becomes U+FFFD" $'main \\(a\xef\xbf\xbd\\.py:1\\);f\xef\xbf\xbd \\(b\\.py:2\\) 4' \
    "$(grep -v '^#' "$H/out8.folded")"

ps_finish
