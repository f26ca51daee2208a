"""A snapshot's manifest (files, folders, symlinks, each file's chunks) and the snapshot errors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from takeover.domain.snapshots import SnapshotRef


class SnapshotError(Exception):
    """A snapshot cannot be taken or restored; the message names the snapshot and the cause."""


class CorruptSnapshot(SnapshotError):
    pass


class DamagedChunk(CorruptSnapshot):
    """A chunk the snapshot names is missing or does not hold its content; the manifest is fine."""

    def __init__(self, message: str, digest: str, missing: bool) -> None:
        super().__init__(message)
        self.digest, self.missing = digest, missing


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    mode: int
    size: int
    mtime_ns: int
    chunks: list[str]
    packed: list[int] = field(default_factory=list)  # each chunk's stored size (older manifests: none)


@dataclass(frozen=True, slots=True)
class Manifest:
    id: str
    instance_id: str
    epoch: int
    taken_at: str
    started_ns: int  # wall clock when the walk began: the racy-file check of the next snapshot
    files: list[FileEntry] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> SnapshotRef:
        return SnapshotRef.parse(self.id)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def encode(self) -> bytes:
        body = asdict(self)
        digest = hashlib.sha256(canonical(body)).hexdigest()
        return json.dumps({"sha256": digest, "manifest": body}).encode()

    @staticmethod
    def decode(data: bytes, where: str) -> Manifest:
        try:
            outer = json.loads(data)
            body = outer["manifest"]
            if hashlib.sha256(canonical(body)).hexdigest() != outer["sha256"]:
                raise CorruptSnapshot(f"snapshot {where}: the manifest fails its checksum")
            files = [FileEntry(**f) for f in body.pop("files")]
            return Manifest(files=files, **body)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSnapshot(f"snapshot {where}: unreadable manifest ({exc})") from exc


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
