"""A real ClickHouse cluster on loopback for tests: shard processes of the embedded engine, each
serving the native protocol (tests/native_server.py) from its own data folder, with a
`remote_servers` entry naming every shard, and the schema `clickhouse_init --cluster` makes.

What runs and what is only parse-checked (chdb 4.4 / engine 26.9, clickhouse-local inside):
- Runs: `Distributed` tables over `_local` tables on every shard, sharded by `cityHash64(TraceId)`,
  the materialized views per shard, inserts through the Distributed table, every read the portal
  makes (server mode, clickhouse-driver, to the first node: the querying node).
- Applied per node, not through the DDL queue: clickhouse-local refuses `ON CLUSTER` ("Replicated
  DDL queries are disabled", code 392; a server runs it through Keeper's DDL queue), so each
  statement of `schema.cluster_statements` is run on every node without its `ON CLUSTER` clause.
- Non-replicated equivalents: `Replicated*MergeTree('/clickhouse/tables/{shard}/...', '{replica}',
  args)` becomes `*MergeTree(args)` (one replica per shard): replication needs Keeper (code 225
  "Can't create replicated table without ZooKeeper"), and there is no Keeper on the test machines.
- Parse-checked only: every statement exactly as `clickhouse_init --cluster` prints it (ON CLUSTER,
  Replicated engines and their Keeper paths) goes through the engine's parser (`formatQuery`).
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field

from native_server import start_native_server, stop_native_server

from monitoring.store import schema

CLUSTER = "monitoring"

_ON_CLUSTER = re.compile(r" ON CLUSTER `[A-Za-z0-9_-]+`")
# Replicated<Kind>MergeTree('<keeper path>', '{replica}'[, engine args]) -> <Kind>MergeTree([engine args])
_REPLICATED = re.compile(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?")


def node_statement(sql: str) -> str:
    """A cluster statement as one node runs it here: without ON CLUSTER, without replication."""
    return _REPLICATED.sub(r"\1(", _ON_CLUSTER.sub("", sql))


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _config(ports: list[int], shard: int) -> str:
    shards = "".join(f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>" for p in ports)
    return (
        f"    <remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>\n"
        f"    <macros><shard>{shard:02d}</shard><replica>node{shard}</replica></macros>\n"
    )


@dataclass
class Cluster:
    """Running shard processes; `ports[0]` is the querying node the portal talks to."""

    ports: list[int]
    procs: list = field(default_factory=list)
    folder: str = ""

    def client(self, node: int = 0):
        from clickhouse_driver import Client

        return Client("127.0.0.1", port=self.ports[node], connect_timeout=5, send_receive_timeout=60)

    def execute(self, node: int, sql: str, params=None):
        client = self.client(node)
        try:
            return client.execute(sql, params, settings={"server_side_params": True} if params else None)
        finally:
            client.disconnect()

    def settings(self, base: dict) -> dict:
        """The portal's CLICKHOUSE setting in server mode, pointing at the querying node."""
        return {**base, "HOST": "127.0.0.1", "PORT": self.ports[0], "USER": "default", "PASSWORD": ""}

    def apply_schema(self, ttl_days: int = 0) -> list[str]:
        """Run `schema.cluster_statements` on every node (see the module's docstring); returns them."""
        statements = schema.cluster_statements(CLUSTER, ttl_days)
        for sql in statements:
            for node in range(len(self.ports)):
                self.execute(node, node_statement(sql))
        return statements

    def stop(self) -> None:
        for proc in self.procs:
            stop_native_server(proc)
        self.procs = []
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(shards: int = 2, timeout: float = 60) -> Cluster:
    """Start `shards` engine processes on loopback forming cluster `monitoring`; RuntimeError when
    one cannot start (the caller skips with the reason)."""
    ports = _free_ports(shards)
    cluster = Cluster(ports, folder=tempfile.mkdtemp(prefix="apm-cluster-"))
    try:
        for i, port in enumerate(ports, start=1):
            proc, _ = start_native_server(
                f"{cluster.folder}/shard{i}", timeout=timeout, port=port, extra_config=_config(ports, i)
            )
            cluster.procs.append(proc)
    except BaseException:
        cluster.stop()
        raise
    return cluster
