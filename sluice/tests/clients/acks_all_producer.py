#!/usr/bin/env python3
"""Steady idempotent acks=all producer that records every acknowledged write.

Each acknowledged record is appended to --out as "<partition> <offset> <value>"
(offset -1 when the client did not learn it) and flushed at once, so whatever the broker acknowledged before a crash is on
disk for verify_acked.py. Broker outages are ridden out, not treated as failure.
"""

import argparse
import signal
import sys
import time

from confluent_kafka import KafkaException, Producer

import clientlib
from clientlib import fail


def new_producer(bootstrap, fatal, extra):
    def on_error(err):
        if err.fatal():
            fatal.append(str(err))
        else:
            # Expected while the broker is down; librdkafka reconnects by itself.
            print(f"producer: {err}", file=sys.stderr, flush=True)

    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "reconnect.backoff.max.ms": 1000,
        "error_cb": on_error,
        **extra,
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic to write to")
    ap.add_argument("--out", required=True, help="file that acknowledged records are appended to")
    ap.add_argument("--max-seconds", type=float, default=60,
                    help="stop producing after this long (default 60); SIGTERM stops sooner")
    ap.add_argument("--rate", type=float, default=200, help="records per second (default 200)")
    ap.add_argument("-X", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra librdkafka property (repeatable), e.g. request.timeout.ms=5000")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.extra)
    if args.rate <= 0 or args.max_seconds <= 0:
        ap.error("--rate and --max-seconds must be positive")
    # Room for the final flush on top of the producing time.
    clientlib.start_watchdog(args.max_seconds + 30, "acks_all_producer")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop.append("SIGINT"))

    out = open(args.out, "a", buffering=1, encoding="ascii")
    counts = {"sent": 0, "acked": 0, "failed": 0, "restarts": 0}
    last_error = []

    def on_delivery(err, msg):
        if err is not None:
            counts["failed"] += 1
            last_error[:] = [str(err)]
            return
        counts["acked"] += 1
        # librdkafka may report an idempotent write delivered without its offset: when the
        # broker acknowledges a later batch of the same producer, the earlier ones whose
        # answers were lost must have been stored too. -1 is Kafka's "offset unknown".
        offset = msg.offset()
        if offset is None or offset < 0:
            offset = -1
        out.write(f"{msg.partition()} {offset} {msg.value().decode()}\n")

    fatal = []
    producer = new_producer(args.bootstrap, fatal, extra)
    interval = 1.0 / args.rate
    deadline = time.monotonic() + args.max_seconds
    next_send = time.monotonic()
    seq = 0
    while not stop and time.monotonic() < deadline:
        if fatal:
            # A fatal idempotence error poisons this producer instance only; a fresh
            # one gets a new producer id and carries on with new sequence numbers.
            print(f"producer: fatal error, starting a new producer: {fatal[0]}",
                  file=sys.stderr, flush=True)
            producer.flush(5)
            fatal.clear()
            producer = new_producer(args.bootstrap, fatal, extra)
            counts["restarts"] += 1
        now = time.monotonic()
        if now < next_send:
            producer.poll(min(next_send - now, 0.05))
            continue
        try:
            producer.produce(args.topic, value=f"seq-{seq}".encode(), on_delivery=on_delivery)
            seq += 1
            counts["sent"] += 1
            next_send += interval
        except BufferError:
            # Local queue full because the broker is unreachable: wait, don't drop.
            producer.poll(0.1)
            next_send = time.monotonic()
        except KafkaException as e:
            print(f"producer: produce failed: {e}", file=sys.stderr, flush=True)
            producer.poll(0.1)
        producer.poll(0)

    remaining = producer.flush(10)
    out.close()
    reason = stop[0] if stop else "max-seconds reached"
    summary = (f"sent {counts['sent']}, acknowledged {counts['acked']}, failed {counts['failed']}, "
               f"unresolved {remaining}, producer restarts {counts['restarts']} ({reason})")
    if counts["acked"] == 0:
        fail(f"acks_all_producer: nothing was ever acknowledged: {summary}"
             + (f"; last error: {last_error[0]}" if last_error else ""))
    print(f"OK acks_all_producer: {summary}")


if __name__ == "__main__":
    sys.exit(main())
