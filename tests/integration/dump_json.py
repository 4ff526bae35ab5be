# dump_json.py -- checks the shape of `pysample dump --json` output and renders it as the text
# dump would print it, so the shell tests can compare both outputs and reuse one frame parser.
#
# Usage: python3 dump_json.py [--full] FILE
#   prints the rendering (with --full: "path" in place of "file", as --full-filenames would);
#   exit 1 with the reasons on stderr when the document does not have the expected shape.
#
# Shape (see the dump contract): {"pid", "command", "python": {"version", "executable"},
# "threads": [{"tid", "name", "active", "gil", "idle", "frames": [{"function", "file",
# "path", "line"}]}]}, frames innermost first, "path" absolute.

import json
import sys

problems = []


def kind_names(kinds):
    return " or ".join(k.__name__ for k in kinds)


def need(obj, key, kinds, where):
    if not isinstance(obj, dict) or key not in obj:
        problems.append("%s: missing %r" % (where, key))
        return None
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds:
        problems.append("%s.%s: expected %s, got boolean %r" % (where, key, kind_names(kinds), value))
        return None
    if not isinstance(value, kinds):
        problems.append("%s.%s: expected %s, got %r" % (where, key, kind_names(kinds), value))
        return None
    return value


def main():
    args = sys.argv[1:]
    full = args[:1] == ["--full"]
    if full:
        args = args[1:]
    if len(args) != 1:
        print("usage: dump_json.py [--full] FILE", file=sys.stderr)
        return 64
    with open(args[0], encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except ValueError as e:
            print("not valid JSON: %s" % e, file=sys.stderr)
            return 1
    out = []
    pid = need(doc, "pid", (int,), "$")
    command = need(doc, "command", (str,), "$")
    python = need(doc, "python", (dict,), "$") or {}
    version = need(python, "version", (str,), "$.python")
    executable = need(python, "executable", (str,), "$.python")
    free_threaded = need(python, "free_threaded", (bool,), "$.python")
    out.append("Process %s: %s" % (pid, command))
    out.append("Python %s%s (%s)" % (version, " free-threaded" if free_threaded else "", executable))
    for i, thread in enumerate(need(doc, "threads", (list,), "$") or []):
        where = "$.threads[%d]" % i
        tid = need(thread, "tid", (int,), where)
        name = need(thread, "name", (str,), where)
        active = need(thread, "active", (bool,), where)
        gil = need(thread, "gil", (bool,), where)
        attached = need(thread, "attached", (bool,), where)
        idle = need(thread, "idle", (bool,), where)
        if active is not None and idle is not None and active == idle:
            problems.append("%s: active=%s and idle=%s contradict" % (where, active, idle))
        state = "active" if active else "idle"
        if gil:
            state += ", gil"
        elif attached:
            state += ", attached"
        if gil and attached:
            problems.append("%s: gil and attached (only without a GIL) contradict" % where)
        out.append("")
        out.append('Thread %s "%s" (%s)' % (tid, name, state))
        for j, frame in enumerate(need(thread, "frames", (list,), where) or []):
            fwhere = "%s.frames[%d]" % (where, j)
            function = need(frame, "function", (str,), fwhere)
            short = need(frame, "file", (str,), fwhere)
            path = need(frame, "path", (str,), fwhere)
            line = need(frame, "line", (int,), fwhere)
            if path is not None and not path.startswith("/"):
                problems.append("%s.path: not absolute: %r" % (fwhere, path))
            if path is not None and short is not None and not path.endswith(short):
                problems.append("%s: file %r is not a suffix of path %r" % (fwhere, short, path))
            if line is not None and line < 1:
                problems.append("%s.line: %r is not a line number" % (fwhere, line))
            out.append("    %s (%s:%s)" % (function, path if full else short, line))
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
