"""Fuzzing harness: every target either succeeds or raises a spago error, within a time bound.

The default run gives each target a small fixed budget (``DEFAULT_EXAMPLES``, seconds in all);
``SPAGO_FUZZ_EXAMPLES=N`` runs N examples per target (and random seeds instead of the fixed ones).
``SPAGO_FUZZ_REPORT=path`` writes a JSON table of outcomes per target at the end of the session."""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, settings

from spago.errors import SpagoError

DEFAULT_EXAMPLES = 20
EXAMPLES = int(os.environ.get("SPAGO_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
HANG_SECONDS = 30.0

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="SPAGO_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=list(HealthCheck))

STATS: dict = collections.defaultdict(collections.Counter)
_LOCK = threading.Lock()


def outcome(target: str, fn, *args, **kwargs):
    """Run one case: a result or a clean SpagoError is fine; anything else fails the test (a crash), as does
    taking longer than HANG_SECONDS (a hang). Returns the result, or the SpagoError raised."""
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
        kind = "ok"
    except SpagoError as exc:
        result, kind = exc, "clean error"
    except Exception:
        with _LOCK:
            STATS[target]["cases"] += 1
            STATS[target]["crashes"] += 1
        raise
    elapsed = time.perf_counter() - start
    with _LOCK:
        STATS[target]["cases"] += 1
        STATS[target][kind] += 1
        STATS[target]["slowest ms"] = max(STATS[target]["slowest ms"], round(elapsed * 1000))
        if elapsed > HANG_SECONDS:
            STATS[target]["hangs"] += 1
    assert elapsed <= HANG_SECONDS, f"{target}: one case took {elapsed:.1f} s"
    return result


@pytest.fixture(scope="session", autouse=True)
def _report():
    yield
    path = os.environ.get("SPAGO_FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({k: dict(v) for k, v in sorted(STATS.items())}, f, indent=1)


def run_in_child(module: str, function: str) -> None:
    """Run the fuzz function ``module.function`` (a hypothesis-given function, not itself a test) in a child
    process, so a crash of the interpreter (a segfault on some hostile input) fails the test instead of
    killing pytest; the child's outcome counts are merged into this session's."""
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats.json")
        code = (f"import json, sys; from {module} import {function}; from tests.fuzz.conftest import STATS\n"
                f"try:\n    {function}()\nfinally:\n"
                f"    json.dump({{k: dict(v) for k, v in STATS.items()}}, open({stats!r}, 'w'))")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(os.path.join(root, "src")),
                                                            os.path.abspath(root)]))
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
        if os.path.exists(stats):
            with open(stats) as f:
                for target, counts in json.load(f).items():
                    for key, value in counts.items():
                        STATS[target][key] = max(STATS[target][key], value) if key == "slowest ms" \
                            else STATS[target][key] + value
        else:
            STATS[function]["crashes"] += 1
    assert proc.returncode == 0, f"{function} failed in its child (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
