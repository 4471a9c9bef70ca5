"""Tokenizers written in spago: BERT's basic tokenizer, WordPiece, and the BertTokenizer that combines them.

They reproduce the Hugging Face tokenizers (same tokens, ids and character offsets) without depending on them.
"""

from spago.nlp.tokenizers.basic import BasicTokenizer, TokenizerError, Word
from spago.nlp.tokenizers.bert import BertTokenizer
from spago.nlp.tokenizers.encoding import Encoding
from spago.nlp.tokenizers.wordpiece import WordPiece, load_vocab

__all__ = ["BasicTokenizer", "BertTokenizer", "Encoding", "TokenizerError", "Word", "WordPiece", "load_vocab"]
