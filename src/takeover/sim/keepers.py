"""The keepers of a simulated node's runners (agent.keeper): each wakes at the fence deadline
its agent last wrote and stops its runner if the agent has not moved the deadline on by then."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from takeover.sim.agent import SimAgent


class Keepers:
    def __init__(self, agent: SimAgent) -> None:
        self.agent = agent
        self.written = 0  # they follow the deadline written last

    def watch(self, deadline: float | None) -> None:
        agent = self.agent
        if deadline is None or not agent.models.keepers:
            return
        self.written += 1
        written = self.written

        def look() -> None:
            if not agent.up or written != self.written or agent.fence.deadline is None:
                return
            if agent.mono() <= agent.fence.deadline:  # moved on by witnesses' vouches meanwhile
                agent.world.at(agent.fence.deadline + 0.001, look)
                return
            for runner in agent.runners.values():
                if runner.run is not None and runner.run.stopped is None:
                    agent.loads.stop(runner.run, "its keeper: fence deadline passed")

        agent.world.at(deadline + 0.001, look)
