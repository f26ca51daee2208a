"""A deterministic simulation of the whole system (``takeover sim``; docs/simulation.md).

The control plane's own code (monitor, executor, standby controller, leadership, the SQL store)
and agents built from the agent's own decisions (``plan``, ``Fence``) run on virtual time over a
simulated network, with faults drawn from one seed: the same seed gives the same run, event for
event, and a violated invariant prints the seed that replays it.

The entry point is ``takeover.sim.run.simulate``; this package imports nothing itself, so the CLI
can name the scenarios and faults without loading the server.
"""
