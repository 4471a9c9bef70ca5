"""`ModelOutput`: what the transformer models return, a dict that also answers as Hugging Face's outputs do."""
from __future__ import annotations

from typing import Any


class ModelOutput(dict):
    """A dict of outputs keyed by Hugging Face's names (``last_hidden_state``, ``logits`` …), in the order the
    model produced them, that also answers attribute access (``out.logits``) and integer or slice indexing
    (``out[0]`` is the first output, ``out[:2]`` a tuple), like ``transformers.utils.ModelOutput``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this output has no {name!r}; it has {', '.join(self) or 'nothing'}") from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        """The values, in order."""
        return tuple(self.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(v, 'shape', v)!r}" if hasattr(v, "shape") else f"{k}={v!r}"
                          for k, v in self.items())
        return f"ModelOutput({inner})"
