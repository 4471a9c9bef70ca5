"""Ray Data batch inference: read files into a dataset, then `map_batches` on a pool of actors, each of which
loads and compiles the model once (`runners`). Actors on one node share spago's disk cache of compiled code, so
only the first compiles a shape; each actor takes one CPU, and Ray sets its thread count (OMP_NUM_THREADS) to
that, which spago's kernels follow.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Sequence

from ..errors import SpagoError
from . import require_ray, runners

__all__ = ["read", "embed", "tag", "answer", "FORMATS"]

FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json", ".parquet": "parquet"}


def read(source: Any) -> Any:
    """A `ray.data.Dataset` as it is; a path, directory, glob or list of them read as CSV, JSONL or Parquet (by
    suffix; one format per call)."""
    ray = require_ray()
    if isinstance(source, ray.data.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if not isinstance(source, (list, tuple)) or not source or not all(isinstance(s, (str, os.PathLike))
                                                                       for s in source):
        raise SpagoError(f"expected a ray.data.Dataset or a path/glob of CSV, JSONL or Parquet files, got "
                         f"{type(source).__name__}")
    files: list[str] = []
    for pattern in map(os.fspath, source):
        if os.path.isdir(pattern):
            found = sorted(f for f in glob.glob(os.path.join(pattern, "*")) if os.path.isfile(f))
        else:
            found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found or not all(os.path.isfile(f) for f in found):
            raise SpagoError(f"no input file matches {pattern!r}")
        files += found
    kinds = {FORMATS.get(os.path.splitext(f)[1].lower()) for f in files}
    if None in kinds:
        bad = next(f for f in files if os.path.splitext(f)[1].lower() not in FORMATS)
        raise SpagoError(f"{bad}: unknown input format; expected files ending in {', '.join(FORMATS)}")
    if len(kinds) > 1:
        raise SpagoError(f"the input mixes formats ({', '.join(sorted(kinds))}); give one format per call")
    kind = kinds.pop()
    # reading text is light: a read task that asked for a CPU would wait behind actors holding every CPU
    if kind == "json":
        return ray.data.read_json(files, lines=True, num_cpus=0)
    return getattr(ray.data, f"read_{kind}")(files, num_cpus=0)


def _check(batch_size: int, num_actors: int | None) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise SpagoError(f"batch_size must be a positive int, got {batch_size!r}")
    if num_actors is not None and (isinstance(num_actors, bool) or not isinstance(num_actors, int)
                                   or num_actors <= 0):
        raise SpagoError(f"num_actors must be a positive int or None (one per CPU of the cluster), got "
                         f"{num_actors!r}")


def _map(dataset: Any, runner: type, inputs: Sequence[str], output: str, batch_size: int, num_actors: int | None,
         kwargs: dict) -> Any:
    """`dataset` (read if need be) mapped through `runner` on an actor pool, after checking its columns."""
    ray = require_ray()
    _check(batch_size, num_actors)
    ds = read(dataset)
    schema = ds.schema()
    names = list(schema.names) if schema is not None else []
    for column in inputs:
        if not isinstance(column, str) or column not in names:
            raise SpagoError(f"the dataset has no column {column!r} (its columns: {', '.join(names) or 'none'})")
    if output in names:
        raise SpagoError(f"the dataset already has a column {output!r}; name the result column with output=...")
    if not ray.is_initialized():
        ray.init()
    actors = num_actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    env = {name: os.environ[name] for name in ("SPAGO_CACHE_DIR", "SPAGO_CACHE") if name in os.environ}
    return ds.map_batches(runner, fn_constructor_kwargs={**kwargs, "batch_size": batch_size, "output": output},
                          batch_size=batch_size, batch_format="pyarrow", num_cpus=1,
                          compute=ray.data.ActorPoolStrategy(size=actors),
                          runtime_env={"env_vars": env} if env else None)


def _model_folder(path: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(os.path.join(path, "config.json")):
        raise SpagoError(f"{path}: not a model folder (no config.json)")
    return os.path.abspath(path)


def embed(dataset: Any, model_dir: str, column: str = "text", batch_size: int = 64, num_actors: int | None = None,
          compiled: bool = True, output: str = "embedding") -> Any:
    """`dataset` with `output`: the L2-normalised sentence embedding (float32) of each row's `column`, by the
    folder's pooling (sentence-transformers) or mean pooling, as `SentenceEncoder.embed` gives."""
    kwargs = {"model_dir": _model_folder(model_dir), "column": column, "compiled": compiled}
    return _map(dataset, runners.Embedder, [column], output, batch_size, num_actors, kwargs)


def tag(dataset: Any, tagger_path: str, column: str = "text", batch_size: int = 64, num_actors: int | None = None,
        compiled: bool = True, output: str = "entities") -> Any:
    """`dataset` with `output`: the entity spans ({text, start, end, label, score}) a sequence tagger (a Flair
    ``.pt`` file or one saved by spago) finds in each row's `column`, as `SequenceTagger.spans` gives."""
    if not isinstance(tagger_path, (str, os.PathLike)) or not os.path.isfile(tagger_path):
        raise SpagoError(f"tagger file not found: {tagger_path}")
    kwargs = {"tagger_path": os.path.abspath(tagger_path), "column": column, "compiled": compiled}
    return _map(dataset, runners.Tagger, [column], output, batch_size, num_actors, kwargs)


def answer(dataset: Any, model_dir: str, question_column: str = "question", passage_column: str = "passage",
           batch_size: int = 64, num_actors: int | None = None, compiled: bool = True, output: str = "answers",
           top_k: int = 3, max_answer_length: int = 20) -> Any:
    """`dataset` with `output`: the best `top_k` answers ({text, start, end, confidence}) to each row's question
    in its passage, as `QuestionAnswering` gives."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise SpagoError(f"top_k must be a positive int, got {top_k!r}")
    if isinstance(max_answer_length, bool) or not isinstance(max_answer_length, int) or max_answer_length < 1:
        raise SpagoError(f"max_answer_length must be a positive int, got {max_answer_length!r}")
    kwargs = {"model_dir": _model_folder(model_dir), "question_column": question_column,
              "passage_column": passage_column, "compiled": compiled, "top_k": top_k,
              "max_answer_length": max_answer_length}
    return _map(dataset, runners.Answerer, [question_column, passage_column], output, batch_size, num_actors,
                kwargs)
