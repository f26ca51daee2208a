"""Who a token may be for, and when a join token lets a machine in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from takeover.domain.models import Role
from takeover.domain.tokens import JoinToken, subject_refusal

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_user_cannot_be_named_admin_in_any_case() -> None:
    for name in ("admin", "Admin", "ADMIN"):
        refusal = subject_refusal(Role.USER, name, [])
        assert refusal is not None
        assert "reserved for admins" in refusal
    assert subject_refusal(Role.ADMIN, "admin", []) is None


def test_a_subject_keeps_the_role_it_was_first_given() -> None:
    assert subject_refusal(Role.USER, "alice", [Role.USER]) is None  # a second token for alice
    refusal = subject_refusal(Role.USER, "ops", [Role.ADMIN])
    assert refusal is not None
    assert "already the subject of admin tokens" in refusal
    assert subject_refusal(Role.ADMIN, "alice", [Role.USER]) is not None
    # The admin name stays the admins' even where an old user token bears it (revoked since).
    assert subject_refusal(Role.ADMIN, "admin", [Role.USER, Role.ADMIN]) is None


def token(**changes: object) -> JoinToken:
    values: dict[str, object] = {
        "id": uuid4(),
        "region": "eu",
        "created_by": "admin",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
        "max_uses": 2,
    }
    return JoinToken(**(values | changes))  # type: ignore[arg-type]


def test_a_join_token_lets_machines_in_until_it_expires_is_used_up_or_revoked() -> None:
    assert token().refusal(NOW) is None
    assert token(uses=1).live(NOW)
    assert "used up" in (token(uses=2).refusal(NOW) or "")
    assert "expired" in (token().refusal(NOW + timedelta(hours=1)) or "")
    assert "revoked" in (token(revoked_at=NOW).refusal(NOW) or "")
    assert not token(revoked_at=NOW).live(NOW)
