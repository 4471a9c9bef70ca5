"""Each example runs as a test and reproduces the numbers it claims."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)

import linear_regression  # noqa: E402
import perceptron  # noqa: E402
import quickstart  # noqa: E402
import sum as sum_example  # noqa: E402


def test_sum():
    out = sum_example.main()
    assert out == {"c": 7.0, "ga": 0.5, "gb": 0.5}


def test_perceptron(tmp_path):
    out = perceptron.main(str(tmp_path / "perceptron.svg"))
    y = 1 / (1 + math.exp(-(0.4 * -0.8 - 0.2)))
    assert math.isclose(out["y"], y, rel_tol=1e-6)
    assert math.isclose(out["gw"], y * (1 - y) * -0.8, rel_tol=1e-5)
    assert math.isclose(out["gb"], y * (1 - y), rel_tol=1e-5)
    assert "sigmoid" in out["dot"] and (tmp_path / "perceptron.svg").read_text().startswith("<?xml")


def test_linear_regression():
    out = linear_regression.main()
    assert f"{out['W']:.2f}" == "3.00" and f"{out['B']:.2f}" == "1.00"


def test_quickstart():
    out = quickstart.main()
    np.testing.assert_allclose(out["grad"], 2 * (1 - np.tanh([[1, 2], [3, 4]]) ** 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["compiled"], out["eager"], rtol=1e-5, atol=1e-6)


def test_quickstart_runs_as_a_script():
    done = subprocess.run([sys.executable, os.path.join(HERE, "quickstart.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "kernels:" in done.stdout


def test_tracing(tmp_path):
    import tracing

    out = tracing.main(str(tmp_path))
    assert out["losses"][-1] < out["losses"][0]
    assert all(os.path.getsize(p) > 0 for p in out["paths"])
    assert "hidden" in out["forward"].to_dot() and out["step"].op_counts()["matmul"] >= 4
