"""The README's "Submitting from any AMQP client" example, run as written against a real worker.

The Python block is taken from README.md itself, so the documentation cannot drift from what
works: python-paillier encrypts, the Rust worker computes, python-paillier decrypts.
"""

import json
import os
import uuid
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_client_code() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n(import json, os, uuid, pika, phe.*?)```", text, re.S)
    assert match, "README.md lost its Python client example"
    return match.group(1)


def worker_binary() -> Path:
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "worker"
        if candidate.exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no worker binary: run cargo test --workspace (or cargo build -p worker) first")
    pytest.skip("no worker binary built")


def management(method: str, path: str, body: dict | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:15672/api/{path}", data=data, method=method
    )
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    request.add_header("content-type", "application/json")
    urllib.request.urlopen(request, timeout=5)


def create_participant_user(vhost: str, name: str, password: str) -> None:
    """The example's own broker user: the worker binds a submission to its sender (issue 10).
    It may declare and bind its reply queue (configure on it, write on it, read on `results`),
    publish to `readings` and read its own queue."""
    management("PUT", f"users/{name}", {"password": password, "tags": ""})
    queue = re.escape(f"results.{name}")
    management(
        "PUT",
        f"permissions/{vhost}/{name}",
        {"configure": f"^{queue}$", "write": f"^(readings|{queue})$", "read": f"^({queue}|results)$"},
    )


def test_readme_python_client_gets_correct_decrypted_results(tmp_path):
    code = readme_client_code()
    script = tmp_path / "client.py"
    script.write_text(code, encoding="utf-8")
    # A vhost of its own: the topology the worker declares (with this branch's queue arguments)
    # cannot clash with queues other runs left in "/".
    vhost = f"readme-{uuid.uuid4().hex[:12]}"
    management("PUT", f"vhosts/{vhost}", {})
    management("PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    create_participant_user(vhost, "p-042", "readme-example-pw")
    env = dict(os.environ, AMQP_URL=f"amqp://p-042:readme-example-pw@127.0.0.1:5672/{vhost}")
    worker_env = dict(os.environ, AMQP_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    worker = subprocess.Popen(
        [str(worker_binary())],
        env=worker_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker_log = worker.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            worker.kill()
            worker_log = worker.communicate()[1]
        for path in ("users/p-042", f"vhosts/{vhost}"):
            try:
                management("DELETE", path)
            except Exception:
                pass
    assert client.returncode == 0, client.stderr + "\nworker:\n" + worker_log
    assert worker.returncode == 0, worker_log
    outputs = {}
    for line in client.stdout.splitlines():
        name, value, *_ = line.split()
        outputs[name] = float(value)
    # The example submits glucose 5.4 and 6.1 and cholesterol 4.2, encoded at the default study's
    # precision 0.0001 (exponent -4, steps of 16^-4); the worker computes on those kept values:
    def kept(x):
        return round(x * 16**4) / 16**4

    glucose_mean = (kept(5.4) + kept(6.1)) / 2
    cholesterol = kept(4.2)
    expected = {
        "glucose_mg_dl": glucose_mean * 18.016,
        "cholesterol_mg_dl": cholesterol * 38.67,
        "glucose_sum": kept(5.4) + kept(6.1),
        "glucose_mean": glucose_mean,
        "cholesterol_mean": cholesterol,
        "risk_score": -2.5 + 0.35 * glucose_mean + 0.6 * cholesterol,
    }
    assert set(outputs) == set(expected), client.stdout
    for name, value in expected.items():
        assert outputs[name] == pytest.approx(value, rel=1e-9), name
