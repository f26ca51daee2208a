"""the invariants of docs/architecture.md, checked on what the store holds (after a crash, a restore,
a test that kills replicas in a loop). Each violation is one sentence naming the row."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from takeover.domain.failover import OPEN_STATUSES, FailoverStatus
from takeover.store.tables import failovers, instances, leases, nodes

_OPEN = [s.value for s in OPEN_STATUSES]


def violations(engine: sa.Engine, settled: bool = False) -> list[str]:
    """What breaks an invariant now; ``settled``: nothing should be in flight any more."""
    found: list[str] = []
    with engine.connect() as conn:
        placed = Counter(
            r.node_id
            for r in conn.execute(sa.select(instances.c.node_id).where(instances.c.node_id.is_not(None)))
        )
        for node in conn.execute(
            sa.select(nodes.c.id, nodes.c.name, nodes.c.current_instances, nodes.c.max_instances)
        ):
            if node.current_instances != placed.get(node.id, 0):  # slots are how placement avoids overfilling
                found.append(
                    f"node {node.name}: {node.current_instances} slots taken, {placed.get(node.id, 0)} instances on it"
                )
            if placed.get(node.id, 0) > node.max_instances:
                found.append(f"node {node.name}: {placed[node.id]} instances, max {node.max_instances}")
        open_by_instance = Counter(
            r.instance_id
            for r in conn.execute(sa.select(failovers.c.instance_id).where(failovers.c.status.in_(_OPEN)))
        )
        for instance_id, count in open_by_instance.items():
            if count > 1:
                found.append(f"instance {instance_id}: {count} failovers open at once")
            if settled:
                found.append(f"instance {instance_id}: a failover is still open")
        completed = Counter(
            r.instance_id
            for r in conn.execute(
                sa.select(failovers.c.instance_id).where(failovers.c.status == FailoverStatus.COMPLETED.value)
            )
        )
        for row in conn.execute(sa.select(instances.c.id, instances.c.name, instances.c.epoch)):
            # every placement increments the epoch, and every completed failover placed once
            if row.epoch < 1 + completed.get(row.id, 0):
                found.append(
                    f"instance {row.name}: epoch {row.epoch} after {completed[row.id]} completed failovers"
                )
        for lease in conn.execute(sa.select(leases)):
            if lease.epoch < 1 or not lease.holder:
                found.append(f"lease {lease.name}: epoch {lease.epoch}, holder {lease.holder!r}")
    return found
