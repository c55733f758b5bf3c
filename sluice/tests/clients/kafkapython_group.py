"""Two kafka-python consumers in one group over a 6-partition topic: they split the partitions,
together read everything once, and when one closes the other takes over from its commits.
"""

import argparse
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from clientlib import fail, start_watchdog

PARTITIONS = 6


class Member(threading.Thread):
    def __init__(self, name, args):
        super().__init__(daemon=True)
        self.name = name
        self.stop = threading.Event()
        self.records = []  # (partition, offset, value)
        self.assigned = set()
        self.error = None
        self.consumer = KafkaConsumer(
            args.topic,
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )

    def run(self):
        try:
            while not self.stop.is_set():
                batch = self.consumer.poll(timeout_ms=200)
                for msgs in batch.values():
                    for m in msgs:
                        self.records.append((m.partition, m.offset, m.value))
                if batch:
                    self.consumer.commit()
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
            self.consumer.close()  # commits nothing new; leaves the group
        except Exception as e:  # reported by the main thread
            self.error = e


def wait_for(what, timeout, cond):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    fail(f"timed out after {timeout}s waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="kp-group")
    ap.add_argument("--group", default="kp-readers")
    args = ap.parse_args()
    start_watchdog(150, "kafka-python group")

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap)
    produced = set()

    def produce(n):
        start = len(produced)
        for i in range(start, start + n):
            value = f"v{i}".encode()
            producer.send(args.topic, value=value, partition=i % PARTITIONS)
            produced.add(value)
        producer.flush(30)

    produce(1200)
    one, two = Member("one", args), Member("two", args)
    one.start()
    two.start()

    def split_evenly():
        return (len(one.assigned) == 3 and len(two.assigned) == 3
                and not one.assigned & two.assigned)

    wait_for("the two members to split the partitions", 60, split_evenly)

    def all_read():
        return produced <= {v for m in (one, two) for _, _, v in m.records}

    wait_for("both members to read everything", 60, all_read)
    two.stop.set()
    two.join(30)
    wait_for("member one to own all partitions", 60, lambda: len(one.assigned) == PARTITIONS)
    produce(600)
    wait_for("member one to read the new records", 60, all_read)
    one.stop.set()
    one.join(30)
    for m in (one, two):
        if m.error:
            fail(f"member {m.name}: {m.error!r}")
    everything = [(p, o) for m in (one, two) for p, o, _ in m.records]
    if len(everything) != len(set(everything)):
        fail(f"{len(everything) - len(set(everything))} records were read twice")
    print(f"OK {len(everything)} records, each read once by a two-member kafka-python group")


if __name__ == "__main__":
    sys.exit(main())
