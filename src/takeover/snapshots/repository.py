"""Per-instance snapshot history: take, restore the best one, prune old ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from takeover.domain.snapshots import SnapshotRef, restore_candidates, stamp_after, to_prune
from takeover.ports import ObjectStore
from takeover.snapshots.archive import (
    TakeResult,
    load_manifest,
    restore_snapshot,
    sync_snapshot,
    take_snapshot,
)
from takeover.snapshots.manifest import CorruptSnapshot, DamagedChunk, Manifest

log = structlog.get_logger("takeover.snapshots")


@dataclass(frozen=True, slots=True)
class Restored:
    manifest: Manifest | None  # None: the instance had no snapshot; it starts empty
    refused: list[str] = field(default_factory=list)  # why newer snapshots were not used


class SnapshotRepository:
    def __init__(
        self, store: ObjectStore, keep: int = 5, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        """``clock`` stamps new snapshots (an agent's: the control plane's clock, agent/cpclock.py)."""
        self.store = store
        self.keep = keep
        self.clock = clock
        self._last: dict[str, Manifest] = {}

    def refs(self, instance_id: str) -> list[SnapshotRef]:
        refs = []
        for snapshot_id in self.store.list_snapshots(instance_id):
            try:
                refs.append(SnapshotRef.parse(snapshot_id))
            except ValueError:
                log.warning("ignoring a foreign file in the snapshot store", name=snapshot_id)
        return sorted(refs)

    def take(self, workspace: Path, instance_id: str, epoch: int) -> TakeResult:
        """A new snapshot, stamped after every earlier one of its epoch whatever the clock says (a
        clock stepped back would sort it as the oldest), then the oldest beyond ``keep`` pruned,
        never the one just taken."""
        refs = self.refs(instance_id)
        floor = max((r.taken_at for r in refs if r.epoch == epoch), default=None)

        result = take_snapshot(
            self.store,
            workspace,
            instance_id,
            epoch,
            self._last.get(instance_id),
            lambda: stamp_after(self.clock(), floor),
        )
        for digest in result.repaired:
            log.warning(
                "a damaged chunk in the store was written anew", instance_id=instance_id, chunk=digest
            )
        self._last[instance_id] = result.manifest
        self.prune(instance_id, [*refs, SnapshotRef.parse(result.manifest.id)], taken=result.manifest.id)
        return result

    def restore(self, instance_id: str, epoch: int, dest: Path) -> Restored:
        """Restore the newest snapshot from an earlier epoch that verifies.

        A snapshot that fails verification is refused and the next older one tried; ``refused``
        says what was skipped, for the failover record. A damaged manifest is quarantined (renamed,
        never chosen again); a damaged chunk is, so that the next snapshot of that content writes
        it anew, which makes whole again every snapshot that names it.
        """
        refused: list[str] = []
        for ref in restore_candidates(self.refs(instance_id), epoch):
            try:
                manifest = restore_snapshot(self.store, instance_id, ref.id, dest)
            except CorruptSnapshot as exc:
                self._refuse(instance_id, ref.id, exc, refused)
                continue
            self._last[instance_id] = manifest
            return Restored(manifest, refused)
        return Restored(None, refused)

    def sync(self, instance_id: str, below_epoch: int, dest: Path, previous: Manifest | None) -> Restored:
        """Bring a warm copy (or a promoted one, before it starts) to the newest good snapshot.

        Same choice as ``restore``; when the newest is what ``previous`` already is, nothing is read.
        """
        refused: list[str] = []
        for ref in restore_candidates(self.refs(instance_id), below_epoch):
            if previous is not None and previous.id == ref.id and dest.is_dir():
                return Restored(previous, refused)
            try:
                manifest = sync_snapshot(self.store, instance_id, ref.id, dest, previous)
            except CorruptSnapshot as exc:
                self._refuse(instance_id, ref.id, exc, refused)
                continue
            return Restored(manifest, refused)
        return Restored(None, refused)

    def _refuse(self, instance_id: str, snapshot_id: str, exc: CorruptSnapshot, refused: list[str]) -> None:
        log.error("refusing a corrupt snapshot", instance_id=instance_id, error=str(exc))
        refused.append(str(exc))
        if isinstance(exc, DamagedChunk):
            if not exc.missing:
                self.store.quarantine_chunk(exc.digest)
        else:
            self.store.quarantine(instance_id, snapshot_id)

    def manifest(self, instance_id: str, snapshot_id: str) -> Manifest:
        return load_manifest(self.store, instance_id, snapshot_id)

    def prune(self, instance_id: str, refs: list[SnapshotRef], taken: str) -> None:
        """Of ``refs`` (the listing, with the one just written), keep the newest ``keep`` and
        ``taken`` whatever its place; chunks stay (shared by other snapshots)."""
        for ref in to_prune(refs, self.keep, taken):
            self.store.delete_manifest(instance_id, ref.id)
