"""Leader leases beyond the store's own (store/leases.py): Redis, found directly or via Sentinel."""
