"""BERT inference: all-MiniLM-L6-v2 to last_hidden_state, spago compiled and eager vs PyTorch and ONNX Runtime.

Targets (issue: BERT performance), ratios in the same run: spago compiled <= 1.0x ONNX Runtime at batch 1
and 8 (sequence 128) with 2 threads and <= 0.8x PyTorch eager; cold compile <= 5 s, warm start <= 0.5 s;
peak memory no higher than ONNX Runtime's. The logic lives in ``spago.benchmarks.bert`` so that
``spago bench bert`` runs it too.
Run: python bench/bert.py [--threads 1,2] [--batch 1,8] [--repeats 15] [--runtimes compiled,eager,torch,ort]
"""
from __future__ import annotations

import sys

from spago.benchmarks.bert import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
