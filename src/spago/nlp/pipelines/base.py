"""What every task pipeline shares: checking that the model has the right head and a tokenizer, and running
a list of encodings through the model as one padded batch.

A task is cut in two around the model: `prepare` turns the request into a `Job` (the encodings to run and a
`finish` that turns their output rows into the answer). Calling the pipeline runs one job at once; a server
runs the encodings of many concurrent jobs as one batch and hands each job its own rows.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from spago.errors import SpagoError
from spago.nlp.tokenizers import BertTokenizer, Encoding

__all__ = ["Pipeline", "Job"]

Rows = list  # of dict[str, np.ndarray]: one model output row per encoding, batch axis removed


@dataclass
class Job:
    """The encodings a request needs the model to run, and what turns their output rows (in the same order;
    sequence outputs padded past each encoding's own length) into the JSON-ready answer."""

    encodings: list[Encoding]
    finish: Callable[[Rows], dict[str, Any]]


class Pipeline:
    """A model (from `spago.nlp.transformers.from_pretrained`) plus its tokenizer, for one task.

    Subclasses list the model architectures they accept in `architectures` (empty: any).
    """

    architectures: tuple[str, ...] = ()
    task = "pipeline"
    # Arguments of `prepare` that a call may also give as lists, as Hugging Face pipelines take them.
    list_arguments: tuple[str, ...] = ()

    def __init__(self, model: Any, tokenizer: BertTokenizer | None = None) -> None:
        architecture = getattr(model, "architecture", None)
        source = getattr(model, "source", "")
        if not callable(model) or architecture is None:
            raise SpagoError(f"{type(self).__name__} needs a model loaded with spago.nlp.transformers."
                             f"from_pretrained, got {type(model).__name__}")
        if self.architectures and architecture not in self.architectures:
            raise SpagoError(f"{self.task} needs one of the architectures {', '.join(self.architectures)}; got "
                             f"{architecture} ({source})")
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise SpagoError(f"{self.task}: the model has no tokenizer (no vocab.txt in {source!r}); pass one")
        self.model = model
        self.tokenizer = tokenizer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r})"

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, compiled: bool = True, **kwargs: Any) -> "Pipeline":
        """Load a model folder and wrap it (keyword arguments go to the pipeline)."""
        from spago.nlp.transformers import from_pretrained

        return cls(from_pretrained(path, compiled=compiled), **kwargs)

    @property
    def max_length(self) -> int:
        """The longest input the model takes (its position embeddings, or the tokenizer's limit if smaller)."""
        limit = self.model.config.max_position_embeddings
        if self.tokenizer.model_max_length is not None:
            limit = min(limit, self.tokenizer.model_max_length)
        return limit

    def labels(self) -> list[str]:
        """Class names by index, from the config's id2label (LABEL_i where it has none)."""
        id2label = self.model.config.id2label or {}
        n = self.model.config.num_labels
        return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]

    def run(self, encodings: Sequence[Encoding], batch_size: int | None = None) -> dict[str, np.ndarray]:
        """The model's outputs for encodings padded on the right to the longest (to its bucket length, for a
        compiled model); with `batch_size`, filler rows (a lone pad token) make up the batch, so a compiled model
        sees few distinct batch sizes."""
        length = max(len(e) for e in encodings)
        if getattr(self.model, "compiled", False) and hasattr(self.model, "bucket"):
            length = self.model.bucket(length)  # padded here at once, not again by the model
        pad = self.tokenizer.pad_token_id
        filler = max(0, (batch_size or 0) - len(encodings))

        def stack(field: str, fill: int, first: int) -> np.ndarray:
            rows = [getattr(e, field) + [fill] * (length - len(e)) for e in encodings]
            rows += [[first] + [fill] * (length - 1)] * filler
            return np.array(rows, dtype=np.int64)

        return self.model(input_ids=stack("ids", pad, pad), attention_mask=stack("attention_mask", 0, 1),
                          token_type_ids=stack("type_ids", 0, 0))

    def run_rows(self, encodings: Sequence[Encoding], batch_size: int | None = None) -> Rows:
        """`run`, cut into one output dict per encoding."""
        out = self.run(encodings, batch_size)
        return [{k: v[i] for k, v in out.items()} for i in range(len(encodings))]

    def complete(self, job: Job, batch_size: int = 32) -> dict[str, Any]:
        """Run a job's encodings (in batches of similar length) and finish it."""
        order = sorted(range(len(job.encodings)), key=lambda i: len(job.encodings[i]))
        rows: Rows = [None] * len(order)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, row in zip(chunk, self.run_rows([job.encodings[i] for i in chunk])):
                rows[i] = row
        return job.finish(rows)

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """The answer to one request, at once: the task's `prepare` (whose arguments these are), run, finish.

        Lists given for `list_arguments` make a list of answers, one per item (see `split_lists`)."""
        calls = split_lists(self.prepare, self.list_arguments, self.task, args, kwargs)
        if calls is None:
            return self.complete(self.prepare(*args, **kwargs))
        return [self.complete(self.prepare(*a, **k)) for a, k in calls]

    def encode(self, name: str, text: str, pair: str | None = None) -> Encoding:
        """The encoding of a text (or pair) the model can take whole; a longer one is an error naming it."""
        enc = self.tokenizer.encode(text, pair)
        if len(enc) > self.max_length:
            raise SpagoError(f"{name} is {len(enc)} tokens long; the model takes at most {self.max_length} "
                             "(its max_position_embeddings or the tokenizer's model_max_length)")
        return enc


def check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpagoError(f"{name} must be a str, got {type(value).__name__}")
    return value


def split_lists(fn: Callable, names: Sequence[str], task: str, args: tuple, kwargs: dict
                ) -> list[tuple[tuple, dict]] | None:
    """The calls of ``fn`` that lists given for the arguments ``names`` stand for, one per item (None when no
    list is given), as Hugging Face pipelines take lists. Lists given together must have one length; a single
    value goes with every item."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise SpagoError(f"{task}: {exc}") from None
    lists = {n: bound.arguments[n] for n in names if isinstance(bound.arguments.get(n), (list, tuple))}
    if not lists:
        return None
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        raise SpagoError(f"{task}: the lists given for {', '.join(lists)} differ in length "
                         f"({', '.join(str(len(v)) for v in lists.values())})")
    calls = []
    for i in range(lengths.pop()):
        bound.arguments.update({n: v[i] for n, v in lists.items()})
        calls.append((bound.args, bound.kwargs))
    return calls


def alias(name: str, value: Any, other: str, other_value: Any, task: str) -> Any:
    """The value given as ``name`` or under Hugging Face's name ``other`` (exactly one of them)."""
    if (value is None) == (other_value is None):
        raise SpagoError(f"{task}: give {name}= or {other}= (one of them)")
    return value if value is not None else other_value
