"""Turning model outputs into answers: probabilities, top-k, answer spans from start/end logits, per-word labels,
and the merging of BIO / BIOES tags into entity spans.

Pure functions over NumPy arrays and plain dicts, so they are tested on synthetic logits and reused by every
pipeline and server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spago.errors import ShapeError, SpagoError

__all__ = ["Span", "softmax", "sigmoid", "top_k", "best_spans", "split_label", "merge_entities",
           "filter_not_entities", "word_groups", "aggregate_words"]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x_i - max) / sum_j exp(x_j - max), in float64."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), in float64, without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def top_k(scores: Sequence[float] | np.ndarray, k: int) -> list[int]:
    """Indices of the k largest scores, best first (ties: lower index first)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise SpagoError(f"top_k must be a positive int, got {k!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    return order[:k].tolist()


@dataclass(frozen=True)
class Span:
    """An answer candidate: token positions [start, end] (inclusive), its score start_logit + end_logit, and its
    probability among all allowed spans of the same sequence."""

    start: int
    end: int
    score: float
    probability: float


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    allowed: np.ndarray,
    max_answer_length: int = 30,
    top_k: int = 1,
) -> list[Span]:
    """The `top_k` spans with the largest start_logits[s] + end_logits[e].

    A span is allowed when s <= e, e - s + 1 <= max_answer_length and every position from s to e is allowed
    (the passage tokens of a question/passage pair). Probabilities are the softmax of the scores over ALL
    allowed spans, i.e. the joint start/end distribution restricted to valid answers.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64).reshape(-1)
    end_logits = np.asarray(end_logits, dtype=np.float64).reshape(-1)
    allowed = np.asarray(allowed, dtype=bool).reshape(-1)
    if not start_logits.shape == end_logits.shape == allowed.shape:
        raise ShapeError(f"start_logits, end_logits and allowed must have one length, got {start_logits.shape}, "
                         f"{end_logits.shape} and {allowed.shape}")
    if max_answer_length < 1 or top_k < 1:
        raise SpagoError(f"max_answer_length and top_k must be >= 1, got {max_answer_length} and {top_k}")
    n = len(start_logits)
    # run[i]: number of consecutive allowed positions ending at i; span (s, e) is allowed iff run[e] >= e - s + 1
    run = np.zeros(n, dtype=np.int64)
    count = 0
    for i in range(n):
        count = count + 1 if allowed[i] else 0
        run[i] = count
    s = np.arange(n)[:, None]
    e = np.arange(n)[None, :]
    length = e - s + 1
    valid = (length >= 1) & (length <= max_answer_length) & (run[None, :] >= length)
    if not valid.any():
        return []
    scores = np.where(valid, start_logits[:, None] + end_logits[None, :], -np.inf)
    flat = scores.reshape(-1)
    finite = flat[np.isfinite(flat)]
    log_z = np.max(finite) + np.log(np.sum(np.exp(finite - np.max(finite))))
    k = min(top_k, int(valid.sum()))
    best = np.argsort(-flat, kind="stable")[:k]
    return [Span(int(i // n), int(i % n), float(flat[i]), float(np.exp(flat[i] - log_z))) for i in best]


def word_groups(word_ids: Sequence[int | None], sequence_ids: Sequence[int | None], sequence: int = 0) -> list[
        list[int]]:
    """Token positions of each word of one sequence, in order (special tokens and padding excluded)."""
    groups: list[list[int]] = []
    last = None
    for i, (w, s) in enumerate(zip(word_ids, sequence_ids)):
        if s != sequence or w is None:
            continue
        if w != last:
            groups.append([])
            last = w
        groups[-1].append(i)
    return groups


def aggregate_words(logits: np.ndarray, groups: list[list[int]], strategy: str = "first") -> np.ndarray:
    """One row of label logits per word from per-token logits [S, L].

    first: the first piece's logits (what token classifiers are usually trained on); average: the mean over the
    word's pieces (equal to classifying the mean hidden state, as the Go spaGO does, since the classifier is
    linear); max: the piece whose best label is most probable.
    """
    logits = np.asarray(logits, dtype=np.float64)
    rows = []
    for g in groups:
        if strategy == "first":
            rows.append(logits[g[0]])
        elif strategy == "average":
            rows.append(logits[g].mean(axis=0))
        elif strategy == "max":
            probs = softmax(logits[g]).max(axis=-1)
            rows.append(logits[g[int(np.argmax(probs))]])
        else:
            raise SpagoError(f"aggregation must be 'first', 'average' or 'max', got {strategy!r}")
    return np.stack(rows) if rows else np.zeros((0, logits.shape[-1]))


def split_label(label: str) -> tuple[str, str]:
    """('B'|'I'|'E'|'S'|'O', entity type) of a BIO / BIOES (or BILOU) tag; a bare type counts as inside."""
    if label == "O":
        return "O", ""
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIESLU":
        prefix = {"L": "E", "U": "S"}.get(label[0], label[0])
        return prefix, label[2:]
    return "I", label


def merge_entities(tokens: list[dict], text: str) -> list[dict]:
    """Merge per-word tags into entity spans, as the Go spaGO's mergeEntities (extended to BIOES).

    Each token is {"text", "start", "end", "label", "confidence"}. B starts an entity; I continues an entity of
    the same type (or starts one); E continues and closes it; S is a one-word entity; O tokens are kept as they
    are. A merged entity's text is text[start:end], its label the bare type, its confidence the mean of its words'.
    """
    out: list[dict] = []
    current: list[dict] = []
    current_type = ""

    def flush() -> None:
        nonlocal current, current_type
        if current:
            start, end = current[0]["start"], current[-1]["end"]
            conf = [t["confidence"] for t in current if "confidence" in t]
            entity = {"text": text[start:end], "start": start, "end": end, "label": current_type}
            if conf:
                entity["confidence"] = float(np.mean(conf))
            out.append(entity)
        current, current_type = [], ""

    for token in tokens:
        prefix, kind = split_label(token["label"])
        if prefix == "O":
            flush()
            out.append(dict(token))
            continue
        if prefix in ("B", "S") or kind != current_type:
            flush()
        current.append(token)
        current_type = kind
        if prefix in ("E", "S"):
            flush()
    flush()
    return out


def filter_not_entities(tokens: list[dict]) -> list[dict]:
    """Drop the tokens labelled O (outside any entity)."""
    return [t for t in tokens if t["label"] != "O"]
