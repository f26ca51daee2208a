"""The only layer that drives I/O from domain decisions: services, monitor, executor, loop."""
