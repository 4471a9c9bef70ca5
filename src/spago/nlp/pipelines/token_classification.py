"""Token classification, e.g. named-entity recognition (BERT/ELECTRA ...ForTokenClassification).

Each word (a pre-token of the basic tokenizer: punctuation marks are words of their own) gets the label of its
aggregated piece logits; with `merge_entities`, BIO / BIOES tags are merged into entity spans, and with
`filter_not_entities` the words outside any entity are dropped — the options of the Go spaGO's NER server.
Offsets are character indices into the original text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spago.nlp.pipelines import decoding
from spago.nlp.pipelines.base import Job, Pipeline, Rows, check_text
from spago.nlp.pipelines.decoding import aggregate_words, softmax, word_groups

__all__ = ["TokenClassification"]


class TokenClassification(Pipeline):
    architectures = ("BertForTokenClassification", "ElectraForTokenClassification")
    task = "token classification"

    list_arguments = ("text",)

    def prepare(
        self,
        text: str,
        merge_entities: bool = False,
        filter_not_entities: bool = False,
        aggregation: str = "first",
    ) -> Job:
        """The job answering {"tokens": [{"text", "start", "end", "label", "confidence"}]} (entities when merged).

        aggregation: how a word's pieces vote — "first" piece, "average" of the logits (the Go spaGO), or "max".
        """
        check_text("text", text)
        enc = self.encode("text", text)
        groups = word_groups(enc.word_ids, enc.sequence_ids)
        aggregate_words(np.zeros((len(enc), 1)), groups, aggregation)  # a wrong name fails here, not in a batch
        labels = self.labels()

        def finish(rows: Rows) -> dict[str, Any]:
            word_logits = aggregate_words(rows[0]["logits"], groups, aggregation)
            tokens = []
            for g, row in zip(groups, word_logits):
                probs = softmax(row)
                best = int(np.argmax(probs))
                start, end = enc.offsets[g[0]][0], enc.offsets[g[-1]][1]
                tokens.append({"text": text[start:end], "start": start, "end": end, "label": labels[best],
                               "confidence": float(probs[best])})
            if merge_entities:
                tokens = decoding.merge_entities(tokens, text)
            if filter_not_entities:
                tokens = decoding.filter_not_entities(tokens)
            return {"tokens": tokens}

        return Job([enc], finish)
