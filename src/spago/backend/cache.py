"""The on-disk cache of compiled object code.

An entry is keyed by a hash of the optimised graph (ops, attributes, shapes, constant bytes), the target
triple, CPU name and features, the spago and llvmlite versions and (from `spago.compile`) the generated
LLVM IR, so a changed code generator never reuses old object code. Each file carries a header with its
key and the SHA-256 of its payload; anything that does not match — a truncated write, a foreign file,
another machine's code — is discarded and rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from ..ir.graph import Graph
from ..ir.dot import atomic_write

MAGIC = b"SPAGO-OBJECT-1\n"


def cache_dir() -> str:
    return os.environ.get("SPAGO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "spago")


def cache_enabled(option: bool | None = None) -> bool:
    if option is not None:
        return option
    return os.environ.get("SPAGO_CACHE", "1").lower() not in ("0", "false", "no", "off")


def attribute_text(value: Any) -> str:
    """A node attribute as text that identifies it (a fused body by the hash of its structure)."""
    if isinstance(value, Graph):
        return "graph:" + graph_fingerprint(value)
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(attribute_text(v) for v in value) + ")"
    return repr(value)


def graph_fingerprint(graph: Graph) -> str:
    """A hash of everything that decides the generated code: structure, attributes, types and constants."""
    h = hashlib.sha256()
    ids = {}
    for k, n in enumerate(graph.all_nodes()):
        ids[n] = k
        h.update(f"{n.kind}|{n.target}|{n.spec}|".encode())
        if n.data is not None:
            data = np.ascontiguousarray(n.data)
            h.update(data.reshape(-1).view(np.uint8) if data.size else b"")  # the buffer itself, not a copy
        if n.kind == "op":
            h.update(("[" + ",".join(str(ids[i]) for i in n.inputs) + "]").encode())
            h.update(";".join(f"{key}={attribute_text(v)}" for key, v in sorted(n.attrs.items())).encode())
        h.update(b"\n")
    h.update(("out:" + ",".join(str(ids[o]) for o in graph.outputs)).encode())
    return h.hexdigest()


def cache_key(graph: Graph, variant: str = "") -> str:
    """The entry name for ``graph`` on this host; ``variant`` tells apart builds of one graph (profiling)."""
    import llvmlite

    from .. import __version__
    from .target import CODE_MODEL, host_cpu

    from . import parallel

    triple, cpu, features = host_cpu()
    text = "|".join([graph_fingerprint(graph), triple, cpu, features, __version__, llvmlite.__version__,
                     parallel.setting(), CODE_MODEL, variant])
    return hashlib.sha256(text.encode()).hexdigest()


def _path(key: str) -> str:
    return os.path.join(cache_dir(), key[:2], key + ".spo")


def load(key: str) -> bytes | None:
    """The cached object for ``key``, or None (a damaged or mismatched entry is removed)."""
    path = _path(key)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    try:
        if not blob.startswith(MAGIC):
            raise ValueError("bad magic")
        header_end = blob.index(b"\n", len(MAGIC))
        header = json.loads(blob[len(MAGIC):header_end])
        payload = blob[header_end + 1:]
        if header.get("key") != key or header.get("size") != len(payload) \
                or header.get("sha256") != hashlib.sha256(payload).hexdigest():
            raise ValueError("header does not match")
        return payload
    except (ValueError, json.JSONDecodeError):
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def store(key: str, obj: bytes) -> None:
    header = json.dumps({"key": key, "size": len(obj), "sha256": hashlib.sha256(obj).hexdigest()}).encode()
    try:
        atomic_write(_path(key), MAGIC + header + b"\n" + obj)
    except OSError:
        pass  # a read-only or full disk only costs the next start a compile
