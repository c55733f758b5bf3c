"""Committed offsets across a broker restart, with confluent-kafka.

`commit` consumes part of a 6-partition topic in a group, commits, and prints the committed
offsets as JSON. After the broker restarts, `verify` joins the same group with a new consumer
and checks it resumes exactly at those offsets in every partition.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import fail, start_watchdog

PARTITIONS = 6


def consumer(args):
    return Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })


def produce(args, per_partition):
    p = Producer({"bootstrap.servers": args.bootstrap})
    for part in range(PARTITIONS):
        for i in range(per_partition):
            p.produce(args.topic, value=f"{part}-{i}".encode(), partition=part)
    if p.flush(30) != 0:
        fail("produce did not finish")


def commit_phase(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)]).values():
        f.result(timeout=30)
    produce(args, 100)
    c = consumer(args)
    c.subscribe([args.topic])
    read = 0
    # Uneven progress per partition, so a resume at the wrong place in any one shows.
    wanted = 250
    deadline = time.time() + 60
    while read < wanted and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        read += 1
    if read < wanted:
        fail(f"read only {read} records")
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(args.topic, p) for p in range(PARTITIONS)], timeout=10)
    c.close()
    offsets = {tp.partition: tp.offset for tp in committed}
    # Partitions not reached yet have no committed offset (librdkafka says -1001).
    if sum(o for o in offsets.values() if o >= 0) != wanted:
        fail(f"committed {offsets}, expected {wanted} records in total")
    print(json.dumps(offsets))


def verify_phase(args):
    expected = {int(k): v for k, v in json.loads(args.expected).items()}
    # One more record per partition, so even a fully read partition has a next record.
    produce(args, 1)
    c = consumer(args)
    committed = c.committed([TopicPartition(args.topic, p) for p in range(PARTITIONS)], timeout=30)
    got = {tp.partition: tp.offset for tp in committed}
    if got != expected:
        fail(f"committed offsets after restart {got} != before {expected}")
    c.subscribe([args.topic])
    first = {}
    deadline = time.time() + 60
    while len(first) < PARTITIONS and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        first.setdefault(msg.partition(), msg.offset())
    c.close()
    # Where nothing was committed, auto.offset.reset=earliest starts at 0.
    resume = {p: max(o, 0) for p, o in expected.items()}
    if first != resume:
        fail(f"resumed at {first}, committed {expected}")
    print(f"OK resumed at {first}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["commit", "verify"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="ledger")
    ap.add_argument("--group", default="ledger-readers")
    ap.add_argument("--expected")
    args = ap.parse_args()
    start_watchdog(120, f"offsets {args.phase}")
    if args.phase == "commit":
        commit_phase(args)
    else:
        verify_phase(args)


if __name__ == "__main__":
    sys.exit(main())
