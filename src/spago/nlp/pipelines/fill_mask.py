"""Fill-mask: the most probable vocabulary tokens for each [MASK] of a text (BERT ...ForMaskedLM, the masked
language model objective of Devlin et al. 2019). Like the Go spaGO's /predict, each mask becomes a token labelled
PREDICTED with the best guess as its text; `candidates` lists the top-k guesses with their probabilities."""

from __future__ import annotations

from typing import Any

from spago.errors import SpagoError
from spago.nlp.pipelines import decoding
from spago.nlp.pipelines.base import Job, Pipeline, Rows, check_text

__all__ = ["FillMask"]


class FillMask(Pipeline):
    architectures = ("BertForMaskedLM", "BertForPreTraining")
    task = "fill-mask"

    list_arguments = ("text",)

    def prepare(self, text: str, top_k: int = 5) -> Job:
        """The job answering {"tokens": [{"text", "start", "end", "label": "PREDICTED", "confidence",
        "candidates": [{"token", "id", "confidence"}]}]}, one entry per [MASK] in the text, in order."""
        check_text("text", text)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise SpagoError(f"top_k must be a positive int, got {top_k!r}")
        enc = self.encode("text", text)
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, (t, s) in enumerate(zip(enc.ids, enc.sequence_ids)) if t == mask_id and s == 0]
        if not positions:
            raise SpagoError(f"fill-mask: the text has no {self.tokenizer.mask_token} token: {text!r:.80}")

        def finish(rows: Rows) -> dict[str, Any]:
            logits = rows[0]["logits"] if "logits" in rows[0] else rows[0]["prediction_logits"]
            tokens = []
            for pos in positions:
                probs = decoding.softmax(logits[pos])
                best = decoding.top_k(probs, top_k)
                candidates = [{"token": self.tokenizer.id_to_token(i), "id": i, "confidence": float(probs[i])}
                              for i in best]
                start, end = enc.offsets[pos]
                tokens.append({"text": candidates[0]["token"], "start": start, "end": end, "label": "PREDICTED",
                               "confidence": candidates[0]["confidence"], "candidates": candidates})
            return {"tokens": tokens}

        return Job([enc], finish)

