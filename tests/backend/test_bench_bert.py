"""The BERT benchmark's pieces that need no baseline runtimes: inputs, weight loading, the table, the CLI.
(The benchmark itself is run with ``spago bench bert``, which runs ``bench/bert.py`` of the checkout;
timings never appear in tests.)"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import spago as sp
from spago.bench_cli import bench_dir, run_bench
from spago.cli import build_parser, main
from spago.errors import SpagoError

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "bert.py")
_spec = importlib.util.spec_from_file_location("bench_bert", BENCH)
bench_bert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_bert)
format_result, make_inputs, peak_rss_bytes = bench_bert.format_result, bench_bert.make_inputs, bench_bert.peak_rss_bytes

TINY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "tiny-bert", "base")


def test_inputs_are_padded_sentences():
    x = make_inputs(4, 32)
    assert {k: v.shape for k, v in x.items()} == {k: (4, 32) for k in ("input_ids", "attention_mask",
                                                                        "token_type_ids")}
    assert x["attention_mask"][0].all() and (x["input_ids"][:, 0] == 101).all()
    for ids, mask in zip(x["input_ids"], x["attention_mask"]):
        length = int(mask.sum())
        assert ids[length - 1] == 102 and not ids[length:].any() and mask[:length].all()
    np.testing.assert_array_equal(make_inputs(4, 32)["input_ids"], x["input_ids"])  # same every run


@pytest.mark.skipif(not os.path.isdir(TINY), reason="fixture ../shared/fixtures/tiny-bert absent")
def test_parameters_are_the_mapped_weights_file():
    from spago.benchmarks.minilm import build_encoder
    from spago.mapped import mapping_of
    from spago.nlp.transformers import BertModel, load_config, load_weights, read_state_dict

    forward = build_encoder(TINY)
    assert all(mapping_of(p.numpy()) is not None for p in forward.model.parameters())  # no copies
    reference = BertModel(load_config(TINY)).eval()
    path = os.path.join(TINY, "model.safetensors")
    load_weights(reference, read_state_dict(path), path)
    assert all(mapping_of(p.numpy()) is None for p in reference.parameters())
    ids = make_inputs(2, 16)
    args = (ids["input_ids"] % 90 + 5, ids["attention_mask"], ids["token_type_ids"])
    with sp.no_grad():
        got = forward(*[sp.tensor(a) for a in args]).numpy()
        want = reference(*[sp.tensor(a) for a in args])["last_hidden_state"].numpy()
    np.testing.assert_array_equal(got, want)


def test_table_has_ratios_memory_and_compile_times():
    result = {"machine": "test box", "seq": 128, "repeats": 3, "skipped": {"torch": "not installed"},
              "load_before": (0.5, 0, 0), "load_after": (0.7, 0, 0),
              "latency": {"2|1": {"compiled": 0.010, "eager": 0.040, "ort": 0.012}},
              "peak_rss": {"compiled": 200 * 2**20, "ort": 210 * 2**20}, "peak_rss_alone": {"compiled": 150 * 2**20},
              "parity": {"2|1": {"compiled": 1e-6}},
              "compile_cold": {"1x128": {"seconds": 0.7}}, "compile_warm": {"1x128": {"seconds": 0.2}}}
    text = format_result(result, [2], [1])
    assert "| 2 | 1 x 128 | 10.0 | 40.0 | 12.0 | 0.83x | — | — |" in text
    assert "| spago compiled | 150 MiB | 200 MiB |" in text and "| ONNX Runtime | — | 210 MiB |" in text
    assert "0.70 s" in text and "0.20 s" in text
    assert "PyTorch eager: skipped, not installed" in text
    assert peak_rss_bytes() > 10 * 2**20


def test_cli_has_the_bench_command():
    args = build_parser().parse_args(["bench", "bert", "--threads", "2", "--batch", "1"])
    assert args.name == "bert" and args.options == ["--threads", "2", "--batch", "1"]


def test_bench_command_finds_the_checkouts_bench_folder(capfd):
    assert bench_dir() is not None and (bench_dir() / "bert.py").is_file()
    assert main(["bench", "bert", "--help"]) == 0
    assert "--threads" in capfd.readouterr().out


def test_bench_command_names_unknown_benchmarks_and_a_missing_folder(tmp_path, monkeypatch, capsys):
    assert main(["bench", "no_such_bench"]) == 2
    err = capsys.readouterr().err
    assert "no benchmark 'no_such_bench'" in err and "train_bilstm" in err
    monkeypatch.chdir(tmp_path)  # an installed package: no bench/ next to it, none here
    monkeypatch.setenv("SPAGO_BENCH_DIR", str(tmp_path / "absent"))
    monkeypatch.setattr("spago.bench_cli.__file__", str(tmp_path / "site-packages" / "spago" / "bench_cli.py"))
    with pytest.raises(SpagoError, match="source checkout's bench/ folder"):
        run_bench("bert", [])
