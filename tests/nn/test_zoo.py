"""Every layer of the zoo registry: float64 finite-difference gradients and compiled-vs-eager parity, and
docs/layers.md in step with the registry and these results."""
from __future__ import annotations

import importlib.util
import os

import pytest

import spago

from .zoo import CHECKS, ENTRIES

RECURRENT = [e for e in ENTRIES if e.group == "recurrent"]

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _tool():
    spec = importlib.util.spec_from_file_location("gen_layers_table", os.path.join(ROOT, "tools", "gen_layers_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_gradient_matches_finite_differences(entry):
    CHECKS["gradient"](entry)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_compiled_matches_eager(entry):
    CHECKS["compiled"](entry)


@pytest.mark.parametrize("entry", RECURRENT, ids=[e.name for e in RECURRENT])
def test_compiled_matches_eager_with_unrolled_time_loops(entry, monkeypatch):
    """The recurrent rows again with their time loops unrolled (``unroll=True``), the form the default
    `spago.scan` loops replace: both compile to what eager computes."""
    real = spago.ops.scan
    monkeypatch.setattr(spago.ops, "scan", lambda *a, **k: real(*a, **{**k, "unroll": True}))
    CHECKS["compiled"](entry)


def test_registry_names_are_unique():
    names = [e.name for e in ENTRIES]
    assert len(names) == len(set(names))


def test_layers_doc_is_generated_from_the_registry_and_its_passing_checks():
    """The checks above all pass, so the generated document must be the all-pass rendering of the registry;
    regenerate it with tools/gen_layers_table.py when a row changes."""
    tool = _tool()
    want = tool.render(ENTRIES, {(e.name, c): True for e in ENTRIES for c in CHECKS})
    with open(os.path.join(ROOT, "docs", "layers.md"), encoding="utf-8") as f:
        assert f.read() == want, "docs/layers.md is out of date: run PYTHONPATH=src python tools/gen_layers_table.py"


def test_the_tool_reports_a_failing_check():
    tool = _tool()
    entry = ENTRIES[0]

    def broken(_):
        raise AssertionError("boom")

    results = tool.run_checks([entry], {"gradient": broken, "compiled": lambda e: None})
    text = tool.render([entry], results)
    assert results == {(entry.name, "gradient"): False, (entry.name, "compiled"): True}
    assert "**FAIL**" in text and "1 of 2 checks pass" in text
