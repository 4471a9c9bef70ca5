"""Graph editing in the torch.fx manner: ``Node.users`` stays current through every edit, and ``verify``
catches an edit made behind the graph's back (in the graph, a loop body, or a fused body)."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.ir.graph import Graph, IRError, Node
from spago.ir.rewrite import Rewriter
from spago.ir.tracer import trace
from spago.ops.registry import OPS, Spec

F3 = Spec((3,), np.float32)


def readers(g: Graph) -> dict:
    """The users every node should have: the op nodes that read it, recomputed from inputs."""
    out: dict = {n: set() for n in g.all_nodes()}
    for n in g.nodes:
        for i in n.inputs:
            out[i].add(n)
    return out


def assert_users_current(g: Graph) -> None:
    want = readers(g)
    assert {n: set(n.users) for n in g.all_nodes()} == want
    g.verify()


def small() -> tuple:
    g = Graph("g")
    x = g.add_input(F3, "x")
    a = g.add_op(OPS["exp"], [x], {})
    b = g.add_op(OPS["mul"], [a, a], {})
    g.outputs = [b]
    return g, x, a, b


def test_users_are_kept_by_building_inserting_replacing_and_erasing():
    g, x, a, b = small()
    assert list(x.users) == [a] and list(a.users) == [b] and a.uses() == 2 and not b.users
    assert_users_current(g)

    t = g.create_node("tanh", [x])
    assert t not in x.users  # made, not placed: nothing lists it yet
    g.insert_before(a, t)
    assert list(x.users) == [a, t]
    assert_users_current(g)

    n = g.insert_after(t, g.create_node("neg", [t]))
    assert list(t.users) == [n]
    assert g.replace_all_uses_with(a, n) == 2  # both of b's slots
    assert b.inputs == (n, n) and not a.users and list(n.users) == [b]
    assert_users_current(g)

    g.erase(a)
    assert a not in x.users and a.graph is None and a not in g.nodes
    assert_users_current(g)


def test_setting_inputs_whole_moves_the_user_and_inputs_cannot_be_edited_in_place():
    g, x, a, b = small()
    c = g.add_const(np.ones(3, np.float32), "one")
    b.inputs = [a, c]
    assert list(c.users) == [b] and list(a.users) == [b] and a.uses() == 1
    b.replace_input_with(a, x)
    assert not a.users and b in x.users
    assert_users_current(g)
    with pytest.raises(TypeError):
        b.inputs[0] = a  # a tuple: an edit in place could not tell the old input it lost a user


def test_erase_of_a_read_node_is_refused_naming_its_readers():
    g, x, a, b = small()
    with pytest.raises(IRError, match=r"cannot erase %.*still read by %.*replace its uses first"):
        g.erase(a)
    with pytest.raises(IRError, match="a graph output"):
        g.erase(b)
    with pytest.raises(IRError, match="not in the graph"):
        g.erase(g.create_node("exp", [x]))
    assert_users_current(g)  # nothing changed


def test_a_node_is_placed_once():
    g, x, a, b = small()
    with pytest.raises(IRError, match="already in graph"):
        g.insert_before(b, a)
    with pytest.raises(IRError, match="only op nodes"):
        g.insert_before(b, Node("const", F3, "c"))


def test_remove_unused_and_insert_all_keep_users():
    g, x, a, b = small()
    dead = g.add_op(OPS["sin"], [a], {})
    made = [g.create_node("tanh", [x])]
    made.append(g.create_node("add", [made[0], a]))
    g.insert_all(g.nodes.index(b), made)
    assert set(a.users) == {b, dead, made[1]}
    assert g.remove_unused() == 3  # the sine and the two made nodes: no output reads them
    assert list(a.users) == [b] and list(x.users) == [a]
    assert_users_current(g)


def test_early_insert_goes_right_after_the_latest_input():
    g, x, a, b = small()
    late = g.add_op(OPS["sin"], [b], {})
    g.outputs = [late]
    t = g.insert_before(late, g.create_node("tanh", [a]), early=True)
    assert g.nodes == [a, t, b, late]
    c = g.insert_before(late, g.create_node("cos", [x]), early=True)
    assert g.nodes[0] is c
    assert_users_current(g)


def test_reorder_takes_a_permutation_only():
    g, x, a, b = small()
    c = g.add_op(OPS["cos"], [x], {})
    g.reorder([c, a, b])
    assert g.nodes == [c, a, b]
    with pytest.raises(IRError, match="each once"):
        g.reorder([a, b])
    assert_users_current(g)


def test_rewriter_builds_in_place_and_shares_identical_nodes():
    g, x, a, b = small()
    rw = Rewriter(g).before(b)
    s1 = rw.emit("add", [a, x], share=True)
    s2 = rw.emit("add", [a, x], share=True)
    z = rw.zeros((3,), np.float32)
    assert s1 is s2 and g.nodes == [a, s1, z, b]
    assert rw.only_read_by(a, b) is False and rw.only_read_by(a, {b, s1})
    total = rw.emit("mul", [s1, z])
    rw.replace(b, total)
    assert g.outputs == [total] and rw.is_output(total) and not rw.is_output(b)
    assert_users_current(g)


def test_copy_gives_fresh_nodes_with_their_own_users():
    g, x, a, b = small()
    h = g.copy()
    assert_users_current(h)
    assert all(u.graph is h for n in h.all_nodes() for u in n.users)
    assert_users_current(g)


@pytest.mark.parametrize("break_it", ["stale user", "missing user", "foreign node"])
def test_verify_catches_users_out_of_step(break_it):
    g, x, a, b = small()
    if break_it == "stale user":
        x.users[b] = None  # b does not read x
        match = "lists %.* as a user, which does not read it"
    elif break_it == "missing user":
        del a.users[b]
        match = "does not list its reader"
    else:
        g.nodes.insert(1, Node("op", F3, "sneaked", OPS["exp"], [a]))  # not placed through the graph
        match = "does not belong to it"
    with pytest.raises(IRError, match=match):
        g.verify()


def _fused_graph() -> Graph:
    f = trace(lambda x: sp.ops.tanh(sp.ops.exp(x) * 2.0 + 1.0), np.zeros((4, 8), np.float32))
    from spago.passes.fuse_elementwise import fuse_elementwise

    return fuse_elementwise(f)


def test_verify_looks_inside_fused_bodies():
    g = _fused_graph()
    fused = [n for n in g.nodes if n.op.name == "fused"]
    assert fused
    g.verify()
    body = fused[0].attrs["body"]
    first = body.nodes[0]
    del first.inputs[0].users[first]  # a body edited behind its back
    with pytest.raises(IRError, match=f"graph {body.name}: node"):
        g.verify()


def test_verify_looks_inside_loop_bodies():
    def f(xs):
        return sp.scan(lambda c, x: (c + sp.ops.exp(x), c), xs[0], xs)

    g = trace(f, np.zeros((5, 3), np.float32))
    loop = next(n for n in g.nodes if n.op.name == "scan")
    g.verify()
    body = loop.attrs["body"]
    body.nodes[0].inputs[0].users[body.nodes[-1]] = None  # a user that is not a reader
    with pytest.raises(IRError, match=f"graph {body.name}: node"):
        g.verify()
