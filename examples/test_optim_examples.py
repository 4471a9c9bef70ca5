"""The training examples reach what they claim, eagerly and compiled."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)

import linear_regression_sgd  # noqa: E402
import xor  # noqa: E402


@pytest.mark.parametrize("compiled", [False, True])
def test_xor_reaches_full_accuracy(compiled):
    out = xor.main(compiled=compiled)
    assert out["accuracy"] == 1.0
    assert out["history"][-1] < out["history"][0]


@pytest.mark.parametrize("compiled", [False, True])
def test_linear_regression_sgd_learns_the_line(compiled):
    out = linear_regression_sgd.main(compiled=compiled)
    assert f"{out['W']:.2f}" == "3.00" and f"{out['B']:.2f}" == "1.00"


def test_xor_runs_as_a_script_compiled():
    done = subprocess.run([sys.executable, os.path.join(HERE, "xor.py"), "--compiled", "--epochs", "300"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "accuracy 100%" in done.stdout
