"""How long a warm copy takes to catch up with a snapshot that changed a few files.

A workspace of ``--files`` small files in 50 folders is snapshot into a directory store and
synced into a copy; then, ``--runs`` times, ``--changed`` files are rewritten, a snapshot is
taken, and the copy is synced to it (timed). What it costs is mostly the walk of the copy and
the stat of every file: a standby pays it at every ``sync_interval``.

    .venv/bin/python -m bench.warm_sync --files 5000 --changed 20 --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import takeover
from bench.common import ROOT  # noqa: F401 - puts the repository on sys.path
from takeover.snapshots.archive import sync_snapshot, take_snapshot
from takeover.snapshots.objects import open_object_store


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--changed", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="takeover-warm-sync-"))
    try:
        store = open_object_store(f"file://{root}/store")
        workspace = root / "workspace"
        for i in range(args.files):
            folder = workspace / f"d{i % 50}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i}").write_bytes(os.urandom(256))
        previous = take_snapshot(store, workspace, "i1", 1).manifest
        copy = root / "copy"
        synced = sync_snapshot(store, "i1", previous.id, copy, None)
        times = []
        for _ in range(args.runs):
            for i in range(args.changed):
                (workspace / f"d{i % 50}" / f"f{i}").write_bytes(os.urandom(256))
            snapshot = take_snapshot(store, workspace, "i1", 1, previous).manifest
            started = time.perf_counter()
            synced = sync_snapshot(store, "i1", snapshot.id, copy, synced)
            times.append((time.perf_counter() - started) * 1000)
            previous = snapshot
        code = Path(takeover.__file__).resolve().parents[2]
        print(f"{args.files} files, {args.changed} changed per snapshot, takeover from {code}")
        print(
            f"sync of the warm copy: median {statistics.median(times):.1f} ms "
            f"(runs: {', '.join(f'{t:.1f}' for t in times)})"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
