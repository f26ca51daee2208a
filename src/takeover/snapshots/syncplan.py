"""What bringing a warm copy to a snapshot must change: the plan, decided without touching disk.

``sync_snapshot`` (archive.py) reads what the copy holds, asks for the plan and applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from takeover.snapshots.manifest import CorruptSnapshot, FileEntry, Manifest


class Kind(Enum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    OTHER = "other"  # a socket, a fifo, a device: never in a snapshot


@dataclass(frozen=True, slots=True)
class Present:
    """One path of the copy as it is now."""

    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    target: str | None = None  # a symlink's


@dataclass(frozen=True, slots=True)
class SyncPlan:
    dirs: tuple[str, ...] = ()  # to create (parents first)
    write: tuple[FileEntry, ...] = ()  # to rewrite from their chunks
    links: tuple[tuple[str, str], ...] = ()  # (path, target) to create, replacing what is there
    remove: tuple[str, ...] = ()  # not in the snapshot, children before their folder


def inside(rel: str, snapshot_id: str) -> str:
    """A manifest path must stay inside the workspace: no absolute paths, no '..'."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: path {rel!r} points outside the workspace")
    return rel


def plan_sync(manifest: Manifest, previous: Manifest | None, present: Mapping[str, Present]) -> SyncPlan:
    """A file is kept when ``previous`` (what the copy was synced to) lists it with the same
    chunks and it still has that size and mtime; anything else the snapshot holds is written."""
    for rel in (*manifest.dirs, *(f.path for f in manifest.files), *manifest.symlinks):
        inside(rel, manifest.id)
    known = {f.path: f for f in previous.files} if previous else {}

    def unchanged(entry: FileEntry) -> bool:
        old, now = known.get(entry.path), present.get(entry.path)
        return (
            old is not None
            and old.chunks == entry.chunks
            and now is not None
            and now.kind is Kind.FILE
            and (now.size, now.mtime_ns) == (entry.size, entry.mtime_ns)
        )

    def linked(rel: str, target: str) -> bool:
        now = present.get(rel)
        return now is not None and now.kind is Kind.LINK and now.target == target

    wanted = {f.path for f in manifest.files} | set(manifest.dirs) | set(manifest.symlinks)
    return SyncPlan(
        dirs=tuple(manifest.dirs),
        write=tuple(e for e in manifest.files if not unchanged(e)),
        links=tuple((r, t) for r, t in manifest.symlinks.items() if not linked(r, t)),
        remove=tuple(sorted((r for r in present if r not in wanted), reverse=True)),
    )
