"""The compiled-code cache under attack: planted, edited, special and unreadable entries never load."""
import json
import os
import threading
import warnings

import pytest

from spago.backend import cache

KEY = "ab" + "0" * 62
OBJ = b"\x7fELF pretend object code" * 10


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(path))
    cache._warned.clear()
    return path


def test_directory_and_key_are_owner_only_and_entries_round_trip(folder):
    cache.store(KEY, OBJ)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.stat(folder / cache.KEY_FILE).st_mode & 0o777 == 0o600
    assert os.stat(cache._path(KEY)).st_mode & 0o777 == 0o600
    assert cache.load(KEY) == OBJ


def _forge(folder, payload, header):
    path = cache._path(KEY)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(cache.MAGIC + header + b"\n" + payload)
    return path


@pytest.mark.parametrize("header", [
    json.dumps({"key": KEY, "size": len(OBJ), "sha256": "0" * 64}).encode(),   # the old, unauthenticated form
    json.dumps({"key": KEY, "size": len(OBJ), "hmac": "0" * 64}).encode(),     # a guessed HMAC
    b"[1, 2, 3]",                                                               # JSON, not an object
    b"[" * 100000 + b"]" * 100000,                                              # nested too deeply to parse
    json.dumps({"key": KEY, "size": 2 ** 63, "hmac": "0"}).encode(),            # absurd size
    json.dumps({"key": KEY, "size": "12", "hmac": "0"}).encode(),               # wrong type
])
def test_forged_entries_are_discarded_and_deleted(folder, header):
    cache.store("cd" + "0" * 62, b"x")  # creates the directory and its key
    path = _forge(folder, OBJ, header)
    assert cache.load(KEY) is None
    assert not os.path.lexists(path)  # deleted, so a later compile rebuilds it instead of failing again
    cache.store(KEY, OBJ)
    assert cache.load(KEY) == OBJ


def test_an_entry_edited_without_the_secret_is_refused(folder):
    cache.store(KEY, OBJ)
    path = cache._path(KEY)
    blob = open(path, "rb").read()
    open(path, "wb").write(blob[:-4] + b"\0\0\0\0")
    assert cache.load(KEY) is None


def _bounded(fn, seconds=20):
    result = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the load hung"
    return result[0]


@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/zero", "symlink to a good entry", "directory"])
def test_special_files_in_place_of_an_entry_never_hang(folder, kind):
    cache.store(KEY, OBJ)
    path = cache._path(KEY)
    good = path + ".copy"
    os.replace(path, good)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to /dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "directory":
        os.mkdir(path)
    else:
        os.symlink(good, path)
    assert _bounded(lambda: cache.load(KEY)) is None
    if kind != "directory":
        assert not os.path.lexists(path)


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o722])
def test_a_directory_others_can_write_is_refused_with_a_warning(folder, mode):
    os.makedirs(folder)
    os.chmod(folder, mode)
    with pytest.warns(UserWarning, match=r"writable by group or others"):
        cache.store(KEY, OBJ)
    assert not (folder / "ab").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per directory
        assert cache.load(KEY) is None


def test_a_key_file_others_can_read_bypasses_the_cache(folder):
    cache.store(KEY, OBJ)
    os.chmod(folder / cache.KEY_FILE, 0o644)
    with pytest.warns(UserWarning, match=r"key file"):
        assert cache.load(KEY) is None


def test_a_symlinked_key_file_is_refused(folder, tmp_path):
    os.makedirs(folder, mode=0o700)
    other = tmp_path / "other-key"
    other.write_bytes(b"k" * 32)
    os.chmod(other, 0o600)
    os.symlink(other, folder / cache.KEY_FILE)
    with pytest.warns(UserWarning):
        assert cache.load(KEY) is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown a directory")
def test_a_directory_owned_by_another_user_is_refused(folder):
    os.makedirs(folder, mode=0o700)
    os.chown(folder, 12345, 12345)
    with pytest.warns(UserWarning, match=r"owned by another user"):
        assert cache.load(KEY) is None
