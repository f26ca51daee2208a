"""route notifications: PostgreSQL NOTIFY when an instance's route may have changed

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

A route is an instance's name, epoch, state and runner's address; any writer that changes one
notifies ``takeover_routes`` (no payload: watchers read the routes again), delivered at commit
to every replica, so a proxy follower watching any replica hears of a failover at once.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_UP = """
CREATE FUNCTION takeover_route_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('takeover_routes', '');
    RETURN NULL;
END $$;

CREATE TRIGGER takeover_route_added_or_removed AFTER INSERT OR DELETE ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION takeover_route_changed();
CREATE TRIGGER takeover_route_moved AFTER UPDATE ON instances
    FOR EACH ROW WHEN (
        OLD.endpoint IS DISTINCT FROM NEW.endpoint
        OR OLD.state IS DISTINCT FROM NEW.state
        OR OLD.epoch IS DISTINCT FROM NEW.epoch
        OR OLD.node_id IS DISTINCT FROM NEW.node_id
        OR OLD.name IS DISTINCT FROM NEW.name
    ) EXECUTE FUNCTION takeover_route_changed();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER takeover_route_moved ON instances;"
            "DROP TRIGGER takeover_route_added_or_removed ON instances;"
            "DROP FUNCTION takeover_route_changed();"
        )
