"""``spago graph MODULE:FUNCTION --input NAME=SHAPE[:DTYPE] -o out.svg``."""
from __future__ import annotations

import os
import sys

import pytest

from spago.cli import main

MODULE = '''
import numpy as np
import spago as sp
W = sp.tensor(np.ones((4, 3), np.float32))
W.name = "layer.weight"
def forward(x, scale):
    with sp.ir.scope("layer"):
        h = sp.relu(x @ W)
    return (h * scale).sum()
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "cli_model.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("cli_model", None)


def test_renders_svg_and_prints(module, capsys, renderer):
    out = module / "g.svg"
    assert main(["graph", "cli_model:forward", "--input", "x=2x4", "--input", "scale=2,3:float32", "-o", str(out),
                 "--print"]) == 0
    assert out.read_text().lstrip().startswith("<?xml") and "matmul" in out.read_text()
    assert "graph forward(%x: float32[2,4], %scale: float32[2,3])" in capsys.readouterr().out


@pytest.mark.parametrize("suffix, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_renders_png_and_pdf(module, renderer, suffix, magic):
    out = module / f"g.{suffix}"
    assert main(["graph", "cli_model:forward", "-i", "x=2x4", "-i", "scale=2x3", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_prints_when_no_output_file(module, capsys):
    assert main(["graph", "cli_model:forward", "-i", "x=1x4", "-i", "scale=1x3"]) == 0
    assert "relu" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["graph", "cli_model:forward", "--input", "x"], "expected NAME=SHAPE"),
    (["graph", "cli_model:forward", "--input", "x=2xA"], "must be integers"),
    (["graph", "no_such_module:f", "--input", "x=2"], "cannot import module"),
    (["graph", "cli_model:missing", "--input", "x=2"], "has no attribute"),
    (["graph", "cli_model", "--input", "x=2"], "expected MODULE:FUNCTION"),
    (["graph", "cli_model:forward", "--input", "x=2x5", "--input", "scale=2x3"], "matmul: inner dimensions"),
    (["graph", "cli_model:forward", "--input", "x=2x4:float99", "--input", "scale=2x3"], "unknown dtype"),
    (["graph", "cli_model:forward"], "cli_model:forward takes x, scale: give each with --input NAME=SHAPE"),
    (["graph", "cli_model:forward", "-i", "x=2x4"], "takes scale: give each with --input"),
])
def test_bad_calls_exit_2_with_a_message(module, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_collapse_draws_deep_scopes_as_boxes(module):
    out = module / "g.dot"
    argv = ["graph", "cli_model:forward", "-i", "x=2x4", "-i", "scale=2x3", "-o", str(out), "--collapse", "0"]
    assert main(argv) == 0
    text = out.read_text()
    assert "shape=box3d" in text and "layer" in text and "relu" not in text  # the layer is one box


def test_console_script_is_installed():
    import shutil

    assert shutil.which("spago") is not None or os.environ.get("CI") is None
