"""docs/nn.md: every ```python block runs, top to bottom in one namespace, as the guide promises."""
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "nn.md")


def blocks() -> list:
    with open(DOC, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_the_guide_has_snippets():
    assert len(blocks()) >= 20


def test_every_snippet_of_the_guide_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the guide saves a file in the working directory
    namespace: dict = {"__name__": "nn_guide"}
    for k, source in enumerate(blocks()):
        try:
            exec(compile(source, f"docs/nn.md block {k}", "exec"), namespace)
        except Exception as exc:  # name the block, so a broken snippet is easy to find
            pytest.fail(f"docs/nn.md python block {k} failed: {type(exc).__name__}: {exc}\n{source}")
