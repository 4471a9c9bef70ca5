"""docs/security.md: every ```python block runs, and prints what the page says it prints."""
import contextlib
import io
import os
import re

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "security.md")


def test_every_snippet_runs_and_prints_what_the_page_shows():
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) >= 4
    for k, source in enumerate(blocks):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, f"docs/security.md block {k}", "exec"), {"__name__": "security_doc"})
        printed = out.getvalue()
        # the output shown in comments: after a print(...) on its line, or on comment lines of their own
        shown = [m.rstrip(". ") for m in re.findall(r"print\(.*\)\s+# (.*)$", source, flags=re.M)]
        shown += [line[2:] for line in source.splitlines() if line.startswith("# ") and "(" not in line[:12]]
        for text in shown:
            assert text.replace("...", "").strip(", ") in printed, f"block {k}: {text!r} not in {printed!r}"
