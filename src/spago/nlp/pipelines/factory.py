"""``spago.nlp.pipeline(task, model_dir)``: Hugging Face's factory, building spago's pipeline for a task name."""

from __future__ import annotations

import os
from typing import Any

from spago.errors import SpagoError
from spago.nlp.pipelines.base import Pipeline
from spago.nlp.pipelines.classification import NextSentencePrediction, SequenceClassification
from spago.nlp.pipelines.discrimination import ReplacedTokenDetection
from spago.nlp.pipelines.fill_mask import FillMask
from spago.nlp.pipelines.question_answering import QuestionAnswering
from spago.nlp.pipelines.semantic_search import SemanticSearch, SentenceEncoder
from spago.nlp.pipelines.token_classification import TokenClassification

__all__ = ["TASKS", "pipeline"]

# Hugging Face's task names (and their aliases), plus spago's own tasks
TASKS: dict[str, type] = {
    "question-answering": QuestionAnswering,
    "token-classification": TokenClassification,
    "ner": TokenClassification,
    "fill-mask": FillMask,
    "text-classification": SequenceClassification,
    "sentiment-analysis": SequenceClassification,
    "feature-extraction": SentenceEncoder,
    "sentence-embeddings": SentenceEncoder,
    "semantic-search": SemanticSearch,
    "next-sentence-prediction": NextSentencePrediction,
    "replaced-token-detection": ReplacedTokenDetection,
}


def pipeline(task: str, model: Any, compiled: bool = True, **kwargs: Any) -> Pipeline:
    """The pipeline for ``task`` over ``model``: a model folder (loaded with
    `spago.nlp.transformers.from_pretrained`, compiled unless ``compiled=False``) or a loaded model. Further
    keyword arguments go to the pipeline (``texts=`` for "semantic-search", ``tokenizer=`` …)."""
    cls = TASKS.get(task)
    if cls is None:
        raise SpagoError(f"unknown task {task!r}; spago has {', '.join(sorted(TASKS))}")
    if isinstance(model, (str, os.PathLike)):
        from spago.nlp.transformers import from_pretrained

        model = from_pretrained(model, compiled=compiled)
    return cls(model, **kwargs)
