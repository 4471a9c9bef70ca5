"""BERT: Bidirectional Encoder Representations from Transformers (Devlin et al., 2019,
"BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"), and its task heads.

Module and parameter names follow the Hugging Face checkpoints (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ``bert.`` prefix in head models …) so a state dict loads
by name. Every forward is written with spago ops only, so the same model runs eagerly and compiled.
"""
from __future__ import annotations

import math

import numpy as np

from ... import ops
from ...errors import ShapeError, SpagoError
from ...nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Param
from .config import BertConfig
from .outputs import ModelOutput

__all__ = [
    "activation", "extended_attention_mask", "BertEmbeddings", "BertSelfAttention", "BertSelfOutput",
    "BertAttention", "BertIntermediate", "BertOutput", "BertLayer", "BertEncoder", "BertPooler", "BertModel",
    "BertPredictionHeadTransform", "BertLMPredictionHead", "BertForMaskedLM", "BertForNextSentencePrediction",
    "BertForPreTraining", "BertForTokenClassification", "BertForQuestionAnswering",
    "BertForSequenceClassification",
]


def activation(name: str, x):
    """The activation ``hidden_act`` names: ``gelu`` is the exact x·Φ(x) (erf), ``gelu_new`` the tanh
    approximation 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), ``relu`` max(0, x)."""
    if name == "gelu":
        return ops.gelu(x, approximate="none")
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return ops.gelu(x, approximate="tanh")
    if name == "relu":
        return ops.relu(x)
    raise SpagoError(f"unknown activation {name!r} (supported: gelu, gelu_new, relu)")


def extended_attention_mask(attention_mask, dtype):
    """(B, S) 1/0 mask -> (B, 1, 1, S) additive mask: 0 on real keys, the dtype's minimum on padding,
    as Hugging Face's eager attention does (padded keys get exactly zero weight after the softmax)."""
    mask = ops.cast(attention_mask, dtype)
    batch, seq = mask.shape
    return ((1.0 - mask) * float(np.finfo(dtype).min)).reshape(batch, 1, 1, seq)


def _check_ids(input_ids, attention_mask, token_type_ids, max_positions: int):
    input_ids = ops.elementwise._t(input_ids)
    if input_ids.ndim != 2:
        raise ShapeError(f"input_ids must be (batch, sequence), got shape {input_ids.shape}")
    if input_ids.shape[1] > max_positions:
        raise ShapeError(f"input of {input_ids.shape[1]} tokens is longer than max_position_embeddings "
                         f"({max_positions})")
    if attention_mask is None:
        attention_mask = ops.ones(input_ids.shape, dtype="int64")
    if token_type_ids is None:
        token_type_ids = ops.zeros(input_ids.shape, dtype="int64")
    for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if tuple(t.shape) != tuple(input_ids.shape):
            raise ShapeError(f"{name} must have the shape of input_ids {input_ids.shape}, got {tuple(t.shape)}")
    return input_ids, ops.elementwise._t(attention_mask), ops.elementwise._t(token_type_ids)


class BertEmbeddings(Module):
    """e = LayerNorm(W_word[ids] + W_pos[0..S) + W_type[token_type_ids]), then dropout.

    ``embedding_size`` differs from ``hidden_size`` only for ELECTRA, which projects afterwards."""

    def __init__(self, config: BertConfig, embedding_size: int | None = None):
        super().__init__()
        dim = embedding_size or config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, dim)
        self.position_embeddings = Embedding(config.max_position_embeddings, dim)
        self.token_type_embeddings = Embedding(config.type_vocab_size, dim)
        self.LayerNorm = LayerNorm(dim, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        """input_ids, token_type_ids (B, S) ints → word + position + segment embeddings, normalised (B, S, H)."""
        seq = input_ids.shape[1]
        positions = self.position_embeddings.weight[:seq]
        e = self.word_embeddings(input_ids) + positions + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(e))


class BertSelfAttention(Module):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017):
    head_i = softmax(Q_i K_iᵀ / √d + M) V_i with Q = xW_qᵀ + b_q (and K, V alike), heads concatenated.
    M is the additive padding mask."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads, self.head_size = config.num_attention_heads, config.head_size
        self.query = Linear(config.hidden_size, config.hidden_size)
        self.key = Linear(config.hidden_size, config.hidden_size)
        self.value = Linear(config.hidden_size, config.hidden_size)
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def forward(self, x, mask):
        """x (B, S, H); mask: the additive mask (B, 1, 1, S), 0 on real keys and a large negative number on
        padding (`extended_attention_mask`) → contexts (B, S, H)."""
        batch, seq, dim = x.shape

        def heads(t):
            return t.reshape(batch, seq, self.num_heads, self.head_size).transpose((0, 2, 1, 3))

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(self.head_size)) + mask
        probs = self.dropout(ops.softmax(scores, axis=-1))
        return (probs @ v).transpose((0, 2, 1, 3)).reshape(batch, seq, dim)


class BertSelfOutput(Module):
    """y = LayerNorm(dropout(context·Wᵀ + b) + x): output projection with the residual connection."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h, x):
        """h: the attention contexts (B, S, H); x: the layer's input (B, S, H), added back → (B, S, H)."""
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertAttention(Module):
    """Self-attention followed by its output projection, residual and LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, mask):
        """x (B, S, H); mask: the additive mask (B, 1, 1, S) → (B, S, H)."""
        return self.output(self.self(x, mask), x)


class BertIntermediate(Module):
    """h = act(x·W₁ᵀ + b₁): the position-wise feed-forward expansion."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.act = config.hidden_act
        self.dense = Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x):
        """x (B, S, H) → (B, S, intermediate_size)."""
        return activation(self.act, self.dense(x))


class BertOutput(Module):
    """y = LayerNorm(dropout(h·W₂ᵀ + b₂) + x): the feed-forward contraction with residual."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h, x):
        """h (B, S, intermediate_size); x: the sub-layer's input (B, S, H), added back → (B, S, H)."""
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertLayer(Module):
    """One transformer encoder block: attention sub-layer then feed-forward sub-layer (post-LayerNorm)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, mask):
        """x (B, S, H); mask: the additive mask (B, 1, 1, S), 0 on real tokens, very negative on padding."""
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(Module):
    """A stack of ``num_hidden_layers`` `BertLayer`s; optionally returns every layer's output too."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x, mask, output_hidden_states: bool = False):
        """x (B, S, H); mask: the additive mask (B, 1, 1, S). Returns h (B, S, H), and with
        ``output_hidden_states`` also the list of the input and every layer's output."""
        states = [x]
        for layer in self.layer:
            x = layer(x, mask)
            states.append(x)
        return (x, states) if output_hidden_states else x


class BertPooler(Module):
    """p = tanh(h[:, 0]·Wᵀ + b): the [CLS] representation used by sentence-level heads."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, h):
        """h (B, S, H) → tanh(dense(h[:, 0])) (B, H): the [CLS] token's vector."""
        return ops.tanh(self.dense(h[:, 0]))


class BertModel(Module):
    """The BERT encoder: embeddings, transformer layers and (optionally) the pooler.

    ``forward`` returns a `ModelOutput` (a dict with attribute access and integer indexing) keyed like Hugging
    Face outputs: ``last_hidden_state``, ``pooler_output``
    (with a pooler) and ``hidden_states`` (stacked (layers+1, B, S, H), when asked for)."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def embed(self, input_ids, token_type_ids):
        return self.embeddings(input_ids, token_type_ids)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False):
        """input_ids (B, S) int token ids; attention_mask (B, S), 1 on real tokens and 0 on padding (None: all
        ones); token_type_ids (B, S) segment ids (None: zeros). Returns a `ModelOutput`."""
        input_ids, attention_mask, token_type_ids = _check_ids(
            input_ids, attention_mask, token_type_ids, self.config.max_position_embeddings)
        x = self.embed(input_ids, token_type_ids)
        mask = extended_attention_mask(attention_mask, x.dtype)
        out = ModelOutput()
        if output_hidden_states:
            h, states = self.encoder(x, mask, output_hidden_states=True)
        else:
            h = self.encoder(x, mask)
        out["last_hidden_state"] = h
        if self.pooler is not None:
            out["pooler_output"] = self.pooler(h)
        if output_hidden_states:
            out["hidden_states"] = ops.stack(states, axis=0)
        return out


class _Head(Module):
    """A task head on a base encoder kept under ``base_prefix`` (``bert`` or ``electra``)."""

    base_prefix = "bert"
    token_level = False  # whether ``logits`` has a sequence axis (axis 1)

    @property
    def base(self) -> Module:
        return getattr(self, self.base_prefix)

    @property
    def config(self) -> BertConfig:
        return self.base.config

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False):
        """input_ids (B, S) int token ids; attention_mask (B, S), 1 on real tokens and 0 on padding (None: all
        ones); token_type_ids (B, S) segment ids (None: zeros). Returns a `ModelOutput`: the head's outputs
        first (so ``out[0]`` is ``logits`` as in Hugging Face), then the encoder's."""
        out = self.base(input_ids, attention_mask, token_type_ids, output_hidden_states)
        return ModelOutput({**self.head(out), **out})

    def head(self, out: dict) -> dict:
        raise SpagoError(f"{type(self).__name__} must define head()")


class BertPredictionHeadTransform(Module):
    """t = LayerNorm(act(h·Wᵀ + b))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.act = config.hidden_act
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h):
        """h (B, S, H) → (B, S, H)."""
        return self.LayerNorm(activation(self.act, self.dense(h)))


class BertLMPredictionHead(Module):
    """logits = transform(h)·Eᵀ + b, with E the word-embedding table (tied weights) and b its own bias."""

    def __init__(self, config: BertConfig, word_embeddings: Embedding):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = Param(np.zeros(config.vocab_size), "float32")
        object.__setattr__(self, "_tied", word_embeddings)  # not registered: its weight lives in the encoder

    def forward(self, h):
        """h (B, S, H) → vocabulary logits (B, S, vocab_size)."""
        return self.transform(h) @ self._tied.weight.T + self.bias


class _MLMHeads(Module):
    """``cls.predictions`` (and ``cls.seq_relationship`` for pre-training), named as in the checkpoints."""

    def __init__(self, config: BertConfig, word_embeddings: Embedding, nsp: bool, mlm: bool = True):
        super().__init__()
        if mlm:
            self.predictions = BertLMPredictionHead(config, word_embeddings)
        if nsp:
            self.seq_relationship = Linear(config.hidden_size, 2)


class BertForMaskedLM(_Head):
    """Masked language modelling: ``logits`` (B, S, vocab) for every position."""

    token_level = True

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = _MLMHeads(config, self.bert.embeddings.word_embeddings, nsp=False)

    def head(self, out: dict) -> dict:
        return {"logits": self.cls.predictions(out["last_hidden_state"])}


class BertForNextSentencePrediction(_Head):
    """Next sentence prediction: ``logits`` (B, 2) from the pooled [CLS]; index 0 means "B follows A"."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config)
        self.cls = _MLMHeads(config, self.bert.embeddings.word_embeddings, nsp=True, mlm=False)

    def head(self, out: dict) -> dict:
        return {"logits": self.cls.seq_relationship(out["pooler_output"])}


class BertForPreTraining(_Head):
    """Both pre-training heads: ``prediction_logits`` (masked LM) and ``seq_relationship_logits`` (NSP)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config)
        self.cls = _MLMHeads(config, self.bert.embeddings.word_embeddings, nsp=True)

    def head(self, out: dict) -> dict:
        return {"prediction_logits": self.cls.predictions(out["last_hidden_state"]),
                "seq_relationship_logits": self.cls.seq_relationship(out["pooler_output"])}


class BertForTokenClassification(_Head):
    """Token classification (e.g. named entities): ``logits`` (B, S, num_labels) = classifier(h)."""

    token_level = True

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def head(self, out: dict) -> dict:
        return {"logits": self.classifier(self.dropout(out["last_hidden_state"]))}


def span_logits(qa_outputs: Linear, h) -> dict:
    """Extractive question answering: [start | end] = h·Wᵀ + b, one score per position each."""
    logits = qa_outputs(h)
    return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}


class BertForQuestionAnswering(_Head):
    """Extractive question answering: ``start_logits`` and ``end_logits`` (B, S)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = Linear(config.hidden_size, 2)

    def head(self, out: dict) -> dict:
        return span_logits(self.qa_outputs, out["last_hidden_state"])


class BertForSequenceClassification(_Head):
    """Sequence (or sentence-pair) classification: ``logits`` (B, num_labels) from the pooled [CLS]."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def head(self, out: dict) -> dict:
        return {"logits": self.classifier(self.dropout(out["pooler_output"]))}
