"""Our own binaries under least privilege, on the real broker, as real users.

In a vhost of each test's own (created with the `admin` binary, deleted at the end) with
`topology.declare = false`: a participant's keygen -> submit -> consumer --submission works under
her own user with a worker under its worker user; a coordinator enrolls and collects its cohort
under its own user with a worker that lists it in identity.delegates, while a coordinator the
worker does not list, or the listed one for a participant outside its cohort, gets its enrollment
dead-lettered (identity_mismatch), not answered; and
every binary stops with one clear `error:` line and exit status 1, never a retry loop, when a
queue or a permission is missing. The broker-side refusals themselves (get, purge, delete of
another's queue, publishing to results or the default exchange) are tests/test_access.py's.
"""

import csv
import os
import subprocess
import time
import uuid
from pathlib import Path

import pika
import pytest

from test_access import ADMIN_PASSWORD, ADMIN_USER, AMQP_HOST, AMQP_PORT, ROOT, admin, admin_binary

TIMEOUT = 60


def binary(name: str) -> Path:
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / name
        if candidate.exists():
            return candidate
    pytest.skip(f"no {name} binary built")


class Study:
    """A vhost of the test's own, provisioned with `admin`; removed (users, vhost) at the end."""

    def __init__(self, tmp: Path):
        self.tag = uuid.uuid4().hex[:8]
        self.vhost = f"lp-{self.tag}"
        self.tmp = tmp
        self.participants: list[str] = []
        self.workers: list[str] = []
        self.coordinators: list[str] = []
        self.cohorts: list[str] = []
        self.keys = tmp / "keys"
        self.keys.mkdir(mode=0o700)
        self.admin("topology")

    def admin(self, *args: str) -> None:
        env = dict(os.environ, BROKER_ADMIN_USER=ADMIN_USER, BROKER_ADMIN_PASSWORD=ADMIN_PASSWORD)
        subprocess.run([str(admin_binary()), "--vhost", self.vhost, *args], check=True,
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)

    def url(self, role: str, name: str, *extra: str) -> str:
        path = self.tmp / f"{name}.csv"
        self.admin(role, name, *extra, "--credentials", str(path))
        {"participant": self.participants, "worker": self.workers}.get(role, self.coordinators).append(name)
        with path.open(newline="") as f:
            rows = list(csv.reader(f))[1:]
        return rows[0][2]

    def cohort(self, name: str, count: int) -> list[str]:
        """Provisions the cohort `name` of `count` members; returns their ids."""
        self.admin("cohort", "--prefix", name, "--count", str(count), "--credentials",
                   str(self.tmp / f"{name}-members.csv"))
        self.cohorts.append(f"{name}:{count}")
        return [f"{name}-{n}" for n in range(1, count + 1)]

    def amqp_as_admin(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            host=AMQP_HOST, port=AMQP_PORT, virtual_host=self.vhost,
            credentials=pika.PlainCredentials(ADMIN_USER, ADMIN_PASSWORD)))

    def env(self, url: str) -> dict[str, str]:
        return dict(os.environ, AMQP_URL=url, KEY_STORE=str(self.keys), PIPELINE__TOPOLOGY__DECLARE="false",
                    RUST_LOG="warn")

    def run(self, name: str, url: str, *args: str, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([str(binary(name)), *args], env=self.env(url), capture_output=True, text=True,
                              timeout=timeout)

    def remove(self) -> None:
        if self.participants:
            self.admin("remove", "participant", "--delete-queue", *self.participants)
        for cohort in self.cohorts:
            name, count = cohort.split(":")
            self.admin("remove", "cohort", "--prefix", name, "--count", count, "--delete-queue")
        for cohort in self.coordinators:
            self.admin("remove", "coordinator", cohort)
        if self.workers:
            self.admin("remove", "worker", *self.workers)
        admin("DELETE", f"vhosts/{self.vhost}")


@pytest.fixture
def study(tmp_path):
    s = Study(tmp_path)
    try:
        yield s
    finally:
        s.remove()


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_participant_round_trip_under_her_own_user(study):
    alice = f"{study.tag}-alice"
    alice_url = study.url("participant", alice)
    worker_url = study.url("worker", f"{study.tag}-worker")
    worker = subprocess.Popen([str(binary("worker"))], env=study.env(worker_url), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        keygen = study.run("producer", alice_url, "keygen", "--participant", alice, "--bits", "2048")
        assert keygen.returncode == 0, keygen.stderr
        submit = study.run("producer", alice_url, "submit", "--participant", alice, "--reading", "glucose=5.4",
                           "--reading", "cholesterol=4.2")
        assert submit.returncode == 0, submit.stderr
        sid = submit.stdout.split()[-1]
        shown = study.run("consumer", alice_url, "--participant", alice, "--submission", sid, "--timeout", "60s")
        assert shown.returncode == 0, shown.stderr
        assert f"submission {sid}" in shown.stdout
        assert "glucose_mg_dl" in shown.stdout
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err


def test_missing_reply_queue_stops_the_producer_with_one_line(study):
    alice_url = study.url("participant", f"{study.tag}-alice")
    # bob has a key but no reply queue: nobody provisioned him.
    bob = f"{study.tag}-bob"
    assert study.run("producer", alice_url, "keygen", "--participant", bob, "--bits", "2048").returncode == 0
    proc = study.run("producer", alice_url, "submit", "--participant", bob, "--reading", "glucose=5", timeout=30)
    assert proc.returncode == 1
    line = error_line(proc)
    assert f'queue "results.{bob}" does not exist' in line and "topology.declare = false" in line


def test_declaring_without_configure_rights_is_refused_once(study):
    alice = f"{study.tag}-alice"
    alice_url = study.url("participant", alice)
    assert study.run("producer", alice_url, "keygen", "--participant", alice, "--bits", "2048").returncode == 0
    env = study.env(alice_url) | {"PIPELINE__TOPOLOGY__DECLARE": "true"}
    proc = subprocess.run([str(binary("producer")), "submit", "--participant", alice, "--reading", "glucose=5"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    line = error_line(proc)
    assert "ACCESS_REFUSED" in line and "topology.declare = false" in line


def test_worker_without_read_on_the_work_queue_stops_instead_of_retrying(study):
    # A participant's user running a worker: it may not consume readings.work.
    url = study.url("participant", f"{study.tag}-alice")
    proc = study.run("worker", url, timeout=30)
    assert proc.returncode == 1
    line = error_line(proc)
    assert "ACCESS_REFUSED" in line and "readings.work" in line


def test_worker_with_a_wrong_password_stops_at_once(study):
    url = study.url("worker", f"{study.tag}-worker")
    user_part, host_part = url.rsplit("@", 1)
    proc = study.run("worker", user_part.rsplit(":", 1)[0] + ":wrong@" + host_part, timeout=30)
    assert proc.returncode == 1
    assert "refused the connection" in error_line(proc)


def test_worker_in_an_unprovisioned_vhost_names_the_missing_queue(study):
    url = study.url("worker", f"{study.tag}-worker")
    # The work queue removed by the operator: the worker's passive check finds it missing.
    status, _ = admin("DELETE", f"queues/{study.vhost}/readings.work")
    assert status == 204
    proc = study.run("worker", url, timeout=30)
    assert proc.returncode == 1
    assert 'queue "readings.work" does not exist' in error_line(proc)


def write_cohort_csv(path: Path, glucose: dict[str, list[float]], cholesterol: dict[str, float]) -> None:
    """A `producer enroll` cohort file: a participant's rows form its glucose series."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["participant", "glucose", "cholesterol"])
        for participant, series in glucose.items():
            for i, value in enumerate(series):
                out.writerow([participant, value, cholesterol[participant] if i == 0 else ""])


def dead_letters(study: Study, expected: int, timeout: float = 60) -> list[dict]:
    """Takes (as the admin) the first `expected` messages of readings.dead; their headers."""
    deadline = time.monotonic() + timeout
    headers: list[dict] = []
    connection = study.amqp_as_admin()
    try:
        channel = connection.channel()
        while len(headers) < expected and time.monotonic() < deadline:
            method, properties, _ = channel.basic_get("readings.dead", auto_ack=True)
            if method is None:
                time.sleep(0.2)
                continue
            headers.append({k: v.decode() if isinstance(v, bytes) else v
                            for k, v in (properties.headers or {}).items()})
    finally:
        connection.close()
    return headers


def queued(study: Study, queue: str) -> int:
    connection = study.amqp_as_admin()
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_coordinator_enrolls_and_collects_its_cohort(study):
    cohort, other = f"c{study.tag}", f"d{study.tag}"
    members = study.cohort(cohort, 4)
    coordinator_url = study.url("coordinator", cohort)
    # A second cohort whose coordinator the worker does not list as a delegate.
    others = study.cohort(other, 2)
    other_url = study.url("coordinator", other)
    worker_url = study.url("worker", f"{study.tag}-worker")
    # A table cannot come from the environment, so the delegates go in a file.
    worker_config = study.tmp / "worker.toml"
    worker_config.write_text(f'[identity.delegates]\n"{cohort}-coordinator" = "{cohort}"\n')
    worker = subprocess.Popen([str(binary("worker")), "--config", str(worker_config)], env=study.env(worker_url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        glucose = {m: [4.0 + n, 6.5 + n] for n, m in enumerate(members)}
        cholesterol = {m: 3.25 + n for n, m in enumerate(members)}
        cohort_csv, journal, rows_file = (study.tmp / f"{cohort}-enroll.csv", study.tmp / f"{cohort}.journal",
                                          study.tmp / f"{cohort}-results.csv")
        write_cohort_csv(cohort_csv, glucose, cholesterol)
        enroll = study.run("producer", coordinator_url, "enroll", "--csv", str(cohort_csv), "--bits", "2048",
                           "--journal", str(journal), timeout=120)
        assert enroll.returncode == 0, enroll.stderr
        collect = study.run("consumer", coordinator_url, "collect", "--journal", str(journal), "--out",
                            str(rows_file), "--wait", "60s", timeout=120)
        assert collect.returncode == 0, collect.stderr
        with rows_file.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert sorted(row["participant"] for row in rows) == sorted(members), rows
        for row in rows:
            participant = row["participant"]
            assert row["status"] == "ok", row
            assert float(row["glucose_mean"]) == pytest.approx(sum(glucose[participant]) / 2, abs=1e-3), row
            assert float(row["glucose_sum"]) == pytest.approx(sum(glucose[participant]), abs=1e-3), row
            assert float(row["cholesterol_mean"]) == pytest.approx(cholesterol[participant], abs=1e-3), row
        assert all(queued(study, f"results.{m}") == 0 for m in members)

        # The same kind of enrollment by the coordinator the worker does not list: the broker lets
        # it publish (it may write readings), the worker refuses it and nothing is answered.
        others_csv = study.tmp / f"{other}-enroll.csv"
        write_cohort_csv(others_csv, {m: [5.0, 5.5] for m in others}, {m: 4.0 for m in others})
        enroll = study.run("producer", other_url, "enroll", "--csv", str(others_csv), "--bits", "2048",
                           "--journal", str(study.tmp / f"{other}.journal"), timeout=120)
        assert enroll.returncode == 0, enroll.stderr
        # The listed coordinator for a participant outside its cohort: refused too.
        outsider = study.tag + "-x"
        study.url("participant", outsider)
        outsider_csv = study.tmp / "outsider-enroll.csv"
        write_cohort_csv(outsider_csv, {outsider: [5.0]}, {outsider: 4.0})
        enroll = study.run("producer", coordinator_url, "enroll", "--csv", str(outsider_csv), "--bits", "2048",
                           "--journal", str(study.tmp / "outsider.journal"), timeout=120)
        assert enroll.returncode == 0, enroll.stderr
        refused = dead_letters(study, len(others) + 1)
        assert len(refused) == len(others) + 1, refused
        assert all(headers["x-rejection-kind"] == "identity_mismatch" for headers in refused), refused
        senders = sorted(headers["x-original-user-id"] for headers in refused)
        assert senders == sorted([f"{cohort}-coordinator"] + [f"{other}-coordinator"] * len(others)), refused
        # Dead-lettered means processed: no result can still be on its way.
        assert [queued(study, f"results.{m}") for m in [*others, outsider]] == [0] * (len(others) + 1)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
