#!/usr/bin/env python3
"""Compare the `paillier` crate with python-paillier (+ gmpy2) on the same operations.

Runs `cargo bench -p paillier --bench paillier [-- FILTER]`, then times python-paillier on the
same operations, key sizes and inputs (readings 5.4 and 4.2, scalars 7, -3, 0.0555, 0.0259),
in the same run on the same machine, and prints one table:

    operation | bits | ours | python-paillier | ratio (ours/python)

Ours is criterion's median (target/criterion/paillier_<bits>/<op>/new/estimates.json); python's
is the median of timeit repeats. A ratio below 1 means the crate is faster. The table is also
written as JSON to bench/results/paillier_compare.json.

python-paillier has no key-owner encryption path: `encrypt_owner` is compared with its only
`encrypt` (the issue's target: owner path at least 2.5x faster, ratio <= 0.4).

Without gmpy2 python-paillier falls back to pure-Python big integers and is several times
slower: the script says so loudly, and the comparison is then void.

With --merge (and a filter), the rows measured replace the same rows of the JSON file already
there and the others are kept: re-measuring one operation does not drop the rest of the table.

Usage: bench/paillier_compare.py [--filter REGEX] [--no-cargo] [--quick] [--json PATH] [--merge]
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "bench", "results", "paillier_compare.json")
SIZES = [2048, 3072]
OPS = [
    "keygen", "encrypt_public", "encrypt_owner", "decrypt", "add", "add_plaintext", "mul_7",
    "mul_neg3", "mul_0.0555", "obfuscate", "weighted_sum",
]
READING_A, READING_B = 5.4, 4.2
WEIGHT_A, WEIGHT_B = 0.0555, 0.0259
# The targets on the ratio ours/python (medians, both sizes).
TARGETS = {op: 1.0 for op in OPS}
TARGETS["encrypt_owner"] = 0.4

try:
    import phe
    from phe import EncryptedNumber
except ImportError:
    sys.exit("python-paillier is not importable: pip install phe gmpy2")

try:
    import gmpy2
    GMPY2 = gmpy2.version()
except ImportError:
    GMPY2 = None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_cargo(filter_regex):
    cmd = ["cargo", "bench", "-p", "paillier", "--bench", "paillier"]
    if filter_regex:
        cmd += ["--", filter_regex]
    log("$ " + " ".join(cmd))
    # Criterion's progress goes to stderr so that stdout carries only the table.
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)


def criterion_dir():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "criterion")


def read_criterion(since):
    """{(bits, op): median ns} from criterion's results written at or after `since`."""
    results = {}
    pattern = os.path.join(criterion_dir(), "**", "new", "benchmark.json")
    for path in glob.glob(pattern, recursive=True):
        if since is not None and os.path.getmtime(path) < since:
            continue  # left over from an earlier run (e.g. outside this run's filter)
        with open(path) as f:
            meta = json.load(f)
        m = re.fullmatch(r"paillier/(\d+)/(.+)", meta.get("full_id", ""))
        if not m:
            continue
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            estimates = json.load(f)
        results[(int(m.group(1)), m.group(2))] = estimates["median"]["point_estimate"]
    return results


def python_median_ns(fn, repeat, min_time):
    """Median over `repeat` timeit runs of the time per call, in ns."""
    timer = timeit.Timer(fn)
    number = 1
    while True:  # as timeit.autorange, but to min_time per run
        elapsed = timer.timeit(number)
        if elapsed >= min_time or number >= 1_000_000:
            break
        number *= 10 if elapsed < min_time / 10 else 2
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e9


def python_timings(wanted, quick):
    """{(bits, op): median ns} for python-paillier on the same operations and inputs."""
    out = {}
    repeat, min_time = (3, 0.05) if quick else (7, 0.2)
    for bits in SIZES:
        ops = [op for op in OPS if (bits, op) in wanted]
        if not ops:
            continue
        log("python-paillier: %d-bit key" % bits)
        pub, priv = phe.generate_paillier_keypair(n_length=bits)
        a = pub.encrypt(READING_A)
        b = pub.encrypt(READING_B)
        # obfuscate() works in place: give it its own copy so `a` stays as the others see it.
        a_copy = EncryptedNumber(pub, a.ciphertext(be_secure=False), a.exponent)
        fns = {
            "keygen": lambda: phe.generate_paillier_keypair(n_length=bits),
            "encrypt_public": lambda: pub.encrypt(READING_A),
            "encrypt_owner": lambda: pub.encrypt(READING_A),  # no owner path in phe
            "decrypt": lambda: priv.decrypt(a),
            "add": lambda: a + b,
            "add_plaintext": lambda: a + READING_B,
            "mul_7": lambda: a * 7,
            "mul_neg3": lambda: a * -3,
            "mul_0.0555": lambda: a * WEIGHT_A,
            "obfuscate": lambda: a_copy.obfuscate(),
            "weighted_sum": lambda: a * WEIGHT_A + b * WEIGHT_B,
        }
        # Sanity: the python operations compute what the Rust benchmarks compute.
        assert abs(priv.decrypt(a * WEIGHT_A + b * WEIGHT_B) - 0.40848) < 1e-12
        for op in ops:
            if op == "keygen":
                # Seconds per call and widely spread (random prime search): more single runs.
                runs = [timeit.timeit(fns[op], number=1)
                        for _ in range((5 if quick else 15) if bits <= 2048 else (3 if quick else 9))]
                out[(bits, op)] = statistics.median(runs) * 1e9
            else:
                out[(bits, op)] = python_median_ns(fns[op], repeat, min_time)
            log("  %-15s %s" % (op, fmt_time(out[(bits, op)])))
    return out


def fmt_time(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return "%.3g %s" % (ns / scale, unit) if ns / scale < 100 else "%.0f %s" % (ns / scale, unit)
    return "%.3g ns" % ns


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", help="criterion filter (regex on paillier/<bits>/<op>), "
                                         "also applied to the python timings")
    parser.add_argument("--no-cargo", action="store_true",
                        help="do not run cargo bench: use the criterion results already on disk")
    parser.add_argument("--quick", action="store_true", help="fewer python repeats")
    parser.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON table")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the measured rows of the existing JSON file, keep the "
                             "others (each row says when it was measured)")
    args = parser.parse_args()

    if GMPY2 is None:
        log("!" * 78)
        log("WARNING: gmpy2 is NOT importable: python-paillier runs on pure-Python integers and")
        log("is several times slower than with gmpy2. This comparison is VOID for the targets.")
        log("Install it: pip install gmpy2")
        log("!" * 78)

    started = time.time()
    if not args.no_cargo:
        run_cargo(args.filter)
    ours = read_criterion(None if args.no_cargo else started - 1)
    if not ours:
        sys.exit("no criterion results for paillier/<bits>/<op> in %s" % criterion_dir())

    if args.filter:
        rx = re.compile(args.filter)
        ours = {k: v for k, v in ours.items() if rx.search("paillier/%d/%s" % k)}
        if not ours:
            sys.exit("no criterion results match --filter %r" % args.filter)
    wanted = {(bits, op) for bits in SIZES for op in OPS} & set(ours)
    python = python_timings(wanted, args.quick)

    rows = []
    for bits in SIZES:
        for op in OPS:
            if (bits, op) not in ours:
                continue
            o, p = ours[(bits, op)], python.get((bits, op))
            rows.append({
                "operation": op,
                "bits": bits,
                "ours_ns": o,
                "python_ns": p,
                "ratio": (o / p) if p else None,
                "target_ratio": TARGETS[op],
            })

    header = ["operation", "bits", "ours", "python-paillier", "ratio (ours/python)"]
    table = [[r["operation"], str(r["bits"]), fmt_time(r["ours_ns"]), fmt_time(r["python_ns"]),
              "-" if r["ratio"] is None else "%.3f" % r["ratio"]] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print(line(t))
    print()
    print("python-paillier %s, gmpy2 %s, Python %s, %s"
          % (getattr(phe, "__version__", "?"), GMPY2 or "NOT INSTALLED (comparison void)",
             platform.python_version(), platform.platform()))
    missed = [r for r in rows if r["ratio"] is not None and r["ratio"] > r["target_ratio"]]
    if GMPY2 is None:
        print("targets NOT evaluated: without gmpy2 python-paillier is not the reference "
              "(pip install gmpy2)")
    elif any(r["ratio"] is None for r in rows):
        print("targets not evaluated: some operations lack a python timing")
    elif missed:
        print("targets missed: " + ", ".join(
            "%s/%d %.3f > %.2f" % (r["operation"], r["bits"], r["ratio"], r["target_ratio"])
            for r in missed))
    else:
        print("targets met: every ratio <= 1.0, encrypt_owner <= 0.4")

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    table_filter = args.filter
    for r in rows:
        r["measured"] = now
    if args.merge and os.path.exists(args.json):
        with open(args.json) as f:
            previous = json.load(f)
        if previous.get("gmpy2") != GMPY2 or previous.get("python_paillier") != getattr(
                phe, "__version__", None):
            sys.exit("--merge: %s was measured with other python-paillier/gmpy2 versions"
                     % args.json)
        fresh = {(r["operation"], r["bits"]): r for r in rows}
        old_rows = previous.get("rows", [])
        for r in old_rows:
            # Rows from before per-row dates: measured when that file was generated.
            r.setdefault("measured", previous.get("generated"))
        keys = [(r["operation"], r["bits"]) for r in old_rows]
        merged = [fresh.get(k, r) for k, r in zip(keys, old_rows)]
        merged += [r for k, r in fresh.items() if k not in keys]
        rows = merged
        # The table now covers what the old one did and what this run measured.
        table_filter = (None if previous.get("filter") is None or args.filter is None
                        else "(%s)|(%s)" % (previous["filter"], args.filter))
    else:
        table_filter = args.filter
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({
            "generated": now,
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpus": os.cpu_count()},
            "python_paillier": getattr(phe, "__version__", None),
            "gmpy2": GMPY2,
            "comparison_valid": GMPY2 is not None,
            "ours": "criterion median, cargo bench -p paillier --bench paillier",
            "python": "median of timeit repeats; encrypt_owner is phe's encrypt (no owner path)",
            "filter": table_filter,
            "rows": rows,
        }, f, indent=1)
        f.write("\n")
    log("wrote " + os.path.abspath(args.json))


if __name__ == "__main__":
    main()
