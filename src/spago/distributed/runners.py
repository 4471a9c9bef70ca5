"""What each Ray actor runs: a model loaded (and compiled) once in the constructor, then called on batches.

Every runner takes a `pyarrow.Table` batch and returns it with its result columns added, with an explicit Arrow
type for each so the columns write to Parquet as they are. Nothing here imports Ray: the runners also run in one
process (the tests compare them with the in-process pipelines through Ray and without).

Within a batch, inputs are grouped by the sequence-length bucket the compiled model runs at and cut into chunks
whose row count is rounded up to a power of two (filler rows make up the rest), so an actor compiles few shapes.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..errors import SpagoError

__all__ = ["Embedder", "Tagger", "Answerer", "RESULT_TYPES", "run_jobs", "load_tagger"]

ENTITY = pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                    ("score", pa.float64())])
ANSWER = pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                    ("confidence", pa.float64())])
RESULT_TYPES = {"entities": pa.list_(ENTITY), "answers": pa.list_(ANSWER)}  # embedding: fixed-size list


def run_jobs(pipeline: Any, jobs: Sequence[Any], batch_size: int) -> list[dict]:
    """Finish `jobs` (`spago.nlp.pipelines.base.Job`) with their encodings run in bucketed, padded chunks."""
    model = pipeline.model
    compiled = getattr(model, "compiled", False)
    flat = [(j, k, enc) for j, job in enumerate(jobs) for k, enc in enumerate(job.encodings)]
    buckets: dict[int, list] = {}
    for item in flat:
        buckets.setdefault(model.bucket(len(item[2])) if compiled else len(item[2]), []).append(item)
    rows: list[list] = [[None] * len(job.encodings) for job in jobs]
    for _, items in sorted(buckets.items()):
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            size = min(batch_size, 1 << (len(chunk) - 1).bit_length()) if compiled else None  # few shapes
            for (j, k, _), row in zip(chunk, pipeline.run_rows([enc for _, _, enc in chunk], size)):
                rows[j][k] = row
    return [job.finish(r) for job, r in zip(jobs, rows)]


def _texts(batch: pa.Table, column: str) -> list[str]:
    values = batch.column(column).to_pylist()
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise SpagoError(f"column {column!r}: row {i} of a batch is {type(v).__name__} {v!r:.40}, expected "
                             "a string")
    return values


class Embedder:
    """L2-normalised sentence embeddings of `column` in a new column `embedding` (float32, fixed size)."""

    def __init__(self, model_dir: str, column: str = "text", batch_size: int = 64, compiled: bool = True,
                 output: str = "embedding") -> None:
        from ..nlp.pipelines import SentenceEncoder

        self.pipeline = SentenceEncoder.from_pretrained(model_dir, compiled=compiled)
        self.column, self.batch_size, self.output = column, batch_size, output

    def __call__(self, batch: pa.Table) -> pa.Table:
        job = self.pipeline.prepare(_texts(batch, self.column))
        emb = np.asarray(run_jobs(self.pipeline, [job], self.batch_size)[0]["embeddings"], dtype=np.float32)
        values = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), emb.shape[1])
        return batch.append_column(self.output, values)


def load_tagger(path: str, compiled: bool = True):
    """A Flair tagger file (``.pt``, read without unpickling) or one saved by `SequenceTagger.save`."""
    from ..nlp.sequence_labeler import SequenceTagger

    if not os.path.isfile(path):
        raise SpagoError(f"tagger file not found: {path}")
    if path.endswith((".pt", ".pth", ".bin")):
        return SequenceTagger.from_flair(path, compiled=compiled)
    return SequenceTagger.load(path, compiled=compiled)


class Tagger:
    """The entity spans of `column` (Flair's: text, start, end, label, score) in a new column `entities`."""

    def __init__(self, tagger_path: str, column: str = "text", batch_size: int = 64, compiled: bool = True,
                 output: str = "entities") -> None:
        self.tagger = load_tagger(tagger_path, compiled)
        self.tagger.batch_size = batch_size
        self.column, self.output = column, output

    def __call__(self, batch: pa.Table) -> pa.Table:
        sentences = [self.tagger.tokenize(t) for t in _texts(batch, self.column)]
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths batch together
        tagged = self.tagger.predict_tokens([sentences[i] for i in order])
        spans: list = [None] * len(sentences)
        for i, tokens in zip(order, tagged):
            spans[i] = [{k: s[k] for k in ENTITY.names} for s in self.tagger.spans(tokens)]
        return batch.append_column(self.output, pa.array(spans, RESULT_TYPES["entities"]))


class Answerer:
    """Extractive answers to (question, passage) columns in a new column `answers`, best first."""

    def __init__(self, model_dir: str, question_column: str = "question", passage_column: str = "passage",
                 batch_size: int = 64, compiled: bool = True, output: str = "answers", top_k: int = 3,
                 max_answer_length: int = 20) -> None:
        from ..nlp.pipelines import QuestionAnswering

        self.pipeline = QuestionAnswering.from_pretrained(model_dir, compiled=compiled)
        self.question_column, self.passage_column = question_column, passage_column
        self.batch_size, self.output, self.top_k, self.max_answer_length = batch_size, output, top_k, max_answer_length

    def __call__(self, batch: pa.Table) -> pa.Table:
        jobs = [self.pipeline.prepare(q, p, top_k=self.top_k, max_answer_length=self.max_answer_length)
                for q, p in zip(_texts(batch, self.question_column), _texts(batch, self.passage_column))]
        answers = [r["answers"] for r in run_jobs(self.pipeline, jobs, self.batch_size)]
        return batch.append_column(self.output, pa.array(answers, RESULT_TYPES["answers"]))
