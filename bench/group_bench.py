"""Consumer-group costs with confluent-kafka against a running broker:
- how long a 3-member group takes to stabilise from the first subscribe (first join, paid
  group.initial.rebalance.delay.ms) and after a 4th member joins a stable group;
- synchronous and asynchronous offset commits per second from one client.
Usage: python3 bench/group_bench.py BOOTSTRAP [commits]
"""

import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
commits = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
topic = f"bench-group-{int(time.time())}"
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
    f.result(timeout=30)


class Member(threading.Thread):
    def __init__(self, group, name, heartbeat_ms, fetch_wait_ms):
        super().__init__(daemon=True)
        self.assigned_at = None
        self.assignment = []
        self.stop = False
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                           "heartbeat.interval.ms": heartbeat_ms, "session.timeout.ms": 6000,
                           "fetch.wait.max.ms": fetch_wait_ms})

    def run(self):
        def on_assign(c, parts):
            self.assignment = [p.partition for p in parts]
            self.assigned_at = time.time()

        def on_revoke(c, parts):
            self.assignment = []
            self.assigned_at = None
        self.c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        while not self.stop:
            self.c.poll(0.05)
        self.c.close()


def stable(members):
    owned = sorted(p for m in members for p in m.assignment)
    return owned == list(range(6)) and all(m.assignment for m in members)


def wait_stable(members, since):
    while not stable(members):
        time.sleep(0.005)
    return max(m.assigned_at for m in members) - since


# Members learn of a rebalance from their next heartbeat, and an eager member rejoins only once
# its in-flight fetch long poll (fetch.wait.max.ms) returns: both are client settings, so the
# last row shows what the broker itself costs.
for heartbeat_ms, fetch_wait_ms in ((3000, 500), (100, 500), (100, 10)):
    group = f"bench-{heartbeat_ms}-{fetch_wait_ms}-{time.time()}"
    t0 = time.time()
    members = [Member(group, f"m{i}", heartbeat_ms, fetch_wait_ms) for i in range(3)]
    for m in members:
        m.start()
    first = wait_stable(members, t0)
    time.sleep(0.5)
    t1 = time.time()
    joiner = Member(group, "m3", heartbeat_ms, fetch_wait_ms)
    joiner.start()
    members.append(joiner)
    again = wait_stable(members, t1)
    print(f"heartbeat.interval.ms={heartbeat_ms} fetch.wait.max.ms={fetch_wait_ms}: 3 members stable {first:.3f}s after subscribe; "
          f"4th member: group stable again after {again:.3f}s")
    for m in members:
        m.stop = True
    for m in members:
        m.join()

c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit-{time.time()}"})
tp = TopicPartition(topic, 0)
c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
t0 = time.time()
for i in range(commits):
    c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
sync_rate = commits / (time.time() - t0)
done = [0]


def on_commit(err, parts):
    done[0] += 1


c2 = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit2-{time.time()}",
               "on_commit": on_commit})
c2.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
t0 = time.time()
for i in range(commits):
    c2.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=True)
    c2.poll(0)
while done[0] < commits:
    c2.poll(0.01)
async_rate = commits / (time.time() - t0)
committed = c.committed([tp], timeout=10)[0].offset
assert committed == commits - 1, committed
print(f"offset commits from one client: {sync_rate:,.0f}/s synchronous, "
      f"{async_rate:,.0f}/s asynchronous ({commits} commits each)")
c.close()
c2.close()
