"""The console's HTTP contract: login cookie, CSRF and origin checks, who sees and does what."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from takeover.console.session import COOKIE, csrf_value
from takeover.control.values import InstanceDraft
from takeover.domain.models import InstanceSpec, Principal, Role
from takeover.main import Runtime
from takeover.testing import FakeClock
from tests.api.pool import Pool

ADMIN = "admin-secret"


def console(runtime: Runtime, token: str) -> TestClient:
    ui = TestClient(runtime.app)
    response = ui.post("/ui/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return ui


def user(pool: Pool, subject: str) -> str:
    created = pool.client.post("/api/v1/tokens", json={"role": "user", "subject": subject})
    return str(created.json()["token"])


def post(ui: TestClient, path: str, token: str, **fields: str) -> tuple[int, str]:
    response = ui.post(path, data={"csrf": csrf_value(token), **fields}, headers={"HX-Request": "true"})
    return response.status_code, response.text


def test_login_keeps_the_token_in_a_strict_http_only_cookie_and_never_in_a_page(
    runtime: Runtime, pool: Pool
) -> None:
    pool.two_nodes_running_web()
    ui = TestClient(runtime.app)
    response = ui.post("/ui/login", data={"token": ADMIN}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert response.headers["location"] == "/ui"
    for path in ("/ui", "/ui/instances", "/ui/failovers", "/ui/system"):
        page = ui.get(path)
        assert page.status_code == 200, path
        assert ADMIN not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.usefixtures("pool")
def test_without_a_good_cookie_every_page_goes_to_the_login(runtime: Runtime) -> None:
    ui = TestClient(runtime.app)
    assert ui.get("/ui", follow_redirects=False).headers["location"] == "/ui/login"
    hx = ui.get("/ui/instances", headers={"HX-Request": "true"})
    assert hx.status_code == 401
    assert hx.headers["hx-redirect"] == "/ui/login"
    ui.cookies.set(COOKIE, "forged")
    assert ui.get("/ui", follow_redirects=False).status_code == 303


def test_tokens_the_console_refuses_say_why(runtime: Runtime, pool: Pool) -> None:
    node = pool.node("n1")
    ui = TestClient(runtime.app)
    refused = ui.post("/ui/login", data={"token": node.token})
    assert refused.status_code == 403
    assert "node tokens cannot use the console" in refused.text
    unknown = ui.post("/ui/login", data={"token": "nope"})
    assert unknown.status_code == 401
    assert "unknown or revoked token" in unknown.text
    assert "set-cookie" not in unknown.headers
    nul = ui.post("/ui/login", data={"token": "admin-secret\x00"})
    assert nul.status_code == 400
    assert "NUL" in nul.text
    elsewhere = ui.post(
        "/ui/login", data={"token": "admin-secret"}, headers={"Origin": "http://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert "set-cookie" not in elsewhere.headers


def test_an_action_needs_the_pages_csrf_value_and_the_same_origin(runtime: Runtime, pool: Pool) -> None:
    a, _, _ = pool.two_nodes_running_web()
    ui = console(runtime, ADMIN)
    forged = ui.post(f"/ui/nodes/{a.id}/status", data={"status": "draining"}, headers={"HX-Request": "1"})
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    elsewhere = ui.post(
        f"/ui/nodes/{a.id}/status",
        data={"status": "draining", "csrf": csrf_value(ADMIN)},
        headers={"HX-Request": "1", "Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert "another origin" in elsewhere.text
    assert pool.get(f"/api/v1/nodes/{a.id}")["status"] == "online", "nothing changed"

    assert post(ui, f"/ui/nodes/{a.id}/status", ADMIN, status="draining") == (
        200,
        _flash("n1 is now draining"),
    )
    assert pool.get(f"/api/v1/nodes/{a.id}")["status"] == "draining"


def test_bad_input_is_answered_with_the_reason_and_changes_nothing(runtime: Runtime, pool: Pool) -> None:
    a, _, _ = pool.two_nodes_running_web()
    ui = console(runtime, ADMIN)
    status, text = post(ui, f"/ui/nodes/{a.id}/status", ADMIN, status="asleep")
    assert status == 400
    assert "unknown node status" in text
    status, text = post(ui, f"/ui/nodes/{a.id}/status", ADMIN, status="offline")
    assert status == 409
    assert "decided by the monitor" in text
    status, text = post(ui, f"/ui/nodes/{a.id}/status", ADMIN, status="online\x00")
    assert status == 400
    assert "NUL" in text
    assert pool.get(f"/api/v1/nodes/{a.id}")["status"] == "online"
    page = ui.get("/ui/nodes/not-a-uuid")
    assert page.status_code == 422
    assert "node_id" in page.text
    assert "<html" in page.text
    assert ui.get("/ui?page=0").status_code == 422


def test_a_user_sees_and_does_only_what_the_api_lets_that_user(runtime: Runtime, pool: Pool) -> None:
    a, _, web = pool.two_nodes_running_web()
    alice = user(pool, "alice")
    mine = TestClient(runtime.app, headers={"Authorization": f"Bearer {alice}"}).post(
        "/api/v1/instances", json={"name": "alice-app", "spec": {"command": ["sleep", "1000"]}}
    )
    assert mine.status_code == 201, mine.text
    ui = console(runtime, alice)

    listing = ui.get("/ui/instances").text
    assert "alice-app" in listing
    assert 'data-instance="web"' not in listing
    assert ui.get(f"/ui/instances/{web['id']}").status_code == 404
    assert "Revoke" not in ui.get("/ui/system").text
    assert "Drain" not in ui.get("/ui").text

    status, text = post(ui, f"/ui/nodes/{a.id}/status", alice, status="draining")
    assert status == 403
    assert "admin token required" in text
    status, _ = post(ui, f"/ui/instances/{web['id']}/failover", alice)
    assert status == 404, "another owner's instance cannot be failed over"
    assert pool.get(f"/api/v1/failovers?instance_id={web['id']}") == []

    status, text = post(ui, f"/ui/instances/{mine.json()['id']}/failover", alice)
    assert status == 200
    assert "started" in text


def test_a_revoked_token_ends_its_console_session(runtime: Runtime, pool: Pool) -> None:
    alice = user(pool, "alice")
    ui = console(runtime, alice)
    assert ui.get("/ui").status_code == 200
    admin = console(runtime, ADMIN)
    [token] = [t for t in pool.get("/api/v1/tokens") if t["subject"] == "alice"]
    status, text = post(admin, f"/ui/tokens/{token['id']}/revoke", ADMIN)
    assert status == 200
    assert "revoked" in text
    assert ui.get("/ui", follow_redirects=False).headers["location"] == "/ui/login"


@pytest.mark.usefixtures("pool")
def test_logging_out_clears_the_cookie(runtime: Runtime) -> None:
    ui = console(runtime, ADMIN)
    response = ui.post("/ui/logout", data={"csrf": csrf_value(ADMIN)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert ui.get("/ui", follow_redirects=False).status_code == 303


def _flash(message: str) -> str:
    return f'<p class="ok" role="status">{message}</p>'


def test_the_leader_samples_each_node_s_score_once_a_minute_for_the_chart(
    runtime: Runtime, pool: Pool, clock: FakeClock
) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    for _ in range(3):  # three minutes, a cycle every 20 s: one sample a minute
        for _ in range(3):
            pool.beat(n1, cpu=0.0)
            pool.beat(n2, cpu=0.9)
            pool.cycle()
            clock.advance(20)
    history = runtime.store.scores.history(UUID(n1.id), clock.now() - timedelta(hours=1))
    assert len(history) == 3
    busier = runtime.store.scores.history(UUID(n2.id), clock.now() - timedelta(hours=1))
    assert [at for at, _ in busier] == [at for at, _ in history]
    assert all(theirs < mine for (_, theirs), (_, mine) in zip(busier, history, strict=True))
    assert 'class="score"' in console(runtime, ADMIN).get(f"/ui/nodes/{n1.id}").text

    pool.beat(n1, cpu=0.0)
    pool.elapse(1)  # a cycle 20 s after the last starts a new watch (the leader was away)
    pool.elapse(6)
    pool.beat(n1, cpu=0.0)
    assert pool.cycle().monitor.offline_nodes == ["n2"]  # type: ignore[union-attr]
    clock.advance(2 * 3600)  # n2 offline since: its samples stop
    pool.beat(n1, cpu=0.0)
    pool.cycle()
    recent = clock.now() - timedelta(hours=1)
    assert len(runtime.store.scores.history(UUID(n1.id), recent)) == 1
    assert runtime.store.scores.history(UUID(n2.id), recent) == []
    assert runtime.store.scores.history(UUID(n1.id), clock.now() - timedelta(hours=5)) == (
        runtime.store.scores.history(UUID(n1.id), recent)
    ), "samples older than the hour are pruned"


def test_the_instances_page_reads_a_hundred_at_a_time_from_the_store(runtime: Runtime, pool: Pool) -> None:
    node = pool.node("n1", max_instances=200)
    pool.beat(node)
    spec = InstanceSpec(command=("sleep", "60"))
    admin = Principal(Role.ADMIN, "admin")
    for n in range(105):
        runtime.services.create_instance(admin, InstanceDraft(f"i{n:03d}", spec))
    ui = console(runtime, ADMIN)
    first, second = ui.get("/ui/instances").text, ui.get("/ui/instances?page=2").text
    assert first.count("data-instance=") == 100
    assert 'data-instance="i000"' in first
    assert second.count("data-instance=") == 5
    assert 'data-instance="i104"' in second
    assert "page 2 of 2 (105)" in second
    past = ui.get("/ui/instances?page=9").text
    assert "page 2 of 2 (105)" in past, "past the end: the last page"
    assert past.count("data-instance=") == 5


def test_a_node_that_missed_heartbeats_is_not_shown_green(runtime: Runtime, pool: Pool) -> None:
    quiet, fine = pool.node("quiet"), pool.node("fine")
    pool.beat(quiet)
    pool.clock.advance(2)  # a heartbeat a second here: quiet missed one
    pool.beat(fine)
    page = console(runtime, ADMIN).get("/ui").text
    assert re.search(r'<tr data-node="quiet".*?badge late"[^>]*>late, 2 s ago', page, re.S)
    assert re.search(r'<tr data-node="fine".*?badge online">online', page, re.S)
    pool.clock.advance(2)  # past fence_after: silent, and its score is no green bar
    page = console(runtime, ADMIN).get(f"/ui/nodes/{quiet.id}").text
    assert "silent, 4 s ago" in page
    pool_page = console(runtime, ADMIN).get("/ui").text
    row = pool_page.split('data-node="quiet"')[1].split("</tr>")[0]
    assert "<meter" not in row


def test_the_root_leads_to_the_console(runtime: Runtime) -> None:
    response = TestClient(runtime.app).get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


def test_a_dry_run_that_would_not_succeed_is_not_shown_as_good_news(runtime: Runtime, pool: Pool) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web")  # no snapshot, no other node: nothing would succeed
    status, text = post(console(runtime, ADMIN), f"/ui/instances/{web['id']}/test", ADMIN)
    assert status == 200
    assert '<p class="warn" role="alert">dry run: would try' in text
    assert "would not succeed" in text
