"""The one way into ClickHouse.

Everything above this module is backend-agnostic SQL with typed `{name:Type}` placeholders:
- embedded: the real engine in-process (chdb) on a data folder, when CLICKHOUSE_HOST is unset;
- server: the native protocol (clickhouse-driver) with server-side typed parameters.

Every call is tagged and timed in the log, and every failure surfaces as `ClickHouseError` with a
`kind` the caller can act on: "unavailable", "timeout" or "query".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

log = logging.getLogger(__name__)

UNAVAILABLE, TIMEOUT, QUERY = "unavailable", "timeout", "query"

# ClickHouse error codes that mean "try again later", not "your query is wrong".
_TIMEOUT_CODES = {159, 160, 209}  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT
# io, EOF, cannot open, network, memory, readonly, keeper, and load a retry outlives: 202
# TOO_MANY_SIMULTANEOUS_QUERIES, 252 TOO_MANY_PARTS (inserts faster than merges).
_UNAVAILABLE_CODES = {3, 32, 76, 202, 210, 241, 242, 252, 999}


class ClickHouseError(Exception):
    """Any failure talking to ClickHouse. `kind` says whether to retry (unavailable/timeout) or not."""

    def __init__(self, message: str, *, kind: str, tag: str = "", code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.tag = tag
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.kind in (UNAVAILABLE, TIMEOUT)


def _code_of(message: str) -> int | None:
    # Both backends word server errors as "Code: 62. DB::Exception: ...".
    if "Code:" in message:
        try:
            return int(message.split("Code:", 1)[1].split(".", 1)[0].strip())
        except ValueError:
            return None
    return None


def _kind_of_code(code: int | None) -> str:
    if code in _TIMEOUT_CODES:
        return TIMEOUT
    if code in _UNAVAILABLE_CODES:
        return UNAVAILABLE
    return QUERY


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# --- embedded backend -------------------------------------------------------------------------

_ESCAPED = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"})


def _chdb_param(value: Any) -> str:
    """A parameter as ClickHouse parses it for `{name:Type}`: the Escaped text format."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.translate(_ESCAPED)
    if isinstance(value, tuple):  # a Tuple(...) value
        return "(" + ",".join(_chdb_literal(item) for item in value) + ")"
    if isinstance(value, list):  # an Array(...) value
        return "[" + ",".join(_chdb_literal(item) for item in value) + "]"
    if isinstance(value, dt.datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _chdb_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPED).replace("'", "\\'") + "'"
    return _chdb_param(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to ClickHouse")


def _decode_json_value(value: Any, type_name: str) -> Any:
    """Make embedded results look like clickhouse-driver's: dates and datetimes as Python objects."""
    if value is None:
        return None
    base = type_name.removeprefix("LowCardinality(").removeprefix("Nullable(")
    if base.startswith("Date32") or base == "Date" or base.startswith("Date)"):
        return dt.date.fromisoformat(value)
    if base.startswith("DateTime"):
        return _utc(dt.datetime.fromisoformat(value[:26]))
    return value


def _nanos_text(value: int | list[int]) -> str | list[str]:
    """DateTime64(9) for the JSON input formats, every digit kept: "ssssssssss.nnnnnnnnn".

    A JSON number is read as seconds (a ns count overflows), and the seconds must be zero-padded to
    10 digits: engine 26.9 reads a short form such as "0.000000000" as a day.month date and fails.
    """
    if isinstance(value, list):
        return [_nanos_digits(v) for v in value]
    return _nanos_digits(value)


def _nanos_digits(value: int) -> str:
    seconds, nanos = divmod(int(value), 1_000_000_000)
    return f"{seconds:010d}.{nanos:09d}"


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default).encode


def json_rows(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], nanos: frozenset = frozenset()) -> str:
    """`rows` (dicts keyed by `columns`; ints of ns in the `nanos` columns) as the data of an embedded
    insert: JSONCompactEachRow, one JSON array per row in column order, the rows separated by commas.

    The data section after FORMAT is read by the JSON parser, never as SQL. Arrays rather than
    objects: ~15% cheaper for the engine to read. Commas between rows, which that format accepts: so
    the whole batch is one C call (a list of rows with its outer brackets cut off), and two such
    bodies joined by a comma are one body (the ingest write-behind queue's coalesced inserts)."""
    if nanos:
        plain = [c not in nanos for c in columns]
        values = [
            [row[c] if keep else _nanos_text(row[c]) for c, keep in zip(columns, plain, strict=True)] for row in rows
        ]
    else:
        values = [[row[c] for c in columns] for row in rows]
    return _encode_json(values)[1:-1]


def rows_from_json_rows(columns: Sequence[str], body: str, nanos: frozenset = frozenset()) -> list[dict[str, Any]]:
    """The rows of a `json_rows` body again (dicts keyed by `columns`, ns as ints): its rare error
    path, where the rows the engine refuses are looked for one by one."""
    rows = []
    for values in json.loads("[" + body + "]"):
        row = dict(zip(columns, values, strict=True))
        for column in nanos:
            value = row[column]
            row[column] = [_nanos_int(v) for v in value] if isinstance(value, list) else _nanos_int(value)
        rows.append(row)
    return rows


def _nanos_int(text: str) -> int:
    seconds, _, nanos = text.partition(".")
    return int(seconds) * 1_000_000_000 + int(nanos or 0)


# Called once per process when the embedded engine first opens (the app sets it: schema.ensure_schema),
# so a fresh checkout needs no separate init step.
on_embedded_open: Callable[[], object] | None = None


class _Embedded:
    """chdb on a data folder. One connection per thread: chdb releases the GIL, so threads run in parallel."""

    name = "embedded"

    def __init__(self, config: Mapping[str, Any]):
        self.path = config["DATA_DIR"]
        self.timeout = config["QUERY_TIMEOUT"]
        self._local = threading.local()
        self._opened = False
        self._open_lock = threading.Lock()

    def _first_open(self) -> None:
        with self._open_lock:
            if self._opened:
                return
            self._opened = True  # before the hook: the hook's own queries come back through here
            if on_embedded_open is not None:
                on_embedded_open()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import chdb

            try:
                conn = chdb.connect(self.path)
                conn.query(f"SET max_execution_time = {float(self.timeout)}")
                conn.query("SET session_timezone = 'UTC'")  # DateTime text is read back as UTC
                conn.query("SET output_format_json_quote_64bit_integers = 0")
                conn.query("SET output_format_json_quote_decimals = 0")
                # LLVM-compiling the counting rules' lambdas costs more than running them (measured:
                # 1.2 s vs 0.17 s for a trace's flags); our queries are many and small.
                conn.query("SET compile_expressions = 0")
            except Exception as exc:  # the folder is locked by another process, unreadable, ...
                raise ClickHouseError(
                    f"Cannot open the embedded ClickHouse data folder {self.path}: {exc}", kind=UNAVAILABLE
                ) from exc
            self._local.conn = conn
            if not self._opened:
                self._first_open()
        return conn

    def query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        result = self._conn().query(sql, "JSONCompact", params={k: _chdb_param(v) for k, v in params.items()})
        raw = result.bytes()
        if not raw:
            return []
        payload = json.loads(raw)
        meta = payload["meta"]
        names = [column["name"] for column in meta]
        types = [column["type"] for column in meta]
        needs_decoding = [t for t in types if "Date" in t]
        rows = []
        for values in payload["data"]:
            if needs_decoding:
                values = [_decode_json_value(v, t) for v, t in zip(values, types, strict=False)]
            rows.append(dict(zip(names, values, strict=False)))
        return rows

    def command(self, sql: str, params: Mapping[str, Any]) -> int:
        result = self._conn().query(sql, "CSV", params={k: _chdb_param(v) for k, v in params.items()})
        return int(result.rows_written())

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], nanos: frozenset) -> None:
        self.insert_json_rows(table, columns, json_rows(columns, rows, nanos))

    def insert_json_rows(self, table: str, columns: Sequence[str], body: str) -> None:
        # Name the columns: without a list, chdb 4.4 silently drops rows into tables with MATERIALIZED columns.
        names = ", ".join(f"`{c}`" for c in columns)
        self._conn().query(f"INSERT INTO {table} ({names}) FORMAT JSONCompactEachRow\n{body}\n", "CSV")

    def classify(self, exc: Exception) -> tuple[str, int | None]:
        code = _code_of(str(exc))
        return _kind_of_code(code), code


# --- server backend ---------------------------------------------------------------------------


class _Server:
    """clickhouse-driver over the native protocol, one client per thread."""

    name = "server"

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self._local = threading.local()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from clickhouse_driver import Client

            c = self.config
            client = Client(
                host=c["HOST"],
                port=c["PORT"],
                user=c["USER"],
                password=c["PASSWORD"],
                secure=c["SECURE"],
                connect_timeout=c["CONNECT_TIMEOUT"],
                send_receive_timeout=c["QUERY_TIMEOUT"],
                sync_request_timeout=min(5.0, c["CONNECT_TIMEOUT"]),
                settings={
                    "server_side_params": True,
                    "max_execution_time": max(1, math.ceil(c["QUERY_TIMEOUT"])),  # 0 would mean unlimited
                    "session_timezone": "UTC",
                    # On a cluster our IN/JOIN subqueries read Distributed tables sharded by TraceId:
                    # each shard may answer them locally (the default, "deny", refuses them).
                    "distributed_product_mode": "local",
                    # An INSERT into a Distributed table returns once every shard has its rows: the
                    # receiver's 200 means stored, and the settler's next read sees what it wrote
                    # (queued in the background, half the spans were missing; tests/test_cluster.py).
                    "distributed_foreground_insert": 1,
                    "compile_expressions": 0,  # see _Embedded._conn
                },
                client_name="agent-portal-monitoring",
            )
            self._local.client = client
        return client

    def query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows, columns = self._client().execute(sql, dict(params), with_column_types=True)
        names = [name for name, _ in columns]
        out = []
        for values in rows:
            row = dict(zip(names, values, strict=False))
            for key, value in row.items():
                if isinstance(value, dt.datetime):
                    row[key] = _utc(value)
            out.append(row)
        return out

    def command(self, sql: str, params: Mapping[str, Any]) -> int:
        client = self._client()
        client.execute(sql, dict(params) or None)
        return int(client.last_query.progress.written_rows) if client.last_query else 0

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], nanos: frozenset) -> None:
        # The driver takes a DateTime64(9) value as an int of nanoseconds as it is.
        data = [tuple(row[c] for c in columns) for row in rows]
        self._client().execute(f"INSERT INTO {table} ({', '.join(f'`{c}`' for c in columns)}) VALUES", data)

    def classify(self, exc: Exception) -> tuple[str, int | None]:
        from clickhouse_driver import errors

        # clickhouse-driver drops its connection on any error and reconnects on the next query: a
        # new session, without the temporary tables this thread made (monitoring/queries/live.py
        # knows its session by this client). A new client says so.
        self._local.client = None
        if isinstance(exc, (errors.NetworkError, errors.SocketTimeoutError, ConnectionError, OSError, EOFError)):
            if isinstance(exc, (errors.SocketTimeoutError, TimeoutError)):
                return TIMEOUT, getattr(exc, "code", None)
            return UNAVAILABLE, getattr(exc, "code", None)
        code = getattr(exc, "code", None) or _code_of(str(exc))
        return _kind_of_code(code), code


# --- public API -------------------------------------------------------------------------------

_lock = threading.Lock()
_backend_instance: _Embedded | _Server | None = None


@receiver(setting_changed)
def _reset_on_settings_change(*, setting, **kwargs):
    global _backend_instance
    if setting == "CLICKHOUSE":
        _backend_instance = None


def backend() -> _Embedded | _Server:
    global _backend_instance
    instance = _backend_instance
    if instance is None:
        with _lock:
            if _backend_instance is None:
                config = settings.CLICKHOUSE
                _backend_instance = _Server(config) if config["HOST"] else _Embedded(config)
            instance = _backend_instance
    return instance


def is_embedded() -> bool:
    return isinstance(backend(), _Embedded)


def database() -> str:
    return settings.CLICKHOUSE["DATABASE"]


# Set by monitoring.prometheus when it loads: (tag, action, seconds, outcome) -> None. Kept as a hook so
# this module imports no metrics library and works without one.
on_timed: Callable[[str, str, float, str], None] | None = None


def _observe(tag: str, action: str, started: float, outcome: str) -> None:
    if on_timed is not None:
        on_timed(tag, action, time.perf_counter() - started, outcome)


def _run(tag: str, action: str, fn, *args):
    impl = backend()
    started = time.perf_counter()
    try:
        result = fn(*args)
    except ClickHouseError as exc:
        exc.tag = tag
        _observe(tag, action, started, exc.kind)
        log.warning("clickhouse %s tag=%s backend=%s failed: %s", action, tag, impl.name, exc)
        raise
    except Exception as exc:
        kind, code = impl.classify(exc)
        elapsed = (time.perf_counter() - started) * 1000
        # First line only: a failed INSERT's message can quote span data, which does not belong in logs.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        log.warning(
            "clickhouse %s tag=%s backend=%s kind=%s ms=%.1f failed: %s",
            action,
            tag,
            impl.name,
            kind,
            elapsed,
            message[:500],
        )
        _observe(tag, action, started, kind)
        raise ClickHouseError(message, kind=kind, tag=tag, code=code) from exc
    _observe(tag, action, started, "ok")
    elapsed = (time.perf_counter() - started) * 1000
    log.debug("clickhouse %s tag=%s backend=%s ms=%.1f", action, tag, impl.name, elapsed)
    return result


def query(sql: str, params: Mapping[str, Any] | None = None, *, tag: str) -> list[dict[str, Any]]:
    """Run a SELECT with `{name:Type}` placeholders bound to `params`; rows as dicts."""
    impl = backend()
    return _run(tag, "query", impl.query, sql, params or {})


def query_one(sql: str, params: Mapping[str, Any] | None = None, *, tag: str) -> dict[str, Any]:
    rows = query(sql, params, tag=tag)
    return rows[0] if rows else {}


def command(sql: str, params: Mapping[str, Any] | None = None, *, tag: str) -> int:
    """Run DDL or another statement that returns no rows. Returns the rows it wrote, as the engine
    counts them: an INSERT's rows plus those its materialized views wrote (0 for DDL)."""
    impl = backend()
    with _in_flight():
        written = _run(tag, "command", impl.command, sql, params or {})
    _wrote()
    return written


def insert(
    table: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    tag: str,
    nanos_columns: Iterable[str] = (),
) -> None:
    """Insert rows (dicts keyed by column) into `table`, a name from our own schema module.

    `nanos_columns` hold DateTime64(9) values as ints of nanoseconds since the epoch (or lists of them).
    """
    if not rows:
        return
    impl = backend()
    with _in_flight():
        _run(tag, "insert", impl.insert, table, columns, rows, frozenset(nanos_columns))
    _wrote()


def insert_json_rows(table: str, columns: Sequence[str], body: str, *, tag: str) -> None:
    """Insert a `json_rows` body (embedded engine only: the server's client takes Python values,
    use `insert`) into `table`, a name from our own schema module. Raises ClickHouseError."""
    impl = backend()
    if not isinstance(impl, _Embedded):
        raise TypeError("insert_json_rows needs the embedded engine")
    if not body:
        return
    with _in_flight():
        _run(tag, "insert", impl.insert_json_rows, table, columns, body)
    _wrote()


# The writes (inserts and other statements) under way in this process, by when each began
# (time.time_ns(), the engine's clock on this machine): see oldest_write_in_flight_ns.
_writing: dict[int, int] = {}
_writing_lock = threading.Lock()
_writing_ids = itertools.count()


@contextlib.contextmanager
def _in_flight() -> Iterator[None]:
    key = next(_writing_ids)
    with _writing_lock:
        _writing[key] = time.time_ns()
    try:
        yield
    finally:
        with _writing_lock:
            del _writing[key]


def oldest_write_in_flight_ns() -> int | None:
    """When the oldest write this process has under way began (ns since the epoch), None when none.

    A row a write stamps with `now64()` (otel_spans.InsertedAt) is stamped at or after this instant
    and may not be visible to readers until the write returns. In embedded mode this process is the
    data folder's only writer, so no row stamped before `min(this, now)` can still appear: the
    settler reads up to there without re-reading an overlap (monitoring/semantics/settle.py)."""
    with _writing_lock:
        return min(_writing.values(), default=None)


# How many writes this process has made (inserts and other statements): answers remembered for a
# moment (a trace's invocations) are valid only while it has not moved.
_writes = 0


def _wrote() -> None:
    global _writes
    _writes += 1


def writes() -> int:
    """A number that changes whenever this process writes to ClickHouse."""
    return _writes


def session() -> object:
    """This thread's connection (a ClickHouse session): temporary tables live as long as it does."""
    impl = backend()
    return impl._conn() if isinstance(impl, _Embedded) else impl._client()


def server_version() -> str:
    return query_one("SELECT version() AS v", tag="health.version").get("v", "")
