"""Who sees what: the owner filter every user-facing query applies."""

from __future__ import annotations

from takeover.domain.errors import Forbidden
from takeover.domain.models import Principal, Role


def owner_scope(who: Principal) -> str | None:
    """Admins see everything, users their own (others' ids are NotFound); nodes nothing."""
    if who.is_admin:
        return None
    if who.role is Role.USER:
        return who.subject
    raise Forbidden("node tokens may only send heartbeats")
