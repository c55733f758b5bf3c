#!/usr/bin/env python3
"""Checks the broker's OFFSET_OUT_OF_RANGE answer and the client's reset to earliest.

Assigns a consumer at --start-offset (expected to be outside the log, e.g. already
deleted by retention) with auto.offset.reset=earliest and requires the first record
received to be at --expect-first, which must be the log's earliest offset or later.
"""

import argparse
import logging
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

import clientlib
from clientlib import fail


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic to read (partition 0)")
    ap.add_argument("--start-offset", type=int, required=True,
                    help="offset to assign at; must be outside the log")
    ap.add_argument("--expect-first", type=int, required=True,
                    help="offset the first received record must have")
    ap.add_argument("--timeout", type=float, default=90, help="overall seconds (default 90)")
    args = ap.parse_args()
    if args.start_offset < 0:
        ap.error("--start-offset must be a real offset (>= 0)")
    clientlib.start_watchdog(args.timeout, "offset_reset")

    # The client's own log is the only place the reset is visible; it is kept as
    # evidence for the report, while the pass/fail decision rests on offsets alone.
    collected = Collect()
    logger = logging.getLogger("offset_reset.librdkafka")
    logger.propagate = False
    logger.addHandler(collected)
    logger.setLevel(logging.DEBUG)

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"offset-reset-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "debug": "fetch,topic",
        "logger": logger,
    })
    tp = TopicPartition(args.topic, 0)
    try:
        low, high = consumer.get_watermark_offsets(tp, timeout=30)
        print(f"log of {args.topic}[0] spans offsets [{low}, {high}); "
              f"assigning at {args.start_offset}", flush=True)
        if low <= args.start_offset <= high:
            fail(f"start offset {args.start_offset} is inside the log [{low}, {high}], "
                 f"so the broker has no reason to answer OFFSET_OUT_OF_RANGE")
        if args.expect_first < low:
            fail(f"--expect-first {args.expect_first} is below the earliest offset {low}")
        consumer.assign([TopicPartition(args.topic, 0, args.start_offset)])
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consumer error instead of a reset: {msg.error()}")
            first = msg.offset()
            break
    finally:
        consumer.close()

    evidence = [line for line in collected.lines
                if "out of range" in line.lower() or "offset reset" in line.lower()]
    if evidence:
        print(f"client log: {evidence[0]}", flush=True)
    if first != args.expect_first:
        fail(f"first record after reset is at offset {first}, expected {args.expect_first}")
    if first < low:
        fail(f"first record at offset {first} is below the earliest offset {low}")
    print(f"OK offset_reset: offset {args.start_offset} was out of range [{low}, {high}); "
          f"client reset to earliest and first received offset {first}")


if __name__ == "__main__":
    sys.exit(main())
