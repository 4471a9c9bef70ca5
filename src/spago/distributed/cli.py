"""`spago distributed embed|tag|answer`: batch inference over files on a Ray cluster, written as Parquet; and the
`--ray` path of `spago serve`. Only argparse is imported until a command runs."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time

from ..errors import SpagoError

__all__ = ["register", "distributed_command", "serve_on_ray"]


def _connect(address: str | None):
    from . import require_ray

    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address)  # None: $RAY_ADDRESS, else a local cluster
    return ray


def distributed_command(args: argparse.Namespace) -> int:
    """Run one task over --input and write its dataset to --output (a new folder of Parquet files), atomically:
    into a sibling temporary folder, renamed when complete."""
    from . import answer, embed, read, tag

    output = os.path.abspath(args.output)
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise SpagoError(f"--output {args.output}: exists and is not an empty folder")
    _connect(args.address)
    common = {"batch_size": args.batch_size, "num_actors": args.num_actors, "compiled": not args.eager}
    dataset = read(args.input)
    if args.task == "embed":
        result = embed(dataset, args.model, args.column, **common)
    elif args.task == "tag":
        result = tag(dataset, args.model, args.column, **common)
    else:
        result = answer(dataset, args.model, args.question_column, args.passage_column, **common)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.partial-", dir=parent)
    start = time.perf_counter()
    try:
        result.write_parquet(partial)
        if os.path.isdir(output):
            os.rmdir(output)  # empty, checked above
        os.replace(partial, output)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        cause = _spago_cause(exc)
        if cause is not None:
            raise SpagoError(cause) from None
        raise
    files = sorted(f for f in os.listdir(output) if f.endswith(".parquet"))
    print(f"wrote {len(files)} Parquet file(s) to {output} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def _spago_cause(exc: BaseException) -> str | None:
    """The message of a SpagoError an actor raised: Ray Data hands it back as the text of a traceback inside its
    own exception (RayTaskError), not as an object."""
    found = re.findall(r"^\s*spago\.errors\.\w+: (.+)$", str(exc), flags=re.M)
    return found[-1] if found else None


def serve_on_ray(args: argparse.Namespace, options: dict, tls: dict) -> int:
    """`spago serve KIND --ray`: deploy the app with --replicas replicas and keep it up until interrupted."""
    from ray import serve

    from ..serve.cli import parse_address
    from .serving import deploy

    host, port = parse_address(args.address)
    _connect(args.ray_address)
    url = deploy(args.kind, args.model, args.replicas, host=host, port=port, tls=tls, **options)
    print(f"serving {args.kind} on {url} with {args.replicas} Ray Serve replica(s) (OpenAPI at /docs)",
          file=sys.stderr, flush=True)
    # SIGTERM (a service manager's stop) takes the deployment down as Ctrl-C does: the replicas and the proxy
    # are detached Ray actors that would otherwise outlive this process
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    print("stopped", file=sys.stderr, flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `distributed embed|tag|answer` to the `spago` command."""
    d = sub.add_parser("distributed", help="batch inference over files on a Ray cluster, written as Parquet "
                                           "(pip install 'spago[ray]')")
    tasks = d.add_subparsers(dest="task", required=True)
    helps = {"embed": ("sentence embeddings of a text column (column `embedding`)", "a BERT / sentence-"
                       "transformers folder"),
             "tag": ("entity spans of a text column (column `entities`)", "a Flair .pt tagger or a spago tagger "
                     "file"),
             "answer": ("answers to question/passage columns (column `answers`)", "a BERT/ELECTRA question-"
                        "answering folder")}
    for task, (text, model) in helps.items():
        t = tasks.add_parser(task, help=text)
        t.add_argument("--input", "-i", required=True, nargs="+",
                       help="CSV, JSONL or Parquet files: paths, folders or globs (quote them)")
        t.add_argument("--output", "-o", required=True, help="folder to create with the Parquet files")
        t.add_argument("--model", "-m", required=True, help=model)
        t.add_argument("--address", help="Ray cluster to use, e.g. ray://HEAD:10001 or HEAD:6379 (default: "
                                         "$RAY_ADDRESS, else a local cluster)")
        if task == "answer":
            t.add_argument("--question-column", default="question")
            t.add_argument("--passage-column", default="passage")
        else:
            t.add_argument("--column", default="text", help="the text column (default text)")
        t.add_argument("--batch-size", type=int, default=64, help="rows per model batch (default 64)")
        t.add_argument("--num-actors", type=int, help="actors, each with its own model (default one per CPU)")
        t.add_argument("--eager", action="store_true", help="run the model eagerly, not compiled")
        t.set_defaults(run=distributed_command)
