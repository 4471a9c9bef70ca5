"""The Go spaGO README's first example: c = a + b, then backward with an upstream gradient of 0.5."""
from __future__ import annotations

import spago


def main() -> dict:
    a = spago.tensor(2.0, requires_grad=True)
    b = spago.tensor(5.0, requires_grad=True)
    c = a + b
    c.backward(0.5)
    print(f"c = {c.item()}")
    print(f"ga = {a.grad.item()}, gb = {b.grad.item()}")
    return {"c": c.item(), "ga": a.grad.item(), "gb": b.grad.item()}


if __name__ == "__main__":
    main()
