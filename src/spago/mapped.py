"""Arrays over a private mapping of a weights file, and handing their pages back once they are read.

A checkpoint's tensors are mapped copy-on-write (``mmap`` with ``ACCESS_COPY``) instead of read into fresh
arrays: a model's parameters can *be* those arrays, so loading holds no second copy, pages come in only
when read, and writing a parameter (training) copies just the pages written, never the file.

Compiling reads the weights once (to pack them for the GEMM, to hash them for the disk cache) and then
runs on its own packed copies, so it calls `release_pages` on what it has read: the pages of the mapping
that still hold the file leave the process (``MADV_DONTNEED``, the page map telling them from pages
written in place, which stay: do not compile a model while another thread writes its weights) while the
page cache keeps them, so reading them again (eager use, a later compilation) maps them back without
reading the disk. Without a page map, ``MADV_PAGEOUT`` is asked
instead (it keeps written pages itself, but evicts from the page cache and skips pages that another
process maps too). The file must not be rewritten in place while mapped — replace it (write and rename, as
`spago.files.atomic_write` does) instead; a truncated mapped file faults the process.
"""
from __future__ import annotations

import mmap
import os
import sys

import numpy as np

MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21 if sys.platform.startswith("linux") else None)  # Linux >= 5.4
FOLIO = 2 << 20  # the page cache's largest folio (x86-64, arm64 with 4 KiB pages), aligned in the file


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
    if array is None or not isinstance(array, np.ndarray) or array.nbytes == 0:
        return False
    found = mapping_of(array)
    if found is None:
        return False
    mm, offset = found
    low = offset + sum(s * (n - 1) for s, n in zip(array.strides, array.shape) if s < 0)
    high = offset + array.itemsize + sum(s * (n - 1) for s, n in zip(array.strides, array.shape) if s > 0)
    # widened to whole folios: reading a page maps its neighbours too (fault-around, large folios), and
    # page-out takes nothing less than a folio; the neighbours' clean pages come back on use
    start, end = max(0, low) // FOLIO * FOLIO, min(len(mm), -(-high // FOLIO) * FOLIO)
    try:
        runs = _clean_runs(mm, start, end)
        if runs is not None:  # unmap the file's own pages from this process; the page cache keeps them
            for first, last in runs:
                mm.madvise(mmap.MADV_DONTNEED, first, last - first)
            return True
        if MADV_PAGEOUT is None:
            return False
        # no page map to tell written pages apart: ask for page-out, which keeps them (and skips pages
        # another process also maps)
        mm.madvise(MADV_PAGEOUT, start, end - start)
    except (OSError, ValueError, AttributeError):  # an older kernel, or no madvise: the pages stay
        return False
    return True


def _clean_runs(mm: mmap.mmap, start: int, end: int) -> list | None:
    """The runs [first, last) of pages in ``mm[start:end]`` that hold no write of this process (not
    present, or present as a page of the file: ``/proc/self/pagemap`` bit 61), or None where there is no
    page map. Written pages are private copies (copy-on-write) that ``MADV_DONTNEED`` would drop."""
    page = mmap.PAGESIZE
    address = np.frombuffer(mm, np.uint8, count=1).ctypes.data + start
    count = -(-(end - start) // page)
    try:
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(address // page * 8)
            entries = np.frombuffer(f.read(count * 8), np.uint64)
    except OSError:
        return None
    if entries.size != count:
        return None
    present, swapped, file_page = ((entries >> np.uint64(bit)) & np.uint64(1) for bit in (63, 62, 61))
    written = (swapped == 1) | ((present == 1) & (file_page == 0))
    edges = np.flatnonzero(np.diff(np.concatenate([[1], written.view(np.int8), [1]])))
    return [(start + int(a) * page, start + int(b) * page) for a, b in zip(edges[::2], edges[1::2])]


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
