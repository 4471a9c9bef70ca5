"""`spago serve` and `spago client` as processes and commands: TLS on by default (a clear exit without
certificates), the start-up progress lines, a TLS handshake with a certificate made here, the client with
--insecure / --ca-file, JSON and YAML output."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

from spago.cli import main
from spago.errors import SpagoError
from spago.serve.cli import parse_address
from spago.serve.client import Client, ServerError

from .conftest import fixture, free_port

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make_certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 / localhost and its key (PEM files), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(folder, "server.crt"), os.path.join(folder, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def spago(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "spago.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_parse_address():
    assert parse_address("0.0.0.0:1987") == ("0.0.0.0", 1987)
    assert parse_address(":8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:443") == ("::1", 443)
    for bad in ("localhost", "host:port", "1.2.3.4:70000"):
        with pytest.raises(SpagoError, match="HOST:PORT"):
            parse_address(bad)


def test_no_certificate_and_no_tls_disable_exits_with_a_clear_message(tmp_path, capsys):
    model = fixture("tiny-bert/qa")
    assert main(["serve", "bert", "--model", model, "--tls-cert-file", str(tmp_path / "x.crt"),
                 "--tls-key-file", str(tmp_path / "x.key")]) == 2
    err = capsys.readouterr().err
    assert "TLS is on by default" in err and "--tls-disable" in err and "x.crt" in err
    (tmp_path / "bad.crt").write_text("not a certificate")
    (tmp_path / "bad.key").write_text("not a key")
    assert main(["serve", "bert", "--model", model, "--tls-cert-file", str(tmp_path / "bad.crt"),
                 "--tls-key-file", str(tmp_path / "bad.key")]) == 2
    assert "cannot use the TLS certificate" in capsys.readouterr().err


def test_the_default_certificate_paths_are_the_go_spagos(capsys):
    if os.path.exists("/etc/ssl/certs/spago/server.crt"):
        pytest.skip("this machine has a certificate at the default path")
    assert main(["serve", "ner", "--model", "unused"]) == 2
    err = capsys.readouterr().err
    assert "/etc/ssl/certs/spago/server.crt" in err and "/etc/ssl/certs/spago/server.key" in err


def test_tls_server_client_and_commands(tmp_path, capsys):
    cert, key = make_certificate(str(tmp_path))
    port = free_port()
    server = spago("serve", "bert", "--model", fixture("tiny-bert/qa"), "--address", f"127.0.0.1:{port}",
                   "--tls-cert-file", cert, "--tls-key-file", key, "--max-batch", "2", "--warm-length", "16")
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("serving"):
                break
        assert [x[:5] for x in lines[:3]] == ["[1/3]", "[2/3]", "[3/3]"], lines
        assert "configuration" in lines[0] and "vocabulary" in lines[1] and "weights" in lines[2]
        assert lines[-1] == f"serving bert on https://127.0.0.1:{port} (OpenAPI at /docs)", lines
        url = f"https://127.0.0.1:{port}"
        _wait_for_port(port)

        context = ssl.create_default_context(cafile=cert)  # the handshake verifies the test certificate
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.getpeercert()["subject"] == ((("commonName", "127.0.0.1"),),)

        with Client(url, insecure=True) as client:
            answers = client.answer("who lives in paris?", "john lives in paris.", max_answers=2)["answers"]
            assert len(answers) == 2 and client.health()["endpoints"] == ["/answer"]
            with pytest.raises(ServerError, match="404"):
                client.analyze("john")
        with Client(url, ca_file=cert) as client:
            assert client.answer("who?", "john.")["answers"]
        with Client(url) as client, pytest.raises(SpagoError, match="--insecure"):
            client.health()  # the system's authorities do not know the test certificate

        assert main(["client", "answer", "--server", url, "--insecure", "--question", "who lives in paris?",
                     "--passage", "john lives in paris.", "--max-answers", "1"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["answers"][0]["text"] == answers[0]["text"] and "took" in printed
        assert main(["client", "answer", "--server", url, "--ca-file", cert, "--question", "who?",
                     "--passage", "john.", "--output", "yaml"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("answers:\n- text: ") and "took: " in out
        assert main(["client", "analyze", "--server", url, "--insecure", "--text", "john"]) == 2
        assert "the server answered 404" in capsys.readouterr().err
        assert main(["client", "answer", "--server", url, "--insecure", "--question", "who?"]) == 2
        assert "needs --passage" in capsys.readouterr().err
    finally:
        server.terminate()
        server.wait(20)


def test_client_commands_against_a_plain_http_encoder(capsys):
    from .conftest import app_for, running

    with running(app_for("bert", "tiny-bert/base")) as url:
        assert main(["client", "encode", "--server", url, "--text", "hello world"]) == 0
        assert len(json.loads(capsys.readouterr().out)["data"]) == 32
        assert main(["client", "encode", "--server", url, "--text", "a", "--text", "b", "--pooling", "cls"]) == 0
        assert [len(v) for v in json.loads(capsys.readouterr().out)["data"]] == [32, 32]
        assert main(["client", "similarity", "--server", url, "--text", "a cat", "--text", "a cat",
                     "--output", "yaml"]) == 0
        import yaml

        sim = yaml.safe_load(capsys.readouterr().out)["similarity"]
        assert abs(sim[0][1] - 1.0) < 1e-5
        assert main(["client", "similarity", "--server", url, "--text", "one"]) == 2
        with Client(url) as client:
            assert client.encode(["x", "y"])["data"][0] and client.similarity(["x", "y"])["similarity"]
    assert main(["client", "encode", "--server", url, "--text", "x"]) == 2  # the server is gone
    assert "cannot reach" in capsys.readouterr().err


def test_the_python_client_covers_every_endpoint():
    from .conftest import app_for, running

    for name, call in (("tiny-bert/mlm", lambda c: c.predict("the [MASK] sat.", top_k=2)),
                       ("tiny-electra/discriminator", lambda c: c.discriminate("the chef ate.")),
                       ("tiny-bert/sequence-classification", lambda c: c.classify("a", "b")),
                       ("tiny-bert/token-classification", lambda c: c.analyze("john smith", True, True))):
        with running(app_for("bert", name)) as url, Client(url) as client:
            result = call(client)
            assert "took" in result and ("tokens" in result or "class" in result)
    with pytest.raises(SpagoError, match="http:// or https://"):
        Client("localhost:1987")


def _wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_several_worker_processes(capsys):
    port = free_port()
    server = spago("serve", "bert", "--model", fixture("tiny-bert/qa"), "--address", f"127.0.0.1:{port}",
                   "--tls-disable", "--workers", "2", "--max-batch", "1", "--warm-length", "16")
    try:
        _wait_for_port(port, 120)
        with Client(f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while True:  # the port opens before every worker has loaded its model
                try:
                    assert client.answer("who?", "john lives here.")["answers"]
                    break
                except SpagoError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert "with 2 worker processes" in err and err.count("[3/3] weights") == 2
