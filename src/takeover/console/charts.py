"""Charts drawn on the server as SVG: nothing to download, readable without JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Line:
    """A polyline in a ``width`` x ``height`` box; ``points`` is SVG's ``points`` attribute."""

    width: int
    height: int
    points: str
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


def timeline(
    samples: Sequence[tuple[datetime, float]],
    now: datetime,
    span: timedelta,
    *,
    width: int = 600,
    height: int = 120,
    top: float = 100.0,
) -> Line:
    """Values from 0 to ``top`` over the last ``span``: newest at the right edge."""
    start = now - span
    points = []
    for at, value in sorted(samples):
        if at < start:
            continue
        x = (at - start) / span * width
        y = height - max(0.0, min(value, top)) / top * height
        points.append(f"{x:.1f},{y:.1f}")
    values = [v for at, v in samples if at >= start]
    return Line(width, height, " ".join(points), min(values, default=0), max(values, default=0), len(values))


def bars(
    values: Sequence[tuple[str, float]],
    *,
    width: int = 600,
    height: int = 120,
    gap: float = 2.0,
    slots: int = 20,
) -> list[Bar]:
    """One bar per value, scaled to the largest, in the order given; at least ``slots`` wide
    each, so that one failover is one bar, not the whole chart."""
    if not values:
        return []
    top = max(v for _, v in values) or 1.0
    step = width / max(len(values), slots)
    return [
        Bar(
            x=i * step,
            y=height - v / top * height,
            width=max(step - gap, 1.0),
            height=v / top * height,
            label=label,
            value=v,
        )
        for i, (label, v) in enumerate(values)
    ]


__all__ = ["Bar", "Line", "bars", "timeline"]
