"""SQLAlchemy Core tables: the single source of the schema that Alembic migrates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:  # noqa: ARG002
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = sa.JSON().with_variant(JSONB(), "postgresql")
OPEN_FAILOVER = "status IN ('pending', 'backing_up', 'migrating', 'restoring')"

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("base_url", sa.String(500), nullable=False),
    sa.Column("max_instances", sa.Integer, nullable=False),
    sa.Column("current_instances", sa.Integer, nullable=False, default=0),
    sa.Column("cpu_load", sa.Float, nullable=False, default=0.0),
    sa.Column("memory_load", sa.Float, nullable=False, default=0.0),
    sa.Column("avg_latency_ms", sa.Float, nullable=False, default=0.0),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("health_score", sa.Float, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("labels", Json, nullable=False),
    sa.Column("gpus", Json, nullable=False, server_default="[]"),
    sa.Column("api_token_hash", sa.String(64), nullable=False),
    sa.Column("low_score_streak", sa.Integer, nullable=False, default=0),
    sa.Column("last_heartbeat_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # domain.witnesses: where its agent answers probes, what it holds, the sets it uses and is offered
    sa.Column("witness_addr", sa.String(300), nullable=True),
    sa.Column("stamp_held", UtcDateTime, nullable=True),
    sa.Column("stamp_held_for", sa.Float, nullable=True),
    sa.Column("witnesses_used", Json, nullable=True),
    sa.Column("witnesses_offered", Json, nullable=True),
    # domain.placement.cannot_run: what its agent can run
    sa.Column("containers", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("image", sa.String(500), nullable=True),
    sa.Index("ix_nodes_placement", "status", sa.text("health_score DESC")),
    sa.Index("ix_nodes_region", "region"),
)

volumes = sa.Table(
    "volumes",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("size_gb", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("number", sa.BigInteger, nullable=False, unique=True),
    sa.UniqueConstraint("owner", "name"),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("spec", Json, nullable=False),
    sa.Column("node_id", sa.Uuid, sa.ForeignKey("nodes.id"), nullable=True, index=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("preferred_region", sa.String(100), nullable=True),
    sa.Column("failover_enabled", sa.Boolean, nullable=False),
    sa.Column("failover_strategy", sa.String(50), nullable=True),
    sa.Column("last_failover_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("endpoint", sa.String(300), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("restored_from", sa.String(200), nullable=True),
    sa.Column("last_snapshot", sa.String(200), nullable=True),
    sa.Column("snapshot_error", sa.Text, nullable=True),
    sa.Column("snapshot_requested_at", UtcDateTime, nullable=True),
    sa.Column("volume_id", sa.Uuid, sa.ForeignKey("volumes.id"), nullable=True, unique=True),
    sa.Column("standby_node_id", sa.Uuid, nullable=True, index=True),
    sa.Column("standby_synced_at", UtcDateTime, nullable=True),
    sa.Column("standby_snapshot", sa.String(200), nullable=True),
    sa.Column("recovery_point", sa.String(200), nullable=True),
    sa.Column("start_empty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("gpus", Json, nullable=True),  # what it asks for: count, names, shared
    sa.Column("gpu_indices", Json, nullable=False, server_default="[]"),  # what it holds on its node
    sa.Column("rent_policy", Json, nullable=True),  # may its failovers rent a machine, and at what price
    # A short number beside the UUID: document 002's requests carry integer ids.
    sa.Column("number", sa.BigInteger, nullable=False, unique=True),
    sa.UniqueConstraint("owner", "name"),
)

failovers = sa.Table(
    "failovers",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id",
        sa.Uuid,
        sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("source_node_id", sa.Uuid, nullable=True),
    sa.Column("target_node_id", sa.Uuid, nullable=True),
    sa.Column("requested_target_id", sa.Uuid, nullable=True),
    sa.Column("reason", sa.String(30), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("backup_id", sa.String(200), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("tried_node_ids", Json, nullable=False),
    sa.Column("timings", Json, nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("claim_expires_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("step_started_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("strategy", sa.String(30), nullable=True),
    sa.Column("attempt_log", Json, nullable=False, server_default="[]"),
    sa.Column("start_empty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source_heard_at", UtcDateTime, nullable=True),  # the source node's last heartbeat then
    # At most one open failover per instance, enforced by the store itself.
    sa.Index(
        "uq_failovers_open_instance",
        "instance_id",
        unique=True,
        sqlite_where=sa.text(OPEN_FAILOVER),
        postgresql_where=sa.text(OPEN_FAILOVER),
    ),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("node_id", sa.Uuid, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

# A machine's ticket into the pool (takeover nodes join-token): it can only register a node of
# its region, until it expires, runs out of uses or is revoked; only its hash is kept.
join_tokens = sa.Table(
    "join_tokens",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

rate_counts = sa.Table(
    "rate_counts",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("window", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Index("ix_rate_counts_window", "window"),
)

region_pauses = sa.Table(
    "region_pauses",
    metadata,
    sa.Column("region", sa.String(100), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("paused_at", UtcDateTime, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", Json, nullable=False),
)

# What each instance's runners printed, as their agents shipped it in heartbeats; the newest
# rows of each instance are kept (store/logs.py).
instance_logs = sa.Table(
    "instance_logs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("node_id", sa.Uuid, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_instance_logs_instance_id", "instance_id", "id"),
)

region_groups = sa.Table(
    "region_groups",
    metadata,
    sa.Column("group_id", sa.String(200), primary_key=True),
    sa.Column("current_region", sa.String(200), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

IN_FLIGHT_RENTAL = "state IN ('wanted', 'requested', 'rented')"
IN_FLIGHT_STANDBY = f"failover_id IS NULL AND {IN_FLIGHT_RENTAL}"

# A machine rented (or about to be) from a marketplace: written before the rent call.
rentals = sa.Table(
    "rentals",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("provider", sa.String(50), nullable=False),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("failover_id", sa.Uuid, nullable=True),
    sa.Column("instance_id", sa.Uuid, nullable=True),
    sa.Column("policy", Json, nullable=False),
    sa.Column("offer_id", sa.String(100), nullable=True),
    sa.Column("gpu_name", sa.String(200), nullable=True),
    sa.Column("num_gpus", sa.Integer, nullable=False, server_default="0"),
    sa.Column("price_per_hour", sa.Float, nullable=True),
    sa.Column("machine_id", sa.String(100), nullable=True),
    sa.Column("node_id", sa.Uuid, nullable=True),
    sa.Column("join_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("ssh_host", sa.String(300), nullable=True),
    sa.Column("ssh_port", sa.Integer, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("requested_at", UtcDateTime, nullable=True),
    sa.Column("rented_at", UtcDateTime, nullable=True),
    sa.Column("joined_at", UtcDateTime, nullable=True),
    sa.Column("idle_since", UtcDateTime, nullable=True),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_rentals_state", "state"),
    sa.Index("ix_rentals_failover_id", "failover_id"),
    # One machine on its way per failover: a second rent for the same failover cannot be recorded.
    sa.Index(
        "uq_rentals_in_flight_failover",
        "failover_id",
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT_RENTAL),
        postgresql_where=sa.text(IN_FLIGHT_RENTAL),
    ),
    # And one per instance for its standby (a rental no failover asked for).
    sa.Index(
        "uq_rentals_in_flight_standby",
        "instance_id",
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT_STANDBY),
        postgresql_where=sa.text(IN_FLIGHT_STANDBY),
    ),
)

# Which store this is: one row, made when the schema is first created. A control plane pinned to
# it (TAKEOVER_STORE_ID) refuses any other store, e.g. a new empty one where its own was lost.
store_identity = sa.Table(
    "store_identity",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Each node's health score, sampled by the leader (store/scores.py), for the console's charts.
node_scores = sa.Table(
    "node_scores",
    metadata,
    sa.Column("node_id", sa.Uuid, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Index("ix_node_scores_node_id_at", "node_id", "at"),
    sa.Index("ix_node_scores_at", "at"),
)
