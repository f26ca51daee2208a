"""Who a token may be for, and when a join token still lets a machine in.

Ownership is by subject: a user sees the instances whose owner is its subject, and an admin's
instances are owned by the admin's subject. A user named like an admin would therefore see and
act on that admin's instances, so a subject belongs to one role for good (revoked tokens count:
what they created is still owned by that name).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from takeover.domain.models import Role

ADMIN_SUBJECT = "admin"  # TAKEOVER_ADMIN_TOKEN's subject: reserved for admins even before it exists
JOIN_TOKEN_PREFIX = "tkj_"  # a pool join token; rented machines' one-time tokens look like API tokens


def subject_refusal(role: Role, subject: str, roles_of_subject: Collection[Role]) -> str | None:
    """Why a new ``role`` token may not be for ``subject`` (None: it may).

    ``roles_of_subject``: the roles of every token, revoked ones included, already for it."""
    reserved = subject.lower() == ADMIN_SUBJECT
    if role is Role.USER and reserved:
        return f"{subject!r} is reserved for admins; name the user"
    if reserved:
        return None  # a user named so before this rule was revoked by migration 0013
    other = sorted(r.value for r in roles_of_subject if r is not role)
    if other:
        return f"{subject!r} is already the subject of {other[0]} tokens; a subject has one role"
    return None


@dataclass(frozen=True, slots=True)
class JoinToken:
    """A machine's ticket into the pool: it registers a node of ``region`` and nothing else."""

    id: UUID
    region: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int = 0
    revoked_at: datetime | None = None

    def refusal(self, now: datetime) -> str | None:
        """Why it lets no machine in now (None: it does)."""
        if self.revoked_at is not None:
            return "this join token was revoked"
        if now >= self.expires_at:
            return f"this join token expired at {self.expires_at.isoformat(timespec='seconds')}"
        if self.uses >= self.max_uses:
            return f"this join token was good for {self.max_uses} node(s) and has been used up"
        return None

    def live(self, now: datetime) -> bool:
        return self.refusal(now) is None
