"""Reads and writes told apart by PostgreSQL's parser."""

import pytest

from takeover.regions.statements import is_write


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select qty from item where code = %s",
        "select * from item where code = %(code)s and name like 'a%%'",
        "SHOW server_version",
        "VALUES (1), (2)",
        "EXPLAIN SELECT * FROM item",
        "EXPLAIN ANALYZE SELECT 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ],
)
def test_reads(sql: str) -> None:
    assert not is_write(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO item VALUES (%s, %s)",
        "update item set qty = 1",
        "DELETE FROM item",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "WITH gone AS (DELETE FROM item RETURNING *) SELECT * FROM gone",
        "SELECT * FROM item FOR UPDATE",
        "SELECT * FROM (SELECT * FROM item FOR SHARE) locked",
        "EXPLAIN ANALYZE DELETE FROM item",
        "CREATE TABLE t (x int)",
        "SELECT 1; DELETE FROM item",
        "SET search_path = x",
        "this is not sql",
    ],
)
def test_writes_and_anything_unknown(sql: str) -> None:
    assert is_write(sql)
