"""Named-entity recognition with a BiLSTM-CRF (Lample et al., 2016): train on a small BIO-tagged corpus
(examples/data/ner_train.txt, people, places and organisations in short sentences made from templates by
examples/data/make_ner_corpus.py) and report span-level entity F1 on the held-out part, half of whose
names never occur in training.

Run: python examples/ner_tagger.py              (eager)
     python examples/ner_tagger.py --compiled   (each training step is one native call)
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import spago
from spago import nn
from spago.optim import Adam, Trainer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def read_conll(path: str) -> list[tuple[list[str], list[str]]]:
    """Sentences as (words, tags) from lines "word TAG", sentences separated by blank lines."""
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            parts = line.split()
            if len(parts) != 2:
                raise spago.SpagoError(f"{path}:{number}: expected 'word TAG', got {line!r}")
            words.append(parts[0])
            tags.append(parts[1])
    if words:
        sentences.append((words, tags))
    return sentences


def encode(sentences, words: nn.Vocabulary, tags: nn.Vocabulary, length: int) -> tuple:
    """Padded arrays for a list of sentences: ids (B, length), tag ids (B, length), mask (B, length)."""
    ids, mask = nn.pad_batch([words.encode(w.lower() for w in ws) for ws, _ in sentences], length=length)
    tag_ids, _ = nn.pad_batch([tags.encode(ts) for _, ts in sentences], length=length)
    return ids, tag_ids, mask


def tagger_loss(model: nn.BiLSTMCRF, ids, tags, mask):
    return model.loss(ids, tags, mask)


def main(epochs: int = 5, batch_size: int = 16, embedding_dim: int = 48, hidden_size: int = 48, lr: float = 0.02,
         dropout: float = 0.25, compiled: bool = False, train_sentences: int | None = None, seed: int = 0,
         progress: bool = True) -> dict:
    spago.manual_seed(seed)
    train = read_conll(os.path.join(DATA, "ner_train.txt"))[:train_sentences]
    test = read_conll(os.path.join(DATA, "ner_test.txt"))
    # words are lower-cased, so the model cannot simply learn "capitalised = entity"; rare words become <unk>
    # half the time they occur, so it learns what to do with names it has never seen
    words = nn.Vocabulary.build([[w.lower() for w in ws] for ws, _ in train])
    tags = nn.Vocabulary(sorted({t for _, ts in train for t in ts}), specials=(), unk=None)
    length = max(len(ws) for ws, _ in train + test)  # one padded length: one compiled specialisation
    counts = {}
    for ws, _ in train:
        for w in ws:
            counts[w.lower()] = counts.get(w.lower(), 0) + 1
    rare = np.array([counts.get(t, 0) <= 2 for t in words.tokens])

    model = nn.BiLSTMCRF(len(words), len(tags), embedding_dim, hidden_size, dropout=dropout)
    trainer = Trainer(model, tagger_loss, Adam(model.parameters(), lr=lr), compiled=compiled, clip_norm=5.0)
    rng = np.random.default_rng(seed)
    ids, tag_ids, mask = encode(train, words, tags, length)
    unk = words.index(words.unk)

    def batches():
        order = rng.permutation(len(train))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            pick = order[start:start + batch_size]
            b_ids = ids[pick].copy()
            drop = rare[b_ids] & (rng.random(b_ids.shape) < 0.5) & (mask[pick] > 0)
            b_ids[drop] = unk
            yield b_ids, tag_ids[pick], mask[pick]

    history = trainer.fit(batches, epochs=epochs, progress=progress)
    model.eval()
    test_ids, _, test_mask = encode(test, words, tags, length)
    predicted = [tags.decode(p) for p in model.predict(test_ids, test_mask)]
    scores = nn.entity_f1([ts for _, ts in test], predicted)
    print(f"{len(train)} training sentences, {len(test)} test sentences; loss per epoch "
          + " ".join(f"{h:.3f}" for h in history))
    print(f"entity F1 on the test part: {scores['f1']:.3f} (precision {scores['precision']:.3f}, "
          f"recall {scores['recall']:.3f}, {scores['correct']} of {scores['gold']} entities found)")
    example = test[1][0]
    print(" ".join(f"{w}/{t}" for w, t in zip(example, predicted[1])))
    return {"f1": scores["f1"], "scores": scores, "losses": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--embedding-dim", type=int, default=48)
    parser.add_argument("--hidden-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--compiled", action="store_true", help="compile each training step to native code")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.batch_size, args.embedding_dim, args.hidden_size, args.lr, args.dropout, args.compiled,
         seed=args.seed)
