#!/usr/bin/env python3
"""Failover time of a replicated partition: kill -9 its leader under a steady acks=all producer.

Writes one record at a time (each waits for its acknowledgement) to one partition, kills the
partition's leader with SIGKILL between two writes, and reports the time from the kill to the
first acknowledged write after it, plus when metadata first named a new leader.
"""

import argparse
import os
import signal
import sys
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient


def leader_of(client, topic, partition):
    md = client.list_topics(topic, timeout=5)
    return md.controller_id, md.topics[topic].partitions[partition].leader


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="every node's host:port, comma-separated")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--pids", required=True, help="node pids as id:pid,id:pid,...")
    ap.add_argument("--victim", choices=["not-controller", "controller"], required=True,
                    help="kill a partition leader that is not the active controller, or the "
                         "active controller (which leads a partition of the topic)")
    ap.add_argument("--steady-seconds", type=float, default=2.0,
                    help="acknowledged writes before the kill (default 2 s)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="give up if no write is acknowledged this long after the kill")
    args = ap.parse_args()
    pids = {int(i): int(p) for i, p in (x.split(":") for x in args.pids.split(","))}
    brokers = dict(zip(sorted(pids), args.bootstrap.split(",")))

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    md = admin.list_topics(args.topic, timeout=10)
    controller = md.controller_id
    leaders = {p: m.leader for p, m in md.topics[args.topic].partitions.items()}
    want = (lambda n: n == controller) if args.victim == "controller" else (lambda n: n != controller)
    choices = sorted((p, n) for p, n in leaders.items() if want(n))
    if not choices:
        sys.exit(f"no partition of {args.topic} is led by a {args.victim} node: leaders "
                 f"{leaders}, controller {controller}")
    partition, victim = choices[0]

    # Defaults otherwise (retry and reconnect backoffs, metadata refresh), as an application
    # would run; linger 0 so each write goes out at once.
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 0,
        "message.timeout.ms": int(args.timeout * 1000),
    })
    acked = []

    def write(n):
        done = []
        producer.produce(args.topic, value=b"failover-%d" % n, partition=partition,
                         on_delivery=lambda err, msg: done.append(err))
        while not done:
            producer.poll(0.01)
        if done[0] is None:
            acked.append(time.monotonic())
            return True
        print(f"write {n} failed: {done[0]}", file=sys.stderr, flush=True)
        return False

    n = 0
    start = time.monotonic()
    while time.monotonic() - start < args.steady_seconds:
        write(n)
        n += 1
    steady = len(acked)
    steady_rate = steady / (time.monotonic() - start)

    # Watches metadata from a surviving node for the moment a new leader is named.
    survivor = ",".join(b for i, b in brokers.items() if i != victim)
    watcher = AdminClient({"bootstrap.servers": survivor})
    new_leader = []
    stop_watch = threading.Event()

    def watch():
        while not stop_watch.is_set():
            try:
                _, leader = leader_of(watcher, args.topic, partition)
                if leader not in (victim, -1):
                    new_leader.append((time.monotonic(), leader))
                    return
            except Exception:  # noqa: BLE001 - a refused or timed-out lookup just retries
                pass
            time.sleep(0.02)

    last_before = acked[-1]
    killed_at = time.monotonic()
    os.kill(pids[victim], signal.SIGKILL)
    threading.Thread(target=watch, daemon=True).start()
    while len(acked) == steady:
        if time.monotonic() - killed_at > args.timeout:
            sys.exit(f"nothing acknowledged within {args.timeout}s of the kill")
        write(n)
        n += 1
    first_after = acked[-1]
    stop_watch.set()
    # A few more writes show the new leader keeps acknowledging at the steady pace.
    t = time.monotonic()
    for _ in range(50):
        write(n)
        n += 1
    after_rate = 50 / (time.monotonic() - t)

    print(f"victim: node {victim} (leader of partition {partition}; active controller "
          f"{controller}, so the victim {'is' if victim == controller else 'is not'} it)")
    print(f"steady: {steady} acks=all writes in {args.steady_seconds:.1f} s "
          f"({steady_rate:.0f}/s, one at a time); last ack {1000 * (killed_at - last_before):.1f} ms "
          "before the kill")
    if new_leader:
        at, leader = new_leader[0]
        print(f"metadata names node {leader} leader {at - killed_at:.3f} s after the kill")
    print(f"first acks=all write acknowledged after the kill: {first_after - killed_at:.3f} s "
          f"after it; then {after_rate:.0f}/s")
    print(f"FAILOVER_SECONDS {first_after - killed_at:.3f} victim {victim}")


if __name__ == "__main__":
    main()
