"""The fake marketplace answers Vast.ai's own CLI (the PyPI `vastai`, installed by ./dev test in
a venv of its own) as Vast does: a client nobody here wrote searches, rents with and without an
onstart, with port mappings and a bid, shows and destroys instances."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from takeover.testing.fakevast import API_KEY, FakeVast, offer

VASTAI = Path(__file__).resolve().parents[2] / ".venv" / "vastai" / "bin" / "vastai"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    book = [offer(n, "RTX 4090", 1, 0.2 + n / 10, "Sao Paulo, BR") for n in range(1, 5)]
    with FakeVast(tmp_path / "vast", book, pace=0) as running:
        running.never_boot = {1, 2, 3, 4}  # nothing to run here: the CLI only talks to the API
        yield running


def vastai(fake: FakeVast, home: Path, *args: str) -> Any:
    assert VASTAI.exists(), f"{VASTAI} is missing: ./dev test installs Vast's CLI there"
    done = subprocess.run(
        [str(VASTAI), "--url", fake.url, "--api-key", API_KEY, *args, "--raw"],
        env={**os.environ, "HOME": str(home)},  # its config and cache stay in the test
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None  # destroy says nothing


def test_vast_s_own_cli_searches_rents_shows_and_destroys_on_the_fake(fake: FakeVast, tmp_path: Path) -> None:
    offers = vastai(fake, tmp_path, "search", "offers")
    assert sorted(o["id"] for o in offers) == [1, 2, 3, 4]
    plain = vastai(fake, tmp_path, "create", "instance", "1", "--image", "busybox")
    assert plain["success"] is True
    mapped = vastai(
        fake,
        tmp_path,
        "create",
        "instance",
        "2",
        "--image",
        "python:3.11-slim",
        "--onstart-cmd",
        "echo started",
        "--env",
        "-p 20000:20000 -e ROLE=agent",
        "--bid_price",
        "0.1",
    )
    assert mapped["success"] is True
    listed = vastai(fake, tmp_path, "show", "instances")
    assert sorted(i["id"] for i in listed) == sorted([plain["new_contract"], mapped["new_contract"]])
    shown = vastai(fake, tmp_path, "show", "instance", str(mapped["new_contract"]))
    assert shown["id"] == mapped["new_contract"]
    assert shown["extra_env"]["ROLE"] == "agent"
    assert shown["image_uuid"] == "python:3.11-slim"
    outside = int(shown["ports"]["20000/tcp"][0]["HostPort"])  # mapped to a port of Vast's choice
    assert outside != 20000
    assert fake.machines[mapped["new_contract"]].env.get("ROLE") == "agent"
    vastai(fake, tmp_path, "destroy", "instance", str(plain["new_contract"]), "-y")
    assert [i["id"] for i in vastai(fake, tmp_path, "show", "instances")] == [mapped["new_contract"]]
