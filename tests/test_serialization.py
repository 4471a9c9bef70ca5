"""spago.save / spago.load: safetensors + JSON config, atomic writes, bit-exact round trips, clear errors."""
import dataclasses
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import spago
from spago import nn, serialization
from spago.errors import DTypeError, SpagoError


class TwoLayer(nn.Module):
    def __init__(self, sizes: tuple = (3, 4, 2), act: str = "tanh", dtype="float32"):
        super().__init__()
        self.first = nn.Linear(sizes[0], sizes[1], dtype=dtype)
        self.second = nn.Linear(sizes[1], sizes[2], bias=False, dtype=dtype)
        self.norm = nn.LayerNorm(sizes[2], dtype=dtype)
        self.act = act

    def forward(self, x):
        return self.norm(self.second(getattr(spago.ops, self.act)(self.first(x))))


class WithFunction(nn.Module):
    def __init__(self, fn=np.tanh):
        super().__init__()
        self.fn = fn
        self.w = nn.Param(np.ones(2))


@dataclasses.dataclass
class Settings:
    width: int = 2
    name: str = "s"
    extra: dict = dataclasses.field(default_factory=dict)


class WithSettings(nn.Module):
    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings
        self.w = nn.Param(np.zeros((settings.width, 2)))


class Child(TwoLayer):
    def __init__(self, width: int = 5):
        super().__init__(sizes=(2, width, 3))
        self.width = width


def _randomise(module, seed=0):
    rng = np.random.default_rng(seed)
    for _, p in module.named_parameters():
        p.assign(rng.standard_normal(p.shape).astype(p.dtype))
    return module


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact_by_class_and_by_instance(tmp_path, dtype):
    model = _randomise(TwoLayer((3, 5, 2), act="sigmoid", dtype=dtype))
    path = tmp_path / "model.safetensors"
    spago.save(model, path)

    rebuilt = spago.load(TwoLayer, path)
    assert type(rebuilt) is TwoLayer and rebuilt.act == "sigmoid"
    into = spago.load(TwoLayer((3, 5, 2)), path)
    for loaded in (rebuilt, into):
        saved, got = model.state_dict(), loaded.state_dict()
        assert list(saved) == list(got)
        for k in saved:
            _same_bits(saved[k], got[k])
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(dtype)
    np.testing.assert_array_equal(model(spago.tensor(x)).numpy(), rebuilt(spago.tensor(x)).numpy())


def test_file_layout_is_safetensors_with_a_json_config(tmp_path):
    model = TwoLayer((3, 4, 2))
    path = tmp_path / "m.safetensors"
    spago.save(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        assert sorted(f.keys()) == sorted(k for k, _ in model.named_parameters())
        header = json.loads(f.metadata()["spago"])
    assert header == serialization.saved_config(path)
    assert header["class"].endswith("test_serialization.TwoLayer")
    assert header["config"] == {"sizes": {"__tuple__": [3, 4, 2]}, "act": "tanh", "dtype": "float32"}
    assert header["spago_version"] == spago.__version__ and header["dtype"] == "float32"


def test_cast_module_records_its_saved_dtype_and_reloads_it(tmp_path):
    model = _randomise(TwoLayer()).double()
    spago.save(model, tmp_path / "m.safetensors")
    assert serialization.saved_config(tmp_path / "m.safetensors")["dtype"] == "float64"
    loaded = spago.load(TwoLayer, tmp_path / "m.safetensors")
    assert all(p.dtype == np.float64 for p in loaded.parameters())
    _same_bits(model.first.weight.numpy(), loaded.first.weight.numpy())


def test_constructor_config_is_recorded_once_by_the_outermost_init():
    assert Child(7)._config == {"width": 7}
    assert nn.Linear(2, 3, bias=False)._config["bias"] is False
    rng_built = nn.Linear(2, 3, generator=spago.ops.random.Generator(0))
    assert rng_built._config["generator"] is None
    assert WithFunction()._config == {"fn": {"__unsupported__": "ufunc"}}


def test_nested_modules_as_arguments_rebuild(tmp_path):
    model = _randomise(nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1, dtype="float64")))
    spago.save(model, tmp_path / "seq.safetensors")
    loaded = spago.load(nn.Sequential, tmp_path / "seq.safetensors")
    assert [type(m).__name__ for m in loaded] == ["Linear", "LayerNorm", "Linear"]
    assert loaded[2].weight.dtype == np.float64
    for k, v in model.state_dict().items():
        _same_bits(v, loaded.state_dict()[k])


def test_subclass_config_round_trip(tmp_path):
    model = _randomise(Child(6))
    spago.save(model, tmp_path / "c.safetensors")
    loaded = spago.load(Child, tmp_path / "c.safetensors")
    assert loaded.width == 6 and loaded.first.out_features == 6


def test_unsupported_argument_fails_load_by_class_but_not_by_instance(tmp_path):
    model = WithFunction()
    path = tmp_path / "f.safetensors"
    spago.save(model, path)
    with pytest.raises(SpagoError, match=r"WithFunction.*argument fn was a ufunc"):
        spago.load(WithFunction, path)
    assert spago.load(WithFunction(np.exp), path).fn is np.exp


def test_wrong_class_names_both_classes(tmp_path):
    spago.save(TwoLayer(), tmp_path / "m.safetensors")
    with pytest.raises(SpagoError, match=r"holds a .*TwoLayer, not a spago\.nn\.linear\.Linear"):
        spago.load(nn.Linear, tmp_path / "m.safetensors")


def test_missing_extra_and_misshaped_tensors_are_named(tmp_path):
    model = TwoLayer((3, 4, 2))
    state = model.state_dict()
    path = tmp_path / "bad.safetensors"

    missing = {k: v for k, v in state.items() if k != "norm.bias"}
    save_file(missing, str(path))
    with pytest.raises(SpagoError, match=r"bad\.safetensors.*missing 1 tensor\(s\): norm\.bias"):
        spago.load(TwoLayer((3, 4, 2)), path)

    save_file({**state, "extra.weight": np.zeros(2, np.float32)}, str(path))
    with pytest.raises(SpagoError, match=r"unexpected 1 tensor\(s\): extra\.weight"):
        spago.load(TwoLayer((3, 4, 2)), path)

    save_file({**state, "first.weight": np.zeros((3, 4), np.float32)}, str(path))
    with pytest.raises(SpagoError, match=r"first\.weight: expected \(4, 3\), got \(3, 4\)"):
        spago.load(TwoLayer((3, 4, 2)), path)


def test_mixed_file_dtypes_must_match_the_module(tmp_path):
    state = TwoLayer().state_dict()
    state["first.bias"] = state["first.bias"].astype(np.float64)
    save_file(state, str(tmp_path / "mixed.safetensors"))
    with pytest.raises(DTypeError, match=r"first\.bias: module float32, file float64"):
        spago.load(TwoLayer(), tmp_path / "mixed.safetensors")


def test_a_plain_safetensors_file_loads_into_an_instance_but_not_a_class(tmp_path):
    model = _randomise(TwoLayer())
    save_file(model.state_dict(), str(tmp_path / "plain.safetensors"))
    loaded = spago.load(TwoLayer(), tmp_path / "plain.safetensors")
    _same_bits(model.second.weight.numpy(), loaded.second.weight.numpy())
    with pytest.raises(SpagoError, match="no spago config"):
        spago.load(TwoLayer, tmp_path / "plain.safetensors")


def test_not_safetensors_truncated_and_absent_files_name_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a tensor file at all, but it is long enough to have a header")
    with pytest.raises(SpagoError, match=r"notes\.txt: not a valid safetensors file"):
        spago.load(TwoLayer(), text)

    spago.save(TwoLayer(), tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 10])
    with pytest.raises(SpagoError, match=r"cut\.safetensors: not a valid safetensors file"):
        spago.load(TwoLayer(), tmp_path / "cut.safetensors")

    with pytest.raises(SpagoError, match=r"nowhere\.safetensors: no such file"):
        spago.load(TwoLayer(), tmp_path / "nowhere.safetensors")
    with pytest.raises(SpagoError, match="does not exist"):
        spago.save(TwoLayer(), tmp_path / "no" / "dir.safetensors")


def test_a_write_failing_midway_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    spago.save(_randomise(TwoLayer(), seed=1), path)
    before = path.read_bytes()

    real_write = serialization._safetensors_save_file

    def half_then_fail(tensors, tmp, metadata):
        real_write(tensors, tmp, metadata)
        with open(tmp, "r+b") as f:
            f.truncate(os.path.getsize(tmp) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_safetensors_save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        spago.save(_randomise(TwoLayer(), seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]

    fresh = tmp_path / "fresh.safetensors"
    with pytest.raises(OSError, match="disk full"):
        spago.save(TwoLayer(), fresh)
    assert not fresh.exists() and os.listdir(tmp_path) == ["m.safetensors"]


def test_save_rejects_non_modules_and_load_rejects_other_targets(tmp_path):
    with pytest.raises(SpagoError, match="expects a Module"):
        spago.save({"w": np.zeros(2)}, tmp_path / "x.safetensors")
    spago.save(TwoLayer(), tmp_path / "m.safetensors")
    with pytest.raises(SpagoError, match="expects a Module or a Module class"):
        spago.load(dict, tmp_path / "m.safetensors")


def test_dataclass_arguments_rebuild(tmp_path):
    model = _randomise(WithSettings(Settings(width=3, name="x", extra={"k": [1, 2]})))
    spago.save(model, tmp_path / "d.safetensors")
    loaded = spago.load(WithSettings, tmp_path / "d.safetensors")
    assert loaded.settings == Settings(width=3, name="x", extra={"k": [1, 2]})
    _same_bits(model.w.numpy(), loaded.w.numpy())


def _rewrite_config(path, edit):
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        header = json.loads(f.metadata()["spago"])
    edit(header["config"])
    save_file(tensors, str(path), metadata={"spago": json.dumps(header)})


def test_files_from_older_or_newer_constructors(tmp_path):
    path = tmp_path / "m.safetensors"
    spago.save(TwoLayer((3, 4, 2), act="relu", dtype="float64"), path)
    _rewrite_config(path, lambda config: config.pop("act"))  # saved before `act` existed: default applies
    loaded = spago.load(TwoLayer, path)
    assert loaded.act == "tanh" and loaded.first.weight.dtype == np.float64
    _rewrite_config(path, lambda config: config.update(depth=3))
    with pytest.raises(SpagoError, match=r"no longer takes the saved argument\(s\) depth"):
        spago.load(TwoLayer, path)


LAYERS = {
    "embedding": lambda: nn.Embedding(7, 3, padding_idx=0),
    "conv1d": lambda: nn.Conv1D(2, 3, 3, stride=2, padding=1),
    "conv2d": lambda: nn.Conv2D(2, 3, (3, 2), padding=(1, 0), dtype="float64"),
    "lstm": lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, merge="sum"),
    "gru": lambda: nn.GRU(3, 4, bias=False),
    "stacked": lambda: nn.StackedRNN([nn.Recurrent(nn.LSTMCell(3, 4)), nn.Recurrent(nn.GRUCell(4, 2), reverse=True)]),
    "attention": lambda: nn.MultiHeadAttention(4, 2, kdim=3),
    "crf": lambda: nn.CRF(5),
    "tagger": lambda: nn.BiLSTMCRF(10, 4, embedding_dim=3, hidden_size=2, num_layers=2),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_round_trips_by_class_bit_exactly(tmp_path, name):
    model = _randomise(LAYERS[name]())
    path = tmp_path / f"{name}.safetensors"
    spago.save(model, path)
    spago.save(model, path)  # overwriting goes through a temp file + rename too
    assert os.listdir(tmp_path) == [f"{name}.safetensors"]
    loaded = spago.load(type(model), path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    saved, got = model.state_dict(), loaded.state_dict()
    assert list(saved) == list(got)
    for k in saved:
        _same_bits(saved[k], got[k])
