"""Retention by TTL (on the real engine) and the cluster DDL as text (tests/test_cluster.py runs it on a real cluster)."""

from io import StringIO

import pytest
from django.core.management import call_command
from otlp import S, post, request

from monitoring.store import clickhouse, schema


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_retention_changes_the_ttl_and_lists_partitions(client, project, ingest_key, settings):
    assert post(client, ingest_key, request(S("kept"))).status_code == 200
    out = run("clickhouse_retention", "--days", "7")
    assert "toIntervalDay(7)" in out and "toIntervalDay(7)" in schema.current_ttl()
    assert "total" in out and "partitions" in out
    today = [p for p in schema.partitions() if p["rows"] > 0]
    assert today and sum(p["rows"] for p in today) >= 1
    lookup = clickhouse.query_one(
        "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = {t:String}",
        {"d": clickhouse.database(), "t": schema.LOOKUP},
        tag="test",
    )
    assert "toIntervalDay(7)" in lookup["engine_full"]
    for derived in (schema.SPANS, schema.CALLS, schema.RUNS, schema.EDGES):  # derived rows expire with their spans
        assert "toIntervalDay(7)" in schema.current_ttl(derived)
    assert "toIntervalDay(7)" in schema.current_ttl(schema.CALLS_15M)
    out = run("clickhouse_retention", "--days", "0")
    assert "none" in out and schema.current_ttl() == ""


def test_retention_rejects_negative_days():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        run("clickhouse_retention", "--days", "-3")


def test_cluster_ddl_builds_replicated_locals_and_distributed_tables():
    sql = run("clickhouse_init", "--cluster", "monitoring", "--dry-run", "--ttl-days", "30")
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    assert all("ON CLUSTER `monitoring`" in s for s in statements)
    assert any(
        "otel_traces_local` ON CLUSTER `monitoring` (" in s
        and "ReplicatedMergeTree('/clickhouse/tables/{shard}/otel_2/otel_traces_local', '{replica}')" in s
        and "toIntervalDay(30)" in s
        for s in statements
    )
    assert any(
        "ENGINE = Distributed(`monitoring`, `otel_2`, `otel_traces_local`, cityHash64(TraceId))" in s
        for s in statements
    )
    assert any(
        "ENGINE = Distributed(`monitoring`, `otel_2`, `otel_traces_trace_id_ts_local`, cityHash64(TraceId))" in s
        for s in statements
    )
    assert any("MATERIALIZED VIEW" in s and "FROM `otel_2`.`otel_traces_local`" in s for s in statements)
    # the derived columns exist on both the local and the Distributed table
    for table in ("otel_traces_local", "otel_traces"):
        assert any(
            f"`otel_2`.`{table}` ON CLUSTER `monitoring` ADD COLUMN IF NOT EXISTS IsLLMCall" in s for s in statements
        )


def test_cluster_name_must_be_plain():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        run("clickhouse_init", "--cluster", "x`; DROP", "--dry-run")


def test_the_sample_cluster_config_names_the_cluster_the_docs_use():
    import xml.etree.ElementTree as ET
    from pathlib import Path

    root = ET.parse(Path(__file__).resolve().parents[1] / "config/clickhouse/cluster.example.xml").getroot()
    shards = root.findall("./remote_servers/monitoring/shard")
    assert len(shards) == 2 and all(len(s.findall("replica")) == 2 for s in shards)
    assert root.find("./macros/shard") is not None and root.find("./macros/replica") is not None
