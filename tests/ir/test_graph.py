"""The IR: printing, structure of traced graphs, verify() on malformed graphs, networkx and DOT export."""
from __future__ import annotations

import glob
import os
import sys

import networkx as nx
import numpy as np
import pytest

import spago as sp
from spago.ir import Graph, IRError
from spago.ops import OPS, Spec

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_printing_lists_one_line_per_node():
    g = sp.trace(lambda x: sp.tanh(x * 2.0).sum(axis=1), X)
    text = str(g)
    assert text.startswith("graph <lambda>(%x: float32[2,3])")
    assert "= mul(%x, %c)" in text and "= tanh(" in text and "sum(" in text and "axes=(1,)" in text
    assert text.rstrip().endswith("}") and "return" in text
    assert "<Graph" in repr(g)


def test_spec_arguments_and_nested_structures_round_trip():
    def f(batch, scale):
        return {"y": batch["a"] * scale, "parts": [batch["b"].sum(), (batch["a"] - 1.0,)]}

    g = sp.trace(f, {"a": sp.spec((2, 3)), "b": sp.spec((4,), "float64")}, sp.spec(()))
    assert [n.name for n in g.inputs] == ["batch.a", "batch.b", "scale"]
    a, b, s = X, np.arange(4.0), np.float32(3.0)
    out = sp.ir.interpret(g, {"a": a, "b": b}, np.asarray(s))
    assert set(out) == {"y", "parts"} and isinstance(out["parts"], list) and isinstance(out["parts"][1], tuple)
    np.testing.assert_allclose(out["y"], a * 3)
    assert out["parts"][0] == 6.0


def test_closed_over_arrays_become_constants_and_named_tensors_parameters():
    w = sp.tensor(np.ones((3, 2), np.float32))
    w.name = "encoder.layer.0.weight"
    trainable = sp.tensor(np.ones(2, np.float32), requires_grad=True)
    plain = np.full(2, 2.0, np.float32)
    g = sp.trace(lambda x: x @ w + trainable + plain, X)
    assert [p.name for p in g.params] == ["encoder.layer.0.weight", "param"]
    assert any(c.data.shape == (2,) for c in g.consts)
    np.testing.assert_allclose(sp.ir.interpret(g, X), X @ np.ones((3, 2)) + 3)


def test_python_control_flow_is_unrolled_at_trace_time():
    def f(x, n):
        for _ in range(n):
            x = x * 2.0
        return x if n > 2 else -x

    assert len(sp.trace(f, X, 2).nodes) == 3 and len(sp.trace(f, X, 5).nodes) == 5
    np.testing.assert_allclose(sp.ir.interpret(sp.trace(f, X, 5), X, 5), X * 32)


def test_verify_names_the_wrong_node():
    g = sp.trace(lambda x: sp.exp(x) + 1.0, X)
    g.verify()
    bad = g.copy()
    bad.nodes[0].spec = Spec((3, 3), np.float32)
    with pytest.raises(IRError, match=r"node %0.*declared float32\[3,3\]"):
        bad.verify()
    bad = g.copy()
    bad.nodes.reverse()  # the add is now before the exp it reads
    with pytest.raises(IRError, match="used before it is defined"):
        bad.verify()
    bad = sp.trace(lambda x: x.sum(axis=1), X).copy()
    del bad.nodes[0].attrs["axes"]  # sum needs its axes
    with pytest.raises(IRError, match="wrong inputs or attributes"):
        bad.verify()
    bad = g.copy()
    bad.outputs = []
    with pytest.raises(IRError, match="no outputs"):
        bad.verify()
    bad = g.copy()
    bad.nodes[1].inputs = [bad.nodes[1].inputs[0]]  # add with one operand
    with pytest.raises(IRError, match="add"):
        bad.verify()


def test_verify_rejects_unknown_ops_and_a_hand_built_graph_works():
    g = Graph("hand")
    x = g.add_input(Spec((2,), np.float32), "x")
    one = g.add_const(np.ones(2, np.float32), "one")
    y = g.add_op(OPS["add"], [x, one], {})
    g.outputs = [y]
    g.verify()
    np.testing.assert_allclose(sp.ir.interpret(g, np.zeros(2, np.float32)), [np.ones(2)])
    from spago.ops.registry import Op

    y.op = Op("mystery", lambda *a: a[0], lambda *a: a[0])
    with pytest.raises(IRError, match="not in the registry"):
        g.verify()


def test_networkx_view():
    g = sp.trace(lambda x: sp.exp(x) * x, X)
    d = g.to_networkx()
    assert isinstance(d, nx.DiGraph) and nx.is_directed_acyclic_graph(d)
    assert d.number_of_nodes() == len(g.all_nodes()) and d.number_of_edges() == 3
    assert d.nodes["x"]["kind"] == "input" and d.nodes[g.nodes[-1].name]["output"]


def test_dot_styles_kinds_apart_and_clusters_scopes():
    w = sp.tensor(np.ones((3, 3), np.float32))
    w.name = "encoder.layer.0.w"

    def f(x):
        with sp.ir.scope("encoder"):
            for k in range(2):
                with sp.ir.scope(f"layer.{k}"):
                    x = sp.relu(x @ w)
        return x

    source = sp.trace(f, X).to_dot()
    assert "cluster_encoder" in source and "cluster_encoder.layer.1" in source
    for style in ("#c7e9c0", "#c6dbef", "#fdd0a2"):  # input, param, output colours
        assert style in source
    assert "float32[2,3]" in source and "relu" in source


def test_render_writes_files_atomically(tmp_path, renderer):
    g = sp.trace(lambda x: sp.exp(x), X)
    magic = {"svg": b"<?xml", "png": b"\x89PNG", "pdf": b"%PDF", "dot": b"digraph"}
    for fmt in ("svg", "png", "pdf", "dot"):
        path = g.render(str(tmp_path / f"graph.{fmt}"))
        assert open(path, "rb").read().lstrip().startswith(magic[fmt]), fmt
    assert not glob.glob(str(tmp_path / ".tmp-*"))
    assert "exp" in open(tmp_path / "graph.svg").read()
    with pytest.raises(sp.SpagoError):
        g.render(str(tmp_path / "graph.nosuchformat"))
    assert not glob.glob(str(tmp_path / ".tmp-*"))
    # WebAssembly runs in a child process: its runtime's gigabytes of reserved address space would push
    # JIT-compiled code out of 32-bit reach of its symbols (LLVM aborted on a relocation)
    assert "wasmtime" not in sys.modules
    with pytest.raises(sp.SpagoError, match="could not render"):
        sp.ir.dot.DotSource("digraph { a -> }").render(str(tmp_path / "broken.svg"))
    assert not os.path.exists(tmp_path / "broken.svg")


def test_eager_dot_source_renders_itself(tmp_path, renderer):
    w = sp.tensor(0.4, requires_grad=True)
    source = sp.to_dot(sp.sigmoid(w * 2.0))
    assert "sigmoid" in source  # still plain DOT text
    path = source.render(str(tmp_path / "eager.svg"))
    assert "sigmoid" in open(path).read()


def test_eager_results_are_drawn_from_their_tape():
    x, w, b = sp.tensor(-0.8), sp.tensor(0.4, requires_grad=True), sp.tensor(-0.2, requires_grad=True)
    y = sp.sigmoid(w * x + b)
    source = sp.to_dot(y)
    assert "sigmoid" in source and "mul" in source and "param" in source
    y.backward()
    with pytest.raises(sp.GradError, match="freed"):
        sp.to_dot(y)


def test_interpret_checks_its_arguments():
    g = sp.trace(lambda x: x * 2.0, X)
    with pytest.raises(sp.SpagoError, match=r"argument x has shape \(3,\), expected \(2, 3\)"):
        sp.ir.interpret(g, np.ones(3, np.float32))
    with pytest.raises(sp.SpagoError, match="dtype float64, expected float32"):
        sp.ir.interpret(g, np.ones((2, 3)))
    with pytest.raises(sp.SpagoError, match="structure"):
        sp.ir.interpret(g, X, X)


def test_traced_tensors_have_no_value_and_do_not_leak_between_traces():
    kept = []

    def f(x):
        kept.append(x)
        with pytest.raises(sp.SpagoError, match="symbolic"):
            x.numpy()
        return x * 2.0

    sp.trace(f, X)
    with pytest.raises(sp.SpagoError, match="another trace"):
        sp.trace(lambda x: x + kept[0], X)


def test_functions_must_return_tensors():
    with pytest.raises(sp.SpagoError, match="must return tensors"):
        sp.trace(lambda x: "nope", X)


# ----------------------------------------------------------------------------- readable drawings

def tiny_bert():
    from spago.nlp.transformers import BertModel
    from spago.nlp.transformers.config import BertConfig

    config = BertConfig(vocab_size=30, hidden_size=8, num_attention_heads=2, intermediate_size=16,
                        max_position_embeddings=16)  # 12 layers, as bert-base
    model = BertModel(config).eval()
    ids = np.ones((1, 6), np.int64)
    return sp.trace(lambda input_ids, attention_mask: model(input_ids=input_ids, attention_mask=attention_mask),
                    ids, ids)


def test_clusters_name_the_module_path_and_class():
    source = tiny_bert().to_dot()
    for label in ("encoder.layer.0 (BertLayer)", "encoder.layer.11.attention.self (BertSelfAttention)",
                  "embeddings.LayerNorm (LayerNorm)", "pooler.dense (Linear)"):
        assert f'label="{label}"' in source, label


def test_collapse_draws_deep_modules_as_single_boxes(tmp_path):
    graph = tiny_bert()
    full, collapsed = graph.to_dot(), graph.to_dot(collapse=2)
    assert collapsed.count("shape=box3d") == 12  # one box per layer
    assert 'label="encoder.layer.3 (BertLayer)\n65 ops"' in collapsed
    assert "encoder.layer.3.attention" not in collapsed and len(collapsed) < len(full) / 10
    assert collapsed.render(str(tmp_path / "bert.svg")).endswith("bert.svg")  # still a valid drawing


def test_fused_nodes_list_their_ops_and_constants_print_4_digits():
    W = np.ones((4, 4), np.float32)
    graph = sp.trace(lambda x: sp.gelu(x @ W + 1.0) * 0.123456789, sp.spec((2, 4)))
    assert "= 0.1235" in graph.to_dot() and "0.123456" not in graph.to_dot()
    optimized, _ = sp.passes.optimize(graph)
    assert "fused: matmul+add+" in optimized.to_dot() and "body=" not in optimized.to_dot()


def test_constants_are_drawn_beside_their_user():
    big = np.arange(16, dtype=np.float32).reshape(4, 4)

    def f(x):
        with sp.ir.scope("block"):
            return x @ big

    graph = sp.trace(f, sp.spec((2, 4)))
    const, user = graph.consts[0], graph.nodes[-1]
    source = graph.to_dot()
    ids = {n: f"n{k}" for k, n in enumerate(graph.all_nodes())}
    cluster = source[source.index("subgraph cluster_block"):]
    assert f"\t\t{ids[const]} [label=\"const" in cluster  # in its user's cluster, not at the top
    assert f"rank=same\n\t\t\t{ids[const]}\n\t\t\t{ids[user]}" in source


def test_a_training_step_groups_backward_and_optimiser():
    from spago import losses, nn, optim

    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = np.ones((2, 3), np.float32), np.array([0, 1])
    step = optim.compile_step(lambda m, a, b: losses.cross_entropy(m(a), b), model, optim.Adam(model), x, y)
    source = step.compiled.source_graph.to_dot()
    for label in ('label="0 (Linear)"', 'label=backward', 'label="optimizer (Adam)"'):
        assert label in source, label

def test_nodes_are_created_placed_and_erased_through_the_graph():
    """The mutation API: create a node, place it before / after an anchor, replace uses, erase the old."""
    import numpy as np
    import pytest

    from spago.ir.graph import Graph, IRError
    from spago.ops.registry import OPS, Spec

    g = Graph("g")
    x = g.add_input(Spec((3,), np.float32), "x")
    e = g.add_op(OPS["exp"], [x], {})
    g.outputs = [e]
    t = g.insert_before(e, g.create_node("tanh", [x]))
    n = g.insert_after(t, g.create_node("neg", [t], name="minus"))
    assert g.nodes == [t, n, e] and n.name == "minus" and n.spec == x.spec
    with pytest.raises(IRError, match="still read"):
        g.erase(t)
    assert g.replace_all_uses_with(e, n) == 1 and g.outputs == [n]
    g.erase(e)
    assert g.nodes == [t, n]
    g.verify()
