"""Shared pieces of the Kafka-client test scripts run against a live Sluice broker.

Owns the overall watchdog, failure reporting and the deterministic record set that
the round-trip scripts produce and then expect back byte for byte.
"""

import os
import random
import signal
import sys
import threading
import time


def fail(message):
    """Exit non-zero with one clear line; the Rust test shows stderr on failure."""
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def start_watchdog(seconds, what):
    """Kill the script after `seconds` so a hung broker fails the test, not CI.

    A thread is used because client libraries can sit inside C code for long
    stretches, where a Python signal handler would never get to run; SIGALRM with
    its default action is the backstop if even that thread cannot get the GIL.
    """

    def expire():
        print(f"FAIL: {what} did not finish within {seconds}s (broker hung?)",
              file=sys.stderr, flush=True)
        os._exit(124)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(seconds) + 10)


class Record:
    __slots__ = ("key", "value", "headers", "timestamp")

    def __init__(self, key, value, headers, timestamp):
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp

    def describe(self):
        def short(b):
            if b is None:
                return "None"
            return repr(b[:24]) + (f"...({len(b)} bytes)" if len(b) > 24 else "")

        hdrs = [(k, short(v)) for k, v in self.headers]
        return (f"key={short(self.key)} value={short(self.value)} "
                f"headers={hdrs} timestamp={self.timestamp}")


def make_records(count, seed, null_header_values=True):
    """A reproducible mix of the shapes that break codecs and framing: null and
    binary keys, null/empty/binary/large values, repeated header keys, null header
    values, and explicit timestamps that are neither now nor monotonic."""
    rng = random.Random(seed)
    base_ts = 1_600_000_000_000 + rng.randrange(1_000_000)
    records = []
    for i in range(count):
        if i % 7 == 0:
            key = None
        elif i % 7 == 3:
            key = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        else:
            key = f"key-{i % 13}".encode()

        if i % 11 == 0:
            value = b""
        elif i % 29 == 0 and key is not None:
            # Never both null: kafka-python refuses such a record outright.
            value = None
        elif i % 5 == 0:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif i % 499 == 1:
            # Large and compressible, so compressed batches are much smaller than
            # their contents and size accounting on both sides gets exercised.
            value = (f"large-{i}-".encode() * 5000)[:60_000]
        else:
            value = f"value-{i}-{'x' * rng.randrange(0, 80)}".encode()

        if i % 3 == 0:
            headers = []
        else:
            headers = [("h", f"{i}".encode()),
                       ("bin", bytes(rng.randrange(256) for _ in range(8))),
                       ("dup", b"first"), ("dup", b"second")]
            if null_header_values and i % 2 == 0:
                headers.append(("null", None))
            if i % 4 == 1:
                headers.append(("empty", b""))

        # Deliberately out of order now and then: the broker must store what the
        # client sent, not a time it made up.
        timestamp = base_ts + i * 10 - (5_000 if i % 17 == 0 else 0)
        records.append(Record(key, value, headers, timestamp))
    return records


def compare(label, expected, got_key, got_value, got_headers, got_ts, index):
    """Returns a mismatch description, or None when the record is byte-identical."""
    problems = []
    if got_key != expected.key:
        problems.append(f"key {got_key!r:.60} != {expected.key!r:.60}")
    if got_value != expected.value:
        problems.append(f"value {got_value!r:.60} != {expected.value!r:.60}")
    if list(got_headers or []) != expected.headers:
        problems.append(f"headers {got_headers!r:.200} != {expected.headers!r:.200}")
    if got_ts != expected.timestamp:
        problems.append(f"timestamp {got_ts} != {expected.timestamp}")
    if problems:
        return f"{label} record #{index}: " + "; ".join(problems)
    return None


def now():
    return time.monotonic()


class StallGuard:
    """Fails when a read loop stops making progress, reporting how far it got.

    The watchdog alone would only say "timed out"; knowing that 1999 of 2000
    records arrived points at a very different broker bug than knowing 0 did.
    """

    def __init__(self, what, seconds=30.0):
        self.what = what
        self.seconds = seconds
        self.last = now()

    def progressed(self):
        self.last = now()

    def check(self, state):
        if now() - self.last > self.seconds:
            fail(f"{self.what}: no progress for {self.seconds:.0f}s ({state})")
