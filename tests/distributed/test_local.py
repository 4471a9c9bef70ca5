"""spago.distributed on a local Ray cluster (2 CPUs on 127.0.0.1, started here once for the module): results
equal the in-process pipelines, the CLI writes Parquet, bad arguments get spago errors, and `spago serve --ray`
runs the serve app as a Ray Serve deployment with two replicas behind TLS."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from spago.errors import SpagoError

from .conftest import (PASSAGES, QUESTIONS, TEXTS, assert_same_answers, fixture, free_port, minilm,
                       reference_answers, reference_embeddings, write_jsonl)

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'spago[ray]')")
pytest.importorskip("ray.data")

import spago.distributed as sd  # noqa: E402


# Ray Serve gives its HTTP proxy 5 s to report ready, three times, then kills it and fails serve.start: on a
# 2-core machine busy with other work the proxy can take longer to start. The cluster's processes inherit
# these from the test process that starts it.
SLOW_MACHINE = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="spago-ray-")
    with pytest.MonkeyPatch.context() as env:
        for k, v in SLOW_MACHINE.items():
            env.setenv(k, v)
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp,
                 configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()


def test_embed_equals_in_process(cluster, tmp_path):
    model = minilm()
    path = write_jsonl(str(tmp_path / "texts.jsonl"), [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    rows = sorted(sd.embed(path, model, batch_size=4, num_actors=2).take_all(), key=lambda r: r["id"])
    assert [r["text"] for r in rows] == TEXTS
    got = np.array([r["embedding"] for r in rows], dtype=np.float32)
    want = reference_embeddings(model, TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384)
    assert np.abs(got - want).max() < 1e-5


def test_answer_equals_in_process_from_csv(cluster, tmp_path):
    import csv

    model = fixture("tiny-bert/qa")
    path = tmp_path / "qa.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["q", "p", "id"])
        w.writerows([q, p, i] for i, (q, p) in enumerate(zip(QUESTIONS, PASSAGES)))
    rows = sorted(sd.answer(str(path), model, "q", "p", batch_size=4).take_all(), key=lambda r: r["id"])
    assert_same_answers([r["answers"] for r in rows], reference_answers(model, QUESTIONS, PASSAGES))


def test_compiled_tag_equals_in_process_from_parquet(cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spago.distributed.runners import load_tagger

    tagger_path = fixture("flair/tagger.pt")
    pq.write_table(pa.table({"sentence": TEXTS, "id": list(range(len(TEXTS)))}), tmp_path / "in.parquet")
    # compiled, in this process: the actor's one batch of 15 rows has the same shape, found in the disk cache
    tagger = load_tagger(tagger_path)
    assert tagger.compiled
    want = [tagger.spans(tokens) for tokens in tagger.predict(TEXTS)]
    ds = sd.tag(str(tmp_path / "*.parquet"), tagger_path, column="sentence", batch_size=16, num_actors=1)
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    got = [r["entities"] for r in rows]
    assert [[(s["text"], s["start"], s["end"], s["label"]) for s in g] for g in got] == \
           [[(s["text"], s["start"], s["end"], s["label"]) for s in w] for w in want]
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert abs(a["score"] - b["score"]) < 1e-5
    assert sum(map(len, want)) >= 3, "the fixture tagger should find entities in these texts"


def test_cli_writes_parquet(cluster, tmp_path, capsys):
    import pyarrow.parquet as pq

    from spago.cli import main

    model = fixture("tiny-bert/base")  # takes at most 64 tokens
    texts = [t for t in TEXTS if len(t) < 60]
    write_jsonl(str(tmp_path / "a.jsonl"), [{"text": t, "id": i} for i, t in enumerate(texts[:5])])
    write_jsonl(str(tmp_path / "b.jsonl"), [{"text": t, "id": i + 5} for i, t in enumerate(texts[5:])])
    out = tmp_path / "out"
    assert main(["distributed", "embed", "--input", str(tmp_path / "*.jsonl"), "--output", str(out),
                 "--model", model, "--batch-size", "8"]) == 0
    table = pq.read_table(out).to_pydict()
    order = np.argsort(table["id"])
    got = np.array(table["embedding"], dtype=np.float32)[order]
    assert np.abs(got - reference_embeddings(model, texts)).max() < 1e-5
    assert not [f for f in os.listdir(tmp_path) if ".partial-" in f]
    write_jsonl(str(tmp_path / "long.jsonl"), [{"text": TEXTS[4] * 2}])
    assert main(["distributed", "embed", "--input", str(tmp_path / "long.jsonl"), "--output", str(tmp_path / "o2"),
                 "--model", model]) == 2
    assert "tokens long; the model takes at most 64" in capsys.readouterr().err  # the actor's error, as spago's
    assert not os.path.exists(tmp_path / "o2")
    assert main(["distributed", "embed", "--input", str(tmp_path / "*.jsonl"), "--output", str(out),
                 "--model", model]) == 2  # an output folder with files is not overwritten


def test_bad_arguments_get_spago_errors(cluster, tmp_path):
    model = fixture("tiny-bert/base")
    path = write_jsonl(str(tmp_path / "t.jsonl"), [{"text": "hello"}])
    with pytest.raises(SpagoError, match="no column 'body'.*text"):
        sd.embed(path, model, column="body")
    with pytest.raises(SpagoError, match="batch_size must be a positive int"):
        sd.embed(path, model, batch_size=0)
    with pytest.raises(SpagoError, match="num_actors"):
        sd.embed(path, model, num_actors=0)
    with pytest.raises(SpagoError, match="no input file matches"):
        sd.embed(str(tmp_path / "*.csv"), model)
    (tmp_path / "t.txt").write_text("hello\n")
    with pytest.raises(SpagoError, match="unknown input format"):
        sd.embed(str(tmp_path / "t.txt"), model)
    with pytest.raises(SpagoError, match="not a model folder"):
        sd.embed(path, str(tmp_path))
    with pytest.raises(SpagoError, match="already has a column 'text'"):
        sd.embed(path, model, output="text")
    with pytest.raises(SpagoError, match="tagger file not found"):
        sd.tag(path, str(tmp_path / "missing.pt"))
    with pytest.raises(SpagoError, match="expected a ray.data.Dataset or a path"):
        sd.read(42)


def test_cli_serves_two_replicas_over_tls(cluster, tmp_path, capsys):
    """`spago serve bert --ray --replicas 2` as a process on the module's cluster: TLS with a certificate made
    here, the plain server's endpoints and JSON, and SIGTERM takes the deployment down."""
    import queue
    import signal
    import socket
    import ssl
    import threading

    import httpx
    from fastapi.testclient import TestClient
    from ray import serve

    from spago.cli import main
    from spago.serve.app import build_app

    from ..serve.test_cli import make_certificate

    model = fixture("tiny-bert/qa")
    assert main(["serve", "bert", "--model", model, "--ray", "--tls-cert-file", str(tmp_path / "no.crt"),
                 "--tls-key-file", str(tmp_path / "no.key")]) == 2
    assert "TLS is on by default" in capsys.readouterr().err  # checked before Ray is reached
    cert, key = make_certificate(str(tmp_path))
    port = free_port()
    root = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    server = subprocess.Popen(
        [sys.executable, "-m", "spago.cli", "serve", "bert", "--model", model, "--ray", "--replicas", "2",
         "--ray-address", cluster.get_runtime_context().gcs_address, "--address", f"127.0.0.1:{port}",
         "--tls-cert-file", cert, "--tls-key-file", key, "--max-batch", "4", "--warm-length", "16"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.path.abspath(root) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stderr], daemon=True).start()

    def wait_for(prefix: str, seconds: float) -> str:
        seen = []
        try:
            while True:
                line = lines.get(timeout=seconds)
                seen.append(line)
                if line.startswith(prefix):
                    return line.strip()
        except queue.Empty:
            raise AssertionError(f"no {prefix!r} line in {seconds} s; the server wrote:\n{''.join(seen)}") from None

    url = f"https://127.0.0.1:{port}"
    try:
        assert wait_for("serving", 300) == \
            f"serving bert on {url} with 2 Ray Serve replica(s) (OpenAPI at /docs)"
        assert serve.status().applications["spago"].deployments["spago-bert"].replica_states.get("RUNNING") == 2
        context = ssl.create_default_context(cafile=cert)  # the handshake verifies the test certificate
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.getpeercert()["subject"] == ((("commonName", "127.0.0.1"),),)
        body = {"question": QUESTIONS[0], "passage": PASSAGES[0]}
        with TestClient(build_app("bert", model, max_batch=4, warm_length=16, log=None)) as local:
            want = local.post("/answer", json=body).json()
            want_health = local.get("/health").json()
            want_paths = sorted(local.get("/openapi.json").json()["paths"])
        with httpx.Client(base_url=url, verify=context, timeout=60) as http:
            assert sorted(http.get("/openapi.json").json()["paths"]) == want_paths
            for _ in range(4):  # requests spread over both replicas
                got = http.post("/answer", json=body)
                assert got.status_code == 200
                got = got.json()
                assert got.keys() == want.keys()
                assert_same_answers([got["answers"]], [want["answers"]])
            assert http.get("/health").json() == want_health
            bad = http.post("/answer", json={"question": "x"})
            assert bad.status_code == 422 and bad.json()["field"] == "passage"
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).raise_for_status()
        with pytest.raises(SpagoError, match="Ray Serve already runs on this cluster"):
            sd.deploy("bert", model, port=free_port())  # would keep the running proxy's address and TLS
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
    assert server.returncode == 0
    assert wait_for("stopped", 10) == "stopped"
    with pytest.raises(OSError):  # the proxy went down with the deployment
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_clear_error_without_ray():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import spago.distributed as sd\n"
            "from spago.errors import SpagoError\n"
            f"try:\n    sd.embed('x.csv', {fixture('tiny-bert/base')!r})\nexcept SpagoError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ})
    assert "pip install 'spago[ray]'" in out.stdout, out.stderr


def test_docs_snippets_run(cluster):
    """docs/distributed.md: every python block runs, in order, on the module's cluster."""
    import re

    minilm()
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "distributed.md")
    with open(doc, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert blocks
    namespace: dict = {"__name__": "distributed_guide"}
    for k, source in enumerate(blocks):
        exec(compile(source, f"docs/distributed.md block {k}", "exec"), namespace)
