"""Workspace snapshots: the backup step of backup -> migrate -> restore."""

from takeover.snapshots.manifest import CorruptSnapshot, Manifest, SnapshotError
from takeover.snapshots.objects import DirectoryStore
from takeover.snapshots.repository import Restored, SnapshotRepository

__all__ = [
    "CorruptSnapshot",
    "DirectoryStore",
    "Manifest",
    "Restored",
    "SnapshotError",
    "SnapshotRepository",
]
