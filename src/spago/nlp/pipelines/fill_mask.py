"""Fill-mask: the most probable vocabulary tokens for each [MASK] of a text (BERT ...ForMaskedLM, the masked
language model objective of Devlin et al. 2019). Like the Go spaGO's /predict, each mask becomes a token labelled
PREDICTED with the best guess as its text; `candidates` lists the top-k guesses with their probabilities."""

from __future__ import annotations

from typing import Any

from spago.errors import SpagoError
from spago.nlp.pipelines import decoding
from spago.nlp.pipelines.base import Pipeline, accepts_lists, check_text

__all__ = ["FillMask"]


class FillMask(Pipeline):
    architectures = ("BertForMaskedLM", "BertForPreTraining")
    task = "fill-mask"

    @accepts_lists("text")
    def __call__(self, text: str, top_k: int = 5) -> dict[str, Any]:
        """{"tokens": [{"text", "start", "end", "label": "PREDICTED", "confidence", "candidates": [{"token",
        "id", "confidence"}]}]}, one entry per [MASK] in the text, in order."""
        check_text("text", text)
        enc = self.tokenizer.encode(text)
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, (t, s) in enumerate(zip(enc.ids, enc.sequence_ids)) if t == mask_id and s == 0]
        if not positions:
            raise SpagoError(f"fill-mask: the text has no {self.tokenizer.mask_token} token: {text!r:.80}")
        out = self.run([enc])
        logits = out["logits"] if "logits" in out else out["prediction_logits"]
        tokens = []
        for pos in positions:
            probs = decoding.softmax(logits[0, pos])
            best = decoding.top_k(probs, top_k)
            candidates = [{"token": self.tokenizer.id_to_token(i), "id": i, "confidence": float(probs[i])}
                          for i in best]
            start, end = enc.offsets[pos]
            tokens.append({"text": candidates[0]["token"], "start": start, "end": end, "label": "PREDICTED",
                           "confidence": candidates[0]["confidence"], "candidates": candidates})
        return {"tokens": tokens}

