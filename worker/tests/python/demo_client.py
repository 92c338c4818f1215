#!/usr/bin/env python3
"""A client of the original demo's shape, speaking only AMQP (pika) and JSON (phe).

It does what any third-party client would: declare its own durable reply queue, bind it to the
results exchange under its own name, publish {"public_key": {"g", "n"}, "values": [[c, e], ...]}
to the readings exchange with reply_to set, wait for the reply, decrypt it and check that every
value was multiplied by the same integer in 1..=10 (the demo's computation).

Configuration comes from the environment (the Rust test sets it):
AMQP_URL, READINGS_EXCHANGE, ROUTING_KEY, RESULTS_EXCHANGE, REPLY_QUEUE, KEY_BITS.
Prints one JSON line with the inputs, outputs and factor; exits non-zero on any mismatch.
"""

import json
import os
import sys
import time
import uuid

import pika
from phe import paillier


def main() -> int:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    readings_exchange = os.environ["READINGS_EXCHANGE"]
    routing_key = os.environ.get("ROUTING_KEY", "submission")
    results_exchange = os.environ["RESULTS_EXCHANGE"]
    reply_queue = os.environ["REPLY_QUEUE"]
    bits = int(os.environ.get("KEY_BITS", "2048"))

    public_key, private_key = paillier.generate_paillier_keypair(n_length=bits)
    inputs = [10, 11, 5.5]
    encrypted = [public_key.encrypt(v) for v in inputs]
    # Python's json writes n and g as bare integers of hundreds of digits: exactly the demo's body.
    body = json.dumps(
        {
            "public_key": {"g": public_key.g, "n": public_key.n},
            "values": [[str(e.ciphertext()), e.exponent] for e in encrypted],
        }
    )

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=reply_queue, durable=True)
    channel.queue_bind(queue=reply_queue, exchange=results_exchange, routing_key=reply_queue)
    channel.confirm_delivery()
    request_id = str(uuid.uuid4())
    channel.basic_publish(
        exchange=readings_exchange,
        routing_key=routing_key,
        body=body,
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=request_id,
            correlation_id=request_id,
            reply_to=reply_queue,
            # The broker checks user_id against the connection's user; the worker answers on
            # the sender's own reply queue ("results.<user>"), unless it runs with
            # identity.insecure_shared_user, where REPLY_QUEUE may be any queue.
            user_id=pika.URLParameters(url).credentials.username,
        ),
        mandatory=True,
    )

    deadline = time.time() + 60
    reply = None
    while time.time() < deadline:
        method, properties, reply_body = channel.basic_get(queue=reply_queue, auto_ack=False)
        if method is None:
            time.sleep(0.1)
            continue
        reply = json.loads(reply_body)
        channel.basic_ack(method.delivery_tag)
        break
    connection.close()
    if reply is None:
        print("no reply within 60 s", file=sys.stderr)
        return 2
    if "values" not in reply:
        print(f"unexpected reply: {reply}", file=sys.stderr)
        return 3

    outputs = [
        private_key.decrypt(paillier.EncryptedNumber(public_key, int(c), int(e)))
        for c, e in reply["values"]
    ]
    factor = outputs[0] / inputs[0]
    ok = (
        len(outputs) == len(inputs)
        and float(factor).is_integer()
        and 1 <= factor <= 10
        and all(abs(o - factor * i) < 1e-9 for o, i in zip(outputs, inputs))
    )
    print(json.dumps({"inputs": inputs, "outputs": outputs, "factor": factor, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
