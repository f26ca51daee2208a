"""Bearer tokens, kept only as SHA-256 hashes; a lookup reads the store, so a revocation
takes effect on every replica at the next request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import Conflict
from takeover.domain.models import Principal, Role
from takeover.domain.tokens import subject_refusal
from takeover.store.base import record_event, revoke_token, transaction
from takeover.store.tables import tokens


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: UUID
    role: Role
    subject: str
    created_at: datetime
    revoked_at: datetime | None


class TokenRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def add(self, token_id: UUID, token_hash: str, role: Role, subject: str, now: datetime) -> TokenRecord:
        """Conflict when ``subject`` may not take a ``role`` token (domain/tokens.py), checked in
        the inserting transaction."""
        with transaction(self._engine) as conn:
            taken = conn.execute(
                sa.select(tokens.c.role).distinct().where(sa.func.lower(tokens.c.subject) == subject.lower())
            )
            refusal = subject_refusal(role, subject, [Role(r) for r in taken.scalars()])
            if refusal is not None:
                raise Conflict(refusal, field="subject")
            conn.execute(
                tokens.insert().values(
                    id=token_id, token_hash=token_hash, role=role.value, subject=subject, created_at=now
                )
            )
            record_event(conn, "token.created", token_id, f"{role} token for {subject}", now)
        return TokenRecord(token_id, role, subject, now, None)

    def principal(self, token_hash: str) -> Principal | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(tokens.c.role, tokens.c.subject).where(
                    tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None)
                )
            ).first()
        return Principal(Role(row.role), row.subject) if row is not None else None

    def find(self) -> list[TokenRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at))
            return [TokenRecord(r.id, Role(r.role), r.subject, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, token_id: UUID, now: datetime) -> None:
        with transaction(self._engine) as conn:
            revoke_token(conn, tokens, token_id, now, "token")
