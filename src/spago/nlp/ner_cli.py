"""``spago import-flair`` and ``spago train-ner``: the command-line side of the NER stack."""
from __future__ import annotations

import argparse
import json
import os


def import_flair_command(args: argparse.Namespace) -> int:
    """Convert a Flair 0.15 tagger or character LM (``.pt``) to spago's format and check it loads back."""
    from ..serialization import load, save
    from .charlm import LanguageModel
    from .flair_format import read_flair_file
    from .sequence_labeler import SequenceTagger, SequenceTaggerNetwork, network_from_flair

    state = read_flair_file(args.src)
    if isinstance(state, dict) and state.get("__cls__") == "SequenceTagger":
        network = network_from_flair(state, args.src)
        save(network, args.dst)
        load(SequenceTaggerNetwork, args.dst)
        kind = f"SequenceTagger ({len(network.tag_dictionary)} tags)"
        hint = "SequenceTagger.load"
    else:
        model = LanguageModel.from_flair(args.src)
        save(model, args.dst)
        load(LanguageModel, args.dst)
        kind = f"{'forward' if model.is_forward_lm else 'backward'} LanguageModel"
        hint = "spago.load(LanguageModel, path)"
    print(f"wrote {args.dst}: {kind}; open it with {hint}")
    return 0


def train_ner_command(args: argparse.Namespace) -> int:
    from .ner_training import TrainConfig, load_language_model, read_conll, train_tagger

    overrides = {"epochs": args.epochs, "compiled": False if args.eager else None,
                 "language_models": tuple(args.lms) if args.lms else None,
                 "word_embeddings": tuple(args.embeddings) if args.embeddings else None}
    config = TrainConfig.from_file(args.config, **overrides) if args.config else \
        TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    result = train_tagger(read_conll(args.train), read_conll(args.dev), read_conll(args.test) if args.test else None,
                          config, output=args.output, progress=True)
    if "test" in result:
        t = result["test"]
        print(f"test: F1 {t['f1']:.4f}  precision {t['precision']:.4f}  recall {t['recall']:.4f} "
              f"({t['correct']} of {t['gold']} entities)")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    print(f"best model (dev F1 {result['best_dev_f1']:.4f}) in {args.output}")
    return 0


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the NER commands to the ``spago`` parser."""
    f = sub.add_parser("import-flair", help="convert a Flair 0.15 tagger or character LM (.pt) to spago's format")
    f.add_argument("src", help="Flair .pt file (SequenceTagger or LanguageModel)")
    f.add_argument("dst", help="file to write (.safetensors)")
    f.set_defaults(run=import_flair_command)

    t = sub.add_parser("train-ner", help="train a Flair-architecture BiLSTM-CRF tagger on CoNLL column files")
    t.add_argument("--train", required=True, help="training sentences (CoNLL columns: word ... TAG)")
    t.add_argument("--dev", required=True, help="dev sentences (model selection, early stopping)")
    t.add_argument("--test", help="test sentences (scored with the best model)")
    t.add_argument("--embeddings", nargs="*", metavar="STORE",
                   help="word-embedding stores (spago.nlp.embeddings, LMDB; see docs/embeddings.md), frozen")
    t.add_argument("--lms", nargs="*", metavar="LM",
                   help="character language models (spago or Flair .pt files) for contextual string embeddings")
    t.add_argument("--config", help="JSON file of training settings (see spago.nlp.ner_training.TrainConfig)")
    t.add_argument("--epochs", type=int, help="overrides the config's epochs")
    t.add_argument("--eager", action="store_true", help="eager training steps (default: compiled)")
    t.add_argument("-o", "--output", default=os.path.join(".", "ner-tagger.safetensors"),
                   help="where the best model goes")
    t.add_argument("--report", help="write the per-epoch history and scores as JSON here")
    t.set_defaults(run=train_ner_command)
