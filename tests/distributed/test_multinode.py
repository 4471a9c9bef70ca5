"""spago.distributed on a two-node Ray cluster on loopback: a head and one worker node started with `ray start`
(each on its own ports, under its own temporary folder), joined by the test's driver, and stopped by the test —
each `ray start --block` process group is ended by its id, so nothing else on the machine is touched."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from .conftest import TEXTS, free_port, minilm, reference_embeddings, write_jsonl

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'spago[ray]')")
pytest.importorskip("ray.data")

if shutil.which("ray") is None:
    pytest.skip("the `ray` command is not on PATH", allow_module_level=True)


def _ports() -> list[str]:
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
    low = free_port()
    return [arg for name in names for arg in (name, str(free_port()))] + \
        ["--min-worker-port", str(20000 + low % 20000), "--max-worker-port", str(20000 + low % 20000 + 60)]


def _start(args: list[str], temp: str) -> subprocess.Popen:
    command = ["ray", "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
               "--disable-usage-stats", *args, *_ports()]
    return subprocess.Popen(command, stdout=open(os.path.join(temp, "ray-start.log"), "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ})


def _stop(process: subprocess.Popen) -> None:
    """End a `ray start --block` and every process it started (its session), by process group id."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # the group outlives its leader while the daemons exit
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="module")
def two_nodes():
    # a loopback-only test cluster: no token to hand from the head to the worker node and the driver
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="spago-ray2-")
    port = free_port()
    head = _start(["--head", "--port", str(port), "--include-dashboard", "false",
                   "--ray-client-server-port", str(free_port()), "--temp-dir", temp], temp)
    worker = None
    try:
        address = f"127.0.0.1:{port}"
        for _ in range(120):  # bounded: the head answers within a minute on a loaded machine
            probe = subprocess.run(["ray", "status", "--address", address], capture_output=True, timeout=120)
            if probe.returncode == 0:
                break
            assert head.poll() is None, open(os.path.join(temp, "ray-start.log")).read()[-2000:]
            time.sleep(1)
        worker = _start(["--address", address], temp)
        yield address
    finally:
        for process in (worker, head):
            if process is not None:
                _stop(process)
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, timeout=60).stdout
        left = [line for line in ps.splitlines() if temp in line]
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved
        assert not left, f"Ray processes left running: {left}"


DRIVER = """
import json, sys, time
import numpy as np, ray
import spago.distributed as sd
ray.init(address=sys.argv[1], configure_logging=False, log_to_driver=False)
for _ in range(120):  # the worker node joins
    if len([n for n in ray.nodes() if n["Alive"]]) == 2:
        break
    time.sleep(1)
nodes, cpus = len([n for n in ray.nodes() if n["Alive"]]), ray.cluster_resources()["CPU"]
rows = sorted(sd.embed(sys.argv[2], sys.argv[3], batch_size=4, num_actors=2).take_all(), key=lambda r: r["id"])
np.save(sys.argv[4], np.array([r["embedding"] for r in rows], dtype=np.float32))
print(json.dumps({"nodes": nodes, "cpus": cpus}))
"""


def test_embed_on_two_nodes_equals_in_process(two_nodes, tmp_path):
    """The job runs from its own driver process, as a user's would (this process may hold another session)."""
    model = minilm()
    path = write_jsonl(str(tmp_path / "texts.jsonl"), [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    out = tmp_path / "embeddings.npy"
    done = subprocess.run([sys.executable, "-c", DRIVER, two_nodes, path, model, str(out)], capture_output=True,
                          text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    # two actors of one CPU each on two one-CPU nodes: one actor ran on each node
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"nodes": 2, "cpus": 2.0}
    got = np.load(out)
    assert np.abs(got - reference_embeddings(model, TEXTS)).max() < 1e-5
