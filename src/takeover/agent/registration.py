"""Who this node is to the control plane: given credentials, saved ones, or a registration."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import structlog

from takeover.agent.link import detail
from takeover.agent.settings import AgentSettings

log = structlog.get_logger("takeover.agent")


class AgentError(Exception):
    """The agent cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Credentials:
    node_id: UUID
    token: str


def register(s: AgentSettings, client: httpx.Client, data_dir: Path, stop: threading.Event) -> Credentials:
    """NODE_ID/NODE_TOKEN, else saved credentials, else register with the bootstrap token (or a
    rented machine's join token), retrying until the control plane answers or ``stop`` is set."""
    if s.node_id is not None and s.node_token is not None:
        return Credentials(s.node_id, s.node_token.get_secret_value())
    saved = data_dir / "node.json"
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
    headers = {"Authorization": f"Bearer {secret.get_secret_value()}"}
    while True:
        try:
            response = client.post(path, json=body, headers=headers, timeout=10)
            break
        except httpx.HTTPError as exc:
            log.warning("control plane unreachable; retrying registration", error=str(exc))
            if stop.wait(1.0):
                raise AgentError("stopped before the node was registered") from exc
    if response.status_code != 201:
        raise AgentError(f"registration refused ({response.status_code}): {detail(response)}")
    data = response.json()
    saved.write_text(json.dumps({"node_id": data["id"], "token": data["api_token"]}))
    saved.chmod(0o600)
    log.info("registered", node=data["id"], name=s.node_name, region=s.node_region)
    return Credentials(UUID(data["id"]), data["api_token"])
