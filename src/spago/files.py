"""Reading and writing files safely: regular files only, bounded reads, atomic writes with named temp files.

- `open_regular_file` / `read_regular_file` refuse what is not a regular file (a FIFO would block a read
  forever, a symlink to ``/dev/zero`` would never end) and read at most a stated number of bytes;
- `atomic_write` writes into a private temp folder beside the target, named ``.<name>.spago-tmp-<pid>-<random>``,
  and renames the file into place, so a reader never sees a half-written file. A process killed mid-write
  leaves that folder behind (with any temp file the writer made of its own); the next `atomic_write` into the
  same folder removes those of processes that no longer run (``remove_stale_temps``).
"""
from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
from typing import Callable

from .errors import SpagoError

__all__ = ["open_regular_file", "read_regular_file", "atomic_write", "remove_stale_temps", "TEMP_MARK"]

TEMP_MARK = ".spago-tmp-"
_TEMP_NAME = re.compile(r"^\..*" + re.escape(TEMP_MARK) + r"(\d+)-[0-9a-f]+$")


def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def open_regular_file(path: str | os.PathLike, what: str = "file", follow_symlinks: bool = True) -> io.BufferedReader:
    """``path`` opened for binary reading if it is a regular file, else a `SpagoError` saying what it is.

    The check is made on the opened descriptor (``fstat``), so nothing can swap the file in between; the open
    itself never blocks (``O_NONBLOCK``, cleared once the file is known to be regular). With
    ``follow_symlinks=False`` a symlink is refused (``O_NOFOLLOW``)."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SpagoError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise SpagoError(f"{path}: cannot open the {what} ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpagoError(f"{path}: expected a regular {what}, found {_kind(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike, max_bytes: int, what: str = "file",
                      follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file, refused (not truncated) when it holds more than ``max_bytes``."""
    with open_regular_file(path, what, follow_symlinks) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SpagoError(f"{os.fspath(path)}: the {what} is larger than the limit of {max_bytes} bytes")
    return data


def remove_stale_temps(folder: str) -> list[str]:
    """Remove the temp files `atomic_write` left in ``folder`` from processes that no longer run."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # that process still runs (it may be writing right now)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        target = os.path.join(folder, name)
        try:
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
            removed.append(name)
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], None] | bytes, mode: int | None = None,
                 parents: bool = False) -> None:
    """Write ``path`` through a named temporary beside it, then rename it into place. A failure leaves ``path``
    as it was and removes the temporary. The new file keeps the mode of the one it replaces, else ``mode``,
    else ``0o666`` less the umask.

    ``write`` is the bytes, or a function given a path to write (``write(tmp_path)``); that path lies in a
    private temp folder, so whatever temp files the writer makes of its own (safetensors makes ``.tmpXXXXXX``)
    are inside it too, and go with it if the process is killed. ``parents`` creates missing folders first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if parents:
        os.makedirs(folder, exist_ok=True)
    if not os.path.isdir(folder):
        raise SpagoError(f"cannot write {path}: folder {folder} does not exist")
    remove_stale_temps(folder)
    tmp_dir = os.path.join(folder, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp_dir, 0o700)
    tmp = os.path.join(tmp_dir, os.path.basename(path))
    try:
        if isinstance(write, (bytes, bytearray, memoryview)):
            with open(tmp, "xb") as f:
                f.write(write)
        else:
            write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777
        elif mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
