"""A FAKE of Vast.ai's REST API, for tests and benchmarks: it rents nothing and costs nothing.

A paid marketplace cannot run here, so this serves the endpoints ``takeover.providers.vast``
calls, with the request and response shapes Vast documents (docs/providers.md lists them),
on a loopback port. What happens after the API call is real: renting an offer starts the
request's ``onstart`` script with its ``env``, plus what Vast tells a container (its public
address, and the outside port of each ``-p`` port it asked for, relayed by takeover.testing.nat
to the machine's own loopback address). With ``boot`` (testing.machines.Podman), the
machine is a container of the rented image (as on Vast, the onstart runs inside it); without,
the onstart runs as a process of this host. Destroying the instance kills either.

Knobs for the unhappy paths: ``refuse`` (the next rents answer 400), ``throttle`` (the next
calls answer 429), ``gone`` (offers taken by someone else between search and rent),
``never_boot`` (offers whose machine never runs its onstart), ``hold``
(a rent that made its machine and has not answered yet, to kill a control plane then), and
``delays`` (seconds each call takes, the marketplace's own latency). The v0 listing answers
410, as Vast does for accounts made after June 2026 (``legacy_listing`` turns it back on).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from takeover.localcluster import free_port, wait_until
from takeover.providers.vast import paced
from takeover.testing.machines import Podman, start, stop
from takeover.testing.nat import PUBLIC, Nat, inside_address
from takeover.testing.vastapi import asked, endpoint_of, invalid, matches, offer, priced, sort_value

API_KEY = "fake-vast-key"


@dataclass
class Delays:
    search: float = 0.0
    rent: float = 0.0
    boot: float = 0.0  # from the rent's answer to the onstart script starting
    show: float = 0.0


@dataclass
class FakeMachine:
    id: int
    offer: dict[str, Any]
    label: str | None
    image: str
    env: dict[str, str]
    onstart: str
    disk: float
    nat: Nat
    created: float = field(default_factory=time.monotonic)
    status: str = "loading"
    process: subprocess.Popen[bytes] | None = None
    destroyed: bool = False

    @property
    def ssh_port(self) -> int | None:
        return self.nat.tcp.get(22)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actual_status": self.status,
            "intended_status": "running",
            "label": self.label,
            "image_uuid": self.image,
            "onstart": self.onstart,
            "ssh_host": PUBLIC,
            "ssh_port": self.ssh_port,
            "public_ipaddr": PUBLIC,
            "machine_id": self.offer["machine_id"],
            "gpu_name": self.offer["gpu_name"],
            "num_gpus": self.offer["num_gpus"],
            "dph_total": self.offer["dph_total"],
            "geolocation": self.offer["geolocation"],
            "disk_space": self.disk,
            "start_date": time.time(),
            "cur_state": "running" if self.status == "running" else "stopped",
            "next_state": "stopped" if self.destroyed else "running",
            "status_msg": f"{self.status}: {self.image}",
            "extra_env": [[k, v] for k, v in self.env.items()],  # pairs, as Vast lists them
            "ports": self.nat.docker_ports(),
        }


class FakeVast:
    """The fake marketplace. ``machine_env``: what every machine's environment holds besides the
    request's env (PATH to this Python's ``takeover``, and whatever a test's hosts share)."""

    def __init__(
        self,
        root: Path,
        offers: list[dict[str, Any]] | None = None,
        machine_env: dict[str, str] | None = None,
        delays: Delays | None = None,
        pace: float = 0.05,
        boot: Podman | None = None,
    ) -> None:
        """``pace``: Vast's minimum interval per endpoint (VAST_INTERVALS), scaled: a call sooner
        than that after the last one of its endpoint is refused with 429, as Vast does.
        ``boot``: boot each machine as a container of its image; None: a process of this host."""
        self.boot = boot
        self.root = root
        self.pace = pace
        self._last_call: dict[str, float] = {}
        self.offers: list[dict[str, Any]] = list(offers or [])
        self.machine_env = machine_env or {}
        self.delays = delays or Delays()
        self.machines: dict[int, FakeMachine] = {}
        self.calls: list[tuple[str, str]] = []
        self.refuse = 0
        self.throttle = 0
        self.never_boot: set[int] = set()
        self.gone: set[int] = set()  # offers still in the book whose rent finds them taken
        self.hold: threading.Event | None = None  # set: a held rent answers
        self.legacy_listing = False  # GET /api/v0/instances/ answers 410, as for new accounts
        self.refused_too_soon = 0  # calls refused for coming sooner than their endpoint's interval
        self.rent_received = threading.Event()
        self._next_id = 7000
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeVast:
        self._thread.start()
        wait_until(lambda: self._server.started, 10, "the fake marketplace")
        return self

    def close(self) -> None:
        for machine in list(self.machines.values()):
            self._destroy(machine)
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeVast:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_env(self, region: str, agent_env: dict[str, str], **settings: str) -> dict[str, str]:
        """What a `takeover serve` needs to rent from this fake: its offers in Brazil (where
        ``offer`` puts them) are ``region``'s; ``agent_env`` is every rented agent's (the pool's
        snapshot store, say); ``settings`` override the rest (a budget of $5/h)."""
        return {
            "TAKEOVER_PROVIDER": "vast",
            "VAST_API_KEY": API_KEY,
            "TAKEOVER_VAST_URL": self.url,
            "TAKEOVER_VAST_REGIONS": f"{region}=BR",
            "TAKEOVER_RENT_MAX_HOURLY": "5",
            "TAKEOVER_RENT_ENV": json.dumps(agent_env),
            "TAKEOVER_RENT_PACE": str(self.pace),  # the control plane spaces its calls as this fake wants
            **settings,
        }

    def live(self) -> list[FakeMachine]:
        return [m for m in self.machines.values() if not m.destroyed]

    # the API ------------------------------------------------------------------------------
    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def authorize(request: Request, call_next: Any) -> Any:
            self.calls.append((request.method, request.url.path))
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                if request.method == "DELETE":  # Vast: an instance another key cannot see is not found
                    return JSONResponse({"success": False, "error": "no_such_instance"}, 404)
                return JSONResponse({"success": False, "error": "auth_error", "msg": "bad api key"}, 401)
            with self._lock:
                throttled = self.throttle > 0
                self.throttle -= 1 if throttled else 0
                too_soon = self._too_soon(request.method, request.url.path)
            if throttled:
                return JSONResponse({"success": False, "error": "rate_limited", "msg": "slow down"}, 429)
            if too_soon:  # plain text and no Retry-After, as Vast answers
                return PlainTextResponse("API requests too frequent", 429)
            return await call_next(request)

        @app.post("/api/v0/bundles/")
        def search(query: dict[str, Any]) -> JSONResponse:
            time.sleep(self.delays.search)
            kind = query.get("type", "ondemand")
            if kind not in ("ondemand", "on-demand", "bid", "reserved"):  # Vast's CLI sends on-demand
                return JSONResponse(
                    {"success": False, "error": "invalid_args", "msg": f"invalid type {kind!r}"}, 400
                )
            # Vast drops `rented` (each offer says it; its CLI filters after the answer).
            wanted = {k: v for k, v in query.items() if k != "rented"}
            with self._lock:
                found = [priced(o, query.get("allocated_storage")) for o in self.offers if matches(o, wanted)]
            order = query.get("order") or [["min_bid" if kind == "bid" else "dph_total", "asc"]]
            for field_name, direction in reversed(order):  # the first key sorts last: it wins
                found.sort(key=partial(sort_value, field_name), reverse=direction == "desc")
            limit = int(query.get("limit") or 64)
            return JSONResponse({"offers": found[:limit], "truncated": len(found) > limit})

        @app.put("/api/v0/asks/{ask_id}/")
        def create(ask_id: int, body: dict[str, Any]) -> JSONResponse:
            return self._create(ask_id, body)

        @app.get("/api/v0/users/current/")
        def current_user() -> dict[str, Any]:
            return {"id": 4242, "username": "fake", "email": "fake@example.invalid", "credit": 100.0}

        @app.get("/api/v0/instances/")
        def legacy_listing() -> JSONResponse:
            if not self.legacy_listing:  # as for accounts made after June 2026
                return JSONResponse(
                    {"success": False, "error": "deprecated", "msg": "use GET /api/v1/instances/"}, 410
                )
            return JSONResponse({"instances": [m.as_json() for m in self.live()]})

        @app.get("/api/v1/instances/")
        def listing(limit: int = 0, after_token: str | None = None) -> JSONResponse:
            return self._page(limit, after_token)

        @app.get("/api/v0/instances/{machine_id}/")
        def show(machine_id: int) -> JSONResponse:
            time.sleep(self.delays.show)
            machine = self.machines.get(machine_id)
            if machine is None or machine.destroyed:
                return JSONResponse({"success": False, "error": "no_such_instance"}, 404)
            return JSONResponse({"instances": machine.as_json()})

        @app.delete("/api/v0/instances/{machine_id}/")
        def destroy(machine_id: int) -> JSONResponse:
            machine = self.machines.get(machine_id)
            if machine is None or machine.destroyed:
                return JSONResponse({"success": False, "error": "no_such_instance"}, 404)
            self._destroy(machine)
            return JSONResponse({"success": True})

        return app

    def _too_soon(self, method: str, path: str) -> bool:
        """Under the lock: whether this call comes sooner than its endpoint's interval allows."""
        endpoint = endpoint_of(method, path)
        interval = paced(self.pace).get(endpoint, 0.0)
        now = time.monotonic()
        if now - self._last_call.get(endpoint, float("-inf")) < interval * 0.9:  # 10 %: clock jitter
            self.refused_too_soon += 1
            return True
        self._last_call[endpoint] = now
        return False

    def _page(self, limit: int, after_token: str | None) -> JSONResponse:
        """Keyset pagination by id, as the v1 listing documents it: at most 25 a page (5 when
        ``limit`` is not above 0), ``next_token`` null on the last page, 400 for a bad cursor."""
        size = 5 if limit <= 0 else min(limit, 25)
        after = -1
        if after_token is not None:
            try:
                after = int(json.loads(base64.b64decode(after_token, validate=True))["values"]["id"])
            except (ValueError, KeyError, TypeError):
                return JSONResponse(
                    {"success": False, "error": "invalid_args", "msg": "invalid after_token"}, 400
                )
        live = sorted(self.live(), key=lambda m: m.id)
        page = [m for m in live if m.id > after][:size]
        more = bool(page) and any(m.id > page[-1].id for m in live)
        token = (
            base64.b64encode(json.dumps({"values": {"id": page[-1].id}}).encode()).decode() if more else None
        )
        labels: dict[str, int] = {}
        for machine in live:
            labels[machine.label or ""] = labels.get(machine.label or "", 0) + 1
        return JSONResponse(
            {
                "success": True,
                "instances_found": len(page),
                "total_instances": len(live),
                "label_counts": labels,
                "next_token": token,
                "instances": [m.as_json() for m in page],
            }
        )

    def _create(self, ask_id: int, body: dict[str, Any]) -> JSONResponse:
        """Rent an offer: it leaves the book, and the machine boots (unless told not to)."""
        problem = invalid(body)
        if problem is not None:
            return JSONResponse({"success": False, "error": "invalid_args", "msg": problem}, 400)
        with self._lock:
            chosen = next((o for o in self.offers if o["ask_contract_id"] == ask_id), None)
            if chosen is None or ask_id in self.gone:
                return JSONResponse(
                    {"success": False, "error": "no_such_ask", "msg": f"ask {ask_id} is not available"},
                    404,
                )
            if self.refuse > 0:
                self.refuse -= 1
                return JSONResponse(
                    {"success": False, "error": "invalid_args", "msg": "the host declined the contract"},
                    400,
                )
            self.offers.remove(chosen)  # rented: it leaves the book
            machine = self._machine(chosen, body)
        self.rent_received.set()
        if self.hold is not None:
            self.hold.wait()
        time.sleep(self.delays.rent)
        if ask_id not in self.never_boot:
            threading.Thread(target=self._boot, args=(machine,), daemon=True).start()
        return JSONResponse({"success": True, "new_contract": machine.id})

    # machines -----------------------------------------------------------------------------
    def _machine(self, chosen: dict[str, Any], body: dict[str, Any]) -> FakeMachine:
        """The machine a rent makes: its inside ports (22 for ssh, and each ``-p``) mapped."""
        self._next_id += 1
        env = body.get("env") or {}
        nat = Nat(inside_address(self._next_id))
        for port, udp in [(22, False), *(asked(key) for key in env if key.startswith("-p "))]:
            nat.open(port, udp)
        machine = FakeMachine(
            id=self._next_id,
            offer=chosen,
            label=body.get("label"),
            image=body["image"],
            env={k: str(v) for k, v in env.items() if not k.startswith("-")},
            onstart=body.get("onstart") or "",
            disk=float(body.get("disk") or 8),
            nat=nat,
        )
        self.machines[machine.id] = machine
        return machine

    def _boot(self, machine: FakeMachine) -> None:
        time.sleep(self.delays.boot)
        env = {
            **self.machine_env,
            **machine.env,
            **machine.nat.env(),
            # Its own interface: on Vast the container's own network, here a loopback address
            # of its own, as machines share this host's network (0.0.0.0 would be everyone's).
            "NODE_INSTANCE_HOST": machine.nat.inside,
        }
        with self._lock:
            if machine.destroyed:
                return
            machine.process = start(
                self._name(machine),
                machine.image,
                machine.onstart,
                env,
                self.root / f"machine-{machine.id}",
                self.boot,
            )
            machine.status = "running"

    def _name(self, machine: FakeMachine) -> str:
        return f"fakevast-{self.port}-{machine.id}"

    def _destroy(self, machine: FakeMachine) -> None:
        with self._lock:
            machine.destroyed = True
            machine.status = "exited"
            process = machine.process
        if process is not None:
            stop(self._name(machine), process, self.boot, kill=False)
        machine.nat.close()

    def kill(self, machine: FakeMachine) -> None:
        """The machine dies (power, host failure): SIGKILL, and Vast shows it offline."""
        with self._lock:
            machine.status = "offline"
            process = machine.process
        if process is not None:
            stop(self._name(machine), process, self.boot, kill=True)


__all__ = ["API_KEY", "Delays", "FakeMachine", "FakeVast", "offer"]
