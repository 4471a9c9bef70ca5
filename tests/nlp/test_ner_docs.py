"""docs/ner.md: every ```python block runs, top to bottom in one namespace."""
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "ner.md")
FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))


def test_every_snippet_of_ner_md_runs(tmp_path, monkeypatch, capsys):
    if not os.path.isdir(os.path.join(FIXTURES, "flair")):
        pytest.skip(f"Flair fixtures not found at {FIXTURES}")
    monkeypatch.setenv("SPAGO_FIXTURES", FIXTURES)
    monkeypatch.chdir(tmp_path)
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {"__name__": "ner_guide"}
    for k, source in enumerate(blocks):
        try:
            exec(compile(source, f"docs/ner.md block {k}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"docs/ner.md python block {k} failed: {type(exc).__name__}: {exc}\n{source}")
    out = capsys.readouterr().out
    assert "(5, 144)" in out and "'label': 'person'" in out and "True" in out
    assert "[('PER', 0, 2), ('LOC', 3, 4)]" in out
