"""The clickhouse-driver (native TCP) path against the real engine via chdb.

See tests/native_server.py for how the server is provided.
"""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("clickhouse_driver", reason="clickhouse-driver is not installed")
pytest.importorskip("chdb", reason="chdb is not installed")

try:  # works whether or not tests/ becomes a package
    from tests.native_server import start_native_server, stop_native_server
except ImportError:  # pragma: no cover - depends on sys.path layout
    from native_server import start_native_server, stop_native_server

from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError, ServerException

SERVER_SIDE = {"server_side_params": True}


@pytest.fixture(scope="module")
def native_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("chdb-native-data")
    try:
        proc, port = start_native_server(str(data_dir), timeout=60)
    except RuntimeError as exc:
        pytest.skip(f"chdb native TCP server could not start: {exc}")
    yield proc, port, data_dir
    stop_native_server(proc)


@pytest.fixture
def client(native_server):
    _proc, port, _data_dir = native_server
    c = Client("127.0.0.1", port=port, connect_timeout=5, send_receive_timeout=30, settings={"max_execution_time": 30})
    yield c
    c.disconnect()


def test_roundtrip_map_datetime64_nested(client):
    client.execute("CREATE DATABASE IF NOT EXISTS monitoring_test")
    client.execute(
        """
        CREATE TABLE monitoring_test.spans (
            Timestamp DateTime64(9),
            ServiceName LowCardinality(String),
            SpanAttributes Map(LowCardinality(String), String),
            Duration UInt64,
            Events Nested(
                Timestamp DateTime64(9),
                Name LowCardinality(String)
            )
        ) ENGINE = MergeTree ORDER BY (ServiceName, Timestamp)
        """
    )
    ns = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20.123456789 UTC
    rows = [
        # DateTime64(9) from a Python int = raw nanosecond ticks (exact).
        (ns, "agent", {"llm.model": "gpt", "status": "ok"}, 1500, [ns + 1, ns + 2], ["start", "end"]),
        # ... from a datetime = microsecond precision only.
        (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "portal", {}, 7, [], []),
    ]
    inserted = client.execute(
        "INSERT INTO monitoring_test.spans "
        "(Timestamp, ServiceName, SpanAttributes, Duration, "
        "`Events.Timestamp`, `Events.Name`) VALUES",
        rows,
    )
    assert inserted == 2

    got = client.execute(
        "SELECT toUnixTimestamp64Nano(Timestamp), SpanAttributes, Duration, "
        "arrayMap(x -> toUnixTimestamp64Nano(x), `Events.Timestamp`), `Events.Name` "
        "FROM monitoring_test.spans "
        "WHERE ServiceName = {svc:String} AND Timestamp >= {since:DateTime64(9)} "
        "AND Duration > {min_duration:UInt64}",
        # DateTime64 params: pass a string (or int ticks); a datetime is sent
        # by clickhouse-driver without its fractional seconds.
        {"svc": "agent", "since": "2023-11-14 22:13:20.123456789", "min_duration": 1000},
        settings=SERVER_SIDE,
    )
    assert got == [
        (ns, {"llm.model": "gpt", "status": "ok"}, 1500, [ns + 1, ns + 2], ["start", "end"]),
    ]

    ((ts,),) = client.execute(
        "SELECT Timestamp FROM monitoring_test.spans WHERE ServiceName = {svc:String}",
        {"svc": "portal"},
        settings=SERVER_SIDE,
    )
    assert ts == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)

    assert client.execute("SELECT {x:UInt32} + 1", {"x": 41}, settings=SERVER_SIDE) == [(42,)]
    assert client.execute("SELECT %(x)s", {"x": "a"}) == [("a",)]


def test_errors(client):
    with pytest.raises(ServerException) as excinfo:
        client.execute("SELEC 1")
    assert excinfo.value.code == 62  # SYNTAX_ERROR
    assert client.execute("SELECT 1") == [(1,)]  # client recovers


def test_connection_refused():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError):
        Client("127.0.0.1", port=port, connect_timeout=1).execute("SELECT 1")
