"""Log compaction seen from a client: many updates per key shrink to the latest value per key,
kept records keep their offsets, and tombstones stay for delete.retention.ms and then go.
"""

import argparse
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import fail, start_watchdog

KEYS = 100
UPDATES = 20
TOMBSTONED = range(10)


def produce_history(producer, topic):
    """Every key updated UPDATES times, then tombstones for some. Returns the offset of each
    record by (key, value)."""
    offsets = {}

    def delivered(err, msg):
        if err is not None:
            fail(f"produce to {topic}: {err}")
        offsets[(msg.key(), msg.value())] = msg.offset()

    for round_ in range(UPDATES):
        for k in range(KEYS):
            producer.produce(topic, key=f"key-{k}".encode(),
                             value=f"price-{k}-{round_}".encode(), on_delivery=delivered)
            producer.poll(0)
    for k in TOMBSTONED:
        producer.produce(topic, key=f"key-{k}".encode(), value=None, on_delivery=delivered)
    producer.flush(30)
    return offsets


def read_all(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "enable.auto.commit": False})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.time() + 30
    while (not records or records[-1][0] < high - 1) and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        records.append((msg.offset(), msg.key(), msg.value()))
    c.close()
    return records


def expected_after_compaction(offsets, keep_tombstones):
    latest = {}
    for (key, value), offset in offsets.items():
        if key not in latest or offset > latest[key][0]:
            latest[key] = (offset, value)
    expected = []
    for key, (offset, value) in latest.items():
        if value is None and not keep_tombstones:
            continue
        expected.append((offset, key, value))
    return sorted(expected)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    start_watchdog(150, "compaction")

    topics = {"prices-keep-tombstones": "86400000", "prices-drop-tombstones": "1500"}
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([
        NewTopic(name, 1, 1, config={
            "cleanup.policy": "compact",
            "segment.ms": "300",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": retention,
        })
        for name, retention in topics.items()
    ])
    for f in futures.values():
        f.result(timeout=30)

    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20})
    histories = {name: produce_history(producer, name) for name in topics}
    # Only closed segments are cleaned: a late record rolls the history out of the active one.
    time.sleep(0.6)
    for name in topics:
        producer.produce(name, key=b"filler", value=b"rolls the segment")
    producer.flush(30)

    for name, retention in topics.items():
        history = histories[name]
        expected = expected_after_compaction(history, keep_tombstones=retention != "1500")
        filler = None
        deadline = time.time() + 90
        while True:
            got = read_all(args.bootstrap, name)
            filler = [r for r in got if r[1] == b"filler"]
            got = [r for r in got if r[1] != b"filler"]
            if got == expected:
                break
            if time.time() > deadline:
                fail(f"{name}: {len(got)} records after waiting for the cleaner, expected "
                     f"{len(expected)}; first differences: "
                     f"{[(a, b) for a, b in zip(got, expected) if a != b][:3]}")
            time.sleep(0.5)
        if len(filler) != 1:
            fail(f"{name}: the record in the active segment was touched: {filler}")
        tombstones = sum(1 for _, _, v in got if v is None)
        print(f"{name}: {len(history)} records compacted to {len(got)} "
              f"({tombstones} tombstones), offsets unchanged")
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
