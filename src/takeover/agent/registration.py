"""Who this node is to the control plane: given credentials, saved ones, or a registration."""

from __future__ import annotations

import json
import os
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
    """NODE_ID/NODE_TOKEN, else saved credentials, else join with TAKEOVER_JOIN_TOKEN (or, if
    allowed, register with an admin token), retrying until the control plane answers or ``stop``
    is set."""
    if s.node_id is not None and s.node_token is not None:
        return Credentials(s.node_id, s.node_token.get_secret_value())
    saved = data_dir / "node.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        return Credentials(UUID(data["node_id"]), data["token"])
    path, secret, body = registration_request(s)
    headers = {"Authorization": f"Bearer {secret}"}
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
    with os.fdopen(os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(json.dumps({"node_id": data["id"], "token": data["api_token"]}))  # 0600 from the start
    log.info("registered", node=data["id"], name=s.node_name, region=data["region"])
    return Credentials(UUID(data["id"]), data["api_token"])


def registration_request(s: AgentSettings) -> tuple[str, str, dict[str, Any]]:
    """Where to register, with which token, saying what: a join token's region is its own (a
    NODE_REGION given must match it); an admin token registers wherever NODE_REGION says."""
    body: dict[str, Any] = {
        "name": s.node_name,
        "region": s.node_region,
        "base_url": f"http://{s.advertise_host}",
        "max_instances": s.node_max_instances,
        **s.runs,
    }
    if s.join_token is not None:
        if "node_region" not in s.model_fields_set:
            body.pop("region")
        return "/api/v1/nodes/join", s.join_token.get_secret_value(), body
    if s.bootstrap_token is not None and s.allow_admin_token:
        return "/api/v1/nodes", s.bootstrap_token.get_secret_value(), body
    if s.bootstrap_token is not None:
        raise AgentError(
            "this node has no credentials, and TAKEOVER_TOKEN is not how a machine joins: run "
            "`takeover nodes join-token --region R` where the admin token is, and start this agent "
            "with the TAKEOVER_JOIN_TOKEN it prints (or set NODE_ALLOW_ADMIN_TOKEN=true to "
            "register with TAKEOVER_TOKEN anyway)"
        )
    raise AgentError(
        "this node has no credentials: set TAKEOVER_JOIN_TOKEN (from `takeover nodes join-token "
        "--region R`), or NODE_ID and NODE_TOKEN (from `takeover nodes register`)"
    )
