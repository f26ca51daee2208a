"""The README's tour, run as a new user would: its commands verbatim, in order, in one shell.

Only what a person does between the lines is added: waiting for what a command started
(agents registering, the instance serving, the failover ending) and reading the endpoint and
failover id the tables show (the README's ``<endpoint>`` and ``<failover-id>``). The control
plane is started as ``./dev run`` does, with fast timings, on a free port instead of 8080, and
the tour's /tmp paths live in the test's directory.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from takeover.localcluster import free_port
from tests.e2e.process import serve

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "TAKEOVER_HEARTBEAT_INTERVAL": "1",
    "TAKEOVER_FENCE_AFTER": "3",
    "TAKEOVER_FENCE_MARGIN": "1",
    "TAKEOVER_OFFLINE_AFTER": "5",
    "TAKEOVER_MONITOR_INTERVAL": "1",
}
JSON_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin){})'"
WAIT = r"""
wait_for() {  # what a person does: look again until it is so (up to 60 s)
  for _ in $(seq 120); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.5; done
  echo "gave up waiting for: $1" >&2; return 1
}
"""
# After which tour line to wait for what (a substring of the line -> a shell condition; no
# grep -q, which could end a pipe early and fail it under pipefail).
WAITS = {
    "NODE_NAME=vps-2": "[ \"$($T nodes list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 2 ]",
    "instances create web": '$T instances show web -o json | grep \'"state": "running"\' '
    "&& $T instances logs web | grep 'counter serving'",
    "failover start web": '$T failover list -o json | grep \'"status": "completed"\'',
}


def tour() -> list[str]:
    """The tour's commands, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A tour", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block.replace("\\\n", " ").strip().splitlines()


def test_the_readme_tour_works_verbatim(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "takeover").exists():
        pytest.skip("the tour runs .venv/bin/takeover: run it after ./dev test or ./dev run")
    port = free_port()
    lines = []
    endpoint = "$($T instances show web -o json | " + JSON_FIELD.format('["endpoint"]') + ")"
    failover = "$($T failover list -o json | " + JSON_FIELD.format('[0]["id"][:8]') + ")"
    for command in tour():
        local = command.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{port}")
        local = local.replace("/tmp/", f"{tmp_path}/").replace("<endpoint>", endpoint)
        lines.append(
            f"echo {_quote('+ ' + command.split('#')[0].strip())}; {local.replace('<failover-id>', failover)}"
        )
        lines += [f"wait_for {_quote(cond)}" for key, cond in WAITS.items() if key in command]
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + WAIT + "\n".join(lines)
    (tmp_path / "tour.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKEOVER_", "NODE_"))}
    data = tmp_path / "control-plane"
    data.mkdir()
    with serve(data, TAKEOVER_PORT=str(port), TAKEOVER_ADMIN_TOKEN="change-me-admin-token", **FAST):
        done = subprocess.run(
            ["bash", str(tmp_path / "tour.sh")],
            cwd=ROOT,
            env={**env, "COLUMNS": "80"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    output = done.stdout + done.stderr
    (tmp_path / "tour.out").write_text(output)  # what the user saw, kept for a look
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    assert re.search(r'"count": 1\b', output), "the counter did not answer: " + output[-2000:]
    assert re.search(r"snapshot [0-9]{12}-\S+ stored", output)
    assert re.search(r"counter serving on port \d+ at epoch 1, count 0", output)  # instances logs
    assert re.search(r"user token for alice \(id [0-9a-f-]+\):\ntko_", output)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
