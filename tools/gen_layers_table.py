"""Generate docs/layers.md: run the zoo registry's checks (tests/nn/zoo.py) — the float64 finite-difference
gradient check and the compiled-vs-eager parity — and render one table row per layer from their results.

Run from the repository root: PYTHONPATH=src python tools/gen_layers_table.py [--out docs/layers.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "layers.md")

HEADER = """# The model zoo, layer by layer

Every layer below is written against the op API, so it runs eagerly and compiled. This table is generated
by `tools/gen_layers_table.py` from the checks of `tests/nn/zoo.py` (do not edit it by hand):

- **gradient** — the tape's gradients of every parameter and input equal float64 central finite
  differences (`spago.testing.check_module_grad`);
- **compiled** — `spago.compile` of the layer returns what the eager layer returns (float32, rtol 1e-4).

Each class's docstring gives the full equations; the Go spaGO's options are keyword arguments with the
paper's or the Go spaGO's defaults, so `X(input_size, hidden_size)` works for every recurrent layer.
`tests/nn/test_zoo.py` runs the same checks and fails if this file is out of date.
"""


def render(entries: list, results: dict) -> str:
    """The markdown document for ``entries``; ``results[(name, check)]`` is True when the check passed."""
    def mark(ok: bool) -> str:
        return "pass" if ok else "**FAIL**"

    lines = [HEADER, "| layer | group | equation | paper | gradient | compiled |", "|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| `{e.name}` | {e.group} | {e.equation} | {e.paper} | {mark(results[(e.name, 'gradient')])} "
                     f"| {mark(results[(e.name, 'compiled')])} |")
    passed = sum(results.values())
    lines += ["", f"{len(entries)} layers, {passed} of {len(results)} checks pass.", ""]
    return "\n".join(lines)


def run_checks(entries: list, checks: dict) -> dict:
    results = {}
    for e in entries:
        for name, check in checks.items():
            try:
                check(e)
                results[(e.name, name)] = True
            except Exception as exc:  # a failing check is a row to report, not a crash
                print(f"{e.name}: {name} check failed: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
                results[(e.name, name)] = False
    return results


def write_atomically(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DOC)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tests.nn.zoo import CHECKS, ENTRIES

    results = run_checks(ENTRIES, CHECKS)
    write_atomically(args.out, render(ENTRIES, results))
    print(f"wrote {args.out}: {len(ENTRIES)} layers, {sum(results.values())}/{len(results)} checks pass")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
