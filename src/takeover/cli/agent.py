"""`takeover agent`: the node agent, configured by the document's NODE_* variables."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from rich.console import Console

err = Console(stderr=True)


def agent() -> None:
    """Run the node agent: heartbeats, runs and snapshots its instances, fences itself when cut off.

    Environment: TAKEOVER_URL, TAKEOVER_JOIN_TOKEN (from `takeover nodes join-token`) or
    NODE_ID + NODE_TOKEN, NODE_NAME, NODE_REGION, NODE_MAX_INSTANCES, NODE_HOST, NODE_PORT_RANGE,
    TAKEOVER_AGENT_DIR, TAKEOVER_SNAPSHOT_STORE (shared by all nodes), SNAPSHOT_INTERVAL.
    """
    from takeover.secretenv import hide_secrets

    hide_secrets([sys.executable, "-m", "takeover", "agent"])

    from takeover.agent.agent import Agent
    from takeover.agent.registration import AgentError
    from takeover.agent.settings import load_agent_settings
    from takeover.logsetup import configure_logging

    settings = load_agent_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        runtime = Agent(settings)
    except AgentError as exc:
        err.print(f"[red]agent:[/] {exc}", soft_wrap=True)
        raise SystemExit(2) from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        runtime.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        runtime.run()
    except AgentError as exc:
        err.print(f"[red]agent:[/] {exc}", soft_wrap=True)
        raise SystemExit(2) from None
