"""The memory planner: no two live buffers overlap (checked exhaustively), the arena is close to the
lower bound, reuse beats the naive sum, in-place reuse happens, and the picture renders."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings

import spago as sp
from spago.passes import optimize
from spago.lower.memory import plan_memory

from .dags import random_graphs
from .models import attention_args, encoder, mlp

rng = np.random.default_rng(0)


def models():
    x = rng.standard_normal((32, 256)).astype(np.float32)
    enc_x, mask = attention_args(rng, 2, 16, 64)[0], np.zeros((2, 1, 1, 16), np.float32)
    return {
        "mlp12": (mlp(12, 256, rng), (x,)),
        "encoder4": (encoder(4, 64, rng), (enc_x, mask)),
        "softmax-chain": (lambda v: sp.softmax(sp.exp(v) * 2.0 + 1.0) * 3.0, (x,)),
    }


MODELS = models()


@pytest.mark.parametrize("optimized", [False, True], ids=["unfused", "optimized"])
@pytest.mark.parametrize("name", list(MODELS))
def test_plans_are_valid_and_tight(name, optimized):
    fn, args = MODELS[name]
    graph = sp.trace(fn, *args)
    if optimized:
        graph, _ = optimize(graph)
    plan = plan_memory(graph).check()
    assert plan.arena_bytes <= 1.10 * plan.lower_bound_bytes
    assert plan.arena_bytes <= plan.naive_bytes
    outputs = {o.name for o in graph.outputs}
    inputs = {n.name for n in graph.inputs + graph.consts + graph.params}
    assert not ({e.name for e in plan.entries} & (outputs | inputs))


@pytest.mark.parametrize("name", ["mlp12", "encoder4"])
def test_reuse_saves_at_least_three_times_on_deep_models(name):
    fn, args = MODELS[name]
    for graph in (sp.trace(fn, *args), optimize(sp.trace(fn, *args))[0]):
        plan = plan_memory(graph)
        assert plan.naive_bytes / plan.arena_bytes >= 3


def test_elementwise_chains_reuse_their_input_in_place():
    plan = plan_memory(sp.trace(lambda v: sp.exp(sp.tanh(v * 2.0) + 1.0), np.ones((64, 64), np.float32)))
    assert any(e.inplace_of for e in plan.entries)
    plan.check()


@settings(max_examples=80, deadline=None)
@given(sample=random_graphs())
def test_no_overlap_on_random_graphs(sample):
    graph, _ = sample
    plan_memory(graph).check()
    plan_memory(optimize(graph)[0]).check()


def test_check_catches_an_overlap():
    plan = plan_memory(sp.trace(lambda v: sp.exp(v).sum() + sp.tanh(v).sum(), np.ones((16, 16), np.float32)))
    live_together = [(a, b) for a in plan.entries for b in plan.entries if a is not b and a.overlaps_in_time(b)
                     and not a.inplace_of and not b.inplace_of]
    a, b = live_together[0]
    b.offset = a.offset
    with pytest.raises(sp.SpagoError, match="overlap"):
        plan.check()


def test_picture_table_and_dict(tmp_path):
    fn, args = MODELS["encoder4"]
    compiled = sp.compile(fn, *args)
    plan = compiled.memory_plan()
    root = ET.fromstring(plan.to_svg())
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}rect")) > len(plan.entries)
    path = plan.render(str(tmp_path / "plan.svg"))
    assert ET.parse(path).getroot().tag.endswith("svg")
    assert "arena" in plan.table()
    d = plan.as_dict()
    assert d["arena_bytes"] == plan.arena_bytes and len(d["buffers"]) == len(plan.entries)
    report = compiled.report()
    assert report["arena_bytes"] == plan.arena_bytes and report["kernels"] >= 1
    assert report["naive_bytes"] >= report["arena_bytes"] >= report["lower_bound_bytes"] > 0
