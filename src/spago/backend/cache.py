"""The on-disk cache of compiled object code.

An entry is keyed by a hash of the optimised graph (ops, attributes, shapes, constant bytes), the target
triple, CPU name and features, the spago and llvmlite versions and (from `spago.compile`) the generated
LLVM IR, so a changed code generator never reuses old object code.

Loading an entry means running its machine code, so the cache is guarded (see docs/security.md):

- the directory is created owner-only (0700); one that others may write (group/world-writable) or that
  another user owns is refused with a warning, and compiling goes on without the cache;
- each entry carries an HMAC-SHA256 of its key and payload under a random 32-byte secret kept in the
  directory (``hmac.key``, mode 0600, checked on every read), so an entry planted or edited by someone who
  cannot read that secret is discarded, never loaded;
- entries are opened without following symlinks, only when they are regular files, and read only as far as
  their header says (a FIFO or a link to ``/dev/zero`` cannot hang a load). Anything that does not match —
  a truncated write, a foreign file, another machine's code — is deleted and rebuilt.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import warnings
from typing import Any

import numpy as np

from ..ir.graph import Graph
from ..errors import SpagoError
from ..files import atomic_write, open_regular_file
from ..mapped import byte_chunks
from ..schema import CACHE_HEADER, check_fields, parse_json

MAGIC = b"SPAGO-OBJECT-2\n"
KEY_FILE = "hmac.key"
MAX_HEADER = 4096


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
            for piece in byte_chunks(np.ascontiguousarray(n.data)):  # the buffer itself, not a copy; a
                h.update(piece)                                     # mapped weight's pages go back
        if n.kind == "op":
            h.update(("[" + ",".join(str(ids[i]) for i in n.inputs) + "]").encode())
            h.update(";".join(f"{key}={attribute_text(v)}" for key, v in sorted(n.attrs.items())).encode())
        h.update(b"\n")
    h.update(("out:" + ",".join(str(ids[o]) for o in graph.outputs)).encode())
    return h.hexdigest()


def cache_key(graph: Graph, variant: str = "") -> str:
    """The entry name for ``graph`` on this host; ``variant`` tells apart builds of one graph (profiling)."""
    import llvmlite

    from .._version import __version__
    from .target import CODE_MODEL, host_cpu

    from ..lower import parallel

    triple, cpu, features = host_cpu()
    text = "|".join([graph_fingerprint(graph), triple, cpu, features, __version__, llvmlite.__version__,
                     parallel.setting(), CODE_MODEL, variant])
    return hashlib.sha256(text.encode()).hexdigest()


_warned: set = set()


def _refuse(folder: str, why: str) -> None:
    if folder not in _warned:
        _warned.add(folder)
        warnings.warn(f"spago: not using the compiled-code cache {folder}: {why}; compiling without it "
                      f"(fix the directory or set SPAGO_CACHE_DIR to one only you can write)", stacklevel=3)
    return None


def _secure_dir(folder: str) -> bool:
    """Create ``folder`` owner-only if missing; True when it is a directory only this user can write."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError as exc:
        _refuse(folder, f"cannot create it ({exc.strerror})")
        return False
    if not stat.S_ISDIR(info.st_mode):
        _refuse(folder, "not a directory")
        return False
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        _refuse(folder, f"owned by another user (uid {info.st_uid})")
        return False
    if info.st_mode & 0o022:
        _refuse(folder, f"writable by group or others (mode {stat.S_IMODE(info.st_mode):o})")
        return False
    return True


def _secret(folder: str) -> bytes | None:
    """The cache's HMAC key, created on first use; None (with a warning) when it is not owner-only."""
    path = os.path.join(folder, KEY_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        return _refuse(folder, f"cannot create its key file ({exc.strerror})")
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    try:
        with open_regular_file(path, "cache key file", follow_symlinks=False) as f:
            info = os.fstat(f.fileno())
            key = f.read(33)
    except SpagoError as exc:
        return _refuse(folder, str(exc))
    if (hasattr(os, "geteuid") and info.st_uid != os.geteuid()) or info.st_mode & 0o077 or len(key) != 32:
        return _refuse(folder, f"its key file {KEY_FILE} must be 32 bytes, owned by you, mode 0600")
    return key


def _guarded() -> tuple[str, bytes] | None:
    """(cache directory, HMAC key) when the cache is safe to use, else None."""
    folder = cache_dir()
    if not _secure_dir(folder):
        return None
    key = _secret(folder)
    return None if key is None else (folder, key)


def _mac(secret: bytes, key: str, payload: bytes) -> str:
    return hmac.new(secret, key.encode() + b"\n" + payload, hashlib.sha256).hexdigest()


_HEADER = CACHE_HEADER


def _path(key: str, folder: str | None = None) -> str:
    return os.path.join(folder or cache_dir(), key[:2], key + ".spo")


def _read_entry(path: str, key: str, secret: bytes) -> bytes:
    """The payload of a verified entry; SpagoError for anything else."""
    with open_regular_file(path, "cache entry", follow_symlinks=False) as f:
        head = f.read(len(MAGIC) + MAX_HEADER)
        if not head.startswith(MAGIC) or b"\n" not in head[len(MAGIC):]:
            raise SpagoError(f"{path}: not a spago cache entry")
        end = head.index(b"\n", len(MAGIC))
        header = check_fields(parse_json(head[len(MAGIC):end], path), _HEADER, path, required=tuple(_HEADER))
        payload = head[end + 1:end + 1 + header["size"]]
        f.seek(end + 1 + len(payload))
        payload += f.read(header["size"] - len(payload) + 1)
    if header["key"] != key or len(payload) != header["size"] \
            or not hmac.compare_digest(header["hmac"], _mac(secret, key, payload)):
        raise SpagoError(f"{path}: entry does not match its header or its HMAC")
    return payload


def load(key: str) -> bytes | None:
    """The cached object for ``key``, or None (a damaged, foreign or unauthenticated entry is removed)."""
    guarded = _guarded()
    if guarded is None:
        return None
    path = _path(key, guarded[0])
    if not os.path.lexists(path):
        return None
    try:
        return _read_entry(path, key, guarded[1])
    except SpagoError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def store(key: str, obj: bytes) -> None:
    guarded = _guarded()
    if guarded is None:
        return
    folder, secret = guarded
    header = json.dumps({"key": key, "size": len(obj), "hmac": _mac(secret, key, obj)}).encode()
    path = _path(key, folder)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, MAGIC + header + b"\n" + obj, mode=0o600)
    except (OSError, SpagoError):
        pass  # a read-only or full disk only costs the next start a compile
