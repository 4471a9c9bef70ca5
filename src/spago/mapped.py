"""Arrays over a private mapping of a weights file, and handing their pages back once they are read.

A checkpoint's tensors are mapped copy-on-write (``mmap`` with ``ACCESS_COPY``) instead of read into fresh
arrays: a model's parameters can *be* those arrays, so loading holds no second copy, pages come in only
when read, and writing a parameter (training) copies just the pages written, never the file.

Compiling reads the weights once (to pack them for the GEMM, to hash them for the disk cache) and then
runs on its own packed copies, so it calls `release_pages` on what it has read: the clean pages of the
mapping leave the process (``MADV_PAGEOUT``); reading them again (eager use, a later compilation) maps
them back from the file. Pages written in place are not lost: the kernel keeps (or swaps) private dirty
pages. The file must not be rewritten in place while mapped — replace it (write and rename, as
`spago.files.atomic_write` does) instead; a truncated mapped file faults the process.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21 if os.uname().sysname == "Linux" else None)  # Linux >= 5.4
# The page cache holds a file in folios of up to 2 MiB, aligned in the file, and pages one out only when
# the whole folio is asked for: ranges are widened to these bounds (neighbours' pages come back on use).
FOLIO = 2 << 20


def map_file(path: str | os.PathLike) -> mmap.mmap:
    """A private, copy-on-write mapping of the whole (regular, non-empty) file."""
    from .files import open_regular_file

    with open_regular_file(path, "weights file") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)


def mapping_of(array: np.ndarray) -> tuple[mmap.mmap, int] | None:
    """The mapping ``array``'s memory lies in and the byte offset of its first element, or None."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, mmap.mmap) or base.closed:
        return None
    start = np.frombuffer(base, np.uint8, count=1).ctypes.data if len(base) else 0
    offset = array.__array_interface__["data"][0] - start
    return (base, offset) if 0 <= offset <= len(base) else None


def release_pages(array: np.ndarray | None) -> bool:
    """Give the resident pages of a mapped ``array`` back to the system (its values do not change; see
    the module doc). Whether it was mapped and released; arrays in ordinary memory are left alone."""
    if array is None or MADV_PAGEOUT is None or not isinstance(array, np.ndarray) or array.nbytes == 0:
        return False
    found = mapping_of(array)
    if found is None:
        return False
    mm, offset = found
    low = offset + sum(s * (n - 1) for s, n in zip(array.strides, array.shape) if s < 0)
    high = offset + array.itemsize + sum(s * (n - 1) for s, n in zip(array.strides, array.shape) if s > 0)
    start = max(0, low) // FOLIO * FOLIO
    end = min(len(mm), -(-high // FOLIO) * FOLIO)
    try:
        mm.madvise(MADV_PAGEOUT, start, end - start)
    except (OSError, ValueError, AttributeError):  # an older kernel, or no madvise: the pages stay
        return False
    return True


def byte_chunks(array: np.ndarray, chunk: int = 1 << 22):
    """The bytes of a C-contiguous ``array`` as successive views of at most ``chunk`` bytes (for hashing);
    a mapped array's pages go back after each, so reading it all never has more than a chunk resident."""
    flat = array.reshape(-1).view(np.uint8) if array.size else np.zeros(0, np.uint8)
    mapped = mapping_of(array) is not None
    for start in range(0, flat.size, chunk):
        piece = flat[start:start + chunk]
        yield piece
        if mapped:
            release_pages(piece)
