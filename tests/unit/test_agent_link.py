"""The stream's reconnect rule: full jitter, capped, and its address."""

from __future__ import annotations

import random
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from takeover.agent.link import BACKOFF_CAP, BACKOFF_FIRST, reconnect_delay, stream_url
from takeover.api.frames import StreamMessage
from takeover.api.stream import message
from takeover.api.wire import HeartbeatOut
from takeover.domain.models import NodeStatus


@given(st.integers(min_value=0, max_value=64), st.integers())
def test_a_reconnect_waits_between_nothing_and_the_capped_window(failures: int, seed: int) -> None:
    delay = reconnect_delay(failures, random.Random(seed))
    assert 0.0 <= delay <= min(BACKOFF_CAP, BACKOFF_FIRST * 2**failures)


def test_a_thousand_agents_cut_off_together_come_back_spread_out() -> None:
    rng = random.Random(7)
    delays = sorted(reconnect_delay(5, rng) for _ in range(1000))  # window: 16 s
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(16)]
    assert max(per_second) < 100  # about 62 a second, not 1,000 at once
    assert delays[-1] > 15.0


def test_the_stream_lives_beside_the_api_on_the_same_address() -> None:
    node = UUID(int=1)
    assert stream_url("http://cp:8080/", node) == f"ws://cp:8080/api/v1/nodes/{node}/stream"
    assert (
        stream_url("https://cp.example/takeover", node)
        == f"wss://cp.example/takeover/api/v1/nodes/{node}/stream"
    )


def test_the_server_s_hand_built_messages_are_what_the_agent_parses() -> None:
    reply = HeartbeatOut(
        node_id=UUID(int=2),
        health_score=90.0,
        status=NodeStatus.ONLINE,
        desired=[],
        release=[],
        heartbeat_interval=0.25,
        fence_after=0.75,
    )
    for kind, seq in (("ack", 7), ("desired", None)):
        parsed = StreamMessage.model_validate_json(message(kind, seq, reply))
        assert (parsed.type, parsed.seq, parsed.reply) == (kind, seq, reply)
