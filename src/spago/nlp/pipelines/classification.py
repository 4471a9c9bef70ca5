"""Whole-input classification: sequence classification (a text or a pair, e.g. sentiment or entailment; BERT
...ForSequenceClassification) and next-sentence prediction (BertForNextSentencePrediction, Devlin et al. 2019:
does B follow A?)."""

from __future__ import annotations

from typing import Any

import numpy as np

from spago.nlp.pipelines.base import Job, Pipeline, Rows, check_text
from spago.nlp.pipelines.decoding import softmax

__all__ = ["SequenceClassification", "NextSentencePrediction"]


class SequenceClassification(Pipeline):
    architectures = ("BertForSequenceClassification", "ElectraForSequenceClassification")
    task = "sequence classification"

    list_arguments = ("text", "text_pair")

    def prepare(self, text: str, text_pair: str | None = None) -> Job:
        """The job answering {"class", "confidence", "distribution": [{"class", "confidence"}] (most probable
        first)}, as the Go spaGO's /classify."""
        check_text("text", text)
        if text_pair is not None:
            check_text("text_pair", text_pair)
        enc = self.encode("text" if text_pair is None else "text and text_pair", text, text_pair)
        labels = self.labels()

        def finish(rows: Rows) -> dict[str, Any]:
            probs = softmax(rows[0]["logits"])
            best = int(np.argmax(probs))
            order = np.argsort(-probs, kind="stable")
            return {"class": labels[best], "confidence": float(probs[best]),
                    "distribution": [{"class": labels[i], "confidence": float(probs[i])} for i in order]}

        return Job([enc], finish)


class NextSentencePrediction(Pipeline):
    architectures = ("BertForNextSentencePrediction", "BertForPreTraining")
    task = "next sentence prediction"

    list_arguments = ("first", "second")

    def prepare(self, first: str, second: str) -> Job:
        """The job answering {"is_next": bool, "probability": P(second follows first)} (logit index 0 means
        "is next")."""
        check_text("first", first)
        check_text("second", second)
        enc = self.encode("first and second", first, second)

        def finish(rows: Rows) -> dict[str, Any]:
            logits = rows[0]["logits"] if "logits" in rows[0] else rows[0]["seq_relationship_logits"]
            p = float(softmax(logits)[0])
            return {"is_next": p >= 0.5, "probability": p}

        return Job([enc], finish)
