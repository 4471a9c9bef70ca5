"""Fixtures shared by the IR tests."""
import shutil

import pytest


@pytest.fixture(params=["system dot", "webassembly"])
def renderer(request, monkeypatch, tmp_path):
    """Both ways of drawing: the system's ``dot`` (skipped where it is not installed) and, with ``dot``
    hidden from PATH, Graphviz compiled to WebAssembly."""
    if request.param == "system dot":
        if shutil.which("dot") is None:
            pytest.skip("Graphviz's dot program is not installed")
    else:
        monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
        assert shutil.which("dot") is None
    return request.param
