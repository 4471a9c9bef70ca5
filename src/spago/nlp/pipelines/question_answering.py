"""Extractive question answering (BERT/ELECTRA ...ForQuestionAnswering; Devlin et al. 2019, SQuAD fine-tuning).

The input is [CLS] question [SEP] passage [SEP]; the model gives a start and an end logit per token and the answer
is the passage span (s, e), s <= e, e - s + 1 <= max_answer_length, that maximises start[s] + end[e]. A passage
too long for the model is read through overlapping windows (the question repeated in each, consecutive windows
sharing `stride` passage tokens); answers from all windows compete, each with its probability among the valid
spans of its window. The result has the Go spaGO's /answer shape, with character offsets into the passage.
"""

from __future__ import annotations

from typing import Any

from spago.errors import SpagoError
from spago.nlp.pipelines.base import Job, Pipeline, Rows, alias, check_text
from spago.nlp.pipelines.decoding import best_spans
from spago.schema import QA_OPTIONS, check_fields

__all__ = ["QuestionAnswering"]


class QuestionAnswering(Pipeline):
    architectures = ("BertForQuestionAnswering", "ElectraForQuestionAnswering")
    task = "question answering"

    list_arguments = ("question", "passage", "context")

    def prepare(
        self,
        question: str,
        passage: str | None = None,
        top_k: int = 3,
        max_answer_length: int = 20,
        min_confidence: float = 0.0,
        stride: int | None = None,
        max_length: int | None = None,
        *,
        context: str | None = None,
    ) -> Job:
        """The job answering {"answers": [{"text", "start", "end", "confidence"}]}, best first, at most `top_k`.

        The passage may be given as ``context=`` (Hugging Face's name); calling the pipeline with lists of
        questions and passages gives a list of results. `max_answer_length` counts tokens; `stride` (default:
        half the passage room, at most 128) is the overlap of consecutive windows; `max_length` (default: the
        model's limit) the length of each window.
        """
        passage = alias("passage", passage, "context", context, self.task)
        check_text("question", question)
        check_text("passage", passage)
        check_fields({"top_k": top_k, "max_answer_length": max_answer_length, "min_confidence": min_confidence,
                      "stride": stride, "max_length": max_length}, QA_OPTIONS, "question answering")
        limit = self.max_length if max_length is None else max_length
        if limit > self.max_length:
            raise SpagoError(f"max_length={limit} is longer than the model accepts ({self.max_length})")
        question_len = len(self.tokenizer.encode(question, add_special_tokens=False))
        room = limit - self.tokenizer.num_special_tokens_to_add(pair=True) - question_len
        if room < 1:
            raise SpagoError(f"the question is {question_len} tokens: no room is left for the passage in "
                             f"{limit} tokens")
        if stride is None:
            stride = min(128, room // 2)
        enc = self.tokenizer.encode(question, passage, max_length=limit, truncation="only_second", stride=stride,
                                    return_overflowing_tokens=True)
        windows = [enc, *enc.overflowing]

        def finish(rows: Rows) -> dict[str, Any]:
            found: dict[tuple[int, int], float] = {}
            for row, window in zip(rows, windows):
                n = len(window)
                allowed = [s == 1 for s in window.sequence_ids]
                spans = best_spans(row["start_logits"][:n], row["end_logits"][:n], allowed, max_answer_length,
                                   top_k)
                for span in spans:
                    key = (window.offsets[span.start][0], window.offsets[span.end][1])
                    found[key] = max(found.get(key, 0.0), span.probability)
            ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
            answers = [{"text": passage[a:b], "start": a, "end": b, "confidence": p}
                       for (a, b), p in ranked if p >= min_confidence]
            return {"answers": answers[:top_k]}

        return Job(windows, finish)
