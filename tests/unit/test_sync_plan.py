"""What syncing a warm copy to a snapshot changes, decided from the manifests and the copy's listing."""

from __future__ import annotations

import pytest

from takeover.snapshots.manifest import CorruptSnapshot, FileEntry, Manifest
from takeover.snapshots.syncplan import Kind, Present, plan_sync


def manifest(*files: FileEntry, dirs: tuple[str, ...] = (), links: dict[str, str] | None = None) -> Manifest:
    return Manifest("s2", "i1", 1, "2026-12-04T00:00:00Z", 0, list(files), list(dirs), links or {})


A = FileEntry("a.txt", 0o644, 5, 100, ["c1"])
B = FileEntry("d/b.bin", 0o600, 9, 200, ["c2", "c3"])


def test_a_file_synced_before_and_untouched_since_is_kept() -> None:
    plan = plan_sync(manifest(A, B, dirs=("d",)), manifest(A, B), {"a.txt": Present(Kind.FILE, 5, 100)})
    assert plan.write == (B,), "b.bin is missing from the copy"
    assert plan.dirs == ("d",)


@pytest.mark.parametrize(
    ("previous", "now"),
    [
        (None, Present(Kind.FILE, 5, 100)),  # never synced: its content is unknown
        (manifest(FileEntry("a.txt", 0o644, 5, 100, ["old"])), Present(Kind.FILE, 5, 100)),  # new chunks
        (manifest(A), Present(Kind.FILE, 5, 101)),  # touched since the last sync
        (manifest(A), Present(Kind.FILE, 6, 100)),
        (manifest(A), Present(Kind.DIR)),  # a folder where the file goes
        (manifest(A), Present(Kind.LINK, target="a.txt")),
    ],
)
def test_any_doubt_about_a_file_rewrites_it(previous: Manifest | None, now: Present) -> None:
    assert plan_sync(manifest(A), previous, {"a.txt": now}).write == (A,)


def test_symlinks_are_made_unless_one_already_points_there() -> None:
    wanted = manifest(links={"l1": "a.txt", "l2": "b"})
    present = {"l1": Present(Kind.LINK, target="a.txt"), "l2": Present(Kind.LINK, target="elsewhere")}
    assert plan_sync(wanted, None, present).links == (("l2", "b"),)


def test_what_the_snapshot_lacks_is_removed_children_first() -> None:
    present = {
        "a.txt": Present(Kind.FILE, 5, 100),
        "old": Present(Kind.DIR),
        "old/x": Present(Kind.FILE, 1, 1),
        "sock": Present(Kind.OTHER),
    }
    assert plan_sync(manifest(A), manifest(A), present).remove == ("sock", "old/x", "old")


@pytest.mark.parametrize("rel", ["/etc/passwd", "../escape", "d/../../x", ""])
def test_a_manifest_path_outside_the_workspace_is_refused_before_anything_is_planned(rel: str) -> None:
    for bad in (
        manifest(FileEntry(rel, 0o644, 1, 1, ["c"])),
        manifest(dirs=(rel,)),
        manifest(links={rel: "x"}),
    ):
        with pytest.raises(CorruptSnapshot, match="outside the workspace"):
            plan_sync(bad, None, {})
