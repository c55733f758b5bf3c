#!/usr/bin/env python3
"""Checks the broker's OFFSET_OUT_OF_RANGE answer and the client's reset to earliest.

Assigns a consumer at --start-offset (expected to be outside the log, e.g. already
deleted by retention). First with auto.offset.reset=error, which must surface the
out-of-range answer as an error; then with auto.offset.reset=earliest, whose first
record must be at --expect-first, the log's earliest offset or later.
"""

import argparse
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

import clientlib
from clientlib import fail


def consumer_with_reset(bootstrap, policy):
    return Consumer({
        "bootstrap.servers": bootstrap,
        # Required by the client even though only assign() is used and nothing is
        # committed; a fresh id keeps any stored offsets out of the picture.
        "group.id": f"offset-reset-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": policy,
        "enable.partition.eof": False,
    })


def expect_out_of_range_error(args):
    """With the "error" policy the client reports the broker's out-of-range answer
    instead of acting on it. Without this phase, a broker that silently served the
    log from its start would pass the earliest-reset check just the same."""
    consumer = consumer_with_reset(args.bootstrap, "error")
    guard = clientlib.StallGuard("waiting for OFFSET_OUT_OF_RANGE", seconds=20)
    try:
        consumer.assign([TopicPartition(args.topic, 0, args.start_offset)])
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                guard.check(f"fetching {args.topic}[0] at offset {args.start_offset} "
                            f"returned neither records nor an error")
                continue
            err = msg.error()
            if err is None:
                fail(f"fetch at out-of-range offset {args.start_offset} returned a record "
                     f"at offset {msg.offset()} instead of OFFSET_OUT_OF_RANGE")
            if err.code() == KafkaError._AUTO_OFFSET_RESET:
                return err.str()
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"expected OFFSET_OUT_OF_RANGE, got consumer error: {err}")
    finally:
        consumer.close()


def first_offset_after_reset(args):
    consumer = consumer_with_reset(args.bootstrap, "earliest")
    guard = clientlib.StallGuard("waiting for the first record after the reset")
    try:
        consumer.assign([TopicPartition(args.topic, 0, args.start_offset)])
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                guard.check("no record received after assigning at "
                            f"offset {args.start_offset}")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consumer error instead of a reset: {msg.error()}")
            return msg.offset()
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the broker")
    ap.add_argument("--topic", required=True, help="topic to read (partition 0)")
    ap.add_argument("--start-offset", type=int, required=True,
                    help="offset to assign at; must be outside the log")
    ap.add_argument("--expect-first", type=int, required=True,
                    help="offset the first received record must have")
    ap.add_argument("--timeout", type=float, default=60, help="overall seconds (default 60)")
    args = ap.parse_args()
    if args.start_offset < 0:
        ap.error("--start-offset must be a real offset (>= 0)")
    clientlib.start_watchdog(args.timeout, "offset_reset")

    probe = consumer_with_reset(args.bootstrap, "error")
    try:
        low, high = probe.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=30)
    finally:
        probe.close()
    print(f"log of {args.topic}[0] spans offsets [{low}, {high}); "
          f"assigning at {args.start_offset}", flush=True)
    # Fetching at the high watermark is legal (it waits for new data), hence <=.
    if low <= args.start_offset <= high:
        fail(f"start offset {args.start_offset} is inside the log [{low}, {high}], "
             f"so the broker has no reason to answer OFFSET_OUT_OF_RANGE")
    if args.expect_first < low:
        fail(f"--expect-first {args.expect_first} is below the earliest offset {low}")

    error = expect_out_of_range_error(args)
    print(f"with auto.offset.reset=error the client reported: {error}", flush=True)

    first = first_offset_after_reset(args)
    if first != args.expect_first:
        fail(f"first record after reset is at offset {first}, expected {args.expect_first}")
    print(f"OK offset_reset: offset {args.start_offset} was out of range [{low}, {high}); "
          f"broker answered OFFSET_OUT_OF_RANGE, client reset to earliest and first "
          f"received offset {first}")


if __name__ == "__main__":
    sys.exit(main())
