"""Every ```python snippet of README.md and docs/*.md runs, each document top to bottom in one namespace (as
a reader would paste them), in a scratch checkout: ``../shared/fixtures`` lies beside it, and the README's
placeholder folder ``path/to/hf-folder`` is the tiny BERT fixture."""
from __future__ import annotations

import glob
import os
import re

import pytest

from spago.ops.registry import OPS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.path.join(ROOT, "..", "shared")
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
# Guides whose snippets a test of their own runs, with the fixture they need (a Ray cluster, a server, the Flair
# files) and checks of what they print; running them here too would do the work twice, and docs/distributed.md
# would start a second Ray session in this process beside that test's cluster.
RUN_BY = {"docs/distributed.md": "tests/distributed/test_local.py",
          "docs/embeddings.md": "tests/nlp/test_embeddings.py", "docs/ner.md": "tests/nlp/test_ner_docs.py", "docs/security.md": "tests/security/test_security_doc.py",
          "docs/serving.md": "tests/serve/test_docs.py"}


def blocks(doc: str) -> list:
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_the_guides_have_snippets():
    assert len(blocks("docs/nn.md")) >= 20 and len(blocks("README.md")) >= 3
    assert sum(len(blocks(d)) for d in DOCS) >= 50


def test_the_guides_run_elsewhere_are_run_there():
    for doc, test in RUN_BY.items():
        with open(os.path.join(ROOT, test), encoding="utf-8") as f:
            source = f.read()
        assert blocks(doc) and os.path.basename(doc) in source and "exec(compile(" in source, (doc, test)


@pytest.mark.parametrize("doc", [d for d in DOCS if blocks(d) and d not in RUN_BY])
def test_every_snippet_runs(doc, tmp_path, monkeypatch):
    text = "".join(blocks(doc))
    if ("fixtures" in text or "hf-folder" in text) and not os.path.isdir(os.path.join(SHARED, "fixtures")):
        pytest.skip(f"{doc} reads the reference fixtures, and ../shared/fixtures is absent")
    checkout = tmp_path / "checkout"
    (checkout / "path" / "to").mkdir(parents=True)
    if os.path.isdir(SHARED):
        (tmp_path / "shared").symlink_to(os.path.abspath(SHARED))
        (checkout / "path" / "to" / "hf-folder").symlink_to(os.path.join(os.path.abspath(SHARED), "fixtures",
                                                                         "tiny-bert", "base"))
    monkeypatch.chdir(checkout)
    registered = set(OPS)
    namespace: dict = {"__name__": "doc_snippets"}
    try:
        for k, source in enumerate(blocks(doc)):
            try:
                exec(compile(source, f"{doc} block {k}", "exec"), namespace)
            except Exception as exc:  # name the block, so a broken snippet is easy to find
                pytest.fail(f"{doc} python block {k} failed: {type(exc).__name__}: {exc}\n{source}")
    finally:
        for name in set(OPS) - registered:  # an op a guide registers (docs/eager.md's cube) stays in the guide
            del OPS[name]


def passes_doc():
    import importlib.util

    spec = importlib.util.spec_from_file_location("passes_doc", os.path.join(ROOT, "tools", "passes_doc.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_passes_doc_lists_the_default_pipeline():
    from spago.passes import default_passes

    tool = passes_doc()
    with open(tool.DOC, encoding="utf-8") as f:
        text = f.read()
    assert tool.regenerate(text) == text, "docs/passes.md is stale: run python tools/passes_doc.py"
    listed = re.findall(r"^\| \d+ \| `(\w+)` \|", text, flags=re.M)
    assert listed == [p.__name__ for p in default_passes()]
    assert all(description.strip() for description in tool.described(text).values())


def test_a_stale_passes_doc_is_caught_and_rewritten():
    tool = passes_doc()
    with open(tool.DOC, encoding="utf-8") as f:
        text = f.read()
    row = re.search(r"^\| (\d+) \| `merge_shared_input` .*\n", text, flags=re.M)
    stale = text.replace(row.group(0), "")  # a pass the doc forgot
    assert stale != text and tool.regenerate(stale) != stale
    assert (f"| {row.group(1)} | `merge_shared_input` | `merge_shared_input.py` | Products that read the same input"
            in tool.regenerate(stale))
