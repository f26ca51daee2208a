"""Routing one statement (or one borrowed connection) across a group's regions, written once.

``route`` is a flow without I/O, in the shape of httpx's auth flows: started when a try failed,
it records what that said about the region, then yields the next region to try and receives how
that went, until it raises. A sync and an async shell (group.py) do the trying: take a
connection, run, give it back or close it; an answer ends the call there, so the common case
costs no generator. The rules hold alike for both shells: a region that could not be
reached is skipped (nothing was sent); an error that broke the connection is the region's, and
the next region is tried only when the statement may run again (a read), since a write that was
sent may have committed; any other error (a constraint, a typo, a statement timeout) is the
caller's and goes to the caller untouched. When no region is left, the group says so.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import NoReturn, Protocol

from takeover.domain.regions import AllRegionsFailed
from takeover.regions.drivers import Unreachable


# Not frozen: a frozen dataclass's __init__ costs 150 ns more, on the path of every query.
@dataclass(slots=True)
class NotConnected:
    """No connection could be opened: nothing reached the server."""

    error: Unreachable


@dataclass(slots=True)
class Raised:
    error: BaseException
    broken: bool  # the connection broke: the region's fault, not the caller's
    watched: int | None  # the in-flight entry of the try (the hang watchdog's)


Failure = NotConnected | Raised


class Book(Protocol):
    """Where the flow learns the candidates and records what each try said about its region."""

    def unreachable(self, connection_id: str, error: Unreachable) -> None: ...
    def raised(self, connection_id: str, outcome: Raised) -> None: ...
    def all_failed(self) -> AllRegionsFailed: ...


Flow = Generator[str, Failure, NoReturn]


def route(book: Book, candidates: list[str], failure: Failure, again: bool) -> Flow:
    """After the try of ``candidates[0]`` failed as ``failure``. ``again``: whether a statement
    that reached a server whose connection then broke may go to the next region (a read; not a
    write, not a borrowed connection whose caller ran its own code on it)."""
    tried = candidates[0]
    for connection_id in candidates[1:]:
        _record(book, tried, failure, again)
        tried = connection_id
        failure = yield connection_id
    raise book.all_failed() from _record(book, tried, failure, again)


def _record(book: Book, connection_id: str, failure: Failure, again: bool) -> BaseException:
    """The failure, once recorded; raised instead when the next region may not be tried."""
    if isinstance(failure, NotConnected):  # nothing was sent: the next region is safe
        book.unreachable(connection_id, failure.error)
        return failure.error
    book.raised(connection_id, failure)
    if not failure.broken or not again:
        raise failure.error  # the caller's error; or a statement that may have run: never twice
    return failure.error
