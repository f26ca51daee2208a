"""Shared decision: the control plane keeps each group's region, so an application's processes agree.

A process that fails a group over (or back) publishes the move with the epoch it last saw;
if another process moved the group first, it gets a 409 and adopts the region already chosen.
Every process also fetches the decision once per health check interval and follows it. If the
control plane is unreachable, each process goes on deciding alone (availability first) and
says so in the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog

log = structlog.get_logger("takeover.regions.shared")


@dataclass(frozen=True, slots=True)
class Decision:
    region: str
    epoch: int
    by: str
    reason: str


class SharedDecision:
    def __init__(
        self, url: str, token: str, client: httpx.Client | None = None, timeout: float = 2.0
    ) -> None:
        self.client = client or httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def fetch(self, group: str) -> Decision | None:
        try:
            response = self.client.get(f"/api/v1/region-groups/{group}")
        except httpx.HTTPError as exc:
            log.warning("shared decision unreachable", group=group, error=str(exc))
            return None
        if response.status_code != 200:
            return None
        return _decision(response.json())

    def publish(self, group: str, region: str, expected_epoch: int, reason: str) -> Decision | None:
        """The decision now in force: ours, or the one someone published first (409)."""
        body = {"current_region": region, "expected_epoch": expected_epoch, "reason": reason[:2000]}
        try:
            response = self.client.put(f"/api/v1/region-groups/{group}", json=body)
        except httpx.HTTPError as exc:
            log.warning("shared decision unreachable; deciding alone", group=group, error=str(exc))
            return None
        if response.status_code == 409:
            return self.fetch(group)
        if response.status_code != 200:
            log.warning(
                "shared decision refused", group=group, status=response.status_code, detail=response.text
            )
            return None
        return _decision(response.json())

    def close(self) -> None:
        self.client.close()


def _decision(data: dict[str, object]) -> Decision:
    return Decision(
        str(data["current_region"]), int(str(data["epoch"])), str(data["updated_by"]), str(data["reason"])
    )
