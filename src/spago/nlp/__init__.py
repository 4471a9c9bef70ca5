"""spago.nlp: tokenizers, transformer models, Hugging Face import and task pipelines."""

from typing import Any

__all__ = ["pipeline", "pipelines", "tokenizers", "transformers"]


def pipeline(task: str, model: Any, **kwargs: Any) -> Any:
    """Hugging Face's ``pipeline(task, model)``: spago's pipeline for ``task`` over a model folder or a loaded
    model (see `spago.nlp.pipelines.pipeline`)."""
    from .pipelines import pipeline as make

    return make(task, model, **kwargs)
