#!/usr/bin/env python3
"""Round-trips records through the broker with kafka-python (a pure-Python client).

Produces with acks=all once per available compression codec into one partition,
then reads it back from the beginning and requires byte-identical keys, values,
headers and timestamps at the offsets the producer was told.
"""

import argparse
import sys

import kafka.codec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import clientlib
from clientlib import fail

# gzip ships with Python; the others need optional modules that may be absent.
CODECS = [
    (None, lambda: True),
    ("gzip", kafka.codec.has_gzip),
    ("snappy", kafka.codec.has_snappy),
    ("lz4", kafka.codec.has_lz4),
    ("zstd", kafka.codec.has_zstd),
]


def version_probe_timeout(cls, ms):
    """kafka-python 3 renamed api_version_auto_timeout_ms to bootstrap_timeout_ms;
    pass whichever this installed version understands."""
    for name in ("api_version_auto_timeout_ms", "bootstrap_timeout_ms"):
        if name in cls.DEFAULT_CONFIG:
            return {name: ms}
    return {}


def produce(bootstrap, topic, codec, records):
    label = codec or "none"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             compression_type=codec, linger_ms=5,
                             **version_probe_timeout(KafkaProducer, 30_000))
    try:
        futures = [producer.send(topic, value=r.value, key=r.key, headers=r.headers,
                                 partition=0, timestamp_ms=r.timestamp)
                   for r in records]
        producer.flush(timeout=60)
        offsets = []
        for i, fut in enumerate(futures):
            try:
                meta = fut.get(timeout=30)
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                fail(f"[{label}] record #{i} not acknowledged: {e!r}")
            offsets.append(meta.offset)
    finally:
        producer.close(timeout=10)
    if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
        fail(f"[{label}] acknowledged offsets are not strictly increasing in send order")
    return offsets


def consume(bootstrap, topic, expected):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="none",
                             **version_probe_timeout(KafkaConsumer, 30_000))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    guard = clientlib.StallGuard(f"reading {topic}")
    try:
        while len(got) < len(expected):
            polled = consumer.poll(timeout_ms=1000)
            for batch in polled.values():
                got.extend(batch)
            if polled:
                guard.progressed()
            else:
                guard.check(f"{len(got)} of {len(expected)} records read")
    finally:
        consumer.close()
    if len(got) != len(expected):
        fail(f"read {len(got)} records, expected {len(expected)}")
    for i, ((label, offset, rec), msg) in enumerate(zip(expected, got)):
        if msg.offset != offset:
            fail(f"[{label}] record read at offset {msg.offset}, acknowledged at {offset}")
        if msg.timestamp_type != 0:
            fail(f"[{label}] offset {offset}: timestamp type {msg.timestamp_type}, "
                 f"expected 0 (CreateTime)")
        problem = clientlib.compare(label, rec, msg.key, msg.value, msg.headers,
                                    msg.timestamp, i)
        if problem:
            fail(f"{problem} at offset {offset} (sent {rec.describe()})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic to use (auto-created by producing)")
    ap.add_argument("--count", type=int, default=2000, help="records per codec (default 2000)")
    ap.add_argument("--timeout", type=float, default=90, help="overall seconds (default 90)")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")
    clientlib.start_watchdog(args.timeout, "kafkapython_roundtrip")

    ran, skipped = [], []
    expected = []
    for codec, available in CODECS:
        label = codec or "none"
        if not available():
            skipped.append(label)
            continue
        records = clientlib.make_records(args.count, seed=f"kafka-python-{label}",
                                         null_header_values=False)
        offsets = produce(args.bootstrap, args.topic, codec, records)
        expected.extend((label, o, r) for o, r in zip(offsets, records))
        ran.append(label)
        print(f"  {label}: {args.count} records acknowledged", flush=True)
    consume(args.bootstrap, args.topic, expected)
    skipped_note = f"; skipped (module missing): {', '.join(skipped)}" if skipped else ""
    print(f"OK kafka-python round trip: {args.count} records x codecs [{', '.join(ran)}] "
          f"byte-identical on {args.topic}{skipped_note}")


if __name__ == "__main__":
    sys.exit(main())
