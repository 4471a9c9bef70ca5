"""Batch inference and serving on a Ray cluster: `embed`, `tag` and `answer` over Ray Data datasets (or CSV,
JSONL and Parquet files), and `deploy` of the `spago serve` app as a Ray Serve deployment.

Importing this package needs no Ray; calling into it does (``pip install 'spago[ray]'``), and without Ray the
call raises a `SpagoError` naming that extra. See docs/distributed.md.
"""
from __future__ import annotations

from typing import Any

__all__ = ["embed", "tag", "answer", "read", "deploy", "require_ray"]


def require_ray() -> Any:
    """The `ray` module, or a SpagoError naming the extra that installs it."""
    from ..errors import SpagoError

    try:
        import ray
        import ray.data  # noqa: F401 - the data extra
    except ImportError as exc:
        raise SpagoError(f"spago.distributed needs Ray with Ray Data and Ray Serve: pip install 'spago[ray]' "
                         f"({exc})") from None
    return ray


def embed(dataset: Any, model_dir: str, column: str = "text", batch_size: int = 64, num_actors: int | None = None,
          **options: Any) -> Any:
    """`dataset` with a column `embedding`: the L2-normalised sentence embedding of `column` (see `batch.embed`)."""
    from . import batch

    return batch.embed(dataset, model_dir, column, batch_size, num_actors, **options)


def tag(dataset: Any, tagger_path: str, column: str = "text", batch_size: int = 64, num_actors: int | None = None,
        **options: Any) -> Any:
    """`dataset` with a column `entities`: the entity spans a sequence tagger finds in `column`."""
    from . import batch

    return batch.tag(dataset, tagger_path, column, batch_size, num_actors, **options)


def answer(dataset: Any, model_dir: str, question_column: str = "question", passage_column: str = "passage",
           batch_size: int = 64, num_actors: int | None = None, **options: Any) -> Any:
    """`dataset` with a column `answers`: extractive answers to each (question, passage) row."""
    from . import batch

    return batch.answer(dataset, model_dir, question_column, passage_column, batch_size, num_actors, **options)


def read(source: Any) -> Any:
    """A Ray dataset as it is, or one read from a path, directory, glob or list of CSV, JSONL or Parquet files."""
    from . import batch

    return batch.read(source)


def deploy(kind: str, model: str, replicas: int = 1, **options: Any) -> str:
    """Deploy the `spago serve` app for `kind` ("ner" or "bert") on Ray Serve; returns its URL."""
    from . import serving

    return serving.deploy(kind, model, replicas, **options)
