"""A Flair-compatible sequence labeler (named entities): ``SequenceTagger``.

    tokens = segtok(text)                               (Flair's default tokenisation, exact offsets)
    x = StackedEmbeddings(tokens)                       (Flair, character, one-hot … embeddings)
    x = Linear(x)                                       (optional re-projection)
    h = BiLSTM(x)                                       (n layers)
    emissions = Linear(h);  tags = CRF-Viterbi(emissions)   (or softmax without a CRF)

Decoding follows Flair 0.15 to the letter: Viterbi over transitions, a token's ``score`` is the largest
softmax of the Viterbi scores at its position, its ``distribution`` that softmax (with the predicted tag's
probability swapped to the top, as Flair does), and BIOES/BIO tags become spans by Flair's
``get_spans_from_bio`` (a span's score is the mean of its tokens', its label the most voted type).

``SequenceTagger.from_flair(path)`` reads a Flair 0.15 ``.pt`` tagger through the restricted reader
(`spago.nlp.flair_format`); ``save``/``load`` use spago's safetensors format. Compiled inference (the
default) pads sentences to a few token and word-length buckets and compiles the network once per bucket;
the character LMs compile per character bucket. Sentences longer than the largest token bucket run eagerly.
"""
from __future__ import annotations

import dataclasses
import os
import re
import threading
from typing import Any, Sequence

import numpy as np

from .. import ops
from ..errors import SpagoError
from ..nn.crf import CRF
from ..nn.dropout import Dropout, LockedDropout, WordDropout
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.recurrent import GRU, LSTM, RNN
from .charlm import LanguageModel, as_dictionary, torch_rnn_state
from .flair_format import Dictionary, read_flair_file
from .token_embeddings import (WORD_BUCKETS, CharacterEmbeddings, FlairEmbeddings, OneHotEmbeddings,
                               PooledFlairEmbeddings, StackedEmbeddings, _bucket)

__all__ = ["Token", "tokenize", "SequenceTaggerNetwork", "SequenceTagger", "get_spans_from_bio",
           "viterbi_decode", "TOKEN_BUCKETS"]

TOKEN_BUCKETS = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 128, 256, 512)  # fine where sentences are: padding costs time
START_TAG, STOP_TAG = "<START>", "<STOP>"
_RNN_TYPES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}


@dataclasses.dataclass(slots=True)  # slots: made and filled for every token of every request
class Token:
    """A token: its text, character offsets ``start``/``end`` into the input text, the number of
    characters between it and the next token (Flair's ``whitespace_after``) and, once predicted, its
    ``tag``, ``score`` and ``distribution`` (tag -> probability)."""
    text: str
    start: int
    end: int
    whitespace_after: int = 0
    tag: str | None = None
    score: float | None = None
    distribution: dict | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "whitespace_after"}


# -- tokenisation ------------------------------------------------------------------------------------

_ZERO_WIDTH = "\u200c\u200b\ufe0f\ufeff\u2028\u2029"
_CP1252 = re.compile(r"[\u0080-\u0099]")
_PROBLEM = re.compile(f"[{_ZERO_WIDTH}\u0080-\u0099]")


def _clean(text: str) -> tuple[str, Sequence[int]]:
    """Flair's ``_handle_problem_characters`` (zero-width characters dropped, C1 controls read as
    Windows-1252), and for every kept character its offset in ``text``."""
    if _PROBLEM.search(text) is None:  # the common case: nothing to drop or re-read
        return text, range(len(text))
    out, where = [], []
    for i, ch in enumerate(text):
        if ch in _ZERO_WIDTH:
            continue
        if _CP1252.match(ch):
            try:
                ch = bytes([ord(ch)]).decode("windows-1252")
            except UnicodeDecodeError:
                continue
        out.append(ch)
        where.append(i)
    return "".join(out), where


def tokenize(text: str) -> list[Token]:
    """Flair's default tokenisation (segtok: ``split_single``, ``word_tokenizer``, ``split_contractions``)
    with offsets into ``text``."""
    from segtok.segmenter import split_single
    from segtok.tokenizer import split_contractions, word_tokenizer

    if not isinstance(text, str):
        raise SpagoError(f"tokenize: expected text (str), got {type(text).__name__}")
    clean, where = _clean(text)
    words = [w for sentence in split_single(clean) for w in split_contractions(word_tokenizer(sentence)) if w]
    tokens: list[Token] = []
    current = 0
    for word in words:
        start = clean.find(word, current)
        if start < 0:
            raise SpagoError(f"tokenize: token {word!r} not found in the text after offset {current}")
        if tokens:
            tokens[-1].whitespace_after = start - current
        current = start + len(word)
        tokens.append(Token(word, where[start], where[current - 1] + 1))
    return tokens


# -- decoding ----------------------------------------------------------------------------------------

def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def viterbi_decode(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, stop: np.ndarray
                   ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Flair's ViterbiDecoder for one sentence: emissions (L, K), ``transitions[to, from]``, start and stop
    scores (K). Returns (best tag ids, confidence per token, probability distribution (L, K))."""
    e = emissions.astype(np.float32)
    length, k = e.shape
    scores = np.zeros((length, k), np.float32)
    back = np.zeros((length, k), np.int64)
    scores[0] = e[0] + start
    for t in range(1, length):
        cand = (e[t][:, None] + transitions) + scores[t - 1][None, :]     # [to, from]
        back[t] = np.argmax(cand, axis=1)
        scores[t] = cand[np.arange(k), back[t]]
    path = [int(np.argmax(scores[-1] + stop))]
    for t in range(length - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    path.reverse()
    probs = _softmax(scores)
    confidence = probs.max(axis=1)
    rows, chosen = np.arange(length), np.array(path)
    top = probs.argmax(axis=1)  # Flair swaps the chosen tag's probability with the top one
    probs[rows, top], probs[rows, chosen] = probs[rows, chosen], confidence
    return path, confidence, probs


def get_spans_from_bio(tags: Sequence[str], scores: Sequence[float] | None = None) -> list[tuple]:
    """Flair's ``get_spans_from_bio``: BIOES or BIO tags -> [(token indices, mean score, label)]."""
    found, weights, previous, span, span_scores = [], {}, "O-", [], []
    for idx, tag in enumerate(list(tags) + ["O"]):
        if tag in ("", "O", "_"):
            tag = "O-"
        in_span = tag != "O-"
        starts = tag[:2] in ("B-", "S-") or (in_span and previous[2:] != tag[2:]
                                             and (tag[:2] == "I-" or previous[2:] == "S-"))
        if (starts or not in_span) and span:
            found.append((span, sum(span_scores) / len(span_scores), max(weights, key=weights.__getitem__)))
            span, span_scores, weights = [], [], {}
        if in_span:
            span.append(idx)
            span_scores.append(scores[idx] if scores else 1.0)
            weights[tag[2:]] = weights.setdefault(tag[2:], 0.0) + (1.1 if starts else 1.0)
        previous = tag
    return found


# -- the network -------------------------------------------------------------------------------------

class SequenceTaggerNetwork(Module):
    """Embeddings -> (re-projection) -> BiRNN -> linear -> CRF; parameters named as in Flair where they can be."""

    def __init__(self, embeddings: StackedEmbeddings, tag_dictionary: Any, hidden_size: int = 256,
                 rnn_layers: int = 1, rnn_type: str = "LSTM", use_rnn: bool = True, use_crf: bool = True,
                 reproject_embeddings: bool = True, tag_format: str = "BIOES", tag_type: str = "ner",
                 dropout: float = 0.0, word_dropout: float = 0.05, locked_dropout: float = 0.5):
        super().__init__()
        if not isinstance(embeddings, StackedEmbeddings):
            raise SpagoError(f"SequenceTaggerNetwork: expected StackedEmbeddings, got {type(embeddings).__name__}")
        if rnn_type not in _RNN_TYPES:
            raise SpagoError(f"SequenceTaggerNetwork: rnn_type must be one of {sorted(_RNN_TYPES)}, got {rnn_type!r}")
        self.tag_dictionary = as_dictionary(tag_dictionary)
        self.embeddings = embeddings
        self.tag_format, self.tag_type = str(tag_format).upper(), tag_type
        self.use_rnn, self.use_crf = bool(use_rnn), bool(use_crf)
        size = embeddings.embedding_length
        self.embedding2nn = Linear(size, size) if reproject_embeddings else None
        if use_rnn:
            self.rnn = _RNN_TYPES[rnn_type](size, hidden_size, num_layers=rnn_layers, bidirectional=True,
                                            dropout=0.5 if rnn_layers > 1 else 0.0)
            size = 2 * hidden_size
        else:
            self.rnn = None
        self.linear = Linear(size, len(self.tag_dictionary))
        self.crf = CRF(len(self.tag_dictionary)) if use_crf else None
        self.dropout = Dropout(dropout) if dropout > 0 else None
        # Flair drops no words when nothing reads across the sequence (no RNN, no CRF)
        use_word_dropout = word_dropout > 0 and (use_rnn or use_crf)
        self.word_dropout = WordDropout(word_dropout) if use_word_dropout else None
        self.locked_dropout = LockedDropout(locked_dropout) if locked_dropout > 0 else None

    def emissions(self, inputs: dict, mask):
        """Emission scores (B, T, K) from the embeddings' input arrays and the token mask (B, T). Training,
        the dropouts run where Flair's run: dropout, word dropout and locked dropout on the embeddings,
        dropout and locked dropout on the RNN's outputs."""
        x = self.embeddings.concat(inputs)
        for drop in (self.dropout, self.word_dropout, self.locked_dropout):
            if drop is not None:
                x = drop(x)
        if self.embedding2nn is not None:
            x = self.embedding2nn(x)
        if self.rnn is not None:
            x, _ = self.rnn(x, mask=mask)
        for drop in (self.dropout, self.locked_dropout):
            if drop is not None:
                x = drop(x)
        return self.linear(x)

    def forward(self, inputs: dict, mask):
        """Emission scores (B, T, K) from the embeddings' input arrays and the token mask (B, T): `emissions`."""
        return self.emissions(inputs, mask)

    def loss(self, inputs: dict, tags, mask):
        """The CRF negative log-likelihood of the gold tags summed over the batch (token cross-entropy summed
        without a CRF), as Flair sums its loss, so Flair's learning rates carry over."""
        e = self.emissions(inputs, mask)
        if self.crf is not None:
            return self.crf.nll(e, tags, mask, reduction="sum")
        logp = ops.log_softmax(e, axis=-1)
        picked = ops.sum(logp * ops.one_hot(tags, len(self.tag_dictionary), dtype=logp.dtype), axis=-1)
        return -ops.sum(picked * ops.cast(ops.elementwise._t(mask), logp.dtype))


# -- the tagger --------------------------------------------------------------------------------------

class SequenceTagger:
    """Tokenise, embed, predict and analyse text with a `SequenceTaggerNetwork`, eagerly or compiled."""

    def __init__(self, network: SequenceTaggerNetwork, compiled: bool = True, batch_size: int = 32,
                 source: str = ""):
        if not isinstance(network, SequenceTaggerNetwork):
            raise SpagoError(f"SequenceTagger: expected a SequenceTaggerNetwork, got {type(network).__name__}")
        self.network, self.compiled, self.batch_size, self.source = network, bool(compiled), int(batch_size), source
        self.network.eval()
        self._compiled: dict = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SequenceTagger({'compiled' if self.compiled else 'eager'}, {len(self.tags)} tags, source={self.source!r})"

    @property
    def tags(self) -> list[str]:
        return list(self.network.tag_dictionary.idx2item)

    # -- text -> tokens -> embeddings ----------------------------------------------------------------
    def tokenize(self, text: str) -> list[Token]:
        return tokenize(text)

    def _inputs(self, sentences: list[list[Token]], compiled: bool) -> tuple[dict, np.ndarray, int]:
        longest = max(len(s) for s in sentences)
        length = _bucket(longest, TOKEN_BUCKETS) if compiled else longest
        inputs = self.network.embeddings.inputs(sentences, length, compiled, WORD_BUCKETS if compiled else None)
        mask = np.zeros((len(sentences), length), np.float32)
        for b, s in enumerate(sentences):
            mask[b, :len(s)] = 1.0
        return inputs, mask, length

    def embed(self, text: str) -> tuple[list[Token], np.ndarray]:
        """The tokens and their stacked embeddings (tokens x embedding length, float32). A compiled tagger
        runs its character LMs compiled (at its buckets); the per-word parts run eagerly."""
        from ..autograd import no_grad

        tokens = self.tokenize(text)
        if not tokens:
            return tokens, np.zeros((0, self.network.embeddings.embedding_length), np.float32)
        inputs, _, _ = self._inputs([tokens], compiled=self.compiled and len(tokens) <= TOKEN_BUCKETS[-1])
        with no_grad():
            vectors = self.network.embeddings.concat(inputs).numpy()[0, :len(tokens)]
        return tokens, vectors.astype(np.float32)

    def _tag_scores(self, sentences: list[list[Token]]) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """Per sentence: (best tag ids, confidence per token, distribution (tokens, tags)). Compiled, the
        network, the Viterbi decoding and the softmax of its scores are one native call per batch."""
        from ..autograd import no_grad

        compiled = self.compiled and max(len(s) for s in sentences) <= TOKEN_BUCKETS[-1]
        inputs, mask, _ = self._inputs(sentences, compiled)
        if not compiled:
            with no_grad():
                out = self.network.emissions(inputs, mask).numpy()
            return [self._decode(out[b, :len(s)]) for b, s in enumerate(sentences)]
        result = self._compiled_predict(inputs, mask)(inputs, mask)
        decoded = []
        for b, s in enumerate(sentences):
            probs = result["probs"][b, :len(s)].astype(np.float32)
            confidence = probs.max(axis=1)
            if "path" not in result:
                decoded.append((probs.argmax(axis=1).tolist(), confidence, probs))
                continue
            path = result["path"][b, :len(s)]
            rows, top = np.arange(len(s)), probs.argmax(axis=1)  # Flair swaps the chosen tag's probability
            probs[rows, top], probs[rows, path] = probs[rows, path], confidence   # with the top one
            decoded.append((path.tolist(), confidence, probs))
        return decoded

    def _compiled_predict(self, inputs: dict, mask: np.ndarray):
        """The compiled ``{"path", "probs"}`` (with a CRF) or ``{"probs"}`` function for these input shapes."""
        from ..compiler import compile

        key = tuple(sorted((k, v.shape) for k, v in inputs.items()))
        with self._lock:
            fn = self._compiled.get(key)
        if fn is None:
            network = self.network

            def predict(inputs, mask):
                e = network.emissions(inputs, mask)
                if network.crf is None:
                    return {"probs": ops.softmax(e, axis=-1)}
                path, scores = network.crf.viterbi(e, mask, with_scores=True)
                return {"path": path, "probs": ops.softmax(scores, axis=-1)}

            fn = compile(predict, inputs, mask, name=f"tagger_{mask.shape[0]}x{mask.shape[1]}")
            with self._lock:
                self._compiled[key] = fn
        return fn

    # -- prediction ----------------------------------------------------------------------------------
    def _decode(self, emissions: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        crf = self.network.crf
        if crf is None:
            probs = _softmax(emissions.astype(np.float32))
            return [int(i) for i in probs.argmax(axis=1)], probs.max(axis=1), probs
        return viterbi_decode(emissions, crf.transitions.numpy().T, crf.start.numpy(), crf.end.numpy())

    def predict_tokens(self, sentences: Sequence[Sequence[Token]]) -> list[list[Token]]:
        """Tag already tokenised sentences (in batches of ``batch_size``); fills each token's tag, score and
        distribution and returns the sentences."""
        sentences = [list(s) for s in sentences]
        todo = [s for s in sentences if s]
        tags = self.tags
        for begin in range(0, len(todo), self.batch_size):
            batch = todo[begin:begin + self.batch_size]
            for tokens, (path, confidence, probs) in zip(batch, self._tag_scores(batch)):
                for token, tag, conf, dist in zip(tokens, path, confidence.tolist(), probs.tolist()):
                    token.tag, token.score = tags[tag], conf
                    token.distribution = dict(zip(tags, dist))
        return sentences

    def predict(self, text: str | Sequence[str]) -> list[Token] | list[list[Token]]:
        """Tokens of ``text`` with ``tag``, ``score`` and ``distribution``; a list of texts gives a list."""
        if isinstance(text, str):
            return self.predict_tokens([self.tokenize(text)])[0]
        if not isinstance(text, (list, tuple)):
            raise SpagoError(f"predict: expected a text or a list of texts, got {type(text).__name__}")
        return self.predict_tokens([self.tokenize(t) for t in text])

    @staticmethod
    def spans(tokens: Sequence[Token]) -> list[dict]:
        """Flair's entity spans of predicted tokens: ``text``, ``start``, ``end``, ``label``, ``score``."""
        out = []
        for idx, score, label in get_spans_from_bio([t.tag or "O" for t in tokens],
                                                    [t.score if t.score is not None else 1.0 for t in tokens]):
            part = [tokens[i] for i in idx]
            text = "".join(t.text + " " * t.whitespace_after for t in part).strip()
            out.append({"text": text, "start": part[0].start, "end": part[-1].end, "label": label,
                        "score": score, "tokens": idx})
        return out

    def analyze(self, text: str, merge_entities: bool = True, filter_not_entities: bool = True) -> dict:
        """The Go spaGO's response: ``{"tokens": [{"text", "start", "end", "label", "score"}]}``; with
        ``merge_entities`` an entity's tokens become one item labelled with its type, with
        ``filter_not_entities`` tokens outside entities are left out."""
        return self.analyze_tokens(text, self.predict(text), merge_entities, filter_not_entities)

    def analyze_tokens(self, text: str, tokens: Sequence[Token], merge_entities: bool = True,
                       filter_not_entities: bool = True) -> dict:
        """`analyze`'s response from the tokens of ``text`` already predicted (e.g. by one `predict_tokens`
        call over the texts of several requests)."""
        items = []
        if merge_entities:
            covered = {}
            for span in self.spans(tokens):
                covered[span["tokens"][0]] = span
                covered.update({i: None for i in span["tokens"][1:]})
            for i, token in enumerate(tokens):
                if i in covered:
                    span = covered[i]
                    if span is not None:
                        items.append({"text": text[span["start"]:span["end"]], "start": span["start"],
                                      "end": span["end"], "label": span["label"], "score": span["score"]})
                else:
                    items.append({"text": token.text, "start": token.start, "end": token.end, "label": "O",
                                  "score": token.score})
        else:
            items = [{"text": t.text, "start": t.start, "end": t.end, "label": t.tag, "score": t.score}
                     for t in tokens]
        if filter_not_entities:
            items = [item for item in items if item["label"] != "O"]
        return {"tokens": items}

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """spago's format (one safetensors file with the constructor arguments), written atomically."""
        from ..serialization import save

        save(self.network, path)

    @classmethod
    def load(cls, path: str | os.PathLike, compiled: bool = True) -> "SequenceTagger":
        from ..serialization import load

        return cls(load(SequenceTaggerNetwork, path), compiled=compiled, source=os.fspath(path))

    @classmethod
    def from_flair(cls, path: str | os.PathLike, compiled: bool = True) -> "SequenceTagger":
        """Read a Flair 0.15 ``SequenceTagger`` ``.pt`` file (compiled inference by default)."""
        path = os.fspath(path)
        return cls(network_from_flair(read_flair_file(path), path), compiled=compiled, source=path)


# -- Flair import ------------------------------------------------------------------------------------

def _tensor(sd: dict, key: str, where: str) -> np.ndarray:
    if key not in sd:
        raise SpagoError(f"{where}: the Flair model has no tensor {key}")
    return sd[key]


def _embedding_from_flair(params: dict, sd: dict, prefix: str, where: str, index: int):
    """One Flair token embedding (its saved parameters + its tensors under ``prefix``) as a spago module."""
    cls = params.get("__cls__")
    if cls == "FlairEmbeddings":
        lm = LanguageModel.from_flair_state(params["model_params"], where)
        lm.load_flair_tensors(sd, prefix + "lm.")
        return FlairEmbeddings(lm, name=params.get("name"), with_whitespace=params.get("with_whitespace", True),
                               tokenized_lm=params.get("tokenized_lm", True), is_lower=params.get("is_lower", False),
                               fine_tune=params.get("fine_tune", False))
    if cls == "PooledFlairEmbeddings":
        inner = _embedding_from_flair(params["contextual_embeddings"], sd, prefix + "context_embeddings.", where,
                                      index)
        return PooledFlairEmbeddings(inner, pooling=params.get("pooling", "min"),
                                     only_capitalized=params.get("only_capitalized", False))
    if cls == "CharacterEmbeddings":
        d = params["path_to_char_dict"]
        if not isinstance(d, Dictionary):
            raise SpagoError(f"{where}: CharacterEmbeddings without its character dictionary")
        emb = CharacterEmbeddings(d.to_dict(), params["char_embedding_dim"], params["hidden_size_char"],
                                  name=params.get("name", "Char"))
        state = {"char_embedding.weight": _tensor(sd, prefix + "char_embedding.weight", where)}
        state.update(torch_rnn_state(sd, prefix + "char_rnn.", 1, True, "char_rnn."))
        emb.load_state_dict(state)
        return emb
    if cls == "OneHotEmbeddings":
        emb = OneHotEmbeddings(params["vocab_dictionary"].to_dict(), params["embedding_length"],
                               field=params.get("field", "text"), stable=params.get("stable", False))
        state = {"embedding_layer.weight": _tensor(sd, prefix + "embedding_layer.weight", where)}
        if emb.layer_norm is not None:
            state.update({"layer_norm.weight": _tensor(sd, prefix + "layer_norm.weight", where),
                          "layer_norm.bias": _tensor(sd, prefix + "layer_norm.bias", where)})
        emb.load_state_dict(state)
        return emb
    raise SpagoError(f"{where}: embedding {index} is a Flair {cls}, which is not supported (supported: "
                     "FlairEmbeddings, PooledFlairEmbeddings, CharacterEmbeddings, OneHotEmbeddings)")


def network_from_flair(state: Any, where: str = "Flair tagger") -> SequenceTaggerNetwork:
    """A `SequenceTaggerNetwork` from the plain data of a Flair 0.15 tagger file."""
    if not isinstance(state, dict) or "state_dict" not in state:
        raise SpagoError(f"{where}: not a Flair model file (expected a dict with a state_dict)")
    kind = state.get("__cls__")
    if kind != "SequenceTagger":
        raise SpagoError(f"{where}: a Flair {kind or 'model of unknown class'}, not a SequenceTagger")
    version = (state.get("model_card") or {}).get("flair_version")
    if version is not None and not str(version).startswith("0.15"):
        raise SpagoError(f"{where}: saved by flair {version}; only flair 0.15 taggers are supported")
    if state.get("train_initial_hidden_state"):
        raise SpagoError(f"{where}: train_initial_hidden_state=True is not supported")
    rnn_type = state.get("rnn_type", "LSTM")
    if rnn_type not in _RNN_TYPES:
        raise SpagoError(f"{where}: rnn_type {rnn_type!r} is not supported (LSTM, GRU or RNN)")
    stacked = state.get("embeddings")
    if not isinstance(stacked, dict) or stacked.get("__cls__") != "StackedEmbeddings":
        raise SpagoError(f"{where}: expected StackedEmbeddings, found "
                         f"{stacked.get('__cls__') if isinstance(stacked, dict) else type(stacked).__name__}")
    sd = state["state_dict"]
    if "transitions" in sd and state.get("use_crf"):
        sd["crf.transitions"] = sd.pop("transitions")
    embeddings = StackedEmbeddings([_embedding_from_flair(p, sd, f"embeddings.list_embedding_{i}.", where, i)
                                    for i, p in enumerate(stacked["embeddings"])])
    tags = state["tag_dictionary"]
    if not isinstance(tags, Dictionary):
        raise SpagoError(f"{where}: the tag dictionary is missing")
    network = SequenceTaggerNetwork(embeddings, tags.to_dict(), hidden_size=state["hidden_size"],
                                    rnn_layers=state.get("rnn_layers", 1), rnn_type=rnn_type,
                                    use_rnn=state.get("use_rnn", True), use_crf=state.get("use_crf", True),
                                    reproject_embeddings=bool(state.get("reproject_embeddings", True)),
                                    tag_format=state.get("tag_format", "BIOES"), tag_type=state.get("tag_type", "ner"),
                                    dropout=float(state.get("use_dropout", 0.0)),
                                    word_dropout=float(state.get("use_word_dropout", 0.0)),
                                    locked_dropout=float(state.get("use_locked_dropout", 0.0)))
    head = {}
    if network.embedding2nn is not None:
        head.update({"embedding2nn.weight": _tensor(sd, "embedding2nn.weight", where),
                     "embedding2nn.bias": _tensor(sd, "embedding2nn.bias", where)})
    if network.rnn is not None:
        head.update(torch_rnn_state(sd, "rnn.", network.rnn.num_layers, True, "rnn."))
    head.update({"linear.weight": _tensor(sd, "linear.weight", where),
                 "linear.bias": _tensor(sd, "linear.bias", where)})
    if network.crf is not None:
        t = np.asarray(_tensor(sd, "crf.transitions", where), np.float32)         # Flair: transitions[to, from]
        item = network.tag_dictionary.item2idx
        if START_TAG not in item or STOP_TAG not in item:
            raise SpagoError(f"{where}: a CRF tagger whose tag dictionary lacks {START_TAG}/{STOP_TAG}")
        head.update({"crf.transitions": t.T.copy(), "crf.start": t[:, item[START_TAG]].copy(),
                     "crf.end": t[item[STOP_TAG], :].copy()})
    own = {k: v for k, v in network.state_dict().items() if not k.startswith("embeddings.")}
    missing = sorted(set(own) - set(head))
    if missing:
        raise SpagoError(f"{where}: no Flair tensors for {', '.join(missing)}")
    for name, value in head.items():
        param = dict(network.named_parameters())[name]
        value = np.asarray(value, np.float32)
        if value.shape != param.shape:
            raise SpagoError(f"{where}: tensor {name} has shape {value.shape}, expected {param.shape}")
        param.assign(value)
    network.eval()
    return network
