"""The agent loop: heartbeat, reconcile toward the reply, supervise, snapshot, fence.

Everything that touches processes runs on the loop's own thread (children die with the thread
that spawned them); snapshots and restores run on worker threads and hand their results back
to the loop, which checks the runner is still the current one before acting on them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psutil
import structlog

from takeover.agent.containers import ContainerRuntime
from takeover.agent.fence import Fence
from takeover.agent.gpus import GpuReader
from takeover.agent.link import HttpLink, Link, StreamLink, detail, stream_url
from takeover.agent.plan import Act, Held, Snapshot, plan, snapshot_due
from takeover.agent.processes import ProcessRuntime
from takeover.agent.runner import RestartPolicy, Runner, stop_all
from takeover.agent.runtime import LaunchError, Leftover, Runtime
from takeover.agent.settings import AgentSettings
from takeover.api.wire import DesiredInstance, HeartbeatOut
from takeover.domain.models import InstanceState
from takeover.domain.snapshots import empty_start_refusal
from takeover.snapshots import Manifest, Restored, SnapshotRepository
from takeover.snapshots.objects import SnapshotStoreError, open_object_store

log = structlog.get_logger("takeover.agent")
_TICK = 0.1
_FENCE_GRACE = 1.0  # SIGTERM to SIGKILL when fencing, until a reply gives the control plane's
_LOG_CHUNK = 16 * 1024  # bytes of one instance's output per heartbeat
_LOG_BUDGET = 256 * 1024  # of all of them together: a heartbeat body stays far under its 1 MiB limit


class AgentError(Exception):
    """The agent cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Credentials:
    node_id: UUID
    token: str


@dataclass
class WarmCopy:
    """A standby copy of an instance that runs elsewhere: synced from its snapshots, never run here."""

    instance_id: str
    epoch: int
    path: Path
    manifest: Manifest | None = None
    next_sync: float = 0.0
    to_report: bool = False  # a sync finished since the last accepted heartbeat


@dataclass
class Job:
    future: Future[Any]
    done: Callable[[Any], None]
    failed: Callable[[Exception], None]
    current: Callable[[], bool]  # False: what the job was for is gone; its result is dropped


class Agent:
    def __init__(self, settings: AgentSettings, client: httpx.Client | None = None, nvml: Any = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.workspaces = self.data_dir / "workspaces"
        self.state_dir = self.data_dir / "instances"
        for folder in (self.workspaces, self.state_dir, self.data_dir / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            store = open_object_store(settings.snapshot_store)
        except SnapshotStoreError as exc:
            raise AgentError(str(exc)) from exc
        self.snapshots = SnapshotRepository(store, settings.snapshots_kept)
        self.client = client or httpx.Client(base_url=settings.takeover_url.rstrip("/"))
        self.policy = RestartPolicy(settings.max_restarts, settings.restart_backoff, settings.ready_after)
        self.runners: dict[str, Runner] = {}
        self.heartbeat_interval = settings.heartbeat_interval
        self.fence = Fence(self.data_dir / "fence")
        self.processes = ProcessRuntime()
        self.containers: Runtime | None = None
        if settings.container_runtime != "none":
            self.containers = ContainerRuntime(
                settings.container_runtime,
                settings.container_options,
                self.fence.path,
                min(settings.stop_grace, _FENCE_GRACE),
            )
        self._leftovers: list[Leftover] | None = None  # found at start, settled by the first reply
        self.gpus = GpuReader(nvml)
        self._gpu_count = 0
        self.latency_ms = 0.0
        self.stop_event = threading.Event()
        self._workers = ThreadPoolExecutor(2, thread_name_prefix="snapshots")
        self._jobs: dict[str, Job] = {}  # one per workspace: the instance id, or "warm:<id>"
        self.warm: dict[str, WarmCopy] = {}
        self.sync_interval = 10.0
        self._next_snapshot: dict[str, float] = {}
        self._wanted: dict[str, DesiredInstance] = {}  # the last reply's desired instances
        self.credentials: Credentials | None = None
        self.link: Link | None = None  # once registered

    # start-up -----------------------------------------------------------------------------

    def register(self) -> Credentials:
        """NODE_ID/NODE_TOKEN, else saved credentials, else register with the bootstrap token."""
        s = self.settings
        if s.node_id is not None and s.node_token is not None:
            return Credentials(s.node_id, s.node_token.get_secret_value())
        saved = self.data_dir / "node.json"
        if saved.exists():
            data = json.loads(saved.read_text())
            return Credentials(UUID(data["node_id"]), data["token"])
        body: dict[str, Any] = {
            "name": s.node_name,
            "region": s.node_region,
            "base_url": f"http://{s.advertise_host}",
            "max_instances": s.node_max_instances,
        }
        path, secret = "/api/v1/nodes", s.bootstrap_token
        if s.join_token is not None:  # a rented machine: its rental says the region
            path, secret = "/api/v1/nodes/join", s.join_token
            body.pop("region")
        assert secret is not None  # the settings check guarantees one of them
        while True:
            try:
                response = self.client.post(
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {secret.get_secret_value()}"},
                    timeout=10,
                )
                break
            except httpx.HTTPError as exc:
                log.warning("control plane unreachable; retrying registration", error=str(exc))
                if self.stop_event.wait(1.0):
                    raise AgentError("stopped before the node was registered") from exc
        if response.status_code != 201:
            raise AgentError(f"registration refused ({response.status_code}): {detail(response)}")
        data = response.json()
        saved.write_text(json.dumps({"node_id": data["id"], "token": data["api_token"]}))
        saved.chmod(0o600)
        log.info("registered", node=data["id"], name=s.node_name, region=s.node_region)
        return Credentials(UUID(data["id"]), data["api_token"])

    # the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.credentials = self.register()
        self.link = self._open_link(self.credentials)
        log.info("agent started", node=str(self.credentials.node_id), url=self.settings.takeover_url)
        self._find_leftovers()
        next_beat = 0.0
        reported: set[tuple[str, int, InstanceState]] = set()
        try:
            while not self.stop_event.is_set():
                self._collect_jobs()
                now = time.monotonic()
                for runner in list(self.runners.values()):
                    runner.supervise(now)
                states = {(r.instance_id, r.epoch, r.state) for r in self.runners.values()}
                if now >= next_beat or states != reported:  # news is reported at once, not next beat
                    reported = states
                    self.heartbeat()  # may change the interval: the control plane's value wins
                    next_beat = now + self.heartbeat_interval
                self._fence_if_silent()
                self._schedule_snapshots(time.monotonic())
                self._wait_for_push(_TICK)
        finally:
            self.shutdown()

    def _wait_for_push(self, timeout: float) -> None:
        """Idle until the next tick, or act at once on desired state pushed meanwhile (which
        acknowledges no heartbeat: the fence moves only with acks)."""
        assert self.link is not None
        reply = self.link.pushed(timeout)
        if reply is not None and self.fence.live():  # fenced: wait for an acknowledged heartbeat
            self._reconcile_to(reply)

    def _reconcile_to(self, reply: HeartbeatOut) -> None:
        self.reconcile(reply.desired, {str(r.id): r.epoch for r in reply.release}, reply.standby)

    def _open_link(self, credentials: Credentials) -> Link:
        http = HttpLink(self.client, credentials.node_id, credentials.token, self.stop_event)
        if self.settings.transport == "http":
            return http
        return StreamLink(
            stream_url(self.settings.takeover_url, credentials.node_id),
            credentials.node_id,
            credentials.token,
            http,
        )

    def shutdown(self) -> None:
        """SIGTERM: end the children cleanly; the control plane still lists them here."""
        stop_all(list(self.runners.values()), self.settings.stop_grace)
        self.runners.clear()
        self._workers.shutdown(wait=True, cancel_futures=True)
        if self.link is not None:
            self.link.close()
        self.client.close()
        log.info("agent stopped")

    def heartbeat(self) -> bool:
        assert self.credentials is not None
        reports, shipped = self._reports()
        gpus = self.gpus.read()
        self._gpu_count = len(gpus)
        body = {
            **self._metrics(),
            "gpus": gpus,
            "avg_latency_ms": round(self.latency_ms, 2),
            "instances": reports,
            "standbys": [
                {"id": c.instance_id, "snapshot": c.manifest.id if c.manifest else None}
                for c in self.warm.values()
                if c.to_report
            ],
        }
        reported_syncs = [c for c in self.warm.values() if c.to_report]
        sent = time.monotonic()
        assert self.link is not None
        reply = self.link.beat(body, self.fence.request_timeout(self.heartbeat_interval, sent))
        if reply is None:
            return False
        rtt = (time.monotonic() - sent) * 1000
        self.latency_ms = rtt if self.fence.last_ok is None else 0.8 * self.latency_ms + 0.2 * rtt
        self.heartbeat_interval = reply.heartbeat_interval
        self.sync_interval = reply.sync_interval
        if self.fence.acknowledged(sent, reply.fence_after, reply.fence_grace):
            log.info("control plane reachable again; no longer fenced")
        for copy in reported_syncs:
            copy.to_report = False
        for runner, end in shipped:
            runner.log_shipped = end
        self._reconcile_to(reply)
        return True

    def _metrics(self) -> dict[str, float]:
        cores = os.cpu_count() or 1
        return {
            "cpu_load": round(min(1.0, os.getloadavg()[0] / cores), 4),
            "memory_load": round(psutil.virtual_memory().percent / 100, 4),
        }

    def _reports(self) -> tuple[list[dict[str, Any]], list[tuple[Runner, int]]]:
        """Each runner's report with its output since the last accepted heartbeat, and where each
        shipped log would then end (applied only once the control plane accepted it)."""
        reports, shipped, budget = [], [], _LOG_BUDGET
        for runner in self.runners.values():
            report = self._report(runner)
            if budget > 0:
                text, end = runner.unsent_log(min(_LOG_CHUNK, budget))
                if text:
                    report["log"] = text
                    shipped.append((runner, end))
                    budget -= end - runner.log_shipped
            reports.append(report)
        return reports, shipped

    def _report(self, runner: Runner) -> dict[str, Any]:
        report: dict[str, Any] = {
            "id": runner.instance_id,
            "epoch": runner.epoch,
            "state": runner.state.value,
        }
        if runner.state is InstanceState.RUNNING:
            report["port"] = runner.port
        if runner.error or runner.warning:
            report["error"] = (runner.error or runner.warning or "")[:2000]
        for key in ("restored_from", "last_snapshot", "image_digest"):
            if getattr(runner, key):
                report[key] = getattr(runner, key)
        return report

    # reconcile ----------------------------------------------------------------------------

    def reconcile(
        self,
        desired: list[DesiredInstance],
        release: dict[str, int],
        standby: list[DesiredInstance] | None = None,
    ) -> None:
        """Stop what must stop, and only then start what is new: never two runners at once."""
        wanted = {str(d.id): d for d in desired}
        self._settle_leftovers(wanted)
        self._keep_warm({str(s.id): s.epoch for s in standby or []}, wanted)
        for instance_id, item in wanted.items():
            if instance_id in self.runners:
                self.runners[instance_id].snapshot_request = _request(item)
        actions = plan(
            {i: d.epoch for i, d in wanted.items()},
            release,
            {i: Held(r.epoch, r.released) for i, r in self.runners.items()},
            self._busy(),
        )
        stopping, handovers = [], []
        for action in actions:
            runner = self.runners.get(action.instance_id)
            if action.act is Act.HAND_OVER and runner is not None:
                runner.released, runner.state = True, InstanceState.STOPPING
                handovers.append(runner)
            elif action.act is Act.STOP and runner is not None:
                stopping.append(self.runners.pop(action.instance_id))
                log.info(
                    "stopping",
                    instance_id=action.instance_id,
                    epoch=runner.epoch,
                    why="no longer desired here",
                )
            elif action.act is Act.RESUME and runner is not None:  # the handover was called off
                runner.released = False
                runner.start()
        stop_all(stopping + handovers, self.settings.stop_grace)
        for runner in handovers:
            log.info("handing over", instance_id=runner.instance_id, epoch=runner.epoch)
            if runner.on_volume:  # its data is already on the shared volume
                runner.state = InstanceState.STOPPED
            else:
                self._final_snapshot(runner)
        self._wanted = wanted
        for action in actions:
            if action.act is Act.START:
                self._prepare(wanted[action.instance_id])

    def _start_missing(self) -> None:
        busy = self._busy()
        for instance_id, item in self._wanted.items():
            if instance_id not in self.runners and instance_id not in busy:
                self._prepare(item)

    def _busy(self) -> set[str]:
        """Instances whose workspace a job still uses (one job per workspace)."""
        return {key.removeprefix("warm:") for key in self._jobs}

    def _find_leftovers(self) -> None:
        """Containers an earlier life of this agent started: settled by the first reply."""
        runtime = self.containers
        if runtime is None or shutil.which(self.settings.container_runtime) is None:
            self._leftovers = []
            return
        assert self.credentials is not None
        try:
            self._leftovers = runtime.leftovers(str(self.credentials.node_id))
        except LaunchError as exc:
            log.warning("cannot list containers from an earlier life", error=str(exc))
            self._leftovers = []
        if self._leftovers:
            log.info("found containers from an earlier life", count=len(self._leftovers))

    def _settle_leftovers(self, wanted: dict[str, DesiredInstance]) -> None:
        """Adopt what still runs at the epoch the control plane wants here; remove everything else.
        Never a second copy: an adopted container is supervised, not started again."""
        found, self._leftovers = self._leftovers or [], []
        runtime = self.containers
        for left in found:
            item = wanted.get(left.instance_id)
            port = int(self._local_state(left.instance_id).get("port") or 0)
            if runtime is None or item is None or item.epoch != left.epoch or not left.running or not port:
                log.info("removing a container from an earlier life", container=left.name)
                if runtime is not None:
                    runtime.remove(left)
                continue
            runner = self._runner(item, port)
            try:  # present (it runs): a local look-up, and what a restart after a crash runs
                runner.image_ref, runner.image_digest = runtime.resolve(
                    runner.spec.image or "", runner.spec.image_digest
                )
            except (LaunchError, ValueError) as exc:
                log.warning("cannot adopt; removing", container=left.name, error=str(exc))
                runtime.remove(left)
                continue
            if item.volume_id is not None and self.settings.volume_root is not None:
                runner.workspace, runner.on_volume = (
                    (self.settings.volume_root / str(item.volume_id)).resolve(),
                    True,
                )
            runner.adopt(runtime.adopt(left, runner.log_path))
            self.runners[left.instance_id] = runner
            self._next_snapshot[left.instance_id] = time.monotonic() + self.settings.snapshot_interval
            log.info("adopted a container from an earlier life", container=left.name, epoch=left.epoch)

    def _keep_warm(self, standby: dict[str, int], wanted: dict[str, DesiredInstance]) -> None:
        """Track the copies the reply lists; drop the others, unless one is about to be promoted here."""
        for instance_id in list(self.warm):
            if instance_id not in standby and instance_id not in wanted:
                shutil.rmtree(self.warm.pop(instance_id).path, ignore_errors=True)
        for instance_id, epoch in standby.items():
            if instance_id in self.warm:
                self.warm[instance_id].epoch = epoch
            else:
                self.warm[instance_id] = WarmCopy(instance_id, epoch, self.data_dir / "standby" / instance_id)

    def _runner(self, item: DesiredInstance, port: int) -> Runner:
        spec = item.spec.to_spec()
        instance_id = str(item.id)
        workspace = (self.workspaces / (spec.workspace or instance_id)).resolve()
        log_path = self.data_dir / "logs" / f"{item.name}-{instance_id[:8]}.log"
        runtime = self.processes if spec.image is None else self.containers or self.processes
        runner = Runner(
            instance_id, item.name, item.epoch, spec, workspace, port, log_path, self.policy, runtime
        )
        if self.credentials is not None:
            runner.labels = {"takeover.node": str(self.credentials.node_id)}
        runner.gpu_indices, runner.node_has_gpus = tuple(item.gpu_indices), self._gpu_count > 0
        # What an earlier runner on this node printed was shipped then, or is history.
        runner.log_shipped = log_path.stat().st_size if log_path.exists() else 0
        # A request made before this runner existed is answered by its own snapshots anyway.
        runner.snapshot_request = runner.snapshot_served = _request(item)
        return runner

    def _prepare(self, item: DesiredInstance) -> None:
        instance_id = str(item.id)
        local = self._local_state(instance_id)
        runner = self._runner(item, int(local.get("port") or self._free_port()))
        self.runners[instance_id] = runner
        workspace, port = runner.workspace, runner.port
        if not workspace.is_relative_to(self.workspaces):
            runner.state, runner.error = (
                InstanceState.FAILED,
                f"workspace {workspace} is outside {self.workspaces}",
            )
            return
        if not port:
            runner.state, runner.error = (
                InstanceState.FAILED,
                f"no free port in NODE_PORT_RANGE {self.settings.port_range}",
            )
            return
        if runner.spec.image is not None:  # the image first: a node that cannot get it runs nothing
            image, digest = runner.spec.image, runner.spec.image_digest

            def resolved(found: tuple[str, str]) -> None:
                runner.image_ref, runner.image_digest = found
                self._place(runner, item, local)

            self._submit(
                runner,
                lambda: runner.runtime.resolve(image, digest),
                resolved,
                lambda exc: self._fail(runner, str(exc)),
            )
            return
        self._place(runner, item, local)

    def _place(self, runner: Runner, item: DesiredInstance, local: dict[str, Any]) -> None:
        """Its workspace: the regional volume, the promoted warm copy, the local one, or a restore."""
        instance_id, epoch, workspace = runner.instance_id, runner.epoch, runner.workspace
        if item.volume_id is not None:
            self._attach_volume(runner, str(item.volume_id))
            return
        copy = self.warm.pop(instance_id, None)
        if copy is not None and copy.path.is_dir():
            self._promote(runner, copy, item)
            return
        if local.get("epoch") == epoch and workspace.is_dir():
            log.info("starting from the local workspace", instance_id=instance_id, epoch=epoch)
            self._start(runner)
            return
        log.info("restoring", instance_id=instance_id, epoch=epoch)
        self._submit(
            runner,
            lambda: self.snapshots.restore(instance_id, epoch, workspace),
            lambda restored: self._restored(runner, restored, item),
            lambda exc: self._fail(runner, f"restore failed: {exc}"),
        )

    def _attach_volume(self, runner: Runner, volume_id: str) -> None:
        """The regional volume is the workspace: nothing to restore, nothing to snapshot."""
        root = self.settings.volume_root
        if root is None:
            self._fail(runner, "this node has no NODE_VOLUME_ROOT, so it cannot attach regional volumes")
            return
        runner.workspace = (root / volume_id).resolve()
        runner.on_volume = True
        if not runner.workspace.is_relative_to(root.resolve()):
            self._fail(runner, f"volume {volume_id} resolves outside {root}")
            return
        runner.workspace.mkdir(parents=True, exist_ok=True)
        log.info("starting on its regional volume", instance_id=runner.instance_id, volume=volume_id)
        self._start(runner)

    def _promote(self, runner: Runner, copy: WarmCopy, item: DesiredInstance) -> None:
        """Warm pool: the standby copy becomes the workspace, catches up with any newer snapshot, starts."""
        shutil.rmtree(runner.workspace, ignore_errors=True)
        copy.path.rename(runner.workspace)
        log.info("promoting the warm copy", instance_id=runner.instance_id, epoch=runner.epoch)
        self._submit(
            runner,
            lambda: self.snapshots.sync(runner.instance_id, runner.epoch, runner.workspace, copy.manifest),
            lambda restored: self._restored(runner, restored, item, copy.manifest),
            lambda exc: self._fail(runner, f"promotion failed: {exc}"),
        )

    def _restored(
        self, runner: Runner, restored: Restored, item: DesiredInstance, synced: Manifest | None = None
    ) -> None:
        """Start from what was restored; with nothing restored, start empty only where that loses nothing.

        ``synced``: a promoted warm copy already holds that verified snapshot, whatever the store
        says now.
        """
        manifest = restored.manifest or synced
        if manifest is None:
            refusal = empty_start_refusal(item.recovery_point, restored.refused, item.start_empty)
            if refusal is not None:
                self._fail(runner, refusal)
                return
            shutil.rmtree(runner.workspace, ignore_errors=True)
            runner.workspace.mkdir(parents=True)
        else:
            runner.restored_from = manifest.id
        if restored.refused:
            runner.warning = "refused: " + "; ".join(restored.refused)
        self._start(runner)

    def _start(self, runner: Runner) -> None:
        self._save_local_state(runner)
        runner.start()
        self._next_snapshot[runner.instance_id] = time.monotonic() + self.settings.snapshot_interval

    def _fail(self, runner: Runner, error: str) -> None:
        log.error("instance failed", instance_id=runner.instance_id, error=error)
        runner.state, runner.error = InstanceState.FAILED, error

    # snapshots ----------------------------------------------------------------------------

    def _schedule_snapshots(self, now: float) -> None:
        for copy in self.warm.values():
            if now >= copy.next_sync and f"warm:{copy.instance_id}" not in self._jobs:
                copy.next_sync = now + self.sync_interval
                self._sync_warm(copy)
        for instance_id, runner in self.runners.items():
            if instance_id in self._jobs or runner.on_volume:
                continue
            due = snapshot_due(
                now,
                runner.state,
                runner.released,
                self._next_snapshot.get(instance_id),
                runner.snapshot_request,
                runner.snapshot_served,
            )
            if due is Snapshot.FINAL:
                self._final_snapshot(runner)
            elif due is Snapshot.PERIODIC:
                self._next_snapshot[instance_id] = now + self.settings.snapshot_interval
                self._periodic_snapshot(runner)

    def _periodic_snapshot(self, runner: Runner) -> None:
        """Periodic or on demand: either way it answers the latest request (served once)."""
        request = runner.snapshot_request

        def done(result: Any) -> None:
            runner.last_snapshot, runner.snapshot_served = result.manifest.id, request

        def failed(exc: Exception) -> None:
            runner.snapshot_served = request  # not retried at every tick; the next period tries again
            log.error("snapshot failed", instance_id=runner.instance_id, error=str(exc))

        self._submit(
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
            future, done, failed, lambda: self.warm.get(copy.instance_id) is copy
        )

    def _final_snapshot(self, runner: Runner) -> None:
        def done(result: Any) -> None:
            runner.last_snapshot, runner.state, runner.error = result.manifest.id, InstanceState.STOPPED, None
            log.info("handed over", instance_id=runner.instance_id, snapshot=result.manifest.id)

        def failed(exc: Exception) -> None:
            runner.error = f"final snapshot failed, retrying: {exc}"
            self._next_snapshot[runner.instance_id] = time.monotonic() + 1.0
            log.error("final snapshot failed", instance_id=runner.instance_id, error=str(exc))

        self._submit(
            runner,
            lambda: self.snapshots.take(runner.workspace, runner.instance_id, runner.epoch),
            done,
            failed,
        )

    def _submit(
        self,
        runner: Runner,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        failed: Callable[[Exception], None],
    ) -> None:
        def current() -> bool:
            return self.runners.get(runner.instance_id) is runner and not self.fence.fenced

        self._jobs[runner.instance_id] = Job(self._workers.submit(work), done, failed, current)

    def _collect_jobs(self) -> None:
        """Apply finished jobs on the loop thread, unless what they were for was replaced meanwhile."""
        for key, job in list(self._jobs.items()):
            if not job.future.done():
                continue
            del self._jobs[key]
            if not job.current():
                self._start_missing()  # a new epoch of it may have waited for this job
                continue
            try:
                result = job.future.result()
            except Exception as exc:  # noqa: BLE001 - any store's error (S3 too): reported, never fatal
                job.failed(exc)
                continue
            job.done(result)

    # fencing ------------------------------------------------------------------------------

    def _fence_if_silent(self) -> None:
        if not self.fence.due():
            return
        silent = time.monotonic() - (self.fence.last_ok or 0.0)
        log.error("no heartbeat accepted; fencing", silent_s=round(silent, 2), instances=len(self.runners))
        stop_all(list(self.runners.values()), min(self.settings.stop_grace, self.fence.grace))
        self.runners.clear()
        self._wanted = {}

    # local state --------------------------------------------------------------------------

    def _local_state(self, instance_id: str) -> dict[str, Any]:
        path = self.state_dir / f"{instance_id}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (FileNotFoundError, ValueError):
            return {}

    def _save_local_state(self, runner: Runner) -> None:
        path = self.state_dir / f"{runner.instance_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epoch": runner.epoch, "port": runner.port}))
        tmp.replace(path)

    def _free_port(self) -> int:
        """A port of NODE_PORT_RANGE nobody listens on, or 0 when all are taken."""
        low, high = self.settings.ports
        used = {r.port for r in self.runners.values()}
        for port in range(low, high + 1):
            if port in used:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError:
                    continue
            return port
        return 0


def _request(item: DesiredInstance) -> str | None:
    at = item.snapshot_requested_at
    return at.isoformat() if at is not None else None
