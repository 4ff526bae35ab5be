# folded_stats.py -- reads a folded file and prints facts the session tests assert on.
#
# Usage: python3 folded_stats.py FILE FUNC...
# Prints "total N" (sum of counts), then for each FUNC "FUNC COUNT" where COUNT is the number of
# samples whose stack contains a frame of that function (counted once per stack), then
# "meta KEY VALUE" for each "# key=value" line, then "frame TEXT" for each distinct frame.
import sys


def main():
    path, funcs = sys.argv[1], sys.argv[2:]
    total = 0
    per = dict((f, 0) for f in funcs)
    frames = set()
    meta = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("# "):
                # "# key=value" (value quoted when it has spaces), or older "# key: value"
                body = line[2:]
                sep = min([i for i in (body.find("="), body.find(": ")) if i >= 0] or [-1])
                if sep < 0:
                    continue
                key, val = body[:sep], body[sep + (1 if body[sep] == "=" else 2):]
                if body[sep] == "=" and len(val) >= 2 and val[0] == val[-1] == '"':
                    val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                meta.append((key, val))
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            names = set()
            for fr in stack.split(";"):
                frames.add(fr)
                names.add(fr.split(" (", 1)[0])
            for fn in funcs:
                if fn in names:
                    per[fn] += n
    print("total %d" % total)
    for fn in funcs:
        print("%s %d" % (fn, per[fn]))
    for k, v in meta:
        print("meta %s %s" % (k, v))
    for fr in sorted(frames):
        print("frame %s" % fr)


main()
