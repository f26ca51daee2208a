"""The agent loop: heartbeat, reconcile toward the reply, supervise, snapshot, fence.

Everything that touches processes runs on the loop's own thread (children die with the thread
that spawned them); snapshots and restores run on worker threads and hand their results back
to the loop, which checks the runner is still the current one before acting on them.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

import httpx
import structlog

from takeover.agent.cpclock import ControlPlaneClock
from takeover.agent.fence import Fence
from takeover.agent.gpus import GpuReader
from takeover.agent.jobs import Jobs, WarmCopy, keep_warm
from takeover.agent.keeper import EPOCH_FILE, claim_volume
from takeover.agent.leftovers import find_leftovers, settle_leftovers
from takeover.agent.link import Link, open_link
from takeover.agent.localstate import LocalState, free_port, make_folders
from takeover.agent.plan import Act, Held, plan
from takeover.agent.registration import AgentError, Credentials, register
from takeover.agent.reports import load, reports
from takeover.agent.runner import RestartPolicy, Runner, stop_all
from takeover.agent.runtime import Leftover
from takeover.agent.runtimes import node_runtimes, node_watchdog
from takeover.agent.settings import AgentSettings
from takeover.agent.witness import Witness
from takeover.api.wire import DesiredInstance, HeartbeatOut
from takeover.domain.models import InstanceState
from takeover.domain.snapshots import empty_start_refusal
from takeover.snapshots import Manifest, Restored, SnapshotRepository
from takeover.snapshots.objects import SnapshotStoreError, open_object_store

log = structlog.get_logger("takeover.agent")
_TICK = 0.1


class Agent:
    def __init__(self, settings: AgentSettings, client: httpx.Client | None = None, nvml: Any = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.workspaces = self.data_dir / "workspaces"
        self.state_dir = self.data_dir / "instances"
        self.local = LocalState(self.state_dir)
        make_folders(self.data_dir)
        try:
            store = open_object_store(settings.snapshot_store)
        except SnapshotStoreError as exc:
            raise AgentError(str(exc)) from exc
        self.cp_clock = ControlPlaneClock()  # stamps snapshots: immune to this node's clock steps
        self.snapshots = SnapshotRepository(store, settings.snapshots_kept, self.cp_clock.now)
        self.client = client or httpx.Client(base_url=settings.takeover_url.rstrip("/"))
        self.policy = RestartPolicy(settings.max_restarts, settings.restart_backoff, settings.ready_after)
        self.runners: dict[str, Runner] = {}
        self.heartbeat_interval = settings.heartbeat_interval
        self.fence = Fence(fence_file := self.data_dir / "fence")
        self.witness = Witness.open(
            settings.listen_host,
            settings.witness_port,
            lambda port: f"{settings.advertise_host}:{settings.outside(port, udp=True)}",
        )
        self.processes, self.containers = node_runtimes(settings, fence_file)
        self.watchdog = node_watchdog(settings)
        self._leftovers: list[Leftover] | None = None  # found at start, settled by the first reply
        self.gpus = GpuReader(nvml)
        self._gpu_count = 0
        self.latency_ms = 0.0
        self.stop_event = threading.Event()
        self.warm: dict[str, WarmCopy] = {}
        self.jobs = Jobs(self.snapshots, self.runners, self.warm, self.fence, settings.snapshot_interval)
        self.sync_interval = 10.0
        self._wanted: dict[str, DesiredInstance] = {}  # the last reply's desired instances
        self.credentials: Credentials | None = None
        self.link: Link | None = None  # once registered

    # the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.credentials = register(self.settings, self.client, self.data_dir, self.stop_event)
        self.link = open_link(self.settings, self.client, self.credentials, self.stop_event)
        log.info("agent started", node=str(self.credentials.node_id), url=self.settings.takeover_url)
        self.witness.start(self.credentials.node_id)
        self._find_leftovers()
        next_beat = 0.0
        reported: set[tuple[str, int, InstanceState, str | None]] = set()
        try:
            while not self.stop_event.is_set():
                self.fence.ticked(self.heartbeat_interval)
                if self.fence.wants_vouch(self.heartbeat_interval):
                    self.witness.tick(self.heartbeat_interval)
                self._fence_if_silent()  # first: after a pause, before anything starts again
                if self.watchdog is not None:
                    self.watchdog.tick(not self.fence.fenced and self.fence.deadline is not None)
                self.jobs.collect(self._start_missing)
                now, live = time.monotonic(), self.fence.live()
                for runner in list(self.runners.values()):
                    runner.supervise(now, live)
                self._start_missing()  # what waited for the fence to settle, if it has
                # News is reported at once, not at the next beat: a new state, or an on-demand
                # snapshot served (someone waits for it), taken or failed.
                states = {(r.instance_id, r.epoch, r.state, r.snapshot_served) for r in self.runners.values()}
                if now >= next_beat or states != reported:
                    reported = states
                    self.heartbeat()  # may change the interval: the control plane's value wins
                    next_beat = now + self.fence.beat_every(self.heartbeat_interval)
                self._fence_if_silent()
                self.jobs.schedule(time.monotonic(), self.sync_interval)
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

    def shutdown(self) -> None:
        """SIGTERM: end the children cleanly; the control plane still lists them here."""
        stop_all(list(self.runners.values()), self.settings.stop_grace)
        self.runners.clear()
        if self.watchdog is not None:
            self.watchdog.disarm()
        self.jobs.shutdown()
        if self.link is not None:
            self.link.close()
        self.witness.close()
        self.client.close()
        log.info("agent stopped")

    def heartbeat(self) -> bool:
        assert self.credentials is not None
        found, shipped = reports(self.runners.values())
        gpus = self.gpus.read()
        self._gpu_count = len(gpus)
        body = {
            **load(),
            "gpus": gpus,
            "avg_latency_ms": round(self.latency_ms, 2),
            "instances": found,
            "fenced": self.fence.holding(),
            **self.settings.runs,
            **self.witness.report(),
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
        self._fence_if_silent()  # a reply that came after the deadline: the keepers have acted
        if reply is None:
            return False
        self.cp_clock.observe(reply.server_time, sent, time.monotonic())
        self.witness.heard(reply)
        rtt = (time.monotonic() - sent) * 1000
        self.latency_ms = rtt if self.fence.last_ok is None else 0.8 * self.latency_ms + 0.2 * rtt
        self.heartbeat_interval = reply.heartbeat_interval
        self.sync_interval = reply.sync_interval
        if self.fence.acknowledged(sent, reply.fence_after, reply.fence_grace, reply.heartbeat_interval):
            log.info("control plane reachable again; no longer fenced")
        for copy in reported_syncs:
            copy.to_report = False
        for runner, end in shipped:
            runner.log_shipped = end
        self._reconcile_to(reply)
        return True

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
        keep_warm(self.warm, {str(s.id): s.epoch for s in standby or []}, wanted, self.data_dir / "standby")
        for instance_id, item in wanted.items():
            if instance_id in self.runners:
                self.runners[instance_id].snapshot_request = _request(item)
        busy = self.jobs.busy()
        actions = plan(
            {i: d.epoch for i, d in wanted.items()},
            release,
            {i: Held(r.epoch, r.released) for i, r in self.runners.items()},
            busy,
        )
        stopping, handovers = [], []
        for action in actions:
            runner = self.runners.get(action.instance_id)
            if action.act is Act.HAND_OVER and runner is not None and runner.on_volume:
                runner.released, runner.state = True, InstanceState.STOPPING
                handovers.append(runner)  # its data is already on the shared volume
            elif action.act is Act.HAND_OVER and runner is not None and action.instance_id not in busy:
                self.jobs.hand_over(runner, lambda r: stop_all([r], self.settings.stop_grace))
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
                runner.resume(self.fence.live())
        stop_all(stopping + handovers, self.settings.stop_grace)
        for runner in handovers:
            log.info("handing over", instance_id=runner.instance_id, epoch=runner.epoch)
            runner.state = InstanceState.STOPPED
        self._wanted = wanted
        self._start_missing()

    def _start_missing(self) -> None:
        """Start what is desired here and not running, once the fence is live."""
        if not self.fence.live():
            return
        busy = self.jobs.busy()
        for instance_id, item in self._wanted.items():
            if instance_id not in self.runners and instance_id not in busy:
                self._prepare(item)

    def _find_leftovers(self) -> None:
        """Containers an earlier life of this agent started: settled by the first reply."""
        assert self.credentials is not None
        installed = shutil.which(self.settings.container_runtime) is not None
        self._leftovers = find_leftovers(self.containers, str(self.credentials.node_id)) if installed else []

    def _settle_leftovers(self, wanted: dict[str, DesiredInstance]) -> None:
        found, self._leftovers = self._leftovers or [], []
        for runner in settle_leftovers(
            found, wanted, self.containers, self.local, self.settings.volume_root, self._runner
        ):
            self.runners[runner.instance_id] = runner
            self.jobs.started(runner)

    def _runner(self, item: DesiredInstance, port: int) -> Runner:
        spec = item.spec.to_spec()
        instance_id = str(item.id)
        workspace = (self.workspaces / (spec.workspace or instance_id)).resolve()
        log_path = self.data_dir / "logs" / f"{item.name}-{instance_id[:8]}.log"
        native = spec.image is not None and self.containers is None and spec.image == self.settings.node_image
        runtime = self.processes if spec.image is None or native else self.containers or self.processes
        runner = Runner(
            instance_id, item.name, item.epoch, spec, workspace, port, log_path, self.policy, runtime
        )
        runner.native = native
        runner.host = self.settings.listen_host
        runner.advertised = self.settings.advertise_host
        runner.advertised_port = self.settings.outside(port)
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
        local = self.local.read(instance_id)
        runner = self._runner(
            item,
            int(
                local.get("port")
                or free_port(
                    self.settings.ports, {r.port for r in self.runners.values()}, self.settings.listen_host
                )
            ),
        )
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
        if runner.native and not runner.spec.command:
            runner.state, runner.error = (
                InstanceState.FAILED,
                f"this node is the image {runner.spec.image} itself and runs its instances as processes, "
                "but the instance names no command (the image's own is not known here)",
            )
            return
        # A container's image first: a node that cannot get it runs nothing.
        if runner.spec.image is not None and not runner.native:
            image, digest = runner.spec.image, runner.spec.image_digest

            def resolved(found: tuple[str, str]) -> None:
                runner.image_ref, runner.image_digest = found
                self._place(runner, item, local)

            self.jobs.submit(
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
        self.jobs.submit(
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
        newer = claim_volume(runner.workspace / EPOCH_FILE, runner.epoch)
        if newer is not None:
            self._fail(runner, f"volume {volume_id} is held by a newer epoch ({newer})")
            return
        log.info("starting on its regional volume", instance_id=runner.instance_id, volume=volume_id)
        self._start(runner)

    def _promote(self, runner: Runner, copy: WarmCopy, item: DesiredInstance) -> None:
        """Warm pool: the standby copy becomes the workspace, catches up with any newer snapshot, starts."""
        shutil.rmtree(runner.workspace, ignore_errors=True)
        copy.path.rename(runner.workspace)
        log.info("promoting the warm copy", instance_id=runner.instance_id, epoch=runner.epoch)
        self.jobs.submit(
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
        self.local.save(runner)
        runner.start()
        self.jobs.started(runner)

    def _fail(self, runner: Runner, error: str) -> None:
        log.error("instance failed", instance_id=runner.instance_id, error=error)
        runner.state, runner.error = InstanceState.FAILED, error

    # fencing ------------------------------------------------------------------------------

    def _fence_if_silent(self) -> None:
        self.fence.vouch(self.witness.vouched_until())  # answers that came while it waited
        if not self.fence.due():
            return
        silent = time.monotonic() - (self.fence.last_ok or 0.0)
        log.error(
            "no acknowledgement, no quorum vouching; fencing",
            silent_s=round(silent, 2),
            instances=len(self.runners),
        )
        stop_all(list(self.runners.values()), min(self.settings.stop_grace, self.fence.grace))
        self.runners.clear()
        self._wanted = {}


def _request(item: DesiredInstance) -> str | None:
    at = item.snapshot_requested_at
    return at.isoformat() if at is not None else None
