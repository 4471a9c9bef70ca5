"""Whole-input classification: sequence classification (a text or a pair, e.g. sentiment or entailment; BERT
...ForSequenceClassification) and next-sentence prediction (BertForNextSentencePrediction, Devlin et al. 2019:
does B follow A?)."""

from __future__ import annotations

from typing import Any

import numpy as np

from spago.nlp.pipelines.base import Pipeline, accepts_lists, check_text
from spago.nlp.pipelines.decoding import softmax

__all__ = ["SequenceClassification", "NextSentencePrediction"]


class SequenceClassification(Pipeline):
    architectures = ("BertForSequenceClassification", "ElectraForSequenceClassification")
    task = "sequence classification"

    @accepts_lists("text", "text_pair")
    def __call__(self, text: str, text_pair: str | None = None) -> dict[str, Any]:
        """{"class", "confidence", "distribution": [{"class", "confidence"}] (most probable first)}, as the
        Go spaGO's /classify."""
        check_text("text", text)
        if text_pair is not None:
            check_text("text_pair", text_pair)
        logits = self.run([self.tokenizer.encode(text, text_pair)])["logits"][0]
        probs = softmax(logits)
        labels = self.labels()
        best = int(np.argmax(probs))
        order = np.argsort(-probs, kind="stable")
        return {"class": labels[best], "confidence": float(probs[best]),
                "distribution": [{"class": labels[i], "confidence": float(probs[i])} for i in order]}


class NextSentencePrediction(Pipeline):
    architectures = ("BertForNextSentencePrediction", "BertForPreTraining")
    task = "next sentence prediction"

    @accepts_lists("first", "second")
    def __call__(self, first: str, second: str) -> dict[str, Any]:
        """{"is_next": bool, "probability": P(second follows first)} (logit index 0 means "is next")."""
        check_text("first", first)
        check_text("second", second)
        out = self.run([self.tokenizer.encode(first, second)])
        logits = out["logits"] if "logits" in out else out["seq_relationship_logits"]
        p = float(softmax(logits[0])[0])
        return {"is_next": p >= 0.5, "probability": p}
