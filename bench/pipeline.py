#!/usr/bin/env python3
"""bench/pipeline.py: end-to-end performance of the encrypted study pipeline, in one run.

Measurements (each at 2048- and 3072-bit keys unless said otherwise):

  enroll_keygen   `producer enroll --synthetic N` into an empty key store: participants/s with
                  key generation included (Paillier keygen + owner-side encryption + publish
                  with confirms). No worker runs, so the submissions stay in the work queue.
  enroll_keys     the same cohort again with a new journal: keys are loaded, not generated
                  (encryption + publishing only).
  drain_*         the work queue pre-filled with N real submissions (captured from the two
                  enrollments above, replayed with fresh ids, all replying to one sink queue);
                  then 1 worker process, then 2, are started and timed until every result is
                  in the sink (a result is published only after its computation, and its
                  submission acked only after the result's confirm). Submissions/s each, and
                  the ratio 2 workers / 1 worker. Worker start-up (connect, declare) is
                  included: it is a few tens of ms. Prefetch is set to the batch size (16)
                  for both runs, so that the first worker up does not take the backlog.
                  A short warm-up drain (32, not reported) comes first. A third run, 1
                  worker with 4 rayon threads, is the control that tells
                  "more processes" from "more runnable threads" on a shared machine. The
                  workers' CPU time (/proc/<pid>/stat) gives CPU-ms per submission, which
                  other load on the machine does not change.
  e2e             N participants from `producer enroll` (keys pre-made) to
                  `consumer collect --wait` (every result received and decrypted), with one
                  worker running throughout: participants/s over the whole wall time.
  broker_*        the broker's own rate for messages of the submissions' size with the
                  pipeline's settings and no computation (`bench-broker ceiling`, Rust, built
                  on the same lapin client and publisher code as producer and worker):
                  persistent messages to a quorum queue published with confirms in windows of
                  128 (the producer's window); relayed in batches of 16 with prefetch 64
                  (consume, publish with confirms, then ack: the worker's broker traffic);
                  consumed with manual acks.
  worker_rss      (2048 only) peak RSS (VmHWM, sampled from /proc every 50 ms) of one worker
                  draining 1,000 and 50,000 queued submissions (one real encrypted body
                  replayed with fresh ids; every one is processed and answered). The study is
                  cut to one `sum` output without re-randomisation so that 50,000 drain in
                  about a minute: the memory a worker holds is bounded by prefetch and batch
                  size, not by the computation. Target: the two peaks within 20 %.
  demo_*          (2048 only) the original demo's workload both ways: 2 integer readings per
                  participant, each scaled by a random integer 1..=10, re-randomised and
                  decrypted by the participant. (a) a re-creation of the demo (bench/demo:
                  two Flask services + python-paillier, one key generated at start-up) driven
                  by 4 concurrent clients; (b) the pipeline with bench/demo-study.toml
                  (random_scale outputs; until it exists, a stand-in study with two `scale`
                  outputs, noted in the table): enroll (keys pre-made) -> 1 worker ->
                  collect. Participants/s each and the ratio pipeline/demo. The pipeline's
                  row also gives the CPU-ms per participant of each process: producer and
                  collect (their rusage), the worker and the broker (/proc/<pid>/stat before and
                  after; the broker is the whole node listening on AMQP_URL's port, so other
                  users of a shared broker count too). Their sum against 2 cores bounds the
                  rate: cores x 1000 / total CPU-ms = participants/s with every core busy.
  enroll_target   (only with --enroll-target) `producer enroll --synthetic 10000 --bits 2048`
                  with key generation: rate and the producer's peak RSS.

Output: one table (measurement, value, unit, notes) on stdout, and the same as JSON with the
machine and the date in bench/results/pipeline.json (--quick: pipeline-quick.json). Progress
goes to stderr. Every queue and exchange lives under a unique prefix
(PIPELINE__TOPOLOGY__PREFIX=bench-<time>-<pid>...) and is deleted at the end, as are the
processes started, also on Ctrl-C. Exit status: 0 when every measurement succeeded.

Needs: `cargo build --release` (done first unless --no-build), python3 with phe, gmpy2 and
flask (bench/requirements.txt), a RabbitMQ at AMQP_URL (default 127.0.0.1:5672), and
rabbitmqctl on this machine for the final clean-up listing (falls back to the names it knows).
"""
import argparse
import csv
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "lib"))
import pipeline_harness as h  # noqa: E402
from pipeline_harness import (  # noqa: E402  (processes, CPU and memory: shared with scripts/reliability)
    LAST_CPU,
    RssSampler,
    cpu_seconds,
    free_port,
    log,
    run,
    start,
    stop,
    stop_all,
    wait_with_cpu,
)

ROOT = h.ROOT
BIN = ROOT / "target" / "release"
DEMO_STUDY = ROOT / "bench" / "demo-study.toml"

PREFIX_BASE = f"bench-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}."
STARTED = h.STARTED
# A measurement failed; the run exits non-zero (the harness raises it too).
BenchError = h.HarnessError


def env_for(prefix, key_store=None, extra=None):
    # Thousands of participants as one broker user (guest): the explicitly insecure shared-user
    # mode (the identity check itself costs a string comparison per message).
    extra = {"PIPELINE__IDENTITY__INSECURE_SHARED_USER": "true", **(extra or {})}
    return h.pipeline_env(prefix, key_store=key_store, extra=extra)


# ---------------------------------------------------------------- the broker


def bench_broker(prefix, args, what, timeout=3600, config=None):
    cmd = [BIN / "bench-broker"] + (["--config", config] if config else []) + args
    return run(cmd, env_for(prefix), what, timeout=timeout)


def cleanup_broker():
    """Deletes every queue and exchange whose name starts with this run's prefix."""
    queues, exchanges = [], []
    try:
        for kind, dest in (("list_queues", queues), ("list_exchanges", exchanges)):
            out = subprocess.run(
                ["rabbitmqctl", "-q", kind, "name"], capture_output=True, text=True, timeout=60
            ).stdout
            dest += [n.strip() for n in out.splitlines() if n.strip().startswith(PREFIX_BASE)]
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"clean-up: cannot list the broker's queues ({e}); deleting the known names only")
        for p in PREFIXES_USED:
            queues += [p + q for q in ("readings.work", "readings.dead", "results.unroutable")]
            exchanges += [p + e for e in ("readings", "results", "results.unroutable", "readings.dead")]
    if not queues and not exchanges:
        return
    log(f"clean-up: deleting {len(queues)} queue(s) and {len(exchanges)} exchange(s) under {PREFIX_BASE}*")
    # The helper connects under a prefix of its own (and declares that topology): delete it too.
    own = PREFIX_BASE + "cleanup."
    queues += [own + q for q in ("readings.work", "readings.dead", "results.unroutable")]
    exchanges += [own + e for e in ("readings", "results", "results.unroutable", "readings.dead")]
    names = Path(tempfile.mkstemp(prefix="bench-cleanup-")[1])
    names.write_text("".join(f"queue {q}\n" for q in queues) + "".join(f"exchange {e}\n" for e in exchanges))
    args = ["delete", "--from", names]
    try:
        bench_broker(own, args, "clean-up", timeout=600)
    except BenchError as e:
        log(f"clean-up failed: {e}")
    finally:
        names.unlink(missing_ok=True)


PREFIXES_USED = []
DRAIN_ORDER = ["1w", "2w", "1w_4t"]


def prefix(name):
    p = f"{PREFIX_BASE}{name}."
    PREFIXES_USED.append(p)
    return p


# ---------------------------------------------------------------- measurements

ROWS = []


def row(measurement, value, unit, notes=""):
    ROWS.append({"measurement": measurement, "value": value, "unit": unit, "notes": notes})
    log(f"RESULT {measurement} = {fmt(value)} {unit}  {notes}")


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def enrollment(bits, n, ks, pfx, tmp):
    env = env_for(pfx, ks)
    secs, out, hwm = run(
        [BIN / "producer", "enroll", "--synthetic", n, "--bits", bits, "--journal", tmp / f"j-{bits}-keygen"],
        env, f"enroll {n} participants at {bits} bits with keygen", rss=True,
    )
    cpu1 = LAST_CPU[0]
    row(f"enroll_keygen_{bits}", n / secs, "participants/s",
        f"N={n}, keys generated, producer peak RSS {hwm / 1024:.0f} MiB, {1000 * cpu1 / n:.0f} CPU-ms/participant")
    secs2, out2, hwm2 = run(
        [BIN / "producer", "enroll", "--synthetic", n, "--bits", bits, "--journal", tmp / f"j-{bits}-keys"],
        env, f"enroll {n} participants at {bits} bits, keys pre-made", rss=True,
    )
    row(f"enroll_keys_{bits}", n / secs2, "participants/s",
        f"N={n}, keys loaded, {1000 * LAST_CPU[0] / n:.0f} CPU-ms/participant; "
        f"keygen share of enrollment time {1 - secs2 / secs:.0%}")
    bodies = tmp / f"bodies-{bits}.jsonl"
    bench_broker(pfx, ["capture", "--count", 2 * n, "--out", bodies], f"capture {2 * n} submissions")
    return bodies


def broker_pids():
    """Pid of the RabbitMQ node serving AMQP_URL (the process listening on its port), for its
    CPU time; other nodes on the machine (e.g. scripts/reliability's) are not counted."""
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    port = urllib.parse.urlsplit(url).port or 5672
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({int(m) for m in re.findall(r"pid=(\d+)", out)})


def drain(bits, n, bodies, pfx, tmp):
    rates = {}
    # (label, worker processes, rayon threads per worker): the last run is a control, one
    # process with as many threads as the two processes have together.
    runs = [r for label in DRAIN_ORDER for r in
            [("1w", 1, 2), ("2w", 2, 2), ("1w_4t", 1, 4)] if r[0] == label]
    # A warm-up drain first, not reported: in every run so far the first drain of a sequence
    # cost its worker 1.4-1.9x more CPU per submission than the later ones, whichever
    # configuration came first (cause not found yet); without it the 2/1 ratio is biased.
    runs = [("warmup", 1, 2)] + runs
    for label, workers, threads in runs:
        count = min(n, 32) if label == "warmup" else n
        sink = f"bench.sink.{label}"
        bench_broker(pfx, ["fill", "--bodies", bodies, "--count", count, "--sink", sink, "--tag", f"d{label}"],
                     f"pre-fill {count} submissions for {workers} worker(s) x {threads} threads")
        # Prefetch = batch size (16; default 64): otherwise the first worker to connect takes
        # 64 of the backlog before the second one is up, and small backlogs do not split.
        env = env_for(pfx, extra={"PIPELINE__BROKER__PREFETCH": "16"})
        t0 = time.perf_counter()
        procs = [start([BIN / "worker", "--threads", threads], env, f"worker {i + 1}/{workers}",
                       tmp / f"worker-{bits}-{label}-{i}.log")
                 for i in range(workers)]
        try:
            bench_broker(pfx, ["wait", "--queue", sink, "--count", count, "--timeout-secs", 1800],
                         f"waiting for {count} results")
            secs = time.perf_counter() - t0
            cpu = sum(cpu_seconds(p.pid) for p in procs)
        finally:
            for p in procs:
                stop(p)
        if label == "warmup":
            log(f"warm-up drain: {1000 * cpu / count:.0f} CPU-ms/submission (not reported)")
            continue
        rates[label] = n / secs
        row(f"drain_{label}_{bits}", rates[label], "submissions/s",
            f"N={n} queued, {workers} worker process(es) x {threads} rayon threads, default study "
            f"(6 outputs, re-randomised), prefetch 16; workers used {1000 * cpu / n:.0f} CPU-ms/submission "
            f"= {cpu / secs:.2f} cores of 2")
    row(f"drain_ratio_2w_1w_{bits}", rates["2w"] / rates["1w"], "x", "2 workers / 1 worker, same run")
    row(f"drain_ratio_1w4t_1w_{bits}", rates["1w_4t"] / rates["1w"], "x",
        "control: 1 worker with 4 threads / 1 worker with 2, same run")
    return rates


def ceiling(bits, count, bodies, pfx):
    sizes = [len(line) for line in open(bodies, "rb") if line.strip()]
    size = int(sum(sizes) / len(sizes))
    _, out, _ = bench_broker(pfx, ["ceiling", "--bytes", size, "--count", count],
                             f"broker ceiling, {count} x {size} B")
    c = json.loads(out.strip().splitlines()[-1])
    note = f"{size} B persistent msgs, quorum queue, {count} msgs"
    row(f"broker_publish_{bits}", c["publish_per_s"], "msgs/s", note + ", confirms, window 128")
    row(f"broker_relay_{bits}", c["relay_per_s"], "msgs/s",
        note + ", consume+publish(confirm)+ack, batch 16, prefetch 64: the drain ceiling")
    row(f"broker_consume_{bits}", c["consume_per_s"], "msgs/s", note + ", manual acks, prefetch 64")
    return c


def end_to_end(bits, n, ks, tmp):
    pfx = prefix(f"e2e{bits}")
    env = env_for(pfx, ks)
    worker = start([BIN / "worker"], env, "worker", tmp / f"worker-e2e-{bits}.log")
    try:
        journal, out = tmp / f"j-{bits}-e2e", tmp / f"e2e-{bits}.csv"
        t0 = time.perf_counter()
        run([BIN / "producer", "enroll", "--synthetic", n, "--bits", bits, "--journal", journal],
            env, f"e2e: enroll {n}")
        run([BIN / "consumer", "collect", "--journal", journal, "--wait", "20m", "--out", out],
            env, f"e2e: collect {n}")
        secs = time.perf_counter() - t0
    finally:
        stop(worker)
    ok = sum(1 for r in csv.DictReader(open(out)) if r["status"] == "ok")
    if ok != n:
        raise BenchError(f"e2e {bits}: {ok} of {n} results ok")
    row(f"e2e_{bits}", n / secs, "participants/s",
        f"N={n}, enroll (keys pre-made) -> 1 worker -> collect (decrypted), wall time {secs:.1f} s")


def worker_rss(counts, bodies, tmp):
    # A one-output study without re-randomisation: the drain is then bound by the broker, so
    # 50,000 submissions take about a minute, and what is measured is the memory per backlog.
    cfg = tmp / "rss-study.toml"
    cfg.write_text(
        '[[study.metrics]]\nname = "glucose"\nunit = "mmol/L"\nprecision = 0.0001\nmin = 0.0\nmax = 150.0\n\n'
        '[[study.metrics]]\nname = "cholesterol"\nunit = "mmol/L"\nprecision = 0.0001\nmin = 0.0\nmax = 50.0\n\n'
        '[[study.outputs]]\nname = "glucose_sum"\nkind = "sum"\nmetric = "glucose"\n'
    )
    one = tmp / "one-body.jsonl"
    with open(bodies) as f:
        one.write_text(f.readline())
    peaks = {}
    for n in counts:
        pfx = prefix(f"rss{n}")
        sink = "bench.sink.rss"
        bench_broker(pfx, ["fill", "--bodies", one, "--count", n, "--sink", sink, "--tag", f"rss{n}"],
                     f"pre-fill {n} copies of one submission (fresh ids)", config=cfg)
        env = env_for(pfx, extra={"PIPELINE__WORKER__OBFUSCATE_RESULTS": "false"})
        t0 = time.perf_counter()
        p = start([BIN / "worker", "--config", cfg], env, f"worker draining {n}", tmp / f"worker-rss-{n}.log")
        sampler = RssSampler(p.pid)
        sampler.start()
        try:
            bench_broker(pfx, ["wait", "--queue", sink, "--count", n, "--timeout-secs", 1800],
                         f"waiting for {n} results", config=cfg)
            secs = time.perf_counter() - t0
        finally:
            sampler.stop.set()
            sampler.join()
            stop(p)
        peaks[n] = sampler.hwm_kb
        row(f"worker_peak_rss_{n}", sampler.hwm_kb / 1024, "MiB",
            f"{n} queued, all processed in {secs:.1f} s ({n / secs:.0f}/s); max sampled VmRSS "
            f"{sampler.rss_kb / 1024:.1f} MiB; 1-output study, no re-randomisation")
    lo, hi = min(peaks.values()), max(peaks.values())
    row("worker_peak_rss_ratio", hi / lo, "x",
        f"largest / smallest backlog peak; target <= 1.2 ({'met' if hi / lo <= 1.2 else 'NOT met'})")


def demo_python(n, clients, tmp):
    sport, cport = free_port(), free_port()
    py = sys.executable
    here = ROOT / "bench" / "demo"
    server = start([py, here / "server.py", "--port", sport], dict(os.environ), "demo server", tmp / "demo-server.log")
    client = start([py, here / "client.py", "--port", cport, "--bits", 2048], dict(os.environ), "demo client",
                   tmp / "demo-client.log")
    try:
        for port in (sport, cport):
            deadline = time.time() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise BenchError(f"demo service on port {port} did not start")
                    time.sleep(0.2)
        rng = random.Random(7)
        inputs = [(rng.randint(1, 200), rng.randint(1, 200)) for _ in range(n)]

        def one(pair):
            req = urllib.request.Request(
                f"http://127.0.0.1:{cport}/",
                data=json.dumps({"input": f"{pair[0]},{pair[1]}", "dns": f"http://127.0.0.1:{sport}"}).encode(),
                headers={"Content-Type": "application/json"})
            out = json.load(urllib.request.urlopen(req, timeout=120))["output"]
            factor = out[0] // pair[0]
            if not (1 <= factor <= 10 and out == [pair[0] * factor, pair[1] * factor]):
                raise BenchError(f"demo answered {out} for {pair}")

        log(f"demo: {n} participants through the Flask demo, {clients} concurrent clients")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, inputs))
        secs = time.perf_counter() - t0
    finally:
        stop(client, 5)
        stop(server, 5)
    rate = n / secs
    row("demo_python_2048", rate, "participants/s",
        f"N={n}, re-created Flask demo + python-paillier/gmpy2, {clients} concurrent clients, one key")
    return rate


def demo_pipeline(n, ks, tmp):
    pfx = prefix("demo")
    if DEMO_STUDY.exists():
        cfg, study_note = DEMO_STUDY, "bench/demo-study.toml (random_scale 1..=10)"
    else:
        cfg = tmp / "demo-standin.toml"
        cfg.write_text(
            '[[study.metrics]]\nname = "glucose"\nunit = "mmol/L"\nprecision = 0.0001\nmin = 0.0\nmax = 150.0\n\n'
            '[[study.metrics]]\nname = "cholesterol"\nunit = "mmol/L"\nprecision = 0.0001\nmin = 0.0\nmax = 50.0\n\n'
            '[[study.outputs]]\nname = "glucose_x"\nkind = "scale"\nmetric = "glucose"\nfactor = 7\n\n'
            '[[study.outputs]]\nname = "cholesterol_x"\nkind = "scale"\nmetric = "cholesterol"\nfactor = 7\n'
        )
        study_note = "STAND-IN study (scale x7; bench/demo-study.toml not on main yet)"
    rng = random.Random(7)
    cohort = tmp / "demo-cohort.csv"
    inputs = {}
    with open(cohort, "w") as f:
        f.write("participant,glucose,cholesterol\n")
        for i in range(1, n + 1):
            inputs[f"syn-{i:06d}"] = (rng.randint(1, 200), rng.randint(1, 200))
            f.write(f"syn-{i:06d},{inputs[f'syn-{i:06d}'][0]},{inputs[f'syn-{i:06d}'][1]}\n")
    env = env_for(pfx, ks)
    worker = start([BIN / "worker", "--config", cfg], env, "worker (demo study)", tmp / "worker-demo.log")
    beams = broker_pids()
    try:
        journal, out = tmp / "j-demo", tmp / "demo-out.csv"
        ids = tmp / "demo-participants"
        ids.write_text("".join(f"{p}\n" for p in inputs))
        # Participants enroll and collect at the same time, as the demo's clients send and
        # decrypt concurrently: collect runs from the start and waits for one result each.
        worker_cpu0 = cpu_seconds(worker.pid)
        beam_cpu0 = sum(cpu_seconds(b) for b in beams)
        t0 = time.perf_counter()
        collect = start([BIN / "consumer", "collect", "--config", cfg, "--participants", ids,
                         "--wait", "20m", "--out", out], env, f"demo workload: collect {n}",
                        tmp / "demo-collect.log")
        try:
            run([BIN / "producer", "enroll", "--config", cfg, "--csv", cohort, "--bits", 2048,
                 "--journal", journal], env, f"demo workload: enroll {n}")
            producer_cpu = LAST_CPU[0]
            code, collect_cpu = wait_with_cpu(collect, 1200)
            if code != 0:
                raise BenchError(f"demo workload: collect failed (see {tmp / 'demo-collect.log'})")
        finally:
            stop(collect, grace=5)
        secs = time.perf_counter() - t0
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu0
        beam_cpu = sum(cpu_seconds(b) for b in beams) - beam_cpu0
    finally:
        stop(worker)
    rows = list(csv.DictReader(open(out)))
    ok = sum(1 for r in rows if r["status"] == "ok")
    if ok != n:
        raise BenchError(f"demo workload through the pipeline: {ok} of {n} results ok")
    if DEMO_STUDY.exists():
        # The participant must get back each reading times an integer in 1..=10.
        for r in rows:
            for metric, value in zip(("glucose_x", "cholesterol_x"), inputs[r["participant"]]):
                factor = float(r[metric]) / value
                if abs(factor - round(factor)) > 1e-6 or not 1 <= round(factor) <= 10:
                    raise BenchError(f"demo workload: {r['participant']} {metric} = {r[metric]} for {value}")
    rate = n / secs
    ms = lambda cpu: f"{1000 * cpu / n:.1f}"  # noqa: E731 - CPU-ms per participant
    total = producer_cpu + worker_cpu + collect_cpu + beam_cpu
    row("demo_pipeline_2048", rate, "participants/s",
        f"N={n}, 2 readings each, {study_note}, enroll (keys pre-made) -> 1 worker -> collect, "
        "enroll and collect running at the same time; CPU-ms/participant: "
        f"producer {ms(producer_cpu)}, worker {ms(worker_cpu)}, collect {ms(collect_cpu)}, "
        f"broker {ms(beam_cpu)} (the whole node: other users of the shared broker included), "
        f"total {ms(total)}")
    return rate


def enroll_target(n, tmp):
    pfx = prefix("target")
    ks = tmp / "keys-target"
    secs, out, hwm = run(
        [BIN / "producer", "enroll", "--synthetic", n, "--bits", 2048, "--journal", tmp / "j-target"],
        env_for(pfx, ks), f"enrollment target: {n} participants, 2048-bit keys generated", rss=True,
    )
    row("enroll_target_2048", n / secs, "participants/s",
        f"N={n} with key generation, wall {secs:.0f} s, producer peak RSS {hwm / 1024:.0f} MiB, "
        f"{1000 * LAST_CPU[0] / n:.0f} CPU-ms/participant")


# ---------------------------------------------------------------- main


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = open("/proc/meminfo").readline().split(":", 1)[1].strip()
    except OSError:
        pass

    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "cpu": model, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
        "os": platform.platform(), "rustc": cmd("rustc", "--version"), "python": platform.python_version(),
        "rabbitmq": cmd("rabbitmqctl", "-q", "version"), "load_average_start": os.getloadavg(),
        "git_commit": cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
    }


def print_table(rows):
    head = ("measurement", "value", "unit", "notes")
    data = [(r["measurement"], fmt(r["value"]), r["unit"], r["notes"]) for r in rows]
    w = [max(len(head[i]), *(len(d[i]) for d in data)) if data else len(head[i]) for i in range(3)]
    print(f"{head[0]:<{w[0]}}  {head[1]:>{w[1]}}  {head[2]:<{w[2]}}  {head[3]}")
    print(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  -----")
    for d in data:
        print(f"{d[0]:<{w[0]}}  {d[1]:>{w[1]}}  {d[2]:<{w[2]}}  {d[3]}")


def main():
    ap = argparse.ArgumentParser(
        prog="bench/pipeline.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (2-3 minutes): small N everywhere")
    ap.add_argument("--bits", default="2048,3072", help="key sizes, comma-separated (default 2048,3072)")
    ap.add_argument("--enroll", default=None, help="enrollment N per key size (default 2048=400,3072=150; quick 30,10)")
    ap.add_argument("--drain", default=None, help="queued submissions per drain run (default 2048=800,3072=300; quick 40,16) "
                    "(at most twice the enrollment N: the drain replays what enrollment published)")
    ap.add_argument("--e2e", default=None, help="end-to-end participants per key size (default 2048=100,3072=40; quick 20,8)")
    ap.add_argument("--drain-order", default="1w,2w,1w_4t",
                    help="order of the drain runs (1w, 2w, 1w_4t), to check for order effects")
    ap.add_argument("--ceiling-count", type=int, default=None, help="messages of the broker ceiling run (default 10000; quick 1000)")
    ap.add_argument("--rss", default=None, help="backlogs of the worker RSS runs (default 1000,50000; quick 1000,5000)")
    ap.add_argument("--demo", type=int, default=None, help="participants of the demo comparison, each way (default 100; quick 20; <= enroll N at 2048)")
    ap.add_argument("--demo-clients", type=int, default=4, help="concurrent clients driving the Flask demo")
    ap.add_argument("--only", default="enroll,drain,ceiling,e2e,rss,demo",
                    help="measurements to run (enroll is needed by all others)")
    ap.add_argument("--enroll-target", type=int, nargs="?", const=10000, default=None, metavar="N",
                    help="only the enrollment target: N (default 10000) synthetic participants, 2048-bit "
                    "keys generated; rate and producer peak RSS (written to pipeline-enroll-target.json)")
    ap.add_argument("--out", default=None, help="JSON output (default bench/results/pipeline.json)")
    ap.add_argument("--no-build", action="store_true", help="skip `cargo build --release`")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, keys)")
    a = ap.parse_args()

    def sizes(text, default):
        out = dict(default)
        if text:
            for part in text.split(","):
                k, v = part.split("=")
                out[int(k)] = int(v)
        return out

    q = a.quick
    bits = [int(b) for b in a.bits.split(",")]
    # Drains long enough (several seconds each) that process start-up does not weigh on the
    # 2-workers/1-worker ratio; the drain replays what enrollment published, hence its N.
    enroll_n = sizes(a.enroll, {2048: 30, 3072: 10} if q else {2048: 400, 3072: 150})
    drain_n = sizes(a.drain, {2048: 40, 3072: 16} if q else {2048: 800, 3072: 300})
    e2e_n = sizes(a.e2e, {2048: 20, 3072: 8} if q else {2048: 100, 3072: 40})
    ceiling_n = a.ceiling_count or (1000 if q else 10000)
    rss_n = [int(x) for x in (a.rss or ("1000,5000" if q else "1000,50000")).split(",")]
    demo_n = a.demo or (20 if q else 100)
    only = set(a.only.split(","))
    DRAIN_ORDER[:] = a.drain_order.split(",")
    if sorted(DRAIN_ORDER) != ["1w", "1w_4t", "2w"]:
        ap.error("--drain-order: a permutation of 1w,2w,1w_4t")
    out_path = Path(a.out) if a.out else ROOT / "bench" / "results" / (
        "pipeline-enroll-target.json" if a.enroll_target else "pipeline-quick.json" if q else "pipeline.json")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    info = machine()
    failures = []
    try:
        if not a.no_build:
            log("cargo build --release")
            r = subprocess.run(["cargo", "build", "--release", "--workspace"], cwd=ROOT)
            if r.returncode != 0:
                raise BenchError("cargo build --release failed")
        for b in ("producer", "worker", "consumer", "bench-broker"):
            if not (BIN / b).exists():
                raise BenchError(f"{BIN / b} missing: run cargo build --release")
        if a.enroll_target:
            enroll_target(a.enroll_target, tmp)
        else:
            for b in bits:
                if drain_n[b] > 2 * enroll_n[b]:
                    raise BenchError(f"--drain {b}={drain_n[b]} exceeds twice the enrollment N")
            for b in bits:
                ks = tmp / f"keys-{b}"
                pfx = prefix(f"b{b}")
                bodies = enrollment(b, enroll_n[b], ks, pfx, tmp)
                steps = []
                if "drain" in only:
                    steps.append(("drain", lambda: drain(b, drain_n[b], bodies, pfx, tmp)))
                if "ceiling" in only:
                    steps.append(("ceiling", lambda: ceiling(b, ceiling_n, bodies, pfx)))
                if "e2e" in only:
                    steps.append(("e2e", lambda: end_to_end(b, min(e2e_n[b], enroll_n[b]), ks, tmp)))
                if b == 2048 and "rss" in only:
                    steps.append(("rss", lambda: worker_rss(rss_n, bodies, tmp)))
                if b == 2048 and "demo" in only:
                    def demo():
                        n = min(demo_n, enroll_n[2048])
                        d = demo_python(n, a.demo_clients, tmp)
                        p = demo_pipeline(n, ks, tmp)
                        row("demo_ratio_pipeline_python", p / d, "x", "pipeline / Flask demo, same run, 2048-bit keys")
                    steps.append(("demo", demo))
                for name, step in steps:
                    try:
                        step()
                    except BenchError as e:
                        failures.append(f"{name} {b}: {e}")
                        log(f"FAILED {name} {b}: {e}")
    except BenchError as e:
        failures.append(str(e))
        log(f"FAILED: {e}")
    except KeyboardInterrupt:
        failures.append("interrupted")
        log("interrupted: cleaning up")
    finally:
        stop_all()
        cleanup_broker()
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    print_table(ROWS)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["bench/pipeline"] + sys.argv[1:]),
        "seconds": round(time.time() - STARTED, 1),
        "machine": info,
        "notes": "Shared 2-core machine: other jobs ran during the measurement (see load averages); "
                 "compare ratios taken in one run.",
        "rows": ROWS,
        "failures": failures,
    }
    if failures:
        # Keep a good earlier result: an incomplete run goes beside it.
        out_path = out_path.with_name(out_path.stem + ".partial.json")
    if ROWS:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {out_path}")
    if failures:
        for f in failures:
            print(f"FAILED: {f}", file=sys.stderr)
        sys.exit(130 if failures == ["interrupted"] else 1)


if __name__ == "__main__":
    main()
