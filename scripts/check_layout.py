#!/usr/bin/env python3
"""The layout rules of issue 30, checked by `make lint`:

  * no import loop among the extension's modules (src/): data flows one way,
    ingest -> queue -> apply -> tables -> notify;
  * no hand-written source file over 700 lines: Rust counted up to its inline
    `#[cfg(test)] mod tests { ... }`; tests (src/pg_tests/, *_tests.rs, pgrx-tests/test_*.py)
    and what is vendored (bench/peer/) left out.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 700


def crate_names(text: str) -> set[str]:
    """The top-level modules a Rust file names through `crate::`."""
    found = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
    for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        depth, part = 0, ""
        for ch in group + ",":
            depth += (ch == "{") - (ch == "}")
            if ch == "," and depth == 0:
                head = part.strip().split("::")[0].strip("{} \n")
                if head:
                    found.add(head)
                part = ""
            else:
                part += ch
    return found


def modules() -> dict[str, set[str]]:
    """Each top-level module of src/ and the top-level modules it uses."""
    deps: dict[str, set[str]] = {}
    for f in sorted((ROOT / "src").rglob("*.rs")):
        name = f.relative_to(ROOT / "src").parts[0].removesuffix(".rs")
        if name in ("lib", "pg_tests"):
            continue
        deps.setdefault(name, set()).update(crate_names(f.read_text()) - {name, "self"})
    return deps


def loops(deps: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (strongly connected, Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(deps.get(v, ())):
            if w not in deps:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def exempt(path: str) -> bool:
    return (
        path.startswith(("src/pg_tests/", "bench/peer/"))
        or path.endswith(("_tests.rs", "conftest.py"))
        or re.search(r"(^|/)test_[^/]*\.py$", path) is not None
    )


def long_files() -> list[tuple[str, int]]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.rs", "*.py", "*.sh"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    out = []
    for path in listed:
        f = ROOT / path
        if exempt(path) or not f.exists():
            continue
        lines = f.read_text().split("\n")
        if path.endswith(".rs"):
            lines = lines[: next((i for i, l in enumerate(lines[:-1])
                                  if l.strip() == "#[cfg(test)]" and lines[i + 1].rstrip().endswith("{")),
                                 len(lines))]
        if len(lines) > LIMIT:
            out.append((path, len(lines)))
    return out


def main() -> int:
    problems = [f"modules import each other: {' <-> '.join(c)}" for c in loops(modules())]
    problems += [f"{p} has {n} lines (over {LIMIT})" for p, n in long_files()]
    for p in problems:
        print(f"check_layout: {p}", file=sys.stderr)
    if not problems:
        print(f"check_layout: no import loop among src/ modules, no source file over {LIMIT} lines")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
