"""The console's pure parts: chart geometry, pages, ages, names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from takeover.console import charts, views

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_timeline_puts_the_newest_sample_at_the_right_edge_and_drops_older_ones() -> None:
    samples = [(NOW - timedelta(hours=2), 10.0), (NOW - timedelta(minutes=30), 50.0), (NOW, 100.0)]
    line = charts.timeline(samples, NOW, timedelta(hours=1), width=600, height=100)
    assert line.points == "300.0,50.0 600.0,0.0"
    assert (line.count, line.low, line.high) == (2, 50.0, 100.0)


@given(st.lists(st.tuples(st.integers(0, 3600), st.floats(-50, 500)), max_size=50))
def test_every_point_of_a_timeline_stays_inside_its_box(raw: list[tuple[int, float]]) -> None:
    samples = [(NOW - timedelta(seconds=s), v) for s, v in raw]
    line = charts.timeline(samples, NOW, timedelta(hours=1), width=600, height=120)
    for point in line.points.split():
        x, y = map(float, point.split(","))
        assert 0 <= x <= 600
        assert 0 <= y <= 120


def test_bars_are_scaled_to_the_largest_value() -> None:
    small, large = charts.bars([("a", 500.0), ("b", 1000.0)], width=100, height=50, gap=0, slots=2)
    assert (small.height, large.height) == (25.0, 50.0)
    assert (small.x, large.x, large.y) == (0.0, 50.0, 0.0)
    assert charts.bars([]) == []
    [alone] = charts.bars([("a", 1.0)], width=600, gap=0)
    assert alone.width == 30.0, "one bar takes a twentieth of the width"


def test_a_page_number_out_of_range_shows_the_nearest_page() -> None:
    rows = list(range(250))
    assert views.Page.of(rows, 3, 100).rows == list(range(200, 250))
    last = views.Page.of(rows, 9, 100)
    assert (last.number, last.pages, last.total) == (3, 3, 250)
    assert views.Page.of([], 1, 100).pages == 1
    asked: list[int] = []

    def fetch(offset: int, limit: int) -> tuple[list[int], int]:
        asked.append(offset)
        return rows[offset : offset + limit], len(rows)

    read = views.Page.read(fetch, 9, 100)
    assert (read.rows, read.number, read.pages, asked) == (rows[200:], 3, 3, [800, 200])
    assert views.Page.read(fetch, 2, 100).rows == rows[100:200]
    shown = views.Page.of(rows, 2, 100).map(str)
    assert (shown.rows[0], len(shown.rows), shown.number, shown.total) == ("100", 100, 2, 250)


def test_ages_and_names_read_as_a_person_would() -> None:
    assert views.age(NOW - timedelta(seconds=5), NOW) == "5 s ago"
    assert views.age(NOW - timedelta(minutes=3), NOW) == "3 min ago"
    assert views.age(None, NOW) == "never"
    node = uuid4()
    names = views.Names({str(node): "gpu-1"})
    assert names.of(node) == names.of(str(node)) == "gpu-1"
    assert names.of(None) == "-"
    assert views.millis(1530.0) == "1.53 s"
    assert views.millis(12.0) == "12 ms"
    assert views.snapshot_taken("not-a-snapshot") is None
    assert views.status_counts([("r1", "online"), ("r1", "offline"), ("r0", "online")]) == {
        "r0": {"online": 1},
        "r1": {"online": 1, "offline": 1},
    }
