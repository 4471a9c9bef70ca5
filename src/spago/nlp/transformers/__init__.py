"""BERT and ELECTRA with their task heads, sentence embeddings, and the Hugging Face importer.

    model = spago.nlp.transformers.from_pretrained("path/to/folder")   # compiled; compiled=False: eager
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)  # ModelOutput of NumPy arrays
"""
from .config import BertConfig, ElectraConfig, config_from_dict, load_config  # noqa: F401
from .bert import (  # noqa: F401
    BertEmbeddings, BertEncoder, BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining,
    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification, BertLayer, BertModel,
    BertPooler, BertSelfAttention,
)
from .electra import (  # noqa: F401
    ElectraForPreTraining, ElectraForQuestionAnswering, ElectraForSequenceClassification,
    ElectraForTokenClassification, ElectraModel,
)
from .pooling import Pooling, SentenceEmbedding  # noqa: F401
from .outputs import ModelOutput  # noqa: F401
from .checkpoint import read_state_dict  # noqa: F401
from .weights import load_weights  # noqa: F401
from .importer import (  # noqa: F401
    DEFAULT_BUCKETS, MODEL_CLASSES, TransformerModel, build_model, convert, from_pretrained, save_pretrained,
)
from ..._exports import public_names as _public_names  # noqa: E402

__all__ = _public_names(globals(), modules=())
