"""Replaced-token detection with an ELECTRA discriminator (Clark et al. 2020, "ELECTRA: Pre-training Text
Encoders as Discriminators Rather Than Generators").

The discriminator gives one logit per token: positive means "this token was replaced" (probability
sigmoid(logit)). As in the Go spaGO's /discriminate, a word is FAKE when any of its pieces is, REAL otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spago.nlp.pipelines.base import Job, Pipeline, Rows, check_text
from spago.nlp.pipelines.decoding import sigmoid, word_groups

__all__ = ["ReplacedTokenDetection"]


class ReplacedTokenDetection(Pipeline):
    architectures = ("ElectraForPreTraining",)
    task = "replaced token detection"

    list_arguments = ("text",)

    def prepare(self, text: str) -> Job:
        """The job answering {"tokens": [{"text", "start", "end", "label": "REAL"|"FAKE", "confidence"}]} per
        word; confidence is the probability of the label (for FAKE: of the most suspicious piece)."""
        check_text("text", text)
        enc = self.encode("text", text)

        def finish(rows: Rows) -> dict[str, Any]:
            replaced = sigmoid(rows[0]["logits"])
            tokens = []
            for g in word_groups(enc.word_ids, enc.sequence_ids):
                p = float(np.max(replaced[g]))
                start, end = enc.offsets[g[0]][0], enc.offsets[g[-1]][1]
                fake = p > 0.5
                tokens.append({"text": text[start:end], "start": start, "end": end,
                               "label": "FAKE" if fake else "REAL", "confidence": p if fake else 1.0 - p})
            return {"tokens": tokens}

        return Job([enc], finish)
