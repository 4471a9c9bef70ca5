"""NER against Flair 0.15.1 on WNUT-16: training time per epoch, test F1 after N epochs, inference tokens/s.

Same data split (`spago.nlp.ner_training.wnut16_split`, seed 7), same architecture and sizes (two character
LMs trained here by spago and given to both, character embeddings, one-hot word embeddings, re-projection,
BiLSTM, CRF), same optimiser (SGD, summed loss, gradient norm 5), same epochs, both on this CPU in one run.
spago trains compiled (every update one native call) and eagerly (``--eager-epochs``, default 1); Flair
runs in the Python given by ``--flair-python`` (flair pins an older transformers, so it may live in its
own virtual environment: ``python -m venv --system-site-packages VENV && VENV/bin/pip install flair==0.15.1``).

Run: python bench/ner.py --flair-python VENV/bin/python [--epochs 3] [--sentences N] [--json out.json]
     python bench/ner.py --flair-python VENV/bin/python --epochs 35 --seeds 0 1 2   (test F1 per seed, mean)
     python bench/ner.py --flair-python VENV/bin/python --inference-only     (inference tokens/s alone)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import table  # noqa: E402

import spago  # noqa: E402
from spago.nlp.charlm import LanguageModel, train_language_model  # noqa: E402
from spago.nlp.flair_format import Dictionary  # noqa: E402
from spago.nlp.ner_training import TrainConfig, build_network, train_tagger, wnut16_split, write_conll  # noqa: E402
from spago.nlp.sequence_labeler import SequenceTagger  # noqa: E402


def export_lms(lms: list, char_items: list, folder: str) -> None:
    """The LMs' weights under PyTorch's names (``lms.npz``) and their settings (``lms.json``) for Flair."""
    arrays, models = {}, []
    for k, lm in enumerate(lms):
        sd = lm.state_dict()
        names = {"encoder.weight": "encoder.weight", "decoder.weight": "decoder.weight",
                 "decoder.bias": "decoder.bias"}
        names.update({f"rnn.stack.layers.0.cell.{w}": f"rnn.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih",
                                                                           "bias_hh")})
        for ours, theirs in names.items():
            arrays[f"{k}.{theirs}"] = sd[ours]
        models.append({"items": lm.dictionary.idx2item, "is_forward_lm": lm.is_forward_lm,
                       "hidden_size": lm.hidden_size, "embedding_size": lm.embedding_size,
                       "tensors": list(names.values())})
    np.savez(os.path.join(folder, "lms.npz"), **arrays)
    with open(os.path.join(folder, "lms.json"), "w") as f:
        json.dump({"models": models, "char_items": char_items}, f)


def tokens_per_second(tagger: SequenceTagger, texts: list, batch: int) -> float:
    tokens = sum(len(tagger.tokenize(t)) for t in texts)
    start = time.perf_counter()
    if batch == 1:
        for t in texts:
            tagger.predict(t)
    else:
        tagger.batch_size = batch
        tagger.predict(texts)
    return tokens / (time.perf_counter() - start)


def main(argv: list | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--eager-epochs", type=int, default=1)
    p.add_argument("--sentences", type=int, default=None, help="use only this many training tweets")
    p.add_argument("--lm-epochs", type=int, default=1)
    p.add_argument("--lm-hidden", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--word-dropout", type=float, default=0.05, help="both taggers (Flair's default 0.05)")
    p.add_argument("--locked-dropout", type=float, default=0.5, help="both taggers (Flair's default 0.5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="train both once per seed (initial weights, batch order, dropout masks); test F1 is "
                        "reported per seed and as the mean, timings and inference from the first seed")
    p.add_argument("--random-batches", action="store_true",
                   help="spago draws batches at random as Flair does (default: sentences of similar length)")
    p.add_argument("--flair-python", default=None, help="a Python with flair==0.15.1 (skipped if not given)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--inference-only", action="store_true",
                   help="no training (untrained weights time the same): inference tokens/s only, spago measured "
                        "before and after Flair (the higher of the two), so both see about the same load")
    args = p.parse_args(argv)
    if args.inference_only:  # (untrained weights: one seed is enough)
        args.epochs, args.eager_epochs, args.lm_epochs, args.seeds = 0, 0, 0, args.seeds[:1]
    spago.manual_seed(0)
    train, dev, test = wnut16_split(seed=7)
    if args.sentences:
        train = train[:args.sentences]
    folder = tempfile.mkdtemp(prefix="spago-ner-bench-")
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        write_conll(part, os.path.join(folder, f"{name}.txt"))
    text = "\n".join(" ".join(w) for w, _ in train) + "\n"
    chars = Dictionary(sorted(set(text)))
    lms = []
    for forward in (True, False):
        lm = LanguageModel(chars.to_dict(), forward, hidden_size=args.lm_hidden, embedding_size=16, dropout=0.1)
        if args.lm_epochs:
            train_language_model(lm, text[:int(0.95 * len(text))], text[int(0.95 * len(text)):],
                                 epochs=args.lm_epochs, batch_size=32, bptt=64, lr=20.0, compiled=True)
        lms.append(lm.eval())
    config = TrainConfig(epochs=args.epochs, batch_size=16, lr=0.1, hidden_size=args.hidden, char_embedding_dim=25,
                         hidden_size_char=25, word_embedding_dim=50, min_freq=2, dropout=0.0,
                         word_dropout=args.word_dropout, locked_dropout=args.locked_dropout, patience=args.epochs,
                         compiled=True, length_batches=not args.random_batches)
    char_items = ["<unk>"] + sorted({c for w, _ in train for x in w for c in x})  # as build_network makes it
    if args.flair_python:
        export_lms(lms, char_items, folder)
    results: dict = {"train_sentences": len(train), "test_sentences": len(test), "epochs": args.epochs,
                     "load": os.getloadavg(), "seeds": []}
    texts = [" ".join(w) for w, _ in test]
    for n, seed in enumerate(args.seeds):
        # spago, compiled: the first epoch includes compiling the training step, reported apart
        spago.manual_seed(seed)
        config = dataclasses.replace(config, seed=seed)
        network = build_network(train, config, lms)
        run: dict = {"seed": seed, "spago_compiled": {}}
        if not args.inference_only:
            start = time.perf_counter()
            compiled = train_tagger(train, dev, test, config, network=network, progress=True)
            run["spago_compiled"] = {"epoch_seconds": [h["seconds"] for h in compiled["history"]],
                                     "dev_f1": [h["dev_f1"] for h in compiled["history"]],
                                     "test_f1": compiled["test"]["f1"], "total_seconds": time.perf_counter() - start}
        if n == 0:
            tagger = SequenceTagger(network, compiled=True)
            tagger.predict(texts)  # compile the inference buckets first (batch 32, then batch 1), outside the timing
            for t in texts:
                tagger.predict(t)

            def measure_spago() -> None:
                for key, batch in (("tokens_per_s_batch1", 1), ("tokens_per_s_batch32", 32)):
                    run["spago_compiled"][key] = max(run["spago_compiled"].get(key, 0.0),
                                                     tokens_per_second(tagger, texts, batch))

            measure_spago()
            if not args.inference_only:
                eager_tagger = SequenceTagger(network, compiled=False)
                results["spago_eager"] = {"tokens_per_s_batch1": tokens_per_second(eager_tagger, texts[:60], 1),
                                          "tokens_per_s_batch32": tokens_per_second(eager_tagger, texts, 32)}
            if args.eager_epochs:
                eager_config = TrainConfig(**{**config.__dict__, "compiled": False, "epochs": args.eager_epochs})
                eager = train_tagger(train, dev, None, eager_config, network=build_network(train, eager_config, lms))
                results["spago_eager"]["epoch_seconds"] = [h["seconds"] for h in eager["history"]]
        if args.flair_python:
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump({**config.__dict__, "language_models": []}, f)
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_flair_ner.py")
            out = subprocess.run([args.flair_python, script, folder], stdout=subprocess.PIPE, text=True, check=False)
            if out.returncode != 0:  # its stderr (progress, errors) went to ours
                raise SystemExit(f"the Flair run failed (exit status {out.returncode})")
            run["flair"] = json.loads(out.stdout.strip().splitlines()[-1])
            if args.inference_only:
                measure_spago()
        results["seeds"].append(run)
        if n == 0:
            results.update({k: run[k] for k in ("spago_compiled", "flair") if k in run})
        if args.json:  # after every seed, so a long run's finished seeds are kept
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    print(report(results))
    if len(results["seeds"]) > 1 and not args.inference_only:
        print(seed_report(results))
    return results


def report(r: dict) -> str:
    def steady(xs):  # epochs after the first (which compiles); the first if there is only one
        return float(np.median(xs[1:] if len(xs) > 1 else xs))

    rows = []
    flair = r.get("flair")
    base = steady(flair["epoch_seconds"]) if flair and flair.get("epoch_seconds") else None
    for name in ("spago_compiled", "spago_eager", "flair"):
        x = r.get(name)
        if not x:
            continue
        sec = steady(x["epoch_seconds"]) if x.get("epoch_seconds") else None
        rows.append((name, f"{sec:.1f}" if sec else "-", f"{x['epoch_seconds'][0]:.1f}" if sec else "-",
                     f"{base / sec:.2f}x" if (sec and base) else "-", f"{x['test_f1']:.4f}" if "test_f1" in x else "-",
                     f"{x['tokens_per_s_batch1']:.0f}", f"{x['tokens_per_s_batch32']:.0f}"))
    head = ("system", "s/epoch (median, after 1st)", "1st epoch s", "speed vs Flair", f"test F1 (best dev model, {r['epochs']} ep)",
            "tokens/s batch 1", "tokens/s batch 32")
    return table(f"NER on WNUT-16 ({r['train_sentences']} training tweets, load {r['load'][0]:.1f})", rows, head)


def seed_report(r: dict) -> str:
    """Test F1 (of each system's best-on-dev model) per seed, and their mean and standard deviation."""
    systems = [k for k in ("spago_compiled", "flair") if k in r["seeds"][0]]
    rows, scores = [], {k: [] for k in systems}
    for run in r["seeds"]:
        row = [str(run["seed"])]
        for k in systems:
            scores[k].append(run[k]["test_f1"])
            row += [f"{run[k]['test_f1']:.4f}", f"{max(run[k]['dev_f1']):.4f}"]
        rows.append(tuple(row))
    mean = ["mean ± sd"]
    for k in systems:
        mean += [f"{np.mean(scores[k]):.4f} ± {np.std(scores[k], ddof=1):.4f}", ""]
    rows.append(tuple(mean))
    if len(systems) == 2:
        gap = np.array(scores["spago_compiled"]) - np.array(scores["flair"])
        rows.append(("spago − Flair", f"{gap.mean():+.4f} ± {gap.std(ddof=1) / np.sqrt(len(gap)):.4f} (se)", "", "",
                     ""))
    head = ["seed"] + [x for k in systems for x in (f"{k} test F1", f"{k} best dev F1")]
    return table(f"Test F1 per seed ({r['epochs']} epochs, best-on-dev model)", rows, tuple(head))


if __name__ == "__main__":
    main()
