#!/usr/bin/env python3
"""Re-creation of the original demo's "server API" (see ../shared/reference/original-demo.md).

POST / with {"public_key": {"g": int, "n": int}, "values": [["<ciphertext>", exponent], ...]}:
every ciphertext is multiplied by ONE random integer in 1..=10 (the demo's "useful computation"),
re-randomised (python-paillier's obfuscation, ciphertext(be_secure=True)), and returned as
{"values": [["<ciphertext>", exponent], ...]} in the same order. It never sees a plaintext.

Written for bench/pipeline.py from the description of the demo, not from its code; Flask's own
development server, threaded, as the demo ran it.
"""
import argparse
import secrets

import phe
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/")
def compute():
    body = request.get_json(force=True)
    public_key = phe.PaillierPublicKey(int(body["public_key"]["n"]))
    factor = secrets.randbelow(10) + 1
    out = []
    for ciphertext, exponent in body["values"]:
        scaled = phe.EncryptedNumber(public_key, int(ciphertext), int(exponent)) * factor
        out.append([str(scaled.ciphertext(be_secure=True)), scaled.exponent])
    return jsonify({"values": out})


@app.get("/health")
def health():
    return "ok"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    app.run(host="127.0.0.1", port=args.port, threaded=True)
