"""The Sluice client and the reference clients on the same topics.

`read`: reads a topic with confluent-kafka and kafka-python and compares every record (key,
value, headers, timestamp, partition) with what the Sluice producer says it wrote (JSON).
`write`: produces a deterministic record set with confluent-kafka using librdkafka's
Java-compatible partitioner (murmur2_random) and writes down where each record landed, for
the Sluice consumer and partitioner to be checked against.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from clientlib import fail, start_watchdog


def hexed(b):
    return None if b is None else bytes(b).hex()


def record_json(partition, offset, key, value, headers, timestamp):
    return {
        "partition": partition,
        "offset": offset,
        "key": hexed(key),
        "value": hexed(value),
        "headers": [[k, hexed(v)] for k, v in (headers or [])],
        "timestamp": timestamp,
    }


def read_confluent(args, count):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "interop-ck",
                  "enable.auto.commit": False})
    meta = c.list_topics(args.topic, timeout=10).topics[args.topic]
    c.assign([TopicPartition(args.topic, p, 0) for p in meta.partitions])
    got = []
    deadline = time.time() + 60
    while len(got) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        headers = [(k, v) for k, v in (m.headers() or [])]
        got.append(record_json(m.partition(), m.offset(), m.key(), m.value(), headers,
                               m.timestamp()[1]))
    c.close()
    return got


def read_kafka_python(args, count):
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    parts = [KpTopicPartition(args.topic, p) for p in sorted(c.partitions_for_topic(args.topic))]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    got = []
    deadline = time.time() + 60
    while len(got) < count and time.time() < deadline:
        for msgs in c.poll(timeout_ms=500).values():
            for m in msgs:
                got.append(record_json(m.partition, m.offset, m.key, m.value,
                                       list(m.headers), m.timestamp))
    c.close()
    return got


def compare(client, expected, got):
    key = lambda r: (r["partition"], r["offset"])
    expected = sorted(expected, key=key)
    got = sorted(got, key=key)
    if len(got) != len(expected):
        fail(f"{client}: read {len(got)} records, the Sluice producer wrote {len(expected)}")
    for e, g in zip(expected, got):
        if e != g:
            fail(f"{client}: record differs:\n  wrote {e}\n  read  {g}")


def read(args):
    with open(args.expect) as f:
        expected = json.load(f)
    compare("confluent-kafka", expected, read_confluent(args, len(expected)))
    compare("kafka-python", expected, read_kafka_python(args, len(expected)))
    print(f"OK both clients read the {len(expected)} records the Sluice producer wrote")


def write(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "partitioner": "murmur2_random",
                  "linger.ms": 5})
    written = []

    def delivered_with(headers):
        # Delivery reports do not carry headers: remember the ones sent.
        def delivered(err, m):
            if err is not None:
                fail(f"produce: {err}")
            written.append(record_json(m.partition(), m.offset(), m.key(), m.value(),
                                       headers or [], m.timestamp()[1]))
        return delivered

    base = 1_650_000_000_000
    for i in range(args.count):
        key = None if i % 10 == 0 else f"user-{i % 37}".encode()
        value = None if i % 23 == 0 else f"event {i} ".encode() * (1 + i % 5)
        headers = [("n", str(i).encode()), ("empty", b"")] if i % 3 else None
        kwargs = {"value": value, "key": key, "timestamp": base + i,
                  "on_delivery": delivered_with(headers)}
        if headers:
            kwargs["headers"] = headers
        p.produce(args.topic, **kwargs)
        p.poll(0)
    if p.flush(30) != 0:
        fail("produce did not finish")
    with open(args.out, "w") as f:
        json.dump(written, f)
    print(f"OK wrote {len(written)} records")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["read", "write"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect")
    ap.add_argument("--out")
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    start_watchdog(120, f"interop {args.mode}")
    read(args) if args.mode == "read" else write(args)


if __name__ == "__main__":
    sys.exit(main())
