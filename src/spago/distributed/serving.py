"""The `spago serve` app on Ray Serve: each replica builds the same FastAPI app (`spago.serve.app.build_app`) in
its own process, so the endpoints, JSON, micro-batching and metrics are those of `spago serve`, and Ray Serve's
proxy spreads requests over the replicas.
"""
from __future__ import annotations

import os
from typing import Any

from ray import serve

from ..errors import SpagoError
from . import require_ray

__all__ = ["SpagoApp", "deploy"]


@serve.ingress()  # the app is built on each replica, by __serve_build_asgi_app__
class SpagoApp:
    """One replica: the model is loaded and compiled when Ray Serve builds the replica's app."""

    def __init__(self, kind: str, model: str, options: dict) -> None:
        self.kind, self.model, self.options = kind, model, options

    def __serve_build_asgi_app__(self) -> Any:
        from ..serve.app import build_app

        return build_app(self.kind, self.model, **self.options)


def deploy(kind: str, model: str, replicas: int = 1, host: str = "127.0.0.1", port: int = 8000,
           name: str = "spago", num_cpus: float = 1.0, tls: dict | None = None, **options: Any) -> str:
    """Start Ray Serve's HTTP proxy on host:port (connecting to, or starting, a Ray cluster) and deploy `kind`'s
    app with `replicas` replicas; returns the URL once every replica is up. `tls` ({"ssl_certfile",
    "ssl_keyfile"}) makes the proxy serve HTTPS; `options` are `build_app`'s."""
    ray = require_ray()
    if kind not in ("ner", "bert"):
        raise SpagoError(f"kind must be ner or bert, got {kind!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise SpagoError(f"replicas must be a positive int, got {replicas!r}")
    if not os.path.exists(model):
        raise SpagoError(f"model not found: {model}")
    options.setdefault("log", None)  # replicas log through Ray, not to a terminal
    if not ray.is_initialized():
        ray.init()
    running = serve.status()
    if running.proxies or running.applications:
        # serve.start would keep the running proxy's address and TLS settings, with only a warning in the log
        raise SpagoError("Ray Serve already runs on this cluster, and its HTTP proxy's address and TLS settings "
                         "are fixed when it starts; stop it (`serve shutdown`) before deploying spago on it")
    serve.start(http_options={"host": host, "port": port, **(tls or {})})
    deployment = serve.deployment(SpagoApp, name=f"spago-{kind}", num_replicas=replicas,
                                  ray_actor_options={"num_cpus": num_cpus})
    serve.run(deployment.bind(kind, os.path.abspath(model), options), name=name, route_prefix="/", blocking=False)
    scheme = "https" if tls else "http"
    return f"{scheme}://{host}:{port}"
