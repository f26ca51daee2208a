"""Snapshots against a real directory store: round trip, deduplication, corruption refused."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.snapshots import SnapshotRef, restore_candidates
from takeover.snapshots import CorruptSnapshot, DirectoryStore, SnapshotRepository
from takeover.snapshots.archive import CHUNK_BYTES, restore_snapshot, take_snapshot
from takeover.snapshots.check import check_store
from takeover.snapshots.manifest import Manifest


def tree(root: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every entry under root: file contents or link target, with its permission bits."""
    out: dict[str, tuple[bytes | str, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = (os.readlink(path), 0)
        elif path.is_file():
            out[rel] = (path.read_bytes(), path.stat().st_mode & 0o777)
        else:
            out[rel] = (b"<dir>", 0)
    return out


def make_workspace(root: Path) -> Path:
    root.mkdir()
    (root / "data").mkdir()
    (root / "empty-dir").mkdir()
    (root / "count").write_text("41")
    (root / "data" / "big.bin").write_bytes(os.urandom(CHUNK_BYTES * 2 + 123))
    (root / "data" / "empty").write_bytes(b"")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("data/big.bin")
    return root


def age(root: Path, seconds: float) -> None:
    """Files last written long ago (as on a real node), outside the racy window of a snapshot."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (past, past))


def test_a_restore_gives_back_files_dirs_links_and_modes(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    result = take_snapshot(store, ws, "i1", 1)
    restore_snapshot(store, "i1", result.manifest.id, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(ws)
    assert result.manifest.total_bytes == CHUNK_BYTES * 2 + 123 + 2 + 10


def test_an_unchanged_workspace_is_neither_read_nor_written_again(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    age(ws, 60)
    first = take_snapshot(store, ws, "i1", 1)
    assert first.bytes_written > 0
    second = take_snapshot(store, ws, "i1", 1, previous=first.manifest)
    assert (second.bytes_read, second.bytes_written) == (0, 0)
    (ws / "count").write_text("42")  # a change is picked up, and only the changed file is read
    third = take_snapshot(store, ws, "i1", 1, previous=second.manifest)
    assert third.bytes_read == 2
    restore_snapshot(store, "i1", third.manifest.id, tmp_path / "out")
    assert (tmp_path / "out" / "count").read_text() == "42"


def test_a_file_changed_just_after_a_snapshot_began_is_read_again(tmp_path: Path) -> None:
    """Same size and a coarse mtime could hide a change made while the snapshot ran."""
    store = DirectoryStore(tmp_path / "store")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "count").write_text("1")
    first = take_snapshot(store, ws, "i1", 1)
    (ws / "count").write_text("2")
    os.utime(ws / "count", ns=(first.manifest.started_ns, first.manifest.started_ns))
    second = take_snapshot(store, ws, "i1", 1, previous=first.manifest)
    restore_snapshot(store, "i1", second.manifest.id, tmp_path / "out")
    assert (tmp_path / "out" / "count").read_text() == "2"


def test_a_shared_chunk_is_stored_once(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = tmp_path / "ws"
    ws.mkdir()
    blob = os.urandom(CHUNK_BYTES)
    (ws / "a").write_bytes(blob)
    (ws / "b").write_bytes(blob)
    result = take_snapshot(store, ws, "i1", 1)
    assert len(list((tmp_path / "store" / "chunks").rglob("*"))) == 2  # one folder, one chunk
    assert result.bytes_read == 2 * CHUNK_BYTES


def chunk_files(store_root: Path) -> list[Path]:
    return [p for p in (store_root / "chunks").rglob("*") if p.is_file()]


@pytest.mark.parametrize("damage", ["flip", "delete", "truncate"])
def test_a_damaged_snapshot_is_refused_and_the_workspace_kept(tmp_path: Path, damage: str) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    manifest = take_snapshot(store, ws, "i1", 1).manifest
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "count").write_text("previous good data")
    victim = max(chunk_files(tmp_path / "store"), key=lambda p: p.stat().st_size)
    data = victim.read_bytes()
    if damage == "flip":
        victim.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CorruptSnapshot, match=f"snapshot {manifest.id}: chunk [0-9a-f]{{12}} of data/big.bin"
    ):
        restore_snapshot(store, "i1", manifest.id, dest)
    assert tree(dest) == {"count": (b"previous good data", 0o644)}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_a_tampered_manifest_is_refused(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    manifest = take_snapshot(store, ws, "i1", 1).manifest
    path = tmp_path / "store" / "snapshots" / "i1" / f"{manifest.id}.json"
    doc = json.loads(path.read_text())
    doc["manifest"]["files"][0]["size"] += 1
    path.write_text(json.dumps(doc))
    with pytest.raises(CorruptSnapshot, match="manifest fails its checksum"):
        restore_snapshot(store, "i1", manifest.id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_manifest_cannot_write_outside_the_workspace(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    evil = Manifest("000000000001-20260101T000000000000Z-aaaaaa", "i1", 1, "now", 0, dirs=["../escape"])
    store.put_manifest("i1", evil.id, evil.encode())
    with pytest.raises(CorruptSnapshot, match="points outside the workspace"):
        restore_snapshot(store, "i1", evil.id, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_the_repository_restores_the_newest_good_snapshot_of_an_earlier_epoch(tmp_path: Path) -> None:
    repo = SnapshotRepository(DirectoryStore(tmp_path / "store"))
    ws = tmp_path / "ws"
    ws.mkdir()
    for epoch, value in [(1, "one"), (2, "two"), (2, "two-later"), (3, "three")]:
        (ws / "count").write_text(value)
        repo.take(ws, "i1", epoch)
    restored = repo.restore("i1", 3, tmp_path / "out")  # a runner at epoch 3 restores epoch 2's latest
    assert restored.manifest is not None
    assert restored.manifest.epoch == 2
    assert (tmp_path / "out" / "count").read_text() == "two-later"
    assert restored.refused == []

    newest = restored.manifest
    chunk = newest.files[0].chunks[0]
    (tmp_path / "store" / "chunks" / chunk[:2] / chunk).write_bytes(b"garbage")
    again = repo.restore("i1", 3, tmp_path / "out2")
    assert again.manifest is not None
    assert again.manifest.id != newest.id
    assert (tmp_path / "out2" / "count").read_text() == "two"
    assert len(again.refused) == 1
    assert newest.id in again.refused[0]
    # The manifest is sound: the chunk is set aside, so a later snapshot of the same content
    # writes it anew and the refused snapshot is whole again.
    assert not (tmp_path / "store" / "chunks" / chunk[:2] / chunk).exists()
    assert newest.id in [r.id for r in repo.refs("i1")]
    (ws / "count").write_text("two-later")
    repo.take(ws, "i1", 3)
    assert restore_snapshot(repo.store, "i1", newest.id, tmp_path / "out3").id == newest.id
    assert repo.restore("i1", 1, tmp_path / "out4").manifest is None  # nothing before epoch 1


def test_a_garbled_manifest_is_quarantined_and_never_chosen_again(tmp_path: Path) -> None:
    repo = SnapshotRepository(DirectoryStore(tmp_path / "store"))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "count").write_text("1")
    old = repo.take(ws, "i1", 1).manifest
    (ws / "count").write_text("2")
    new = repo.take(ws, "i1", 1).manifest
    (tmp_path / "store" / "snapshots" / "i1" / f"{new.id}.json").write_bytes(b"\x00garbage")
    restored = repo.restore("i1", 2, tmp_path / "out")
    assert restored.manifest is not None
    assert restored.manifest.id == old.id
    assert [r.id for r in repo.refs("i1")] == [old.id]


def chunk_path(store_root: Path, digest: str) -> Path:
    return store_root / "chunks" / digest[:2] / digest


def test_a_reused_chunk_truncated_to_nothing_is_written_anew(tmp_path: Path) -> None:
    """Two instances share a chunk; it is damaged; the next snapshot of either must not point at it."""
    store = DirectoryStore(tmp_path / "store")
    blob = os.urandom(CHUNK_BYTES)
    workspaces = []
    for name in ("i1", "i2"):
        ws = tmp_path / name
        ws.mkdir()
        (ws / "model.bin").write_bytes(blob)
        workspaces.append(ws)
    first = take_snapshot(store, workspaces[0], "i1", 1).manifest
    take_snapshot(store, workspaces[1], "i2", 1)
    digest = first.files[0].chunks[0]
    chunk_path(tmp_path / "store", digest).write_bytes(b"")
    # i2's agent has no previous manifest naming the chunk (a new node): it must still notice.
    result = take_snapshot(store, workspaces[1], "i2", 2)
    assert result.repaired == (digest,)
    assert result.bytes_written > 0
    restore_snapshot(store, "i2", result.manifest.id, tmp_path / "out")
    assert (tmp_path / "out" / "model.bin").read_bytes() == blob
    assert restore_snapshot(store, "i1", first.id, tmp_path / "out1").id == first.id  # healed too


def test_an_unchanged_file_whose_chunk_was_lost_is_read_again(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    age(ws, 60)
    first = take_snapshot(store, ws, "i1", 1)
    big = next(f for f in first.manifest.files if f.path == "data/big.bin")
    damaged = chunk_path(tmp_path / "store", big.chunks[1])
    damaged.write_bytes(damaged.read_bytes()[:100])  # same name, wrong size
    second = take_snapshot(store, ws, "i1", 1, previous=first.manifest)
    assert second.bytes_read == big.size  # only the file naming the damaged chunk was read
    assert second.repaired == (big.chunks[1],)
    restore_snapshot(store, "i1", second.manifest.id, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(ws)


def test_the_store_check_names_each_damaged_chunk_and_what_it_breaks(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    a = take_snapshot(store, ws, "i1", 1).manifest
    b = take_snapshot(store, ws, "i2", 1).manifest
    assert check_store(store, read_data=True).ok
    big = next(f for f in a.files if f.path == "data/big.bin")
    truncated, flipped = (chunk_path(tmp_path / "store", d) for d in big.chunks[:2])
    truncated.write_bytes(b"")
    data = flipped.read_bytes()
    flipped.write_bytes(data[:50] + bytes([data[50] ^ 1]) + data[51:])  # same size: only a read finds it
    (tmp_path / "store" / "snapshots" / "i2" / f"{b.id}.json").write_text("{}")

    quick = check_store(store)
    assert [(c.digest, c.problem) for c in quick.chunks_damaged] == [(big.chunks[0], "empty (0 bytes)")]
    assert quick.chunks_damaged[0].snapshots == (f"i1/{a.id}",)  # i2's manifest cannot be read
    assert [(m.instance_id, m.snapshot_id) for m in quick.manifests] == [("i2", b.id)]
    full = check_store(store, read_data=True)
    assert {c.digest: c.problem for c in full.chunks_damaged} == {
        big.chunks[0]: "empty (0 bytes)",
        big.chunks[1]: "fails its checksum",
    }
    assert full.broken_snapshots == {f"i1/{a.id}", f"i2/{b.id}"}


def test_old_snapshots_are_pruned(tmp_path: Path) -> None:
    repo = SnapshotRepository(DirectoryStore(tmp_path / "store"), keep=2)
    ws = tmp_path / "ws"
    ws.mkdir()
    ids = []
    for n in range(4):
        (ws / "count").write_text(str(n))
        ids.append(repo.take(ws, "i1", 1).manifest.id)
    assert [r.id for r in repo.refs("i1")] == ids[2:]


@given(
    st.integers(0, 10**9),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
    st.text("0123456789abcdef", min_size=6, max_size=6),
)
def test_a_snapshot_id_carries_its_epoch_and_time(epoch: int, when: datetime, suffix: str) -> None:
    ref = SnapshotRef.make(epoch, when.replace(tzinfo=UTC), suffix)
    assert SnapshotRef.parse(ref.id) == ref


def test_ids_sort_by_epoch_then_time() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    late_old_epoch = SnapshotRef.make(1, t + timedelta(hours=1), "aaaaaa")
    early_new_epoch = SnapshotRef.make(2, t, "bbbbbb")
    assert sorted([early_new_epoch.id, late_old_epoch.id]) == [late_old_epoch.id, early_new_epoch.id]
    assert restore_candidates([late_old_epoch, early_new_epoch], 3) == [early_new_epoch, late_old_epoch]
    assert restore_candidates([late_old_epoch, early_new_epoch], 2) == [late_old_epoch]


def test_the_digest_names_the_content(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "f").write_bytes(b"hello")
    manifest = take_snapshot(store, ws, "i1", 1).manifest
    assert manifest.files[0].chunks == [hashlib.sha256(b"hello").hexdigest()]


def test_a_warm_copy_syncs_in_place_rewriting_only_what_changed(tmp_path: Path) -> None:
    from takeover.snapshots.archive import sync_snapshot

    store = DirectoryStore(tmp_path / "store")
    ws = make_workspace(tmp_path / "ws")
    first = take_snapshot(store, ws, "i1", 1).manifest
    copy = tmp_path / "copy"
    synced = sync_snapshot(store, "i1", first.id, copy, None)
    assert tree(copy) == tree(ws)
    big = copy / "data" / "big.bin"
    inode = big.stat().st_ino

    (ws / "count").write_text("43")
    (ws / "new.txt").write_text("new")
    (ws / "run.sh").unlink()
    (ws / "empty-dir").rmdir()
    second = take_snapshot(store, ws, "i1", 1, previous=first).manifest
    sync_snapshot(store, "i1", second.id, copy, synced)
    assert tree(copy) == tree(ws)
    assert big.stat().st_ino == inode  # the unchanged 8 MB file was not rewritten


def test_snapshots_check_exits_1_naming_the_damage_and_0_on_a_sound_store(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from takeover.cli.app import app

    store = DirectoryStore(tmp_path / "store")
    manifest = take_snapshot(store, make_workspace(tmp_path / "ws"), "i1", 1).manifest
    runner = CliRunner()
    sound = runner.invoke(app, ["snapshots", "check", "--store", str(tmp_path / "store"), "--read-data"])
    assert sound.exit_code == 0, sound.output
    assert "no damage found" in sound.output
    digest = next(f for f in manifest.files if f.path == "data/big.bin").chunks[0]
    chunk_path(tmp_path / "store", digest).unlink()
    damaged = runner.invoke(
        app,
        ["snapshots", "check"],
        env={"TAKEOVER_SNAPSHOT_STORE": str(tmp_path / "store"), "COLUMNS": "200"},
    )
    assert damaged.exit_code == 1, damaged.output
    assert digest[:16] in damaged.output
    assert "missing" in damaged.output
    assert manifest.id in damaged.output
    nowhere = runner.invoke(app, ["snapshots", "check", "--store", str(tmp_path / "nope")])
    assert nowhere.exit_code == 2
    assert "does not exist" in nowhere.output
