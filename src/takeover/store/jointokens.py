"""Join tokens: a machine registers itself as a node of the token's region, within its uses and
before it expires. The use is counted in the transaction that inserts the node, so a token good
for N machines lets in N, however many race for it, and a refused node uses nothing."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import Forbidden, Unauthenticated
from takeover.domain.models import Node
from takeover.domain.tokens import JoinToken
from takeover.store.base import record_event, revoke_token, transaction
from takeover.store.nodes import insert_node
from takeover.store.rows import join_token_from_row
from takeover.store.tables import join_tokens


class JoinTokenRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def add(self, token: JoinToken, token_hash: str) -> JoinToken:
        with transaction(self._engine) as conn:
            conn.execute(join_tokens.insert().values(**asdict(token), token_hash=token_hash))
            record_event(
                conn,
                "join_token.created",
                token.id,
                f"join token for region {token.region}, {token.max_uses} node(s), by {token.created_by}",
                token.created_at,
                expires_at=token.expires_at.isoformat(),
            )
        return token

    def find(self) -> list[JoinToken]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(join_tokens).order_by(join_tokens.c.created_at))
            return [join_token_from_row(r) for r in rows]

    def revoke(self, token_id: UUID, now: datetime) -> JoinToken:
        with transaction(self._engine) as conn:
            revoke_token(conn, join_tokens, token_id, now, "join_token")
            row = conn.execute(sa.select(join_tokens).where(join_tokens.c.id == token_id)).one()
            return join_token_from_row(row)

    def live(self, token_hash: str, now: datetime) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(join_tokens).where(join_tokens.c.token_hash == token_hash)).first()
            return row is not None and join_token_from_row(row).live(now)

    def join(
        self, token_hash: str, node: Node, region: str | None, token_id: UUID, node_token_hash: str
    ) -> Node:
        """``node`` becomes a node of the token's region (``region``, when the machine names one,
        must be it) and the token loses a use; Unauthenticated says why a token lets no one in."""
        assert node.created_at is not None
        now = node.created_at
        with transaction(self._engine) as conn:
            query = sa.select(join_tokens).where(join_tokens.c.token_hash == token_hash)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise Unauthenticated("unknown join token")
            token = join_token_from_row(row)
            refusal = token.refusal(now)
            if refusal is not None:
                raise Unauthenticated(refusal)
            if region is not None and region != token.region:
                raise Forbidden(
                    f"this join token registers nodes of region {token.region}, not {region} (NODE_REGION)",
                    field="region",
                )
            conn.execute(join_tokens.update().where(join_tokens.c.id == token.id).values(uses=token.uses + 1))
            joined = insert_node(conn, replace(node, region=token.region), token_id, node_token_hash)
            record_event(
                conn,
                "node.joined",
                joined.id,
                f"node {joined.name} joined region {token.region} with join token {token.id}",
                now,
            )
            return joined
