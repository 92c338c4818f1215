"""What the scripts that drive the pipeline's binaries share (scripts/reliability,
bench/pipeline.py): starting and stopping processes, their CPU and memory, a RabbitMQ node of
one's own, the worker's event stream and the producer's enrollment journal.

Both formats read here are contracts of the binaries, parsed in this one place:
- the worker's events (`worker --events FILE`): one JSON object per line with its kind in
  `event` (worker/src/events.rs); scripts never read the worker's log prose;
- the enrollment journal (`producer enroll --journal FILE`, pipeline/src/journal.rs): `#` header
  lines, then `<participant>\\t<submission id>` per confirmed submission; a last line without its
  newline is a write cut short by a crash, not a confirmed submission.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
STARTED = time.time()


class HarnessError(Exception):
    """A process or a step failed; the script reports it and exits non-zero."""


def log(msg):
    """A progress line on stderr, with the seconds since the script started."""
    print(f"[{time.time() - STARTED:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


CHILDREN = []  # every Popen started here and still running, stopped by stop_all()
LAST_CPU = [0.0]  # CPU seconds (user + system) of the last command run() waited for


class RssSampler(threading.Thread):
    """Samples VmHWM/VmRSS of a process every 50 ms; keeps the highest values seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.hwm_kb, self.rss_kb, self.samples = pid, 0, 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
                        elif line.startswith("VmRSS:"):
                            self.rss_kb = max(self.rss_kb, int(line.split()[1]))
                self.samples += 1
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            self.stop.wait(0.05)


def run(cmd, env, what, timeout=3600, rss=False):
    """Runs a command to completion; returns (seconds, stdout, peak RSS in kB or None).
    A non-zero exit or a timeout raises HarnessError with the end of its stderr."""
    log(f"{what}: {' '.join(str(c) for c in cmd)}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [str(c) for c in cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    CHILDREN.append(p)
    sampler = None
    if rss:
        sampler = RssSampler(p.pid)
        sampler.start()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise HarnessError(f"{what}: timed out after {timeout} s")
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): stop the command before the broker is cleaned up,
        # or it goes on declaring queues under the prefix being deleted.
        stop(p, grace=10)
        raise
    finally:
        if p in CHILDREN:
            CHILDREN.remove(p)
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if sampler:
        sampler.stop.set()
        sampler.join()
    if p.returncode != 0:
        raise HarnessError(f"{what}: exit {p.returncode}\n{err.strip()[-2000:]}")
    return secs, out, (sampler.hwm_kb if sampler else None)


def start(cmd, env, what, log_file, stdout_file=None):
    """Starts a command in the background, its stderr (and stdout, unless `stdout_file` is
    given) to `log_file`; the Popen is stopped by stop_all() if nobody stopped it before."""
    log(f"start {what}: {' '.join(str(c) for c in cmd)}")
    err = open(log_file, "w")
    out = open(stdout_file, "w") if stdout_file else err
    p = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out, stderr=err,
                         stdin=subprocess.DEVNULL)
    CHILDREN.append(p)
    return p


def stop(p, grace=30):
    """SIGTERM (a worker finishes what it holds), then SIGKILL after `grace` seconds.
    Returns the exit code, or None when it had to be killed."""
    killed = False
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            killed = True
    if p in CHILDREN:
        CHILDREN.remove(p)
    return None if killed else p.returncode


def signal_quietly(p, sig):
    """Sends `sig` to a process that may have exited already."""
    try:
        os.kill(p.pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_all():
    """Stops every process started here that still runs (clean-up: errors are ignored)."""
    for p in list(CHILDREN):
        try:
            stop(p, grace=10)
        except Exception:  # noqa: BLE001 - clean-up must go on
            pass


def wait_with_cpu(p, timeout):
    """Waits for a child started with start(); returns (exit code, its CPU seconds).

    os.wait4 reports the rusage of the reaped child, which /proc no longer has once it exited.
    """
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            if p in CHILDREN:
                CHILDREN.remove(p)
            return p.returncode, usage.ru_utime + usage.ru_stime
        if time.time() > deadline:
            raise HarnessError(f"pid {p.pid} still running after {timeout} s")
        time.sleep(0.02)


def cpu_seconds(pid):
    """User + system CPU time a live process has used so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def free_port():
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_open(host, port, timeout=3.0):
    """True if something accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pipeline_env(prefix, url=None, key_store=None, extra=None, rust_log="warn"):
    """The environment a pipeline binary runs in: this environment plus the topology prefix,
    the broker URL (default: AMQP_URL or the local broker), the key store and `extra`."""
    env = dict(os.environ)
    env["PIPELINE__TOPOLOGY__PREFIX"] = prefix
    if url:
        env["AMQP_URL"] = url
    else:
        env.setdefault("AMQP_URL", DEFAULT_AMQP_URL)
    if key_store:
        env["KEY_STORE"] = str(key_store)
    env.setdefault("RUST_LOG", rust_log)
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


# ---------------------------------------------------------------- formats of the binaries


def read_worker_events(path):
    """The events a worker wrote with `--events FILE`, as dicts (each with its kind in "event").
    A missing file is no events; a last line still being written is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    lines = text.split("\n")
    complete, partial = lines[:-1], lines[-1]
    for line in complete:
        if line.strip():
            events.append(json.loads(line))
    if partial.strip():
        try:
            events.append(json.loads(partial))
        except json.JSONDecodeError:
            pass  # written as we read: the next read has it whole
    return events


def worker_done(paths):
    """Submissions and demo requests the workers writing these event files answered so far."""
    return sum(e["done"] for p in paths for e in read_worker_events(p) if e["event"] == "batch")


def read_journal(path):
    """The confirmed submissions of an enrollment journal: [(participant, submission id)].
    A missing file is an empty journal; an unterminated last line (crash mid-write) is not
    confirmed and is left out, as the producer does when it reopens the journal."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.split("\n")[:-1]:
        if line.startswith("#") or not line.strip():
            continue
        participant, submission = line.split("\t")[:2]
        entries.append((participant, submission))
    return entries


def confirmed_submissions(journals):
    """The submission ids the journals say the broker confirmed."""
    return {s for j in journals for _, s in read_journal(j)}


# ---------------------------------------------------------------- a RabbitMQ node of one's own


class TestNode:
    """A RabbitMQ node of a script's own (name, ports, data and logs under `work`), so that fault
    injection (stop_app, killed connections) never touches the shared broker."""

    def __init__(self, work, name, amqp_port, mgmt_port, dist_port):
        self.dir = Path(work) / "node"
        self.name, self.amqp_port, self.mgmt_port, self.dist_port = (
            name, amqp_port, mgmt_port, dist_port)
        self.url = f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"
        self.api_base = f"http://127.0.0.1:{mgmt_port}/api"
        self.server = None
        # Debian's /usr/sbin wrappers switch to the rabbitmq user and its files; the scripts
        # behind them run the node as whoever we are, with everything pointed at our directory.
        self.bin = Path("/usr/lib/rabbitmq/bin")
        if not (self.bin / "rabbitmq-server").exists():
            found = subprocess.run(["sh", "-c", "command -v rabbitmq-server"],
                                   capture_output=True, text=True).stdout.strip()
            self.bin = Path(found).parent if found else Path("/nonexistent")
        if not (self.bin / "rabbitmq-server").exists():
            raise HarnessError(
                "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server; "
                "scripts/ensure-broker does it when no broker runs)")
        self.env = self._env()

    def _env(self):
        for d in ("home", "mnesia", "log"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.mgmt_port}\n"
            "# Fresh figures for the checks of who holds unacked deliveries.\n"
            "collect_statistics_interval = 500\n")
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        env.update({
            "HOME": str(self.dir / "home"),  # the node's and rabbitmqctl's Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    def ctl(self, *args, timeout=120):
        """rabbitmqctl against this node; True when it succeeded."""
        try:
            return subprocess.run(
                [str(self.bin / "rabbitmqctl"), "-n", self.name, "-q", *args], env=self.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
            ).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def api(self, path):
        """A management API document (parsed JSON)."""
        req = urllib.request.Request(f"{self.api_base}/{path}")
        req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest, the node's own
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def start(self):
        for port in (self.amqp_port, self.mgmt_port, self.dist_port):
            if tcp_open("127.0.0.1", port):
                raise HarnessError(
                    f"port {port} is in use (another reliability run?); set RELIABILITY_*_PORT")
        log(f"starting the test node {self.name} (AMQP :{self.amqp_port}, management "
            f":{self.mgmt_port}, data in {self.dir})")
        out = open(self.dir / "log" / "server.out", "w")
        self.server = subprocess.Popen([str(self.bin / "rabbitmq-server")], env=self.env,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        deadline = time.time() + 180
        while not tcp_open("127.0.0.1", self.amqp_port):
            if self.server.poll() is not None:
                tail = (self.dir / "log" / "server.out").read_text(errors="replace")[-3000:]
                raise HarnessError(f"the test node exited while starting:\n{tail}\n"
                                   f"(more in {self.dir / 'log'})")
            if time.time() > deadline:
                raise HarnessError(f"the test node did not open :{self.amqp_port} within 180 s")
            time.sleep(1)
        if not self.ctl("await_startup"):
            raise HarnessError("rabbitmqctl await_startup failed")
        while True:
            try:
                version = self.api("overview")["rabbitmq_version"]
                break
            except OSError:
                if time.time() > deadline:
                    raise HarnessError(f"the management API does not answer at {self.api_base}")
                time.sleep(1)
        log(f"test node up (RabbitMQ {version})")

    def stop(self):
        """Stops the node however it is doing (clean-up: never raises)."""
        if self.server is None or self.server.poll() is not None:
            return
        log(f"stopping the test node {self.name}")
        if not self.ctl("stop"):
            self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def queue_depth(self, queue):
        """(ready, unacked) of one queue. Until the broker has statistics for the queue (e.g. just
        after start_app) the API answers an empty document; that counts as "not known yet", a
        large depth, so nobody mistakes it for drained."""
        try:
            d = self.api(f"queues/%2F/{urllib.request.quote(queue, safe='')}"
                         "?columns=messages_ready,messages_unacknowledged")
        except OSError:
            return (999999, 999999)
        if isinstance(d, dict) and d:
            return (d.get("messages_ready", 0), d.get("messages_unacknowledged", 0))
        return (999999, 999999)

    def wait_drained(self, queue, seconds):
        """True once the queue holds nothing (ready or unacked) twice in a row."""
        deadline, quiet = time.time() + seconds, 0
        while time.time() < deadline:
            ready, unacked = self.queue_depth(queue)
            if ready + unacked == 0:
                quiet += 1
                if quiet >= 2:
                    return True
            else:
                quiet = 0
            time.sleep(1)
        return False

    def unacked_of(self, pid, role):
        """Unacked deliveries on the channels of the connection process `pid` opened as `role`
        (its client-provided name is "<prefix> <role> <host> pid <pid>")."""
        conns = self.api("connections?columns=name,client_properties")
        ours = set()
        for c in conns:
            given = (c.get("client_properties") or {}).get("connection_name", "")
            if f" {role} " in given and given.endswith(f" pid {pid}"):
                ours.add(c["name"])
        channels = self.api("channels?columns=messages_unacknowledged,connection_details")
        return sum(ch.get("messages_unacknowledged", 0) for ch in channels
                   if (ch.get("connection_details") or {}).get("name") in ours)
