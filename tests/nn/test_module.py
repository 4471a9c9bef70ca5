"""Module, Param, Sequential, ModuleList: registration, paths, state, modes, dtype casts, tracing, compiling."""
import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import ShapeError, SpagoError


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.norm(spago.tanh(self.linear(x))))


class Net(nn.Module):
    def __init__(self, dim=4, classes=3):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim), Block(dim)])
        self.head = nn.Sequential(nn.Linear(dim, classes), nn.Identity())
        self.scale = nn.Param(np.full(classes, 2.0), "float32")

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x) * self.scale


PATHS = ["scale",
         "blocks.0.linear.weight", "blocks.0.linear.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
         "blocks.1.linear.weight", "blocks.1.linear.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
         "head.0.weight", "head.0.bias"]


def make(seed=0):
    spago.manual_seed(seed)
    return Net()


def x_example(seed=1, shape=(2, 4)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_named_parameters_give_dotted_paths_and_names():
    net = make()
    names = [name for name, _ in net.named_parameters()]
    assert names == PATHS
    assert all(p.name == name for name, p in net.named_parameters())
    assert net.num_parameters() == 3 + 2 * (16 + 4 + 4 + 4) + 12 + 3
    assert [path for path, _ in net.named_modules()][:4] == ["", "blocks", "blocks.0", "blocks.0.linear"]
    assert repr(net.blocks[0].linear.weight) == "Param(blocks.0.linear.weight: float32[4,4])" or \
        "blocks.0.linear.weight" in repr(net.blocks[0].linear.weight)


def test_a_shared_parameter_is_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, a)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_reassigning_an_attribute_replaces_the_registration():
    block = Block(3)
    block.linear = nn.Linear(3, 3, bias=False)
    assert "linear.bias" not in dict(block.named_parameters())
    del block.norm
    assert [n for n, _ in block.named_parameters()] == ["linear.weight"]


def test_state_dict_round_trip_copies_values():
    a, b = make(0), make(1)
    x = x_example()
    a.eval(), b.eval()
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    state = a.state_dict()
    assert list(state) == PATHS
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    state["scale"][:] = 100.0  # a copy: changing it leaves the model alone
    assert np.all(a.scale.numpy() == 2.0)


def test_load_state_dict_names_missing_unexpected_and_misshaped_entries():
    net = make()
    state = net.state_dict()
    del state["head.0.bias"]
    state["head.1.weight"] = np.zeros(3)
    state["blocks.0.norm.weight"] = np.zeros(5)
    with pytest.raises(SpagoError) as err:
        net.load_state_dict(state)
    message = str(err.value)
    assert "missing 1 tensor(s): head.0.bias" in message
    assert "unexpected 1 tensor(s): head.1.weight" in message
    assert "blocks.0.norm.weight: expected (4,), got (5,)" in message


def test_load_state_dict_non_strict_skips_missing_and_unexpected():
    net = make()
    net.load_state_dict({"scale": np.ones(3), "nonsense": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(net.scale.numpy(), np.ones(3))
    with pytest.raises(SpagoError, match="wrong shape for scale"):
        net.load_state_dict({"scale": np.ones(4)}, strict=False)


def test_train_and_eval_reach_every_submodule():
    net = make()
    assert all(m.training for _, m in net.named_modules())
    assert net.eval() is net
    assert not any(m.training for _, m in net.named_modules())
    net.blocks.train()
    assert net.blocks[1].drop.training and not net.training
    x = x_example()
    net.eval()
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())  # dropout off: deterministic


def test_zero_grad_clears_every_gradient():
    net = make().eval()
    net(x_example()).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_flatten_parameters_shares_memory_with_the_parameters():
    net = make().eval()
    x = x_example()
    before = net(x).numpy()
    flat = net.flatten_parameters()
    assert flat.shape == (net.num_parameters(),)
    np.testing.assert_array_equal(net(x).numpy(), before)
    np.testing.assert_array_equal(flat[:3], [2.0, 2.0, 2.0])  # "scale" comes first
    flat[:3] = 1.0
    np.testing.assert_array_equal(net.scale.numpy(), np.ones(3))
    np.testing.assert_allclose(net(x).numpy(), before / 2, rtol=1e-6)
    net.head[0].bias.assign(np.full(3, 7.0))
    np.testing.assert_array_equal(flat[-3:], [7.0, 7.0, 7.0])
    net(x).sum().backward()  # gradients still flow to the views
    assert net.head[0].weight.grad.shape == (3, 4)


def test_flatten_parameters_rejects_mixed_dtypes():
    seq = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype="float64"))
    with pytest.raises(SpagoError, match="one dtype"):
        seq.flatten_parameters()


def test_sequential_and_module_list():
    spago.manual_seed(0)
    first, second = nn.Linear(4, 5), nn.Linear(5, 2)
    seq = nn.Sequential(first, second)
    assert len(seq) == 2 and seq[1] is second and list(seq) == [first, second]
    x = x_example()
    np.testing.assert_allclose(seq(x).numpy(), second(first(x)).numpy())
    ml = nn.ModuleList()
    assert ml.append(first) is ml
    ml.append(second)
    assert len(ml) == 2 and ml[0] is first and list(ml) == [first, second]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert "Linear(in_features=4" in repr(seq)


def test_to_double_and_float_cast_every_parameter():
    net = make().eval()
    x = x_example()
    want = net(x).numpy()
    assert net.double() is net
    assert all(p.dtype == np.float64 for p in net.parameters())
    got = net(x.astype(np.float64))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to("float64")
    assert net.scale.dtype == np.float64


def test_param_assign_and_module_misuse_errors():
    p = nn.Param(np.zeros((2, 3), np.float32))
    assert p.requires_grad and p.dtype == np.float32
    assert nn.Param([1, 2]).dtype == np.float32  # integer data becomes the default float
    with pytest.raises(ShapeError, match=r"cannot assign shape \(3, 2\)"):
        p.assign(np.zeros((3, 2)))

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Param(np.zeros(2))

    with pytest.raises(SpagoError, match="super"):
        Forgot()
    with pytest.raises(SpagoError, match="does not define forward"):
        nn.Module()(np.zeros(2))


def test_tracing_names_graph_params_by_their_paths():
    net = make().eval()
    graph = spago.trace(net, x_example())
    assert sorted(p.name for p in graph.params) == sorted(PATHS)
    scopes = {p.name: p.scope for p in graph.params}
    assert scopes["blocks.1.norm.weight"] == "blocks.1.norm"


def test_compiled_inference_matches_eager():
    net = make().eval()
    x = x_example(shape=(3, 4))
    compiled = spago.compile(net, x)
    for seed in (2, 3):
        other = x_example(seed, (3, 4))
        np.testing.assert_allclose(compiled(other), net(other).numpy(), rtol=1e-5, atol=1e-6)


def test_param_holds_value_gradient_and_optimizer_state():
    from spago import optim

    p = nn.Param(np.array([1.0, -2.0]), "float64")
    assert p.grad is None and p.state == {}
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, -4.0])
    optim.Adam([p], lr=0.1).step()
    assert sorted(p.state) == ["m", "v"]  # the optimiser keeps its per-parameter state on the Param
    np.testing.assert_allclose(p.state["m"], 0.1 * np.array([2.0, -4.0]))


def test_inference_compile_freezes_parameters_as_constants():
    """``spago.compile(module, x)`` (inference): the traced weights are named graph parameters, which the
    optimiser freezes into named constants (so weight-only work such as transposes is folded at compile time);
    after changing the weights, compiling again picks up the new values."""
    net = make().eval()
    x = x_example(shape=(3, 4))
    compiled = spago.compile(net, x)
    assert sorted(p.name for p in compiled.source_graph.params) == sorted(PATHS)
    assert compiled.graph.params == []
    consts = {c.name for c in compiled.graph.consts}
    assert {"scale", "head.0.bias"} <= consts
    np.testing.assert_allclose(compiled(x), net(x).numpy(), rtol=1e-5, atol=1e-6)
    net.blocks[0].linear.weight.assign(net.blocks[0].linear.weight.numpy() * 3)
    np.testing.assert_allclose(spago.compile(net, x)(x), net(x).numpy(), rtol=1e-5, atol=1e-6)


def test_training_compile_reads_and_updates_parameters_in_place():
    """``inference=False`` (what a compiled training step uses): the Params stay graph parameters, read from
    the live arrays on every call; `compile_step` writes the update into those same arrays."""
    from spago import losses, optim

    net = make().eval()
    x = x_example(shape=(3, 4))
    compiled = spago.compile(net, x, inference=False)
    assert sorted(p.name for p in compiled.graph.params) == sorted(PATHS)
    net.scale.assign(net.scale.numpy() * 3)
    np.testing.assert_allclose(compiled(x), net(x).numpy(), rtol=1e-5, atol=1e-6)

    arrays = {name: p.numpy() for name, p in net.named_parameters()}
    before = {name: a.copy() for name, a in arrays.items()}
    step = optim.compile_step(lambda m, x, y: losses.mse(m(x), y), net, optim.SGD(net, lr=0.1), x,
                              np.zeros((3, 3), np.float32))
    assert sorted(p.name for p in step.compiled.graph.params) == sorted(PATHS)
    step(x, np.zeros((3, 3), np.float32))
    for name, p in net.named_parameters():
        assert p.numpy() is arrays[name], name  # the same array, written in place
        assert not np.array_equal(p.numpy(), before[name]), name
