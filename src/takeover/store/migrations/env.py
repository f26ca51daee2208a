"""Alembic environment: the engine comes from takeover.store.engine.migrate."""

from __future__ import annotations

from alembic import context

from takeover.store.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":  # a migration may wait for locks and take long
        connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
        connection.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
