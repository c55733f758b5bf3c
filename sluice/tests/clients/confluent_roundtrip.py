#!/usr/bin/env python3
"""Round-trips records through the broker with confluent-kafka (librdkafka).

For every compression codec: idempotent acks=all produce to <prefix>-<codec>,
then read the partition back from the beginning and require byte-identical
keys, values, headers, timestamps and order, at the offsets the producer was told.
"""

import argparse
import sys

from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer,
                             KafkaError, Producer, TopicPartition)

import clientlib
from clientlib import fail

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def produce(bootstrap, topic, codec, records):
    errors = []
    offsets = [None] * len(records)

    def on_error(err):
        # Transport hiccups are retried by librdkafka; only fatal errors end the run.
        if err.fatal():
            errors.append(f"fatal producer error: {err}")

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 5,
        "error_cb": on_error,
    })

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"delivery of record #{index} failed: {err}")
            elif msg.partition() != 0:
                errors.append(f"record #{index} delivered to partition {msg.partition()}")
            else:
                offsets[index] = msg.offset()
        return on_delivery

    for i, rec in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=rec.value, key=rec.key, partition=0,
                                 headers=rec.headers, timestamp=rec.timestamp,
                                 on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if errors:
            break
    remaining = producer.flush(60)
    if errors:
        fail(f"[{codec}] {errors[0]} ({len(errors)} error(s) in total)")
    if remaining:
        fail(f"[{codec}] {remaining} record(s) still undelivered after 60s")
    if any(o is None for o in offsets):
        fail(f"[{codec}] some records got no delivery report")
    if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
        fail(f"[{codec}] delivery offsets are not strictly increasing in send order")
    return offsets


def consume(bootstrap, topic, codec, records, offsets):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-verifier",
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    guard = clientlib.StallGuard(f"[{codec}] reading {topic}")
    try:
        while len(got) < len(records):
            msg = consumer.poll(1.0)
            if msg is None:
                guard.check(f"{len(got)} of {len(records)} records read")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"[{codec}] consumer error after {len(got)} records: {msg.error()}")
            got.append(msg)
            guard.progressed()
    finally:
        consumer.close()

    first = offsets[0]
    if got[0].offset() != first:
        fail(f"[{codec}] first record read at offset {got[0].offset()}, produced at {first}")
    for i, (rec, msg) in enumerate(zip(records, got)):
        if msg.offset() != offsets[i]:
            fail(f"[{codec}] record #{i} read at offset {msg.offset()}, "
                 f"delivery report said {offsets[i]}")
        ts_type, ts = msg.timestamp()
        if ts_type != TIMESTAMP_CREATE_TIME:
            fail(f"[{codec}] record #{i} timestamp type {ts_type}, expected CreateTime")
        problem = clientlib.compare(codec, rec, msg.key(), msg.value(), msg.headers(), ts, i)
        if problem:
            fail(f"{problem} (sent {rec.describe()})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic-prefix", required=True,
                    help="topics <prefix>-<codec> are auto-created by producing")
    ap.add_argument("--count", type=int, default=2000, help="records per codec (default 2000)")
    ap.add_argument("--timeout", type=float, default=90, help="overall seconds (default 90)")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")
    clientlib.start_watchdog(args.timeout, "confluent_roundtrip")

    for codec in CODECS:
        topic = f"{args.topic_prefix}-{codec}"
        records = clientlib.make_records(args.count, seed=f"confluent-{codec}")
        offsets = produce(args.bootstrap, topic, codec, records)
        consume(args.bootstrap, topic, codec, records, offsets)
        print(f"  {codec}: {args.count} records round-tripped via {topic}", flush=True)
    print(f"OK confluent-kafka round trip: {args.count} records x {len(CODECS)} codecs "
          f"({', '.join(CODECS)}) byte-identical")


if __name__ == "__main__":
    sys.exit(main())
