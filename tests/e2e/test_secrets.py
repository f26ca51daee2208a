"""No credential reaches a workload, whichever way its agent got its own: seen by the workload.

Each instance belongs to the README's user alice and runs a probe before the counter: it prints
the names in its environment and every token-shaped string it can read in any process's
environment or command line on the machine (the tests run as root, so a workload running as the
agent's user reads them all). alice reads that output with her own token, as in the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, wait_until
from takeover.testing.fakevast import FakeVast, offer
from tests.e2e.test_rentals import renting

pytestmark = pytest.mark.e2e

# The patterns are written so that they do not match their own text in a command line.
PROBE = r"""
echo "probe env: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
grep -a -o -h -E 'tk[oj]_[A-Za-z0-9_-]{20,}|local-admin-toke[n]|fake-vast-ke[y]' \
    /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | sed 's/^/probe found: /'
echo "probe done"
exec "$PY" -m takeover.examples.counter
"""
INSTANCE_VARIABLES = {"PORT", "HOST", "TAKEOVER_INSTANCE_ID", "TAKEOVER_EPOCH", "TAKEOVER_WORKSPACE"}
NODE_VARIABLES = {"PATH", "LANG", "LANGUAGE", "LC_ALL", "TZ", "HOME", "USER", "LOGNAME"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, extra_env={"TAKEOVER_LOG_LEVEL": "debug"}) as c:
        c.start_control_plane()
        yield c


def no_token_logged(cluster: LocalCluster) -> None:
    """The control plane's and the agents' logs (at debug level) name no token."""
    for log in cluster.root.glob("*.log"):
        text = log.read_text()
        assert ADMIN_TOKEN not in text, log
        assert not re.search(r"tk[oj]_[A-Za-z0-9_-]{20,}", text), log


def user(cluster: LocalCluster, name: str) -> httpx.Client:
    made = cluster.api.post("/api/v1/tokens", json={"role": "user", "subject": name})
    made.raise_for_status()
    token = made.json()["token"]
    return httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def probe(alice: httpx.Client, name: str, **extra: Any) -> str:
    spec = {"command": ["sh", "-c", PROBE], "env": {"PY": sys.executable, "GREETING": "hello"}}
    made = alice.post("/api/v1/instances", json={"name": name, "spec": spec, **extra})
    made.raise_for_status()
    instance_id: str = made.json()["id"]
    return instance_id


def probed(alice: httpx.Client, instance_id: str, epoch: int = 1) -> str:
    """The probe's output from its run at ``epoch``, as alice reads the logs."""

    def done() -> str | None:
        chunks = alice.get(f"/api/v1/instances/{instance_id}/logs", params={"limit": 1000}).json()["chunks"]
        text = "".join(c["text"] for c in chunks if c["epoch"] == epoch)
        return text if "probe done" in text else None

    found: str = wait_until(done, 60, f"the probe's output at epoch {epoch}")
    return found


def clean(output: str) -> set[str]:
    """Nothing token-shaped anywhere; the environment's names: the spec's, the instance's, the node's."""
    assert "probe found:" not in output, output
    names = set(re.search(r"probe env: (.*)", output)[1].split())  # type: ignore[index]
    assert {"PY", "GREETING", *INSTANCE_VARIABLES} <= names
    extra = names - {"PY", "GREETING", *INSTANCE_VARIABLES, *NODE_VARIABLES}
    assert extra <= {"PWD", "SHLVL", "_", "OLDPWD"}, extra  # what sh itself sets
    return names


def test_no_token_reaches_a_process_whichever_way_its_agent_registered(cluster: LocalCluster) -> None:
    alice = user(cluster, "alice")
    registered = cluster.api.post(
        "/api/v1/nodes", json={"name": "by-node-token", "region": "r-node", "base_url": "http://127.0.0.1"}
    ).json()
    ways = {
        # The README's old way (now only with the explicit setting), and a shell that exported the
        # admin token for the CLI before it started the agent.
        "by-admin": {"TAKEOVER_TOKEN": ADMIN_TOKEN, "NODE_ALLOW_ADMIN_TOKEN": "true"},
        "by-node-token": {"NODE_ID": registered["id"], "NODE_TOKEN": registered["api_token"]},
        "by-join-token": {
            "TAKEOVER_JOIN_TOKEN": cluster.join_token("r-join"),
            "TAKEOVER_TOKEN": ADMIN_TOKEN,
        },
    }
    regions = {"by-admin": "r-admin", "by-node-token": "r-node", "by-join-token": "r-join"}
    for name, env in ways.items():
        cluster.start_agent(name, region=regions[name], **env)
        instance_id = probe(alice, f"on-{name}", preferred_region=regions[name])
        placed = wait_until(lambda: cluster.serving(instance_id), 30, f"on-{name} to serve")  # noqa: B023
        assert cluster.node_name(placed["node_id"]) == name
        clean(probed(alice, instance_id))
    assert cluster.api.get("/api/v1/tokens").status_code == 200  # the admin token still works
    assert alice.get("/api/v1/tokens").status_code == 403
    no_token_logged(cluster)


def test_no_token_reaches_a_process_on_a_rented_machine(tmp_path: Path) -> None:
    with FakeVast(tmp_path / "vast", [offer(1)]) as fake, LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(env=renting(fake, cluster))
        cluster.start_agent("only")
        alice = user(cluster, "alice")
        instance_id = probe(alice, "web", rent={"max_price": 1.0})
        wait_until(lambda: cluster.serving(instance_id), 30, "web to serve")
        cluster.snapshot_after(instance_id, time.time())
        cluster.kill_agent("only")
        (failover,) = cluster.ended_failovers(instance_id, timeout=90)
        assert failover["status"] == "completed", failover
        (machine,) = fake.live()
        assert cluster.node_name(failover["target_node_id"]) == machine.env["NODE_NAME"]
        assert machine.env["TAKEOVER_JOIN_TOKEN"]  # what the rented machine was given
        epoch = wait_until(lambda: cluster.serving(instance_id, 2), 30, "web on the machine")["epoch"]
        clean(probed(alice, instance_id, epoch))


def test_a_process_run_as_another_user_reads_nothing_of_its_agent() -> None:
    """NODE_RUN_AS: the workload owns its workspace, and cannot read the agent's credentials
    file, its environment or its logs."""
    root = Path(tempfile.mkdtemp(prefix="takeover-run-as-"))  # pytest's own is closed to others
    root.chmod(0o711)
    try:
        with LocalCluster(root) as cluster:
            cluster.start_control_plane()
            run_as_nobody(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_as_nobody(cluster: LocalCluster) -> None:
    agent = cluster.start_agent("a", NODE_RUN_AS="nobody")
    script = (
        "id -un; touch mine && ls -n mine; "
        'cat "$AGENT/node.json" && echo READ-CREDENTIALS; '
        "cat /proc/$PPID/environ >/dev/null && echo READ-AGENT-ENVIRON; "
        'ls "$AGENT/logs" && echo READ-LOGS; '
        'echo probe done; exec busybox httpd -f -p "127.0.0.1:$PORT" -h .'
    )
    spec = {"command": ["sh", "-c", script], "env": {"AGENT": str(agent.data_dir)}}
    made = cluster.api.post("/api/v1/instances", json={"name": "guest", "spec": spec}).json()
    wait_until(lambda: cluster.instance(made["id"])["state"] == "running", 30, "guest to run")
    output = probed(cluster.api, made["id"])
    assert output.splitlines()[0] == "nobody", output
    assert " 65534 " in output  # the file it made in its workspace is its own
    assert "Permission denied" in output
    for read in ("READ-CREDENTIALS", "READ-AGENT-ENVIRON", "READ-LOGS"):
        assert read not in output, output


def run(
    cluster: LocalCluster, *args: str, token: str = ADMIN_TOKEN, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "TAKEOVER_URL": cluster.url,
        "TAKEOVER_TOKEN": token,
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        [*TAKEOVER, *args], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def agent_alone(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`takeover agent` run until it gives up (these all do, at start)."""
    environment = {**os.environ, "TAKEOVER_AGENT_DIR": str(data_dir), **env}
    return subprocess.run(
        [*TAKEOVER, "agent"], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_printed_join_command_joins_a_machine_and_the_token_is_listed_and_revoked(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    printed = run(cluster, "nodes", "join-token", "--region", "eu", "--uses", "2", "--ttl", "2h")
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.strip()
    assert re.fullmatch(
        rf"TAKEOVER_URL={re.escape(cluster.url)} TAKEOVER_JOIN_TOKEN=tkj_\S+ takeover agent", command
    )
    assert "2 node(s) of region eu" in printed.stdout + printed.stderr
    # The printed line, run as a new machine would (with its own name and directories).
    variables = dict(pair.split("=", 1) for pair in command.split()[:2])
    cluster.start_agent(
        "fresh",
        region="eu",
        url=variables["TAKEOVER_URL"],
        TAKEOVER_JOIN_TOKEN=variables["TAKEOVER_JOIN_TOKEN"],
    )
    assert (cluster.node("fresh") or {}).get("region") == "eu"
    saved = cluster.agents["fresh"].data_dir / "node.json"
    wait_until(saved.exists, 10, "its credentials saved")  # written as the registration is answered
    assert saved.stat().st_mode & 0o777 == 0o600
    listed = json.loads(run(cluster, "nodes", "join-token", "list", "-o", "json").stdout)
    (ticket,) = listed
    assert (ticket["uses"], ticket["max_uses"], ticket["live"]) == (1, 2, True)
    assert "token" not in ticket
    revoked = run(cluster, "nodes", "join-token", "revoke", ticket["id"][:8])
    assert revoked.returncode == 0, revoked.stderr
    assert run(cluster, "nodes", "join-token", "list", "-o", "json").stdout.strip() == "[]"
    refused = agent_alone(tmp_path / "late", **variables, NODE_NAME="late")
    assert refused.returncode == 2
    assert "registration refused (401): this join token was revoked" in refused.stderr
    only = run(cluster, "nodes", "join-token", "--region", "eu", "-q")
    assert re.fullmatch(r"tkj_\S+\n", only.stdout)


def test_joining_without_a_join_token_and_bad_token_commands_say_what_to_do(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    admin_only = agent_alone(tmp_path / "agent", TAKEOVER_URL=cluster.url, TAKEOVER_TOKEN=ADMIN_TOKEN)
    assert admin_only.returncode == 2
    assert "takeover nodes join-token --region R" in admin_only.stderr
    assert ADMIN_TOKEN not in admin_only.stderr + admin_only.stdout
    for args, said in (
        (("nodes", "join-token"), "--region"),
        (("nodes", "join-token", "--region", "eu", "--ttl", "soon"), "not a duration"),
        (("nodes", "join-token", "--region", "eu", "--uses", "0"), "max_uses"),
        (("token", "create", "--role", "user"), "--subject"),
        (("token", "create", "--role", "user", "--subject", "admin"), "reserved for admins"),
    ):
        done = run(cluster, *args)
        assert done.returncode != 0, args
        assert said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
