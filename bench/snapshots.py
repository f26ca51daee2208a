"""Snapshot and restore of a 1 GB workspace, against `tar | zstd` on the same data in the same run.

The workspace is half random bytes (incompressible, like model weights or media) and half
generated log lines (compressible). Files are aged past the racy window first, as data on a real
node is. Our snapshots fsync every chunk and the manifest; the baselines write without fsync.

    .venv/bin/python -m bench.snapshots --size-mb 1024
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, ensure_debian_tool  # noqa: F401  (ROOT puts the repository on sys.path)
from takeover.snapshots import DirectoryStore, SnapshotRepository
from takeover.snapshots.check import check_store


def make_workspace(root: Path, size_mb: int) -> int:
    root.mkdir()
    rng = random.Random(7)
    files = max(2, size_mb // 64)
    per_file = size_mb * 1024 * 1024 // files
    for n in range(files):
        path = root / f"part-{n:03d}.{'bin' if n % 2 == 0 else 'log'}"
        with open(path, "wb") as f:
            if n % 2 == 0:
                f.write(os.urandom(per_file))
            else:
                written = 0
                while written < per_file:
                    line = f"2026-11-22T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z request id={rng.getrandbits(64):016x} status={rng.choice([200, 200, 200, 404, 500])} ms={rng.randrange(1000)}\n".encode()
                    f.write(line)
                    written += len(line)
                f.truncate(per_file)
    past = time.time() - 3600
    for path in root.iterdir():
        os.utime(path, (past, past))
    return files * per_file


def timed(action: Callable[[], object]) -> float:
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def shell(command: str) -> None:
    subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    ensure_debian_tool("zstd", "zstd")
    scratch = Path(tempfile.mkdtemp(prefix="bench-snapshots-", dir=args.dir))
    try:
        ws = scratch / "ws"
        size = make_workspace(ws, args.size_mb)
        mb = size / 1e6
        repo = SnapshotRepository(DirectoryStore(scratch / "store"))
        rows: list[tuple[str, float]] = []
        rows.append(("takeover snapshot (first)", timed(lambda: repo.take(ws, "bench", 1))))
        unchanged = sorted(timed(lambda: repo.take(ws, "bench", 1)) for _ in range(7))
        rows.append(("takeover snapshot (unchanged, median)", unchanged[3]))
        rows.append(("takeover restore", timed(lambda: repo.restore("bench", 2, scratch / "restored"))))
        rows.append(("takeover snapshots check", timed(lambda: check_store(repo.store))))
        rows.append(("takeover snapshots check --read-data", timed(lambda: check_store(repo.store, True))))
        tar = f"tar -C {ws} -cf - ."
        rows.append(
            (
                "tar | zstd (level 3, 1 thread)",
                timed(lambda: shell(f"{tar} | zstd -q -3 -T1 -o {scratch}/a.zst")),
            )
        )
        rows.append(
            (
                "tar | zstd (level 1, 2 threads)",
                timed(lambda: shell(f"{tar} | zstd -q -1 -T2 -o {scratch}/b.zst")),
            )
        )
        (scratch / "untar").mkdir()
        rows.append(
            (
                "zstd -d | tar",
                timed(lambda: shell(f"zstd -q -d -c {scratch}/a.zst | tar -C {scratch}/untar -xf -")),
            )
        )
        stored = sum(p.stat().st_size for p in (scratch / "store").rglob("*") if p.is_file())
        print(
            f"workspace {mb:.0f} MB in {len(list(ws.iterdir()))} files; takeover store {stored / 1e6:.0f} MB, "
            f"tar.zst {(scratch / 'a.zst').stat().st_size / 1e6:.0f} MB"
        )
        print(
            f"unchanged snapshot, 7 runs (each stats every chunk it reuses): {', '.join(f'{t * 1000:.1f}' for t in unchanged)} ms"
        )
        for label, seconds in rows:
            print(f"{label:38s} {seconds:7.3f} s  {mb / seconds:8.0f} MB/s")
        times = dict(rows)
        print(
            f"snapshot vs tar|zstd -3: {times['tar | zstd (level 3, 1 thread)'] / times['takeover snapshot (first)']:.2f}x, "
            f"vs tar|zstd -1 -T2: {times['tar | zstd (level 1, 2 threads)'] / times['takeover snapshot (first)']:.2f}x, "
            f"restore vs zstd -d|tar: {times['zstd -d | tar'] / times['takeover restore']:.2f}x (above 1: faster)"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
