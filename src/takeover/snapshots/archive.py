"""Taking and restoring workspace snapshots: fixed-size chunks, SHA-256 named, zstd compressed.

A chunk already in the store is never written again, and a file whose size and mtime match the
previous snapshot (and was last modified well before that snapshot began) is not even read:
an unchanged workspace costs a directory walk and a manifest. A restore checks every chunk's
checksum into a temporary directory and swaps it in only when all of it verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from takeover.domain.snapshots import SnapshotRef
from takeover.ports import ObjectStore

CHUNK_BYTES = 4 * 1024 * 1024
RACY_NS = 1_000_000_000  # coarse file-system clocks: an mtime this close to a snapshot is re-read
_WORKERS = max(2, min(8, os.cpu_count() or 2))
_local = threading.local()


class SnapshotError(Exception):
    """A snapshot cannot be taken or restored; the message names the snapshot and the cause."""


class CorruptSnapshot(SnapshotError):
    pass


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    mode: int
    size: int
    mtime_ns: int
    chunks: list[str]


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
        digest = hashlib.sha256(_canonical(body)).hexdigest()
        return json.dumps({"sha256": digest, "manifest": body}).encode()

    @staticmethod
    def decode(data: bytes, where: str) -> Manifest:
        try:
            outer = json.loads(data)
            body = outer["manifest"]
            if hashlib.sha256(_canonical(body)).hexdigest() != outer["sha256"]:
                raise CorruptSnapshot(f"snapshot {where}: the manifest fails its checksum")
            files = [FileEntry(**f) for f in body.pop("files")]
            return Manifest(files=files, **body)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSnapshot(f"snapshot {where}: unreadable manifest ({exc})") from exc


@dataclass(frozen=True, slots=True)
class TakeResult:
    manifest: Manifest
    bytes_read: int
    bytes_written: int


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_local, "cctx"):
        _local.cctx = zstandard.ZstdCompressor(level=1)
        _local.dctx = zstandard.ZstdDecompressor()
    return _local.cctx  # type: ignore[no-any-return]


def _decompressor() -> zstandard.ZstdDecompressor:
    _compressor()
    return _local.dctx  # type: ignore[no-any-return]


def take_snapshot(
    store: ObjectStore,
    workspace: Path,
    instance_id: str,
    epoch: int,
    previous: Manifest | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TakeResult:
    """Store ``workspace`` as a new snapshot at ``epoch``; ``previous`` lets unchanged files be skipped."""
    started_ns = _wall_ns()
    taken_at = now()
    known = {f.path: f for f in previous.files} if previous else {}
    racy_after = (previous.started_ns - RACY_NS) if previous else 0
    files: list[FileEntry] = []
    dirs: list[str] = []
    links: dict[str, str] = {}
    jobs: list[tuple[int, Path, int]] = []  # (file index, path, offset)
    for rel, st in _walk(workspace):
        if stat.S_ISDIR(st.st_mode):
            dirs.append(rel)
        elif stat.S_ISLNK(st.st_mode):
            links[rel] = os.readlink(workspace / rel)
        elif stat.S_ISREG(st.st_mode):
            old = known.get(rel)
            if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns < racy_after:
                files.append(old)
                continue
            files.append(FileEntry(rel, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, []))
            jobs.extend((len(files) - 1, workspace / rel, off) for off in range(0, st.st_size, CHUNK_BYTES))
    with ThreadPoolExecutor(_WORKERS) as pool:
        results = list(pool.map(lambda job: _store_chunk(store, job[1], job[2]), jobs))
    read = written = 0
    for (index, _, _), (digest, n_read, n_written) in zip(jobs, results, strict=True):
        files[index].chunks.append(digest)
        read += n_read
        written += n_written
    ref = SnapshotRef.make(epoch, taken_at, secrets.token_hex(3))
    manifest = Manifest(ref.id, instance_id, epoch, taken_at.isoformat(), started_ns, files, dirs, links)
    store.put_manifest(instance_id, ref.id, manifest.encode())
    return TakeResult(manifest, read, written)


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    if not root.is_dir():
        raise SnapshotError(f"workspace {root} does not exist")
    for folder, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in [*subdirs, *sorted(names)]:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # deleted while we walked: it is simply not in this snapshot
            yield os.path.relpath(path, root), st


def _store_chunk(store: ObjectStore, path: Path, offset: int) -> tuple[str, int, int]:
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), CHUNK_BYTES, offset)
    digest = hashlib.sha256(data).hexdigest()
    if store.has_chunk(digest):
        return digest, len(data), 0
    packed = _compressor().compress(data)
    store.put_chunk(digest, packed)
    return digest, len(data), len(packed)


def _wall_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


def load_manifest(store: ObjectStore, instance_id: str, snapshot_id: str) -> Manifest:
    data = store.get_manifest(instance_id, snapshot_id)
    if data is None:
        raise SnapshotError(f"snapshot {snapshot_id} of instance {instance_id} does not exist")
    return Manifest.decode(data, snapshot_id)


def restore_snapshot(store: ObjectStore, instance_id: str, snapshot_id: str, dest: Path) -> Manifest:
    """Restore into ``dest``, replacing it only once every chunk has verified."""
    manifest = load_manifest(store, instance_id, snapshot_id)
    tmp = dest.with_name(f".{dest.name}.restoring-{secrets.token_hex(3)}")
    try:
        _materialize(store, manifest, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(3)}")
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def _materialize(store: ObjectStore, manifest: Manifest, root: Path) -> None:
    root.mkdir(parents=True)
    for rel in manifest.dirs:
        (root / _inside(rel, manifest.id)).mkdir(parents=True, exist_ok=True)
    fds: dict[int, int] = {}
    jobs: list[tuple[int, str, int, str]] = []
    try:
        for index, entry in enumerate(manifest.files):
            path = root / _inside(entry.path, manifest.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            fds[index] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fds[index], entry.size)
            jobs.extend((fds[index], d, n * CHUNK_BYTES, entry.path) for n, d in enumerate(entry.chunks))
        with ThreadPoolExecutor(_WORKERS) as pool:
            for _ in pool.map(lambda job: _restore_chunk(store, manifest.id, *job), jobs):
                pass
        for index, entry in enumerate(manifest.files):
            os.fsync(fds[index])
            os.fchmod(fds[index], entry.mode)
            os.utime(fds[index], ns=(entry.mtime_ns, entry.mtime_ns))
    finally:
        for fd in fds.values():
            os.close(fd)
    for rel, target in manifest.symlinks.items():
        os.symlink(target, root / _inside(rel, manifest.id))


def _restore_chunk(
    store: ObjectStore, snapshot_id: str, fd: int, digest: str, offset: int, path: str
) -> None:
    packed = store.get_chunk(digest)
    if packed is None:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: chunk {digest[:12]} of {path} is missing")
    try:
        data = _decompressor().decompress(packed)
    except zstandard.ZstdError as exc:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: chunk {digest[:12]} of {path} is damaged") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: chunk {digest[:12]} of {path} fails its checksum")
    os.pwrite(fd, data, offset)


def _inside(rel: str, snapshot_id: str) -> str:
    """A manifest path must stay inside the workspace: no absolute paths, no '..'."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise CorruptSnapshot(f"snapshot {snapshot_id}: path {rel!r} points outside the workspace")
    return rel


def sync_snapshot(
    store: ObjectStore, instance_id: str, snapshot_id: str, dest: Path, previous: Manifest | None
) -> Manifest:
    """Bring ``dest`` (not in use: a warm copy) to ``snapshot_id`` in place, rewriting only changes.

    A file is kept when ``previous`` (what ``dest`` was synced to) lists it with the same chunks
    and it still has that size and mtime; every rewritten file is verified, written aside and
    renamed over. Entries the snapshot does not have are removed.
    """
    manifest = load_manifest(store, instance_id, snapshot_id)
    dest.mkdir(parents=True, exist_ok=True)
    known = {f.path: f for f in previous.files} if previous else {}
    for rel in manifest.dirs:
        (dest / _inside(rel, manifest.id)).mkdir(parents=True, exist_ok=True)
    for entry in manifest.files:
        path = dest / _inside(entry.path, manifest.id)
        old = known.get(entry.path)
        if old and old.chunks == entry.chunks and _same_file(path, entry):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.sync-{secrets.token_hex(3)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, entry.size)
            for n, digest in enumerate(entry.chunks):
                _restore_chunk(store, manifest.id, fd, digest, n * CHUNK_BYTES, entry.path)
            os.fsync(fd)
            os.fchmod(fd, entry.mode)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        tmp.replace(path)
    for rel, target in manifest.symlinks.items():
        path = dest / _inside(rel, manifest.id)
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.is_symlink() or path.exists():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        os.symlink(target, path)
    _remove_extra(dest, manifest)
    return manifest


def _same_file(path: Path, entry: FileEntry) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns


def _remove_extra(dest: Path, manifest: Manifest) -> None:
    wanted = {f.path for f in manifest.files} | set(manifest.dirs) | set(manifest.symlinks)
    for rel, st in sorted(_walk(dest), key=lambda item: item[0], reverse=True):  # children first
        if rel in wanted:
            continue
        path = dest / rel
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
