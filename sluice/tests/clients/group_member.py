"""One confluent-kafka group member, run as its own process so a test can close it or kill -9 it.

Writes what happens to it as JSON lines (assignments, revocations, every record it processed)
and commits only what it has written down, so a crash can cause re-delivery but never a gap.
"""

import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException

from clientlib import start_watchdog


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--instance-id", default=None)
    ap.add_argument("--strategy", default="range")
    args = ap.parse_args()
    start_watchdog(300, f"group member {args.name}")

    out = open(args.out, "a", buffering=1)

    def event(kind, **fields):
        fields.update(ev=kind, t=time.time(), member=args.name)
        out.write(json.dumps(fields) + "\n")

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": args.strategy,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    consumer = Consumer(conf)

    def commit(c):
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            # Nothing consumed since the last commit is not a failure.
            if e.args[0].code() != -168:  # _NO_OFFSET
                event("commit_failed", error=str(e))

    def on_assign(c, partitions):
        event("assign", partitions=sorted(p.partition for p in partitions))

    def on_revoke(c, partitions):
        # Hand over exactly what was processed: the next owner starts right after it.
        commit(c)
        event("revoke", partitions=sorted(p.partition for p in partitions))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    event("started", pid=os.getpid())
    uncommitted = 0
    while not stopping:
        msg = consumer.poll(0.2)
        if msg is None:
            if uncommitted:
                commit(consumer)
                uncommitted = 0
            continue
        if msg.error():
            event("error", error=str(msg.error()))
            continue
        event("msg", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
        # Written down first, committed after: a kill between the two re-delivers, never skips.
        uncommitted += 1
        if uncommitted >= 50:
            commit(consumer)
            uncommitted = 0
    consumer.close()
    event("closed")
    out.close()


if __name__ == "__main__":
    sys.exit(main())
