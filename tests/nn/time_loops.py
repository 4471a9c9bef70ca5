"""An autouse fixture for tests of layers with time loops: import ``time_loops`` into a test module and every
test there runs twice, with the loops as `spago.scan` loops (the default) and unrolled."""
import pytest

import spago


@pytest.fixture(autouse=True, params=["scan", "unrolled"])
def time_loops(request, monkeypatch):
    """Every test runs twice: with the layers' time loops as `spago.scan` loops (the default) and unrolled."""
    if request.param == "unrolled":
        real = spago.ops.scan
        monkeypatch.setattr(spago.ops, "scan", lambda *a, **k: real(*a, **{**k, "unroll": True}))
    return request.param
