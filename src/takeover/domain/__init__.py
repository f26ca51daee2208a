"""Pure rules of takeover: no I/O, no framework, no clock reads (``now`` is a parameter)."""
