"""An agent's credentials: how it registers, and that none of them reaches what it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from takeover.agent.containers import env_file
from takeover.agent.processes import workload_env
from takeover.agent.registration import AgentError, Credentials, register, registration_request
from takeover.agent.settings import AgentSettings, load_agent_settings
from takeover.secretenv import SECRETS


def request(**env: str) -> tuple[str, str, dict[str, Any]]:
    settings = AgentSettings(takeover_url="http://127.0.0.1:9", **env)  # type: ignore[arg-type]
    return registration_request(settings)


def test_a_join_token_joins_in_its_own_region_unless_the_node_names_one() -> None:
    path, bearer, body = request(TAKEOVER_JOIN_TOKEN="tkj_x", TAKEOVER_TOKEN="tko_admin")
    assert (path, bearer) == ("/api/v1/nodes/join", "tkj_x")  # the admin token is not used
    assert "region" not in body
    _, _, body = request(TAKEOVER_JOIN_TOKEN="tkj_x", NODE_REGION="eu")
    assert body["region"] == "eu"  # the control plane refuses it if the token says otherwise


def test_an_admin_token_registers_a_node_only_when_explicitly_allowed() -> None:
    with pytest.raises(AgentError, match="takeover nodes join-token --region"):
        request(TAKEOVER_TOKEN="tko_admin")
    path, bearer, body = request(TAKEOVER_TOKEN="tko_admin", NODE_ALLOW_ADMIN_TOKEN="true", NODE_REGION="eu")
    assert (path, bearer, body["region"]) == ("/api/v1/nodes", "tko_admin", "eu")


def test_saved_credentials_need_no_token_and_none_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="set TAKEOVER_JOIN_TOKEN"):
        request(NODE_NAME="n")
    (tmp_path / "node.json").write_text(json.dumps({"node_id": str(UUID(int=11)), "token": "t"}))
    settings = AgentSettings(takeover_url="http://127.0.0.1:9", data_dir=tmp_path)
    credentials = register(settings, httpx.Client(), tmp_path, threading.Event())  # asks nobody
    assert credentials == Credentials(UUID(int=11), "t")


def test_the_agent_hides_credentials_from_its_own_proc_environ(tmp_path: Path) -> None:
    """Started with tokens in its environment, the agent (same pid, exec'd again) reads them
    from os.environ while /proc/<pid>/environ, which its user's processes can read, has none;
    the tools it runs get none."""
    probe = (
        "import os, sys, json\n"
        "from takeover.secretenv import hide_secrets, child_env\n"
        "hide_secrets([sys.executable, sys.argv[0]])\n"
        "print(json.dumps({'pid': os.getpid(), 'proc': open('/proc/self/environ', 'rb').read().decode(),"
        " 'token': os.environ.get('TAKEOVER_TOKEN'), 'aws': os.environ.get('AWS_SECRET_ACCESS_KEY'),"
        " 'child': sorted(k for k in child_env() if k.endswith(('TOKEN', 'SECRET_ACCESS_KEY')))}))\n"
    )
    script = tmp_path / "probe.py"
    script.write_text(probe)
    env = {
        **os.environ,
        "TAKEOVER_TOKEN": "tko_admin_secret",
        "NODE_TOKEN": "tko_node_secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "KEEP": "me",
    }
    started = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    out, _ = started.communicate(timeout=60)
    seen = json.loads(out)
    assert seen["pid"] == started.pid
    assert "KEEP=me" in seen["proc"]
    for value in ("tko_admin_secret", "tko_node_secret", "aws-secret"):
        assert value not in seen["proc"]
    assert (seen["token"], seen["aws"]) == ("tko_admin_secret", "aws-secret")
    assert seen["child"] == []


def test_a_workload_s_environment_holds_nothing_of_the_agent_s(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, "secret-" + name)
    monkeypatch.setenv("PYTHONPATH", "/agent/only")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = workload_env({"PORT": "20001", "APP": "x", "LANG": "pt_BR.UTF-8"}, os.getuid())
    assert set(env) == {"PATH", "LANG", "HOME", "USER", "LOGNAME", "PORT", "APP"}
    assert env["LANG"] == "pt_BR.UTF-8"  # the spec's wins
    assert not any(v.startswith("secret-") for v in env.values())


def test_a_container_s_environment_goes_in_a_private_file_not_on_its_command_line() -> None:
    with env_file({"DB_PASSWORD": "s3cret", "PEM": "line1\nline2"}) as args:
        path = Path(args[args.index("--env-file") + 1])
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() == "DB_PASSWORD=s3cret\n"
        assert "s3cret" not in " ".join(args)
        assert args[-2:] == ["--env", "PEM=line1\nline2"]  # an env file holds one line per variable
    assert not path.exists()


def test_an_operator_passes_node_variables_on_by_name_but_never_a_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/cuda/lib64")
    assert workload_env({}, os.getuid(), ("LD_LIBRARY_PATH",))["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64"
    assert "LD_LIBRARY_PATH" not in workload_env({}, os.getuid())
    monkeypatch.setenv("TAKEOVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NODE_PASS_ENV", "LD_LIBRARY_PATH, node_token")
    with pytest.raises(
        SystemExit, match="NODE_PASS_ENV names credentials, which never reach a workload: node_token"
    ):
        load_agent_settings()
