"""What a run found: each broken invariant once per instance and kind, with when it broke."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """Safety must hold under every fault; availability (no healthy runner stopped or moved for
    the control plane's absence, its store's or a region link's) too, since witnesses."""

    ONE_RUNNER = "one runner per instance"
    ACKED_KEPT = "nothing acknowledged lost"
    NEVER_EMPTY = "never started empty after a snapshot"
    STORE = "takeover check"
    SETTLES = "every instance runs again once faults stop"
    KEPT_RUNNING = "no healthy runner stopped for the control plane's absence"
    NO_NEEDLESS_FAILOVER = "no healthy node failed over"


SAFETY = frozenset({Kind.ONE_RUNNER, Kind.ACKED_KEPT, Kind.NEVER_EMPTY, Kind.STORE, Kind.SETTLES})
AVAILABILITY = frozenset({Kind.KEPT_RUNNING, Kind.NO_NEEDLESS_FAILOVER})


@dataclass(frozen=True, slots=True)
class Violation:
    kind: Kind
    at: float
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] t={self.at:.3f}s {self.subject}: {self.detail}"


@dataclass
class Findings:
    violations: list[Violation] = field(default_factory=list)
    checked: dict[Kind, int] = field(default_factory=dict)  # how many times each was checked
    _seen: set[tuple[Kind, str]] = field(default_factory=set)

    def check(self, kind: Kind, ok: bool, at: float, subject: str, detail: str) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + 1
        if not ok and (kind, subject) not in self._seen:
            self._seen.add((kind, subject))
            self.violations.append(Violation(kind, at, subject, detail))

    def of(self, kinds: frozenset[Kind]) -> list[Violation]:
        return [v for v in self.violations if v.kind in kinds]
