"""`spago serve ner|bert` and `spago client ...`: the command lines of the servers and their client.

Only argparse is imported here, so `spago --help` works without the serve extra; FastAPI and uvicorn come in
when a server starts.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys

from ..errors import SpagoError

__all__ = ["add_parsers", "parse_address", "serve_command", "client_command"]

DEFAULT_ADDRESS = "0.0.0.0:1987"
DEFAULT_CERT = "/etc/ssl/certs/spago/server.crt"  # the Go spaGO's defaults
DEFAULT_KEY = "/etc/ssl/certs/spago/server.key"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` for all interfaces) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SpagoError(f"--address {text!r}: expected HOST:PORT, e.g. 0.0.0.0:1987")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def check_tls(args: argparse.Namespace) -> dict:
    """uvicorn's TLS settings, after checking that the certificate and key load (or {} with --tls-disable)."""
    if args.tls_disable:
        return {}
    missing = [f"{flag} {path}" for flag, path in (("--tls-cert-file", args.tls_cert_file),
                                                   ("--tls-key-file", args.tls_key_file)) if not os.path.isfile(path)]
    if missing:
        raise SpagoError("TLS is on by default, but there is no " + " and no ".join(missing)
                         + "; give a certificate and its key with --tls-cert-file and --tls-key-file, or serve "
                           "plain HTTP with --tls-disable")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.tls_cert_file, args.tls_key_file)
    except (ssl.SSLError, OSError) as exc:
        raise SpagoError(f"cannot use the TLS certificate {args.tls_cert_file} with the key {args.tls_key_file}: "
                         f"{exc}") from None
    return {"ssl_certfile": args.tls_cert_file, "ssl_keyfile": args.tls_key_file}


def serve_command(args: argparse.Namespace) -> int:
    host, port = parse_address(args.address)
    tls = check_tls(args)
    if args.workers < 1:
        raise SpagoError(f"--workers must be >= 1, got {args.workers}")
    try:
        import uvicorn

        from .app import ENVIRONMENT_VARIABLE, build_app
    except ImportError as exc:
        raise SpagoError(f"spago serve needs the serve extra (pip install 'spago[serve]'): {exc}") from None
    options = {"max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms, "timeout": args.timeout,
               "max_request_bytes": args.max_request_bytes, "corpus": args.corpus, "compiled": not args.eager,
               "warm_length": args.warm_length}
    if args.ray:
        from ..distributed.cli import serve_on_ray

        return serve_on_ray(args, {k: v for k, v in options.items() if v is not None}, tls)
    scheme = "https" if tls else "http"
    run = {"host": host, "port": port, "log_level": "warning", "access_log": False, **tls}
    if args.workers == 1:
        app = build_app(args.kind, args.model, **options)
        print(f"serving {args.kind} on {scheme}://{host}:{port} (OpenAPI at /docs)", file=sys.stderr, flush=True)
        uvicorn.run(app, **run)
    else:
        os.environ[ENVIRONMENT_VARIABLE] = json.dumps({"kind": args.kind, "model": os.path.abspath(args.model),
                                                       **options})
        print(f"serving {args.kind} on {scheme}://{host}:{port} with {args.workers} worker processes (OpenAPI at "
              f"/docs)", file=sys.stderr, flush=True)
        uvicorn.run("spago.serve.app:app_from_environment", factory=True, workers=args.workers, **run)
    return 0


def client_command(args: argparse.Namespace) -> int:
    from .client import Client

    with Client(args.server, insecure=args.insecure, ca_file=args.ca_file, timeout=args.timeout) as client:
        if args.endpoint == "answer":
            result = client.answer(args.question, args.passage, args.max_answers, args.max_answer_length,
                                   args.min_confidence)
        elif args.endpoint == "analyze":
            result = client.analyze(args.text, args.merge_entities, args.filter_not_entities)
        elif args.endpoint == "encode":
            result = client.encode(args.text[0] if len(args.text) == 1 else args.text, args.pooling)
        else:
            result = client.similarity(args.text, args.pooling)
    if args.output == "yaml":
        import yaml

        print(yaml.safe_dump(result, sort_keys=False, allow_unicode=True), end="")
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `serve` and `client` on the `spago` command."""
    s = sub.add_parser("serve", help="serve a model over HTTPS: the Go spaGO's NER and BERT servers "
                                     "(pip install 'spago[serve]')")
    s.add_argument("kind", choices=["ner", "bert"], help="ner: /analyze; bert: the endpoints of the model's heads")
    s.add_argument("--model", "-m", required=True,
                   help="ner: a token-classification folder or a Flair tagger file; bert: a BERT/ELECTRA folder")
    s.add_argument("--address", default=DEFAULT_ADDRESS, help=f"HOST:PORT to listen on (default {DEFAULT_ADDRESS})")
    s.add_argument("--tls-cert-file", default=DEFAULT_CERT, help=f"TLS certificate (default {DEFAULT_CERT})")
    s.add_argument("--tls-key-file", default=DEFAULT_KEY, help=f"TLS private key (default {DEFAULT_KEY})")
    s.add_argument("--tls-disable", action="store_true", help="serve plain HTTP")
    s.add_argument("--workers", type=int, default=1, help="worker processes, each with its own model (default 1)")
    s.add_argument("--max-request-bytes", type=int, default=1 << 20,
                   help="larger bodies get 413 (default 1 MiB)")
    s.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a request may wait for the model before a 503 (default 30)")
    s.add_argument("--max-batch", type=int, default=8, help="most rows in one model call (default 8)")
    s.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="how long an idle model waits for more requests to batch (default 2 ms)")
    s.add_argument("--corpus", help="bert encoders: texts for /search (.csv: first column after a header; "
                                    "else one per line)")
    s.add_argument("--warm-length", type=int, default=128,
                   help="compile the shapes up to this many tokens before serving (default 128); longer ones "
                        "compile on first use")
    s.add_argument("--eager", action="store_true", help="run the model eagerly, not compiled")
    s.add_argument("--ray", action="store_true", help="deploy on Ray Serve instead (pip install 'spago[ray]')")
    s.add_argument("--replicas", type=int, default=1, help="--ray: replicas, each with its own model (default 1)")
    s.add_argument("--ray-address", help="--ray: the Ray cluster (default: $RAY_ADDRESS, else a local one)")
    s.set_defaults(run=serve_command)

    c = sub.add_parser("client", help="call a spago (or Go spaGO) server and print its answer")
    c.add_argument("endpoint", choices=["answer", "analyze", "encode", "similarity"])
    c.add_argument("--server", required=True, help="the server's URL, e.g. https://localhost:1987")
    c.add_argument("--insecure", action="store_true", help="do not check the server's certificate")
    c.add_argument("--ca-file", help="trust this certificate (authority) for the server's")
    c.add_argument("--output", "-o", choices=["json", "yaml"], default="json")
    c.add_argument("--timeout", type=float, default=60.0)
    c.add_argument("--question", help="answer: the question")
    c.add_argument("--passage", help="answer: the passage")
    c.add_argument("--max-answers", type=int, default=3)
    c.add_argument("--max-answer-length", type=int, default=20)
    c.add_argument("--min-confidence", type=float, default=0.0)
    c.add_argument("--text", action="append", default=[],
                   help="analyze/encode: the text; encode (several) and similarity: repeat for each text")
    c.add_argument("--merge-entities", action="store_true")
    c.add_argument("--filter-not-entities", action="store_true")
    c.add_argument("--pooling", help="encode/similarity: cls, mean, max, mean+max ...")
    c.set_defaults(run=_checked_client)


def _checked_client(args: argparse.Namespace) -> int:
    need = {"answer": ("question", "passage"), "analyze": ("text",), "encode": ("text",), "similarity": ("text",)}
    for name in need[args.endpoint]:
        if not getattr(args, name):
            raise SpagoError(f"client {args.endpoint} needs --{name}")
    if args.endpoint == "analyze":
        if len(args.text) != 1:
            raise SpagoError("client analyze takes one --text")
        args.text = args.text[0]
    if args.endpoint == "similarity" and len(args.text) < 2:
        raise SpagoError("client similarity needs at least two --text")
    return client_command(args)
