"""The routing of one statement across a group's regions, without a database: route() is fed
how each try went, as the sync and async shells of group.py feed it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from takeover.domain.regions import AllRegionsFailed
from takeover.regions.drivers import Rows, Unreachable
from takeover.regions.routing import Failure, NotConnected, Raised, route


@dataclass
class Book:
    said: list[tuple[str, str]] = field(default_factory=list)
    ended: list[int | None] = field(default_factory=list)  # in-flight entries closed
    errors: list[str] = field(default_factory=list)

    def unreachable(self, connection_id: str, error: Unreachable) -> None:
        self.said.append(("unreachable", connection_id))
        self.errors.append(str(error))

    def raised(self, connection_id: str, outcome: Raised) -> None:
        self.said.append(("broken" if outcome.broken else "refused", connection_id))
        self.ended.append(outcome.watched)

    def all_failed(self) -> AllRegionsFailed:
        return AllRegionsFailed("every region failed")


Outcome = Rows | Failure


def call(
    book: Book, regions: list[str], outcomes: dict[str, Outcome], again: bool
) -> tuple[list[str], object]:
    """What a shell does: each region tried, and the rows (or the exception) the call ends with."""
    tried = [regions[0]]
    outcome = outcomes[regions[0]]
    if isinstance(outcome, list):
        return tried, outcome
    flow = route(book, regions, outcome, again)
    try:
        while True:
            region = next(flow) if len(tried) == 1 else flow.send(outcome)
            tried.append(region)
            outcome = outcomes[region]
            if isinstance(outcome, list):
                return tried, outcome
    except Exception as exc:  # noqa: BLE001 - what the caller of a shell would get
        return tried, exc


DOWN = NotConnected(Unreachable("connection refused", timed_out=False))
ROWS: Rows = [(1,)]
ANSWER = ROWS
GONE = ConnectionResetError("server closed the connection")


def test_a_region_that_cannot_be_reached_is_skipped_and_the_next_answers() -> None:
    book = Book()
    assert call(book, ["a", "b"], {"a": DOWN, "b": ANSWER}, again=False) == (["a", "b"], ROWS)
    assert (book.said, book.errors) == ([("unreachable", "a")], ["connection refused"]), "a write too"


def test_a_read_whose_connection_broke_runs_on_the_next_region() -> None:
    book = Book()
    tried, rows = call(book, ["a", "b", "c"], {"a": Raised(GONE, True, 1), "b": DOWN, "c": ANSWER}, True)
    assert (tried, rows) == (["a", "b", "c"], ROWS)
    assert book.said == [("broken", "a"), ("unreachable", "b")]
    assert book.ended == [1], "the broken statement's in-flight entry ends"


def test_a_sent_write_whose_connection_broke_is_never_sent_twice() -> None:
    book = Book()
    tried, error = call(book, ["a", "b"], {"a": Raised(GONE, True, 1), "b": ANSWER}, again=False)
    assert (tried, error, book.said) == (["a"], GONE, [("broken", "a")])


@pytest.mark.parametrize("again", [True, False])
def test_the_caller_s_own_error_goes_to_the_caller_and_no_other_region_is_tried(again: bool) -> None:
    book = Book()
    typo = SyntaxError("syntax error at or near SELEC")
    tried, error = call(book, ["a", "b"], {"a": Raised(typo, False, 1), "b": ANSWER}, again)
    assert (tried, error, book.said) == (["a"], typo, [("refused", "a")])


@pytest.mark.parametrize("last", [DOWN, Raised(GONE, True, 2)])
def test_when_no_region_answers_the_group_says_so_with_the_last_error_as_cause(last: Outcome) -> None:
    book = Book()
    tried, error = call(book, ["a", "b"], {"a": DOWN, "b": last}, again=True)
    assert tried == ["a", "b"]
    assert isinstance(error, AllRegionsFailed)
    assert error.__cause__ is (GONE if isinstance(last, Raised) else DOWN.error)


def test_a_single_region_that_fails_ends_the_call_at_once() -> None:
    book = Book()
    tried, error = call(book, ["a"], {"a": DOWN}, again=True)
    assert (tried, type(error)) == (["a"], AllRegionsFailed)
