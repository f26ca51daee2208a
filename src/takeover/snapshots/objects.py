"""Where snapshots live: content-addressed chunks plus one manifest per snapshot.

The directory store suits a path every node mounts (NFS, a shared disk). Writes go to a
temporary name and are renamed into place after fsync, so a reader sees a whole object or none;
the manifest is written last, so a snapshot cut short is invisible rather than half there.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    def has_chunk(self, digest: str) -> bool: ...
    def put_chunk(self, digest: str, data: bytes) -> None: ...
    def get_chunk(self, digest: str) -> bytes | None: ...
    def put_manifest(self, instance_id: str, snapshot_id: str, data: bytes) -> None: ...
    def get_manifest(self, instance_id: str, snapshot_id: str) -> bytes | None: ...
    def list_snapshots(self, instance_id: str) -> list[str]: ...
    def quarantine(self, instance_id: str, snapshot_id: str) -> None: ...
    def delete_manifest(self, instance_id: str, snapshot_id: str) -> None: ...


class DirectoryStore:
    """Objects as files under ``root``: chunks/ab/abcd..., snapshots/<instance>/<id>.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "chunks").mkdir(parents=True, exist_ok=True)
        (root / "snapshots").mkdir(parents=True, exist_ok=True)

    def _chunk(self, digest: str) -> Path:
        return self.root / "chunks" / digest[:2] / digest

    def _manifest(self, instance_id: str, snapshot_id: str) -> Path:
        return self.root / "snapshots" / instance_id / f"{snapshot_id}.json"

    def has_chunk(self, digest: str) -> bool:
        return self._chunk(digest).exists()

    def put_chunk(self, digest: str, data: bytes) -> None:
        _write_atomic(self._chunk(digest), data)

    def get_chunk(self, digest: str) -> bytes | None:
        try:
            return self._chunk(digest).read_bytes()
        except FileNotFoundError:
            return None

    def put_manifest(self, instance_id: str, snapshot_id: str, data: bytes) -> None:
        _write_atomic(self._manifest(instance_id, snapshot_id), data)

    def get_manifest(self, instance_id: str, snapshot_id: str) -> bytes | None:
        try:
            return self._manifest(instance_id, snapshot_id).read_bytes()
        except FileNotFoundError:
            return None

    def list_snapshots(self, instance_id: str) -> list[str]:
        folder = self.root / "snapshots" / instance_id
        if not folder.is_dir():
            return []
        return sorted(p.name.removesuffix(".json") for p in folder.glob("*.json"))

    def quarantine(self, instance_id: str, snapshot_id: str) -> None:
        path = self._manifest(instance_id, snapshot_id)
        path.replace(path.with_suffix(".corrupt"))

    def delete_manifest(self, instance_id: str, snapshot_id: str) -> None:
        self._manifest(instance_id, snapshot_id).unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
