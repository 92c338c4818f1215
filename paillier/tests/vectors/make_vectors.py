#!/usr/bin/env python3
"""Build the known-answer vectors of the `paillier` crate with python-paillier (`phe`).

Run from anywhere:  python3 paillier/tests/vectors/make_vectors.py
It (re)writes phe_vectors.json next to this script; `paillier/tests/known_answers.rs` checks
every vector through the crate's public API.

Why the output is reproducible: the key is built from two primes fixed below (generated once
with phe.generate_paillier_keypair(n_length=2048)), every nonce r is derived from SHA-256 of a
label, and homomorphic results are read with `ciphertext(be_secure=False)`, which python-paillier
leaves un-obfuscated, so every number in the file is a function of this script alone. Re-running
it must reproduce the committed file byte for byte; `--check` verifies exactly that.

The primes were picked so that p has its second-highest bit clear (q has it set): such keys are
ordinary python-paillier output (it only requires n to have exactly 2048 bits), so a Rust
importer that demanded "top two bits set" would reject real peers; these vectors catch that.
"""

import argparse
import fractions
import hashlib
import json
import math
import os
import struct
import sys

try:
    import phe
    from phe import EncodedNumber, EncryptedNumber, PaillierPrivateKey, PaillierPublicKey
    from phe.util import int_to_base64, is_prime
except ImportError:  # pragma: no cover - a helpful message instead of a trace
    sys.exit("python-paillier is required: pip install phe gmpy2")

# 1024-bit primes, n = P * Q has exactly 2048 bits. Generated once, never to change: the Rust
# test compares against numbers derived from them.
P = int(
    "b05fe2e6fcfb929389b72069b7e33d4b9f272d978ca18b0f4b28125411ebc5bc"
    "3c723654cbc7821b615eb7713eb4aaf147df1c27f1e58010a2e77a4beaf6ea9a"
    "99579bacdba1bed48325dae64b245f9e1a510338413db336e69b3bfc314d4ae8"
    "bef33bc96bcf4094df0833eb9e8767b8ec28b7f29514ff411053eb21a18c45b3",
    16,
)
Q = int(
    "fd8b9e08a9a6d4814b247e60e108ed2b99a658f767955ab05cf7947a23ab88c2"
    "46a507ebe11920687f64489a89f137fcb0caa59f5c9c2cebefdf3c177e6cbc98"
    "89d365a57e50a20b17f7b38f566a69fea03b9d0bbca23b5a421eafe42db9dd4a"
    "e7e6ef48f0696999ef90caa642f165a626f096faa1430a59423b0521fb4b2eeb",
    16,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "phe_vectors.json")

PUB = PaillierPublicKey(P * Q)
PRIV = PaillierPrivateKey(PUB, P, Q)
N = PUB.n
MAX_INT = PUB.max_int


def nonce(label):
    """A deterministic r in [2, n) derived from a label (SHA-256 in counter mode)."""
    stream = b""
    counter = 0
    while len(stream) * 8 < N.bit_length() + 128:
        stream += hashlib.sha256(b"paillier-kat|%s|%d" % (label.encode(), counter)).digest()
        counter += 1
    r = int.from_bytes(stream, "big") % N
    # phe treats r_value=0 as "pick a random one"; 1 is tested on purpose elsewhere.
    assert r > 1 and math.gcd(r, N) == 1
    return r


def f64_bits(x):
    return struct.unpack(">Q", struct.pack(">d", x))[0]


def float_entry(x):
    """A float as its repr (parsed exactly by Rust's str::parse) plus its IEEE bits as a check."""
    return {"value": repr(x), "bits": "%016x" % f64_bits(x)}


def f64_of_decoded(value):
    """What an f64 view of a decoded value must be: python's own float(), correctly rounded."""
    try:
        return {"f64": repr(float(value))}
    except OverflowError:
        return {"f64_error": "FloatOverflow"}


def signed_mantissa(encoding):
    if encoding <= MAX_INT:
        return encoding
    if encoding >= N - MAX_INT:
        return encoding - N
    return None


def kind_of(value):
    if isinstance(value, float):
        return "float"
    if -(2**63) <= value < 2**63:
        return "int"
    return "bigint"


def scalar_fields(value):
    """The JSON fields naming a plaintext scalar: kind and value (ints as decimal strings)."""
    kind = kind_of(value)
    if kind == "float":
        out = {"kind": kind}
        out.update(float_entry(value))
        return out
    return {"kind": kind, "value": str(value)}


def result_fields(enc):
    """Ciphertext, exponent and expected decryption of an EncryptedNumber (never obfuscated)."""
    encoding = PRIV.decrypt_encoded(enc)
    out = {
        "ciphertext": str(enc.ciphertext(be_secure=False)),
        "exponent": enc.exponent,
    }
    mantissa = signed_mantissa(encoding.encoding)
    if mantissa is None:
        out["decrypt_error"] = "DecodingOverflow"
        return out
    out["mantissa"] = str(mantissa)
    value = encoding.decode()
    out.update(f64_of_decoded(value))
    return out


# ---------------------------------------------------------------------------------------------
# Encodings


def encoding_cases():
    cases = []

    def add(name, value, precision=None, max_exponent=None):
        entry = {"name": name}
        entry.update(scalar_fields(value))
        if precision is not None:
            entry["precision"] = float_entry(precision)
        if max_exponent is not None:
            entry["max_exponent"] = max_exponent
        try:
            enc = EncodedNumber.encode(PUB, value, precision=precision, max_exponent=max_exponent)
        except ValueError as err:
            # phe: ValueError for |mantissa| > max_int, for NaN and for a precision <= 0.
            if isinstance(value, float) and math.isnan(value):
                entry["error"] = "NonFinite"
            elif precision is not None and not precision > 0:
                entry["error"] = "NonFinite"
            else:
                assert "Integer needs to be within" in str(err), err
                entry["error"] = "EncodingOverflow"
            entry["python_error"] = type(err).__name__
        except OverflowError as err:
            # phe: Fraction(inf) raises OverflowError.
            entry["error"] = "NonFinite"
            entry["python_error"] = type(err).__name__
        else:
            entry["encoding"] = str(enc.encoding)
            entry["exponent"] = enc.exponent
            entry["mantissa"] = str(signed_mantissa(enc.encoding))
        cases.append(entry)

    # Integers: exponent 0, negatives wrap modulo n.
    for v in [0, 1, -1, 2, 7, -3, 10, 11, 255, -256, 123456789, -987654321, 2**62, 2**63 - 1, -(2**63)]:
        add("int %d" % v, v)
    # Big integers (beyond i64), up to the +/- max_int limit, and one past it.
    for name, v in [
        ("2^64", 2**64),
        ("-(2^64)-1", -(2**64) - 1),
        ("2^100", 2**100),
        ("-(2^200)", -(2**200)),
        ("max_int", MAX_INT),
        ("-max_int", -MAX_INT),
        ("max_int+1", MAX_INT + 1),
        ("-(max_int+1)", -(MAX_INT + 1)),
        ("n", N),
    ]:
        add("bigint " + name, v)

    # Floats: python picks the exponent from frexp so that no bit of the mantissa is lost.
    floats = [
        5.4, 4.2, 0.0555, 0.0259, -3.75, 1e-10, 123456.789, 1e20, 0.5, -0.5, 0.1, 1.0, -1.0, 3.0,
        0.0, -0.0, 1.5, 2.5, 98.6, 36.6, 120.0, -273.15, 1 / 3, 2.0**-30, 2.0**60, 1e100, 1e-100,
        5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
        9007199254740993.0, 4503599627370497.5,
    ]
    for v in floats:
        add("float %r" % v, v)
    # Non-finite floats cannot be encoded.
    add("float nan", float("nan"))
    add("float inf", float("inf"))
    add("float -inf", float("-inf"))

    # An explicit precision: exponent floor(log16(precision)), mantissa rounded half to even.
    for v in [5.4, 4.2, 0.0555, -3.75, 123456.789, 0.0, 1e-10, 7.0]:
        add("float %r precision 1e-3" % v, v, precision=1e-3)
    for v in [0.5, 1.5, 2.5, -2.5, 3.5, -0.5, 5.4, -5.6]:
        add("float %r precision 1.0 (round half even)" % v, v, precision=1.0)
    for v in [24.0, 40.0, 8.0, 5.4, 1000.0]:
        add("float %r precision 16" % v, v, precision=16.0)
    # Precisions whose log16 python computes inexactly (math.log(16**k, 16) != k for these k).
    for k in [-31, -29, -13, -2, 3, 29]:
        add("float 5.4 precision 16^%d" % k, 5.4, precision=16.0**k)
    for p in [1e-6, 0.1, 0.3, 1e-12]:
        add("float 4.2 precision %r" % p, 4.2, precision=p)
    # A precision too fine for the key: the mantissa exceeds max_int.
    add("float 1e300 precision 5e-324 (overflow)", 1e300, precision=5e-324)
    add("float -1e300 precision 5e-324 (overflow)", -1e300, precision=5e-324)
    add("float 5.4 precision 0 (invalid)", 5.4, precision=0.0)
    add("float 5.4 precision -1 (invalid)", 5.4, precision=-1.0)

    # max_exponent: the exponent is min(max_exponent, natural exponent).
    for v, m in [
        (5.4, -20), (5.4, -13), (5.4, 0), (5.4, 2), (0.0555, -32), (-3.75, -16), (1e20, 0),
        (1e20, -2), (123456.789, -8), (2.5, 0), (-2.5, 0), (1e-10, -13), (7.0, -5),
    ]:
        add("float %r max_exponent %d" % (v, m), v, max_exponent=m)
    for v, p, m in [(5.4, 1e-3, -5), (5.4, 1e-3, -1), (0.0555, 1.0, -13)]:
        add("float %r precision %r max_exponent %d" % (v, p, m), v, precision=p, max_exponent=m)
    return cases


# ---------------------------------------------------------------------------------------------
# Encryptions with a fixed nonce


def encryption_cases():
    cases = []
    inputs = {}

    def add(name, value, precision=None, r=None):
        r = nonce("encrypt|" + name) if r is None else r
        enc = PUB.encrypt(value, precision=precision, r_value=r)
        encoded = EncodedNumber.encode(PUB, value, precision=precision)
        entry = {"name": name}
        entry.update(scalar_fields(value))
        if precision is not None:
            entry["precision"] = float_entry(precision)
        entry["r"] = str(r)
        entry["encoding"] = str(encoded.encoding)
        entry.update(result_fields(enc))
        cases.append(entry)
        inputs[name] = enc

    add("a", 5.4)
    add("b", 4.2)
    add("i", 10)
    add("j", -7)
    add("k", 11)
    add("w", 0.0555)
    add("neg_float", -3.75)
    add("tiny", 1e-10)
    add("big_float", 123456.789)
    add("huge_float", 1e20)
    add("zero", 0)
    add("bigint", 2**100)
    add("neg_bigint", -(2**200))
    add("max_int", MAX_INT)
    add("neg_max_int", -MAX_INT)
    add("r_is_one", 42, r=1)
    add("precision", 5.4, precision=1e-3)
    return cases, inputs


# ---------------------------------------------------------------------------------------------
# Homomorphic operations (deterministic: phe does not obfuscate results of arithmetic)


def homomorphic_cases(inputs):
    cases = []

    def add(name, op, enc, **args):
        entry = {"name": name, "op": op}
        entry.update(args)
        entry.update(result_fields(enc))
        cases.append(entry)

    a, b, i, j, k, w = (inputs[x] for x in ["a", "b", "i", "j", "k", "w"])
    nf, tiny, zero = inputs["neg_float"], inputs["tiny"], inputs["zero"]

    add("a + b", "add", a + b, a="a", b="b")
    add("i + j", "add", i + j, a="i", b="j")
    add("i + a (int + float: exponents aligned)", "add", i + a, a="i", b="a")
    add("a + i", "add", a + i, a="a", b="i")
    add("a + tiny", "add", a + tiny, a="a", b="tiny")
    add("a - b", "sub", a - b, a="a", b="b")
    add("b - a", "sub", b - a, a="b", b="a")
    add("i - a", "sub", i - a, a="i", b="a")
    add("j - i", "sub", j - i, a="j", b="i")
    add("-a", "neg", a * -1, a="a")
    add("-j", "neg", j * -1, a="j")
    add("-zero", "neg", zero * -1, a="zero")

    for name in ["a", "i", "j"]:
        enc = inputs[name]
        add("%s + 3" % name, "add_i64", enc + 3, a=name, k="3")
        add("%s + -1000" % name, "add_i64", enc + -1000, a=name, k="-1000")
        add("%s + 2.5" % name, "add_f64", enc + 2.5, a=name, x=float_entry(2.5))
        add("%s + -1.25" % name, "add_f64", enc + -1.25, a=name, x=float_entry(-1.25))
    add("a + 1e-10", "add_f64", a + 1e-10, a="a", x=float_entry(1e-10))
    add("i + 0.0555", "add_f64", i + 0.0555, a="i", x=float_entry(0.0555))

    for name, ks in [("a", [7, -3, 1, -1, 16]), ("i", [7, -3]), ("j", [7, -3]), ("w", [7, -3])]:
        enc = inputs[name]
        for kk in ks:
            add("%s * %d" % (name, kk), "mul_i64", enc * kk, a=name, k=str(kk))
    add("a * 0", "mul_i64", a * 0, a="a", k="0")
    add("i * 2^40", "mul_i64", i * 2**40, a="i", k=str(2**40))
    for name, xs in [("a", [0.0555, 0.0259, -3.75, 0.5, -0.5]), ("i", [0.0555, -3.75]),
                     ("j", [0.0555, -0.5]), ("neg_float", [0.0555, -3.75])]:
        enc = inputs[name]
        for x in xs:
            add("%s * %r" % (name, x), "mul_f64", enc * x, a=name, x=float_entry(x))
    add("a * (1/3)", "mul_f64", a * (1 / 3), a="a", x=float_entry(1 / 3))
    add("a * 1e20 (scalar with a positive exponent)", "mul_f64", a * 1e20, a="a",
        x=float_entry(1e20))
    # huge_float (1e20) is encrypted with exponent +3: operations must align from above.
    hf = inputs["huge_float"]
    add("huge_float + 3", "add_i64", hf + 3, a="huge_float", k="3")
    add("huge_float + 2.5", "add_f64", hf + 2.5, a="huge_float", x=float_entry(2.5))
    add("huge_float + i", "add", hf + i, a="huge_float", b="i")
    add("huge_float * 0.0555", "mul_f64", hf * 0.0555, a="huge_float", x=float_entry(0.0555))
    add("i * 4.0", "mul_f64", i * 4.0, a="i", x=float_entry(4.0))

    # Encoded scalars with an explicit precision (python: enc + EncodedNumber / enc * EncodedNumber).
    e = EncodedNumber.encode(PUB, 0.0555, precision=1e-3)
    add("a * encode(0.0555, precision 1e-3)", "mul_encoded", a * e, a="a",
        x=float_entry(0.0555), precision=float_entry(1e-3))
    e = EncodedNumber.encode(PUB, -2.25, precision=1e-3)
    add("a * encode(-2.25, precision 1e-3)", "mul_encoded", a * e, a="a",
        x=float_entry(-2.25), precision=float_entry(1e-3))
    e = EncodedNumber.encode(PUB, 1.5, precision=1e-3)
    add("i + encode(1.5, precision 1e-3)", "add_encoded", i + e, a="i",
        x=float_entry(1.5), precision=float_entry(1e-3))
    e = EncodedNumber.encode(PUB, 1.5, precision=1e-20)
    add("a + encode(1.5, precision 1e-20)", "add_encoded", a + e, a="a",
        x=float_entry(1.5), precision=float_entry(1e-20))

    for name, new_exp in [("a", -20), ("a", -13), ("i", -5), ("j", -1), ("nf", -16)]:
        enc = {"nf": nf}.get(name, inputs.get(name))
        label = {"nf": "neg_float"}.get(name, name)
        add("%s.decrease_exponent_to(%d)" % (label, new_exp), "decrease_exponent_to",
            enc.decrease_exponent_to(new_exp), a=label, new_exponent=new_exp)

    # The study's computations.
    add("weighted sum 0.0555*a + 0.0259*b", "weighted_sum", a * 0.0555 + b * 0.0259,
        a="a", b="b", x=float_entry(0.0555), y=float_entry(0.0259))
    add("weighted sum 0.0555*i + 0.0259*k", "weighted_sum", i * 0.0555 + k * 0.0259,
        a="i", b="k", x=float_entry(0.0555), y=float_entry(0.0259))
    add("mean (i + j + k) * (1/3)", "mean3", (i + j + k) * (1 / 3), a="i", b="j", c="k")
    add("(a + b) * 7", "add_mul", (a + b) * 7, a="a", b="b", k="7")
    return cases


def invalid_operation_cases(inputs):
    """Operations python-paillier refuses: the crate must refuse them too."""
    a = inputs["a"]
    cases = []
    try:
        a.decrease_exponent_to(-12)
    except ValueError:
        cases.append({"name": "raise exponent", "op": "decrease_exponent_to", "a": "a",
                      "new_exponent": -12})
    return cases


# ---------------------------------------------------------------------------------------------
# Decoding (raw encodings, encrypted so that they go through the public decrypt path)


def decode_cases():
    cases = []

    def add(name, encoding, exponent):
        r = nonce("decode|" + name)
        c = PUB.raw_encrypt(encoding, r_value=r)
        entry = {"name": name, "encoding": str(encoding), "exponent": exponent,
                 "ciphertext": str(c)}
        assert PRIV.raw_decrypt(c) == encoding
        try:
            value = EncodedNumber(PUB, encoding, exponent).decode()
        except OverflowError as err:
            if "Overflow detected" in str(err):
                entry["error"] = "DecodingOverflow"
            else:
                entry["mantissa"] = str(signed_mantissa(encoding))
                entry["f64_error"] = "FloatOverflow"
        else:
            entry["mantissa"] = str(signed_mantissa(encoding))
            entry.update(f64_of_decoded(value))
        cases.append(entry)

    add("zero", 0, 0)
    add("one", 1, 0)
    add("minus one", N - 1, 0)
    add("max_int", MAX_INT, 0)
    add("-max_int", N - MAX_INT, 0)
    add("max_int + 1 (overflow)", MAX_INT + 1, 0)
    add("n - max_int - 1 (overflow)", N - MAX_INT - 1, 0)
    add("n / 2 (overflow)", N // 2, 0)
    add("2n / 3 (overflow)", 2 * N // 3, 0)
    add("n/3 (overflow)", N // 3, 0)
    add("n/3 - 1 == max_int", N // 3 - 1, 0)
    add("5.4 at -13", round(fractions.Fraction(5.4) * 16**13), -13)
    add("-5.4 at -13", N - round(fractions.Fraction(5.4) * 16**13), -13)
    add("3 at exponent 2", 3, 2)
    add("-3 at exponent 2", N - 3, 2)
    add("2^80 + 1 at -5 (rounded)", 2**80 + 1, -5)
    add("max_int at -1 (too large for f64)", MAX_INT, -1)
    add("max_int at -200", MAX_INT, -200)
    add("1 at -268 (subnormal)", 1, -268)
    add("1 at -270 (underflows to 0)", 1, -270)
    add("2^53+1 at 0 (f64 rounds half even)", 2**53 + 1, 0)
    add("2^54+3 at 0", 2**54 + 3, 0)
    return cases


# ---------------------------------------------------------------------------------------------
# Wire formats


def pheutil_private_jwk():
    """The private key exactly as `pheutil genpkey` writes it (its kid carries a date: fixed here)."""
    date = "2024-01-01 00:00:00"
    jwk_public = {
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
        "n": int_to_base64(PUB.n),
        "kid": "Paillier public key generated by pheutil on {}".format(date),
    }
    jwk_private = {
        "kty": "DAJ",
        "key_ops": ["decrypt"],
        "p": int_to_base64(PRIV.p),
        "q": int_to_base64(PRIV.q),
        "pub": jwk_public,
        "kid": "Paillier private key generated by pheutil on {}".format(date),
    }
    return json.dumps(jwk_private) + "\n"


def wire_cases(inputs):
    # pheutil's serialise_encrypted(): exponent lowered to -32, {"v": str(c), "e": exponent}.
    pheutil = []
    for name in ["a", "j", "neg_float"]:
        enc = inputs[name].decrease_exponent_to(-32)
        text = json.dumps({"v": str(enc.ciphertext(be_secure=False)), "e": enc.exponent})
        entry = {"name": name, "json": text}
        entry.update(result_fields(enc))
        pheutil.append(entry)

    # The original demo's request body: n and g as bare JSON integers, values [["<c>", exp], ...].
    demo_values = [inputs[x] for x in ["i", "k", "a", "j"]]
    body = json.dumps({
        "public_key": {"g": PUB.g, "n": PUB.n},
        "values": [[str(e.ciphertext(be_secure=False)), e.exponent] for e in demo_values],
    })
    demo = {"json": body, "expected": [result_fields(e) for e in demo_values]}
    return pheutil, demo


def build():
    assert is_prime(P) and is_prime(Q) and P != Q
    assert N.bit_length() == 2048 and P.bit_length() == Q.bit_length() == 1024
    encryptions, inputs = encryption_cases()
    pheutil, demo = wire_cases(inputs)
    return {
        "comment": "Known-answer vectors from python-paillier; regenerate with make_vectors.py, "
                   "checked by paillier/tests/known_answers.rs. Numbers are decimal strings.",
        "generator": {"phe": phe.__version__ if hasattr(phe, "__version__") else "unknown",
                      "python": "%d.%d" % sys.version_info[:2]},
        "key": {"p": str(P), "q": str(Q), "n": str(N), "n_squared": str(N * N),
                "max_int": str(MAX_INT), "bits": N.bit_length()},
        "encodings": encoding_cases(),
        "encryptions": encryptions,
        "homomorphic": homomorphic_cases(inputs),
        "invalid_operations": invalid_operation_cases(inputs),
        "decodings": decode_cases(),
        "pheutil_private_jwk": pheutil_private_jwk(),
        "pheutil_ciphertexts": pheutil,
        "demo_payload": demo,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write: fail if the committed file differs from a fresh build")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit("phe_vectors.json is out of date: re-run make_vectors.py")
        print("phe_vectors.json is up to date")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s (%d bytes)" % (OUT, len(text)))


if __name__ == "__main__":
    main()
