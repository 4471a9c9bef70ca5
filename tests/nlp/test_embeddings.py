"""spago.nlp.embeddings: LMDB word-vector stores, imports, fallbacks, sparse training, stacking."""
import json
import os
import struct

import lmdb
import numpy as np
import pytest

import spago
from spago import nn, optim
from spago.nlp.embeddings import (EmbeddingStore, EmbeddingStoreError, StackedEmbeddings, WordEmbeddings,
                                  import_text, import_word2vec_binary)

WORDS = ["the", "Paris", "naïve", "東京", "🙂", "a.b", "x1"]


def table(n=len(WORDS), dim=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def write_text(path, words, vectors, header=False):
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write(f"{len(words)} {vectors.shape[1]}\n")
        for w, v in zip(words, vectors):
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")
    return path


def write_binary(path, words, vectors, count=None, newline=True):
    with open(path, "wb") as f:
        f.write(f"{len(words) if count is None else count} {vectors.shape[1]}\n".encode())
        for w, v in zip(words, vectors):
            f.write(w.encode() + b" " + v.astype("<f4").tobytes() + (b"\n" if newline else b""))
    return path


def build(tmp_path, words=WORDS, vectors=None, name="store", **options):
    vectors = table(len(words)) if vectors is None else vectors
    with EmbeddingStore.create(tmp_path / name, vectors.shape[1], **options) as w:
        w.add_many(words, vectors)
    return EmbeddingStore.open(tmp_path / name)


# -- imports and round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("header", [False, True])
def test_text_import_round_trips_glove_and_word2vec_text(tmp_path, header):
    vectors = table()
    src = write_text(tmp_path / "vec.txt", WORDS, vectors, header=header)
    store = import_text(src, tmp_path / "db", progress=False)
    assert store.readonly and len(store) == len(WORDS) and store.dim == 4
    assert sorted(store.words()) == sorted(WORDS)
    np.testing.assert_array_equal(store.lookup(WORDS), vectors)
    for w, v in zip(WORDS, vectors):
        np.testing.assert_array_equal(store.get(w), v)
    assert not os.listdir(tmp_path) == ["vec.txt"] and sorted(os.listdir(tmp_path)) == ["db", "vec.txt"]


@pytest.mark.parametrize("newline", [True, False])
def test_word2vec_binary_import_round_trips(tmp_path, newline):
    vectors = table()
    src = write_binary(tmp_path / "vec.bin", WORDS, vectors, newline=newline)
    store = import_word2vec_binary(src, tmp_path / "db", progress=False)
    np.testing.assert_array_equal(store.lookup(WORDS), vectors)
    assert len(store) == len(WORDS)


def test_glove_words_with_spaces_keep_them(tmp_path):
    src = tmp_path / "g.txt"
    src.write_text("the 1 2\n. . . 3 4\nat&t 5 6\n", encoding="utf-8")
    store = import_text(src, tmp_path / "db", progress=False)
    np.testing.assert_array_equal(store.get(". . ."), [3, 4])
    np.testing.assert_array_equal(store.get("at&t"), [5, 6])


def test_normalize_and_metadata_persist(tmp_path):
    src = write_text(tmp_path / "v.txt", ["a", "b"], np.array([[3, 4], [0, 0]], np.float32))
    store = import_text(src, tmp_path / "db", progress=False, normalize=True, lowercase=False)
    np.testing.assert_allclose(store.get("a"), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(store.get("b"), [0, 0])
    reopened = EmbeddingStore.open(tmp_path / "db")
    assert reopened.normalize and not reopened.lowercase and reopened.dim == 2 and len(reopened) == 2


def test_duplicates_are_an_error_or_keep_first_or_last(tmp_path):
    src = tmp_path / "d.txt"
    src.write_text("a 1\nb 2\na 3\n")
    with pytest.raises(EmbeddingStoreError, match=r"line 3: the word 'a' appears twice"):
        import_text(src, tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()
    assert import_text(src, tmp_path / "f", progress=False, duplicates="first").get("a")[0] == 1
    last = import_text(src, tmp_path / "l", progress=False, duplicates="last")
    assert last.get("a")[0] == 3 and len(last) == 2


# -- fallbacks -----------------------------------------------------------------------------------

def test_lowercase_fallback(tmp_path):
    store = build(tmp_path)
    paris = store.get("Paris")
    assert store.get("paris") is None
    np.testing.assert_array_equal(store.lookup(["PARIS"])[0], np.zeros(4))  # "paris" is not stored either
    store2 = build(tmp_path, ["paris", "The"], table(2), name="lower")
    np.testing.assert_array_equal(store2.lookup(["PARIS", "Paris", "paris"]), np.repeat(table(2)[:1], 3, 0))
    np.testing.assert_array_equal(store2.lookup(["PARIS"], lowercase=False), np.zeros((1, 4)))
    np.testing.assert_array_equal(store2.lookup(["the"]), np.zeros((1, 4)))  # fallback lowercases only
    assert store.resolve(["Paris", "Paris", "zz"]) == [b"Paris", b"Paris", None]
    np.testing.assert_array_equal(store.lookup(["Paris"])[0], paris)


def test_unknown_fallbacks_zero_random_vector(tmp_path):
    words, vectors = ["a", "b"], table(2)
    zero = build(tmp_path, words, vectors, name="z")
    np.testing.assert_array_equal(zero.lookup(["?"]), np.zeros((1, 4)))
    r1 = build(tmp_path, words, vectors, name="r1", unknown="random", seed=3)
    r2 = build(tmp_path, words, vectors, name="r2", unknown="random", seed=3)
    r3 = build(tmp_path, words, vectors, name="r3", unknown="random", seed=4)
    np.testing.assert_array_equal(r1.unknown, r2.unknown)  # seeded
    assert np.abs(r1.unknown - r3.unknown).max() > 0 and np.abs(r1.unknown).max() > 0
    given = build(tmp_path, words, vectors, name="v", unknown=[1, 2, 3, 4])
    np.testing.assert_array_equal(given.lookup(["?", "a"]), [[1, 2, 3, 4], vectors[0]])
    # the layer may override the store's unknown vector
    emb = WordEmbeddings(given, unknown="zero")
    np.testing.assert_array_equal(emb.lookup(["?"]), np.zeros((1, 4)))
    np.testing.assert_array_equal(WordEmbeddings(given, unknown=[9, 9, 9, 9]).lookup(["?"]), [[9, 9, 9, 9]])
    with pytest.raises(EmbeddingStoreError, match="unknown must be"):
        WordEmbeddings(given, unknown="gaussian")
    with pytest.raises(EmbeddingStoreError, match="expected a vector of 4"):
        build(tmp_path, words, vectors, name="bad", unknown=[1, 2])


# -- read-only ------------------------------------------------------------------------------------

def test_read_only_store_refuses_writes(tmp_path):
    store = build(tmp_path)
    assert store.readonly
    with pytest.raises(EmbeddingStoreError, match="read-only"):
        store.write_rows([b"the"], np.zeros((1, 4), np.float32))
    with pytest.raises(EmbeddingStoreError, match="read-only"):
        WordEmbeddings(store, trainable=True)
    np.testing.assert_array_equal(store.get("the"), table()[0])  # untouched
    with pytest.raises(EmbeddingStoreError, match="already open read-only in this process"):
        EmbeddingStore.open(tmp_path / "store", readonly=False)
    second = EmbeddingStore.open(tmp_path / "store")  # read-only handles share one environment
    store.close()
    second.close()
    writable = EmbeddingStore.open(tmp_path / "store", readonly=False)
    writable.write_rows([b"the"], np.ones((1, 4), np.float32))
    writable.close()
    np.testing.assert_array_equal(EmbeddingStore.open(tmp_path / "store").get("the"), np.ones(4))
    added = EmbeddingStore.open(tmp_path / "store", readonly=False)
    added.write_rows(["new".encode(), b"the"], np.full((2, 4), 2, np.float32))  # a new word and an old one
    assert len(added) == len(WORDS) + 1
    added.close()
    reopened = EmbeddingStore.open(tmp_path / "store")
    assert len(reopened) == len(WORDS) + 1 and reopened.get("new")[0] == 2


# -- layers, eager and compiled ------------------------------------------------------------------

class Classifier(nn.Module):
    def __init__(self, emb, classes=3):
        super().__init__()
        self.emb = emb
        self.out = nn.Linear(emb.embedding_length, classes, generator=spago.random.Generator(0))

    def forward(self, x):
        return self.out(self.emb(x)).tanh()


def test_compiled_model_with_word_embeddings_matches_eager(tmp_path):
    store = build(tmp_path, [f"w{i}" for i in range(500)], table(500, 8))
    model = Classifier(WordEmbeddings(store))
    tokens = ["w3", "W7", "nope", "w3", "w499"]
    eager = model(tokens).numpy()
    rows = model.emb.prepare(tokens)
    assert rows.shape == (5, 8) and rows.dtype == np.float32
    compiled = spago.compile(model, rows)
    np.testing.assert_allclose(compiled(rows), eager, rtol=1e-5, atol=1e-6)
    other = ["w1", "w2", "w9", "w10", "w11"]
    np.testing.assert_allclose(compiled(model.emb.prepare(other)), model(other).numpy(), rtol=1e-5, atol=1e-6)
    # the table is not in the graph: its largest constant is the Linear layer, not 500 rows
    assert max((n.data.size for n in compiled.graph.consts), default=0) < 500 * 8


def test_stacked_embeddings_concatenate_and_compile(tmp_path):
    a = WordEmbeddings(build(tmp_path, ["x", "y"], table(2, 4), name="a"))
    b = WordEmbeddings(build(tmp_path, ["x", "z"], table(2, 3, seed=1), name="b"))
    length = lambda tokens: spago.tensor(np.array([[len(t)] for t in tokens], np.float32))  # noqa: E731
    length.embedding_length = 1
    stack = StackedEmbeddings([a, b, length])
    assert stack.embedding_length == 8
    out = stack(["x", "z", "yy"]).numpy()
    np.testing.assert_array_equal(out[:, :4], a.lookup(["x", "z", "yy"]))
    np.testing.assert_array_equal(out[:, 4:7], b.lookup(["x", "z", "yy"]))
    np.testing.assert_array_equal(out[:, 7], [1, 1, 2])
    prepared = stack.prepare(["x", "z"])
    assert isinstance(prepared, tuple) and len(prepared) == 3
    np.testing.assert_array_equal(stack(prepared).numpy(), stack(["x", "z"]).numpy())
    words_only = StackedEmbeddings([a, b])
    compiled = spago.compile(words_only, words_only.prepare(["x", "y", "q"]))
    np.testing.assert_array_equal(compiled(words_only.prepare(["z", "x", "y"])), words_only(["z", "x", "y"]).numpy())
    with pytest.raises(spago.ShapeError, match="embedder 1"):
        StackedEmbeddings([a, lambda tokens: spago.tensor(np.zeros((9, 2), np.float32))])(["x"])
    with pytest.raises(EmbeddingStoreError, match="at least one"):
        StackedEmbeddings([])


def test_padded_batches_of_sequences(tmp_path):
    store = build(tmp_path)
    emb, stack = WordEmbeddings(store), StackedEmbeddings([WordEmbeddings(store), WordEmbeddings(store)])
    batch = [["the", "Paris", "<pad>"], ["naïve", "the", "東京"]]
    rows = emb(batch).numpy()
    assert rows.shape == (2, 3, 4)
    np.testing.assert_array_equal(rows[1], store.lookup(batch[1]))
    assert stack(batch).shape == (2, 3, 8)
    with pytest.raises(EmbeddingStoreError, match="padded to one length"):
        emb([["a"], ["b", "c"]])
    store2 = build(tmp_path, VOCAB, table(12, 4), name="t")
    store2.close()
    trainable = WordEmbeddings(tmp_path / "t", trainable=True)
    slots = trainable.prepare([["w1", "w2"], ["w2", "zz"]])
    np.testing.assert_array_equal(slots, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(trainable(slots).numpy()[0], table(12, 4)[[1, 2]])


def test_tokens_with_a_text_attribute(tmp_path):
    class Token:
        def __init__(self, text):
            self.text = text

    emb = WordEmbeddings(build(tmp_path))
    np.testing.assert_array_equal(emb([Token("the"), Token("Paris")]).numpy(), table()[:2])
    with pytest.raises(EmbeddingStoreError, match="one str"):
        emb.lookup("the")


# -- sparse training against a dense NumPy reference ----------------------------------------------

VOCAB = [f"w{i}" for i in range(12)]
BATCHES = [["w0", "w3", "w3", "oov"], ["w1", "w3", "w5", "w0"], ["w7", "w7", "w7", "w2"], ["w0", "w11", "oov", "w1"]]


def coefficients(k, n=4, dim=3):
    return np.random.default_rng(100 + k).normal(size=(n, dim)).astype(np.float32)


def dense_reference(opt_name, vectors, unknown, steps, lr, **hyper):
    """Dense table + unknown row as row V; each step only the rows the batch used move (lazy updates)."""
    index = {w: i for i, w in enumerate(VOCAB)}
    W = np.concatenate([vectors, unknown[None]]).astype(np.float64)
    state = {name: np.zeros_like(W) for name in ("m", "v", "sum_sq", "velocity")}
    for t in range(1, steps + 1):
        batch = BATCHES[(t - 1) % len(BATCHES)]
        ids = np.array([index.get(w, len(VOCAB)) for w in batch])
        G = np.zeros_like(W)
        np.add.at(G, ids, coefficients(t))  # d/dW of sum(W[ids] * C)
        used = np.unique(ids)
        g = G[used]
        if opt_name == "sgd":
            W[used] -= lr * g
        elif opt_name == "momentum":
            state["velocity"][used] = hyper["momentum"] * state["velocity"][used] + lr * g
            W[used] -= state["velocity"][used]
        elif opt_name == "adagrad":
            state["sum_sq"][used] += g * g
            W[used] -= lr * g / (np.sqrt(state["sum_sq"][used]) + 1e-8)
        elif opt_name == "adam":
            b1, b2 = 0.9, 0.999
            state["m"][used] = b1 * state["m"][used] + (1 - b1) * g
            state["v"][used] = b2 * state["v"][used] + (1 - b2) * g * g
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            W[used] -= alpha * state["m"][used] / (np.sqrt(state["v"][used]) + 1e-8)
    return W, state


OPTIMIZERS = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), {}),
    "momentum": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), {"momentum": 0.9}),
    "adagrad": (lambda p: optim.AdaGrad(p, lr=0.1), {}),
    "adam": (lambda p: optim.Adam(p, lr=0.05), {}),
}
LR = {"sgd": 0.1, "momentum": 0.1, "adagrad": 0.1, "adam": 0.05}


def loss_fn(emb, slots, coeff):
    return (emb(slots) * coeff).sum()


def trained_store(tmp_path, opt_name, compiled, steps=6):
    vectors = table(len(VOCAB), 3)
    store = build(tmp_path, VOCAB, vectors, name=f"{opt_name}-{compiled}", unknown="random", seed=1)
    unknown = store.unknown
    store.close()
    store = EmbeddingStore.open(tmp_path / f"{opt_name}-{compiled}", readonly=False)
    emb = WordEmbeddings(store, trainable=True, max_rows=6)
    opt = OPTIMIZERS[opt_name][0](emb.parameters())
    step = None
    for t in range(1, steps + 1):
        slots = emb.prepare(BATCHES[(t - 1) % len(BATCHES)])
        coeff = coefficients(t)
        if compiled:
            step = step or optim.compile_step(loss_fn, emb, opt, slots, coeff)
            step(slots, coeff)
        else:
            opt.zero_grad()
            loss_fn(emb, slots, coeff).backward()
            opt.step()
    emb.flush()
    return store, vectors, unknown


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_sparse_training_matches_dense_reference(tmp_path, opt_name):
    store, vectors, unknown = trained_store(tmp_path, opt_name, compiled=False)
    W, state = dense_reference(opt_name, vectors, unknown, 6, LR[opt_name], **OPTIMIZERS[opt_name][1])
    np.testing.assert_allclose(store.lookup(VOCAB), W[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.unknown, W[-1], rtol=1e-5, atol=1e-6)
    untouched = [i for i, w in enumerate(VOCAB) if not any(w in b for b in BATCHES)]
    np.testing.assert_array_equal(store.lookup([VOCAB[i] for i in untouched]), vectors[untouched])
    keys = [w.encode() for w in VOCAB] + [None]
    for name in store.state_names:  # the optimiser's per-row state lives in the store
        rows = store.read_state(name, keys, np.zeros((len(keys), 3), np.float32))
        np.testing.assert_allclose(rows, state[name], rtol=1e-5, atol=1e-6)
    expected = {"sgd": set(), "momentum": {"velocity"}, "adagrad": {"sum_sq"}, "adam": {"m", "v"}}[opt_name]
    assert set(store.state_names) == expected


def test_compiled_sparse_training_matches_eager(tmp_path):
    eager, _, _ = trained_store(tmp_path, "adam", compiled=False)
    compiled, _, _ = trained_store(tmp_path, "adam", compiled=True)
    np.testing.assert_allclose(compiled.lookup(VOCAB), eager.lookup(VOCAB), rtol=1e-5, atol=1e-6)
    keys = [w.encode() for w in VOCAB]
    for name in ("m", "v"):
        np.testing.assert_allclose(compiled.read_state(name, keys, np.zeros((12, 3), np.float32)),
                                   eager.read_state(name, keys, np.zeros((12, 3), np.float32)), rtol=1e-5, atol=1e-7)


def test_training_state_survives_reopening_and_batches_are_bounded(tmp_path):
    store, _, _ = trained_store(tmp_path, "adagrad", compiled=False, steps=2)
    path = store.path
    store.close()
    again = EmbeddingStore.open(path)
    assert again.state_names == ("sum_sq",) and again.meta["count"] == len(VOCAB)
    again.close()
    emb = WordEmbeddings(path, trainable=True, max_rows=2)  # a path opens the store read-write
    with pytest.raises(EmbeddingStoreError, match="3 distinct words"):
        emb.prepare(["w0", "w1", "w2"])
    with pytest.raises(EmbeddingStoreError, match="only a trainable"):
        WordEmbeddings(emb.store)(np.array([0, 1]))


# -- hostile stores and malformed files -------------------------------------------------------------

def forge(tmp_path, meta=None, vectors=None, unknown=b"\0" * 16, name="forged", dbs=("meta", "vectors", "state")):
    path = tmp_path / name
    env = lmdb.open(str(path), max_dbs=4, map_size=1 << 22)
    handles = {n: env.open_db(n.encode()) for n in dbs}
    with env.begin(write=True) as txn:
        if "meta" in handles and meta is not None:
            txn.put(b"spago", meta if isinstance(meta, bytes) else json.dumps(meta).encode(), db=handles["meta"])
        if "meta" in handles and unknown is not None:
            txn.put(b"unknown", unknown, db=handles["meta"])
        for k, v in (vectors or {}).items():
            txn.put(k, v, db=handles["vectors"])
    env.close()
    return path


GOOD = {"format": "spago-word-embeddings", "version": 1, "dim": 4, "count": 1, "lowercase": True,
        "normalize": False, "state": []}


@pytest.mark.parametrize("meta, vectors, unknown, dbs, message", [
    (None, {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "no metadata"),
    (GOOD, {b"a": b"\0" * 16}, b"\0" * 16, ("vectors",), "missing sub-database"),
    (b"{not json", {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "not valid JSON"),
    (dict(GOOD, version=7), {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "version 7"),
    (dict(GOOD, format="other"), {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "not a spago"),
    (dict(GOOD, dim=10 ** 9), {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "out of range"),
    (dict(GOOD, dim="4"), {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "'dim' should be int"),
    ({k: v for k, v in GOOD.items() if k != "count"}, {b"a": b"\0" * 16}, b"\0" * 16,
     ("meta", "vectors", "state"), "'count' should be int"),
    (dict(GOOD, count=5), {b"a": b"\0" * 16}, b"\0" * 16, ("meta", "vectors", "state"), "says 5 words"),
    (GOOD, {b"a": b"\0" * 16}, b"\0" * 3, ("meta", "vectors", "state"), "unknown vector is 3 bytes"),
    (GOOD, {b"a": b"\0" * 16}, np.full(4, np.nan, "<f4").tobytes(), ("meta", "vectors", "state"), "NaN"),
])
def test_hostile_stores_give_spago_errors(tmp_path, meta, vectors, unknown, dbs, message):
    path = forge(tmp_path, meta, vectors, unknown, dbs=dbs)
    with pytest.raises(EmbeddingStoreError, match=message):
        EmbeddingStore.open(path)


def test_hostile_rows_give_spago_errors(tmp_path):
    nan = np.array([1, np.nan, 0, 0], "<f4").tobytes()
    path = forge(tmp_path, dict(GOOD, count=3), {b"short": b"\0" * 15, b"nan": nan, b"ok": b"\0" * 16})
    store = EmbeddingStore.open(path)
    np.testing.assert_array_equal(store.lookup(["ok", "missing"]), np.zeros((2, 4)))
    with pytest.raises(EmbeddingStoreError, match=r"'short' is 15 bytes.*16 bytes"):
        store.lookup(["ok", "short"])
    with pytest.raises(EmbeddingStoreError, match="'nan' holds NaN"):
        store.lookup(["nan"])
    with pytest.raises(EmbeddingStoreError, match="'nan' holds NaN"):
        store.get("nan")


def test_not_a_store_at_all(tmp_path):
    with pytest.raises(EmbeddingStoreError, match="no word-embedding store"):
        EmbeddingStore.open(tmp_path / "absent")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "data.mdb").write_bytes(os.urandom(8192))
    with pytest.raises(EmbeddingStoreError, match="not a readable LMDB"):
        EmbeddingStore.open(tmp_path / "junk")


@pytest.mark.parametrize("text, message", [
    ("a 1 2\nb 1\n", r"line 2: expected a word and 2 numbers, got 1"),
    ("a 1 2\nb 1 x\n", r"line 2: 'x' is not a number"),
    ("a 1 2\nb 1 nan\n", r"line 2: the vector holds NaN"),
    ("a 1 2\nb 1 inf\n", r"line 2: the vector holds NaN or infinity"),
    ("a 1 2\n\nb 1 2\n", r"line 2: empty line"),
    ("3 2\na 1 2\nb 1 2\n", r"announces 3 vectors, the file holds 2"),
    ("2 2\na 1 2\nb 1 2 3\n", r"line 3: expected a word and 2 numbers, got 3"),
    ("1 999999999\na 1\n", r"line 1: the header's dimension 999999999 is out of range"),
    ("", r"no vectors"),
])
def test_malformed_text_files_name_the_line(tmp_path, text, message):
    src = tmp_path / "bad.txt"
    src.write_text(text)
    with pytest.raises(EmbeddingStoreError, match=message):
        import_text(src, tmp_path / "db", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]  # no store, no temporary directory


def test_overlong_lines_are_refused_unread(tmp_path):
    from spago.nlp.embeddings.importers import MAX_LINE

    src = tmp_path / "long.txt"
    src.write_bytes(b"a 1\n" + b"x" * (MAX_LINE + 10))
    with pytest.raises(EmbeddingStoreError, match=f"line 2: longer than {MAX_LINE} bytes"):
        import_text(src, tmp_path / "db", progress=False)


def test_text_that_is_not_utf8_names_the_line(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(b"a 1\n\xff\xfe 2\n")
    with pytest.raises(EmbeddingStoreError, match="line 2: not utf-8 text"):
        import_text(src, tmp_path / "db", progress=False)
    with pytest.raises(EmbeddingStoreError, match="line 1: expected a 'count dim' header"):
        import_text(src, tmp_path / "db", header=True, progress=False)


def test_malformed_binary_files_give_spago_errors(tmp_path):
    vectors = table(3)
    good = write_binary(tmp_path / "g.bin", WORDS[:3], vectors).read_bytes()
    cases = {
        b"not a header\n" + good: "expected a word2vec binary header",
        good[:-10]: "entry 3 .*ends inside its vector",
        b"2 4\n" + good[4:4 + 4 + 16 + 1] + b"\n" * 12: "announces 2 vectors, the file ends after 1",
        b"99999999 4\n" + good[4:]: "more than the .*-byte file can hold",
        b"3 0\n" + good[4:]: "dimension 0 is out of range",
        good + b"extra 1234567890123456": "data after the 3 vectors",
        b"1 4\n\xff\xfe " + vectors[0].tobytes(): "entry 1: the word is not UTF-8",
        b"1 4\nnan " + np.full(4, np.nan, "<f4").tobytes(): "entry 1: the vector holds NaN",
    }
    for k, (data, message) in enumerate(cases.items()):
        src = tmp_path / f"b{k}.bin"
        src.write_bytes(data)
        with pytest.raises(EmbeddingStoreError, match=message):
            import_word2vec_binary(src, tmp_path / "db", progress=False)
        assert not (tmp_path / "db").exists()
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(".bin")) == []
    replaced = tmp_path / "r.bin"
    replaced.write_bytes(b"1 4\n\xff\xfe " + vectors[0].tobytes())
    assert list(import_word2vec_binary(replaced, tmp_path / "ok", progress=False, unicode_errors="replace")
                .words()) == ["\ufffd\ufffd"]


# -- atomic creation -----------------------------------------------------------------------------

def test_creation_is_atomic(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with EmbeddingStore.create(tmp_path / "s", 2) as w:
            w.add("a", [1, 2])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    build(tmp_path, ["a"], np.ones((1, 2), np.float32), name="s")
    with pytest.raises(EmbeddingStoreError, match="exists"):
        EmbeddingStore.create(tmp_path / "s", 2)
    # a failed overwrite leaves the old store intact
    src = write_text(tmp_path / "v.txt", ["b", "c"], np.ones((2, 2), np.float32))
    with open(src, "a") as f:
        f.write("d 1\n")
    with pytest.raises(EmbeddingStoreError, match="line 3"):
        import_text(src, tmp_path / "s", overwrite=True, progress=False)
    assert list(EmbeddingStore.open(tmp_path / "s").words()) == ["a"]
    assert sorted(os.listdir(tmp_path)) == ["s", "v.txt"]
    # a successful overwrite replaces it
    with EmbeddingStore.create(tmp_path / "s", 2, overwrite=True) as w:
        w.add("z", [3, 4])
    assert list(EmbeddingStore.open(tmp_path / "s").words()) == ["z"]
    assert sorted(os.listdir(tmp_path)) == ["s", "v.txt"]


def test_writer_checks_its_input(tmp_path):
    with pytest.raises(EmbeddingStoreError, match="dimension"):
        EmbeddingStore.create(tmp_path / "s", 0)
    with EmbeddingStore.create(tmp_path / "s", 2) as w:
        with pytest.raises(EmbeddingStoreError, match="1 to 511 UTF-8 bytes"):
            w.add("", [1, 2])
        with pytest.raises(EmbeddingStoreError, match="1 to 511 UTF-8 bytes"):
            w.add("x" * 600, [1, 2])
        with pytest.raises(EmbeddingStoreError, match="shape"):
            w.add_many(["a", "b"], np.ones((2, 3)))
        w.add("ok", [1, 2])
    assert len(EmbeddingStore.open(tmp_path / "s")) == 1


def test_large_tables_grow_the_map(tmp_path):
    """More data than the writer's first 64 MiB map: the map grows instead of failing."""
    words = [f"w{i}" for i in range(20000)]
    vectors = np.random.default_rng(0).normal(size=(20000, 1000)).astype(np.float32)  # 80 MB
    with EmbeddingStore.create(tmp_path / "big", 1000) as w:
        for start in range(0, 20000, 5000):
            w.add_many(words[start:start + 5000], vectors[start:start + 5000])
    store = EmbeddingStore.open(tmp_path / "big")
    np.testing.assert_array_equal(store.lookup(["w0", "w19999"]), vectors[[0, 19999]])
    assert len(store) == 20000 and struct.calcsize("<f") == 4


# -- the guide -----------------------------------------------------------------------------------

def test_every_snippet_of_the_embeddings_guide_runs(tmp_path, monkeypatch):
    import re

    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "embeddings.md")
    with open(doc, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)  # the guide writes its files in the working directory
    namespace: dict = {"__name__": "embeddings_guide"}
    for k, source in enumerate(blocks):
        try:
            exec(compile(source, f"docs/embeddings.md block {k}", "exec"), namespace)
        except Exception as exc:  # name the block, so a broken snippet is easy to find
            pytest.fail(f"docs/embeddings.md python block {k} failed: {type(exc).__name__}: {exc}\n{source}")
