"""Extractive question answering with BERT — the Go spaGO README's demo, in Python.

    python examples/bert_qa.py MODEL_FOLDER [--question ...] [--passage ...] [--eager]

MODEL_FOLDER is a Hugging Face (or ``spago import-hf``-converted) BERT/ELECTRA ...ForQuestionAnswering
folder, e.g. a SQuAD fine-tuned checkpoint. The model is compiled on first use (inputs padded to a bucket
length) and the answer is printed as JSON: {"question", "answers": [{"text", "start", "end", "confidence"}],
"took"} with character offsets into the passage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

PASSAGE = ("BERT is a technique for NLP pre-training developed by Google. BERT was created and published in 2018 "
           "by Jacob Devlin and his colleagues from Google. As of 2019, Google has been leveraging BERT to better "
           "understand user searches.")
QUESTION = "Who is the author of BERT?"


def main(argv: list[str] | None = None) -> dict:
    from spago.nlp.pipelines.question_answering import QuestionAnswering
    from spago.nlp.transformers import from_pretrained

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="question-answering model folder")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--passage", default=PASSAGE)
    parser.add_argument("--top-k", type=int, default=1, help="how many answers to return")
    parser.add_argument("--eager", action="store_true", help="run eagerly instead of compiled")
    args = parser.parse_args(argv)

    qa = QuestionAnswering(from_pretrained(args.model, compiled=not args.eager))
    start = time.perf_counter()
    result = qa(args.question, args.passage, top_k=args.top_k)
    took = round((time.perf_counter() - start) * 1000)
    out = {"question": args.question, "answers": result["answers"], "took": took}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    from spago.errors import SpagoError

    try:
        main()
    except SpagoError as exc:
        sys.exit(f"bert_qa: error: {exc}")
