#!/usr/bin/env python3
"""Checks that every write the producer saw acknowledged is still in the log.

Reads --acked (lines "<partition> <offset> <value>" from acks_all_producer.py),
reads the topic from the beginning of each partition, and requires each
acknowledged value at exactly its acknowledged offset. With --exactly-once it
reads every partition of the topic and also requires that no value is stored
twice and that each partition holds its acknowledged values in the order they
were acknowledged, and prints acknowledged, read, lost and duplicated counts.
"""

import argparse
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import clientlib
from clientlib import fail


def load_acked(path):
    """{(partition, offset): value} of the writes acknowledged with an offset, and the values
    of each partition in the order acknowledged (with or without an offset)."""
    with open(path, "rb") as f:
        data = f.read().decode("ascii", errors="replace")
    lines = data.split("\n")
    # The producer may be killed mid-line; an unterminated tail was never complete,
    # so it cannot describe an acknowledgement we are allowed to hold the broker to.
    if lines and lines[-1] != "":
        print(f"note: ignoring unterminated last line {lines[-1]!r}", flush=True)
    acked = {}
    order = {}
    for n, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if (len(parts) != 3 or not parts[0].isdigit()
                or not (parts[1].isdigit() or parts[1] == "-1")):
            fail(f"{path}:{n}: malformed line {line!r}")
        key = (int(parts[0]), int(parts[1]))
        if key[1] >= 0 and key in acked:
            if acked[key] != parts[2]:
                fail(f"{path}:{n}: partition {key[0]} offset {key[1]} acknowledged twice "
                     f"with different values ({acked[key]!r}, {parts[2]!r})")
            continue
        order.setdefault(key[0], []).append(parts[2])
        # Offset -1: acknowledged, but where it was stored the client never learnt.
        if key[1] >= 0:
            acked[key] = parts[2]
    return acked, order


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic the producer wrote to")
    ap.add_argument("--acked", required=True, help="file written by acks_all_producer.py")
    ap.add_argument("--timeout", type=float, default=90, help="overall seconds (default 90)")
    ap.add_argument("--exactly-once", action="store_true",
                    help="also fail on a value stored twice or out of acknowledgement order")
    args = ap.parse_args()
    clientlib.start_watchdog(args.timeout, "verify_acked")

    acked, ack_order = load_acked(args.acked)
    if not ack_order:
        fail(f"{args.acked} lists no acknowledged records; nothing to verify")
    partitions = sorted(ack_order)

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
        if args.exactly_once:
            # A duplicate may sit in a partition nothing was acknowledged in.
            meta = consumer.list_topics(args.topic, timeout=30).topics[args.topic]
            if meta.error is not None:
                fail(f"metadata for {args.topic}: {meta.error}")
            partitions = sorted(meta.partitions)
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
            value = value.decode("ascii", errors="replace") if value else value
            found_values[(p, off)] = value
            if off >= ends[p] - 1:
                pending.discard(p)
    finally:
        consumer.close()

    missing, wrong = [], []
    for key, value in sorted(acked.items()):
        got = found_values.get(key, KeyError)
        if got is KeyError:
            missing.append((key, value))
        elif got != value:
            wrong.append((key, value, got))
    # Acknowledged without an offset: it must be somewhere in its partition.
    stored = {}
    for (p, _), value in found_values.items():
        stored.setdefault(p, set()).add(value)
    placed = set(acked.values())
    unplaced = [(p, v) for p, values in ack_order.items() for v in values if v not in placed]
    missing += [((p, -1), v) for p, v in unplaced if v not in stored.get(p, ())]
    total = len(acked) + len(unplaced)
    found = total - len(missing) - len(wrong)
    print(f"acknowledged {total} ({len(unplaced)} without an offset), found {found}, "
          f"missing {len(missing)}, wrong value {len(wrong)}", flush=True)
    # The counts come first, so a run that fails both checks still shows all of them.
    exactly_once_failure = exactly_once(ack_order, found_values) if args.exactly_once else None
    if missing or wrong:
        for (p, off), value in missing[:10]:
            print(f"  missing: partition {p} offset {off} value {value!r}", file=sys.stderr)
        for (p, off), want, got in wrong[:10]:
            print(f"  wrong: partition {p} offset {off} has {got!r}, acknowledged {want!r}",
                  file=sys.stderr)
        fail(f"{len(missing)} acknowledged record(s) missing and {len(wrong)} changed")
    if exactly_once_failure:
        fail(exactly_once_failure)
    print(f"OK verify_acked: all {total} acknowledged records present at their offsets")


def exactly_once(ack_order, found_values):
    """Prints what was read against what was acknowledged; returns why it fails unless each
    acknowledged value is there once and each partition keeps its acknowledgement order."""
    copies = {}
    for (p, off), value in sorted(found_values.items()):
        copies.setdefault(value, []).append((p, off))
    acked_values = {v for values in ack_order.values() for v in values}
    lost = sorted(v for v in acked_values if v not in copies)
    duplicated = sorted(v for v, where in copies.items() if len(where) > 1)
    out_of_order = []
    for p, values in sorted(ack_order.items()):
        last = None
        for value in values:
            where = [off for q, off in copies.get(value, []) if q == p]
            if not where:
                continue
            if last is not None and where[0] <= last[1]:
                out_of_order.append((p, last, (value, where[0])))
            last = (value, where[0])
    print(f"acknowledged {len(acked_values)}, read {len(found_values)}, lost {len(lost)}, "
          f"duplicated {len(duplicated)}, out of order {len(out_of_order)}", flush=True)
    for v in lost[:10]:
        print(f"  lost: {v!r}", file=sys.stderr)
    for v in duplicated[:10]:
        print(f"  duplicated: {v!r} at (partition, offset) {copies[v]}", file=sys.stderr)
    for p, (v1, o1), (v2, o2) in out_of_order[:10]:
        print(f"  out of order in partition {p}: {v2!r} acknowledged after {v1!r} but stored "
              f"at offset {o2}, not after {o1}", file=sys.stderr)
    if lost or duplicated or out_of_order:
        return f"{len(lost)} lost, {len(duplicated)} duplicated, {len(out_of_order)} out of order"
    return None


if __name__ == "__main__":
    sys.exit(main())
