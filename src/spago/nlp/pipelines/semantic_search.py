"""Sentence embeddings and semantic search (Reimers & Gurevych 2019, "Sentence-BERT").

Texts are embedded with the model's pooling (a sentence-transformers folder such as all-MiniLM-L6-v2), or mean
pooling for a plain encoder, then L2-normalised, so the cosine similarity of two texts is the dot product of
their embeddings. A search ranks a fixed corpus (a list of texts, or one column of a CSV file) by cosine
similarity to the query.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import numpy as np

from spago.errors import SpagoError
from spago.nlp.pipelines.base import Job, Pipeline, Rows, check_text
from spago.nlp.pipelines.decoding import top_k as best_indices
from spago.nlp.transformers.pooling import Pooling
from spago.tensor import tensor

MEAN = Pooling(("mean",))  # the pooling of a plain encoder

__all__ = ["SentenceEncoder", "SemanticSearch", "read_csv_column"]


class SentenceEncoder(Pipeline):
    task = "sentence embeddings"

    def __init__(self, model: Any, tokenizer: Any = None, batch_size: int = 32) -> None:
        super().__init__(model, tokenizer)
        if not hasattr(model, "encode"):
            raise SpagoError(f"{self.task} needs a model with an encode() method (from from_pretrained)")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, one row per text (float32)."""
        texts = self._check_texts(texts)
        return _normalize(np.asarray(self.model.encode(texts, batch_size=self.batch_size), dtype=np.float64))

    def prepare(self, texts: Sequence[str], pooling: str | None = None) -> Job:
        """The job answering {"embeddings": [[float, ...], ...]}: the model's own pooling, or `pooling` ("cls",
        "mean", "max", "mean+max" ...) over its token states; L2-normalised either way."""
        texts = self._check_texts(texts)
        encodings = [self.encode(f"text {i}", t) for i, t in enumerate(texts)]
        pool = None if pooling is None else Pooling.from_spec(pooling)

        def vector(row: dict, n: int) -> np.ndarray:
            if pool is None and "sentence_embedding" in row:
                return np.asarray(row["sentence_embedding"], dtype=np.float64)
            h = row["last_hidden_state"][None, :n]
            return (pool or MEAN)(tensor(h), tensor(np.ones((1, n), np.int64))).numpy()[0].astype(np.float64)

        def finish(rows: Rows) -> dict[str, Any]:
            emb = np.stack([vector(row, len(e)) for row, e in zip(rows, encodings)])
            return {"embeddings": _normalize(emb).tolist()}

        return Job(encodings, finish)

    def _check_texts(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
            raise SpagoError(f"{self.task}: expected a non-empty list of texts, got {texts!r:.80}")
        for i, t in enumerate(texts):
            check_text(f"text {i}", t)
        return list(texts)


class SemanticSearch(SentenceEncoder):
    """Top-k cosine search over a corpus embedded once, at construction."""

    task = "semantic search"

    def __init__(self, model: Any, texts: Sequence[str], tokenizer: Any = None, batch_size: int = 32) -> None:
        super().__init__(model, tokenizer, batch_size)
        self.texts = list(texts) if not isinstance(texts, str) else texts
        self.embeddings = self.embed(self.texts)

    @classmethod
    def from_csv(cls, model: Any, path: str | os.PathLike, column: int | str = 0, header: bool = True,
                 delimiter: str = ",", **kwargs: Any) -> "SemanticSearch":
        """A search over one column (index, or name from the header row) of a CSV file."""
        return cls(model, read_csv_column(path, column, header, delimiter), **kwargs)

    list_arguments = ("query",)

    def prepare(self, query: str, top_k: int = 5) -> Job:  # type: ignore[override]
        """The job answering {"query", "results": [{"index", "text", "score"}]}, most similar first, at most
        `top_k`."""
        check_text("query", query)
        best_indices([0.0], top_k)  # a bad top_k fails here, not in a batch
        embed = super().prepare([query])

        def finish(rows: Rows) -> dict[str, Any]:
            q = np.asarray(embed.finish(rows)["embeddings"][0], dtype=np.float64)
            scores = self.embeddings.astype(np.float64) @ q
            best = best_indices(scores, top_k)
            return {"query": query,
                    "results": [{"index": i, "text": self.texts[i], "score": float(scores[i])} for i in best]}

        return Job(embed.encodings, finish)


def _normalize(emb: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, as float32."""
    return (emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def read_csv_column(path: str | os.PathLike, column: int | str = 0, header: bool = True,
                    delimiter: str = ",") -> list[str]:
    """The texts of one CSV column (UTF-8); `column` is an index or, with a header row, a name."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpagoError(f"CSV file not found: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as e:
        raise SpagoError(f"{path}: cannot read as UTF-8 CSV: {e}") from None
    if header:
        if not rows:
            raise SpagoError(f"{path}: empty file (expected a header row)")
        names, rows = rows[0], rows[1:]
        if isinstance(column, str):
            if column not in names:
                raise SpagoError(f"{path}: no column {column!r} in the header {names}")
            column = names.index(column)
    elif isinstance(column, str):
        raise SpagoError(f"{path}: column {column!r} is a name, but header=False; give an index")
    texts = []
    for line, row in enumerate(rows, start=2 if header else 1):
        if not row:
            continue  # blank line
        if column >= len(row) or column < -len(row):
            raise SpagoError(f"{path}: row {line} has {len(row)} fields, no column {column}")
        texts.append(row[column])
    if not texts:
        raise SpagoError(f"{path}: no texts in column {column}")
    return texts
