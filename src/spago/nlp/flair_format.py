"""Reading Flair 0.15 ``.pt`` files (taggers and character language models) as plain data, never running code.

A Flair model file is a ``torch.save`` zip archive whose pickle holds nested dicts, tensors and
``flair.data.Dictionary`` objects. It is read by the restricted pickle interpreter of
`spago.nlp.torch_pickle` (with its limits), admitting besides tensors and storages only ``collections.OrderedDict``,
``collections.defaultdict``, ``builtins.int``, ``torch.torch_version.TorchVersion`` (a ``str``, the
version Flair records) and ``flair.data.Dictionary`` — the last rebuilt as a spago
`Dictionary` from its state (``item2idx``, ``idx2item``, ``add_unk``, ``multi_label``, ``span_labels``).
Any other global is refused with its name.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from ..errors import SpagoError
from ..files import open_regular_file
from .torch_pickle import DEFAULT_LIMITS, STATE_DICT_GLOBALS, Limits, interpret, read_torch_zip

__all__ = ["Dictionary", "FLAIR_GLOBALS", "read_flair_file", "read_flair_pickle"]


class Dictionary:
    """Flair's ``Dictionary``: items (characters, words or tags) <-> ids; with ``add_unk`` the item
    ``<unk>`` is id 0 and unknown items map to it, otherwise looking one up is an error."""

    def __init__(self, items: Iterable[str] = (), add_unk: bool = True, multi_label: bool = False,
                 span_labels: bool = False):
        self.item2idx: dict[str, int] = {}
        self.idx2item: list[str] = []
        self.add_unk, self.multi_label, self.span_labels = bool(add_unk), bool(multi_label), bool(span_labels)
        if add_unk:
            self.add_item("<unk>")
        for item in items:
            self.add_item(item)

    def add_item(self, item: str) -> int:
        if item not in self.item2idx:
            self.item2idx[item] = len(self.idx2item)
            self.idx2item.append(item)
        return self.item2idx[item]

    def get_idx_for_item(self, item: str) -> int:
        idx = self.item2idx.get(item)
        if idx is not None:
            return idx
        if self.add_unk:
            return 0
        raise SpagoError(f"{item!r} is not in the dictionary and it has no <unk> item")

    def get_idx_for_items(self, items: Iterable[str]) -> list[int]:
        if self.add_unk:  # the common case in one pass (unknown items -> <unk> = 0)
            get = self.item2idx.get
            return [get(item, 0) for item in items]
        return [self.get_idx_for_item(item) for item in items]

    def get_item_for_index(self, idx: int) -> str:
        return self.idx2item[idx]

    def __len__(self) -> int:
        return len(self.idx2item)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Dictionary({len(self)} items, add_unk={self.add_unk})"

    # -- plain data (spago's format) and Flair's pickled state -------------------------------------
    def to_dict(self) -> dict:
        return {"items": list(self.idx2item), "add_unk": self.add_unk, "multi_label": self.multi_label,
                "span_labels": self.span_labels}

    @classmethod
    def from_dict(cls, data: dict) -> "Dictionary":
        d = cls(add_unk=False, multi_label=data.get("multi_label", False), span_labels=data.get("span_labels", False))
        for item in data["items"]:
            d.add_item(item)
        d.add_unk = bool(data["add_unk"])
        return d

    def __setstate__(self, state: Any) -> None:
        """BUILD with Flair's pickled ``__dict__`` (byte-string items, decoded as UTF-8); the restricted
        reader calls it on a `Dictionary` that ``flair.data.Dictionary`` made."""
        if not isinstance(state, dict) or not isinstance(state.get("idx2item"), list):
            what = [repr(k)[:40] for k in list(state)[:10]] if isinstance(state, dict) else type(state).__name__
            raise SpagoError(f"a flair Dictionary with an unexpected state: keys {what}")
        self.item2idx, self.idx2item = {}, []
        for item in state["idx2item"]:
            self.add_item(_text(item))
        self.add_unk = bool(state.get("add_unk", True))
        self.multi_label = bool(state.get("multi_label", False))
        self.span_labels = bool(state.get("span_labels", False))

    @classmethod
    def from_flair_state(cls, state: dict) -> "Dictionary":
        """A dictionary saved by ``Dictionary.save`` (a pickled dict with ``idx2item``)."""
        d = cls(add_unk=False)
        d.__setstate__(state)
        if "add_unk" not in state:  # Dictionary.save keeps only the items; flair's load assumes <unk> iff present
            d.add_unk = "<unk>" in d.item2idx
        return d


def _text(item: Any) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise SpagoError(f"a flair Dictionary item is not UTF-8: {item!r}") from None
    if isinstance(item, str):
        return item
    raise SpagoError(f"a flair Dictionary item must be bytes or text, got {type(item).__name__}")


def _new_dictionary(*args: Any) -> Dictionary:
    return Dictionary(add_unk=False)


def _defaultdict(*args: Any) -> dict:
    return {}  # the default factory (builtins.int) is irrelevant to the stored items


# What a Flair file may name: a state dict's globals, and these.
FLAIR_GLOBALS = {
    **STATE_DICT_GLOBALS,
    ("collections", "defaultdict"): _defaultdict,
    ("builtins", "int"): int,
    ("flair.data", "Dictionary"): _new_dictionary,
    ("torch.torch_version", "TorchVersion"): str,  # the version string Flair records at saving
}


def read_flair_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The top-level object of a Flair ``.pt`` file as dicts, lists, NumPy arrays and `Dictionary` objects."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpagoError(f"{path}: no such Flair model file")
    with open_regular_file(path, "Flair model file") as f:
        head = f.read(4)
    if not head.startswith(b"PK"):
        raise SpagoError(f"{path}: not a Flair model file (a torch.save zip archive, as Flair >= 0.5 writes)")
    return read_torch_zip(path, FLAIR_GLOBALS, limits)


def read_flair_pickle(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> Any:
    """A plain pickle (``Dictionary.save``'s format), through the same restricted interpreter."""
    path = os.fspath(path)
    with open_regular_file(path, "Flair dictionary file") as f:
        data = f.read(limits.max_pickle_bytes + 1)
    return interpret(data, path, FLAIR_GLOBALS, None, limits)
