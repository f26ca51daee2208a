"""What the FAKE of Vast.ai's API (takeover.testing.fakevast) accepts and how it searches, as
Vast's API reference describes it: an offer's shape, filter operators, GPU names, prices with
disk, the endpoints a rate limit applies to."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from typing import Any


def offer(
    offer_id: int,
    gpu_name: str = "RTX 4090",
    num_gpus: int = 1,
    dph_total: float = 0.5,
    geolocation: str = "Sao Paulo, BR",
    reliability: float = 0.99,
    min_bid: float | None = None,
    storage_cost: float = 0.0,
) -> dict[str, Any]:
    """An offer as POST /api/v0/bundles/ returns it (the fields takeover reads, and a few more);
    ``storage_cost`` is $/GB/month, added to ``dph_total`` for the disk a search asks for."""
    return {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "machine_id": 90000 + offer_id,
        "gpu_name": gpu_name,
        "num_gpus": num_gpus,
        "dph_total": dph_total,
        "dph_base": round(dph_total * 0.9, 6),
        "min_bid": min_bid if min_bid is not None else round(dph_total * 0.4, 6),
        "geolocation": geolocation,
        "reliability2": reliability,
        "rentable": True,
        "rented": False,
        "verified": True,
        "disk_space": 500.0,
        "storage_cost": storage_cost,
        "external": False,  # a datacenter's own offer (Vast's CLI asks for external=false)
        "score": round(100 * reliability / dph_total, 3),
        "cpu_cores_effective": 8,
        "gpu_ram": 24564,
    }


def endpoint_of(method: str, path: str) -> str:
    """The name VAST_INTERVALS gives the endpoint a call is for."""
    if path.startswith("/api/v0/bundles"):
        return "search"
    if path.startswith("/api/v0/asks"):
        return "create"
    if path.startswith("/api/v1/instances"):
        return "list"
    if path.startswith("/api/v0/users"):
        return "user"
    if path.startswith("/api/v0/instances/"):
        return "destroy" if method == "DELETE" else "show"
    return path


_PORT = re.compile(r"^-p ([0-9]{1,5}):([0-9]{1,5})(/(tcp|udp))?$")
MAX_PORTS = 64  # per instance (guides/instances/connect/networking)
MAX_ARGS = 4096  # args, args_str and onstart together (create_instance.yaml, x-input-validation)
MAX_ENV = 256  # one variable


def asked(key: str) -> tuple[int, bool]:
    """A ``-p`` key of env: (the inside port, UDP?); Vast maps it to an outside port it picks."""
    match = _PORT.match(key)
    assert match is not None, key  # invalid() refused it
    return int(match[2]), match[4] == "udp"


def invalid(body: dict[str, Any]) -> str | None:
    """Why Vast would refuse this create body (400 invalid_args), or None."""
    return next(_problems(body), None)


def _problems(body: dict[str, Any]) -> Iterator[str]:
    if not isinstance(body.get("image"), str) or not body["image"]:
        yield "image is required"
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        yield "env must be an object of strings"
        return
    if body.get("onstart") is not None and not isinstance(body["onstart"], str):
        yield "onstart must be a string"  # none at all is fine: the image's own entrypoint runs
    if len(body.get("onstart") or "") + len(body.get("args_str") or "") > MAX_ARGS:
        yield f"onstart and args may be {MAX_ARGS} characters together"
    if len(str(body.get("label") or "")) > 256:
        yield "label may be 256 characters"
    yield from (f"env {k} is longer than {MAX_ENV} characters" for k, v in env.items() if len(v) > MAX_ENV)
    ports = [k for k in env if k.startswith("-p")]
    yield from (f"bad port mapping {k!r} (-p inside:outside[/udp])" for k in ports if not _PORT.match(k))
    if len(ports) > MAX_PORTS - 1:  # 22 is opened for ssh
        yield f"at most {MAX_PORTS} open ports per instance"
    if "disk" in body and not isinstance(body["disk"], int | float):
        yield "disk must be a number"


def sort_value(field_name: str, found: dict[str, Any]) -> float:
    value = found.get(field_name)
    return float(value) if isinstance(value, int | float) else 0.0


def priced(found: dict[str, Any], storage_gb: Any) -> dict[str, Any]:
    """An offer's price with the disk a search asks for (``allocated_storage``), as Vast's are."""
    if not isinstance(storage_gb, int | float) or not found.get("storage_cost"):
        return dict(found)
    storage = found["storage_cost"] * storage_gb / 730  # $/GB/month for the GB asked, per hour
    return {**found, "dph_total": round(found["dph_total"] + storage, 6), "storage_total_cost": storage}


def matches(candidate: dict[str, Any], query: dict[str, Any]) -> bool:
    """Vast's search operators (eq, neq, lt, lte, gt, gte, in, notin) on an offer's fields;
    geolocation compares its two-letter country code, and gpu_name takes underscores for
    spaces (RTX_4090), as Vast's do."""
    for name, condition in query.items():
        if not isinstance(condition, dict):
            continue  # type, order, limit
        value = candidate.get(name)
        if name == "geolocation" and isinstance(value, str):
            value = value.rpartition(",")[2].strip()
        for op, wanted in condition.items():
            if not _holds(op, value, _spaced(wanted) if name == "gpu_name" else wanted):
                return False
    return True


def _spaced(wanted: Any) -> Any:
    if isinstance(wanted, list):
        return [_spaced(w) for w in wanted]
    return wanted.replace("_", " ") if isinstance(wanted, str) else wanted


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "lt": lambda value, wanted: value is not None and value < wanted,
    "lte": lambda value, wanted: value is not None and value <= wanted,
    "gt": lambda value, wanted: value is not None and value > wanted,
    "gte": lambda value, wanted: value is not None and value >= wanted,
    "in": lambda value, wanted: value in wanted,
    "notin": lambda value, wanted: value not in wanted,
}


def _holds(op: str, value: Any, wanted: Any) -> bool:
    check = _OPERATORS.get(op)
    return check is None or bool(check(value, wanted))
