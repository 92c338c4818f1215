"""The `admin` binary against the real broker (issue 10, item 2): a coordinator reads its cohort's
reply queues and no other cohort's; provisioning is idempotent (nothing created, passwords and the
credentials file untouched), resumes after an interruption (a kill at any point, or users lost
after their passwords were written), and the credentials file is created 0600 and never
overwritten.

Each test provisions its own vhost and users and removes them. Same broker requirements as
test_access.py (whose helpers it uses).
"""

import base64
import csv
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest

from test_access import (
    ACCESS_REFUSED,
    ADMIN_URL,
    AMQP_HOST,
    AMQP_PORT,
    admin,
    admin_binary,
    confirmed_channel,
    publish,
    quote,
    read_credentials,
)


class Study:
    """A vhost of the test's own, provisioned with the admin binary."""

    def __init__(self, tmp_path: Path):
        self.tag = f"adm{uuid.uuid4().hex[:8]}"
        self.vhost = f"admin-test-{self.tag}"
        self.dir = tmp_path
        self.binary = admin_binary()

    def run(self, *args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.binary), "--vhost", self.vhost, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"admin {' '.join(args)}: {result.stderr}"
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout)

    def connect(self, user: str, password: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(
            pika.ConnectionParameters(
                host=AMQP_HOST,
                port=AMQP_PORT,
                virtual_host=self.vhost,
                credentials=pika.PlainCredentials(user, password),
                connection_attempts=1,
            )
        )

    def users(self) -> set[str]:
        status, users = admin("GET", "users")
        assert status == 200
        return {u["name"] for u in users if u["name"].startswith(self.tag)}

    def cleanup(self) -> None:
        for user in self.users():
            status, _ = admin("DELETE", f"users/{quote(user)}")
            assert status in (204, 404), f"deleting user {user}: HTTP {status}"
        status, _ = admin("DELETE", f"vhosts/{quote(self.vhost)}")
        assert status in (204, 404), f"deleting vhost {self.vhost}: HTTP {status}"


def password_works(user: str, password: str) -> bool:
    """Whether the broker accepts `password` for `user`. A user without a management tag is told
    "Not management user" only once its password was accepted (else "Login failed"): one HTTP
    request instead of an AMQP connection."""
    req = urllib.request.Request(f"{ADMIN_URL}/api/whoami")
    req.add_header("authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as err:
        reason = json.loads(err.read() or b"{}").get("reason", "")
        return err.code == 401 and reason == "Not management user"
    raise AssertionError(f"{user} has management access")


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def study(request, tmp_path):
    s = Study(tmp_path)
    request.addfinalizer(s.cleanup)
    s.run("topology")
    return s


def refused(conn, action, what: str) -> None:
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        action(ch)
        ch.basic_qos(prefetch_count=1)
    assert info.value.reply_code == ACCESS_REFUSED, f"{what}: {info.value}"


def test_a_coordinator_reads_its_cohort_only(study):
    a, b = study.tag, f"{study.tag}-x"  # cohort b's members a-x-<n> start like cohort a's
    creds = study.dir / "cohorts.csv"
    assert study.json("cohort", "--prefix", a, "--count", "11", "--credentials", str(creds))["users_created"] == 11
    study.run("cohort", "--prefix", b, "--count", "2", "--credentials", str(study.dir / "b.csv"))
    coordinator_a = study.dir / "coord-a.csv"
    coordinator_b = study.dir / "coord-b.csv"
    study.run("coordinator", a, "--credentials", str(coordinator_a))
    study.run("coordinator", b, "--credentials", str(coordinator_b))
    # A cohort name ending in -<digits> would overlap another cohort's members: refused (usage).
    bad = study.run("coordinator", f"{a}-1", "--credentials", str(study.dir / "bad.csv"), check=False)
    assert bad.returncode == 2 and "may not end in" in bad.stderr
    assert not (study.dir / "bad.csv").exists()

    ((user_a, password_a),) = read_credentials(coordinator_a).items()
    ((user_b, password_b),) = read_credentials(coordinator_b).items()
    assert user_a == f"{a}-coordinator" and user_b == f"{b}-coordinator"

    # A participant's result, published as the worker would, for a member of each cohort.
    worker_creds = study.dir / "worker.csv"
    study.run("worker", f"{study.tag}-worker", "--credentials", str(worker_creds))
    ((worker, worker_password),) = read_credentials(worker_creds).items()
    with study.connect(worker, worker_password) as conn:
        ch = confirmed_channel(conn)
        for member in (f"{a}-1", f"{a}-11", f"{b}-1"):
            publish(ch, "results", f"results.{member}", member.encode())

    with study.connect(user_a, password_a) as conn:
        ch = conn.channel()
        for member in (f"{a}-1", f"{a}-11"):
            method, _, body = ch.basic_get(f"results.{member}", auto_ack=True)
            assert method is not None and body == member.encode()
        publish(confirmed_channel(conn), "readings", "submission", b'{"on behalf": true}')
        for what, action in [
            ("read cohort b's queue", lambda c: c.basic_get(f"results.{b}-1")),
            ("consume cohort b's queue", lambda c: c.basic_consume(f"results.{b}-1", lambda *_: None)),
            ("read the work queue", lambda c: c.basic_get("readings.work")),
            ("publish to results", lambda c: (c.confirm_delivery(), publish(c, "results", f"results.{b}-1", b"x"))),
            ("publish to the default exchange", lambda c: (c.confirm_delivery(), publish(c, "", f"results.{b}-1", b"x"))),
            ("declare a queue", lambda c: c.queue_declare(f"results.{a}-99")),
            ("delete a member's queue", lambda c: c.queue_delete(f"results.{a}-1")),
        ]:
            refused(conn, action, f"coordinator a: {what}")

    with study.connect(user_b, password_b) as conn:
        method, _, body = conn.channel().basic_get(f"results.{b}-1", auto_ack=True)
        assert method is not None and body == f"{b}-1".encode()
        refused(conn, lambda c: c.basic_get(f"results.{a}-1"), "coordinator b: read cohort a's queue")

    # A participant is not a coordinator of anything: its own queue only.
    password_1 = read_credentials(creds)[f"{a}-1"]
    with study.connect(f"{a}-1", password_1) as conn:
        refused(conn, lambda c: c.basic_get(f"results.{a}-11"), "participant a-1: read a-11's queue")

    # The operator's own user is never changed or removed under a role.
    other = study.run("remove", "participant", user_a, check=False)
    assert other.returncode == 2 and "refusing" in other.stderr
    removed = study.json("remove", "coordinator", a)
    assert removed["users_removed"] == 1
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        study.connect(user_a, password_a)


def test_idempotent_private_and_never_overwritten(study):
    creds = study.dir / "c.csv"
    first = study.json("cohort", "--prefix", study.tag, "--count", "5", "--credentials", str(creds))
    assert (first["users_created"], first["queues_declared"], first["credentials_written"]) == (5, 5, 5)
    assert creds.stat().st_mode & 0o777 == 0o600
    table = rows(creds)
    assert table[0] == ["participant", "password", "amqp_url"]
    assert [r[0] for r in table[1:]] == [f"{study.tag}-{n}" for n in range(1, 6)]
    for user, password, url in table[1:]:
        assert len(password) == 32 and password.isalnum()
        assert url == f"amqp://{user}:{password}@{AMQP_HOST}:{AMQP_PORT}/{study.vhost}"
        assert password_works(user, password)
    assert len({r[1] for r in table[1:]}) == 5, "passwords must differ"

    before = (creds.read_bytes(), creds.stat().st_mtime_ns)
    again = study.run("cohort", "--prefix", study.tag, "--count", "5", "--credentials", str(creds), "--json")
    summary = json.loads(again.stdout)
    assert (summary["users_created"], summary["users_existing"]) == (0, 5)
    assert (summary["queues_declared"], summary["permissions_set"], summary["credentials_written"]) == (0, 0, 0)
    assert (creds.read_bytes(), creds.stat().st_mtime_ns) == before, "a re-run must not touch the file"
    for user, password, _ in table[1:]:
        assert password_works(user, password), "a re-run must not change passwords"
        assert password not in again.stderr + again.stdout, "a password reached the output"

    # A file readable by others, or not one of ours, is refused and left as it was.
    loose = study.dir / "loose.csv"
    loose.write_text("participant,password,amqp_url\n")
    loose.chmod(0o644)
    result = study.run("participant", f"{study.tag}-new", "--credentials", str(loose), check=False)
    assert result.returncode == 2 and "readable by others" in result.stderr
    assert loose.read_text() == "participant,password,amqp_url\n"
    foreign = study.dir / "foreign.csv"
    foreign.write_text("name,secret\nx,y\n")
    foreign.chmod(0o600)
    result = study.run("participant", f"{study.tag}-new", "--credentials", str(foreign), check=False)
    assert result.returncode == 2 and foreign.read_text() == "name,secret\nx,y\n"
    assert f"{study.tag}-new" not in study.users(), "nothing may be created when the file is refused"

    # --reset-password gives new passwords, written to a new file; the old ones stop working.
    reset = study.dir / "reset.csv"
    summary = study.json("cohort", "--prefix", study.tag, "--count", "2", "--credentials", str(reset), "--reset-password")
    assert (summary["passwords_reset"], summary["users_created"], summary["credentials_written"]) == (2, 0, 2)
    for user, password in read_credentials(reset).items():
        assert password_works(user, password)
        assert not password_works(user, read_credentials(creds)[user])


def test_resumes_after_users_were_lost_between_file_and_broker(study):
    """An interruption after the passwords were written and before the users were created: the
    re-run creates them with the passwords from the file, appending nothing."""
    creds = study.dir / "c.csv"
    study.run("cohort", "--prefix", study.tag, "--count", "6", "--credentials", str(creds))
    written = read_credentials(creds)
    for n in (4, 5, 6):
        assert admin("DELETE", f"users/{quote(f'{study.tag}-{n}')}")[0] == 204
    assert admin("DELETE", f"queues/{quote(study.vhost)}/{quote(f'results.{study.tag}-5')}")[0] == 204
    before = creds.read_bytes()
    summary = study.json("cohort", "--prefix", study.tag, "--count", "8", "--credentials", str(creds))
    assert (summary["users_created"], summary["users_existing"]) == (5, 3)
    assert (summary["queues_declared"], summary["credentials_written"]) == (3, 2)  # 5, 7, 8; rows of 7, 8
    after = read_credentials(creds)
    assert creds.read_bytes().startswith(before), "the file is only appended to"
    assert {u: p for u, p in after.items() if u in written} == written
    assert len(rows(creds)) == 1 + 8
    for user, password in after.items():
        assert password_works(user, password), user


def test_resumes_after_a_kill_at_any_point(study):
    creds = study.dir / "c.csv"
    count = 400
    args = [str(study.binary), "--vhost", study.vhost, "cohort", "--prefix", study.tag, "--count", str(count),
            "--credentials", str(creds)]
    stopped = []
    for delay in (0.4, 0.8, 1.1):  # wherever these land: declaring queues, writing, importing
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            stopped.append(delay)
        proc.wait(timeout=30)
    left = (len(study.users()), len(rows(creds)) - 1 if creds.exists() else 0)
    summary = study.json("cohort", "--prefix", study.tag, "--count", str(count), "--credentials", str(creds))
    assert summary["users_created"] + summary["users_existing"] == count
    # The broker may finish an import whose client was killed: more may exist than was counted.
    assert summary["users_existing"] >= left[0]
    assert study.users() == {f"{study.tag}-{n}" for n in range(1, count + 1)}
    table = rows(creds)
    assert len(table) == 1 + count and len({r[0] for r in table[1:]}) == count, "one row per participant"
    assert creds.stat().st_mode & 0o777 == 0o600
    for user, password, _ in table[1:]:
        assert password_works(user, password), user
    status, queues = admin("GET", f"queues/{quote(study.vhost)}?columns=name")
    assert status == 200
    assert {q["name"] for q in queues} >= {f"results.{study.tag}-{n}" for n in range(1, count + 1)}
    print(f"admin resume: killed at {stopped} s leaving {left[0]} users and {left[1]} rows; "
          f"{summary['users_created']} created on resume")


def test_a_user_in_two_studies_is_only_removed_from_one(study, tmp_path):
    """User names are broker-wide: removing a participant from one study's vhost must not lock it
    out of another study it belongs to."""
    other = Study(tmp_path)
    other.tag = study.tag
    other.vhost = f"{study.vhost}-2"
    try:
        other.run("topology")
        me = f"{study.tag}-1"
        creds = tmp_path / "p.csv"
        study.run("participant", me, "--credentials", str(creds))
        summary = other.json("participant", me, "--credentials", str(creds))
        assert (summary["users_created"], summary["users_existing"], summary["credentials_written"]) == (0, 1, 0)
        password = read_credentials(creds)[me]
        removed = study.json("remove", "participant", me)
        assert (removed["users_removed"], removed["permissions_set"]) == (0, 1)
        with other.connect(me, password) as conn:
            assert conn.channel().basic_get(f"results.{me}")[0] is None
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            study.connect(me, password)
        assert other.json("remove", "participant", me)["users_removed"] == 1
        assert me not in study.users()
    finally:
        status, _ = admin("DELETE", f"vhosts/{quote(other.vhost)}")
        assert status in (204, 404)
