"""``spago bench NAME``: run ``bench/NAME.py`` of a source checkout.

The benchmarks are harnesses (baseline runtimes in child processes, tables of ratios), not library code,
so they live in the repository's ``bench/`` folder and are not installed with the package. The command
finds that folder from ``SPAGO_BENCH_DIR``, the current directory's ``bench/``, or the checkout the
package itself was imported from (``src/spago`` -> ``bench/``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .errors import SpagoError

__all__ = ["bench_dir", "bench_names", "run_bench"]


def bench_dir() -> Path | None:
    """The first ``bench/`` folder holding benchmark scripts, or None."""
    here = Path(__file__).resolve().parent  # .../src/spago
    candidates = [os.environ.get("SPAGO_BENCH_DIR"), Path.cwd() / "bench", here.parent.parent / "bench"]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("*.py")):
            return Path(c)
    return None


def bench_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def run_bench(name: str, options: list[str]) -> int:
    """Run benchmark ``name`` with ``options`` in a fresh interpreter; returns its exit status."""
    folder = bench_dir()
    if folder is None:
        raise SpagoError("spago bench runs the scripts in a source checkout's bench/ folder, which is not "
                         "installed with the package: run it from a clone of the repository, or set "
                         "SPAGO_BENCH_DIR to that folder")
    names = bench_names(folder)
    if name not in names:
        raise SpagoError(f"no benchmark {name!r} in {folder}; expected one of {', '.join(names)}")
    return subprocess.call([sys.executable, str(folder / f"{name}.py"), *options])
