"""TLS at the balancer, end to end: the shipped deploy/haproxy.cfg with a certificate of a
private CA the test makes; agents and the CLI trust that CA through SSL_CERT_FILE, the agents'
streams run over wss, a node dies and its instance comes back, and plain HTTP is refused."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import trustme

from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, wait_until
from tests.e2e.balancer import haproxy

pytestmark = pytest.mark.e2e


def test_agents_stream_over_tls_a_failover_works_and_plain_http_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    served = tmp_path / "balancer.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(served))
    trusted = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(trusted))
    with LocalCluster(tmp_path, extra_env={"SSL_CERT_FILE": str(trusted)}) as cluster:
        direct = cluster.start_control_plane()
        with haproxy([direct] * 3, tmp_path, tls=(served, trusted)) as url:
            assert url.startswith("https://")
            for name in ("a", "b"):
                cluster.start_agent(name, url=url)
            for name in ("a", "b"):
                log = (tmp_path / f"agent-{name}.log").read_text()
                assert "stream open" in log
                assert "wss://" in log
            web = cluster.create_counter("web")
            placed = wait_until(lambda: cluster.serving(web["id"]), 30, "the counter to serve")
            victim = cluster.node_name(placed["node_id"])
            assert victim is not None
            cluster.kill_agent(victim)
            wait_until(lambda: cluster.serving(web["id"], epoch=2), 60, "the failover through TLS")

            env = {
                **os.environ,
                "TAKEOVER_URL": url,
                "TAKEOVER_TOKEN": ADMIN_TOKEN,
                "SSL_CERT_FILE": str(trusted),
            }
            listed = subprocess.run(
                [*TAKEOVER, "nodes", "list", "-o", "json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert listed.returncode == 0, listed.stderr
            assert sorted(n["name"] for n in json.loads(listed.stdout)) == ["a", "b"]

            plain = url.replace("https://", "http://")
            with pytest.raises(httpx.HTTPError):  # no answer in clear: the listener speaks TLS only
                httpx.get(
                    f"{plain}/api/v1/nodes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=3
                )
            untrusted = ssl.create_default_context()  # the system's CAs only: the private CA is not one
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/healthz", verify=untrusted, timeout=3)
