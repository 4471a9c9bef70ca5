"""Progress on long work (a cold compile): a tqdm bar that appears only once the work has lasted ``DELAY``
seconds, so quick and cached compiles stay silent. ``SPAGO_PROGRESS=0`` turns it off, ``SPAGO_PROGRESS=1``
shows it even when standard error is not a terminal (by default it is shown on a terminal only)."""
from __future__ import annotations

import os
import sys
import time
from typing import Sequence

DELAY = 2.0


def enabled() -> bool:
    flag = os.environ.get("SPAGO_PROGRESS", "").strip().lower()
    if flag:
        return flag not in ("0", "false", "no", "off")
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Progress:
    """Named stages of one piece of work on a tqdm bar (``stage`` moves on, ``tick`` refreshes the clock)."""

    def __init__(self, desc: str, stages: Sequence[str]):
        self.desc, self.total = desc, len(stages)
        self.on = enabled()
        self.start = time.perf_counter()
        self.done, self.text, self.bar = 0, "", None

    def stage(self, text: str, advance: bool = True) -> None:
        if self.text and advance:
            self.done += 1
        self.text = text
        self.tick()

    def tick(self) -> None:
        if not self.on:
            return
        if self.bar is None:
            if time.perf_counter() - self.start < DELAY:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, file=sys.stderr, leave=False,
                            bar_format="{desc} [{n}/{total}, {elapsed}]")
        self.bar.n = self.done
        self.bar.set_description_str(f"{self.desc}: {self.text}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
