"""Three confluent-kafka members share a 6-partition topic; then one closes, one is killed -9
and a fourth joins. Checks that every partition has one owner at a time, that ownership moves
when members go, and that the members together consume everything produced, with no gap.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import fail, start_watchdog

PARTITIONS = 6
HERE = os.path.dirname(os.path.abspath(__file__))


class Member:
    def __init__(self, name, args, instance_id=None):
        self.name = name
        self.path = os.path.join(args.workdir, f"{name}.jsonl")
        static = ["--instance-id", instance_id] if instance_id else []
        strategy = getattr(args, "strategy", "range")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "group_member.py"),
             "--bootstrap", args.bootstrap, "--group", args.group, "--topic", args.topic,
             "--name", name, "--out", self.path, "--strategy", strategy] + static)
        self.killed_at = None

    def events(self):
        if not os.path.exists(self.path):
            return []
        out = []
        with open(self.path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line cut short by kill -9
        return out

    def owned(self):
        owned = set()
        for e in self.events():
            # Eager members get the whole assignment each time (after revoking everything);
            # cooperative ones get increments: adding covers both.
            if e["ev"] == "assign":
                owned |= set(e["partitions"])
            elif e["ev"] == "revoke":
                owned -= set(e["partitions"])
        return owned

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=60) != 0:
            fail(f"member {self.name} exited with {self.proc.returncode}")

    def kill9(self):
        self.killed_at = time.time()
        self.proc.kill()
        self.proc.wait()


def wait_for(what, timeout, cond):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return time.time()
        time.sleep(0.1)
    fail(f"timed out after {timeout}s waiting for {what}")


def ownership_is(members):
    """True when exactly `members` own partitions, disjointly, covering the topic."""
    seen = []
    for m in members:
        owned = m.owned()
        if not owned:
            return False
        seen.extend(owned)
    return sorted(seen) == list(range(PARTITIONS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--group", default="order-processors")
    ap.add_argument("--strategy", default="range",
                    help="partition.assignment.strategy: range, roundrobin, cooperative-sticky")
    args = ap.parse_args()
    start_watchdog(280, "confluent group scenario")

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)]).values():
        f.result(timeout=30)

    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
    produced = {}  # value -> (partition, offset)
    counter = [0]

    def produce(n):
        def delivered(err, msg):
            if err is not None:
                fail(f"produce failed: {err}")
            produced[msg.value().decode()] = (msg.partition(), msg.offset())
        for _ in range(n):
            i = counter[0]
            counter[0] += 1
            producer.produce(args.topic, key=f"k{i}", value=f"v{i}",
                             partition=i % PARTITIONS, on_delivery=delivered)
            producer.poll(0)
        producer.flush(30)

    produce(3000)
    start = time.time()
    a, b, c = (Member(n, args) for n in ("A", "B", "C"))
    stable = wait_for("three members to share the partitions", 60,
                      lambda: ownership_is([a, b, c]))
    print(f"three members stable after {stable - start:.2f}s")
    produce(3000)

    c.close()
    t = wait_for("A and B to take over C's partitions", 60, lambda: ownership_is([a, b]))
    print(f"after C closed: A={sorted(a.owned())} B={sorted(b.owned())} ({t - stable:.2f}s)")
    produce(3000)

    b.kill9()
    t = wait_for("A to take over after B was killed", 60, lambda: ownership_is([a]))
    expelled_after = t - b.killed_at
    print(f"B killed; A owns everything after {expelled_after:.2f}s")
    # B's session (6 s) had to run out: a much faster takeover would mean something else
    # (not the session timeout) removed it.
    if expelled_after < 4.0:
        fail(f"B's partitions moved {expelled_after:.2f}s after kill -9, before its session ended")
    produce(3000)

    d = Member("D", args)
    wait_for("A and D to share the partitions", 60, lambda: ownership_is([a, d]))
    produce(3000)

    members = [a, b, c, d]

    def consumed():
        return {e["v"] for m in members for e in m.events() if e["ev"] == "msg"}

    wait_for("every produced record to be consumed", 90,
             lambda: set(produced) <= consumed())
    a.close()
    d.close()

    got = consumed()
    extra = got - set(produced)
    if extra:
        fail(f"consumed records nobody produced: {sorted(extra)[:5]}")

    # Ownership intervals per partition must not overlap between members.
    intervals = {p: [] for p in range(PARTITIONS)}
    for m in members:
        open_since = {}
        events = m.events()
        for e in events:
            if e["ev"] == "assign":
                for p in e["partitions"]:
                    open_since[p] = e["t"]
            elif e["ev"] == "revoke":
                for p in e["partitions"]:
                    intervals[p].append((open_since.pop(p), e["t"], m.name))
        end = m.killed_at or (events[-1]["t"] if events else time.time())
        for p, since in open_since.items():
            intervals[p].append((since, end, m.name))
    for p, spans in intervals.items():
        spans.sort()
        for (s1, e1, m1), (s2, e2, m2) in zip(spans, spans[1:]):
            if m1 != m2 and s2 < e1:
                fail(f"partition {p} owned by {m1} until {e1:.3f} and by {m2} from {s2:.3f}")

    # Every partition was read from offset 0 to its end without a hole.
    ends = {}
    for part, off in produced.values():
        ends[part] = max(ends.get(part, -1), off)
    offsets = {p: set() for p in range(PARTITIONS)}
    for m in members:
        for e in m.events():
            if e["ev"] == "msg":
                offsets[e["p"]].add(e["o"])
    for p in range(PARTITIONS):
        if offsets[p] != set(range(ends[p] + 1)):
            missing = sorted(set(range(ends[p] + 1)) - offsets[p])
            fail(f"partition {p}: offsets never consumed: {missing[:10]}")
    errors = [e for m in members for e in m.events() if e["ev"] in ("error", "commit_failed")]
    if errors:
        fail(f"client errors: {errors[:3]}")
    redelivered = sum(1 for m in members for e in m.events() if e["ev"] == "msg") - len(got)
    print(f"OK {args.strategy}: {len(got)} records consumed by 4 members, {redelivered} redelivered after kill -9")


if __name__ == "__main__":
    main()
