"""ELECTRA (Clark et al., 2020, "ELECTRA: Pre-training Text Encoders as Discriminators Rather Than
Generators"): a BERT encoder trained to tell original tokens from replaced ones, and its task heads.

The encoder is BERT's; only the embeddings differ: they may be narrower (``embedding_size``) than the
hidden size, in which case ``embeddings_project`` maps them up before the first layer. There is no pooler.
"""
from __future__ import annotations

from ... import ops
from ...nn import Dropout, Linear, Module
from .bert import BertEmbeddings, BertEncoder, BertModel, _Head, activation, span_logits
from .config import ElectraConfig

__all__ = ["ElectraModel", "ElectraDiscriminatorPredictions", "ElectraForPreTraining", "ElectraForQuestionAnswering",
           "ElectraForTokenClassification", "ElectraClassificationHead", "ElectraForSequenceClassification"]


class ElectraModel(BertModel):
    """e = embeddings(ids) of width ``embedding_size``, then e·Pᵀ + b up to ``hidden_size`` when the widths
    differ, then the BERT encoder. ``forward`` returns ``last_hidden_state`` (and ``hidden_states``)."""

    def __init__(self, config: ElectraConfig):
        Module.__init__(self)
        self.config = config
        self.embeddings = BertEmbeddings(config, embedding_size=config.embedding_size)
        if config.embedding_size != config.hidden_size:
            self.embeddings_project = Linear(config.embedding_size, config.hidden_size)
        else:
            self.embeddings_project = None
        self.encoder = BertEncoder(config)
        self.pooler = None

    def embed(self, input_ids, token_type_ids):
        e = self.embeddings(input_ids, token_type_ids)
        return self.embeddings_project(e) if self.embeddings_project is not None else e


class ElectraDiscriminatorPredictions(Module):
    """score = act(h·W₁ᵀ + b₁)·w₂ᵀ + b₂: one "was this token replaced?" logit per position."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.act = config.hidden_act
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.dense_prediction = Linear(config.hidden_size, 1)

    def forward(self, h):
        """h (B, S, H) → one "replaced" logit per token (B, S)."""
        return ops.squeeze(self.dense_prediction(activation(self.act, self.dense(h))), -1)


class ElectraForPreTraining(_Head):
    """The replaced-token-detection discriminator: ``logits`` (B, S)."""

    base_prefix = "electra"
    token_level = True

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.electra = ElectraModel(config)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)

    def head(self, out: dict) -> dict:
        return {"logits": self.discriminator_predictions(out["last_hidden_state"])}


class ElectraForQuestionAnswering(_Head):
    """Extractive question answering: ``start_logits`` and ``end_logits`` (B, S)."""

    base_prefix = "electra"

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.electra = ElectraModel(config)
        self.qa_outputs = Linear(config.hidden_size, 2)

    def head(self, out: dict) -> dict:
        return span_logits(self.qa_outputs, out["last_hidden_state"])


class ElectraForTokenClassification(_Head):
    """Token classification: ``logits`` (B, S, num_labels) = classifier(h)."""

    base_prefix = "electra"
    token_level = True

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.electra = ElectraModel(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def head(self, out: dict) -> dict:
        return {"logits": self.classifier(self.dropout(out["last_hidden_state"]))}


class ElectraClassificationHead(Module):
    """logits = out_proj(gelu(dense(h[:, 0]))) — ELECTRA's sentence head uses GELU where BERT's pooler
    uses tanh."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.out_proj = Linear(config.hidden_size, config.num_labels)

    def forward(self, h):
        """h (B, S, H) → class logits (B, num_labels) from the first token."""
        x = ops.gelu(self.dense(self.dropout(h[:, 0])), approximate="none")
        return self.out_proj(self.dropout(x))


class ElectraForSequenceClassification(_Head):
    """Sequence classification: ``logits`` (B, num_labels) from the first token."""

    base_prefix = "electra"

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.electra = ElectraModel(config)
        self.classifier = ElectraClassificationHead(config)

    def head(self, out: dict) -> dict:
        return {"logits": self.classifier(out["last_hidden_state"])}
