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

import copy
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
from .batching import Plan, batch_sizes, plan_by_cost, plan_by_key

__all__ = ["Endpoint", "Service", "load_service", "read_corpus", "KINDS"]

KINDS = ("ner", "bert")
# Padded lengths a served transformer runs at: finer than the library's (16, 32, 64 ...) among short texts,
# where a request padded to the next power of two would cost up to twice its own length.
SERVE_BUCKETS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# What one model call costs beyond its tokens, in tokens, until warm-up has measured it.
DEFAULT_CALL_OVERHEAD = 32.0
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
    """A loaded model behind its endpoints: `run(rows) -> outputs` runs one batch of rows, `plan(rows)` splits
    the rows waiting into such batches (see `spago.serve.batching`), `warm_up()` compiles the shapes requests
    will need (returns how many)."""

    kind: str
    source: str
    architecture: str
    endpoints: dict[str, Endpoint]
    run: Callable[[list], list]
    plan: Plan
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
    model = from_pretrained(folder, compiled=compiled, buckets=SERVE_BUCKETS)
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
    info: dict = {"buckets": list(model.buckets) if compiled else [], "call_overhead_tokens": DEFAULT_CALL_OVERHEAD}

    def padded(n: int) -> int:
        return next(s for s in sizes if s >= n)

    def run(encodings: list) -> list:
        return runner.run_rows(encodings, padded(len(encodings)) if compiled else None)

    def cost(count: int, longest: int) -> float:
        """A call's time in tokens: the padded (batch x length) it computes plus a call's own cost."""
        if compiled:
            count, longest = padded(count), model.bucket(longest)
        return info["call_overhead_tokens"] + count * longest

    def warm_up() -> int:
        if not compiled:
            return 0
        shapes = [(b, n) for n in model.buckets if n <= max(warm_length, model.buckets[0]) for b in sizes]
        for b, n in shapes:
            model.compiled_function(b, n)
        info["call_overhead_tokens"] = _call_overhead(model, shapes)
        return len(shapes)

    return Service(kind, model.source, architecture, {e.path: e for e in endpoints}, run,
                   plan_by_cost(len, cost, max_batch), warm_up, max_batch, info)


def _call_overhead(model, shapes: list[tuple[int, int]], reps: int = 3) -> float:
    """What one call of the compiled model costs beyond its tokens, in tokens: the intercept over the slope of a
    line fitted to the time of a call (the fastest of `reps`, through the model's own checks and padding)
    against its tokens, over the warmed batch sizes at the two shortest lengths (where attention's cost, square
    in the length, does not bend the line). Mostly the weights read once per call: a call of one short row
    costs nearly as much as one of several, so rows are worth batching even when padded."""
    lengths = sorted({n for _, n in shapes})[:2]
    points = []
    for b, n in shapes:
        if n not in lengths:
            continue
        ids = np.zeros((b, n), np.int64)
        mask = np.ones_like(ids)
        model(ids, mask, ids)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            model(ids, mask, ids)
            times.append(time.perf_counter() - start)
        points.append((b * n, min(times)))
    if len({tokens for tokens, _ in points}) < 2:
        return DEFAULT_CALL_OVERHEAD
    slope, intercept = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
    if slope <= 0:
        return DEFAULT_CALL_OVERHEAD
    return float(np.clip(intercept / slope, 0.0, 8192.0))


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
    """/analyze through the tagger. A `SequenceTagger` (one with ``tokenize``, ``predict_tokens`` and
    ``analyze_tokens``) is micro-batched: each row is (text, tokens, merge_entities, filter_not_entities), the
    text tokenized by the request, and rows of one token-length bucket (the tagger's padded length) are tagged by
    one ``predict_tokens`` call, made up to a batch size of `batch_sizes` with copies of a row so a compiled
    tagger sees few shapes. Any other tagger-like object with ``analyze(text, merge_entities=,
    filter_not_entities=)`` gets one call per request."""
    batched = all(callable(getattr(tagger, name, None)) for name in ("tokenize", "predict_tokens", "analyze_tokens"))
    sizes = batch_sizes(max_batch)
    if batched:
        from ..nlp.sequence_labeler import TOKEN_BUCKETS

    def analyze(req: schemas.AnalyzeRequest) -> Job:
        tokens = tagger.tokenize(req.text) if batched else None
        return Job([(req.text, tokens, req.options.mergeEntities, req.options.filterNotEntities)],
                   lambda rows: rows[0])

    def run(rows: list) -> list:
        if not batched:
            return [tagger.analyze(text, merge_entities=m, filter_not_entities=f) for text, _, m, f in rows]
        sentences = [copy.deepcopy(tokens) for _, tokens, _, _ in rows]  # predict_tokens fills them in
        tagged = [s for s in sentences if s]
        if tagged and getattr(tagger, "compiled", False):
            filler = next(n for n in sizes + [len(tagged)] if n >= len(tagged)) - len(tagged)
            sentences += [copy.deepcopy(tagged[0]) for _ in range(filler)]
        predicted = tagger.predict_tokens(sentences)
        return [tagger.analyze_tokens(text, tokens, m, f) for (text, _, m, f), tokens in zip(rows, predicted)]

    def warm_up() -> int:
        text = "spago compiles the tagger before serving ."
        rows = [(text, tagger.tokenize(text) if batched else None, True, True)]
        shapes = sizes if batched and getattr(tagger, "compiled", False) else [1]
        for n in shapes:
            run(rows * n)
        return len(shapes)

    def length_bucket(row: tuple) -> Hashable:
        n = len(row[1])
        return next((b for b in TOKEN_BUCKETS if b >= n), n)  # longer ones run eagerly, one length each

    endpoint = Endpoint("/analyze", "Named entities of a text (sequence tagger)", schemas.AnalyzeRequest,
                        schemas.TokensResponse, analyze)
    return Service("ner", str(source), type(tagger).__name__, {"/analyze": endpoint}, run,
                   plan_by_key(length_bucket if batched else (lambda row: 0)), warm_up, max_batch)
