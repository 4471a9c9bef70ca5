"""Entity-level precision, recall and micro F1 for tag sequences, as CoNLL's ``conlleval`` script (and
``seqeval``'s default mode) define them: a predicted entity counts only if its type and both boundaries
match a gold one. Tags are BIO (IOB2), IOB1 or BIOES (``S-``/``E-`` close chunks); chunk boundaries follow
conlleval's ``startOfChunk``/``endOfChunk`` rules, so ill-formed sequences are read as conlleval reads them.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import SpagoError

__all__ = ["get_entities", "entity_f1"]


def _split(tag: str, where: str) -> tuple[str, str]:
    if tag in ("O", "", "_"):
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not kind:
        raise SpagoError(f"{where}: {tag!r} is not a tag of the form O, B-TYPE, I-TYPE, E-TYPE or S-TYPE")
    return prefix, kind


def _ends(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (prev in ("E", "S") or (prev in ("B", "I") and tag in ("B", "S", "O"))
            or (prev != "O" and prev_type != kind))


def _starts(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (tag in ("B", "S") or (prev in ("E", "S", "O") and tag in ("E", "I"))
            or (tag != "O" and prev_type != kind))


def get_entities(tags: Sequence[str], where: str = "get_entities") -> list[tuple[str, int, int]]:
    """The chunks of one tag sequence as (type, start, end) with ``end`` exclusive."""
    chunks, prev, prev_type, begin = [], "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        cur, kind = _split(tag, f"{where}, position {i}")
        if _ends(prev, cur, prev_type, kind) and prev != "O":
            chunks.append((prev_type, begin, i))
        if _starts(prev, cur, prev_type, kind):
            begin = i
        prev, prev_type = cur, kind
    return chunks


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged entity precision, recall and F1 over sentences, with the counts behind them."""
    if len(gold) != len(predicted):
        raise SpagoError(f"entity_f1: {len(gold)} gold sentences but {len(predicted)} predicted")
    hits = n_gold = n_pred = 0
    for k, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise SpagoError(f"entity_f1: sentence {k} has {len(g)} gold tags but {len(p)} predicted")
        gs = set(get_entities(g, f"entity_f1: gold sentence {k}"))
        ps = set(get_entities(p, f"entity_f1: predicted sentence {k}"))
        hits, n_gold, n_pred = hits + len(gs & ps), n_gold + len(gs), n_pred + len(ps)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold": n_gold, "predicted": n_pred,
            "correct": hits}
