"""What one export may cost the receiver (issue 22, item 2): by default a span keeps its first
INGEST_MAX_SPAN_ENTRIES attribute entries, events and links and the sender is told, which keeps the
memory of ingesting it within a small multiple of the body; a big batch goes in inserts of bounded
size; a resource's spans share its attributes.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp import S, post, request

from monitoring.ingest import decode, otlp, span_store
from monitoring.queries import trace as trace_q
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def million_attribute_span() -> S:
    return S("huge", attributes={f"k{i:07d}": "v" for i in range(1_000_000)})


def test_by_default_a_span_keeps_its_first_entries_and_the_sender_is_told(client, alice, project, ingest_key, settings):
    limit = settings.INGEST["MAX_SPAN_ENTRIES"]
    assert limit == 10_000
    span = million_attribute_span()
    r = post(client, ingest_key, request(span, resource={f"r{i}": "x" for i in range(20_000)}))
    answer = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert r.status_code == 200 and answer.rejected_spans == 0  # stored, cut: a warning, not a reject
    assert answer.error_message == (
        "2 span(s) or resource(s) with more than 10000 attributes, events and links stored with the first 10000"
    )
    client.force_login(alice)
    (whole,) = client.get(f"/api/v1/projects/{project.id}/traces/{span.trace.hex()}").json()["spans"]
    assert whole["attribute_count"] == limit and whole["resource_count"] == limit + 1  # and the project id
    assert set(whole["attributes"]) == {f"k{i:07d}" for i in range(trace_q.SPAN_ATTRIBUTES_READ)}


# Run in a child process of its own (a fresh engine and heap): in this one, memory earlier tests
# freed would be reused and hide the growth. Linux: clear_refs resets the peak resident set.
_MEASURE = """
import gc, json, os, sys
sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests")]
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings_test"
import django

django.setup()
from django.conf import settings
from otlp import S, request

from monitoring.ingest import decode, otlp, span_store
from monitoring.store import schema

schema.ensure_schema()
limit = int(sys.argv[1])
span_store.store(decode.rows_from_body(request(S("warm")).SerializeToString(), otlp.PROTOBUF_CONTENT_TYPE, None, "p").rows, tag="t")
body = request(S("huge", attributes={f"k{i:07d}": "v" for i in range(1_000_000)})).SerializeToString()


def status(field):
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith(field)).split()[1]) * 1024


gc.collect()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = status("VmRSS:")
result = decode.rows_from_body(body, otlp.PROTOBUF_CONTENT_TYPE, None, "p", otlp.Rules(span_entries=limit))
span_store.store(result.rows, tag="t")
print(json.dumps({"growth": status("VmHWM:") - before, "body": len(body), "stored": len(result.rows[0]["SpanAttributes"])}))
"""


def peak_rss_growth(limit: int) -> dict:
    """{"growth": bytes the peak RSS grew by ingesting a 1,000,000-attribute span, "body": its size}."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(limit)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ingesting_a_million_attributes_costs_a_small_multiple_of_the_body(settings):
    limit = settings.INGEST["MAX_SPAN_ENTRIES"]
    cut = peak_rss_growth(limit)
    print(f"\npeak RSS growth {cut['growth'] / MB:.0f} MB for a {cut['body'] / MB:.1f} MB body, {limit} kept")
    assert cut["stored"] == limit
    assert cut["growth"] < 8 * cut["body"]  # was 45x: the engine's insert of 1,000,000 keys


def test_a_big_batch_goes_in_inserts_of_bounded_size(project):
    rows = decode.rows_from_body(
        request(*[S(f"s{i}", attributes={f"a{j}": "v" for j in range(40)}) for i in range(8_000)]).SerializeToString(),
        otlp.PROTOBUF_CONTENT_TYPE,
        None,
        str(project.id),
    ).rows
    parts = list(span_store._inserts(rows))
    assert len(parts) == 3 and sum(map(len, parts)) == len(rows)  # 8,000 rows of 44 entries
    assert all(sum(map(span_store._entries, part)) <= span_store.INSERT_ENTRIES for part in parts)
    lone = [{**rows[0], "SpanAttributes": {f"k{i}": "v" for i in range(span_store.INSERT_ENTRIES + 1)}}]
    assert list(span_store._inserts(lone + rows[:10])) == [lone, rows[:10]]  # a row over the bound goes alone
    span_store.store(rows, tag="test.inserts")
    stored = clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}}", {"p": str(project.id)}, tag="test"
    )
    assert int(stored["n"]) == len(rows)
