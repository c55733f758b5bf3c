"""Static membership (KIP-345) with confluent-kafka: a member with a group.instance.id that is
killed and restarted within its session keeps its partitions, and the group does not rebalance.
"""

import argparse
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import fail, start_watchdog
from confluent_group import Member, wait_for, ownership_is


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--topic", default="static-orders")
    ap.add_argument("--group", default="static-processors")
    args = ap.parse_args()
    start_watchdog(120, "static membership")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(args.topic, 6, 1)]).values():
        f.result(timeout=30)

    one = Member("one", args, instance_id="instance-one")
    two = Member("two", args, instance_id="instance-two")
    wait_for("two static members to share the partitions", 60, lambda: ownership_is([one, two]))
    before = sorted(one.owned())
    one.kill9()
    again = Member("one-restarted", args, instance_id="instance-one")
    wait_for("the restarted member to get partitions back", 30, lambda: again.owned())
    if sorted(again.owned()) != before:
        fail(f"restarted static member got {sorted(again.owned())}, had {before}")
    # The other member never had to give anything up.
    time.sleep(1)
    kinds = [e["ev"] for e in two.events() if e["ev"] in ("assign", "revoke")]
    if kinds != ["assign"]:
        fail(f"member two saw {kinds}: the restart caused a rebalance")
    again.close()
    two.close()
    print(f"OK instance-one kept {before} across kill -9 and restart")


if __name__ == "__main__":
    sys.exit(main())
