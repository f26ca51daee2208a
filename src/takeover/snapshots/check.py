"""Verifying a whole snapshot store, as `restic check` does: every manifest, every chunk it names.

Without ``read_data`` a chunk is checked by its size (one stat or HEAD each); with it, each
chunk is read, decompressed and hashed. Nothing is changed: a restore or the next snapshot
takes damaged chunks out of the way, this only says which they are and what they break.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from takeover.ports import ObjectStore
from takeover.snapshots.archive import chunk_size_problem, entry_chunks, unpack_chunk
from takeover.snapshots.manifest import CorruptSnapshot, Manifest

_WORKERS = 8


@dataclass(frozen=True, slots=True)
class DamagedManifest:
    instance_id: str
    snapshot_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class DamagedChunkReport:
    digest: str
    problem: str
    snapshots: tuple[str, ...]  # "<instance>/<snapshot>" that cannot be restored because of it


@dataclass(frozen=True, slots=True)
class CheckReport:
    instances: int
    snapshots: int
    chunks: int
    bytes_read: int
    manifests: tuple[DamagedManifest, ...]
    chunks_damaged: tuple[DamagedChunkReport, ...]

    @property
    def ok(self) -> bool:
        return not self.manifests and not self.chunks_damaged

    @property
    def broken_snapshots(self) -> set[str]:
        broken = {f"{m.instance_id}/{m.snapshot_id}" for m in self.manifests}
        return broken.union(*(c.snapshots for c in self.chunks_damaged))


def check_store(store: ObjectStore, read_data: bool = False) -> CheckReport:
    named: dict[str, set[str]] = defaultdict(set)  # chunk -> snapshots naming it
    recorded: dict[str, int | None] = {}
    bad_manifests = []
    instances = store.list_instances()
    count = 0
    for instance_id in instances:
        for snapshot_id in store.list_snapshots(instance_id):
            count += 1
            try:
                manifest = _manifest(store, instance_id, snapshot_id)
            except CorruptSnapshot as exc:
                bad_manifests.append(DamagedManifest(instance_id, snapshot_id, str(exc)))
                continue
            for entry in manifest.files:
                for digest, packed in entry_chunks(entry):
                    named[digest].add(f"{instance_id}/{snapshot_id}")
                    if recorded.get(digest) is None:
                        recorded[digest] = packed
    with ThreadPoolExecutor(_WORKERS) as pool:
        found = list(pool.map(lambda d: _chunk_problem(store, d, recorded[d], read_data), sorted(named)))
    damaged = tuple(
        DamagedChunkReport(digest, problem, tuple(sorted(named[digest])))
        for digest, (problem, _) in zip(sorted(named), found, strict=True)
        if problem is not None
    )
    return CheckReport(
        len(instances), count, len(named), sum(n for _, n in found), tuple(bad_manifests), damaged
    )


def _manifest(store: ObjectStore, instance_id: str, snapshot_id: str) -> Manifest:
    data = store.get_manifest(instance_id, snapshot_id)
    if data is None:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: the manifest vanished while checking")
    return Manifest.decode(data, snapshot_id)


def _chunk_problem(
    store: ObjectStore, digest: str, packed: int | None, read_data: bool
) -> tuple[str | None, int]:
    """(what is wrong with the chunk or None, bytes read)."""
    problem = chunk_size_problem(store, digest, packed)
    if problem is not None or not read_data:
        return problem, 0
    data = store.get_chunk(digest)
    if data is None:
        return "missing", 0
    return unpack_chunk(data, digest)[1], len(data)
