#!/usr/bin/env python3
"""Module dependencies inside each crate of the workspace, and the import loops among them.

Reads every `src/**/*.rs` of a crate, takes the top-level module a file belongs to, and
records which other top-level modules of the same crate it names (`crate::x`, `super::x` at
the top level, `use crate::{x, y}`). Prints one line per module with what it uses, then the
loops: strongly connected components of more than one module. Exit status 1 when a crate
listed in --no-loops has a loop (CI runs it so for the crates that must stay loop-free).

    python3 deploy/module-deps.py [--no-loops engine,pipelines,...] [crate ...]
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["pipelines", "engine", "connectors", "runtime", "control-plane", "cli", "benches", "testkit"]


def top_module(src: Path, file: Path) -> str:
    rel = file.relative_to(src)
    first = rel.parts[0]
    if first in ("lib.rs", "main.rs"):
        return "<root>"
    return first[:-3] if first.endswith(".rs") else first


def modules_named(text: str, known: set) -> set:
    names = set()
    for m in re.finditer(r"crate::([a-z_][a-z0-9_]*)", text):
        names.add(m.group(1))
    for m in re.finditer(r"use crate::\{([^}]*)\}", text, re.S):
        for part in m.group(1).split(","):
            head = part.strip().split("::")[0].strip()
            if head:
                names.add(head)
    return names & known


def graph(crate: str) -> dict:
    src = ROOT / crate / "src"
    files = [f for f in src.rglob("*.rs")]
    known = {top_module(src, f) for f in files} - {"<root>"}
    deps = {m: set() for m in known}
    for f in files:
        m = top_module(src, f)
        if m == "<root>":
            continue
        text = f.read_text()
        # Test modules may reach anywhere; only production code counts.
        text = text.split("#[cfg(test)]")[0]
        deps[m] |= modules_named(text, known) - {m}
    return deps


def loops(deps: dict) -> list:
    """Tarjan's strongly connected components with more than one member."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def main(argv):
    strict = set()
    if argv[:1] == ["--no-loops"]:
        strict = set(argv[1].split(","))
        argv = argv[2:]
    crates = argv or CRATES
    failed = False
    for crate in crates:
        deps = graph(crate)
        print(f"## {crate}")
        for m in sorted(deps):
            print(f"  {m} -> {', '.join(sorted(deps[m])) or '(nothing)'}")
        found = loops(deps)
        for comp in found:
            print(f"  LOOP: {' <-> '.join(comp)}")
        if not found:
            print("  no import loops")
        if found and crate in strict:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
