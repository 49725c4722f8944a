"""The maps the program's sources declare, in declaration order, read as the preprocessor would.

BCC gives each map a placeholder descriptor, -1, -2, ... in the order the
sources declare them; hft_tui/bccload.py needs that order to replace the
placeholders BCC leaves in the code past its view.  This module reads it:
``"..."`` includes followed where the compiler finds them, conditionals
evaluated (``#ifdef``, ``#ifndef``, ``#if``/``#elif`` over ``defined()``
and integers, ``#else``, ``#endif``) against the build's ``-D`` flags and the
sources' own ``#define``s, and every map macro BCC 0.26 offers known by the
argument that names the map.  What it cannot tell is refused in one line,
never guessed: a map under a conditional it does not evaluate, a ``BPF_*``
macro it does not know.  bccload also checks the result against BCC's own
list of tables, so a map missed here cannot shift the others silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .errors import EngineError

# BCC 0.26's map macros (src/cc/export/helpers.h): which argument names the map.
NAME_ARG: dict[str, int] = {
    **dict.fromkeys(
        (
            "HASH", "ARRAY", "HISTOGRAM", "PERCPU_HASH", "PERCPU_ARRAY", "LPM_TRIE", "PERF_OUTPUT",
            "PERF_ARRAY", "RINGBUF_OUTPUT", "PROG_ARRAY", "DEVMAP", "CPUMAP", "XSKMAP", "STACK_TRACE",
            "STACK_TRACE_BUILDID", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "SK_STORAGE", "INODE_STORAGE",
            "TASK_STORAGE", "CGROUP_STORAGE", "PERCPU_CGROUP_STORAGE", "SOCKMAP", "SOCKHASH", "QUEUE",
            "STACK", "CGROUP_ARRAY",
        ),
        0,
    ),
    **dict.fromkeys(("QUEUESTACK", "QUEUESTACK_PINNED", "QUEUESTACK_PUBLIC", "QUEUESTACK_SHARED"), 1),
    "XDP_REDIRECT_MAP": 2,
    **dict.fromkeys(("TABLE", "TABLE_PINNED", "TABLE_PUBLIC", "TABLE_SHARED", "F_TABLE"), 3),
}  # fmt: skip
# BCC's BPF_* macros a source may write at a statement's start that declare no map.
NOT_MAPS = frozenset({"PROG", "ITER", "ANNOTATE_KV_PAIR", "ANNOTATE_KV_PAIR_QUEUESTACK"})
# What BCC's compiler defines for every program (the rest of the compiler's own __names are unknown).
PREDEFINED = {"__KERNEL__": "1"}
MAX_DEPTH = 64  # includes within includes

_MAYBE = object()  # a #define under a conditional not evaluated: maybe defined
_DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(.*)$")
_MACRO = re.compile(r"^\s*BPF_([A-Z0-9_]+)\s*\(")
_INCLUDE = re.compile(r'^"([^"]+)"')
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_DEFINED = re.compile(r"\bdefined\s*(?:\(\s*(\w+)\s*\)|(\w+))")
_TOKEN = re.compile(r"0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%<>!~&|^()]|\s+")
_INT_LITERAL = re.compile(r"^(0[xX][0-9a-fA-F]+|\d+)[uUlL]*$")


def _strip_comments(text: str) -> str:
    """Comments gone (their newlines kept, so line numbers hold), continued lines joined."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"\\\n", " ", text)


def _and(values) -> bool | None:
    vals = list(values)
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


class _Scan:
    """One walk through the sources, as the preprocessor takes them."""

    def __init__(self, include_dirs: list[Path], defines: Mapping[str, object]) -> None:
        self.include_dirs = include_dirs
        self.defines = dict(defines)
        self.maps: list[str] = []

    def defined(self, name: str) -> bool | None:
        if name in self.defines:
            return None if self.defines[name] is _MAYBE else True
        if name in PREDEFINED:
            return True
        return None if name.startswith("__") else False

    def value(self, name: str) -> int | None:
        if self.defined(name) is False:
            return 0  # C: an identifier that is no macro is 0 in #if
        raw = self.defines.get(name, PREDEFINED.get(name))
        m = _INT_LITERAL.match(raw.strip()) if isinstance(raw, str) else None
        return int(m.group(1), 0) if m else None

    def evaluate(self, expr: str) -> bool | None:
        """An #if expression of defined() and integers; None when it holds anything else."""
        unknown = False

        def defined(m: re.Match) -> str:
            nonlocal unknown
            d = self.defined(m.group(1) or m.group(2))
            unknown |= d is None
            return "1" if d else "0"

        expr = _DEFINED.sub(defined, expr)
        out, pos = [], 0
        while pos < len(expr):
            m = _TOKEN.match(expr, pos)
            if not m:
                return None
            tok, pos = m.group(), m.end()
            if _IDENT.match(tok):
                if expr[pos:].lstrip().startswith("("):
                    return None  # a function-like macro's call
                v = self.value(tok)
                if v is None:
                    return None
                tok = str(v)
            elif _INT_LITERAL.match(tok):
                tok = str(int(_INT_LITERAL.match(tok).group(1), 0))  # type: ignore[union-attr]
            out.append({"&&": " and ", "||": " or ", "!": " not ", "/": "//"}.get(tok, tok))
        if unknown:
            return None
        try:
            return bool(eval("".join(out), {"__builtins__": {}}))  # digits and operators only
        except Exception:
            return None

    def visit(self, path: Path, depth: int, outer: bool | None) -> None:
        if depth > MAX_DEPTH:
            raise EngineError(f"{path.name}: includes nested more than {MAX_DEPTH} deep")
        lines = _strip_comments(path.read_text()).split("\n")
        stack: list[list[bool | None]] = []  # [this branch taken, some branch of the #if taken]

        def active() -> bool | None:
            return _and([outer, *(frame[0] for frame in stack)])

        i = 0
        while i < len(lines):
            line, lineno = lines[i], i + 1
            i += 1
            d = _DIRECTIVE.match(line)
            if d:
                self.directive(path, lineno, d.group(1), d.group(2).strip(), stack, active, depth)
                continue
            m = _MACRO.match(line)
            if not m or active() is False:
                continue
            text = line[m.end() :]
            while text.count("(") + 1 > text.count(")") and i < len(lines):
                text += " " + lines[i]
                i += 1
            self.declaration(path, lineno, m.group(1), text, active())
        if stack:
            raise EngineError(f"{path.name}: an #if without its #endif")

    def directive(self, path: Path, lineno: int, kind: str, rest: str, stack, active, depth: int) -> None:
        where = f"{path.name}:{lineno}"
        v: bool | None
        if kind in ("ifdef", "ifndef"):
            d = self.defined(rest.split()[0]) if rest else None
            v = d if kind == "ifdef" or d is None else not d
            stack.append([v, v])
        elif kind == "if":
            v = self.evaluate(rest)
            stack.append([v, v])
        elif kind in ("elif", "else"):
            if not stack:
                raise EngineError(f"{where}: #{kind} without an #if")
            taken = stack[-1][1]
            if taken is True:
                v = False
            elif kind == "else":
                v = None if taken is None else True
            else:
                e = self.evaluate(rest)
                v = None if taken is None and e is not False else e
            stack[-1] = [v, True if taken or v else (None if taken is None or v is None else False)]
        elif kind == "endif":
            if not stack:
                raise EngineError(f"{where}: #endif without an #if")
            stack.pop()
        elif active() is False:
            return
        elif kind == "define" and rest:
            name, _, value = rest.replace("\t", " ").partition(" ")
            if "(" not in name:  # function-like macros decide nothing here
                self.defines[name] = value if active() else _MAYBE
        elif kind == "undef" and rest:
            if active():
                self.defines.pop(rest.split()[0], None)
            else:
                self.defines[rest.split()[0]] = _MAYBE
        elif kind == "include":
            inc = _INCLUDE.match(rest)
            if inc:  # <...>: the kernel's and the system's headers declare no map of ours
                for folder in [path.parent, *self.include_dirs]:
                    if (folder / inc.group(1)).exists():
                        self.visit((folder / inc.group(1)).resolve(), depth + 1, active())
                        break

    def declaration(self, path: Path, lineno: int, macro: str, text: str, active: bool | None) -> None:
        where = f"{path.name}:{lineno}"
        if macro in NOT_MAPS:
            return
        if macro not in NAME_ARG:
            raise EngineError(f"{where}: BPF_{macro}(...) is no map macro the loader knows (bccsource.NAME_ARG)")
        args, depth, cur = [], 0, ""
        for ch in text:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    break
                depth -= 1
            if ch == "," and depth == 0:
                args.append(cur.strip())
                cur = ""
            else:
                cur += ch
        args.append(cur.strip())
        index = NAME_ARG[macro]
        name = args[index] if index < len(args) else ""
        if not _IDENT.match(name):
            raise EngineError(f"{where}: BPF_{macro}(...): no map name where BCC takes it (argument {index + 1})")
        if args[0].strip('"') == "extern":
            raise EngineError(f"{where}: map {name} is another program's (extern): the loader cannot place it")
        if active is None:
            raise EngineError(
                f"{where}: cannot tell whether map {name} is compiled in: a conditional around it is beyond the loader"
            )
        self.maps.append(name)


def declared_maps(source: Path, include_dirs: list[Path], defines: set[str] | dict[str, str]) -> list[str]:
    """Map names in declaration order (BCC numbers its placeholders in this order), for a
    build with these ``-D`` names (a set) or names and values (a dict)."""
    values = dict(defines) if isinstance(defines, dict) else dict.fromkeys(defines, "1")
    scan = _Scan(include_dirs, values)
    scan.visit(source.resolve(), 0, True)
    return scan.maps
