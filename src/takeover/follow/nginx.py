"""nginx: one ``upstream`` per route in a file nginx includes, re-rendered and reloaded on change.

A reload starts new workers with the new file while the old ones finish their requests, so the
old runner keeps only the requests it already had, as with HAProxy's maintenance state.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path

import structlog

from takeover.domain.heartbeat import endpoint
from takeover.domain.routes import Route, wanted_targets

log = structlog.get_logger("takeover.follow")

NOBODY = "127.0.0.1:1 down"  # an upstream needs a server: this one is never sent anything


def render(routes: Iterable[Route], upstream_format: str = "{name}") -> str:
    wanted, _ = wanted_targets(routes, upstream_format)
    blocks = ["# written by `takeover routes follow nginx`: each upstream is its instance's current runner\n"]
    for name, target in sorted(wanted.items()):
        server = NOBODY if target is None else endpoint(*target)
        blocks.append(f"upstream {name} {{\n    server {server};\n}}\n")
    return "\n".join(blocks)


class NginxTarget:
    def __init__(self, output: Path, reload: str, upstream_format: str = "{name}") -> None:
        self._output = output
        self._reload = shlex.split(reload)
        self._format = upstream_format

    def sync(self, routes: Iterable[Route]) -> None:
        text = render(routes, self._format)
        if self._output.exists() and self._output.read_text() == text:
            return
        fresh = self._output.with_name(f".{self._output.name}.tmp")
        fresh.write_text(text)
        os.replace(fresh, self._output)
        done = subprocess.run(self._reload, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise OSError(f"{shlex.join(self._reload)} failed: {done.stderr.strip() or done.stdout.strip()}")
        log.info("nginx reloaded with new routes", file=str(self._output))
