"""The HTTP app: `build_app(kind, model, **options)` loads and compiles a model and returns a FastAPI app with the
Go spaGO's endpoints, /health, /metrics, OpenAPI at /docs and a web page at /.

The app is plain ASGI and knows nothing of the server hosting it: `spago serve` runs it under uvicorn, and the
same app can be deployed elsewhere (Ray Serve). Requests are checked by pydantic (422 naming the field; 400 for a
body that is not JSON or input the model cannot take), bodies over `max_request_bytes` get 413, and a request
whose model call has not finished within `timeout` seconds gets 503. Concurrent requests are micro-batched
(`max_batch`, `batch_wait_ms`). Every answer carries `took` (milliseconds); `?pretty` indents it.
"""
# No `from __future__ import annotations` here: FastAPI reads the endpoint handlers' annotations (built at run
# time from each endpoint's request model) as real types.
import asyncio
import contextlib
import json
import os
import time
import traceback
from importlib import resources
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from ..errors import SpagoError
from . import schemas
from .batching import MicroBatcher
from .metrics import Metrics
from .services import Endpoint, Service, load_service, stderr_log

__all__ = ["build_app", "app_from_environment", "DEFAULTS", "ENVIRONMENT_VARIABLE"]

DEFAULTS = {"max_batch": 8, "batch_wait_ms": 2.0, "timeout": 30.0, "max_request_bytes": 1 << 20,
            "compiled": True, "warm_up": True, "warm_length": 128, "corpus": None}
ENVIRONMENT_VARIABLE = "SPAGO_SERVE_APP"  # JSON {"kind", "model", options...} for `app_from_environment`


class ValidationErrorResponse(schemas.ErrorResponse):
    detail: list[dict[str, Any]]


ERROR_RESPONSES = {400: {"model": schemas.ErrorResponse, "description": "input the model cannot take"},
                   413: {"model": schemas.ErrorResponse, "description": "the body is over the size limit"},
                   422: {"model": ValidationErrorResponse, "description": "a field is missing or invalid"},
                   503: {"model": schemas.ErrorResponse, "description": "no answer within the time limit"}}


def json_response(data: Any, status: int = 200, pretty: bool = False) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, indent=4 if pretty else None,
                      separators=None if pretty else (",", ":"))
    return Response(body.encode("utf-8"), status_code=status, media_type="application/json")


def error_response(status: int, message: str, field: str | None = None, **extra: Any) -> Response:
    return json_response({"error": message, "field": field, **extra}, status)


def build_app(kind: str, model: Any, **options: Any) -> FastAPI:
    """Load `model` for `kind` ("ner" or "bert"), compile it, and return the app serving it.

    Options (defaults in `DEFAULTS`): max_batch, batch_wait_ms, timeout (s), max_request_bytes, compiled, warm_up
    (compile the shapes of up to warm_length tokens now, not on first use), corpus (a .csv/.txt file or a list
    of texts for /search), log (a callable taking each progress line; None: quiet).
    """
    log = options.pop("log", stderr_log) or (lambda line: None)
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SpagoError(f"build_app: unknown option(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    opts = {**DEFAULTS, **options}
    for name in ("timeout", "max_request_bytes", "max_batch"):
        if not opts[name] > 0:
            raise SpagoError(f"{name} must be positive, got {opts[name]}")
    if opts["batch_wait_ms"] < 0:
        raise SpagoError(f"batch_wait_ms must be >= 0, got {opts['batch_wait_ms']}")
    service = load_service(kind, model, compiled=opts["compiled"], max_batch=int(opts["max_batch"]),
                           warm_length=int(opts["warm_length"]), corpus=opts["corpus"], log=log)
    if opts["warm_up"]:
        start = time.perf_counter()
        count = service.warm_up()
        overhead = service.info.get("call_overhead_tokens")
        log(f"compiled {count} shape(s) in {time.perf_counter() - start:.1f} s"
            + (f"; a model call costs as much as {overhead:.0f} more tokens" if overhead is not None else ""))
    metrics = Metrics(sorted(service.endpoints) + ["/health", "/metrics", "/"])
    batcher = MicroBatcher(service.run, max_batch=int(opts["max_batch"]), wait_ms=float(opts["batch_wait_ms"]),
                           observe=metrics.batch_size.observe, name=f"spago-{kind}-batcher", plan=service.plan)
    metrics.watch_queue(lambda: batcher.queued)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title=f"spago {kind} server", version=_version(), lifespan=lifespan,
                  description=f"{service.architecture} from {service.source}. Every answer carries `took` "
                              f"(milliseconds); add `?pretty` to indent it.")
    app.state.service, app.state.batcher, app.state.metrics, app.state.options = service, batcher, metrics, opts
    for endpoint in service.endpoints.values():
        _add_endpoint(app, endpoint, batcher, float(opts["timeout"]), log)
    _add_common_routes(app, service, metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(Guard, max_bytes=int(opts["max_request_bytes"]), metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The app described by $SPAGO_SERVE_APP (how `spago serve --workers N` hands it to each worker process)."""
    config = json.loads(os.environ[ENVIRONMENT_VARIABLE])
    return build_app(config.pop("kind"), config.pop("model"), **config)


def _version() -> str:
    from .. import __version__

    return __version__


def _add_endpoint(app: FastAPI, endpoint: Endpoint, batcher: MicroBatcher, timeout: float,
                  log: Callable[[str], None]) -> None:
    request_model = endpoint.request

    async def handle(request: Request, body: request_model) -> Response:  # type: ignore[valid-type]
        start = time.perf_counter()
        batcher.expect()
        submitted = False
        try:
            job = endpoint.prepare(body)
            submitted = True
            rows = await batcher.submit(job.encodings, expected=True).result(timeout)
            result = job.finish(rows)
        except asyncio.TimeoutError:
            return error_response(503, f"no answer within the server's time limit ({timeout:g} s); try again later")
        except SpagoError as exc:
            return error_response(400, str(exc))
        except Exception as exc:  # noqa: BLE001 - one request fails, the server goes on
            log(f"error in {endpoint.path}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if not submitted:
                batcher.unexpect()
        result["took"] = round((time.perf_counter() - start) * 1000.0, 3)
        return json_response(result, pretty="pretty" in request.query_params)

    handle.__name__ = endpoint.path.strip("/")
    app.post(endpoint.path, summary=endpoint.summary, response_model=endpoint.response,
             responses=ERROR_RESPONSES)(handle)


def _add_common_routes(app: FastAPI, service: Service, metrics: Metrics) -> None:
    health = {"status": "ok", "kind": service.kind, "model": service.source, "architecture": service.architecture,
              "endpoints": sorted(service.endpoints)}

    @app.get("/health", response_model=schemas.HealthResponse, summary="The model served and its endpoints")
    async def get_health(request: Request) -> Response:
        return json_response(health, pretty="pretty" in request.query_params)

    @app.get("/metrics", summary="Prometheus metrics: requests, latency, batch sizes",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
             response_class=Response)
    async def get_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    page = resources.files(__package__).joinpath("static")
    files = {name: page.joinpath(name).read_bytes() for name in ("index.html", "app.js", "style.css")}
    types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

    @app.get("/", include_in_schema=False)
    async def get_page() -> HTMLResponse:
        return HTMLResponse(files["index.html"])

    for name in ("app.js", "style.css"):
        app.get(f"/static/{name}", include_in_schema=False)(
            lambda name=name: Response(files[name], media_type=types[name.rsplit(".", 1)[1]]))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "the body is not valid JSON: " + "; ".join(
            str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors))
    detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
              for e in errors]
    fields = [".".join(d["loc"][1:]) or "body" for d in detail]
    message = "; ".join(f"{f}: {d['msg']}" for f, d in zip(fields, detail))
    return error_response(422, message, fields[0] if fields else None, detail=detail)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """404, 405, a body that cannot be parsed ...: the same {"error"} shape as every other error."""
    response = error_response(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


class Guard:
    """ASGI middleware: counts and times every request, and answers 413 to a body over `max_bytes` (read here,
    bounded, before the app sees it)."""

    def __init__(self, app: Any, max_bytes: int, metrics: Metrics) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _send_413(send_counted, self.max_bytes)
                return
            delivered = False

            async def replay() -> dict:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_counted)
        finally:
            self.metrics.record(scope["path"], scope["method"], status[0], time.perf_counter() - start)

    async def _read_body(self, scope: dict, receive: Callable) -> bytes | None:
        """The whole body, or None when it is (or says it is) longer than max_bytes."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        return None
                except ValueError:
                    pass
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


async def _send_413(send: Callable, max_bytes: int) -> None:
    body = json.dumps({"error": f"the request body is over the limit of {max_bytes} bytes (--max-request-bytes)",
                       "field": None}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

