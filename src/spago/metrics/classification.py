"""Classification metrics: per-label counts, precision, recall, F1 (per label, micro, macro), accuracy
and the confusion matrix — the Go spaGO's ``stats.ClassMetrics`` grown to many labels.

    precision = TP / (TP + FP)    recall = TP / (TP + FN)    F1 = 2·P·R / (P + R)    (0 where undefined)
    micro: the counts summed over labels first;   macro: the per-label scores averaged
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np

from ..errors import ShapeError, SpagoError

__all__ = ["ClassMetrics", "classification_report", "confusion_matrix", "accuracy", "precision_recall_f1"]


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


def _f1(p: float, r: float) -> float:
    return 2.0 * p * r / (p + r) if p + r else 0.0


@dataclass
class ClassMetrics:
    """Counts for one label (or summed over labels) and the scores computed from them."""

    true_pos: int = 0
    true_neg: int = 0
    false_pos: int = 0
    false_neg: int = 0

    def add(self, predicted: bool, expected: bool) -> None:
        """Count one decision: was the label predicted, was it expected."""
        if predicted and expected:
            self.true_pos += 1
        elif predicted:
            self.false_pos += 1
        elif expected:
            self.false_neg += 1
        else:
            self.true_neg += 1

    def reset(self) -> None:
        self.true_pos = self.true_neg = self.false_pos = self.false_neg = 0

    @property
    def support(self) -> int:
        """How many times the label was expected (TP + FN)."""
        return self.true_pos + self.false_neg

    @property
    def precision(self) -> float:
        return _ratio(self.true_pos, self.true_pos + self.false_pos)

    @property
    def recall(self) -> float:
        return _ratio(self.true_pos, self.true_pos + self.false_neg)

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    @property
    def specificity(self) -> float:
        return _ratio(self.true_neg, self.true_neg + self.false_pos)

    @property
    def accuracy(self) -> float:
        right = self.true_pos + self.true_neg
        return _ratio(right, right + self.false_pos + self.false_neg)

    def __add__(self, other: "ClassMetrics") -> "ClassMetrics":
        return ClassMetrics(self.true_pos + other.true_pos, self.true_neg + other.true_neg,
                            self.false_pos + other.false_pos, self.false_neg + other.false_neg)


def _pair(expected: Iterable, predicted: Iterable) -> tuple[list, list]:
    expected, predicted = list(expected), list(predicted)
    if len(expected) != len(predicted):
        raise ShapeError(f"metrics: expected and predicted labels differ in length: {len(expected)} and "
                         f"{len(predicted)}")
    if not expected:
        raise SpagoError("metrics: no labels to score")
    return expected, predicted


def _labels(expected: list, predicted: list, labels: Sequence | None) -> list:
    if labels is not None:
        unknown = sorted({str(v) for v in expected + predicted} - {str(v) for v in labels})
        if unknown:
            raise SpagoError(f"metrics: labels {unknown} are not among the given labels {list(labels)}")
        return list(labels)
    return sorted(set(expected) | set(predicted), key=lambda v: (str(type(v)), v))


def accuracy(expected: Iterable, predicted: Iterable) -> float:
    """The fraction of positions where the prediction equals the expected label."""
    expected, predicted = _pair(expected, predicted)
    return sum(e == p for e, p in zip(expected, predicted)) / len(expected)


def confusion_matrix(expected: Iterable, predicted: Iterable, labels: Sequence | None = None
                     ) -> tuple[np.ndarray, list]:
    """(matrix, labels): matrix[i, j] counts the items expected as labels[i] and predicted as labels[j]."""
    expected, predicted = _pair(expected, predicted)
    labels = _labels(expected, predicted, labels)
    index = {v: k for k, v in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for e, p in zip(expected, predicted):
        m[index[e], index[p]] += 1
    return m, labels


def classification_report(expected: Iterable, predicted: Iterable, labels: Sequence | None = None,
                          ignore: Iterable[Hashable] = ()) -> dict:
    """Per-label `ClassMetrics` and the micro and macro averages of precision, recall and F1, plus accuracy.

    Labels in ``ignore`` (an "outside" tag, say) get no row and no share of the averages, but still count
    in the accuracy. Returns {"labels": {label: ClassMetrics}, "micro": {...}, "macro": {...}, "accuracy"}."""
    expected, predicted = _pair(expected, predicted)
    ignore = set(ignore)
    per = {v: ClassMetrics() for v in _labels(expected, predicted, labels) if v not in ignore}
    for e, p in zip(expected, predicted):
        for label, counts in per.items():
            counts.add(p == label, e == label)
    total = sum(per.values(), ClassMetrics())
    scores = [(c.precision, c.recall, c.f1) for c in per.values()]
    macro = np.mean(scores, axis=0) if scores else np.zeros(3)
    return {"labels": per,
            "micro": {"precision": total.precision, "recall": total.recall, "f1": total.f1},
            "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
            "accuracy": accuracy(expected, predicted)}


def precision_recall_f1(expected: Iterable, predicted: Iterable, average: str = "micro",
                        labels: Sequence | None = None, ignore: Iterable[Hashable] = ()):
    """(precision, recall, F1) averaged ``"micro"`` or ``"macro"``, or ``None`` for a dict per label."""
    report = classification_report(expected, predicted, labels, ignore)
    if average is None:
        return {k: (c.precision, c.recall, c.f1) for k, c in report["labels"].items()}
    if average not in ("micro", "macro"):
        raise SpagoError(f"precision_recall_f1: average must be 'micro', 'macro' or None, got {average!r}")
    r = report[average]
    return r["precision"], r["recall"], r["f1"]
