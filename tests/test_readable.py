"""Readable objects: __all__ everywhere (without shadowing builtins), py.typed, typed op functions, documented
forwards, reprs of the runtime objects, grad_fn on non-leaf tensors, dtype errors naming the layer."""
from __future__ import annotations

import builtins
import importlib
import inspect
import os
import pkgutil

import numpy as np
import pytest

import spago as sp
from spago import nn, ops, optim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERNAL = {"spago.backend.kernels"}  # the kernel-family registry of the backend, not a user-facing package


def packages():
    yield sp
    for info in pkgutil.walk_packages(sp.__path__, "spago."):
        if info.ispkg and info.name not in INTERNAL:
            module = importlib.import_module(info.name)
            if hasattr(module, "__file__") and module.__file__ and module.__file__.endswith("__init__.py"):
                yield module


def test_every_public_package_has_all_and_its_names_exist():
    names = []
    for package in packages():
        assert isinstance(getattr(package, "__all__", None), (list, tuple)), package.__name__
        for name in package.__all__:
            assert hasattr(package, name) or importlib.util.find_spec(f"{package.__name__}.{name}"), \
                (package.__name__, name)
        names.append(package.__name__)
    assert {"spago", "spago.ops", "spago.nn", "spago.optim", "spago.ir", "spago.passes", "spago.nlp",
            "spago.nlp.transformers", "spago.nlp.pipelines", "spago.nlp.tokenizers"} <= set(names)


def test_star_import_shadows_no_builtin():
    for package in (sp, ops, nn, optim):
        namespace: dict = {}
        exec(f"from {package.__name__} import *", namespace)
        shadowed = sorted(set(namespace) & set(dir(builtins)) - {"__builtins__"})
        assert shadowed == [], (package.__name__, shadowed)
    # the names left out stay reachable through the package
    assert sp.sum is ops.sum and sp.max is ops.max and callable(sp.compile) and sp.abs is ops.abs
    star: dict = {}
    exec("from spago import *", star)
    assert {"tensor", "nn", "optim", "save_checkpoint", "load_checkpoint", "cat", "from_numpy", "jit"} <= set(star)


def test_py_typed_is_shipped():
    assert os.path.isfile(os.path.join(os.path.dirname(sp.__file__), "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        config = f.read()
    assert '[tool.setuptools.package-data]\nspago = ["py.typed"]' in config


def test_public_op_functions_are_typed():
    untyped = []
    for name in sorted({*ops.__all__, "sum", "max", "min", "abs", "pow"}):
        fn = getattr(ops, name)
        if not inspect.isfunction(fn):
            continue
        signature = inspect.signature(inspect.unwrap(fn))
        if signature.return_annotation is inspect.Signature.empty or any(
                p.annotation is inspect.Parameter.empty for p in signature.parameters.values()):
            untyped.append(name)
    assert untyped == []


def layer_classes():
    import spago.nlp.transformers.bert
    import spago.nlp.transformers.electra
    import spago.nlp.transformers.pooling

    seen = set()
    stack = [nn.Module]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub.__module__.startswith("spago."):
                seen.add(sub)
                stack.append(sub)
    return sorted(seen, key=lambda c: (c.__module__, c.__qualname__))


def test_every_layer_forward_is_documented():
    classes = layer_classes()
    assert len(classes) > 40
    undocumented = [c.__qualname__ for c in classes if "forward" in c.__dict__ and not (c.forward.__doc__ or "").strip()]
    assert undocumented == []
    takes_mask = [c for c in classes if "forward" in c.__dict__ and "mask" in inspect.signature(c.forward).parameters]
    assert len(takes_mask) >= 8
    for c in takes_mask:
        assert "mask" in c.forward.__doc__ and ("(B, " in c.forward.__doc__ or "batch" in c.forward.__doc__), c
    assert "grad" in sp.Tensor.backward.__doc__ and "layout" in nn.Module.forward.__doc__


def test_reprs():
    x = sp.tensor(np.ones(3, np.float32), requires_grad=True)
    y = (x * 2.0).sum()
    assert "grad_fn=<sum>" in repr(y) and y.grad_fn == "<sum>" and x.grad_fn is None
    assert "requires_grad=True" in repr(x)
    assert repr(nn.Param(np.zeros((2, 3), np.float32))) == "Param(float32[2,3])"
    assert repr(nn.Linear(2, 3).weight) == "Param(weight: float32[3,2])"
    assert repr(sp.Generator(3)) == "Generator(seed=3)"
    restored = sp.Generator()
    restored.load_state_dict(sp.Generator(3).state_dict())
    assert repr(restored) == "Generator(seed='restored')"
    fn = sp.jit(lambda a: a * 2.0)
    fn(np.ones(2, np.float32))
    assert repr(fn) == "<JitFunction test_reprs.<locals>.<lambda>: 1 of at most 32 signatures compiled>"
    model = nn.Linear(2, 1)
    opt = optim.SGD(model, lr=0.1)

    def loss_fn(m, a, b):
        return ((m(a) - b) ** 2.0).mean()

    step = optim.compile_step(loss_fn, model, opt, np.ones((4, 2), np.float32), np.ones((4, 1), np.float32),
                              clip_norm=1.0)
    assert repr(step) == ("<CompiledStep test_reprs.<locals>.loss_fn of Linear with SGD(lr=0.1, 2 parameters, "
                          "0 steps), clip_norm=1: 1 specialisation(s) compiled>")


def test_dtype_errors_name_the_layer():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(sp.DTypeError, match=r"^0 \(Linear\): matmul: operands have dtypes float64 and float32"):
        model(np.zeros((1, 2)))
    lstm = nn.LSTM(2, 3)
    with pytest.raises(sp.DTypeError, match=r"^stack.layers.0 \(Recurrent\): .*float64"):
        lstm(sp.tensor(np.zeros((1, 4, 2))))
    with pytest.raises(sp.ShapeError, match="0: expected input with last axis 2"):
        model(np.zeros((1, 5), np.float32))
