"""Word embeddings on an embedded key-value store (LMDB), memory-mapped so a big table costs RAM only for
the rows read; imports of word2vec/GloVe files; `WordEmbeddings` layers trained row by row; and
`StackedEmbeddings`. See docs/embeddings.md."""
from .store import EmbeddingStore, EmbeddingStoreError, StoreWriter  # noqa: F401
from .importers import import_text, import_word2vec_binary  # noqa: F401
from .modules import StackedEmbeddings, WordEmbeddings, token_texts  # noqa: F401

__all__ = ["EmbeddingStore", "EmbeddingStoreError", "StoreWriter", "import_text", "import_word2vec_binary",
           "WordEmbeddings", "StackedEmbeddings", "token_texts"]
