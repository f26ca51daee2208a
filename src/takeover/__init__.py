"""takeover: keeps workloads alive on a pool of nodes."""

__version__ = "0.1.0"
