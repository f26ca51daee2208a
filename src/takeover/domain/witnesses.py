"""Witnesses: how a node tells "I am cut off" from "the control plane is gone", and how the
control plane knows a silent node has stopped (docs/rules.md, "Witnesses").

Every acknowledgement carries a stamp, the control plane's clock when it answered; an agent keeps
the newest stamp it holds. Each node has a few witnesses (other nodes, its own region's first) and
asks them, several times a heartbeat, which stamp they hold.

* **The agent's rule.** A witness's answer *vouches* for the asking node when the witness holds no
  stamp newer than the asker's by more than ``lag``: nobody around it has heard from the control
  plane since it did, so the control plane is away for all of them, not just cut off from it.
  Answers to probes sent within the last ``lease`` seconds from a quorum (a majority) of its
  witnesses keep a node's instances running past its own fence, for as long as they last.
* **The control plane's rule.** It fails a silent node over only when its fence is proven: besides
  ``offline_after`` of silence watched by the leader, enough of that node's witnesses (all but a
  quorum, plus one) have, since ``lease`` + ``margin`` ago, held a stamp newer than any the silent
  node can hold by more than ``lag``. No answer they gave since can vouch, so the node has fewer
  than a quorum of vouching answers: its fence has fired.

Both sides apply one predicate to the same numbers, so they agree by construction, whatever the
clocks: a stepped clock only changes when a vouch stops, never whether both sides see it stop.
A node can be using its previous witness set or the one last offered: the control plane proves
the fence for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

WITNESSES = 3  # per node: a majority of 3 lets one witness be down without fencing anyone
PROBES = 4  # per heartbeat interval and witness; a vouch lasts an interval: three may be lost


def quorum(count: int) -> int:
    return count // 2 + 1


def vouches(witness_stamp: datetime | None, own_stamp: datetime | None, lag: timedelta) -> bool:
    """A witness that heard from the control plane no later than ``lag`` after the asker did.
    One holding no stamp (restarted since) vouches for no one: the control plane cannot tell
    what it held before."""
    return witness_stamp is not None and own_stamp is not None and witness_stamp <= own_stamp + lag


@dataclass(frozen=True, slots=True)
class Answer:
    witness: UUID
    sent: float  # the asker's monotonic time when it sent the probe this answers
    stamp: datetime | None


def vouched_until(
    answers: Iterable[Answer],
    witnesses: Collection[UUID],
    own_stamp: datetime | None,
    lag: timedelta,
    lease: float,
) -> float | None:
    """Until when (asker's monotonic time) a quorum of ``witnesses`` vouches, from each one's
    latest vouching answer; None without a quorum. A non-vouching answer after a vouching one
    ends that witness's vouch."""
    latest: dict[UUID, Answer] = {}
    for answer in answers:
        if answer.witness in witnesses:
            seen = latest.get(answer.witness)
            if seen is None or answer.sent >= seen.sent:
                latest[answer.witness] = answer
    sent = sorted(
        (a.sent for a in latest.values() if vouches(a.stamp, own_stamp, lag)),
        reverse=True,
    )
    need = quorum(len(witnesses))
    if not witnesses or len(sent) < need:
        return None
    return sent[need - 1] + lease


def fence_proven(
    witness_sets: Iterable[Sequence[UUID]],
    silent_stamp: datetime | None,
    newer_since: Mapping[UUID, float],
    wait: float,
    at: float,
) -> bool:
    """Whether a silent node's witnesses no longer let it run, for every set it may be using.

    ``newer_since``: for each witness, since when (the leader's monotonic time) it has held a
    stamp newer than ``silent_stamp`` + lag; ``wait`` is the vouch's lease plus its margin.
    A node that never heard from the control plane holds no stamp; it was never told to run
    anything either (an agent starts work only on an acknowledgement), so nothing needs proving."""
    for witnesses in witness_sets:
        if silent_stamp is None or not witnesses:
            continue
        outdated = sum(1 for w in witnesses if w in newer_since and newer_since[w] <= at - wait)
        if outdated < len(witnesses) - quorum(len(witnesses)) + 1:
            return False
    return True


def choose(members: Iterable[tuple[UUID, str]], count: int) -> dict[UUID, tuple[UUID, ...]]:
    """``count`` witnesses for each of ``members`` (id, region): the next ones after it on its
    region's ring (a region cut off together stays up together), then on the ring of all, for a
    region too small. A ring ordered by a hash of the id: a node that joins or leaves changes
    the sets of the few nodes before it only, and choosing for a pool of any size is one sort."""
    ring = sorted(members, key=lambda m: hashlib.sha256(m[0].bytes).digest())
    regions: dict[str, list[UUID]] = {}
    for member, region in ring:
        regions.setdefault(region, []).append(member)
    everyone = [member for member, _ in ring]
    position = {member: i for i, member in enumerate(everyone)}
    chosen: dict[UUID, tuple[UUID, ...]] = {}
    for peers in regions.values():
        local = set(peers)
        for i, member in enumerate(peers):
            picked = [peers[(i + step) % len(peers)] for step in range(1, min(count, len(peers) - 1) + 1)]
            step = 1
            while len(picked) < count and step < len(everyone):
                other = everyone[(position[member] + step) % len(everyone)]
                if other not in local:
                    picked.append(other)
                step += 1
            chosen[member] = tuple(picked)
    return chosen
