"""HTTP servers for spago models (`spago serve ner|bert`) and their clients (`spago client`), on FastAPI and
uvicorn: the Go spaGO's endpoints and JSON shapes, micro-batched compiled models, TLS by default.
Needs the ``serve`` extra: ``pip install 'spago[serve]'``. See docs/serving.md.

    from spago.serve.app import build_app
    app = build_app("bert", "path/to/squad-model", max_batch=8)   # a FastAPI app; run it with any ASGI server
"""

__all__ = ["app", "client"]  # submodules (build_app, Client); imported on use, as they need the extra
