"""What the servers run, apart from HTTP: loading a model (with the Go spaGO's start-up progress lines),
compiling it, and the endpoints it supports, each a function from a checked request to a pipeline `Job`.

`load_service(kind, model)` gives a `Service`; `spago.serve.app.build_app` puts it behind FastAPI, and anything
else that speaks ASGI (uvicorn, Ray Serve) can host that app. Models:

- ``ner``: a BERT/ELECTRA token-classification folder (the pipeline `TokenClassification`), or a Flair tagger
  file, or a `SequenceTagger`-like object with ``analyze(text, merge_entities=, filter_not_entities=)``;
- ``bert``: a BERT/ELECTRA folder; its architecture decides the endpoints (question answering: /answer; masked
  LM: /predict; ELECTRA discriminator: /discriminate; sequence classification: /classify; token
  classification: /analyze; an encoder or sentence-transformers folder: /encode, /similarity and, with a
  corpus, /search).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from ..errors import SpagoError
from ..nlp.pipelines import (
    FillMask, QuestionAnswering, ReplacedTokenDetection, SemanticSearch, SentenceEncoder, SequenceClassification,
    TokenClassification, read_csv_column,
)
from ..nlp.pipelines.base import Job, Pipeline
from . import schemas
from .batching import batch_sizes

__all__ = ["Endpoint", "Service", "load_service", "read_corpus", "KINDS"]

KINDS = ("ner", "bert")
Log = Callable[[str], None]


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Endpoint:
    """POST `path`: a `request` body in, a `Job` out (whose answer has the `response` shape)."""

    path: str
    summary: str
    request: type
    response: type
    prepare: Callable[[Any], Job]


@dataclass
class Service:
    """A loaded model behind its endpoints: `run(rows) -> outputs` runs one batch of rows with equal `key`,
    `warm_up()` compiles the shapes requests will need (returns how many)."""

    kind: str
    source: str
    architecture: str
    endpoints: dict[str, Endpoint]
    run: Callable[[list], list]
    key: Callable[[Any], Hashable]
    warm_up: Callable[[], int]
    max_batch: int
    info: dict = field(default_factory=dict)


def read_corpus(path: str | os.PathLike) -> list[str]:
    """The texts to search: a .csv file's first column (after its header row), or a text file's non-empty
    lines."""
    path = os.fspath(path)
    if path.lower().endswith(".csv"):
        return read_csv_column(path, 0, header=True)
    if not os.path.isfile(path):
        raise SpagoError(f"corpus file not found: {path}")
    with open(path, encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()]
    if not texts:
        raise SpagoError(f"{path}: the corpus has no texts")
    return texts


def load_service(kind: str, model: Any, *, compiled: bool = True, max_batch: int = 8, warm_length: int = 128,
                 corpus: str | Sequence[str] | None = None, log: Log | None = stderr_log) -> Service:
    """Load `model` (a path, or an already loaded tagger / `TransformerModel`) for `kind` ("ner" or "bert")."""
    log = log or (lambda line: None)
    if kind not in KINDS:
        raise SpagoError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if max_batch < 1:
        raise SpagoError(f"max_batch must be >= 1, got {max_batch}")
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise SpagoError(f"model not found: {path}")
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
            model = _load_transformer(path, compiled, log)
        elif kind == "ner":
            return _tagger_service(_load_tagger(path, compiled, log), path, max_batch)
        else:
            raise SpagoError(f"{path}: not a BERT/ELECTRA model folder (no config.json)")
    if hasattr(model, "architecture") and hasattr(model, "tokenizer"):
        return _transformer_service(kind, model, compiled, max_batch, warm_length, corpus)
    if kind == "ner" and callable(getattr(model, "analyze", None)):
        return _tagger_service(model, getattr(model, "source", type(model).__name__), max_batch)
    raise SpagoError(f"cannot serve a {type(model).__name__} as {kind}: expected a model folder"
                     + (", a Flair tagger file or a tagger with analyze()" if kind == "ner" else ""))


# -- BERT / ELECTRA ---------------------------------------------------------------------------------------------

def _load_transformer(folder: str, compiled: bool, log: Log):
    from ..nlp.tokenizers import BertTokenizer
    from ..nlp.transformers import from_pretrained, load_config

    start = time.perf_counter()
    cfg = load_config(folder)
    log(f"[1/3] configuration: {cfg.model_type}, {cfg.num_hidden_layers} layers, hidden size {cfg.hidden_size}, "
        f"{cfg.num_attention_heads} heads, up to {cfg.max_position_embeddings} tokens ({folder})")
    if os.path.isfile(os.path.join(folder, "vocab.txt")) or os.path.isfile(os.path.join(folder, "tokenizer.json")):
        log(f"[2/3] vocabulary: {BertTokenizer.from_pretrained(folder).vocab_size} word pieces")
    else:
        raise SpagoError(f"{folder}: no vocabulary (vocab.txt or tokenizer.json); the server needs one")
    model = from_pretrained(folder, compiled=compiled)
    log(f"[3/3] weights: {model.encoder.num_parameters():,} parameters, {model.architecture}"
        f"{' + pooling ' + '+'.join(model.pooling.modes) if model.pooling else ''} "
        f"({time.perf_counter() - start:.1f} s)")
    return model


def _encoder_endpoints(model, corpus) -> list[Endpoint]:
    encoder = SentenceEncoder(model)

    def encode(req: schemas.EncodeRequest) -> Job:
        single = req.text is not None
        job = encoder.prepare([req.text] if single else req.texts, req.pooling)

        def finish(rows: list) -> dict:
            vectors = job.finish(rows)["embeddings"]
            return {"data": vectors[0] if single else vectors}

        return Job(job.encodings, finish)

    def similarity(req: schemas.SimilarityRequest) -> Job:
        job = encoder.prepare(req.texts, req.pooling)

        def finish(rows: list) -> dict:
            emb = np.asarray(job.finish(rows)["embeddings"], dtype=np.float64)
            return {"similarity": np.clip(emb @ emb.T, -1.0, 1.0).tolist()}

        return Job(job.encodings, finish)

    endpoints = [
        Endpoint("/encode", "Sentence embeddings of a text or texts", schemas.EncodeRequest, schemas.EncodeResponse,
                 encode),
        Endpoint("/similarity", "Cosine similarity of every pair of texts", schemas.SimilarityRequest,
                 schemas.SimilarityResponse, similarity),
    ]
    if corpus is not None:
        texts = read_corpus(corpus) if isinstance(corpus, (str, os.PathLike)) else list(corpus)
        search = SemanticSearch(model, texts)
        endpoints.append(Endpoint("/search", f"The corpus' texts ({len(texts)}) most similar to a query",
                                  schemas.SearchRequest, schemas.SearchResponse,
                                  lambda req: search.prepare(req.query, req.options.topK)))
    return endpoints


def _head_endpoints(model) -> list[Endpoint]:
    architecture = model.architecture
    if architecture in QuestionAnswering.architectures:
        qa = QuestionAnswering(model)
        return [Endpoint("/answer", "Extractive question answering: answer spans of the passage",
                         schemas.AnswerRequest, schemas.AnswerResponse,
                         lambda r: qa.prepare(r.question, r.passage, top_k=r.options.maxAnswers,
                                              max_answer_length=r.options.maxAnswerLength,
                                              min_confidence=r.options.minConfidence))]
    if architecture in TokenClassification.architectures:
        ner = TokenClassification(model)
        return [Endpoint("/analyze", "Named entities (token classification) of a text", schemas.AnalyzeRequest,
                         schemas.TokensResponse,
                         lambda r: ner.prepare(r.text, merge_entities=r.options.mergeEntities,
                                               filter_not_entities=r.options.filterNotEntities))]
    if architecture in FillMask.architectures:
        fill = FillMask(model)
        return [Endpoint("/predict", "The most probable tokens for each [MASK]", schemas.PredictRequest,
                         schemas.PredictResponse, lambda r: fill.prepare(r.text, top_k=r.options.topK))]
    if architecture in ReplacedTokenDetection.architectures:
        rtd = ReplacedTokenDetection(model)
        return [Endpoint("/discriminate", "ELECTRA: which words were replaced (FAKE) or not (REAL)",
                         schemas.TextRequest, schemas.TokensResponse, lambda r: rtd.prepare(r.text))]
    if architecture in SequenceClassification.architectures:
        clf = SequenceClassification(model)
        return [Endpoint("/classify", "The class of a text (or a pair of texts)", schemas.ClassifyRequest,
                         schemas.ClassifyResponse, lambda r: clf.prepare(r.text, r.textPair))]
    return []


def _transformer_service(kind: str, model, compiled: bool, max_batch: int, warm_length: int, corpus) -> Service:
    architecture = model.architecture
    if model.tokenizer is None:
        raise SpagoError(f"{model.source}: the model has no tokenizer; the server needs one")
    if kind == "ner" and architecture not in TokenClassification.architectures:
        raise SpagoError(f"serve ner needs a token-classification model "
                         f"({', '.join(TokenClassification.architectures)}) or a Flair tagger; {model.source} is "
                         f"{architecture} (use serve bert)")
    if architecture in ("BertModel", "ElectraModel"):
        endpoints = _encoder_endpoints(model, corpus)
    else:
        if corpus is not None:
            raise SpagoError(f"--corpus needs an encoder (a sentence-transformers folder or a bare BertModel); "
                             f"{model.source} is {architecture}")
        endpoints = _head_endpoints(model)
    if not endpoints:
        raise SpagoError(f"{model.source}: no endpoint serves {architecture}")
    runner = Pipeline(model)  # the bare pipeline (any head): its `run_rows` runs a batch
    sizes = batch_sizes(max_batch)

    def padded(n: int) -> int:
        return next(s for s in sizes if s >= n)

    def run(encodings: list) -> list:
        return runner.run_rows(encodings, padded(len(encodings)) if compiled else None)

    def warm_up() -> int:
        if not compiled:
            return 0
        shapes = [(b, n) for n in model.buckets if n <= max(warm_length, model.buckets[0]) for b in sizes]
        for b, n in shapes:
            model.compiled_function(b, n)
        return len(shapes)

    return Service(kind, model.source, architecture, {e.path: e for e in endpoints}, run,
                   (lambda enc: model.bucket(len(enc))) if compiled else (lambda enc: 0), warm_up, max_batch,
                   {"buckets": list(model.buckets) if compiled else []})


# -- sequence taggers (Flair) ---------------------------------------------------------------------------------

def _load_tagger(path: str, compiled: bool, log: Log):
    """A Flair tagger file, through spago's `SequenceTagger` (imported only when one is served)."""
    try:
        from ..nlp.sequence_labeler import SequenceTagger
    except ImportError as exc:
        raise SpagoError(f"{path}: serving a Flair tagger needs spago.nlp.sequence_labeler ({exc})") from None
    start = time.perf_counter()
    log(f"[1/3] configuration: Flair sequence tagger ({path})")
    tagger = SequenceTagger.from_flair(path, compiled=compiled)
    log("[2/3] vocabulary: the tagger's dictionaries")
    log(f"[3/3] weights: loaded ({time.perf_counter() - start:.1f} s)")
    return tagger


def _tagger_service(tagger, source: str, max_batch: int) -> Service:
    """/analyze through ``tagger.analyze``; each row is (text, merge_entities, filter_not_entities)."""

    def analyze(req: schemas.AnalyzeRequest) -> Job:
        return Job([(req.text, req.options.mergeEntities, req.options.filterNotEntities)], lambda rows: rows[0])

    def run(rows: list) -> list:
        return [tagger.analyze(text, merge_entities=m, filter_not_entities=f) for text, m, f in rows]

    def warm_up() -> int:
        tagger.analyze("spago compiles the tagger before serving .", merge_entities=True, filter_not_entities=True)
        return 1

    endpoint = Endpoint("/analyze", "Named entities of a text (sequence tagger)", schemas.AnalyzeRequest,
                        schemas.TokensResponse, analyze)
    return Service("ner", str(source), type(tagger).__name__, {"/analyze": endpoint}, run, lambda row: 0, warm_up,
                   max_batch)
