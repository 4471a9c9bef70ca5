"""Hugging Face weight readers: safetensors (single, sharded, BF16) and our restricted PyTorch zip reader.

Test ``.bin`` files are written here by hand (zip + handwritten pickle opcodes), so torch is not needed;
malicious pickles must be refused before anything runs.
"""
import io
import json
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from spago.errors import DTypeError, SpagoError
from spago.nlp.transformers.checkpoint import (find_weights_file, read_pytorch_bin, read_safetensors,
                                              read_state_dict)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
QA = FIXTURES / "tiny-bert" / "qa"


# -- a tiny pickle writer: opcodes by hand ----------------------------------------------------------

def s(text):  # BINUNICODE
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def i(n):  # BININT
    return b"J" + struct.pack("<i", n)


def glob(module, name):  # GLOBAL
    return b"c" + f"{module}\n{name}\n".encode()


def tup(*parts):  # MARK ... TUPLE
    return b"(" + b"".join(parts) + b"t"


def call(fn, *args):  # fn, args tuple, REDUCE
    return fn + tup(*args) + b"R"


def tensor(key, numel, size, stride, offset=0, storage="FloatStorage"):
    """What torch.save writes for one tensor: _rebuild_tensor_v2(persistent storage, offset, size, stride, ...)."""
    pid = tup(s("storage"), glob("torch", storage), s(key), s("cpu"), i(numel)) + b"Q"
    hooks = call(glob("collections", "OrderedDict"))
    return call(glob("torch._utils", "_rebuild_tensor_v2"), pid, i(offset), tup(*map(i, size)),
                tup(*map(i, stride)), b"\x89", hooks)


def state_dict(**items):
    """PROTO 2, OrderedDict(), MARK key value ... SETITEMS, STOP."""
    body = b"".join(s(k) + v for k, v in items.items())
    return b"\x80\x02" + call(glob("collections", "OrderedDict")) + b"(" + body + b"u."


def write_bin(path, pickle_bytes, storages, byteorder=b"little"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
    pickletools.dis(pickle_bytes, out=io.StringIO())  # well-formed opcodes (decoding runs nothing)
    return path


# -- the real fixture ---------------------------------------------------------------------------------

@pytest.mark.skipif(not QA.is_dir(), reason=f"fixtures not found at {QA}")
def test_fixture_bin_equals_its_safetensors():
    from_bin = read_state_dict(QA / "pytorch_model.bin")
    from_st = read_state_dict(QA / "model.safetensors")
    assert len(from_bin) == 39 and sorted(from_bin) == sorted(from_st)
    for key, value in from_st.items():
        assert from_bin[key].dtype == value.dtype == np.float32 and from_bin[key].shape == value.shape
        assert from_bin[key].tobytes() == value.tobytes(), key
    assert sorted(read_state_dict(QA)) == sorted(from_st)  # a folder reads its safetensors file


# -- handcrafted PyTorch checkpoints ------------------------------------------------------------------

def test_strided_offset_and_shared_storages(tmp_path):
    base = np.arange(12, dtype=np.float32)
    data = state_dict(plain=tensor("0", 12, (3, 4), (4, 1)),
                      transposed=tensor("0", 12, (4, 3), (1, 4)),
                      window=tensor("0", 12, (2, 2), (4, 1), offset=5),
                      scalar=tensor("0", 12, (), (), offset=7),
                      empty=tensor("0", 12, (0, 3), (3, 1)))
    out = read_pytorch_bin(write_bin(tmp_path / "m.bin", data, {"0": base.tobytes()}))
    np.testing.assert_array_equal(out["plain"], base.reshape(3, 4))
    np.testing.assert_array_equal(out["transposed"], base.reshape(3, 4).T)
    assert out["transposed"].flags.c_contiguous and out["transposed"].flags.writeable
    np.testing.assert_array_equal(out["window"], [[5, 6], [9, 10]])
    assert out["scalar"].shape == () and out["scalar"] == 7
    assert out["empty"].shape == (0, 3)


def test_dtypes_bfloat16_widened_float16_kept_big_endian_read(tmp_path):
    wide = np.array([1.5, -2.0, 0.15625, 2.0 ** 127], dtype=np.float32)  # all exact in bfloat16
    bf16_bits = (wide.view(np.uint32) >> 16).astype("<u2")
    half = np.array([0.5, -1.25, 65504], dtype=np.float16)
    data = state_dict(bf=tensor("0", 4, (4,), (1,), storage="BFloat16Storage"),
                      half=tensor("1", 3, (3,), (1,), storage="HalfStorage"),
                      ids=tensor("2", 2, (2,), (1,), storage="LongStorage"),
                      mask=tensor("3", 2, (2,), (1,), storage="BoolStorage"))
    storages = {"0": bf16_bits.tobytes(), "1": half.tobytes(), "2": np.array([7, -1], "<i8").tobytes(),
                "3": bytes([1, 0])}
    out = read_pytorch_bin(write_bin(tmp_path / "m.bin", data, storages))
    assert out["bf"].dtype == np.float32 and out["bf"].tobytes() == wide.tobytes()
    assert out["half"].dtype == np.float16 and out["half"].tobytes() == half.tobytes()
    np.testing.assert_array_equal(out["ids"], [7, -1])
    assert out["mask"].dtype == np.bool_ and out["mask"].tolist() == [True, False]

    big = write_bin(tmp_path / "big.bin", state_dict(w=tensor("0", 2, (2,), (1,))),
                    {"0": np.array([1.25, -3.0], ">f4").tobytes()}, byteorder=b"big")
    w = read_pytorch_bin(big)["w"]
    assert w.dtype == np.float32 and w.dtype.isnative and w.tolist() == [1.25, -3.0]


def test_parameter_wrapper_and_protocol_4_stack_global(tmp_path):
    param = call(glob("torch._utils", "_rebuild_parameter"), tensor("0", 2, (2,), (1,)), b"\x88",
                 call(glob("collections", "OrderedDict")))
    stack_global = s("torch._utils") + s("_rebuild_tensor_v2") + b"\x93"
    pid = tup(s("storage"), s("torch") + s("FloatStorage") + b"\x93", s("0"), s("cpu"), i(2)) + b"Q"
    v2 = stack_global + tup(pid, i(0), tup(i(2)), tup(i(1)), b"\x89", b"}") + b"R"
    data = b"\x80\x04" + b"}" + b"(" + s("p") + param + s("q") + v2 + b"u."
    out = read_pytorch_bin(write_bin(tmp_path / "m.bin", data, {"0": np.array([1, 2], "<f4").tobytes()}))
    assert out["p"].tolist() == [1.0, 2.0] and out["q"].tolist() == [1.0, 2.0]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class _Plain:
    def __init__(self):
        self.payload = "state set through BUILD"


def _malicious(marker):
    """Pickles that would run code (create ``marker``) if unpickled, each with the name we expect refused."""
    touch = f"touch {marker}"
    return {
        "os.system": (b"\x80\x02" + call(glob("os", "system"), s(touch)) + b".", "os.system"),
        "builtins.eval": (b"\x80\x04" + s("builtins") + s("eval") + b"\x93" + tup(s(f"open('{marker}', 'w')"))
                          + b"R.", "builtins.eval"),
        "custom __reduce__": (pickle.dumps({"w": _Evil(marker)}, protocol=2), "system"),
        "class instance via BUILD": (pickle.dumps({"w": _Plain()}, protocol=2), f"global {__name__}._Plain"),
        "INST opcode": (b"(" + s(touch) + b"ios\nsystem\n.", "opcode INST"),
        "storage class called": (b"\x80\x02" + call(glob("torch", "FloatStorage"), i(3)) + b".",
                                 "refusing to call torch.FloatStorage"),
        "getattr smuggling": (b"\x80\x02" + call(glob("builtins", "getattr"), glob("collections", "OrderedDict"),
                                                 s("__init__")) + b".", "builtins.getattr"),
        "BUILD on a tensor": (state_dict(w=tensor("0", 2, (2,), (1,)) + b"}" + b"b"), "refusing BUILD of a ndarray"),
        "APPEND to a dict": (b"\x80\x02}" + i(1) + b"a.", "refusing APPEND on a dict"),
    }


@pytest.mark.parametrize("case", list(_malicious("m")))
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path, case):
    marker = tmp_path / "pwned"
    data, expected = _malicious(marker)[case]
    path = write_bin(tmp_path / "evil.bin", data, {"0": np.zeros(2, "<f4").tobytes()})
    with pytest.raises(SpagoError, match=expected) as info:
        read_state_dict(path)
    assert "evil.bin" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("data, storages, expected", [
    (state_dict(w=tensor("7", 2, (2,), (1,))), {"0": bytes(8)}, r"storage '7' not found"),
    (state_dict(w=tensor("0", 3, (3,), (1,))), {"0": bytes(8)}, r"holds 8 bytes, expected 3 FloatStorage"),
    (state_dict(w=tensor("0", 2, (2, 2), (2, 1))), {"0": bytes(8)}, r"does not fit in storage 0"),
    (state_dict(w=tensor("0", 1, (4,), (0,))), {"0": bytes(4)}, r"does not fit in storage 0"),
    (state_dict(w=i(3)), {}, r"expected tensors by name, got 'w' \(int\)"),
    (state_dict(w=tensor("0", 2, (2,), (1,)))[:-20], {"0": bytes(8)}, r"malformed or truncated data\.pkl"),
    (b"\x80\x02" + tup(s("storage"), glob("torch", "FloatStorage"), s("0")) + b"Q.", {}, "unexpected persistent id"),
])
def test_broken_checkpoints_name_the_problem_and_the_file(tmp_path, data, storages, expected):
    path = write_bin(tmp_path / "broken.bin", data, storages) if data.endswith(b".") else None
    if path is None:  # a cut pickle: pickletools cannot disassemble it, write it directly
        path = tmp_path / "broken.bin"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", data)
            for key, raw in storages.items():
                z.writestr(f"archive/data/{key}", raw)
    with pytest.raises(SpagoError, match=expected) as info:
        read_state_dict(path)
    assert "broken.bin" in str(info.value)


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    good = write_bin(tmp_path / "good.bin", state_dict(w=tensor("0", 2, (2,), (1,))), {"0": bytes(8)})
    raw = good.read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SpagoError, match=r"cut\.bin: not a readable PyTorch zip checkpoint"):
        read_state_dict(tmp_path / "cut.bin")

    (tmp_path / "legacy.bin").write_bytes(b"\x80\x02\x8a\x0alk\xfc\x9cF\xf9 j\xa8P\x19.")
    with pytest.raises(SpagoError, match=r"legacy\.bin: a PyTorch checkpoint in the legacy"):
        read_state_dict(tmp_path / "legacy.bin")
    (tmp_path / "notes.bin").write_text("hello, this is plain text and not any weights at all")
    with pytest.raises(SpagoError, match=r"notes\.bin: neither a safetensors file nor a PyTorch zip"):
        read_state_dict(tmp_path / "notes.bin")

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "no pickle here")
    with pytest.raises(SpagoError, match=r"other\.zip: expected one <prefix>/data\.pkl"):
        read_state_dict(tmp_path / "other.zip")


# -- safetensors, sharding, folders -----------------------------------------------------------------

def _raw_safetensors(path, tensors):
    """Write the safetensors layout directly (for dtypes NumPy lacks): 8-byte header size, JSON, data."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def test_safetensors_bfloat16_is_widened_and_unknown_dtypes_refused(tmp_path):
    wide = np.array([[1.0, -0.5], [256.0, 0.0078125]], np.float32)
    bits = (wide.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = _raw_safetensors(tmp_path / "bf.safetensors",
                            {"w": ("BF16", (2, 2), bits), "b": ("F32", (2,), np.ones(2, "<f4").tobytes())})
    out = read_safetensors(path)
    assert out["w"].dtype == np.float32 and out["w"].tobytes() == wide.tobytes()
    np.testing.assert_array_equal(out["b"], [1, 1])

    _raw_safetensors(tmp_path / "f8.safetensors", {"w": ("F8_E4M3", (2,), bytes(2))})
    with pytest.raises(DTypeError, match=r"f8\.safetensors: .*w \(F8_E4M3\)"):
        read_state_dict(tmp_path / "f8.safetensors")

    data = (tmp_path / "bf.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-3])
    with pytest.raises(SpagoError, match=r"cut\.safetensors: not a valid safetensors file"):
        read_state_dict(tmp_path / "cut.safetensors")


def _shards(folder, fmt):
    a, b, c = np.ones((2, 3), np.float32), np.arange(4, dtype=np.float32), np.full(2, 7, np.float32)
    if fmt == "safetensors":
        names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        save_file({"a": a, "b": b}, str(folder / names[0]))
        save_file({"c": c}, str(folder / names[1]))
    else:
        names = ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin")
        write_bin(folder / names[0], state_dict(a=tensor("0", 6, (2, 3), (3, 1)), b=tensor("1", 4, (4,), (1,))),
                  {"0": a.tobytes(), "1": b.tobytes()})
        write_bin(folder / names[1], state_dict(c=tensor("0", 2, (2,), (1,))), {"0": c.tobytes()})
    index = folder / ("model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json")
    weight_map = {"a": names[0], "b": names[0], "c": names[1]}
    index.write_text(json.dumps({"metadata": {"total_size": 48}, "weight_map": weight_map}))
    return index, weight_map, {"a": a, "b": b, "c": c}


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_checkpoints_by_index_and_by_folder(tmp_path, fmt):
    index, weight_map, expected = _shards(tmp_path, fmt)
    for source in (index, tmp_path):
        out = read_state_dict(source)
        assert sorted(out) == ["a", "b", "c"]
        for k, v in expected.items():
            np.testing.assert_array_equal(out[k], v)

    index.write_text(json.dumps({"weight_map": {**weight_map, "d": weight_map["c"]}}))
    with pytest.raises(SpagoError, match=r"does not match .*index\.json: missing d"):
        read_state_dict(index)
    index.write_text(json.dumps({"weight_map": {"a": weight_map["a"], "c": weight_map["c"]}}))
    with pytest.raises(SpagoError, match=r"holds tensors the index does not list for it: b"):
        read_state_dict(index)
    index.write_text(json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}}))
    with pytest.raises(SpagoError, match=r"is not a file name in the index's folder"):
        read_state_dict(index)
    index.write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(SpagoError, match=r"shard gone\.safetensors is missing"):
        read_state_dict(index)
    index.write_text("{not json")
    with pytest.raises(SpagoError, match=r"index\.json: malformed JSON"):
        read_state_dict(index)


def test_folder_lookup_order_and_empty_folder(tmp_path):
    with pytest.raises(SpagoError, match=r"no weights file found \(looked for model\.safetensors"):
        read_state_dict(tmp_path)
    write_bin(tmp_path / "pytorch_model.bin", state_dict(w=tensor("0", 1, (1,), (1,))), {"0": bytes(4)})
    assert find_weights_file(tmp_path).endswith("pytorch_model.bin")
    save_file({"w": np.ones(1, np.float32)}, str(tmp_path / "model.safetensors"))
    assert find_weights_file(tmp_path).endswith("model.safetensors")
    assert read_state_dict(tmp_path)["w"].tolist() == [1.0]
    with pytest.raises(SpagoError, match=r"nothing\.bin: no such weights file"):
        read_state_dict(tmp_path / "nothing.bin")
