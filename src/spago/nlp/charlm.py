"""Character language models, exactly Flair's ``LanguageModel`` (Akbik, Blythe & Vollgraf, 2018):

    e_t = Embedding(c_t)                          character embedding
    h_t = LSTM(e_t, h_{t-1})                      n layers
    o_t = W_p·h_t + b_p                           optional projection (``nout``)
    p(c_{t+1} | c_1 … c_t) = softmax(W_d·o_t + b_d)

A forward model reads text left to right, a backward one reads it reversed. ``representation`` gives the
states Flair's contextual string embeddings are read from; ``from_flair`` reads a Flair ``.pt`` LM; the
trainer (`train_language_model`) runs truncated backpropagation through time with gradient clipping,
batching, checkpoints and perplexity, each update one compiled step by default; ``generate_text`` samples
with a temperature.

Compiled inference pads the characters to a few bucket lengths (64 … 512) and runs text longer than the
largest bucket in chunks, carrying the LSTM state from one chunk to the next (as Flair's
``chars_per_chunk`` does), so a model compiles once per (batch, bucket).
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Iterable, Sequence

import numpy as np

from .. import ops
from ..errors import SpagoError
from ..nn.dropout import Dropout
from ..nn.linear import Embedding, Linear
from ..nn.module import Module
from ..nn.recurrent import GRU, LSTM
from .flair_format import Dictionary, read_flair_file

__all__ = ["LanguageModel", "LMTrainingResult", "run_together", "train_language_model", "torch_rnn_state",
           "CHAR_BUCKETS", "as_dictionary"]

CHAR_BUCKETS = (64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 384, 512)  # an LSTM step per padded character
_RNNS = {"LSTM": LSTM, "GRU": GRU}


def as_dictionary(value: Any) -> Dictionary:
    """A `Dictionary` from a Dictionary, its ``to_dict()`` form, or a list of items (with ``<unk>`` first)."""
    if isinstance(value, Dictionary):
        return value
    if isinstance(value, dict) and "items" in value:
        return Dictionary.from_dict(value)
    if isinstance(value, (list, tuple)):
        return Dictionary.from_dict({"items": list(value), "add_unk": "<unk>" in value[:1]})
    raise SpagoError(f"expected a Dictionary (or its dict form, or a list of items), got {type(value).__name__}")


def torch_rnn_state(sd: dict, prefix: str, num_layers: int, bidirectional: bool, out_prefix: str) -> dict:
    """PyTorch ``nn.LSTM``/``GRU`` weights (``weight_ih_l0``, ``…_reverse``) renamed for `spago.nn.LSTM`."""
    out = {}
    for layer in range(num_layers):
        for direction, suffix in (("forward_rnn.", ""), ("backward_rnn.", "_reverse")) if bidirectional \
                else (("", ""),):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                key = f"{prefix}{kind}_l{layer}{suffix}"
                if key not in sd:
                    raise SpagoError(f"the Flair model has no tensor {key}")
                out[f"{out_prefix}stack.layers.{layer}.{direction}cell.{kind}"] = sd[key]
    return out


class LanguageModel(Module):
    """Flair's character LM; parameters as in Flair (``encoder``, ``rnn``, ``proj``, ``decoder``)."""

    def __init__(self, dictionary: Any, is_forward_lm: bool, hidden_size: int, nlayers: int = 1,
                 embedding_size: int = 100, nout: int | None = None, document_delimiter: str = "\n",
                 dropout: float = 0.1, recurrent_type: str = "LSTM", has_decoder: bool = True):
        super().__init__()
        self.dictionary = as_dictionary(dictionary)
        rnn = _RNNS.get(str(recurrent_type).upper())
        if rnn is None:
            raise SpagoError(f"LanguageModel: recurrent_type {recurrent_type!r} is not supported (LSTM or GRU)")
        if len(self.dictionary) == 0:
            raise SpagoError("LanguageModel: the character dictionary is empty")
        self.is_forward_lm, self.hidden_size, self.nlayers = bool(is_forward_lm), int(hidden_size), int(nlayers)
        self.embedding_size, self.nout, self.document_delimiter = int(embedding_size), nout, document_delimiter
        self.recurrent_type = str(recurrent_type).upper()
        self.encoder = Embedding(len(self.dictionary), embedding_size)
        self.rnn = rnn(embedding_size, hidden_size, num_layers=nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.proj = Linear(hidden_size, nout) if nout is not None else None
        self.decoder = Linear(nout if nout is not None else hidden_size, len(self.dictionary)) if has_decoder else None
        self.drop = Dropout(dropout) if dropout > 0 else None
        self.output_size = int(nout) if nout is not None else self.hidden_size
        self._compiled: dict = {}
        self._lock = threading.Lock()

    # -- the network --------------------------------------------------------------------------------
    def forward(self, ids, state=None):
        """Batch-first char ids (B, T) -> (outputs (B, T, output_size), last RNN state)."""
        x = self.encoder(ids)
        if self.drop is not None:
            x = self.drop(x)
        out, state = self.rnn(x, state)
        if self.proj is not None:
            out = self.proj(out)
        if self.drop is not None:
            out = self.drop(out)
        return out, state

    def logits(self, ids, state=None):
        """Scores over the dictionary for the next character at every position: (B, T, V), last state."""
        if self.decoder is None:
            raise SpagoError("LanguageModel: this model has no decoder (has_decoder=False)")
        out, state = self(ids, state)
        return self.decoder(out), state

    def log_softmax(self, ids, state=None):
        return ops.log_softmax(self.logits(ids, state)[0], axis=-1)

    def loss(self, ids, targets):
        """Mean cross-entropy of the next characters ``targets`` (B, T) given ``ids`` (B, T)."""
        from ..losses import cross_entropy

        logits, _ = self.logits(ids)
        return cross_entropy(ops.reshape(logits, (-1, len(self.dictionary))), ops.reshape(targets, (-1,)))

    # -- text -> ids ----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Character ids (unknown characters -> ``<unk>`` = 0, as Flair's ``get_idx_for_items``)."""
        get = self.dictionary.item2idx.get
        return [get(c, 0) for c in text]

    def _initial_state(self, batch: int):
        zeros = np.zeros((self.nlayers, batch, self.hidden_size), np.float32)
        return (zeros, zeros.copy()) if self.recurrent_type == "LSTM" else zeros

    def run(self, ids: np.ndarray, compiled: bool = False) -> np.ndarray:
        """RNN outputs (B, T, output_size) for char ids (B, T), with no gradient; compiled per bucket."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise SpagoError(f"LanguageModel.run: expected char ids of shape (batch, length > 0), got {ids.shape}")
        if not compiled:
            from ..autograd import no_grad

            with no_grad():
                return self(ids)[0].numpy()
        batch, length = ids.shape
        chunk = CHAR_BUCKETS[-1]
        state = self._initial_state(batch)
        parts = []
        for begin in range(0, length, chunk):
            piece = ids[:, begin:begin + chunk]
            size = next(b for b in CHAR_BUCKETS if b >= piece.shape[1])
            if size > piece.shape[1]:  # padding after the text changes nothing before it
                piece = np.pad(piece, ((0, 0), (0, size - piece.shape[1])))
            flat_state = state if isinstance(state, tuple) else (state,)
            out, *flat_state = self._compiled_run(batch, size)(piece, *flat_state)
            state = tuple(flat_state) if len(flat_state) > 1 else flat_state[0]
            parts.append(out[:, :min(chunk, length - begin)])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _compiled_run(self, batch: int, size: int):
        from ..compiler import compile

        key = (batch, size)
        with self._lock:
            fn = self._compiled.get(key)
        if fn is None:
            lstm = self.recurrent_type == "LSTM"

            def run(ids, *state):
                out, last = self(ids, tuple(state) if lstm else state[0])
                return (out, *last) if lstm else (out, last)

            self.eval()
            fn = compile(run, np.zeros((batch, size), np.int64),
                         *((self._initial_state(batch)) if lstm else (self._initial_state(batch),)),
                         name=f"charlm_{batch}x{size}")
            with self._lock:
                self._compiled[key] = fn
        return fn

    def char_ids(self, strings: Sequence[str], start_marker: str, end_marker: str,
                 compiled: bool = False) -> tuple[np.ndarray, int]:
        """The ids `representation` runs: each string (reversed for a backward model) between the markers,
        padded with spaces on the right to the longest (compiled: to its character bucket, so the compiled
        run has nothing to pad), and that longest length."""
        if not strings:
            raise SpagoError("LanguageModel.representation: no strings")
        longest = max(len(s) for s in strings) + len(start_marker) + len(end_marker)
        pad = self.dictionary.get_idx_for_item(" ")
        width = next((b for b in CHAR_BUCKETS if b >= longest), longest) if compiled else longest
        ids = np.full((len(strings), width), pad, np.int64)
        for b, s in enumerate(strings):
            text = start_marker + (s if self.is_forward_lm else s[::-1]) + end_marker
            ids[b, :len(text)] = self.encode(text)
        return ids, longest

    def representation(self, strings: Sequence[str], start_marker: str, end_marker: str,
                       compiled: bool = False) -> np.ndarray:
        """Flair's ``get_representation``: the outputs (B, 1 + longest + 1, output_size) over each string
        (reversed for a backward model) between the markers, padded with spaces on the right."""
        ids, longest = self.char_ids(strings, start_marker, end_marker, compiled)
        return self.run(ids, compiled)[:, :longest]

    # -- generation and perplexity --------------------------------------------------------------------
    def generate_text(self, prefix: str = "\n", number_of_characters: int = 1000, temperature: float = 1.0,
                      seed: int | None = None, break_on_suffix: str | None = None) -> tuple[str, float]:
        """Sample ``number_of_characters`` characters after ``prefix`` at ``temperature`` (> 0; lower is more
        conservative); returns (text, mean negative log-probability per generated character)."""
        from ..autograd import no_grad

        if temperature <= 0:
            raise SpagoError(f"generate_text: temperature must be positive, got {temperature}")
        if number_of_characters < 1:
            raise SpagoError(f"generate_text: number_of_characters must be at least 1, got {number_of_characters}")
        prefix = prefix or "\n"
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        chars, total = [], 0.0
        with no_grad():
            state = None
            if len(prefix) > 1:
                _, state = self.logits(np.array([self.encode(prefix[:-1])], np.int64), state)
            current = self.encode(prefix[-1])[0]
            for _ in range(number_of_characters):
                logits, state = self.logits(np.array([[current]], np.int64), state)
                scores = logits.numpy()[0, 0].astype(np.float64)
                scaled = scores / temperature
                weights = np.exp(scaled - scaled.max())
                current = int(rng.choice(len(weights), p=weights / weights.sum()))
                total += float(scores[current] - np.log(np.exp(scores - scores.max()).sum()) - scores.max())
                chars.append(self.dictionary.get_item_for_index(current))
                if break_on_suffix is not None and "".join(chars).endswith(break_on_suffix):
                    break
        self.train(was_training)
        text = prefix + "".join(chars)
        return (text if self.is_forward_lm else text[::-1]), -total / len(chars)

    def perplexity(self, text: str) -> float:
        """exp(mean cross-entropy of each next character) over ``text`` (read reversed by a backward model)."""
        from ..autograd import no_grad

        if len(text) < 2:
            raise SpagoError("perplexity: the text needs at least two characters")
        if not self.is_forward_lm:
            text = text[::-1]
        ids = np.array([self.encode(text)], np.int64)
        with no_grad():
            logp = self.log_softmax(ids[:, :-1]).numpy()[0]
        return float(math.exp(-np.mean(logp[np.arange(len(text) - 1), ids[0, 1:]])))

    # -- Flair files ------------------------------------------------------------------------------------
    @classmethod
    def from_flair_state(cls, state: dict, where: str = "Flair LM") -> "LanguageModel":
        """A model from Flair's saved LM dict (``LanguageModel.save`` or FlairEmbeddings' ``model_params``)."""
        required = ("dictionary", "is_forward_lm", "hidden_size", "nlayers", "embedding_size")
        missing = [k for k in required if k not in state]
        if missing:
            raise SpagoError(f"{where}: not a Flair LanguageModel (missing {', '.join(missing)})")
        rtype = str(state.get("recurrent_type", "LSTM")).upper()
        if rtype not in _RNNS:
            raise SpagoError(f"{where}: unsupported recurrent_type {rtype!r} (LSTM or GRU)")
        model = cls(dictionary=state["dictionary"].to_dict() if isinstance(state["dictionary"], Dictionary)
                    else state["dictionary"], is_forward_lm=state["is_forward_lm"], hidden_size=state["hidden_size"],
                    nlayers=state["nlayers"], embedding_size=state["embedding_size"], nout=state.get("nout"),
                    document_delimiter=state.get("document_delimiter", "\n"), dropout=state.get("dropout", 0.1),
                    recurrent_type=rtype, has_decoder=state.get("has_decoder", True))
        model.eval()
        return model

    def load_flair_tensors(self, sd: dict, prefix: str = "") -> None:
        """Copy a Flair LM's tensors (``encoder.weight``, ``rnn.weight_ih_l0`` … ``decoder.bias``) in."""
        mine = {"encoder.weight": sd.get(prefix + "encoder.weight")}
        mine.update(torch_rnn_state(sd, prefix + "rnn.", self.nlayers, False, "rnn."))
        for layer in ("proj", "decoder"):
            if getattr(self, layer) is not None:
                for kind in ("weight", "bias"):
                    mine[f"{layer}.{kind}"] = sd.get(f"{prefix}{layer}.{kind}")
        absent = [k for k, v in mine.items() if v is None]
        if absent:
            raise SpagoError(f"the Flair LM has no tensor(s) {', '.join(prefix + a for a in absent)}")
        self.load_state_dict({k: np.asarray(v, np.float32) for k, v in mine.items()})

    @classmethod
    def from_flair(cls, path: str | os.PathLike) -> "LanguageModel":
        """Read a Flair 0.15 character LM (``LanguageModel.save``) through the restricted reader."""
        path = os.fspath(path)
        state = read_flair_file(path)
        if not isinstance(state, dict) or "state_dict" not in state:
            raise SpagoError(f"{path}: not a Flair LanguageModel file (expected a dict with a state_dict)")
        if state.get("__cls__") not in (None, "LanguageModel"):
            raise SpagoError(f"{path}: a Flair {state['__cls__']}, not a LanguageModel")
        model = cls.from_flair_state(state, path)
        model.load_flair_tensors(state["state_dict"])
        return model


# -- training ------------------------------------------------------------------------------------------

def run_together(models: Sequence[LanguageModel], ids: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Several language models' outputs (each (B, T, output_size)) for their char ids (B, T), compiled as ONE
    function per shape, so a sentence costs one native call, not one per model, and the models' scans can run
    side by side (`spago.passes.parallel_branches`). Every ``T`` must be a bucket width at most the largest
    `CHAR_BUCKETS` (what `LanguageModel.char_ids` gives compiled); longer text goes through `LanguageModel.run`,
    which carries the state across chunks. Results equal the models' own compiled runs."""
    from ..compiler import compile

    if len(models) != len(ids) or not models:
        raise SpagoError(f"run_together: expected one char id array per model, got {len(ids)} for {len(models)}")
    ids = [np.ascontiguousarray(x, dtype=np.int64) for x in ids]
    for x in ids:
        if x.ndim != 2 or x.shape[1] not in CHAR_BUCKETS:
            raise SpagoError(f"run_together: char ids must be (batch, a width of CHAR_BUCKETS), got {x.shape}")
    first = models[0]
    key = ("together", tuple(id(m) for m in models[1:]), tuple(x.shape for x in ids))
    with first._lock:
        entry = first._compiled.get(key)
    if entry is None:
        group = tuple(models)

        def run(*chars):
            return tuple(m(x)[0] for m, x in zip(group, chars))

        for m in group:
            m.eval()
        fn = compile(run, *ids, name="charlms_" + "_".join(f"{x.shape[0]}x{x.shape[1]}" for x in ids))
        entry = (fn, group)  # the group keeps the other models alive, so their ids in the key stay theirs
        with first._lock:
            first._compiled[key] = entry
    return list(entry[0](*ids))


class LMTrainingResult(dict):
    """``history`` (per epoch: train loss, validation perplexity, seconds), ``best_perplexity``, ``checkpoint``."""


def _windows(ids: np.ndarray, batch_size: int, bptt: int) -> list:
    """Truncated-BPTT batches: the corpus cut into ``batch_size`` parallel streams, read ``bptt`` at a time."""
    per = (len(ids) - 1) // batch_size
    if per < 2:
        raise SpagoError(f"train_language_model: the text ({len(ids)} characters) is too short for "
                         f"batch_size={batch_size}")
    streams = ids[:per * batch_size + 1]
    inputs = np.stack([streams[b * per:(b + 1) * per] for b in range(batch_size)])
    targets = np.stack([streams[b * per + 1:(b + 1) * per + 1] for b in range(batch_size)])
    return [(inputs[:, s:s + bptt], targets[:, s:s + bptt]) for s in range(0, per - bptt + 1, bptt)]


def train_language_model(model: LanguageModel, train_text: str, valid_text: str, epochs: int = 1,
                         batch_size: int = 16, bptt: int = 64, lr: float = 20.0, clip: float = 0.25,
                         compiled: bool = True, checkpoint: str | None = None, progress: bool = False,
                         seed: int = 0) -> LMTrainingResult:
    """Train a character LM as Flair's ``LanguageModelTrainer`` does: SGD over truncated-BPTT windows of
    ``bptt`` characters in ``batch_size`` parallel streams, gradients clipped to norm ``clip``; after every
    epoch the validation perplexity is measured and the best model saved to ``checkpoint`` (atomically).

    Windows restart from a zero state (each is one fixed-shape compiled step)."""
    from ..optim import SGD, Trainer
    from ..serialization import save

    if not train_text or len(valid_text) < 2:
        raise SpagoError("train_language_model: needs a training text and a validation text of 2+ characters")
    order = train_text if model.is_forward_lm else train_text[::-1]
    batches = _windows(np.array(model.encode(order), np.int64), batch_size, bptt)
    rng = np.random.default_rng(seed)
    trainer = Trainer(model, lambda m, x, y: m.loss(x, y), SGD(model.parameters(), lr=lr), compiled=compiled,
                      clip_norm=clip)
    history, best = [], math.inf
    for epoch in range(int(epochs)):
        start = time.perf_counter()
        model.train()
        loss = trainer.fit([batches[i] for i in rng.permutation(len(batches))], epochs=1, progress=progress)[0]
        model.eval()
        ppl = model.perplexity(valid_text)
        history.append({"epoch": epoch + 1, "train_loss": loss, "valid_perplexity": ppl,
                        "seconds": time.perf_counter() - start})
        if ppl < best:
            best = ppl
            if checkpoint:
                save(model, checkpoint)
    return LMTrainingResult(history=history, best_perplexity=best, checkpoint=checkpoint)
