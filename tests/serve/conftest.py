"""Shared by the server tests: the fixture models, apps built once per session, and a real uvicorn server on a
free 127.0.0.1 port, run in a thread and stopped by the test that started it."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
_APPS: dict = {}


def fixture(name: str) -> str:
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        pytest.skip(f"fixture model {path} not found")
    return path


def app_for(kind: str, name: str, **options):
    """build_app on a fixture model, once per session for the same arguments (quiet, small batches); built
    again once a lifespan has ended (a test client's or schemathesis' shutdown closes the app's batcher)."""
    from spago.serve.app import build_app

    options = {"max_batch": 4, "log": None, **options}
    key = (kind, name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key not in _APPS or _APPS[key].state.batcher.closed:
        _APPS[key] = build_app(kind, fixture(name), **options)
    return _APPS[key]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app, **ssl):
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yields the base URL; stops the server on exit."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **ssl))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
