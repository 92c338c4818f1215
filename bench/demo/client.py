#!/usr/bin/env python3
"""Re-creation of the original demo's "client API" (see ../shared/reference/original-demo.md).

At start-up it generates ONE Paillier key pair (python-paillier). POST / with
{"input": "10,11", "dns": "http://server"}: each integer is encrypted, the ciphertexts are POSTed
to the server API at `dns` in the demo's wire format, and the decrypted reply is returned as
{"output": [40, 44]}. The form page on port 7000 of the demo is left out: the benchmark drives
this API directly, as the demo's curl example did.

Written for bench/pipeline.py from the description of the demo, not from its code; Flask's own
development server, threaded, as the demo ran it.
"""
import argparse
import json
import urllib.request

import phe
from flask import Flask, jsonify, request

app = Flask(__name__)
KEYS = {}


@app.post("/")
def run():
    body = request.get_json(force=True)
    numbers = [int(x) for x in body["input"].split(",")]
    public_key, private_key = KEYS["public"], KEYS["private"]
    encrypted = [public_key.encrypt(x) for x in numbers]
    payload = {
        "public_key": {"g": public_key.g, "n": public_key.n},
        "values": [[str(e.ciphertext()), e.exponent] for e in encrypted],
    }
    req = urllib.request.Request(
        body["dns"].rstrip("/") + "/",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as reply:
        values = json.load(reply)["values"]
    output = [
        private_key.decrypt(phe.EncryptedNumber(public_key, int(c), int(e))) for c, e in values
    ]
    return jsonify({"output": output})


@app.get("/health")
def health():
    return "ok"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--bits", type=int, default=2048, help="key size (the demo's: 2048)")
    args = parser.parse_args()
    KEYS["public"], KEYS["private"] = phe.generate_paillier_keypair(n_length=args.bits)
    app.run(host="127.0.0.1", port=args.port, threaded=True)
