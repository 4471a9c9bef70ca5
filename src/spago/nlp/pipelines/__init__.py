"""Task pipelines over BERT / ELECTRA models: each takes plain text and returns a plain, JSON-ready dict.

    qa = QuestionAnswering(spago.nlp.transformers.from_pretrained("path/to/squad-model"))
    qa("who lives in paris?", "john lives in paris.")   # {"answers": [{"text", "start", "end", "confidence"}]}

Character offsets are Python str indices into the texts given. The answer decoding, entity merging and top-k
logic are pure functions in `decoding`, shared with the servers.
"""

from spago.nlp.pipelines.base import Pipeline
from spago.nlp.pipelines.classification import NextSentencePrediction, SequenceClassification
from spago.nlp.pipelines.discrimination import ReplacedTokenDetection
from spago.nlp.pipelines.fill_mask import FillMask
from spago.nlp.pipelines.question_answering import QuestionAnswering
from spago.nlp.pipelines.semantic_search import SemanticSearch, SentenceEncoder, read_csv_column
from spago.nlp.pipelines.token_classification import TokenClassification
from spago.nlp.pipelines.factory import TASKS, pipeline

__all__ = ["Pipeline", "QuestionAnswering", "TokenClassification", "FillMask", "NextSentencePrediction",
           "SequenceClassification", "ReplacedTokenDetection", "SentenceEncoder", "SemanticSearch",
           "read_csv_column", "TASKS", "pipeline"]
