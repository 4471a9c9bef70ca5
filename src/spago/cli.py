"""The ``spago`` command line."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .errors import SpagoError


def parse_input(text: str):
    """``NAME=SHAPE[:DTYPE]`` with SHAPE like ``8x128`` or ``8,128`` (empty for a scalar)."""
    from . import spec

    name, sep, rest = text.partition("=")
    if not sep or not name.isidentifier():
        raise SpagoError(f"--input {text!r}: expected NAME=SHAPE[:DTYPE], e.g. x=8x128:float32")
    shape_text, _, dtype = rest.partition(":")
    dims = [d for d in shape_text.replace("x", ",").split(",") if d.strip()]
    try:
        shape = tuple(int(d) for d in dims)
    except ValueError:
        raise SpagoError(f"--input {text!r}: shape {shape_text!r} must be integers separated by x or ,") from None
    if any(d < 0 for d in shape):
        raise SpagoError(f"--input {text!r}: negative dimension")
    return name, spec(shape, dtype or "float32")


def load_function(target: str):
    """Import ``package.module:function`` (the current directory is importable, as with ``python -m``)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise SpagoError(f"{target!r}: expected MODULE:FUNCTION, e.g. mymodels.mlp:forward")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpagoError(f"cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpagoError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpagoError(f"{target!r} is not callable")
    return obj


def cmd_graph(args: argparse.Namespace) -> int:
    from .ir import trace

    fn = load_function(args.target)
    inputs = dict(parse_input(t) for t in args.input)
    _check_inputs_given(fn, args.target, inputs)
    graph = trace(fn, **inputs)
    graph.verify()
    if args.print or not args.output:
        print(graph)
    if args.output:
        graph.render(args.output, args.format, cluster=not args.no_clusters, rankdir=args.rankdir,
                     collapse=args.collapse)
        print(f"wrote {args.output} ({len(graph.nodes)} ops)", file=sys.stderr)
    return 0


def _check_inputs_given(fn, target: str, inputs: dict) -> None:
    """Every argument the function needs must come with ``--input``: name the missing ones."""
    from .ir.tracer import required_arguments

    missing = [name for name in required_arguments(fn) if name not in inputs]
    if missing:
        raise SpagoError(f"{target} takes {', '.join(missing)}: give each with --input NAME=SHAPE[:DTYPE], "
                         f"e.g. --input {missing[0]}=8x128:float32")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="spago", description="spago: eager and compiled machine learning")
    parser.add_argument("--version", action="version", version=f"spago {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("graph", help="trace a function and print or render its graph")
    g.add_argument("target", help="MODULE:FUNCTION to trace")
    g.add_argument("--input", "-i", action="append", default=[], metavar="NAME=SHAPE[:DTYPE]",
                   help="an argument of the function, e.g. x=8x128:float32 (repeat for each)")
    g.add_argument("-o", "--output", help="file to render (format from the suffix: svg, png, pdf, dot)")
    g.add_argument("--format", help="output format, overriding the suffix")
    g.add_argument("--print", action="store_true", help="also print the graph as text")
    g.add_argument("--no-clusters", action="store_true", help="do not group nodes by module scope")
    g.add_argument("--rankdir", default="TB", choices=["TB", "LR", "BT", "RL"])
    g.add_argument("--collapse", type=int, metavar="DEPTH",
                   help="draw each module deeper than DEPTH dotted parts as one box (e.g. 2 for BERT's layers)")
    g.set_defaults(run=cmd_graph)

    bench = sub.add_parser("bench", help="run bench/NAME.py of a source checkout against its baselines "
                                         "(pip install 'spago[bench]')")
    bench.add_argument("name", help="which benchmark, e.g. bert or train_bilstm")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options (see NAME --help)")
    bench.set_defaults(run=lambda a: importlib.import_module("spago.bench_cli").run_bench(a.name, a.options))

    e = sub.add_parser("import-embeddings", help="convert word2vec/GloVe vectors to a word-embedding store (LMDB)")
    importlib.import_module("spago.nlp.embeddings.importers").add_arguments(e)

    h = sub.add_parser("import-hf", help="convert a Hugging Face BERT/ELECTRA folder to spago's format")
    h.add_argument("src", help="Hugging Face model folder (config.json, weights, vocab.txt)")
    h.add_argument("dst", help="folder to write (safetensors weights, config, vocabulary)")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    h.set_defaults(run=lambda a: importlib.import_module("spago.nlp.transformers.importer").import_hf_command(a))

    importlib.import_module("spago.serve.cli").add_parsers(sub)  # serve ner|bert, client
    from .nlp.ner_cli import register as register_ner

    register_ner(sub)  # import-flair, train-ner
    importlib.import_module("spago.distributed.cli").register(sub)  # distributed embed|tag|answer
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SpagoError as exc:
        print(f"spago: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
