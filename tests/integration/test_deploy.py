"""The shipped deployment files, checked by the real tools: nginx -t, the Kubernetes schemas,
systemd-analyze verify.

(deploy/haproxy.cfg is run for real by tests/e2e/test_replicas.py, deploy/routes/ by
tests/e2e/test_routes.py. No Docker daemon runs here, so the Dockerfile and the compose file
are checked for what they wire together only.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import trustme
import yaml

from takeover.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian's nginx-light
KUBERNETES = ["1.29.0", kubernetes_validate.latest_version()]


def manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "takeover.yaml").read_text()) if d]


@pytest.mark.parametrize("version", KUBERNETES)
def test_the_kubernetes_manifests_match_the_schemas(version: str) -> None:
    kinds = []
    for document in manifests():
        kubernetes_validate.validate(document, version, strict=True)
        kinds.append(document["kind"])
    assert kinds == ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    deployment = manifests()[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[-1], strict=True)


def test_the_deployment_probes_the_endpoints_and_keeps_a_quorum_up() -> None:
    deployment, service, budget, autoscaler = manifests()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    drain = {e["name"]: e.get("value") for e in container["env"]}["TAKEOVER_DRAIN_SECONDS"]
    assert int(drain) < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert (
        budget["spec"]["minAvailable"] < deployment["spec"]["replicas"] <= autoscaler["spec"]["minReplicas"]
    )
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    """nginx -t resolves upstream names, which only exist inside compose: loopback stands in."""
    text = (DEPLOY / "nginx.conf").read_text()
    local = re.sub(r"server takeover-(\d):8080", r"server 127.0.0.\1:8080", text)
    local = local.replace("pid /run/takeover-nginx.pid;", f"pid {tmp_path / 'nginx.pid'};")
    issued = trustme.CA().issue_cert("takeover.example.com")  # nginx -t loads the certificate and key
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "balancer.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "balancer.key"))
    local = local.replace("/etc/takeover/tls/", f"{tmp_path}/")
    assert local.count("server 127.0.0.") == 3
    config = tmp_path / "nginx.conf"
    config.write_text(local)
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    config.write_text(local.replace("least_conn;", "least_conn"))
    broken = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert broken.returncode != 0  # the check can fail


def test_compose_wires_three_replicas_behind_the_haproxy_config() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("takeover-"))
    assert replicas == ["takeover-1", "takeover-2", "takeover-3"]
    ids = {services[r]["environment"]["TAKEOVER_REPLICA_ID"] for r in replicas}
    assert ids == set(replicas)
    urls = {services[r]["environment"]["TAKEOVER_DATABASE_URL"] for r in replicas}
    assert len(urls) == 1  # one store
    assert "@postgres:5432/" in urls.pop()
    assert "redis" in services
    for r in replicas:  # what each replica is given is a valid configuration
        env = {**services[r]["environment"], "TAKEOVER_ADMIN_TOKEN": "secret"}
        settings = Settings.model_validate({k.removeprefix("TAKEOVER_").lower(): v for k, v in env.items()})
        assert settings.redis_url == "redis://redis:6379/0"
        assert set(services[r]["depends_on"]) == {"postgres", "redis"}
    balancer = services["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    wanted = {f"TAKEOVER_REPLICA_{n}" for n in (1, 2, 3)}
    assert {balancer["environment"][k] for k in wanted} == {f"{r}:8080" for r in replicas}
    assert (DEPLOY / "haproxy.cfg").read_text().count('"${TAKEOVER_REPLICA_') == 3
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["serve"]' in dockerfile
    assert "EXPOSE 8080" in dockerfile


def verify_units(units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, check=False
    )


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """With this machine's takeover in ExecStart (verify checks that it is executable)."""
    here = Path(sys.executable).parent / "takeover"
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        local = tmp_path / unit.name
        local.write_text(unit.read_text().replace("/opt/takeover/bin/takeover", str(here)))
        units.append(local)
    assert [u.name for u in units] == ["takeover-agent.service", "takeover-serve.service"]
    checked = verify_units(units)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    broken = tmp_path / "broken.service"
    broken.write_text(units[1].read_text().replace("KillSignal=", "KillSignall="))
    assert "Unknown key" in verify_units([broken]).stderr  # the check can fail
