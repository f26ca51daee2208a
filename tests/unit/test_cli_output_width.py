"""-o wide shows every value whole: as a table where it fits, else one record per block."""

from __future__ import annotations

from rich.console import Console

from takeover.cli.output import wide_view

ROW = {
    "name": "web-frontend-1",
    "id": "6b1c9f3e-aaaa-bbbb-cccc-123456789012",
    "address": "web.apps.example.com",
}


def shown(width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(wide_view("instances", [ROW], list(ROW), width))
    return console.export_text()


def test_a_wide_table_that_fits_is_a_table() -> None:
    text = shown(120)
    assert "┃ name" in text
    assert ROW["id"] in text


def test_one_that_does_not_fit_is_a_block_per_record_with_nothing_cut() -> None:
    text = shown(50)
    assert "…" not in text
    for value in ROW.values():
        assert value in text
    assert "id  " in text
