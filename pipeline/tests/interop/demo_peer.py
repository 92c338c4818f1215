#!/usr/bin/env python3
"""The python-paillier side of pipeline/tests/interop_demo.rs: the original demo's client.

The demo body is {"public_key": {"g": .., "n": ..}, "values": [["<c>", exponent], ..]}, written by
python's json module (n and g as bare integers); the reply is {"values": [["<c>", exponent], ..]}.
Commands, both taking a working directory:

  generate DIR  generate a key, write its primes to DIR/demo_key.json, the demo request to
                DIR/demo_request.json and the inputs and factor to DIR/demo_expected.json
  verify DIR    decrypt the reply DIR/demo_reply.json and compare it with inputs × factor

Exit status 0 on success; on a mismatch, 1 with every mismatch on stderr.
"""

import json
import os
import sys

import phe

KEY_BITS = 2048
DEMO_INPUTS = [10, 11, -5, 0]
DEMO_FACTOR = 7


def path(directory, name):
    return os.path.join(directory, name)


def read_json(directory, name):
    with open(path(directory, name)) as f:
        return json.load(f)


def write_json(directory, name, obj):
    with open(path(directory, name), "w") as f:
        json.dump(obj, f)


def generate(directory):
    pub, priv = phe.generate_paillier_keypair(n_length=KEY_BITS)
    # Decimal strings: the Rust side rebuilds the private key from the primes.
    write_json(directory, "demo_key.json", {"p": str(priv.p), "q": str(priv.q)})
    demo = [pub.encrypt(v) for v in DEMO_INPUTS]
    # As the demo's client writes it: python's json module, n and g bare integers.
    write_json(directory, "demo_request.json",
               {"public_key": {"g": pub.g, "n": pub.n},
                "values": [[str(e.ciphertext()), e.exponent] for e in demo]})
    write_json(directory, "demo_expected.json", {"inputs": DEMO_INPUTS, "factor": DEMO_FACTOR})
    print("generate: %d-bit key, %d demo values" % (pub.n.bit_length(), len(demo)))


def verify(directory):
    key = read_json(directory, "demo_key.json")
    p, q = int(key["p"]), int(key["q"])
    pub = phe.PaillierPublicKey(p * q)
    priv = phe.PaillierPrivateKey(pub, p, q)
    reply = read_json(directory, "demo_reply.json")
    expected = read_json(directory, "demo_expected.json")
    mismatches = []

    def check(what, got, want):
        if got != want:
            mismatches.append("%s: got %r, want %r" % (what, got, want))

    got = [priv.decrypt(phe.EncryptedNumber(pub, int(c), exponent=e)) for c, e in reply["values"]]
    check("demo reply", got, [v * expected["factor"] for v in expected["inputs"]])
    for c, _ in reply["values"]:
        check("demo reply ciphertext is a decimal string", isinstance(c, str), True)
    if mismatches:
        for item in mismatches:
            print("MISMATCH " + item, file=sys.stderr)
        sys.exit(1)
    print("verify: the demo reply decrypts as python-paillier computes")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "verify"):
        sys.exit(__doc__)
    command, directory = sys.argv[1], sys.argv[2]
    {"generate": generate, "verify": verify}[command](directory)


if __name__ == "__main__":
    main()
