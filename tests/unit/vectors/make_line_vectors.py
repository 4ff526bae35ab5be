# make_line_vectors.py - writes lines_<major>.<minor>.h: line-table test vectors taken from
# code objects compiled by the running interpreter, for tests/unit/test_linetable.c.
#
# Usage (any CPython from 2.7 on):  python make_line_vectors.py OUTDIR
# Refresh every committed header:
#   for v in 2.7.18 3.6.15 3.7.16 3.8.18 3.9.18 3.10.13 3.11.7 3.12.1 3.13.0; do
#       /root/.pyenv/versions/$v/bin/python tests/unit/vectors/make_line_vectors.py tests/unit/vectors
#   done
#
# Each code object contributes its raw table (co_lnotab up to 3.9, co_linetable from 3.10), its
# co_firstlineno and the interpreter's own answer for every instruction offset:
#   2.7, 3.6-3.9: dis.findlinestarts() (byte offsets)
#   3.10:         co_lines() (byte offsets)
#   3.11+:        co_positions() per code unit (offset = byte offset // 2)
# and every answer is cross-checked against PyCode_Addr2Line() called through ctypes.
from __future__ import print_function

import ctypes
import dis
import os
import sys
import types

VER = sys.version_info
TAG = "%d.%d" % (VER[0], VER[1])
CID = "lv%d%d" % (VER[0], VER[1])


def blank(n):
    return "\n" * n


# Source compiled below. It has multi-line bodies, loops (backward jumps to earlier lines),
# multi-line expressions (later bytecode mapped to earlier lines), line jumps above 127, 255
# and 4096, exception handlers, a column past 127 and nested code objects.
SOURCE = (
    "import os\n"
    "\n"
    "def simple(a, b):\n"
    "    c = a + b\n"
    "    d = c * 2\n"
    "    return d\n"
    "\n"
    "def loop(n):\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        if i % 2:\n"
    "            total += i\n"
    "        else:\n"
    "            total -= 1\n"
    "    while total > 10:\n"
    "        total //= 2\n"
    "    return total\n"
    "\n"
    "def multiline(x):\n"
    "    y = max(\n"
    "        x,\n"
    "        1,\n"
    "        2,\n"
    "    )\n"
    "    z = (x +\n"
    "         y +\n"
    "         x)\n"
    "    return [\n"
    "        v * z\n"
    "        for v in range(y)\n"
    "        if v\n"
    "    ]\n"
    "\n"
    "def far(x):\n"
    "    a = x\n"
    + blank(300) +
    "    b = a + 1\n"
    + blank(150) +
    "    c = b + 2\n"
    + blank(5000) +
    "    return c\n"
    "\n"
    "def back_far(x):\n"
    "    y = max(\n"
    "        x,\n"
    + blank(400) +
    "        x)\n"
    "    for i in range(3):\n"
    + blank(200) +
    "        y += i\n"
    "    return y\n"
    "\n"
    "def handlers(path):\n"
    "    try:\n"
    "        with open(path) as f:\n"
    "            data = f.read()\n"
    "    except (IOError, OSError):\n"
    "        data = None\n"
    "    finally:\n"
    "        path = None\n"
    "    return data\n"
    "\n"
    "def wide(a):\n"
    "    return (a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a"
    " + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a"
    " + a + a + a + a + os.sep.join([str(a)]))\n"
    "\n"
    "class K(object):\n"
    "    def method(self, x):\n"
    "        return lambda y: (x +\n"
    "                          y)\n"
    "\n"
    "def gen(n):\n"
    "    while n:\n"
    "        yield n\n"
    "        n -= 1\n"
)


def all_codes(co):
    out = [co]
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            out.extend(all_codes(c))
    return out


def table_of(co):
    if VER < (3, 10):
        return bytearray(co.co_lnotab)
    return bytearray(co.co_linetable)


def fmt_of():
    if VER < (3, 0):
        return "PS_LINES_LNOTAB27"
    if VER < (3, 10):
        return "PS_LINES_LNOTAB"
    if VER < (3, 11):
        return "PS_LINES_LINETABLE310"
    return "PS_LINES_LOCATIONS"


def insn_offsets_27(co):
    code = bytearray(co.co_code)
    offs, i = [], 0
    while i < len(code):
        offs.append(i)
        i += 3 if code[i] >= dis.HAVE_ARGUMENT else 1
    return offs


def expected_pairs(co):
    """[(offset, line)] in the unit ps_line_for_offset takes; line -1 for "no line"."""
    ncode = len(co.co_code)
    if VER < (3, 10):
        starts = list(dis.findlinestarts(co))
        offs = insn_offsets_27(co) if VER < (3, 0) else list(range(0, ncode, 2))
        pairs = []
        for off in offs:
            line = None
            for s, l in starts:
                if s <= off:
                    line = l
            pairs.append((off, co.co_firstlineno if line is None else line))
        return pairs
    if VER < (3, 11):
        ranges = list(co.co_lines())
        pairs = []
        for off in range(0, ncode, 2):
            line = -1
            for s, e, l in ranges:
                if s <= off < e:
                    line = -1 if l is None else l
            pairs.append((off, line))
        return pairs
    pos = list(co.co_positions())
    assert len(pos) == ncode // 2, (co.co_name, len(pos), ncode)
    pairs = [(i, -1 if p[0] is None else p[0]) for i, p in enumerate(pos)]
    # co_lines() must say the same thing in code units.
    for s, e, l in co.co_lines():
        for b in range(s, e, 2):
            want = -1 if l is None else l
            assert pairs[b // 2][1] == want, (co.co_name, b, pairs[b // 2], l)
    return pairs


def addr2line_check(co, pairs):
    f = ctypes.pythonapi.PyCode_Addr2Line
    f.argtypes = [ctypes.py_object, ctypes.c_int]
    f.restype = ctypes.c_int
    scale = 2 if VER >= (3, 11) else 1
    for off, line in pairs:
        got = f(co, off * scale)
        assert got == line, (co.co_name, off, line, got)


def c_bytes(b):
    if not b:
        return "{0}"
    parts = ["0x%02x" % x for x in b]
    lines = []
    for i in range(0, len(parts), 12):
        lines.append("    " + ", ".join(parts[i:i + 12]) + ",")
    return "{\n" + "\n".join(lines) + "\n}"


def c_pairs(pairs):
    lines = []
    for i in range(0, len(pairs), 6):
        lines.append("    " + " ".join("{%d, %d}," % p for p in pairs[i:i + 6]))
    return "{\n" + "\n".join(lines) + "\n}"


def main():
    if len(sys.argv) != 2:
        print("usage: %s OUTDIR" % sys.argv[0], file=sys.stderr)
        return 2
    top = compile(SOURCE, "<vectors>", "exec")
    codes = all_codes(top)
    out = []
    out.append("/* lines_%s.h - line-table vectors from CPython %s, written by make_line_vectors.py."
               % (TAG, sys.version.split()[0]))
    out.append(" * Plain data for tests/unit/test_linetable.c; regenerate, do not edit. */")
    entries = []
    for n, co in enumerate(codes):
        tab = table_of(co)
        pairs = expected_pairs(co)
        addr2line_check(co, pairs)
        out.append("")
        out.append("/* %s, co_firstlineno %d */" % (co.co_name, co.co_firstlineno))
        out.append("static const uint8_t %s_t%d[] = %s;" % (CID, n, c_bytes(tab)))
        out.append("static const struct lv_pair %s_p%d[] = %s;" % (CID, n, c_pairs(pairs)))
        entries.append('    {"%s", %s, %d, %s_t%d, %d, %s_p%d, %d},'
                       % (co.co_name.replace("<", "").replace(">", ""), fmt_of(),
                          co.co_firstlineno, CID, n, len(tab), CID, n, len(pairs)))
    out.append("")
    out.append("static const struct lv_code %s_codes[] = {" % CID)
    out.extend(entries)
    out.append("};")
    out.append('static const struct lv_set %s_set = {"%s", %s_codes, %d};'
               % (CID, sys.version.split()[0], CID, len(entries)))
    path = os.path.join(sys.argv[1], "lines_%s.h" % TAG)
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("%s: %d code objects" % (path, len(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
