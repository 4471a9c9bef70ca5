"""spago.save_checkpoint / load_checkpoint: model + optimiser + generator + extra values in one atomic
safetensors file; a resumed run is bit-identical to one that never stopped, eagerly and with compile_step."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors import safe_open

import spago as sp
from spago import losses, nn, optim
from spago.errors import SpagoError

RNG = np.random.default_rng(3)
BATCHES = [(RNG.standard_normal((6, 4)).astype("float32"), RNG.integers(0, 3, 6)) for _ in range(6)]


class Net(nn.Module):
    def __init__(self, hidden=8, p=0.0, seed=0):
        super().__init__()
        g = sp.Generator(seed)
        self.fc1, self.fc2 = nn.Linear(4, hidden, generator=g), nn.Linear(hidden, 3, generator=g)
        self.drop = nn.Dropout(p, generator=sp.Generator(11))  # its own stream: tracing draws the same seed
        self.register_buffer("seen", np.zeros(1))

    def forward(self, x):
        return self.fc2(self.drop(sp.tanh(self.fc1(x))))


def loss_fn(model, x, y):
    return losses.cross_entropy(model(x), y)


def eager_steps(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model, sp.tensor(x), y).backward()
        opt.step()
        model.seen = model.seen + 1.0


def assert_same(a, b, opt_a, opt_b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(x, y), name
    for pa, pb in zip(opt_a.params, opt_b.params):
        for k in opt_a.state_names:
            assert np.array_equal(pa.state[k], pb.state[k]), (pa.name, k)
    assert opt_a.steps == opt_b.steps


def test_eager_resume_is_bit_identical(tmp_path):
    path = tmp_path / "run.safetensors"
    straight = Net(p=0.3)
    opt = optim.Adam(straight, lr=0.01)
    gen = sp.Generator(1)
    straight.drop.generator = gen
    eager_steps(straight, opt, BATCHES)

    first = Net(p=0.3)
    first.drop.generator = g1 = sp.Generator(1)
    opt1 = optim.Adam(first, lr=0.01)
    eager_steps(first, opt1, BATCHES[:3])
    sp.save_checkpoint(path, model=first, optimizer=opt1, generator=g1, epoch=3, history=[1.5, 1.25],
                       shape=(6, 4), best=np.arange(3.0))

    resumed = Net(p=0.3, seed=42)
    resumed.drop.generator = g2 = sp.Generator(99)
    opt2 = optim.Adam(resumed, lr=0.5, betas=(0.5, 0.5))
    extra = sp.load_checkpoint(path, model=resumed, optimizer=opt2, generator=g2)
    assert extra["epoch"] == 3 and extra["history"] == [1.5, 1.25] and extra["shape"] == (6, 4)
    assert isinstance(extra["best"], np.ndarray) and np.array_equal(extra["best"], np.arange(3.0))
    assert resumed.seen.numpy().tolist() == [3.0] and opt2.lr == 0.01 and opt2.beta1 == 0.9
    eager_steps(resumed, opt2, BATCHES[3:])
    assert_same(straight, resumed, opt, opt2)


def test_compiled_resume_is_bit_identical(tmp_path):
    path = tmp_path / "run.safetensors"

    def fresh(seed):
        model = Net(p=0.25, seed=seed)
        return model, optim.AdamW(model, lr=0.02)

    straight, opt = fresh(0)
    step = optim.compile_step(loss_fn, straight, opt, *BATCHES[0], generator=sp.Generator(4))
    for batch in BATCHES:
        step(*batch)

    first, opt1 = fresh(0)
    g1 = sp.Generator(4)
    step1 = optim.compile_step(loss_fn, first, opt1, *BATCHES[0], generator=g1)
    for batch in BATCHES[:3]:
        step1(*batch)
    sp.save_checkpoint(path, model=first, optimizer=opt1, generator=g1)

    resumed, opt2 = fresh(7)
    g2 = sp.Generator(0)
    sp.load_checkpoint(path, model=resumed, optimizer=opt2, generator=g2)
    step2 = optim.compile_step(loss_fn, resumed, opt2, *BATCHES[0], generator=g2)
    for batch in BATCHES[3:]:
        step2(*batch)
    assert_same(straight, resumed, opt, opt2)


def test_file_is_plain_safetensors_with_json_metadata(tmp_path):
    path = tmp_path / "ck.safetensors"
    model = Net()
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    eager_steps(model, opt, BATCHES[:1])
    sp.save_checkpoint(path, model=model, optimizer=opt, note="hello", weights=sp.tensor([1.0, 2.0]))
    with safe_open(str(path), framework="np") as f:
        keys = set(f.keys())
        header = json.loads(f.metadata()["spago_checkpoint"])
    assert {"model.fc1.weight", "model.seen", "optimizer.0.velocity", "extra.weights"} <= keys
    assert header["optimizer"]["class"] == "SGD" and header["optimizer"]["steps"] == 1
    assert header["model"]["class"].endswith("Net") and header["extra"] == {"note": "hello"}
    assert sp.load_checkpoint(path)["weights"].tolist() == [1.0, 2.0]
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    sp.save_checkpoint(path, epoch=1)
    with pytest.raises(SpagoError, match="'fn' .*cannot be stored"):
        sp.save_checkpoint(path, epoch=2, fn=print)
    import spago.checkpoint as ck

    def broken(tensors, tmp, metadata):
        open(tmp, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "_safetensors_save_file", broken)
    with pytest.raises(OSError):
        sp.save_checkpoint(path, epoch=3)
    assert sp.load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_mismatches_are_clear_errors(tmp_path):
    path = tmp_path / "ck.safetensors"
    model = Net()
    opt = optim.Adam(model)
    eager_steps(model, opt, BATCHES[:1])
    sp.save_checkpoint(path, model=model, optimizer=opt)
    with pytest.raises(SpagoError, match="checkpoint's model is a .*Net, not a .*Linear"):
        sp.load_checkpoint(path, model=nn.Linear(4, 3))
    wide = Net(hidden=5)
    with pytest.raises(SpagoError, match=r"does not match the checkpoint: wrong shape for fc1.weight"):
        sp.load_checkpoint(path, model=wide, optimizer=optim.Adam(wide))
    untouched = Net(seed=5)
    before = untouched.state_dict()
    with pytest.raises(SpagoError, match="the state is for 4 parameters, this optimiser has 2"):
        sp.load_checkpoint(path, model=untouched, optimizer=optim.Adam(untouched.fc1))
    assert all(np.array_equal(before[k], v) for k, v in untouched.state_dict().items())  # nothing loaded
    other = Net()
    with pytest.raises(SpagoError, match="optimiser is Adam, not SGD"):
        sp.load_checkpoint(path, model=other, optimizer=optim.SGD(other, lr=0.1))
    with pytest.raises(SpagoError, match="holds no generator"):
        sp.load_checkpoint(path, generator=sp.Generator(0))
    sp.save(model, tmp_path / "weights.safetensors")
    with pytest.raises(SpagoError, match="not a spago checkpoint"):
        sp.load_checkpoint(tmp_path / "weights.safetensors")
    with pytest.raises(SpagoError, match="no such file"):
        sp.load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(SpagoError, match="encoder= is a Linear; a checkpoint holds one model"):
        sp.save_checkpoint(path, model=model, encoder=nn.Linear(2, 2))
    with pytest.raises(SpagoError, match="model must be a spago Module"):
        sp.save_checkpoint(path, model=object())
