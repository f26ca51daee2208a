"""Snapshots, restores and warm-copy syncs: on two worker threads, one job per workspace.

Their results are applied on the agent's loop thread, and dropped when the runner (or warm copy)
they were for has been replaced meanwhile or the node fenced itself.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from takeover.agent.fence import Fence
from takeover.agent.plan import Snapshot, snapshot_due
from takeover.agent.runner import Runner
from takeover.domain.models import InstanceState
from takeover.snapshots import Manifest, SnapshotRepository

log = structlog.get_logger("takeover.agent")


@dataclass
class WarmCopy:
    """A standby copy of an instance that runs elsewhere: synced from its snapshots, never run here."""

    instance_id: str
    epoch: int
    path: Path
    manifest: Manifest | None = None
    next_sync: float = 0.0
    to_report: bool = False  # a sync finished since the last accepted heartbeat


def keep_warm(
    warm: dict[str, WarmCopy], standby: dict[str, int], wanted: Collection[str], folder: Path
) -> None:
    """Track the copies the reply lists; drop the others, unless one is about to be promoted here."""
    for instance_id in list(warm):
        if instance_id not in standby and instance_id not in wanted:
            shutil.rmtree(warm.pop(instance_id).path, ignore_errors=True)
    for instance_id, epoch in standby.items():
        if instance_id in warm:
            warm[instance_id].epoch = epoch
        else:
            warm[instance_id] = WarmCopy(instance_id, epoch, folder / instance_id)


@dataclass
class Job:
    future: Future[Any]
    done: Callable[[Any], None]
    failed: Callable[[Exception], None]
    current: Callable[[], bool]  # False: what the job was for is gone; its result is dropped


class Jobs:
    def __init__(
        self,
        snapshots: SnapshotRepository,
        runners: dict[str, Runner],
        warm: dict[str, WarmCopy],
        fence: Fence,
        interval: float,
    ) -> None:
        """``runners`` and ``warm`` are the agent's own (shared, read only here)."""
        self.snapshots = snapshots
        self._runners, self._warm, self._fence, self._interval = runners, warm, fence, interval
        self._workers = ThreadPoolExecutor(2, thread_name_prefix="snapshots")
        self._jobs: dict[str, Job] = {}  # one per workspace: the instance id, or "warm:<id>"
        self.next_snapshot: dict[str, float] = {}

    def busy(self) -> set[str]:
        """Instances whose workspace a job still uses."""
        return {key.removeprefix("warm:") for key in self._jobs}

    def started(self, runner: Runner) -> None:
        """Its first periodic snapshot is one interval after it started."""
        self.next_snapshot[runner.instance_id] = time.monotonic() + self._interval

    def submit(
        self,
        runner: Runner,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        failed: Callable[[Exception], None],
    ) -> None:
        def current() -> bool:
            return self._runners.get(runner.instance_id) is runner and not self._fence.fenced

        self._jobs[runner.instance_id] = Job(self._workers.submit(work), done, failed, current)

    def collect(self, dropped: Callable[[], None]) -> None:
        """Apply finished jobs, unless what they were for was replaced meanwhile (then ``dropped``:
        a new epoch of it may have waited for this job)."""
        for key, job in list(self._jobs.items()):
            if not job.future.done():
                continue
            del self._jobs[key]
            if not job.current():
                dropped()
                continue
            try:
                result = job.future.result()
            except Exception as exc:  # noqa: BLE001 - any store's error (S3 too): reported, never fatal
                job.failed(exc)
                continue
            job.done(result)

    def shutdown(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)

    def schedule(self, now: float, sync_interval: float) -> None:
        """Start the syncs and snapshots due now."""
        for copy in self._warm.values():
            if now >= copy.next_sync and f"warm:{copy.instance_id}" not in self._jobs:
                copy.next_sync = now + sync_interval
                self._sync_warm(copy)
        for instance_id, runner in self._runners.items():
            if instance_id in self._jobs or runner.on_volume:
                continue
            due = snapshot_due(
                now,
                runner.state,
                runner.released,
                self.next_snapshot.get(instance_id),
                runner.snapshot_request,
                runner.snapshot_served,
            )
            if due is Snapshot.FINAL:
                self.final_snapshot(runner)
            elif due is Snapshot.PERIODIC:
                self.next_snapshot[instance_id] = now + self._interval
                self._periodic_snapshot(runner)

    def _periodic_snapshot(self, runner: Runner) -> None:
        """Periodic or on demand: either way it answers the latest request (served once)."""
        request = runner.snapshot_request

        def done(result: Any) -> None:
            runner.last_snapshot, runner.snapshot_served = result.manifest.id, request
            runner.snapshot_error = None

        def failed(exc: Exception) -> None:
            runner.snapshot_served = request  # not retried at every tick; the next period tries again
            runner.snapshot_error = str(exc) or type(exc).__name__
            log.error("snapshot failed", instance_id=runner.instance_id, error=str(exc))

        self.submit(
            runner,
            lambda: self.snapshots.take(runner.workspace, runner.instance_id, runner.epoch),
            done,
            failed,
        )

    def _sync_warm(self, copy: WarmCopy) -> None:
        def done(restored: Any) -> None:
            # Nothing verifiable in the store (all refused): the copy still holds what it had.
            copy.manifest, copy.to_report = restored.manifest or copy.manifest, True

        def failed(exc: Exception) -> None:
            log.error("warm copy sync failed", instance_id=copy.instance_id, error=str(exc))

        future = self._workers.submit(
            lambda: self.snapshots.sync(copy.instance_id, copy.epoch + 1, copy.path, copy.manifest)
        )
        self._jobs[f"warm:{copy.instance_id}"] = Job(
            future, done, failed, lambda: self._warm.get(copy.instance_id) is copy
        )

    def hand_over(self, runner: Runner, stop: Callable[[Runner], None]) -> None:
        """A handover: first a snapshot while it still serves. It shows the store takes writes (if
        not, it keeps serving, says why, and the next reply asks again) and leaves little for the
        final snapshot; then ``stop`` it and take the final one."""
        runner.released = True

        def stored(result: Any) -> None:
            runner.last_snapshot, runner.snapshot_error = result.manifest.id, None
            if not runner.released:
                return  # called off meanwhile: it keeps serving
            runner.state = InstanceState.STOPPING
            stop(runner)
            log.info("handing over", instance_id=runner.instance_id, epoch=runner.epoch)
            self.final_snapshot(runner)

        def refused(exc: Exception) -> None:
            runner.released, runner.snapshot_error = False, str(exc) or type(exc).__name__
            log.error(
                "not handing over: the snapshot store refused", instance_id=runner.instance_id, error=str(exc)
            )

        self.submit(
            runner,
            lambda: self.snapshots.take(runner.workspace, runner.instance_id, runner.epoch),
            stored,
            refused,
        )

    def final_snapshot(self, runner: Runner) -> None:
        """A handover's: the runner has stopped; once it is taken, the instance can move."""

        def done(result: Any) -> None:
            runner.last_snapshot, runner.state, runner.error = result.manifest.id, InstanceState.STOPPED, None
            runner.snapshot_error = None
            log.info("handed over", instance_id=runner.instance_id, snapshot=result.manifest.id)

        def failed(exc: Exception) -> None:
            runner.error = f"final snapshot failed, retrying: {exc}"
            runner.snapshot_error = str(exc) or type(exc).__name__
            self.next_snapshot[runner.instance_id] = time.monotonic() + 1.0
            log.error("final snapshot failed", instance_id=runner.instance_id, error=str(exc))

        self.submit(
            runner,
            lambda: self.snapshots.take(runner.workspace, runner.instance_id, runner.epoch),
            done,
            failed,
        )
