"""The BiLSTM-CRF tagger, its vocabulary and padding helpers, and span-level entity F1."""
from __future__ import annotations

import numpy as np
import pytest

from spago.errors import SpagoError
from spago.nn import BiLSTMCRF, Vocabulary, bio_spans, entity_f1, pad_batch
from spago.testing import assert_compiled_matches_eager, check_module_grad


def test_vocabulary():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]])
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a", "c"]
    assert vocab.encode(["a", "zebra"]) == [3, 1] and vocab.decode([4, 2]) == ["c", "b"]
    assert "a" in vocab and "zebra" not in vocab and len(vocab) == 5
    assert Vocabulary.build([["x", "y", "x"]], min_count=2).tokens == ["<pad>", "<unk>", "x"]
    tags = Vocabulary(["O", "B-PER"], specials=(), unk=None)
    assert tags.index("B-PER") == 1
    with pytest.raises(SpagoError, match="unknown token 'I-LOC'"):
        tags.index("I-LOC")
    with pytest.raises(SpagoError, match="out of range"):
        tags.token(5)
    with pytest.raises(SpagoError, match="specials"):
        Vocabulary(["a"], specials=(), unk="<unk>")


def test_pad_batch():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0]])
    assert pad_batch([[1]], length=4)[0].shape == (1, 4)
    with pytest.raises(SpagoError, match="does not fit"):
        pad_batch([[1, 2, 3]], length=2)
    with pytest.raises(SpagoError, match="at least one"):
        pad_batch([[1], []])


def test_bio_spans():
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) == {
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)}
    # a stray I- starts an entity; an I- of another type ends the current one
    assert bio_spans(["O", "I-ORG", "I-ORG", "I-PER"]) == {("ORG", 1, 3), ("PER", 3, 4)}
    assert bio_spans(["O", "O"]) == set()
    with pytest.raises(SpagoError, match="not a BIO tag"):
        bio_spans(["B-PER", "X"])


def test_entity_f1():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    # gold: PER(0,2) LOC(3,4) ORG(0,1); predicted: PER(0,1) LOC ORG -> 2 of 3 right both ways
    out = entity_f1(gold, pred)
    assert (out["precision"], out["recall"]) == (2 / 3, 2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert entity_f1(gold, gold)["f1"] == 1.0
    assert entity_f1([["O"]], [["O"]])["f1"] == 0.0
    with pytest.raises(SpagoError, match="2 gold tags but 1"):
        entity_f1([["O", "O"]], [["O"]])


def tiny_batch():
    ids, mask = pad_batch([[2, 3, 4, 2], [4, 3]])
    tags = np.array([[0, 1, 2, 0], [2, 1, 0, 0]])
    return ids, tags, mask


def test_tagger_learns_a_batch_and_predicts_unpadded_lengths():
    model = BiLSTMCRF(vocab_size=5, num_tags=3, embedding_dim=4, hidden_size=4)
    ids, tags, mask = tiny_batch()
    first = None
    for _ in range(60):
        loss = model.loss(ids, tags, mask)
        first = first if first is not None else loss.item()
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.assign(p.numpy() - 0.5 * p.grad.numpy())
    assert loss.item() < 0.1 * first
    assert model.predict(ids, mask) == [[0, 1, 2, 0], [2, 1]]
    # padding does not change what the unpadded sequence gets
    assert model.predict(ids[1:, :2], mask[1:, :2]) == [[2, 1]]


def test_tagger_gradient():
    model = BiLSTMCRF(vocab_size=5, num_tags=3, embedding_dim=2, hidden_size=1, dropout=0.0)
    ids, tags, mask = tiny_batch()
    check_module_grad(model, ids, mask, output=lambda e: model.crf.nll(e, tags, mask))


def test_tagger_emissions_compile():
    model = BiLSTMCRF(vocab_size=5, num_tags=3, embedding_dim=4, hidden_size=4, dropout=0.3).eval()
    ids, _, mask = tiny_batch()
    assert_compiled_matches_eager(model, ids, mask)


def test_tagger_loss_compiles():
    model = BiLSTMCRF(vocab_size=5, num_tags=3, embedding_dim=4, hidden_size=4).eval()
    ids, tags, mask = tiny_batch()
    assert_compiled_matches_eager(lambda i, t, m: model.loss(i, t, m), ids, tags, mask)
