"""The three binaries over TLS, end to end (issue 11, item 1).

scripts/tls-test-broker gives the local RabbitMQ a TLS listener (127.0.0.1:5671 by default) with a
throw-away test CA. A worker, `producer keygen` / `submit` and `consumer` then run with
AMQP_URL=amqps://...:5671 and PIPELINE__BROKER__TLS__CA_FILE set, in a topology of the test's own
(PIPELINE__TOPOLOGY__PREFIX, deleted afterwards), and the consumer must print the decrypted
results. The TLS port speaks nothing but TLS (pipeline/tests/tls.rs checks that a plain client is
refused there), so results arriving prove the binaries used TLS; the management API's view of the
connections is checked as well. Last, a plain amqp:// URL to a host that is not loopback makes a
binary refuse to start, in one line that names the setting that would allow it.

Needs the built binaries (cargo test --workspace builds them), openssl and a local RabbitMQ node.
"""

import base64
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BROKER_ADMIN_URL", "http://127.0.0.1:15672")
ADMIN_AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def binary(name: str) -> Path:
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / name
        if candidate.exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail(f"no {name} binary: run cargo test --workspace (or cargo build) first")
    pytest.skip(f"no {name} binary built")


def admin(method: str, path: str):
    request = urllib.request.Request(f"{ADMIN_URL}/api/{path}", method=method)
    request.add_header("Authorization", ADMIN_AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def endpoint() -> dict:
    script = ROOT / "scripts" / "tls-test-broker"
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script} failed: {done.stderr}"
    values = dict(word.split("=", 1) for word in done.stdout.split() if "=" in word)
    return {"dir": Path(values["TLS_TEST_DIR"]), "port": int(values["TLS_TEST_PORT"])}


@pytest.fixture
def tls_env(endpoint, tmp_path):
    prefix = f"tls-{uuid.uuid4().hex[:8]}."
    env = dict(os.environ)
    env.update(
        AMQP_URL=f"amqps://guest:guest@localhost:{endpoint['port']}/%2f",
        PIPELINE__BROKER__TLS__CA_FILE=str(endpoint["dir"] / "ca.pem"),
        PIPELINE__TOPOLOGY__PREFIX=prefix,
        PIPELINE__LIMITS__KEY_BITS_MIN="2048",
        KEY_STORE=str(tmp_path / "keys"),
        RUST_LOG="info",
        # Every party is guest here (the test is about the transport): the explicitly insecure
        # shared-user mode, where the worker does not bind submissions to their sender.
        PIPELINE__IDENTITY__INSECURE_SHARED_USER="true",
    )
    yield env
    # The test's own queues and exchanges.
    for kind in ("queues", "exchanges"):
        for item in admin("GET", f"{kind}/%2F?columns=name"):
            if item["name"].startswith(prefix):
                name = urllib.parse.quote(item["name"], safe="")
                try:
                    admin("DELETE", f"{kind}/%2F/{name}")
                except Exception:
                    pass  # already gone


def run(args, env, timeout=120):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_producer_worker_and_consumer_work_over_tls(tls_env, endpoint):
    worker = subprocess.Popen(
        [str(binary("worker"))],
        env=tls_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        keygen = run(
            [str(binary("producer")), "keygen", "--participant", "p-tls", "--bits", "2048"],
            tls_env,
        )
        assert keygen.returncode == 0, keygen.stderr
        # The worker declares the topology when it starts: wait for its work queue.
        queue = urllib.parse.quote(tls_env["PIPELINE__TOPOLOGY__PREFIX"] + "readings.work", safe="")
        deadline = time.monotonic() + 60
        while True:
            try:
                if admin("GET", f"queues/%2F/{queue}")["consumers"] >= 1:
                    break
            except Exception:
                pass
            assert worker.poll() is None, f"the worker exited: {worker.stderr.read()}"
            assert time.monotonic() < deadline, "the worker did not start consuming over TLS"
            time.sleep(0.5)
        tls_connections = [
            c
            for c in admin("GET", "connections?columns=name,ssl,port")
            if c.get("port") == endpoint["port"]
        ]
        assert tls_connections and all(c["ssl"] for c in tls_connections), tls_connections

        submit = run(
            [
                str(binary("producer")),
                "submit",
                "--participant",
                "p-tls",
                "--reading",
                "glucose=5.4",
                "--reading",
                "cholesterol=4.2",
            ],
            tls_env,
        )
        assert submit.returncode == 0, submit.stderr
        # The consumer leaves once its queue stayed empty for --timeout: let the result arrive
        # first, so a short timeout does.
        reply_queue = urllib.parse.quote(
            tls_env["PIPELINE__TOPOLOGY__PREFIX"] + "results.p-tls", safe=""
        )
        deadline = time.monotonic() + 60
        while admin("GET", f"queues/%2F/{reply_queue}").get("messages", 0) < 1:
            assert worker.poll() is None, f"the worker exited: {worker.stderr.read()}"
            assert time.monotonic() < deadline, "no result within 60 s"
            time.sleep(0.5)
        consume = run(
            [
                str(binary("consumer")),
                "--participant",
                "p-tls",
                "--timeout",
                "2s",
                "--format",
                "json",
            ],
            tls_env,
        )
        assert consume.returncode == 0, consume.stderr
        # glucose 5.4 mmol/L is 97.2864 mg/dL (factor 18.016).
        assert "97.28" in consume.stdout, consume.stdout
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_a_plain_url_to_a_remote_host_stops_a_binary_at_start(tmp_path):
    env = dict(os.environ)
    env.update(AMQP_URL="amqp://guest:secret@192.0.2.1:5672/%2f", KEY_STORE=str(tmp_path))
    started = time.monotonic()
    done = run(
        [str(binary("producer")), "submit", "--participant", "p-x", "--reading", "glucose=5"], env
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 5, "it tried to connect"
    errors = [line for line in done.stderr.splitlines() if "broker.allow_insecure_plaintext" in line]
    assert len(errors) == 1, done.stderr
    assert "secret" not in done.stderr
    # Allowed explicitly, a worker starts and tries to connect, with a warning (it would retry
    # for ever: 192.0.2.1 answers nothing; stopped after a few seconds).
    env["PIPELINE__BROKER__ALLOW_INSECURE_PLAINTEXT"] = "true"
    env["PIPELINE__BROKER__CONNECT_TIMEOUT"] = "1s"
    worker = subprocess.Popen(
        [str(binary("worker"))], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    time.sleep(3)
    worker.kill()
    stderr = worker.communicate(timeout=10)[1]
    assert "would send the password" not in stderr, stderr
    assert "WITHOUT TLS" in stderr and "allow_insecure_plaintext" in stderr, stderr
    assert "secret" not in stderr
