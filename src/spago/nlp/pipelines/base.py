"""What every task pipeline shares: checking that the model has the right head and a tokenizer, and running
a list of encodings through the model as one padded batch."""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable, Sequence

import numpy as np

from spago.errors import SpagoError
from spago.nlp.tokenizers import BertTokenizer, Encoding

__all__ = ["Pipeline", "accepts_lists"]


class Pipeline:
    """A model (from `spago.nlp.transformers.from_pretrained`) plus its tokenizer, for one task.

    Subclasses list the model architectures they accept in `architectures` (empty: any).
    """

    architectures: tuple[str, ...] = ()
    task = "pipeline"

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

    def run(self, encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
        """The model's outputs for encodings padded on the right to the longest."""
        length = max(len(e) for e in encodings)
        pad = self.tokenizer.pad_token_id

        def stack(field: str, fill: int) -> np.ndarray:
            return np.array([getattr(e, field) + [fill] * (length - len(e)) for e in encodings], dtype=np.int64)

        return self.model(input_ids=stack("ids", pad), attention_mask=stack("attention_mask", 0),
                          token_type_ids=stack("type_ids", 0))


def check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpagoError(f"{name} must be a str, got {type(value).__name__}")
    return value


def accepts_lists(*names: str) -> Callable:
    """Let a pipeline's ``__call__`` take lists for the arguments ``names``, as Hugging Face pipelines do: the
    result is then a list, one result per item. Lists given together must have one length; a single value
    goes with every item."""
    def deco(call: Callable) -> Callable:
        signature = inspect.signature(call)

        @functools.wraps(call)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as exc:
                raise SpagoError(f"{self.task}: {exc}") from None
            lists = {n: bound.arguments[n] for n in names if isinstance(bound.arguments.get(n), (list, tuple))}
            if not lists:
                return call(self, *args, **kwargs)
            lengths = {len(v) for v in lists.values()}
            if len(lengths) > 1:
                raise SpagoError(f"{self.task}: the lists given for {', '.join(lists)} differ in length "
                                 f"({', '.join(str(len(v)) for v in lists.values())})")
            results = []
            for i in range(lengths.pop()):
                bound.arguments.update({n: v[i] for n, v in lists.items()})
                results.append(call(*bound.args, **bound.kwargs))
            return results

        return wrapper

    return deco


def alias(name: str, value: Any, other: str, other_value: Any, task: str) -> Any:
    """The value given as ``name`` or under Hugging Face's name ``other`` (exactly one of them)."""
    if (value is None) == (other_value is None):
        raise SpagoError(f"{task}: give {name}= or {other}= (one of them)")
    return value if value is not None else other_value
