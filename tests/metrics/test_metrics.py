"""Classification metrics and moving averages against hand-counted values."""
from __future__ import annotations

import numpy as np
import pytest

from spago import metrics
from spago.errors import ShapeError, SpagoError

EXPECTED = ["cat", "dog", "cat", "bird", "dog", "cat", "bird"]
PREDICTED = ["cat", "cat", "cat", "bird", "dog", "dog", "dog"]
# cat: TP 2, FP 1, FN 1   dog: TP 1, FP 2, FN 1   bird: TP 1, FP 0, FN 1


def test_per_label_micro_and_macro_scores():
    report = metrics.classification_report(EXPECTED, PREDICTED)
    cat, dog, bird = (report["labels"][k] for k in ("cat", "dog", "bird"))
    assert (cat.true_pos, cat.false_pos, cat.false_neg, cat.true_neg) == (2, 1, 1, 3)
    assert cat.precision == pytest.approx(2 / 3) and cat.recall == pytest.approx(2 / 3)
    assert dog.precision == pytest.approx(1 / 3) and dog.recall == pytest.approx(1 / 2)
    assert dog.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert bird.precision == 1.0 and bird.recall == 0.5 and bird.support == 2
    assert report["micro"]["precision"] == pytest.approx(4 / 7) and report["micro"]["recall"] == pytest.approx(4 / 7)
    macro_p = (2 / 3 + 1 / 3 + 1) / 3
    assert report["macro"]["precision"] == pytest.approx(macro_p)
    assert report["accuracy"] == pytest.approx(4 / 7)
    assert metrics.precision_recall_f1(EXPECTED, PREDICTED, "macro")[0] == pytest.approx(macro_p)
    assert metrics.precision_recall_f1(EXPECTED, PREDICTED, None)["bird"] == pytest.approx((1.0, 0.5, 2 / 3))


def test_ignored_labels_and_binary_counts():
    report = metrics.classification_report(["O", "PER", "O", "LOC"], ["O", "PER", "LOC", "O"], ignore=["O"])
    assert set(report["labels"]) == {"PER", "LOC"}
    assert report["micro"]["precision"] == pytest.approx(0.5) and report["micro"]["recall"] == pytest.approx(0.5)
    assert report["accuracy"] == pytest.approx(0.5)
    c = metrics.ClassMetrics()
    for p, e in [(True, True), (True, False), (False, True), (False, False), (False, False)]:
        c.add(p, e)
    assert c.accuracy == pytest.approx(3 / 5) and c.specificity == pytest.approx(2 / 3)
    assert metrics.ClassMetrics().f1 == 0.0  # nothing counted: 0, not NaN
    c.reset()
    assert c.support == 0


def test_confusion_matrix_and_accuracy():
    m, labels = metrics.confusion_matrix(EXPECTED, PREDICTED, labels=["bird", "cat", "dog"])
    assert labels == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(m, [[1, 0, 1], [0, 2, 1], [0, 1, 1]])
    assert m.sum() == len(EXPECTED) and np.trace(m) / m.sum() == metrics.accuracy(EXPECTED, PREDICTED)
    with pytest.raises(ShapeError, match="differ in length"):
        metrics.accuracy([1, 2], [1])
    with pytest.raises(SpagoError, match="not among the given labels"):
        metrics.confusion_matrix([1, 2], [1, 3], labels=[1, 2])
    with pytest.raises(SpagoError, match="'micro', 'macro' or None"):
        metrics.precision_recall_f1([1], [1], average="weighted")


def test_moving_averages():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]
    m = metrics.MovingAverage()
    for v in values:
        m.add(v)
    assert m.mean == pytest.approx(np.mean(values)) and m.variance == pytest.approx(np.var(values))
    w = metrics.MovingAverage(window=3)
    for v in values:
        w.add(v)
    assert w.mean == pytest.approx(5.0) and w.std == pytest.approx(np.std(values[-3:])) and w.count == 3
    e = metrics.ExponentialMovingAverage(0.5)
    assert e.add(4.0) == pytest.approx(4.0)  # bias-corrected: the first value is the average
    assert e.add(2.0) == pytest.approx((0.25 * 4 + 0.5 * 2) / 0.75)
    with pytest.raises(SpagoError, match="finite"):
        m.add(float("nan"))
    with pytest.raises(SpagoError, match="window"):
        metrics.MovingAverage(window=0)
