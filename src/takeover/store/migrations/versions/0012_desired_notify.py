"""desired-state notifications: PostgreSQL NOTIFY when a node's instances change

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Every writer (any replica, any tool) that changes which instances a node runs, keeps warm or
hands over notifies ``takeover_desired`` with the node's id; PostgreSQL delivers it at commit,
so the replica holding that node's stream reads the committed state. SQLite has no
cross-process notifications: takeover.store.changes adds per-connection triggers there.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_FUNCTIONS = """
CREATE FUNCTION takeover_notify_node(node uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF node IS NOT NULL THEN
        PERFORM pg_notify('takeover_desired', node::text);
    END IF;
END $$;

CREATE FUNCTION takeover_instance_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM takeover_notify_node(OLD.node_id);
        PERFORM takeover_notify_node(OLD.standby_node_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM takeover_notify_node(NEW.node_id);
        PERFORM takeover_notify_node(NEW.standby_node_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION takeover_handover_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM takeover_notify_node(NEW.source_node_id);
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER takeover_instance_added_or_removed AFTER INSERT OR DELETE ON instances
    FOR EACH ROW EXECUTE FUNCTION takeover_instance_changed();
CREATE TRIGGER takeover_instance_moved AFTER UPDATE ON instances
    FOR EACH ROW WHEN (
        OLD.node_id IS DISTINCT FROM NEW.node_id
        OR OLD.epoch IS DISTINCT FROM NEW.epoch
        OR OLD.standby_node_id IS DISTINCT FROM NEW.standby_node_id
        OR OLD.snapshot_requested_at IS DISTINCT FROM NEW.snapshot_requested_at
        OR OLD.volume_id IS DISTINCT FROM NEW.volume_id
    ) EXECUTE FUNCTION takeover_instance_changed();
CREATE TRIGGER takeover_handover_opened AFTER INSERT ON failovers
    FOR EACH ROW WHEN (NEW.status = 'backing_up') EXECUTE FUNCTION takeover_handover_changed();
CREATE TRIGGER takeover_handover_moved AFTER UPDATE ON failovers
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status AND 'backing_up' IN (OLD.status, NEW.status)
    ) EXECUTE FUNCTION takeover_handover_changed();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTIONS + _TRIGGERS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER takeover_handover_moved ON failovers;"
            "DROP TRIGGER takeover_handover_opened ON failovers;"
            "DROP TRIGGER takeover_instance_moved ON instances;"
            "DROP TRIGGER takeover_instance_added_or_removed ON instances;"
            "DROP FUNCTION takeover_handover_changed(); DROP FUNCTION takeover_instance_changed();"
            "DROP FUNCTION takeover_notify_node(uuid);"
        )
