"""`EmbeddingStore`: word vectors in an LMDB environment, memory-mapped.

Why LMDB: a 1M x 300 float32 table is 1.2 GB. Loaded into a NumPy array it costs that much RAM in every
process; memory-mapped, a process pays only for the pages of the rows it reads, the OS shares them between
processes, and opening is instant. Keys are words (UTF-8 bytes), values raw little-endian float32 vectors.

Layout of the environment (a directory holding ``data.mdb``):

- sub-database ``meta``: key ``spago`` -> JSON ``{"format", "version", "dim", "count", "lowercase",
  "normalize", "state"}``; key ``unknown`` -> the unknown word's vector;
- sub-database ``vectors``: word -> vector;
- sub-database ``state``: ``name \\x00 word`` -> a row of optimiser state (``name \\x01`` for the unknown
  word's row), written by sparse training (`WordEmbeddings`).

A store is written once, atomically (`EmbeddingStore.create` builds it in a temporary directory next to the
target and renames it into place), and opened read-only for serving. Nothing read from the file is trusted:
the metadata's types and ranges, every vector's byte length and finiteness are checked, and a violation is
an `EmbeddingStoreError` naming the word or field.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from typing import Any, Iterable, Sequence

import numpy as np

from ...errors import SpagoError

FORMAT = "spago-word-embeddings"
VERSION = 1
MAX_DIM = 65536  # larger "dimensions" in a header are refused rather than allocated
MAX_KEY_BYTES = 511  # LMDB's default key size limit
VECTOR_DTYPE = np.dtype("<f4")
META_KEY, UNKNOWN_KEY = b"spago", b"unknown"
UNKNOWN_POLICIES = ("zero", "random")


class EmbeddingStoreError(SpagoError, ValueError):
    """An embedding store or an embeddings file is missing, malformed, or used in a way it does not allow."""


def _lmdb():
    try:
        import lmdb
    except ImportError as exc:  # pragma: no cover - lmdb is a core dependency
        raise EmbeddingStoreError("word-embedding stores need the package lmdb (pip install lmdb)") from exc
    return lmdb


def word_key(word: str) -> bytes:
    """The LMDB key of ``word``: its UTF-8 bytes (empty words and words over 511 bytes are refused)."""
    if not isinstance(word, str):
        raise EmbeddingStoreError(f"words are str, got {type(word).__name__}")
    key = word.encode("utf-8", "surrogatepass")
    if not key or len(key) > MAX_KEY_BYTES:
        raise EmbeddingStoreError(f"a word must be 1 to {MAX_KEY_BYTES} UTF-8 bytes, got {len(key)} ({word[:40]!r})")
    return key


def check_vector(values: Any, dim: int, where: str) -> np.ndarray:
    """``values`` as a finite float32 vector of length ``dim`` (an error says where it came from)."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (dim,):
        raise EmbeddingStoreError(f"{where}: expected a vector of {dim} numbers, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise EmbeddingStoreError(f"{where}: the vector holds NaN or infinity")
    return vector.astype(VECTOR_DTYPE)


def unknown_vector(unknown: Any, dim: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """The vector for words not in the store: ``"zero"``, ``"random"`` (normal, standard deviation
    ``scale``, drawn from ``seed``) or an explicit vector of length ``dim``."""
    if isinstance(unknown, str):
        if unknown == "zero":
            return np.zeros(dim, VECTOR_DTYPE)
        if unknown == "random":
            return np.random.default_rng(seed).normal(0.0, scale, dim).astype(VECTOR_DTYPE)
        raise EmbeddingStoreError(f"unknown must be one of {UNKNOWN_POLICIES} or a vector, got {unknown!r}")
    return check_vector(unknown, dim, "the unknown vector")


def _decode_vector(buf: Any, dim: int, what: str) -> np.ndarray:
    if buf is None or len(buf) != dim * VECTOR_DTYPE.itemsize:
        size = "nothing" if buf is None else f"{len(buf)} bytes"
        raise EmbeddingStoreError(f"the store's value for {what} is {size}; a {dim}-dimensional float32 vector "
                                  f"is {dim * VECTOR_DTYPE.itemsize} bytes (a corrupt or foreign store?)")
    return np.frombuffer(buf, VECTOR_DTYPE)


def _check_meta(meta: Any, path: str) -> dict:
    """Validate the metadata read from a store: every field present, of its type and in range."""
    if not isinstance(meta, dict):
        raise EmbeddingStoreError(f"{path}: the metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise EmbeddingStoreError(f"{path}: not a spago word-embedding store (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise EmbeddingStoreError(f"{path}: store format version {meta.get('version')!r}; this spago reads "
                                  f"version {VERSION}")
    fields = {"dim": int, "count": int, "lowercase": bool, "normalize": bool, "state": list}
    for name, kind in fields.items():
        value = meta.get(name)
        if type(value) is not kind:
            raise EmbeddingStoreError(f"{path}: metadata field {name!r} should be {kind.__name__}, got {value!r}")
    if not 1 <= meta["dim"] <= MAX_DIM:
        raise EmbeddingStoreError(f"{path}: dimension {meta['dim']} is out of range [1, {MAX_DIM}]")
    if meta["count"] < 0:
        raise EmbeddingStoreError(f"{path}: negative word count {meta['count']}")
    if not all(isinstance(s, str) and s.isidentifier() for s in meta["state"]):
        raise EmbeddingStoreError(f"{path}: optimiser state names must be identifiers, got {meta['state']!r}")
    return meta


class EmbeddingStore:
    """A word -> float32 vector table on LMDB. Open one with `EmbeddingStore.open`, build one with
    `EmbeddingStore.create` (or `import_text` / `import_word2vec_binary`).

    ``store.lookup(words)`` returns an ``(n, dim)`` array: each word's vector, else (when ``lowercase``) its
    lowercased form's, else the unknown vector. Reads never copy the table; each returned row is a copy of
    its mapped bytes."""

    def __init__(self, env: Any, path: str, readonly: bool):
        self._env, self.path, self.readonly = env, path, readonly
        self.close = weakref.finalize(self, _release, env)  # calling it closes this handle (once)
        try:
            self._load(env, path, readonly)
        except BaseException:
            self.close()
            raise

    def _load(self, env: Any, path: str, readonly: bool) -> None:
        """Open the sub-databases and read and check the metadata and the unknown vector."""
        lmdb = _lmdb()
        try:
            self._meta_db = env.open_db(b"meta", create=False)
            self._vectors_db = env.open_db(b"vectors", create=False)
            self._state_db = env.open_db(b"state", create=False)
        except lmdb.NotFoundError as exc:
            raise EmbeddingStoreError(f"{path}: not a spago word-embedding store (missing sub-database: {exc})") \
                from exc
        except lmdb.Error as exc:
            raise EmbeddingStoreError(f"{path}: cannot read the store's sub-databases: {exc}") from exc
        with env.begin(buffers=True) as txn:
            raw = txn.get(META_KEY, db=self._meta_db)
            if raw is None:
                raise EmbeddingStoreError(f"{path}: not a spago word-embedding store (no metadata)")
            if len(raw) > 1 << 16:
                raise EmbeddingStoreError(f"{path}: the metadata is {len(raw)} bytes; at most 65536 expected")
            try:
                meta = json.loads(bytes(raw).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise EmbeddingStoreError(f"{path}: the metadata is not valid JSON: {exc}") from exc
            self.meta = _check_meta(meta, path)
            entries = txn.stat(self._vectors_db)["entries"]
            if entries != self.meta["count"]:
                raise EmbeddingStoreError(f"{path}: the metadata says {self.meta['count']} words but the store "
                                          f"holds {entries}")
            self._unknown = _decode_vector(txn.get(UNKNOWN_KEY, db=self._meta_db), self.dim,
                                           "the unknown vector").copy()
        if not np.isfinite(self._unknown).all():
            raise EmbeddingStoreError(f"{path}: the unknown vector holds NaN or infinity")

    # -- opening and creating ----------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = True) -> "EmbeddingStore":
        """Open the store at ``path``. Read-only (the default, for serving) maps the file without a lock
        file, so it works on read-only media; do not write the store from another process meanwhile."""
        path = os.fspath(path)
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "data.mdb")):
            raise EmbeddingStoreError(f"no word-embedding store at {path} (expected a directory with data.mdb)")
        env = _shared_env(path, readonly)
        return cls(env, path, readonly)

    @staticmethod
    def create(path: str | os.PathLike, dim: int, *, lowercase: bool = True, normalize: bool = False,
               unknown: Any = "zero", seed: int = 0, overwrite: bool = False,
               duplicates: str = "error") -> "StoreWriter":
        """A `StoreWriter` building a new store at ``path``; use it as a context manager. The store appears
        at ``path`` only when the ``with`` block ends without an exception (built in a temporary directory,
        then renamed); otherwise nothing is left behind.

        ``lowercase``: lookups fall back to the lowercased word. ``normalize``: vectors are scaled to unit
        L2 norm as they are added. ``unknown``: ``"zero"``, ``"random"`` (seeded by ``seed``, scaled like the
        table's values) or a vector. ``duplicates``: a word added twice is an ``"error"``, or keeps the
        ``"first"`` or ``"last"`` vector."""
        return StoreWriter(path, dim, lowercase=lowercase, normalize=normalize, unknown=unknown, seed=seed,
                           overwrite=overwrite, duplicates=duplicates)

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.meta["dim"]

    @property
    def lowercase(self) -> bool:
        return self.meta["lowercase"]

    @property
    def normalize(self) -> bool:
        return self.meta["normalize"]

    @property
    def unknown(self) -> np.ndarray:
        """The vector of words not in the store (a copy)."""
        return self._unknown.copy()

    def __len__(self) -> int:
        return self.meta["count"]

    def __contains__(self, word: str) -> bool:
        with self._env.begin(buffers=True) as txn:
            return txn.get(word_key(word), db=self._vectors_db) is not None

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "read-write"
        return f"EmbeddingStore({self.path!r}: {len(self)} words x {self.dim}, {mode})"

    def words(self) -> Iterable[str]:
        """Every word, in byte order."""
        with self._env.begin() as txn:
            for key in txn.cursor(db=self._vectors_db).iternext(values=False):
                yield bytes(key).decode("utf-8", "surrogatepass")

    # -- reading -------------------------------------------------------------------------------
    def get(self, word: str) -> np.ndarray | None:
        """The stored vector of exactly ``word`` (no fallback), or None."""
        key = word_key(word)
        with self._env.begin(buffers=True) as txn:
            buf = txn.get(key, db=self._vectors_db)
            return None if buf is None else self._vector(buf, key)

    def _vector(self, buf: Any, key: bytes) -> np.ndarray:
        vector = _decode_vector(buf, self.dim, f"word {key.decode('utf-8', 'replace')!r}").copy()
        if not np.isfinite(vector).all():
            raise EmbeddingStoreError(f"{self.path}: the vector of {key.decode('utf-8', 'replace')!r} holds NaN "
                                      "or infinity")
        return vector

    def _read(self, words: Sequence[str], lowercase: bool | None) -> tuple[list, list]:
        """Each word's resolved key (None: unknown) and stored bytes (None: unknown), in one transaction."""
        lmdb = _lmdb()
        lowercase = self.lowercase if lowercase is None else lowercase
        try:
            keys = [w.encode("utf-8", "surrogatepass") for w in words]
        except AttributeError:
            keys = [word_key(w) for w in words]  # raises, naming the non-str
        with self._env.begin() as txn:
            get, db = txn.get, self._vectors_db
            try:
                values = [get(k, db=db) for k in keys]
            except lmdb.BadValsizeError:
                keys = [word_key(w) for w in words]  # raises, naming the empty or over-long word
                raise
            missing = [i for i, value in enumerate(values) if value is None] if None in values else []
            for i in missing:
                lower = words[i].lower()
                found = get(word_key(lower), db=db) if lowercase and lower != words[i] else None
                keys[i], values[i] = (None if found is None else word_key(lower)), found
        return keys, values

    def _array(self, keys: Sequence, values: list, unknown: np.ndarray | None) -> np.ndarray:
        """Stored bytes (None -> ``unknown``) as a checked (n, dim) float32 array."""
        nbytes = self.dim * VECTOR_DTYPE.itemsize
        fill = (self._unknown if unknown is None else np.asarray(unknown, VECTOR_DTYPE)).tobytes()
        values = [fill if v is None else v for v in values]
        if set(map(len, values)) - {nbytes}:
            bad = next(i for i, v in enumerate(values) if len(v) != nbytes)
            _decode_vector(values[bad], self.dim, f"word {bytes(keys[bad]).decode('utf-8', 'replace')!r}")
        out = np.frombuffer(bytearray().join(values), VECTOR_DTYPE).reshape(len(values), self.dim)  # writable
        if not np.isfinite(out.sum()) and not np.isfinite(out).all():  # the sum is a quick first test
            bad = int(np.nonzero(~np.isfinite(out).all(axis=1))[0][0])
            raise EmbeddingStoreError(f"{self.path}: the vector of {bytes(keys[bad]).decode('utf-8', 'replace')!r} "
                                      "holds NaN or infinity")
        return out

    def resolve(self, words: Sequence[str], lowercase: bool | None = None) -> list:
        """The key each word is read from: its own UTF-8 bytes, else its lowercased form's (when
        ``lowercase``, default the store's setting), else None (unknown)."""
        return self._read(words, lowercase)[0]

    def rows(self, keys: Sequence[bytes | None], unknown: np.ndarray | None = None) -> np.ndarray:
        """The vectors of resolved ``keys`` (None -> ``unknown``, default the store's) as an (n, dim) array."""
        with self._env.begin() as txn:
            values = [None if k is None else txn.get(k, default=b"", db=self._vectors_db) for k in keys]
        return self._array(keys, values, unknown)

    def lookup(self, words: Sequence[str], lowercase: bool | None = None,
               unknown: np.ndarray | None = None) -> np.ndarray:
        """An (n, dim) float32 array: each word's vector, with the lowercase and unknown fallbacks."""
        return self._array(*self._read(words, lowercase), unknown)

    # -- optimiser state (sparse training) -----------------------------------------------------
    @property
    def state_names(self) -> tuple:
        """The optimiser state kept per row (by the last sparse training)."""
        return tuple(self.meta["state"])

    def read_state(self, name: str, keys: Sequence[bytes | None], out: np.ndarray) -> np.ndarray:
        """Fill ``out[i]`` with the ``name`` state row of ``keys[i]`` (zeros where none is stored yet)."""
        prefix = _state_prefix(name)
        with self._env.begin(buffers=True) as txn:
            for i, key in enumerate(keys):
                buf = txn.get(prefix + (b"\x01" if key is None else b"\x00" + key), db=self._state_db)
                out[i] = 0.0 if buf is None else _decode_vector(buf, self.dim, f"optimiser state {name!r}")
        return out

    def write_rows(self, keys: Sequence[bytes | None], values: np.ndarray, state: dict | None = None) -> None:
        """Store new vectors (and rows of optimiser state, name -> (n, dim)) for resolved ``keys`` in one
        transaction; None is the unknown word, and a key not stored yet adds a word."""
        lmdb = _lmdb()
        if self.readonly:
            raise EmbeddingStoreError(f"{self.path} is open read-only; open it with readonly=False to train it")
        state = state or {}
        values = np.ascontiguousarray(values, VECTOR_DTYPE)
        if values.shape != (len(keys), self.dim) or not np.isfinite(values).all():
            raise EmbeddingStoreError(f"write_rows: expected finite values of shape {(len(keys), self.dim)}, "
                                      f"got {values.shape}")
        result: dict = {}

        def write(txn) -> None:
            meta = _check_meta(json.loads(bytes(txn.get(META_KEY, db=self._meta_db)).decode()), self.path)
            added = 0
            for i, key in enumerate(keys):
                if key is None:
                    txn.put(UNKNOWN_KEY, values[i].tobytes(), db=self._meta_db)
                else:
                    try:
                        added += txn.replace(key, values[i].tobytes(), db=self._vectors_db) is None
                    except lmdb.BadValsizeError:
                        raise EmbeddingStoreError(f"write_rows: a key must be 1 to {MAX_KEY_BYTES} bytes, got "
                                                  f"{len(key)}") from None
                for name, rows in state.items():
                    suffix = b"\x01" if key is None else b"\x00" + key
                    txn.put(_state_prefix(name) + suffix, np.asarray(rows[i], VECTOR_DTYPE).tobytes(),
                            db=self._state_db)
            meta.update(count=meta["count"] + added, state=sorted(set(meta["state"]) | set(state)))
            txn.put(META_KEY, json.dumps(meta).encode(), db=self._meta_db)
            result["meta"] = meta

        _write_growing(self._env, write)
        self.meta = result["meta"]
        if None in keys:
            self._unknown = values[list(keys).index(None)].copy()


_OPEN: dict = {}  # (device, inode) of data.mdb -> [environment, handles]; LMDB allows one per process
_OPEN_LOCK = threading.Lock()


def _shared_env(path: str, readonly: bool) -> Any:
    """The process's LMDB environment for the store at ``path`` (opened now, or shared with the stores
    already open on the same file); read-write when asked for, read-only (no lock file) otherwise."""
    lmdb = _lmdb()
    st = os.stat(os.path.join(path, "data.mdb"))
    with _OPEN_LOCK:
        entry = _OPEN.get((st.st_dev, st.st_ino))
        if entry is not None:
            if not readonly and entry[0].flags()["readonly"]:
                raise EmbeddingStoreError(f"{path} is already open read-only in this process; close those "
                                          "stores before opening it read-write")
            entry[1] += 1
            return entry[0]
        try:
            env = lmdb.open(path, readonly=readonly, lock=not readonly, max_dbs=4, subdir=True,
                            map_size=_map_size_for(path), readahead=False)
        except lmdb.Error as exc:
            raise EmbeddingStoreError(f"{path}: not a readable LMDB environment: {exc}") from exc
        _OPEN[(st.st_dev, st.st_ino)] = [env, 1]
        return env


def _release(env: Any) -> None:
    with _OPEN_LOCK:
        for key, entry in list(_OPEN.items()):
            if entry[0] is env:
                entry[1] -= 1
                if entry[1] == 0:
                    del _OPEN[key]
                    env.close()


def _state_prefix(name: str) -> bytes:
    if not (isinstance(name, str) and name.isidentifier()):
        raise EmbeddingStoreError(f"optimiser state names must be identifiers, got {name!r}")
    return name.encode()


def _map_size_for(path: str) -> int:
    """Room to map the existing file, and twice as much again for writes (grown on demand)."""
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    return max(2 * size, 1 << 26)


def _write_growing(env: Any, write) -> None:
    """Run ``write(txn)`` in one write transaction, doubling the map whenever it is full."""
    lmdb = _lmdb()
    while True:
        try:
            with env.begin(write=True) as txn:
                write(txn)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


class StoreWriter:
    """Adds words to a new store in a temporary directory; `close` (the end of a ``with`` block) writes
    the metadata and renames the directory to its path. `abort` (an exception in the block) deletes it."""

    def __init__(self, path: str | os.PathLike, dim: int, *, lowercase: bool = True, normalize: bool = False,
                 unknown: Any = "zero", seed: int = 0, overwrite: bool = False, duplicates: str = "error"):
        lmdb = _lmdb()
        self.path = os.path.abspath(os.fspath(path))
        if type(dim) is not int and not isinstance(dim, np.integer) or not 1 <= dim <= MAX_DIM:
            raise EmbeddingStoreError(f"the dimension must be an int in [1, {MAX_DIM}], got {dim!r}")
        if duplicates not in ("error", "first", "last"):
            raise EmbeddingStoreError(f"duplicates must be 'error', 'first' or 'last', got {duplicates!r}")
        if os.path.exists(self.path) and not overwrite:
            raise EmbeddingStoreError(f"{self.path} exists; pass overwrite=True to replace it")
        if not isinstance(unknown, str):
            unknown = check_vector(unknown, int(dim), "the unknown vector")
        elif unknown not in UNKNOWN_POLICIES:
            raise EmbeddingStoreError(f"unknown must be one of {UNKNOWN_POLICIES} or a vector, got {unknown!r}")
        self.dim, self.lowercase, self.normalize = int(dim), bool(lowercase), bool(normalize)
        self.unknown, self.seed, self.overwrite, self.duplicates = unknown, int(seed), overwrite, duplicates
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=parent)
        # words arrive in any order, which leaves LMDB's pages about 2/3 full; they are staged here and
        # copied in key order into the final file at the end, packing its pages
        self._staging = os.path.join(self.tmp, "staging")
        self._env = lmdb.open(self._staging, map_size=1 << 26, max_dbs=4, subdir=True, sync=False, metasync=False)
        self._vectors_db = self._env.open_db(b"vectors")
        self._meta_db = self._env.open_db(b"meta")
        self._env.open_db(b"state")
        self.duplicates_seen = 0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._values = 0
        self._done = False

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, word: str, vector: Any, where: str | None = None) -> None:
        """Add one word (``where`` names its origin, e.g. a line number, in errors)."""
        self.add_many([word], [vector], [where] if where is not None else None)

    def add_many(self, words: Sequence[str], vectors: Any, where: Sequence[str] | None = None) -> None:
        """Add words with their vectors (an (n, dim) array or n vectors) in one transaction."""
        if self._done:
            raise EmbeddingStoreError("this StoreWriter is closed")
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.shape != (len(words), self.dim):
            raise EmbeddingStoreError(f"add_many: expected vectors of shape {(len(words), self.dim)}, "
                                      f"got {vectors.shape}")
        origin = (lambda i: where[i]) if where is not None else (lambda i: f"word {words[i]!r}")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise EmbeddingStoreError(f"{origin(int(np.nonzero(bad)[0][0]))}: the vector holds NaN or infinity")
        self._sum += float(vectors.sum())
        self._sum_sq += float(np.square(vectors).sum())
        self._values += vectors.size
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        data = vectors.astype(VECTOR_DTYPE)
        keys = []
        for i, w in enumerate(words):
            try:
                keys.append(word_key(w))
            except EmbeddingStoreError as exc:
                raise EmbeddingStoreError(f"{origin(i)}: {exc}") from None

        def write(txn) -> None:
            duplicates = 0
            for i, key in enumerate(keys):
                value = data[i].tobytes()
                if not txn.put(key, value, db=self._vectors_db, overwrite=False):
                    duplicates += 1
                    if self.duplicates == "error":
                        raise EmbeddingStoreError(f"{origin(i)}: the word {words[i]!r} appears twice (pass "
                                                  "duplicates='first' or 'last' to keep one)")
                    if self.duplicates == "last":
                        txn.put(key, value, db=self._vectors_db)
            self.duplicates_seen += duplicates

        _write_growing(self._env, write)

    def close(self) -> str:
        """Write the metadata, flush, and move the store to its path; returns the path."""
        if self._done:
            return self.path
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        return self.path

    def _finish(self) -> None:
        mean = self._sum / self._values if self._values else 0.0
        scale = float(np.sqrt(max(self._sum_sq / self._values - mean * mean, 0.0))) if self._values else 1.0
        unknown = unknown_vector(self.unknown, self.dim, self.seed, scale or 1.0)
        if self.normalize and isinstance(self.unknown, str) and self.unknown == "random":
            unknown = unknown / max(float(np.linalg.norm(unknown)), 1e-12)
        with self._env.begin(write=True) as txn:
            count = txn.stat(self._vectors_db)["entries"]
        meta = {"format": FORMAT, "version": VERSION, "dim": self.dim, "count": count,
                "lowercase": self.lowercase, "normalize": self.normalize, "state": []}

        def write(txn) -> None:
            txn.put(META_KEY, json.dumps(meta).encode(), db=self._meta_db)
            txn.put(UNKNOWN_KEY, unknown.astype(VECTOR_DTYPE).tobytes(), db=self._meta_db)

        _write_growing(self._env, write)
        _copy_packed(self._env, self.tmp)
        self._env.close()
        self._done = True
        shutil.rmtree(self._staging)
        _move_into_place(self.tmp, self.path, self.overwrite)

    def abort(self) -> None:
        """Drop everything written: the temporary directory is deleted and ``path`` is left as it was."""
        if not self._done:
            self._done = True
            self._env.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _copy_packed(source: Any, path: str) -> None:
    """Copy every sub-database of the environment ``source`` into a new one at ``path``, in key order
    (LMDB's append mode fills each page), and flush it to disk."""
    lmdb = _lmdb()
    size = os.path.getsize(os.path.join(source.path(), "data.mdb"))
    env = lmdb.open(path, map_size=size + (1 << 26), max_dbs=4, subdir=True, sync=False, metasync=False)
    try:
        for name in (b"meta", b"vectors", b"state"):
            src_db, dst_db = source.open_db(name), env.open_db(name)

            def copy(txn) -> None:
                with source.begin(db=src_db) as src:
                    txn.cursor(db=dst_db).putmulti(src.cursor().iternext(), append=True)

            _write_growing(env, copy)
        env.sync(True)
    finally:
        env.close()


def _move_into_place(tmp: str, path: str, overwrite: bool) -> None:
    """Rename the finished directory ``tmp`` to ``path`` (replacing an old store only when ``overwrite``)."""
    old = None
    if os.path.exists(path):
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EmbeddingStoreError(f"{path} appeared while the store was built; pass overwrite=True")
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=os.path.dirname(path))
        os.rename(path, os.path.join(old, "store"))
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
