"""The ObjectStore contract, on a directory and on an S3 API served over loopback.

The S3 side runs moto's server: a FAKE of Amazon S3 (a paid cloud API that cannot run here),
speaking the real S3 HTTP protocol to the real boto3 client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from takeover.localcluster import free_port
from takeover.ports import ObjectStore
from takeover.snapshots import SnapshotRepository
from takeover.snapshots.objects import DirectoryStore, S3Store, SnapshotStoreError, open_object_store

DIGEST = "ab" + "0" * 62
SNAP_A = "000000000001-20261122T000000000000Z-aaaaaa"
SNAP_B = "000000000002-20261122T000000000000Z-bbbbbb"


@pytest.fixture(scope="module")
def fake_s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "directory":
        return DirectoryStore(tmp_path / "objects")
    import boto3

    endpoint = request.getfixturevalue("fake_s3_endpoint")
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    bucket = f"b{free_port()}"
    client.create_bucket(Bucket=bucket)
    return S3Store(bucket, "pool-1/", client=client)


def test_chunks_round_trip_and_missing_ones_read_as_none(store: ObjectStore) -> None:
    assert store.chunk_size(DIGEST) is None
    assert store.get_chunk(DIGEST) is None
    store.put_chunk(DIGEST, b"data")
    store.put_chunk(DIGEST, b"data")  # again: allowed, changes nothing
    assert store.chunk_size(DIGEST) == 4
    assert store.get_chunk(DIGEST) == b"data"


def test_a_quarantined_chunk_is_gone_until_put_again(store: ObjectStore) -> None:
    store.put_chunk(DIGEST, b"")  # damaged: truncated to nothing
    assert store.chunk_size(DIGEST) == 0
    store.quarantine_chunk(DIGEST)
    assert store.chunk_size(DIGEST) is None
    assert store.get_chunk(DIGEST) is None
    store.quarantine_chunk(DIGEST)  # again: nothing to set aside, no error
    store.put_chunk(DIGEST, b"data")
    assert store.get_chunk(DIGEST) == b"data"


def test_instances_are_listed_by_their_manifests(store: ObjectStore) -> None:
    assert store.list_instances() == []
    store.put_manifest("i2", SNAP_A, b"a")
    store.put_manifest("i1", SNAP_A, b"a")
    store.put_manifest("i3", SNAP_A, b"a")
    store.quarantine("i3", SNAP_A)
    assert store.list_instances() == ["i1", "i2"]


def test_manifests_list_sorted_per_instance(store: ObjectStore) -> None:
    assert store.list_snapshots("i1") == []
    store.put_manifest("i1", SNAP_B, b"b")
    store.put_manifest("i1", SNAP_A, b"a")
    store.put_manifest("i2", SNAP_A, b"other")
    assert store.list_snapshots("i1") == [SNAP_A, SNAP_B]
    assert store.get_manifest("i1", SNAP_B) == b"b"
    assert store.get_manifest("i1", "nope") is None


def test_quarantined_and_deleted_manifests_are_not_listed(store: ObjectStore) -> None:
    store.put_manifest("i1", SNAP_A, b"a")
    store.put_manifest("i1", SNAP_B, b"b")
    store.quarantine("i1", SNAP_B)
    assert store.list_snapshots("i1") == [SNAP_A]
    assert store.get_manifest("i1", SNAP_B) is None
    store.delete_manifest("i1", SNAP_A)
    assert store.list_snapshots("i1") == []


def test_a_workspace_round_trips_through_the_store(store: ObjectStore, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "count").write_text("7")
    repo = SnapshotRepository(store)
    taken = repo.take(ws, "i1", 1).manifest
    restored = SnapshotRepository(store).restore("i1", 2, tmp_path / "out")  # another node's view
    assert restored.manifest is not None
    assert restored.manifest.id == taken.id
    assert (tmp_path / "out" / "sub" / "count").read_text() == "7"


def test_store_locations_are_parsed_or_refused(tmp_path: Path) -> None:
    assert isinstance(open_object_store(str(tmp_path / "shared")), DirectoryStore)
    assert isinstance(open_object_store(f"file://{tmp_path}/shared"), DirectoryStore)
    with pytest.raises(SnapshotStoreError, match="names no bucket"):
        open_object_store("s3:///prefix")
    with pytest.raises(SnapshotStoreError, match="use a directory path or s3://"):
        open_object_store("ftp://host/x")
