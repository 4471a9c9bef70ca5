"""Regenerate the pass table of docs/passes.md from the default pipeline (``spago.passes.default_passes``).

Order, pass names and modules come from the pipeline; each row keeps the description the doc already has
for that pass (its n-th occurrence), and a pass new to the doc gets the first paragraph of its module's
docstring, to be edited by hand. ``python tools/passes_doc.py`` rewrites the doc; ``--check`` exits 1 when
the doc is stale (the test suite runs the same comparison).
"""
from __future__ import annotations

import os
import re
import sys

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "passes.md")
HEADER = "| order | pass | module | what it does |\n| --- | --- | --- | --- |\n"
ROW = re.compile(r"^\| *[^|]* *\| *`(\w+)` *\| *[^|]*\|(.*)\|\s*$")


def _table_span(text: str) -> tuple[int, int]:
    start = text.index(HEADER)
    end = start + len(HEADER)
    while end < len(text) and text.startswith("|", end):
        end = text.index("\n", end) + 1
    return start, end


def described(text: str) -> dict:
    """(pass name, occurrence) -> the description the doc gives it."""
    start, end = _table_span(text)
    out, seen = {}, {}
    for line in text[start + len(HEADER):end].splitlines():
        m = ROW.match(line)
        if m:
            k = seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            out[(m.group(1), k)] = m.group(2).strip()
    return out


def table(text: str) -> str:
    """The pass table for the current default pipeline, descriptions kept from ``text``."""
    from spago.passes import default_passes

    inference, training = default_passes(inference=True), default_passes(inference=False)
    old, seen, rows = described(text), {}, []
    for order, p in enumerate(inference, 1):
        name = p.__name__
        k = seen[name] = seen.get(name, 0) + 1
        module = sys.modules[p.__module__]
        first = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
        text_ = old.get((name, k)) or (first if k == 1 else "again")
        if p not in training and not text_.startswith("inference only"):
            text_ = "inference only: " + text_
        rows.append(f"| {order} | `{name}` | `{os.path.basename(module.__file__)}` | {text_} |")
    return HEADER + "\n".join(rows) + "\n"


def regenerate(text: str) -> str:
    start, end = _table_span(text)
    return text[:start] + table(text) + text[end:]


def main(argv: list) -> int:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    new = regenerate(text)
    if "--check" in argv:
        return int(new != text)
    if new != text:
        with open(DOC + ".tmp", "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(DOC + ".tmp", DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
