"""Taking and restoring workspace snapshots: fixed-size chunks, SHA-256 named, zstd compressed.

A chunk already in the store is not written again once its stored size matches what its
content compresses to, and a file whose size and mtime match the previous snapshot (and was
last modified well before that snapshot began) is not even read: an unchanged workspace costs a
directory walk, one stat per chunk it names, and a manifest. Reusing a chunk on trust would let
one damaged file poison every later snapshot of the same content (restic and borg check their
packs for the same reason), so a reused chunk of the wrong size is set aside and written anew.
A restore checks every chunk's checksum into a temporary directory and swaps it in only when
all of it verified; ``takeover snapshots check --read-data`` does the same for a whole store.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zstandard

from takeover.domain.snapshots import SnapshotRef
from takeover.ports import ObjectStore
from takeover.snapshots.manifest import (
    DamagedChunk,
    FileEntry,
    Manifest,
    SnapshotError,
)
from takeover.snapshots.syncplan import Kind, Present, inside, plan_sync

CHUNK_BYTES = 4 * 1024 * 1024
RACY_NS = 1_000_000_000  # coarse file-system clocks: an mtime this close to a snapshot is re-read
_WORKERS = max(2, min(8, os.cpu_count() or 2))
_local = threading.local()


@dataclass(frozen=True, slots=True)
class TakeResult:
    manifest: Manifest
    bytes_read: int
    bytes_written: int
    repaired: tuple[str, ...] = ()  # damaged chunks found in the store and written anew


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
    files, dirs, links, unread = _listing(workspace, previous)
    sizes = _packed_sizes(previous)
    with ThreadPoolExecutor(_WORKERS) as pool:
        intact = list(pool.map(lambda i: _chunks_intact(store, files[i]), unread))
        for index, ok in zip(unread, intact, strict=True):
            if not ok:  # unchanged, but naming a chunk the store lost or damaged: read it again
                old = files[index]
                files[index] = FileEntry(old.path, old.mode, old.size, old.mtime_ns, [])
        kept = {i for i, ok in zip(unread, intact, strict=True) if ok}
        to_read = [i for i in range(len(files)) if i not in kept]
        jobs = [(i, off) for i in to_read for off in range(0, files[i].size, CHUNK_BYTES)]
        results = list(
            pool.map(lambda job: _store_chunk(store, workspace / files[job[0]].path, job[1], sizes), jobs)
        )
    read = written = 0
    repaired = []
    for (index, _), (digest, packed, n_read, n_written, damaged) in zip(jobs, results, strict=True):
        files[index].chunks.append(digest)
        files[index].packed.append(packed)
        read += n_read
        written += n_written
        if damaged:
            repaired.append(digest)
    ref = SnapshotRef.make(epoch, taken_at, secrets.token_hex(3))
    manifest = Manifest(ref.id, instance_id, epoch, taken_at.isoformat(), started_ns, files, dirs, links)
    store.put_manifest(instance_id, ref.id, manifest.encode())
    return TakeResult(manifest, read, written, tuple(repaired))


def _listing(
    workspace: Path, previous: Manifest | None
) -> tuple[list[FileEntry], list[str], dict[str, str], list[int]]:
    """Files (with no chunks yet, or as ``previous`` had them), folders, symlinks, and which files
    were taken from ``previous`` unread: same size and mtime, and older than its walk (not racy)."""
    known = {f.path: f for f in previous.files} if previous else {}
    racy_after = (previous.started_ns - RACY_NS) if previous else 0
    files: list[FileEntry] = []
    dirs: list[str] = []
    links: dict[str, str] = {}
    unread: list[int] = []
    for rel, st in _walk(workspace):
        if stat.S_ISDIR(st.st_mode):
            dirs.append(rel)
        elif stat.S_ISLNK(st.st_mode):
            links[rel] = os.readlink(workspace / rel)
        elif stat.S_ISREG(st.st_mode):
            old = known.get(rel)
            if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns < racy_after:
                unread.append(len(files))
                files.append(old)
                continue
            files.append(FileEntry(rel, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, []))
    return files, dirs, links, unread


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


def _packed_sizes(manifest: Manifest | None) -> dict[str, int]:
    if manifest is None:
        return {}
    return {d: n for f in manifest.files for d, n in zip(f.chunks, f.packed, strict=False)}


def chunk_size_problem(store: ObjectStore, digest: str, packed: int | None) -> str | None:
    """The cheap check of a chunk a manifest names (present, not empty, the size it was stored
    with): what is wrong, or None."""
    size = store.chunk_size(digest)
    if size is None:
        return "missing"
    if size == 0:
        return "empty (0 bytes)"
    if packed is not None and size != packed:
        return f"stored size {size} B, recorded {packed} B"
    return None


def _chunks_intact(store: ObjectStore, entry: FileEntry) -> bool:
    return all(chunk_size_problem(store, d, n) is None for d, n in entry_chunks(entry))


def entry_chunks(entry: FileEntry) -> list[tuple[str, int | None]]:
    """Each chunk of a file with its stored size, None where an older manifest did not record it."""
    packed: list[int | None] = list(entry.packed) or [None] * len(entry.chunks)
    return list(zip(entry.chunks, packed, strict=True))


def _store_chunk(
    store: ObjectStore, path: Path, offset: int, sizes: dict[str, int]
) -> tuple[str, int, int, int, bool]:
    """(digest, stored size, bytes read, bytes written, whether a damaged copy was replaced)."""
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), CHUNK_BYTES, offset)
    digest = hashlib.sha256(data).hexdigest()
    stored = store.chunk_size(digest)
    if stored is not None and stored == sizes.get(digest):
        return digest, stored, len(data), 0, False
    packed = _compressor().compress(data)
    if stored == len(packed):  # put by another file, instance or node: the same bytes
        return digest, stored, len(data), 0, False
    if stored is not None:
        store.quarantine_chunk(digest)  # not what this content compresses to: damaged
    store.put_chunk(digest, packed)
    return digest, len(packed), len(data), len(packed), stored is not None


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
        (root / inside(rel, manifest.id)).mkdir(parents=True, exist_ok=True)
    fds: dict[int, int] = {}
    jobs: list[tuple[int, str, int, str]] = []
    try:
        for index, entry in enumerate(manifest.files):
            path = root / inside(entry.path, manifest.id)
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
        os.symlink(target, root / inside(rel, manifest.id))


def _restore_chunk(
    store: ObjectStore, snapshot_id: str, fd: int, digest: str, offset: int, path: str
) -> None:
    packed = store.get_chunk(digest)
    if packed is None:
        raise DamagedChunk(f"snapshot {snapshot_id}: chunk {digest[:12]} of {path} is missing", digest, True)
    data, problem = unpack_chunk(packed, digest)
    if problem is not None:
        raise DamagedChunk(f"snapshot {snapshot_id}: chunk {digest[:12]} of {path} {problem}", digest, False)
    os.pwrite(fd, data, offset)


def unpack_chunk(packed: bytes, digest: str) -> tuple[bytes, str | None]:
    """A chunk's content, and why its stored bytes are not the content named ``digest`` (or None)."""
    try:
        data = _decompressor().decompress(packed)
    except zstandard.ZstdError:
        return b"", "is damaged (not a zstd frame)"
    if hashlib.sha256(data).hexdigest() != digest:
        return data, "fails its checksum"
    return data, None


def sync_snapshot(
    store: ObjectStore, instance_id: str, snapshot_id: str, dest: Path, previous: Manifest | None
) -> Manifest:
    """Bring ``dest`` (not in use: a warm copy) to ``snapshot_id`` in place, rewriting only what
    plan_sync says changed; every rewritten file is verified, written aside and renamed over."""
    manifest = load_manifest(store, instance_id, snapshot_id)
    dest.mkdir(parents=True, exist_ok=True)
    plan = plan_sync(manifest, previous, dict(_present(dest)))
    for rel in plan.dirs:
        (dest / rel).mkdir(parents=True, exist_ok=True)
    for entry in plan.write:
        _write_aside(store, manifest.id, entry, dest / entry.path)
    for rel, target in plan.links:
        path = dest / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
    for rel in plan.remove:
        path = dest / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return manifest


def _present(dest: Path) -> Iterator[tuple[str, Present]]:
    for rel, st in _walk(dest):
        if stat.S_ISLNK(st.st_mode):
            yield rel, Present(Kind.LINK, target=os.readlink(dest / rel))
        elif stat.S_ISDIR(st.st_mode):
            yield rel, Present(Kind.DIR)
        elif stat.S_ISREG(st.st_mode):
            yield rel, Present(Kind.FILE, st.st_size, st.st_mtime_ns)
        else:
            yield rel, Present(Kind.OTHER)


def _write_aside(store: ObjectStore, snapshot_id: str, entry: FileEntry, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.sync-{secrets.token_hex(3)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, entry.size)
        for n, digest in enumerate(entry.chunks):
            _restore_chunk(store, snapshot_id, fd, digest, n * CHUNK_BYTES, entry.path)
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
