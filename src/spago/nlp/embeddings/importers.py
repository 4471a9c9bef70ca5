"""Import word2vec / GloVe files into an `EmbeddingStore`.

Text format (word2vec ``-binary 0`` and GloVe): one word per line followed by its numbers, separated by
spaces; word2vec puts a ``count dim`` header first, GloVe has none (detected, or set with ``header=``).
A word may itself contain spaces (GloVe 840B has some): the last ``dim`` fields are the numbers, the rest
is the word. Binary format (word2vec ``-binary 1``): a ``count dim`` header line, then per word its bytes,
a space, and ``dim`` little-endian float32.

Both stream the file (no table in memory), show a tqdm bar over its bytes, and name the line (or entry)
of the first malformed record. The store is built atomically: a failed import leaves nothing behind.
"""
from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np

from .store import MAX_DIM, MAX_KEY_BYTES, EmbeddingStore, EmbeddingStoreError, VECTOR_DTYPE

CHUNK = 4096  # words per write transaction
MAX_LINE = MAX_KEY_BYTES + 1 + MAX_DIM * 32  # bytes; lines are read no further than this


def _progress(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False)


def _header(line: str) -> tuple[int, int] | None:
    """``(count, dim)`` if ``line`` is a word2vec header (exactly two non-negative integers)."""
    fields = line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def _check_header(count: int, dim: int, where: str) -> None:
    if not 1 <= dim <= MAX_DIM:
        raise EmbeddingStoreError(f"{where}: the header's dimension {dim} is out of range [1, {MAX_DIM}]")
    if count < 0:
        raise EmbeddingStoreError(f"{where}: the header's count {count} is negative")


def import_text(src: str | os.PathLike, dst: str | os.PathLike, *, header: bool | None = None,
                encoding: str = "utf-8", progress: bool = True, **options: Any) -> EmbeddingStore:
    """Build a store at ``dst`` from a word2vec or GloVe text file; returns it opened read-only.

    ``header``: None detects a ``count dim`` first line, True requires one, False reads none.
    ``options`` go to `EmbeddingStore.create` (``lowercase``, ``normalize``, ``unknown``, ``seed``,
    ``overwrite``, ``duplicates``)."""
    src = os.fspath(src)
    if not os.path.isfile(src):
        raise EmbeddingStoreError(f"no embeddings file at {src}")
    writer = None
    with open(src, "rb") as f, _progress(os.path.getsize(src), os.path.basename(src), progress) as bar:
        count = dim = None
        words: list = []
        rows: list = []
        wheres: list = []
        lineno = 0
        try:
            for lineno, raw in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
                bar.update(len(raw))
                if len(raw) > MAX_LINE:
                    raise EmbeddingStoreError(f"{src} line {lineno}: longer than {MAX_LINE} bytes (a word and "
                                              f"at most {MAX_DIM} numbers; not an embeddings text file?)")
                try:
                    line = raw.decode(encoding).rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise EmbeddingStoreError(f"{src} line {lineno}: not {encoding} text ({exc.reason})") from None
                if lineno == 1 and header is not False:
                    found = _header(line)
                    if found is None and header:
                        raise EmbeddingStoreError(f"{src} line 1: expected a 'count dim' header, got {line[:60]!r}")
                    if found is not None:
                        count, dim = found
                        _check_header(count, dim, f"{src} line 1")
                        continue
                if not line.strip():
                    raise EmbeddingStoreError(f"{src} line {lineno}: empty line")
                if dim is None:  # GloVe: the first line sets the dimension
                    dim = len(line.split()) - 1
                    if dim < 1:
                        raise EmbeddingStoreError(f"{src} line {lineno}: expected a word and numbers, "
                                                  f"got {line[:60]!r}")
                    _check_header(0, dim, f"{src} line {lineno}")
                if writer is None:
                    writer = EmbeddingStore.create(dst, dim, **options)
                fields = line.rstrip(" ").rsplit(None, dim)
                word = fields[0].strip(" ")
                # a word may hold spaces, but not end in a number: that is a line with too many numbers
                if len(fields) != dim + 1 or not word or (" " in word and _is_number(word.split()[-1])):
                    raise EmbeddingStoreError(f"{src} line {lineno}: expected a word and {dim} numbers, "
                                              f"got {_trailing_numbers(line)} numbers")
                try:
                    values = np.array(fields[1:], dtype=np.float64)
                except ValueError:
                    bad = next(x for x in fields[1:] if not _is_number(x))
                    raise EmbeddingStoreError(f"{src} line {lineno}: {bad[:40]!r} is not a number") from None
                words.append(word)
                rows.append(values)
                wheres.append(f"{src} line {lineno}")
                if len(words) >= CHUNK:
                    writer.add_many(words, rows, wheres)
                    words, rows, wheres = [], [], []
            if dim is None:
                raise EmbeddingStoreError(f"{src}: no vectors in the file")
            if writer is None:
                writer = EmbeddingStore.create(dst, dim, **options)
            if words:
                writer.add_many(words, rows, wheres)
            vectors = lineno - (1 if count is not None else 0)
            if count is not None and count != vectors:
                raise EmbeddingStoreError(f"{src}: the header announces {count} vectors, the file holds {vectors}")
            path = writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    return EmbeddingStore.open(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _trailing_numbers(line: str) -> int:
    """How many fields at the end of ``line`` are numbers (for error messages)."""
    fields = line.split()
    n = 0
    while n < len(fields) - 1 and _is_number(fields[-1 - n]):
        n += 1
    return n


def _read_word(f: BinaryIO, entry: int, src: str) -> bytes | None:
    """The next word of a word2vec binary file (None at a clean end of file)."""
    chars = bytearray()
    while True:
        c = f.read(1)
        if not c:
            if chars.strip():
                raise EmbeddingStoreError(f"{src} entry {entry}: the file ends inside a word")
            return None
        if c == b" ":
            if chars:
                return bytes(chars)
            continue
        if c == b"\n" and not chars:  # the newline some writers put after each vector
            continue
        chars += c
        if len(chars) > MAX_KEY_BYTES:
            raise EmbeddingStoreError(f"{src} entry {entry}: word longer than {MAX_KEY_BYTES} bytes (or not a "
                                      "word2vec binary file)")


def import_word2vec_binary(src: str | os.PathLike, dst: str | os.PathLike, *, unicode_errors: str = "strict",
                           progress: bool = True, **options: Any) -> EmbeddingStore:
    """Build a store at ``dst`` from a word2vec binary file; returns it opened read-only.

    ``unicode_errors`` is how words that are not valid UTF-8 are decoded ("strict" refuses them,
    "replace"/"ignore" as in ``bytes.decode``). ``options`` as in `import_text`."""
    src = os.fspath(src)
    if not os.path.isfile(src):
        raise EmbeddingStoreError(f"no embeddings file at {src}")
    size = os.path.getsize(src)
    with open(src, "rb") as f, _progress(size, os.path.basename(src), progress) as bar:
        first = f.readline(256)
        try:
            found = _header(first.decode("ascii"))
        except UnicodeDecodeError:
            found = None
        if found is None:
            raise EmbeddingStoreError(f"{src}: expected a word2vec binary header 'count dim', got {first[:60]!r}")
        count, dim = found
        _check_header(count, dim, f"{src} header")
        nbytes = dim * VECTOR_DTYPE.itemsize
        if count * (nbytes + 2) > size:
            raise EmbeddingStoreError(f"{src}: the header announces {count} x {dim} vectors, more than the "
                                      f"{size}-byte file can hold")
        bar.update(len(first))
        with EmbeddingStore.create(dst, dim, **options) as writer:
            words, rows, wheres = [], [], []
            for entry in range(1, count + 1):
                start = f.tell()
                key = _read_word(f, entry, src)
                if key is None:
                    raise EmbeddingStoreError(f"{src}: the header announces {count} vectors, the file ends "
                                              f"after {entry - 1}")
                try:
                    word = key.decode("utf-8", unicode_errors)
                except UnicodeDecodeError as exc:
                    raise EmbeddingStoreError(f"{src} entry {entry}: the word is not UTF-8 ({exc.reason}); pass "
                                              "unicode_errors='replace' to accept it") from None
                data = f.read(nbytes)
                if len(data) != nbytes:
                    raise EmbeddingStoreError(f"{src} entry {entry} ({word!r}): the file ends inside its vector "
                                              f"({len(data)} of {nbytes} bytes)")
                words.append(word)
                rows.append(np.frombuffer(data, VECTOR_DTYPE).astype(np.float64))
                wheres.append(f"{src} entry {entry}")
                bar.update(f.tell() - start)
                if len(words) >= CHUNK:
                    writer.add_many(words, rows, wheres)
                    words, rows, wheres = [], [], []
            if words:
                writer.add_many(words, rows, wheres)
            if f.read(16).strip():  # an optional trailing newline is fine; more data is not
                raise EmbeddingStoreError(f"{src}: data after the {count} vectors the header announces")
    return EmbeddingStore.open(writer.path)
