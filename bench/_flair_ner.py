"""The Flair side of bench/ner.py, run by the Python that has flair==0.15.1 (``--flair-python``).

Reads the split written by bench/ner.py (CoNLL files), the character LMs it trained (``lms.npz`` +
``lms.json``), builds the same architecture in Flair, trains it with the same loop (SGD, summed loss,
gradient norm clipped to 5, static LM embeddings kept between epochs as ``embeddings_storage_mode="cpu"``
does), keeps the model of the best dev F1 as spago's ``train_tagger`` does (dev scored after each epoch,
outside its time), and prints one JSON line: seconds per epoch, test F1 of that model (and of the last
epoch's), inference tokens/s at batch 1 and 32.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

import numpy as np
import torch


def main(folder: str) -> None:
    import flair
    from flair.data import Dictionary, Sentence
    from flair.datasets import ColumnCorpus
    from flair.embeddings import CharacterEmbeddings, FlairEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import LanguageModel, SequenceTagger
    from flair.training_utils import store_embeddings

    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])
    corpus = ColumnCorpus(folder, {0: "text", 1: "ner"}, train_file="train.txt", dev_file="dev.txt",
                          test_file="test.txt")
    weights = np.load(os.path.join(folder, "lms.npz"))
    with open(os.path.join(folder, "lms.json")) as f:
        lm_meta = json.load(f)

    def dictionary(items):  # spago's dictionaries list <unk> first when they have one, as Flair's do
        unk = items[:1] == ["<unk>"]
        d = Dictionary(add_unk=unk)
        for item in items[1 if unk else 0:]:
            d.add_item(item)
        return d

    stack = []
    for k, meta in enumerate(lm_meta["models"]):
        lm = LanguageModel(dictionary(meta["items"]), meta["is_forward_lm"], meta["hidden_size"], 1,
                           meta["embedding_size"], dropout=0.1)
        state = {name: torch.from_numpy(weights[f"{k}.{name}"]) for name in meta["tensors"]}
        lm.load_state_dict(state)
        lm.eval()
        stack.append(FlairEmbeddings(lm))
    stack.append(CharacterEmbeddings(dictionary(lm_meta["char_items"]), cfg["char_embedding_dim"],
                                     cfg["hidden_size_char"]))
    stack.append(OneHotEmbeddings.from_corpus(corpus, min_freq=cfg["min_freq"],
                                              embedding_length=cfg["word_embedding_dim"]))
    tags = corpus.make_label_dictionary("ner", add_unk=False)
    tagger = SequenceTagger(hidden_size=cfg["hidden_size"], embeddings=StackedEmbeddings(stack),
                            tag_dictionary=tags, tag_type="ner", use_crf=True, reproject_embeddings=True,
                            dropout=cfg["dropout"], word_dropout=cfg["word_dropout"],
                            locked_dropout=cfg["locked_dropout"])
    optimizer = torch.optim.SGD(tagger.parameters(), lr=cfg["lr"])
    train = list(corpus.train)
    seconds, dev_scores, best_state = [], [], None
    for _ in range(cfg["epochs"]):
        start = time.perf_counter()
        tagger.train()
        random.shuffle(train)
        for i in range(0, len(train), cfg["batch_size"]):
            batch = train[i:i + cfg["batch_size"]]
            optimizer.zero_grad()
            loss, _ = tagger.forward_loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tagger.parameters(), cfg["clip_norm"])
            optimizer.step()
            store_embeddings(batch, "cpu")
        seconds.append(time.perf_counter() - start)
        tagger.eval()
        dev_scores.append(tagger.evaluate(list(corpus.dev), gold_label_type="ner", mini_batch_size=32,
                                          return_loss=False).main_score)
        if dev_scores[-1] > max(dev_scores[:-1], default=-1.0):
            best_state = {k: v.detach().clone() for k, v in tagger.state_dict().items()}
        print(f"flair epoch {len(seconds)}: {seconds[-1]:.1f} s, dev F1 {dev_scores[-1]:.4f}", file=sys.stderr,
              flush=True)  # partial figures
    tagger.eval()
    last = tagger.evaluate(list(corpus.test), gold_label_type="ner", mini_batch_size=32, return_loss=False)
    if best_state is not None:
        tagger.load_state_dict(best_state)
    result = tagger.evaluate(list(corpus.test), gold_label_type="ner", mini_batch_size=32, return_loss=False)
    texts = [s.to_tokenized_string() for s in corpus.test]
    tokens = sum(len(Sentence(t)) for t in texts)
    start = time.perf_counter()
    for t in texts:
        tagger.predict(Sentence(t))
    batch1 = tokens / (time.perf_counter() - start)
    start = time.perf_counter()
    tagger.predict([Sentence(t) for t in texts], mini_batch_size=32)
    batch32 = tokens / (time.perf_counter() - start)
    print(json.dumps({"epoch_seconds": seconds, "test_f1": result.main_score, "test_f1_last_epoch": last.main_score,
                      "dev_f1": dev_scores, "tokens_per_s_batch1": batch1,
                      "tokens_per_s_batch32": batch32, "flair": flair.__version__, "torch": torch.__version__,
                      "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(sys.argv[1])
