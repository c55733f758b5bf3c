#!/usr/bin/env python3
"""Checks that every write the producer saw acknowledged is still in the log.

Reads --acked (lines "<partition> <offset> <value>" from acks_all_producer.py),
reads the topic from the beginning of each partition, and requires each
acknowledged value at exactly its acknowledged offset.
"""

import argparse
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import clientlib
from clientlib import fail


def load_acked(path):
    with open(path, "rb") as f:
        data = f.read().decode("ascii", errors="replace")
    lines = data.split("\n")
    # The producer may be killed mid-line; an unterminated tail was never complete,
    # so it cannot describe an acknowledgement we are allowed to hold the broker to.
    if lines and lines[-1] != "":
        print(f"note: ignoring unterminated last line {lines[-1]!r}", flush=True)
    acked = {}
    for n, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            fail(f"{path}:{n}: malformed line {line!r}")
        key = (int(parts[0]), int(parts[1]))
        if key in acked and acked[key] != parts[2]:
            fail(f"{path}:{n}: partition {key[0]} offset {key[1]} acknowledged twice "
                 f"with different values ({acked[key]!r}, {parts[2]!r})")
        acked[key] = parts[2]
    return acked


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic the producer wrote to")
    ap.add_argument("--acked", required=True, help="file written by acks_all_producer.py")
    ap.add_argument("--timeout", type=float, default=90, help="overall seconds (default 90)")
    args = ap.parse_args()
    clientlib.start_watchdog(args.timeout, "verify_acked")

    acked = load_acked(args.acked)
    if not acked:
        fail(f"{args.acked} lists no acknowledged records; nothing to verify")
    partitions = sorted({p for p, _ in acked})

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # Required by the client even though only assign() is used and nothing is
        # committed; a fresh id keeps any stored offsets out of the picture.
        "group.id": f"verify-acked-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    })
    try:
        # Stop at each partition's current end; acknowledged data must already be there.
        starts, ends = {}, {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p),
                                                       timeout=30)
            print(f"partition {p}: log spans offsets [{low}, {high})", flush=True)
            starts[p], ends[p] = low, high
        # An empty partition has nothing to read; waiting on it would only time out.
        pending = {p for p in partitions if ends[p] > starts[p]}
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in pending])
        found_values = {}
        guard = clientlib.StallGuard(f"reading {args.topic}")
        while pending:
            msg = consumer.poll(1.0)
            if msg is None:
                guard.check(f"{len(found_values)} records read, partitions "
                            f"{sorted(pending)} not yet read to their end")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consumer error: {msg.error()}")
            guard.progressed()
            p, off = msg.partition(), msg.offset()
            value = msg.value()
            found_values[(p, off)] = value.decode("ascii", errors="replace") if value else value
            if off >= ends[p] - 1:
                pending.discard(p)
    finally:
        consumer.close()

    missing, wrong = [], []
    for key, value in sorted(acked.items()):
        got = found_values.get(key, KeyError)
        if got is KeyError:
            missing.append(key)
        elif got != value:
            wrong.append((key, value, got))
    found = len(acked) - len(missing) - len(wrong)
    print(f"acknowledged {len(acked)}, found {found}, missing {len(missing)}, "
          f"wrong value {len(wrong)}", flush=True)
    if missing or wrong:
        for (p, off) in missing[:10]:
            print(f"  missing: partition {p} offset {off} value {acked[(p, off)]!r}",
                  file=sys.stderr)
        for (p, off), want, got in wrong[:10]:
            print(f"  wrong: partition {p} offset {off} has {got!r}, acknowledged {want!r}",
                  file=sys.stderr)
        fail(f"{len(missing)} acknowledged record(s) missing and {len(wrong)} changed")
    print(f"OK verify_acked: all {len(acked)} acknowledged records present at their offsets")


if __name__ == "__main__":
    sys.exit(main())
