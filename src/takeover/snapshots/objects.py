"""Where snapshots live: content-addressed chunks plus one manifest per snapshot.

The directory store suits a path every node mounts (NFS, a shared disk); the S3 store, a
bucket every node can reach. Writes go to a
temporary name and are renamed into place after fsync, so a reader sees a whole object or none;
the manifest is written last, so a snapshot cut short is invisible rather than half there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from takeover.ports import ObjectStore


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

    def chunk_size(self, digest: str) -> int | None:
        try:
            return self._chunk(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_chunk(self, digest: str, data: bytes) -> None:
        _write_atomic(self._chunk(digest), data)

    def get_chunk(self, digest: str) -> bytes | None:
        try:
            return self._chunk(digest).read_bytes()
        except FileNotFoundError:
            return None

    def quarantine_chunk(self, digest: str) -> None:
        path = self._chunk(digest)
        with contextlib.suppress(FileNotFoundError):
            path.replace(path.with_name(f"{digest}.corrupt"))

    def put_manifest(self, instance_id: str, snapshot_id: str, data: bytes) -> None:
        _write_atomic(self._manifest(instance_id, snapshot_id), data)

    def get_manifest(self, instance_id: str, snapshot_id: str) -> bytes | None:
        try:
            return self._manifest(instance_id, snapshot_id).read_bytes()
        except FileNotFoundError:
            return None

    def list_instances(self) -> list[str]:
        folder = self.root / "snapshots"
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json")))

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
    """Whole or not at all; a write that fails (the disk is full) leaves no temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class S3Store:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage) through boto3.

    A PUT is atomic in S3, so no temporary names are needed. Credentials and the endpoint come
    from boto3's usual sources (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ~/.aws, instance roles).
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if client is None:
            try:
                import boto3
            except ImportError as exc:
                raise SnapshotStoreError(
                    "an s3:// snapshot store needs boto3: pip install 'takeover[s3]'"
                ) from exc
            client = boto3.client("s3")
        self.s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _chunk(self, digest: str) -> str:
        return f"{self.prefix}chunks/{digest[:2]}/{digest}"

    def _manifest(self, instance_id: str, snapshot_id: str, suffix: str = ".json") -> str:
        return f"{self.prefix}snapshots/{instance_id}/{snapshot_id}{suffix}"

    def _get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body
        except self.s3.exceptions.NoSuchKey:
            return None

    def chunk_size(self, digest: str) -> int | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self._chunk(digest))
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def put_chunk(self, digest: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._chunk(digest), Body=data)

    def get_chunk(self, digest: str) -> bytes | None:
        return self._get(self._chunk(digest))

    def quarantine_chunk(self, digest: str) -> None:
        self._set_aside(self._chunk(digest), f"{self._chunk(digest)}.corrupt")

    def _set_aside(self, key: str, to: str) -> None:
        try:
            self.s3.copy_object(Bucket=self.bucket, Key=to, CopySource={"Bucket": self.bucket, "Key": key})
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return
            raise
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def put_manifest(self, instance_id: str, snapshot_id: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._manifest(instance_id, snapshot_id), Body=data)

    def get_manifest(self, instance_id: str, snapshot_id: str) -> bytes | None:
        return self._get(self._manifest(instance_id, snapshot_id))

    def list_instances(self) -> list[str]:
        folder = f"{self.prefix}snapshots/"
        found = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                instance, _, name = item["Key"].removeprefix(folder).partition("/")
                if name.endswith(".json") and "/" not in name:
                    found.add(instance)
        return sorted(found)

    def list_snapshots(self, instance_id: str) -> list[str]:
        folder = f"{self.prefix}snapshots/{instance_id}/"
        ids = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                name = item["Key"].removeprefix(folder)
                if name.endswith(".json") and "/" not in name:
                    ids.append(name.removesuffix(".json"))
        return sorted(ids)

    def quarantine(self, instance_id: str, snapshot_id: str) -> None:
        self._set_aside(
            self._manifest(instance_id, snapshot_id), self._manifest(instance_id, snapshot_id, ".corrupt")
        )

    def delete_manifest(self, instance_id: str, snapshot_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._manifest(instance_id, snapshot_id))


class SnapshotStoreError(Exception):
    """The snapshot store setting cannot be used; the message says why."""


def open_object_store(location: str) -> ObjectStore:
    """A directory path, or s3://bucket/prefix for an S3-compatible bucket."""
    parts = urlsplit(location)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SnapshotStoreError(f"snapshot store {location!r} names no bucket (s3://bucket/prefix)")
        return S3Store(parts.netloc, parts.path)
    if parts.scheme not in ("", "file"):
        raise SnapshotStoreError(f"snapshot store {location!r}: use a directory path or s3://bucket/prefix")
    return DirectoryStore(Path(parts.path if parts.scheme == "file" else location))
