"""Rate-limit counts in the store, for replicas that share no Redis: one row per key and window."""

from __future__ import annotations

import sqlalchemy as sa

from takeover.store.base import dialect_insert, transaction
from takeover.store.tables import rate_counts

Hits = dict[tuple[str, int], int]  # (key, window number): requests
_ROWS_PER_STATEMENT = 500  # three parameters a row: far under SQLite's 32,766


class RateCountRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._pruned_below = 0  # windows below this were deleted by this replica already

    def add(self, hits: Hits) -> Hits:
        """Add ``hits`` to the stored counts in one transaction; the totals, every replica's.

        Windows older than the one before the newest are deleted on the way.
        """
        if not hits:
            return {}
        totals: Hits = {}
        rows = [{"key": k, "window": w, "count": n} for (k, w), n in sorted(hits.items())]  # one lock order
        with transaction(self._engine) as conn:
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                values = dialect_insert(conn, rate_counts).values(rows[start : start + _ROWS_PER_STATEMENT])
                stmt = values.on_conflict_do_update(
                    index_elements=[rate_counts.c.key, rate_counts.c.window],
                    set_={"count": rate_counts.c.count + values.excluded.count},
                ).returning(rate_counts.c.key, rate_counts.c.window, rate_counts.c.count)
                totals.update({(key, window): int(n) for key, window, n in conn.execute(stmt)})
            oldest = max(window for _, window in hits) - 1
            if oldest > self._pruned_below:  # once per window, not on every add
                conn.execute(rate_counts.delete().where(rate_counts.c.window < oldest))
        self._pruned_below = max(self._pruned_below, oldest)
        return totals
