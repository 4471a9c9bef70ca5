"""Hostile ``.bin`` archives: the restricted reader refuses them quickly, in bounded memory, never crashing."""
import dataclasses
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from spago.errors import SpagoError
from spago.nlp.torch_pickle import (DEFAULT_LIMITS, STATE_DICT_GLOBALS, Limits, interpret, read_torch_zip)
from spago.nlp.transformers.checkpoint import read_pytorch_bin, read_state_dict

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def archive(path, pkl, storages=None, compress=zipfile.ZIP_DEFLATED, extra=None):
    with zipfile.ZipFile(path, "w", compress) as z:
        z.writestr("archive/data.pkl", pkl)
        for key, raw in (storages or {}).items():
            z.writestr(f"archive/data/{key}", raw)
        for name, raw in (extra or {}).items():
            z.writestr(name, raw)
    return str(path)


def tensor_pickle(numel, size, key="0"):
    """A state dict {'w': FloatStorage(numel)[:size]} as torch.save writes it (protocol 2)."""
    return (b"\x80\x02ccollections\nOrderedDict\n)RX\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX" + len(key).to_bytes(4, "little") + key.encode()
            + b"X\x03\x00\x00\x00cpuJ" + numel.to_bytes(4, "little") + b"tQK\x00J" + size.to_bytes(4, "little")
            + b"\x85K\x01\x85\x89NtRs.")


def run_isolated(code):
    """Run ``code`` in a child: a crash (segfault) fails the test instead of killing pytest."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


def test_a_key_nested_a_million_tuples_deep_is_refused_without_crashing(tmp_path):
    path = archive(tmp_path / "deep.bin", b"\x80\x02})" + b"\x85" * 10 ** 6 + b"Ns.")
    assert os.path.getsize(path) < 5000
    out = run_isolated(f"""
        from spago.errors import SpagoError
        from spago.nlp.transformers.checkpoint import read_pytorch_bin
        try:
            read_pytorch_bin({path!r})
        except SpagoError as exc:
            print(exc)
    """)
    assert f"nested more than {DEFAULT_LIMITS.max_depth} deep" in out


@pytest.mark.parametrize("pkl", [
    b"\x80\x02" + b"(" * 300000 + b"N" + b"t" * 300000 + b".",            # MARK/TUPLE nesting
    b"\x80\x02" + b"]" * 300000 + b"a" * 299999 + b".",                    # lists appended into lists
    b"\x80\x04\x8c\x01a\x94" + b"\x8c\x01b\x94" + b"\x85" * 300000 + b"\x93.",  # STACK_GLOBAL of a deep tuple
], ids=["tuples", "lists", "stack-global"])
def test_other_deep_shapes_are_refused_without_crashing(tmp_path, pkl):
    path = archive(tmp_path / "deep.bin", pkl)
    out = run_isolated(f"""
        from spago.errors import SpagoError
        from spago.nlp.transformers.checkpoint import read_pytorch_bin
        try:
            read_pytorch_bin({path!r})
        except SpagoError as exc:
            print("refused:", exc)
    """)
    assert "refused:" in out


def test_a_deflated_pickle_bomb_is_refused_before_decompressing(tmp_path):
    path = archive(tmp_path / "bomb.bin", b"\x80\x02" + b"N0" * (50 * 10 ** 6) + b"}.")
    assert os.path.getsize(path) < 200_000
    with pytest.raises(SpagoError, match=r"would expand .* compressed bytes to 100000004"):
        read_pytorch_bin(path)


def test_opcode_memo_and_size_limits(tmp_path):
    small = Limits(max_opcodes=1000, max_memo=10, max_pickle_bytes=100_000)
    with pytest.raises(SpagoError, match=r"more than 1000 pickle opcodes"):
        interpret(b"\x80\x02" + b"N0" * 1000 + b"}.", "x.pkl", limits=small)
    with pytest.raises(SpagoError, match=r"more than 10 memo entries"):
        interpret(b"\x80\x02" + b"N\x94" * 11 + b"}.", "x.pkl", limits=small)
    with pytest.raises(SpagoError, match=r"the pickle has 100003 bytes, more than the limit of 100000"):
        interpret(b"\x80\x02" + b"N0" * 50000 + b".", "x.pkl", limits=small)
    path = archive(tmp_path / "big.bin", b"\x80\x02" + b"N0" * 60000 + b"}.", compress=zipfile.ZIP_STORED)
    with pytest.raises(SpagoError, match=r"data.pkl has 120004 bytes, more than the limit of 100000"):
        read_torch_zip(path, limits=small)


def test_a_huge_deflated_storage_is_read_only_as_far_as_its_tensor_reaches(tmp_path):
    n = 1 << 26  # 256 MiB of float32 zeros, about 250 KB deflated
    path = archive(tmp_path / "storage.bin", tensor_pickle(n, 10_000), {"0": bytes(4 * n)})
    assert os.path.getsize(path) < 500_000
    out = run_isolated(f"""
        from spago.nlp.transformers.checkpoint import read_pytorch_bin
        state = read_pytorch_bin({path!r})
        peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]  # this process's own peak
        print(state["w"].shape, int(peak[0].split()[1]) // 1024 if peak else 0)
    """)
    shape, rss_mb = out.split(")")
    assert shape == "(10000,"
    assert 0 < int(rss_mb) < 200  # the 256 MiB storage is never materialised


def test_a_tensor_that_needs_more_than_the_expansion_bound_is_refused(tmp_path):
    n = 1 << 22  # 16 MiB of zeros deflates ~1000 to 1
    path = archive(tmp_path / "storage.bin", tensor_pickle(n, n), {"0": bytes(4 * n)})
    limits = dataclasses.replace(DEFAULT_LIMITS, expansion_floor=1 << 20)
    with pytest.raises(SpagoError, match=r"would expand .* \(more than 64 times\)"):
        read_pytorch_bin(path, limits=limits)
    assert read_pytorch_bin(path)["w"].shape == (n,)  # under the default 16 MiB floor


def test_a_storage_declaring_more_than_the_limit_is_refused(tmp_path):
    path = archive(tmp_path / "s.bin", tensor_pickle(1000, 10), {"0": bytes(4000)})
    with pytest.raises(SpagoError, match=r"declares 1000 FloatStorage elements, more than the limit"):
        read_pytorch_bin(path, limits=Limits(max_storage_bytes=1000))


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"little\x00", b"x" * 10 ** 6], ids=["not-utf8", "nul", "huge"])
def test_a_byteorder_that_is_not_little_or_big_is_a_clean_error(tmp_path, raw):
    path = archive(tmp_path / "b.bin", tensor_pickle(10, 10), {"0": bytes(40)}, extra={"archive/byteorder": raw})
    with pytest.raises(SpagoError, match=r"unknown byte order"):
        read_pytorch_bin(path)


def test_a_container_changed_after_being_stored_is_refused():
    # L = []; outer = [L]; then APPEND into L again through the memo
    pkl = b"\x80\x02]q\x00]q\x01h\x00a" + b"h\x00Na" + b"."
    with pytest.raises(SpagoError, match=r"already stored in another object"):
        interpret(pkl, "x.pkl")


def test_special_files_are_not_read(tmp_path):
    fifo = tmp_path / "pytorch_model.bin"
    os.mkfifo(fifo)
    with pytest.raises(SpagoError, match=r"expected a regular weights file, found a FIFO"):
        read_state_dict(fifo)


class Vocabulary:
    """A caller's data class, admitted by name, rebuilt through ``__setstate__``."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or set(state) != {"items"}:
            raise SpagoError("Vocabulary state must hold 'items'")
        self.items = list(state["items"])


def test_callers_admit_their_own_globals():
    # {"vocab": flair.data.Dictionary() with state {"items": ["a", "b"]}}, as protocol 4 writes it
    data = (b"\x80\x04}\x8c\x05vocab\x8c\x0aflair.data\x8c\x0aDictionary\x93)\x81}\x8c\x05items]"
            b"(\x8c\x01a\x8c\x01besbs.")
    with pytest.raises(SpagoError, match=r"names the global flair.data.Dictionary"):
        interpret(data, "m.pt")
    admitted = {**STATE_DICT_GLOBALS, ("flair.data", "Dictionary"): lambda: Vocabulary.__new__(Vocabulary)}
    out = interpret(data, "m.pt", admitted)
    assert isinstance(out["vocab"], Vocabulary) and out["vocab"].items == ["a", "b"]
    with pytest.raises(SpagoError, match=r"Vocabulary state must hold 'items'"):
        interpret(data.replace(b"items", b"itemz"), "m.pt", admitted)
