"""The workloads' own evidence that they kept serving through a fault, and that nothing moved.

Run as a module, it asks counters from wherever it runs (a test host's network namespace):
``python -m tests.e2e.serving SECONDS ENDPOINT...`` prints each one's answers as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from takeover.localcluster import LocalCluster, wait_until
from tests.e2e.process import threads_running


@dataclass
class Askers:
    """A client per instance asking its counter every 50 ms, at the address it had."""

    endpoints: dict[str, str]
    answered: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    missed: dict[str, list[float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _ask(self, name: str, endpoint: str) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                try:
                    count = client.get(f"http://{endpoint}/", timeout=1).json()["count"]
                    self.answered.setdefault(name, []).append((time.monotonic(), count))
                except (httpx.HTTPError, ValueError, KeyError):
                    self.missed.setdefault(name, []).append(time.monotonic())
                self.stop.wait(0.05)

    @contextmanager
    def asking(self) -> Iterator[Askers]:
        threads = [threading.Thread(target=self._ask, args=item) for item in self.endpoints.items()]
        with threads_running(threads, self.stop):
            yield self

    @classmethod
    @contextmanager
    def inside(cls, wrapper: list[str], endpoints: dict[str, str], seconds: float) -> Iterator[Askers]:
        """Askers running in another process, through ``wrapper`` (``ip netns exec NS``), for
        ``seconds``; what they saw is in the yielded Askers once the block ends."""
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "tests.e2e.serving", str(seconds), *endpoints.values()],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        askers = cls(endpoints)
        try:
            yield askers
            out, _ = process.communicate(timeout=seconds + 30)
        finally:
            process.kill()
            process.wait()
        seen = json.loads(out)
        names = {endpoint: name for name, endpoint in endpoints.items()}
        askers.answered = {names[e]: [tuple(a) for a in v] for e, v in seen["answered"].items()}
        askers.missed = {names[e]: v for e, v in seen["missed"].items()}

    def kept_serving(self, since: float, until: float) -> None:
        for name in self.endpoints:
            missed = [at for at in self.missed.get(name, []) if since <= at <= until]
            assert missed == [], f"{name} did not answer {len(missed)} times during the outage"
            counts = [c for at, c in self.answered[name] if since <= at <= until]
            assert len(counts) > (until - since) * 5, f"{name} answered only {len(counts)} times"
            assert counts == sorted(counts), f"{name}'s count went back: a new copy, or a restart"


def fleet(cluster: LocalCluster, count: int = 2) -> dict[str, dict[str, object]]:
    """Four agents (each has three witnesses, a quorum of two) and ``count`` counters on them."""
    for name in ("a", "b", "c", "d"):
        if name not in cluster.agents:
            cluster.start_agent(name)
    made = {f"web{i}": cluster.create_counter(f"web{i}") for i in range(count)}
    return {
        name: wait_until(lambda: cluster.serving(str(m["id"])), 30, f"{name} to serve")  # noqa: B023
        for name, m in made.items()
    }


def unchanged(cluster: LocalCluster, serving: dict[str, dict[str, object]]) -> None:
    """Nothing failed over, nothing fenced, every instance still at epoch 1 where it was."""
    for name, before in serving.items():
        now = cluster.instance(str(before["id"]))
        assert (now["state"], now["epoch"], now["node_id"]) == ("running", 1, before["node_id"]), name
        assert cluster.failovers(str(before["id"])) == []
    for agent in cluster.agents:
        log = (cluster.root / f"agent-{agent}.log").read_text()
        assert "; fencing" not in log, f"agent {agent} fenced"


def main() -> None:
    seconds, endpoints = float(sys.argv[1]), sys.argv[2:]
    askers = Askers({e: e for e in endpoints})
    with askers.asking():
        time.sleep(seconds)
    print(json.dumps({"answered": askers.answered, "missed": askers.missed}))


if __name__ == "__main__":
    main()
