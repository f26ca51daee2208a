"""The web console in a real Chromium against a real control plane and real agents."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from takeover.localcluster import ADMIN_TOKEN, LocalCluster, wait_until
from tests.e2e.browser import Page, chromium

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path) as c:
        c.start_control_plane(env={"TAKEOVER_SCORE_SAMPLE_INTERVAL": "0.5"})
        c.start_agent("a")
        yield c


@pytest.fixture
def page(cluster: LocalCluster, tmp_path: Path) -> Iterator[Page]:
    with chromium() as driver:
        yield Page(driver, cluster.url, tmp_path / "screenshots")


def user_token(cluster: LocalCluster, subject: str) -> str:
    created = cluster.api.post("/api/v1/tokens", json={"role": "user", "subject": subject})
    created.raise_for_status()
    return str(created.json()["token"])


def user_instance(cluster: LocalCluster, token: str, name: str) -> dict[str, Any]:
    spec = {"command": [sys.executable, "-m", "takeover.examples.counter"]}
    response = httpx.post(
        cluster.url + "/api/v1/instances",
        json={"name": name, "spec": spec},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return dict(response.json())


def row(page: Page, css: str) -> str | None:
    rows = page.all(css)
    return rows[0].get_attribute("data-status") if rows else None


def test_an_admin_watches_a_node_die_and_its_instance_fail_over_without_reloading(
    cluster: LocalCluster, page: Page
) -> None:
    web = cluster.create_counter("web")
    wait_until(lambda: cluster.serving(web["id"]), 30, "web to serve")
    cluster.start_agent("b")

    page.open("/ui")
    assert page.driver.current_url.endswith("/ui/login"), "the console asks for a token first"
    page.login(ADMIN_TOKEN)
    page.wait(lambda: row(page, "tr[data-node=b]") == "online", "node b online on the pool page")
    assert ADMIN_TOKEN not in page.driver.page_source
    assert page.driver.execute_script("return document.cookie") == "", "the cookie is HttpOnly"
    [cookie] = page.driver.get_cookies()
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    page.shot("pool")

    page.mark()
    cluster.kill_agent("a")
    page.wait(lambda: row(page, "tr[data-node=a]") == "offline", "node a offline, live", timeout=45)
    assert page.unreloaded(), "the pool page updated in place"
    page.shot("pool-offline")

    page.open("/ui/failovers")
    page.mark()
    page.wait(lambda: row(page, "tr[data-failover]") == "completed", "the failover completed, live", 60)
    assert page.unreloaded()
    assert "node_failure" in page.text()
    assert "a → b" in page.text()
    page.shot("failovers")

    page.click("tr[data-failover] th a")
    page.wait(lambda: page.find("#failover-status").text == "completed", "the failover's own page")
    steps = [li.text for li in page.all("ol.steps li")]
    assert [s.split()[0] for s in steps] == ["pending", "backing_up", "migrating", "restoring"], steps
    page.shot("failover")

    page.open(f"/ui/instances/{web['id']}")
    page.wait(lambda: "running" in page.find("h1").text, "web running again")
    assert "Readiness" in page.text()
    page.shot("instance")

    page.open("/ui/instances")
    page.click("tr[data-instance=web] button[aria-label^='Dry run']")
    page.wait(lambda: "dry run: would try" in page.find("#flash").text, "the dry run's answer")
    page.shot("instances")

    page.open(f"/ui/nodes/{cluster.node('b')['id']}")  # type: ignore[index]
    page.wait(lambda: page.all("svg.chart polyline"), "node b's score chart")
    page.shot("node")
    page.click("button[aria-label='Drain b']")
    page.wait(lambda: "b is now draining" in page.find("#flash").text, "the drain's answer")
    assert cluster.node("b")["status"] == "draining"  # type: ignore[index]

    page.open("/ui/system")
    page.wait(lambda: page.find("#leader").text, "the leader")
    page.shot("system")

    assert not page.find("#lost").is_displayed()
    port = cluster.kill_control_plane()
    page.wait(lambda: page.find("#lost").is_displayed(), "the connection-lost banner")
    assert "Connection to the control plane lost at" in page.find("#lost").text
    page.shot("connection-lost")
    cluster.start_control_plane(port=port)
    page.wait(lambda: not page.find("#lost").is_displayed(), "the banner gone once it answers again")


def test_a_user_sees_only_what_the_api_shows_that_user(cluster: LocalCluster, page: Page) -> None:
    web = cluster.create_counter("web")
    alice = user_token(cluster, "alice")
    mine = user_instance(cluster, alice, "alice-app")
    wait_until(lambda: cluster.serving(mine["id"]) and cluster.serving(web["id"]), 30, "both serving")
    cluster.start_agent("b")  # where alice's instance moves to

    page.login(alice)
    page.open("/ui/instances")
    page.wait(lambda: page.all("tr[data-instance='alice-app']"), "alice's instance")
    assert not page.all("tr[data-instance=web]"), "another owner's instance is not listed"
    assert "owner" not in [th.text for th in page.all("#instances thead th")]
    page.shot("user-instances")
    page.driver.set_window_size(390, 844)  # a phone: the page fits its width, wide tables scroll
    assert page.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    page.shot("user-instances-phone")
    page.driver.set_window_size(1280, 900)

    page.open(f"/ui/instances/{web['id']}")
    assert "404" in page.find("h1").text, "another owner's instance is not found, as in the API"
    assert f"instance {web['id']} not found" in page.alert()
    page.open("/ui/system")
    assert not page.all("#tokens"), "tokens are for admins"
    page.open("/ui")
    assert not page.all("button[aria-label^=Drain]"), "node actions are for admins"

    page.open("/ui/instances")
    page.click("tr[data-instance='alice-app'] button[aria-label^='Fail over']")
    page.confirm()
    page.wait(lambda: "started" in page.find("#flash").text, "alice's failover to start")
    moved = wait_until(
        lambda: [f for f in cluster.failovers(mine["id"]) if f["status"] == "completed"], 60, "it to finish"
    )
    assert moved[0]["reason"] == "manual"
    page.logout()

    saved = json.loads((cluster.agents["a"].data_dir / "node.json").read_text())
    page.login(saved["token"])
    page.wait(lambda: "node tokens cannot use the console" in page.alert(), "the node token refused")
    page.login("no-such-token")
    page.wait(lambda: "unknown or revoked token" in page.alert(), "the unknown token refused")
