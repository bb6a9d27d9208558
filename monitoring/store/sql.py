"""SQL fragments that carry their own bound parameters, composed by concatenation.

`Sql("ProjectId = {project:String}", project=pid)` is a piece of a statement plus the values of its
`{name:Type}` placeholders (ClickHouse's typed query parameters, bound server-side by
`monitoring.store.clickhouse`). Pieces compose with `Sql(...)`, `+` and `Sql.join`, and their parameters
travel with them, so no value is ever formatted into the text. Two pieces may use the same
parameter name only with the same value (a ValueError otherwise: a programming error).
Identifiers (table names) are plain `str` pieces that come from `monitoring.store.schema` only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from monitoring.store import clickhouse

# Times as the engine keeps them: DateTime64(9) values travel as integer ns since the epoch.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_nanos(value: dt.datetime) -> int:
    """An aware datetime as integer nanoseconds since the Unix epoch (exact to the microsecond)."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def from_nanos(ns: int) -> dt.datetime:
    """Integer nanoseconds since the epoch as an aware UTC datetime (truncated to microseconds)."""
    return EPOCH + dt.timedelta(microseconds=int(ns) // 1000)


def _merge(into: dict[str, Any], params: Mapping[str, Any]) -> None:
    for name, value in params.items():
        if name in into and into[name] != value:
            raise ValueError(f"query parameter {name!r} bound to two different values")
        into[name] = value


class Sql:
    """Text with `{name:Type}` placeholders and the values they are bound to."""

    __slots__ = ("params", "text")
    text: str
    params: dict[str, Any]

    def __init__(self, *pieces: str | Sql, **params: Any) -> None:
        texts: list[str] = []
        merged: dict[str, Any] = {}
        for piece in pieces:
            if isinstance(piece, Sql):
                texts.append(piece.text)
                _merge(merged, piece.params)
            else:
                texts.append(piece)
        _merge(merged, params)
        self.text = "".join(texts)
        self.params = merged

    def __add__(self, other: str | Sql) -> Sql:
        return Sql(self, other)

    def __radd__(self, other: str) -> Sql:
        return Sql(other, self)

    def __bool__(self) -> bool:
        return bool(self.text.strip())

    def __repr__(self) -> str:
        return f"Sql({self.text!r}, {self.params!r})"

    @staticmethod
    def join(separator: str, pieces: Iterable[str | Sql]) -> Sql:
        """The non-empty pieces with `separator` between them."""
        kept = [p for p in pieces if (p if isinstance(p, Sql) else p.strip())]
        out: list[str | Sql] = []
        for i, piece in enumerate(kept):
            if i:
                out.append(separator)
            out.append(piece)
        return Sql(*out)

    @staticmethod
    def all(conditions: Iterable[str | Sql]) -> Sql:
        """Conditions joined by AND, each parenthesised; `1` when there are none."""
        parts = [Sql("(", c, ")") for c in conditions if (c if isinstance(c, Sql) else c.strip())]
        return Sql.join(" AND ", parts) if parts else Sql("1")


def run(statement: Sql, *, tag: str) -> list[dict[str, Any]]:
    """Rows of a SELECT, as dicts. `tag` names the question (logged, timed and sent to ClickHouse)."""
    return clickhouse.query(statement.text, statement.params, tag=tag)


def run_one(statement: Sql, *, tag: str) -> dict[str, Any]:
    rows = run(statement, tag=tag)
    return rows[0] if rows else {}


def execute(statement: Sql, *, tag: str) -> int:
    """A statement that returns no rows (INSERT ... SELECT, DDL); the rows it wrote (clickhouse.command)."""
    return clickhouse.command(statement.text, statement.params, tag=tag)
