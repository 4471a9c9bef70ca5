"""A character-level LSTM language model: it learns to predict the next character of a small text
(examples/data/tiny_text.txt, stories written for this repository), then writes new text from a prompt.

    p(c_{t+1} | c_1 … c_t) = softmax(W · h_t + b),   h_t = LSTM(Embedding(c_t), h_{t−1})

Training reads random windows of the text (truncated backpropagation through time) with Adam; the last
tenth of the text is held out, and its perplexity is reported against the uniform baseline (the
vocabulary size) — a model that learned nothing scores about that.

Run: python examples/char_lm.py                 (a few minutes, eager)
     python examples/char_lm.py --compiled      (each training step is one native call)
     python examples/char_lm.py --steps 200 --prompt "The river"
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

import spago
from spago import nn, ops
from spago.losses import cross_entropy
from spago.optim import Adam, Trainer

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_text.txt")


class CharLM(nn.Module):
    """Embedding → LSTM → dropout → linear over the characters (dropout matters: the text is tiny)."""

    def __init__(self, vocab_size: int, embedding_dim: int = 32, hidden_size: int = 128, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        """Next-character logits (B, T, V) for ids (B, T), and the LSTM state after the last step."""
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(self.dropout(out)), state


def lm_loss(model: CharLM, ids, targets):
    logits, _ = model(ids)
    return cross_entropy(logits, targets)


class Windows:
    """``steps`` random batches of windows (a fresh draw on every pass), with a length for the progress bar."""

    def __init__(self, data: np.ndarray, steps: int, batch_size: int, seq_len: int, seed: int):
        if len(data) <= seq_len + 1:
            raise spago.SpagoError(f"char_lm: the text ({len(data)} characters) is shorter than a window "
                                   f"of {seq_len + 1}")
        self.data, self.steps, self.batch_size, self.seq_len = data, steps, batch_size, seq_len
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            starts = self.rng.integers(0, len(self.data) - self.seq_len - 1, self.batch_size)
            rows = np.stack([self.data[s:s + self.seq_len + 1] for s in starts])
            yield rows[:, :-1], rows[:, 1:]


def perplexity(model: CharLM, data: np.ndarray, seq_len: int) -> float:
    """exp(mean cross-entropy) over consecutive windows of ``data``."""
    n = (len(data) - 1) // seq_len
    ids = data[:n * seq_len].reshape(n, seq_len)
    targets = data[1:n * seq_len + 1].reshape(n, seq_len)
    model.eval()
    with spago.no_grad():
        loss = lm_loss(model, ids, targets).item()
    return math.exp(loss)


def sample(model: CharLM, vocab: nn.Vocabulary, prompt: str, length: int = 200, temperature: float = 0.7,
           seed: int = 0) -> str:
    """Continue ``prompt`` one character at a time, drawing each from softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    model.eval()
    with spago.no_grad():
        logits, state = model(np.array([vocab.encode(prompt)]))
        out = []
        for _ in range(length):
            p = ops.softmax(logits[0, -1] * (1.0 / temperature)).numpy().astype(np.float64)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(vocab.token(nxt))
            logits, state = model(np.array([[nxt]]), state)
    return prompt + "".join(out)


def main(steps: int = 600, batch_size: int = 32, seq_len: int = 48, hidden_size: int = 96, lr: float = 0.005,
         dropout: float = 0.3, compiled: bool = False, prompt: str = "The river", sample_length: int = 300,
         seed: int = 0, progress: bool = True) -> dict:
    spago.manual_seed(seed)
    text = open(TEXT, encoding="utf-8").read()
    vocab = nn.Vocabulary(sorted(set(text)), specials=(), unk=None)
    data = np.array(vocab.encode(text), dtype=np.int64)
    cut = int(0.9 * len(data))
    train, held_out = data[:cut], data[cut:]

    model = CharLM(len(vocab), hidden_size=hidden_size, dropout=dropout)
    trainer = Trainer(model, lm_loss, Adam(model.parameters(), lr=lr), compiled=compiled, clip_norm=5.0)
    before = perplexity(model, held_out, seq_len)
    trainer.fit(Windows(train, steps, batch_size, seq_len, seed), progress=progress)
    after = perplexity(model, held_out, seq_len)
    text_out = sample(model, vocab, prompt, sample_length, seed=seed)
    print(f"vocabulary {len(vocab)} characters (uniform perplexity {len(vocab)}); held-out perplexity "
          f"{before:.2f} before training, {after:.2f} after {steps} steps")
    print(text_out)
    return {"vocab_size": len(vocab), "perplexity_before": before, "perplexity": after, "sample": text_out,
            "losses": trainer.losses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--hidden-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--compiled", action="store_true", help="compile each training step to native code")
    parser.add_argument("--prompt", default="The river")
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.batch_size, args.seq_len, args.hidden_size, args.lr, args.dropout, args.compiled,
         args.prompt, args.sample_length, args.seed)
