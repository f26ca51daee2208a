"""GET /api/v1/status, `takeover status` and the console's banner: what the control plane cannot
vouch for now, instead of a stale "all online"."""

from __future__ import annotations

from fastapi.testclient import TestClient

from takeover.main import Runtime
from tests.api.pool import Pool
from tests.api.test_console import console
from tests.api.test_probes import make_read_only
from tests.conftest import FAST

FENCE_AFTER = float(FAST["fence_after"])


def test_a_led_pool_heard_from_is_ok(pool: Pool) -> None:
    node = pool.node("a")
    pool.beat(node)
    pool.cycle()  # takes the lease
    status = pool.client.get("/api/v1/status").json()
    assert status["ok"] is True, status
    assert (status["problems"], status["store_writable"], status["silent_nodes"]) == ([], True, 0)
    assert status["leader"] is not None


def test_nobody_leading_is_said(client: TestClient) -> None:
    status = client.get("/api/v1/status").json()
    assert status["ok"] is False
    assert status["leader"] is None
    assert status["problems"] == ["no replica leads: no node is declared offline and nothing fails over"]


def test_nodes_online_but_silent_past_the_fence_are_counted_and_named(pool: Pool) -> None:
    quiet, talking = pool.node("quiet"), pool.node("talking")
    pool.beat(quiet)
    pool.beat(talking)
    pool.elapse(FENCE_AFTER + 0.5)
    pool.beat(talking)
    pool.cycle()
    status = pool.client.get("/api/v1/status").json()
    assert status["silent_nodes"] == 1
    [problem] = status["problems"]
    assert problem.startswith(
        f"1 node(s) shown online have not been heard from for over {FENCE_AFTER:g} s (quiet)"
    )


def test_a_store_refusing_writes_is_said_while_reads_still_answer(runtime: Runtime, pool: Pool) -> None:
    pool.beat(pool.node("a"))
    pool.cycle()
    make_read_only(runtime.store.engine)
    status = pool.client.get("/api/v1/status").json()
    assert status["store_writable"] is False
    assert status["problems"][0].startswith("the store cannot be written: ")
    assert status["problems"][0].endswith("no heartbeat is stored, the pool shown is as it was last written")


def test_the_console_shows_the_problems_on_every_page(runtime: Runtime, pool: Pool) -> None:
    ui = console(runtime, "admin-secret")
    for page in ("/ui", "/ui/instances", "/ui/system"):
        html = ui.get(page).text
        assert 'id="plane-problems"' in html, page
        assert "no replica leads" in html
    pool.beat(pool.node("a"))
    pool.cycle()
    assert 'id="plane-problems"' not in ui.get("/ui").text  # nothing to say: no banner
