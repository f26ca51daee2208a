"""This node as a witness for its peers, and its peers as witnesses for it (domain.witnesses).

One UDP socket: peers' probes are answered with the newest acknowledgement stamp this node holds
and how long it has held it; answers to this node's own probes are kept with the time each probe
was sent, so a late answer (a starved peer, a slow network) counts only from then.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import structlog

from takeover.agent.registration import AgentError
from takeover.api.wire import HeartbeatOut
from takeover.domain.witnesses import PROBES, Answer, vouched_until

log = structlog.get_logger("takeover.agent")

_MAX_DATAGRAM = 2048
_PROBES_KEPT = 256  # unanswered probes remembered: older answers are too late to count


class Witness:
    def __init__(
        self,
        host: str,
        port: int,
        clock: Callable[[], float] = time.monotonic,
        advertise: Callable[[int], str] | None = None,
    ) -> None:
        """Bound to ``host``:``port``; ``advertise`` names the address peers reach for the port
        bound (behind NAT, another host and port)."""
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        bound = self.sock.getsockname()[1]
        self.addr = advertise(bound) if advertise is not None else f"{host}:{bound}"
        self.node_id: UUID | None = None
        self.stamp: datetime | None = None  # the newest acknowledgement stamp held
        self._stamp_at = 0.0  # monotonic, when it came
        self.witnesses: dict[UUID, tuple[str, int]] = {}
        self._asked: dict[int, tuple[UUID, float]] = {}  # nonce: (witness, sent)
        self._answers: dict[UUID, Answer] = {}  # each witness's answer to its latest probe
        self._nonces = itertools.count(1)
        self._next_probe = 0.0
        self.lag: float | None = None  # the control plane's, from its replies
        self.lease: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="witness", daemon=True)

    @classmethod
    def open(cls, host: str, port: int, advertise: Callable[[int], str] | None = None) -> Witness:
        try:
            return cls(host, port, advertise=advertise)
        except OSError as exc:
            raise AgentError(f"NODE_WITNESS_PORT {port} on {host}: {exc.strerror or exc}") from exc

    def start(self, node_id: UUID) -> None:
        self.node_id = node_id
        self._thread.start()

    def hold(self, stamp: datetime | None) -> None:
        """An acknowledgement's stamp (never a push's: a push acknowledges nothing)."""
        if stamp is not None and (self.stamp is None or stamp > self.stamp):
            self.stamp, self._stamp_at = stamp, self.clock()

    def held_for(self) -> float | None:
        return None if self.stamp is None else self.clock() - self._stamp_at

    def use(self, offered: list[tuple[UUID, str]]) -> None:
        """The witnesses the control plane offered (the next heartbeat reports them in use)."""
        parsed: dict[UUID, tuple[str, int]] = {}
        for witness_id, addr in offered:
            host, _, port = addr.rpartition(":")
            if not port.isdigit():
                parsed = {}  # all or none: a part would need a smaller quorum than the leader proves
                break
            parsed[witness_id] = (host.strip("[]"), int(port))
        with self._lock:
            self.witnesses = parsed

    def probe(self) -> None:
        """Ask every witness once; the answers come back to the serving thread."""
        with self._lock:
            targets = list(self.witnesses.items())
        for witness_id, target in targets:
            nonce, sent = next(self._nonces), self.clock()
            with self._lock:
                self._asked[nonce] = (witness_id, sent)
                for old in [n for n in self._asked if n < nonce - _PROBES_KEPT]:
                    del self._asked[old]
            with contextlib.suppress(OSError):  # unreachable now: no answer, as if lost
                self.sock.sendto(orjson.dumps({"probe": nonce}), target)

    def vouched_until(self) -> float | None:
        """Until when a quorum of this node's witnesses vouches for it (monotonic), if one does."""
        if self.lag is None or self.lease is None:
            return None
        with self._lock:
            answers, witnesses = list(self._answers.values()), set(self.witnesses)
        return vouched_until(answers, witnesses, self.stamp, timedelta(seconds=self.lag), self.lease)

    def heard(self, reply: HeartbeatOut) -> None:
        """An acknowledged heartbeat: its stamp, the witnesses offered, the control plane's timings."""
        self.hold(reply.stamp)
        self.use([(w.id, w.addr) for w in reply.witnesses])
        self.lag, self.lease = reply.witness_lag, reply.witness_lease

    def report(self) -> dict[str, Any]:
        """What a heartbeat says about this node's part: the control plane proves fences with it."""
        held_for = self.held_for()
        return {
            "witness_addr": self.addr,
            "stamp_held": self.stamp.isoformat() if self.stamp else None,
            "held_for": round(held_for, 3) if held_for is not None else None,
            "witnesses": [str(w) for w in self.witnesses],
        }

    def tick(self, interval: float) -> None:
        """Probe every witness a few times a heartbeat interval (the agent's fence check, next in
        its loop, takes the vouch)."""
        now, every = self.clock(), interval / PROBES
        if now >= self._next_probe or self._next_probe - now > every:  # the interval shortened
            self._next_probe = now + every
            self.probe()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:  # e.g. a port unreachable reported for an earlier probe: go on
                if self._stop.is_set():
                    return
                continue
            try:
                message = orjson.loads(data)
                if "probe" in message:
                    self._answer(int(message["probe"]), peer)
                elif "answer" in message:
                    self._answered(message)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.debug("witness datagram not understood", peer=str(peer), error=str(exc))

    def _answer(self, nonce: int, peer: tuple[str, int]) -> None:
        stamp = self.stamp
        body = {"answer": nonce, "id": str(self.node_id), "stamp": stamp.isoformat() if stamp else None}
        with contextlib.suppress(OSError):
            self.sock.sendto(orjson.dumps(body), peer)

    def _answered(self, message: dict[str, object]) -> None:
        with self._lock:
            asked = self._asked.pop(int(str(message["answer"])), None)
            if asked is None or str(asked[0]) != message["id"]:
                return  # not a probe of ours, or answered by someone else
            stamp = message["stamp"]
            held = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
            seen = self._answers.get(asked[0])
            if seen is None or asked[1] >= seen.sent:
                self._answers[asked[0]] = Answer(asked[0], asked[1], held)
