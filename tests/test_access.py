"""Per-role broker permissions, proven with real connections (issue 5, item 7).

The `admin` binary provisions, in a vhost of this test's own (deleted afterwards), the shared
topology, two participants whose ids are prefixes of one another (`<tag>-1` and `<tag>-10`: an
unanchored permission regex would let the first read the second's queue) and a worker. Each
forbidden operation runs on a fresh channel and must be closed by the broker with 403
ACCESS_REFUSED; each allowed one must succeed, publishes with a publisher confirm.

Needs RabbitMQ with the management plugin: AMQP at the host and port of $AMQP_URL (default
127.0.0.1:5672), the HTTP API at $BROKER_ADMIN_URL (default http://127.0.0.1:15672) as
$BROKER_ADMIN_USER / $BROKER_ADMIN_PASSWORD (default guest/guest), an administrator.
Skipped only when no broker is reachable and $CI is unset. Needs the `admin` binary
(cargo build -p admin; cargo test --workspace builds it).
"""

import base64
import csv
import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Host and port of $AMQP_URL (the vhost and credentials in it are not used: this test has its own).
_AMQP = urllib.parse.urlsplit(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"))
AMQP_HOST = _AMQP.hostname or "127.0.0.1"
AMQP_PORT = _AMQP.port or 5672
ADMIN_URL = os.environ.get("BROKER_ADMIN_URL", "http://127.0.0.1:15672")
ADMIN_USER = os.environ.get("BROKER_ADMIN_USER", "guest")
ADMIN_PASSWORD = os.environ.get("BROKER_ADMIN_PASSWORD", "guest")
ACCESS_REFUSED = 403


def admin(method: str, path: str) -> tuple[int, object]:
    """Calls the management HTTP API as the admin; returns (status, decoded JSON or None)."""
    req = urllib.request.Request(f"{ADMIN_URL}/api/{path}", method=method)
    token = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    req.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, None


def broker_reachable() -> bool:
    try:
        with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2):
            pass
        return admin("GET", "overview")[0] == 200
    except OSError:
        return False


if not broker_reachable():
    if os.environ.get("CI"):
        raise RuntimeError(f"CI is set but no broker (with management API) at {AMQP_HOST}:{AMQP_PORT} / {ADMIN_URL}")
    pytest.skip("no RabbitMQ broker reachable", allow_module_level=True)


def admin_binary() -> Path:
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "admin"
        if candidate.exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no admin binary: run cargo test --workspace (or cargo build -p admin) first")
    pytest.skip("no admin binary built")


def read_credentials(path: Path) -> dict[str, str]:
    """user -> password of a credentials file the admin binary wrote."""
    with path.open(newline="") as f:
        return {row[0]: row[1] for row in list(csv.reader(f))[1:]}


class Access:
    """The provisioned vhost, credentials, and the counts the test reports."""

    def __init__(self, vhost: str, tag: str, binary: Path, credentials_dir: Path):
        self.vhost = vhost
        self.tag = tag
        self.binary = binary
        self.credentials_dir = credentials_dir
        self.passwords: dict[str, str] = {}
        self.users: list[str] = []
        self.allowed = 0
        self.refused_count = 0

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), "--vhost", self.vhost, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def credentials(self, name: str) -> Path:
        return self.credentials_dir / f"{name}.csv"

    def create(self, role: str, name: str) -> None:
        self.users.append(name)
        out = self.run(role, name, "--credentials", str(self.credentials(name))).stdout
        assert out == "", "a password must never reach stdout"
        written = read_credentials(self.credentials(name))
        assert list(written) == [name]
        self.passwords[name] = written[name]

    def connect(self, user: str) -> pika.BlockingConnection:
        params = pika.ConnectionParameters(
            host=AMQP_HOST,
            port=AMQP_PORT,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(user, self.passwords[user]),
            connection_attempts=1,
            blocked_connection_timeout=10,
        )
        return pika.BlockingConnection(params)

    def queue_depth(self, queue: str) -> int:
        """Messages ready in `queue`, asked as the admin with a passive declare (the management
        API's figures lag by seconds)."""
        params = pika.ConnectionParameters(
            host=AMQP_HOST,
            port=AMQP_PORT,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(ADMIN_USER, ADMIN_PASSWORD),
        )
        with pika.BlockingConnection(params) as conn:
            return conn.channel().queue_declare(queue, passive=True).method.message_count

    def refused(self, conn: pika.BlockingConnection, action, what: str) -> None:
        """`action(channel)` on a fresh channel must be refused with 403 (and the connection survive)."""
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            action(ch)
            # A refused publish closes the channel asynchronously; a round trip on it surfaces that.
            ch.basic_qos(prefetch_count=1)
        assert info.value.reply_code == ACCESS_REFUSED, f"{what}: {info.value}"
        assert conn.is_open, f"{what}: the connection closed too"
        self.refused_count += 1


def quote(s: str) -> str:
    return urllib.parse.quote(s, safe="")


@pytest.fixture
def access(request, tmp_path):
    tag = f"acc{uuid.uuid4().hex[:10]}"
    env = Access(vhost=f"access-test-{tag}", tag=tag, binary=admin_binary(), credentials_dir=tmp_path)

    def cleanup():
        for user in env.users:
            status, _ = admin("DELETE", f"users/{quote(user)}")
            assert status in (204, 404), f"deleting user {user}: HTTP {status}"
        status, _ = admin("DELETE", f"vhosts/{quote(env.vhost)}")
        assert status in (204, 404), f"deleting vhost {env.vhost}: HTTP {status}"

    request.addfinalizer(cleanup)
    env.run("topology")
    return env


def publish(ch, exchange: str, key: str, body: bytes) -> None:
    ch.basic_publish(
        exchange=exchange,
        routing_key=key,
        body=body,
        properties=pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        mandatory=True,
    )


def confirmed_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def test_participants_and_worker_get_exactly_their_rights(access):
    a, b, worker = f"{access.tag}-1", f"{access.tag}-10", f"{access.tag}-worker"
    access.create("participant", a)
    access.create("participant", b)
    access.create("worker", worker)
    reply_a, reply_b = f"results.{a}", f"results.{b}"

    # Idempotent: running again changes nothing, writes no password, the old password still works.
    before = {n: access.credentials(n).read_bytes() for n in (a, worker)}
    assert access.run("participant", a, "--credentials", str(access.credentials(a))).stdout == ""
    assert access.run("worker", worker, "--credentials", str(access.credentials(worker))).stdout == ""
    assert access.run("topology").stdout == ""
    assert {n: access.credentials(n).read_bytes() for n in (a, worker)} == before

    conn_a = access.connect(a)
    conn_w = access.connect(worker)
    try:
        # Participant A submits: publisher confirm acked, and the submission is in the work queue.
        submission = json.dumps({"participant": a, "probe": str(uuid.uuid4())}).encode()
        ch = confirmed_channel(conn_a)
        publish(ch, "readings", "submission", submission)  # raises on nack or unroutable
        access.allowed += 1
        assert access.queue_depth("readings.work") == 1

        # A can read its own reply queue (empty for now): basic_get and basic_consume work.
        ch = conn_a.channel()
        assert ch.basic_get(reply_a)[0] is None
        ch.basic_cancel(ch.basic_consume(reply_a, lambda *_: None))
        access.allowed += 2
        # A passive declare needs no permission: how participants check their queue exists.
        assert ch.queue_declare(reply_a, passive=True).method.message_count == 0

        # ...and nothing of B's, nor the work queue, nor the default exchange, nor topology.
        refused = [
            ("consume B's reply queue", lambda c: c.basic_consume(reply_b, lambda *_: None)),
            ("get from B's reply queue", lambda c: c.basic_get(reply_b)),
            ("purge B's reply queue", lambda c: c.queue_purge(reply_b)),
            ("delete B's reply queue", lambda c: c.queue_delete(reply_b)),
            ("consume the work queue", lambda c: c.basic_consume("readings.work", lambda *_: None)),
            ("get from the work queue", lambda c: c.basic_get("readings.work")),
            ("purge the work queue", lambda c: c.queue_purge("readings.work")),
            ("get from the dead-letter queue", lambda c: c.basic_get("readings.dead")),
            ("publish to the default exchange", lambda c: (c.confirm_delivery(), publish(c, "", reply_b, b"{}"))),
            ("publish to results", lambda c: (c.confirm_delivery(), publish(c, "results", reply_b, b"{}"))),
            ("declare a queue", lambda c: c.queue_declare(f"{access.tag}-own")),
            ("re-declare its own reply queue", lambda c: c.queue_declare(reply_a, durable=True)),
            ("bind B's queue elsewhere", lambda c: c.queue_bind(reply_b, "readings", "submission")),
            ("delete the readings exchange", lambda c: c.exchange_delete("readings")),
        ]
        for what, action in refused:
            access.refused(conn_a, action, f"participant {what}")
        assert access.queue_depth(reply_b) == 0, "something reached B's queue"

        # The worker consumes the submission and publishes a result to results / reply_to.
        ch = conn_w.channel()
        method, _props, body = ch.basic_get("readings.work")
        assert method is not None and body == submission
        pub = confirmed_channel(conn_w)
        publish(pub, "results", reply_a, b'{"result": "for A"}')
        publish(pub, "readings.dead", "submission", b'{"dead": "letter"}')
        ch.basic_ack(method.delivery_tag)
        access.allowed += 4
        assert access.queue_depth("readings.work") == 0
        assert access.queue_depth("readings.dead") == 1

        # A reads its result.
        method, _props, body = conn_a.channel().basic_get(reply_a, auto_ack=True)
        assert method is not None and body == b'{"result": "for A"}'
        access.allowed += 1

        worker_refused = [
            ("get from A's reply queue", lambda c: c.basic_get(reply_a)),
            ("consume A's reply queue", lambda c: c.basic_consume(reply_a, lambda *_: None)),
            ("get from the dead-letter queue", lambda c: c.basic_get("readings.dead")),
            ("publish to the default exchange", lambda c: (c.confirm_delivery(), publish(c, "", reply_a, b"{}"))),
            ("publish to readings", lambda c: (c.confirm_delivery(), publish(c, "readings", "submission", b"{}"))),
            ("delete the work queue", lambda c: c.queue_delete("readings.work")),
            ("re-declare the work queue", lambda c: c.queue_declare("readings.work", durable=True)),
        ]
        for what, action in worker_refused:
            access.refused(conn_w, action, f"worker {what}")
        assert access.queue_depth(reply_a) == 0
    finally:
        for conn in (conn_a, conn_w):
            if conn.is_open:
                conn.close()

    # Removing a participant closes its access; its reply queue (unread results) stays.
    access.run("remove", "participant", b)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        access.connect(b)
    assert access.queue_depth(reply_b) == 0
    access.run("remove", "participant", b, "--delete-queue")
    assert admin("GET", f"queues/{quote(access.vhost)}/{quote(reply_b)}")[0] == 404

    assert access.refused_count == len(refused) + len(worker_refused) == 21
    print(f"access: {access.allowed} allowed operations succeeded, {access.refused_count} forbidden ones refused with 403")
