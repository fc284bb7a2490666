#!/usr/bin/env python3
"""Fail on any circle in herald's include graph.

A module is include/herald/NAME.h together with src/NAME.c (either may be
missing: main has no header, http_deps no source). Module A depends on B
when one of A's files has `#include "herald/B.h"`. The graph must have no
cycle: every cycle found is printed as a path, and the exit status is 1.
Usage: tests/check_includes.py [repo root]   (default: this file's parent's parent)
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"herald/([A-Za-z0-9_]+)\.h"', re.M)


def graph(root):
    deps = {}
    files = list((root / "src").glob("*.c")) + list((root / "include" / "herald").glob("*.h"))
    for f in files:
        mod = f.stem
        deps.setdefault(mod, set())
        for m in INCLUDE.finditer(f.read_text(encoding="utf-8", errors="replace")):
            if m.group(1) != mod:
                deps[mod].add(m.group(1))
    for targets in list(deps.values()):
        for t in targets:
            deps.setdefault(t, set())
    return deps


def cycles(deps):
    """Tarjan's strongly connected components; each with more than one
    module (or a self-loop, impossible here) holds a cycle."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
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


def path_in(deps, comp):
    """One concrete cycle through comp's first module, for the message."""
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(deps[v] & members):
                if w == start:
                    p = [v]
                    while prev[p[-1]] is not None:
                        p.append(prev[p[-1]])
                    return list(reversed(p)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
    deps = graph(root)
    found = cycles(deps)
    for comp in found:
        print("include cycle: " + " -> ".join(path_in(deps, comp))
              + ("  (modules in the circle: " + ", ".join(comp) + ")" if len(comp) > 2 else ""))
    if found:
        return 1
    print(f"include graph: {len(deps)} modules, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
