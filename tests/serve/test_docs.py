"""docs/serving.md: every ```python block runs, top to bottom in one namespace, and prints what it says."""
import os
import re

import pytest

from .conftest import FIXTURES

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "serving.md")


def test_every_snippet_of_serving_md_runs(monkeypatch, capsys):
    if not os.path.isdir(os.path.join(FIXTURES, "tiny-bert")):
        pytest.skip(f"fixtures not found at {FIXTURES}")
    monkeypatch.setenv("SPAGO_FIXTURES", FIXTURES)
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {"__name__": "serving_guide"}
    for k, source in enumerate(blocks):
        try:
            exec(compile(source, f"docs/serving.md block {k}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"docs/serving.md python block {k} failed: {type(exc).__name__}: {exc}\n{source}")
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(" True") and out[1:3] == ["['/answer']", "404"]
    assert out[3:6] == ["['/encode', '/search', '/similarity']", "32", "dict_keys(['index', 'text', 'score'])"]
    assert "exactly one of the fields `text` and `texts`" in out[6]
