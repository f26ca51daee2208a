"""Is a statement a write? Decided by PostgreSQL's own parser (pglast), not a regex.

Read-only means: only SELECT / SHOW / VALUES / EXPLAIN of a read, with no
data-modifying CTE and no row lock anywhere in the tree. Anything else is a write, including
what cannot be parsed: a statement we do not understand must not go to a read-only replica by
mistake. Functions with side effects (nextval) look like reads; the read-only connection of a
replica region refuses them on the server, the second guard.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError

_READ_STATEMENTS = (ast.SelectStmt, ast.VariableShowStmt, ast.ExplainStmt)
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


@functools.lru_cache(maxsize=4096)
def is_write(sql: str) -> bool:
    try:
        statements = parse_sql(_PLACEHOLDER.sub(_server_side, sql))
    except ParseError:
        return True
    return any(_writes(raw.stmt) for raw in statements)


def _server_side(match: re.Match[str]) -> str:
    """psycopg's %s / %(name)s placeholders become PostgreSQL's $1 so the parser accepts them."""
    return "%" if match.group(0) == "%%" else "$1"


def _writes(statement: Any) -> bool:
    if not isinstance(statement, _READ_STATEMENTS):
        return True
    if isinstance(statement, ast.ExplainStmt) and any(
        getattr(option, "defname", None) == "analyze" for option in statement.options or ()
    ):
        return _writes(statement.query)
    return _contains_write(statement)


def _contains_write(node: Any) -> bool:
    if isinstance(node, _WRITES):
        return True
    if isinstance(node, ast.SelectStmt) and node.lockingClause:
        return True
    if isinstance(node, ast.Node):
        return any(_contains_write(getattr(node, name)) for name in getattr(type(node), "__slots__", ()))
    if isinstance(node, tuple | list):
        return any(_contains_write(item) for item in node)
    return False
