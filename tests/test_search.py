"""Full-text search over every message (monitoring/queries/search.py), on the real engine: a word is
found wherever a message lives — span attributes in each SDK's spelling, span events, GenAI events
sent as log records — Korean, Chinese and Japanese included, exactly (an absent word finds nothing),
with the match shown highlighted and escaped; and the text indexes are what the search reads."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from otlp import S, attrs, nanos, post, request

from monitoring.ingest.otlp import any_value
from monitoring.queries import search
from monitoring.queries import spans as spans_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)
AT = NOW - dt.timedelta(hours=3)


def send(client, key, spans, events=None):
    """Spans in one request; `events`: {span: [(name, attributes)]}, stamped 1 ms after the span starts."""
    req = request(*spans)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for name, attributes in (events or {}).get(span.span_id, []):
                    span.events.add(
                        name=name, time_unix_nano=span.start_time_unix_nano + 1_000_000, attributes=attrs(attributes)
                    )
    assert post(client, key, req).status_code == 200


def send_logs(client, key, *records: tuple[S, str, dict, object]):
    """GenAI events as OTel log records: (span, event name, attributes, body or None)."""
    found = []
    for span, name, attributes, body in records:
        r = LogRecord(
            time_unix_nano=nanos(span.at) + 2_000_000,
            event_name=name,
            trace_id=span.trace,
            span_id=span.span_id,
            attributes=attrs(attributes),
        )
        if body is not None:
            r.body.CopyFrom(any_value(body))
        found.append(r)
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource={"attributes": attrs({"service.name": "agent-support"})},
                scope_logs=[ScopeLogs(scope={"name": "opentelemetry.instrumentation.genai"}, log_records=found)],
            )
        ]
    )
    r = client.post(
        "/v1/logs",
        data=req.SerializeToString(),
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.content


def chat_messages(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])  # ASCII: Korean as \uXXXX


@pytest.fixture
def messages(client, project, ingest_key):
    """One span (or record) per place a message lives, each holding a word of its own: {word: span}."""
    at = AT
    by_word: dict[str, S] = {}

    def span(word: str, name: str, attributes: dict, service: str = "agent-svc") -> S:
        nonlocal at
        at += dt.timedelta(seconds=1)
        s = S(name, service=service, at=at, ms=50, attributes=attributes)
        by_word[word] = s
        return s

    spans = [
        # OpenInference: input/output values (JSON text), flattened messages, a tool's parameters.
        span(
            "aardvark",
            "ChatCompletion",
            {"openinference.span.kind": "LLM", "input.value": json.dumps({"q": "Aardvark facts"})},
        ),
        span(
            "bandicoot",
            "ChatCompletion",
            {"openinference.span.kind": "LLM", "llm.output_messages.0.message.content": "A bandicoot."},
        ),
        span("capybara", "search", {"openinference.span.kind": "TOOL", "tool.parameters": '{"animal": "capybara"}'}),
        # OpenLLMetry: flat prompt and completion keys, a tool call's arguments.
        span(
            "dugong", "openai.chat", {"llm.request.type": "chat", "gen_ai.prompt.0.content": "Where do dugongs live?"}
        ),
        span(
            "echidna",
            "openai.chat",
            {"llm.request.type": "chat", "gen_ai.completion.0.tool_calls.0.arguments": '{"q": "echidna"}'},
        ),
        # GenAI semantic conventions: messages as JSON, system instructions, tool arguments and results.
        span(
            "환불",
            "chat gpt-4o",
            {"gen_ai.operation.name": "chat", "gen_ai.input.messages": chat_messages("환불 정책을 알려줘")},
        ),
        span(
            "fennec",
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system_instructions": '[{"type": "text", "content": "You are a Fennec fox."}]',
            },
        ),
        span(
            "gibbon",
            "execute_tool zoo",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"animal": "gibbon"}'},
        ),
        span(
            "hoatzin",
            "execute_tool zoo",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.result": "the hoatzin eats leaves"},
        ),
        # LiteLLM's proxy: its gen_ai.* keys, Chinese and Japanese as typed (not escaped).
        span(
            "退款",
            "litellm_request",
            {"gen_ai.input.messages": '[{"role": "user", "content": "我要退款"}]'},
            "litellm-proxy",
        ),
        span(
            "払い戻し",
            "litellm_request",
            {"gen_ai.output.messages": '[{"role": "assistant", "content": "払い戻しは3日以内"}]'},
            "litellm-proxy",
        ),
        # Span events (the older GenAI events): the user's message, the model's choice.
        span("jackal", "chat gpt-4o", {"gen_ai.operation.name": "chat"}),
        span("주문", "chat gpt-4o", {"gen_ai.operation.name": "chat"}),
        # A name.
        span("kinkajou", "kinkajou_step", {}),
        # Log records only: the operation details' attributes, and a message event's body.
        span("lemming", "chat gpt-4o", {"gen_ai.operation.name": "chat"}),
        span("배송", "chat gpt-4o", {"gen_ai.operation.name": "chat"}),
        span("narwhal", "chat gpt-4o", {"gen_ai.prompt.0.content": "x" * 500 + " narwhal " + "y" * 500}),
        # Markup in a message is shown as text, never as HTML.
        span("marmot", "chat gpt-4o", {"gen_ai.prompt.0.content": "<script>alert(1)</script> the MARMOT <b>"}),
    ]
    send(
        client,
        ingest_key,
        spans,
        events={
            by_word["jackal"].span_id: [("gen_ai.user.message", {"content": "Tell me about the jackal"})],
            by_word["주문"].span_id: [("gen_ai.choice", {"message": json.dumps({"content": "주문이 취소되었습니다"})})],
        },
    )
    send_logs(
        client,
        ingest_key,
        (
            by_word["lemming"],
            "gen_ai.client.inference.operation.details",
            {"gen_ai.input.messages": chat_messages("Do lemmings jump?")},
            None,
        ),
        (by_word["배송"], "gen_ai.user.message", {}, "배송 조회 부탁해요"),
    )
    return by_word


def found(client, project, q: str, kind: str = "all") -> list[dict]:
    r = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": kind, "q": q, "range": "7d", "limit": 500})
    assert r.status_code == 200, r.content
    return r.json()["items"]


WHERE = {
    "aardvark": "attribute input.value",
    "bandicoot": "attribute llm.output_messages.0.message.content",
    "capybara": "attribute tool.parameters",
    "dugong": "attribute gen_ai.prompt.0.content",
    "echidna": "attribute gen_ai.completion.0.tool_calls.0.arguments",
    "환불": "attribute gen_ai.input.messages",
    "fennec": "attribute gen_ai.system_instructions",
    "gibbon": "attribute gen_ai.tool.call.arguments",
    "hoatzin": "attribute gen_ai.tool.call.result",
    "退款": "attribute gen_ai.input.messages",
    "払い戻し": "attribute gen_ai.output.messages",
    "jackal": "event gen_ai.user.message",
    "주문": "event gen_ai.choice",
    "kinkajou": "name",
    "lemming": "log record",
    "배송": "log record",
}


def test_it_finds_a_word_wherever_a_message_lives_and_nothing_else(client, alice, project, messages):
    client.force_login(alice)
    for word, where in WHERE.items():
        for typed in (word, word.upper()):  # any case
            items = found(client, project, typed)
            assert [(i["span_id"], i["matched"]) for i in items] == [(messages[word].span_id.hex(), where)], typed
    assert found(client, project, "wombat") == []  # absent everywhere
    assert found(client, project, "환불 정책을 알려줘")[0]["span_id"] == messages["환불"].span_id.hex()  # a phrase
    assert found(client, project, "불정") == []  # not in the text (its bigrams are, apart)
    # One character has no bigram: every value is read (no index), the answer the same.
    assert {i["span_id"] for i in found(client, project, "환")} == {messages["환불"].span_id.hex()}


def test_each_row_shows_the_text_around_the_match(client, alice, project, messages):
    client.force_login(alice)
    snippets = {w: found(client, project, w)[0]["snippet"] for w in ("hoatzin", "jackal", "lemming", "배송", "退款")}
    assert snippets["hoatzin"] == "the hoatzin eats leaves"
    assert snippets["jackal"] == "Tell me about the jackal"
    assert "Do lemmings jump?" in json.loads(snippets["lemming"])[0]["parts"][0]["content"]  # a log record's attribute
    assert snippets["배송"] == "배송 조회 부탁해요"  # a log record's body
    assert "我要退款" in snippets["退款"]
    # A long message: its start and end cut, marked with an ellipsis, the match kept.
    cut = found(client, project, "narwhal")[0]["snippet"]
    assert cut.startswith("…") and cut.endswith("…") and "x narwhal y" in cut
    assert len(cut) == search.SNIPPET_CHARS + 2 and cut.index("narwhal") == search.SNIPPET_BEFORE + 1


def test_the_list_marks_the_match_in_escaped_text(client, alice, project, messages):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all", "q": "marmot", "range": "7d"})
    page = html.content.decode()
    assert html.status_code == 200
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; the <mark>MARMOT</mark> &lt;b&gt;" in page
        and "<script>alert(1)" not in page
    )
    # Korean stored JSON-escaped (\uD658\uBD88) is marked as stored; a log record says so.
    page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all", "q": "환불", "range": "7d"}).content
    assert "<mark>\\ud658\\ubd88</mark>" in page.decode()
    page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all", "q": "배송", "range": "7d"}).content
    assert (
        "<mark>배송</mark> 조회 부탁해요" in page.decode() and "matched in a log record (GenAI event)" in page.decode()
    )


def test_a_search_reads_the_text_indexes(client, alice, project, messages):
    """The search's tests name the indexes' own expressions: ClickHouse uses them (EXPLAIN shows the
    n-grams it looks up) on otel_traces and on otel_logs: a word of three characters or more by its
    trigrams, a shorter one by its bigrams."""
    flt = SpanFilter(str(project.id), Window(NOW - dt.timedelta(days=30), NOW))
    trigrams = '"emm", "ing", "lem", "min", "mmi"'
    for q, index, grams in (("Lemming", schema.SEARCH_LONG_INDEX, trigrams), ("환불", schema.SEARCH_INDEX, '"환불"')):
        statement = spans_q.search_statement(flt, spans_q.ListQuery(kind="all", q=q), schema.TRACES, 51, 0, 2**62)
        plan = "\n".join(
            r["explain"]
            for r in clickhouse.query("EXPLAIN indexes = 1 " + statement.text, statement.params, tag="test")
        )
        assert f"Name: {index}\n" in plan and grams in plan, plan
    records = clickhouse.query(
        f"EXPLAIN indexes = 1 SELECT count() FROM {schema.table(schema.LOGS)} WHERE {search.log_condition('Lemming')}",
        {"project": str(project.id), "q": "Lemming", "q_json": "Lemming"},
        tag="test",
    )
    plan = "\n".join(r["explain"] for r in records)
    assert f"Name: {schema.SEARCH_LONG_INDEX}\n" in plan and trigrams in plan


def test_an_existing_table_gets_the_indexes_and_its_stored_rows_are_indexed(settings, monkeypatch):
    """A table made before the indexes (a collector's, or an older portal's): ALTER … ADD INDEX, then a
    background MATERIALIZE INDEX for the parts already stored; searches stay exact meanwhile."""
    monkeypatch.setattr(clickhouse, "on_embedded_open", None)
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_search_upgrade"}
    clickhouse.command("CREATE DATABASE IF NOT EXISTS otel_search_upgrade", tag="test")
    clickhouse.command(schema._traces_ddl(0), tag="test")
    clickhouse.command(
        "INSERT INTO otel_search_upgrade.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName,"
        " ResourceAttributes, SpanAttributes, Duration, StatusCode)"
        " VALUES (now64(9), 'a', 'b', 'chat', 'svc', {'project_id':'p1'}, {'gen_ai.prompt.0.content':'Quokka 환불'}, 10, 'Ok')",
        tag="test",
    )
    indexes = (schema.SEARCH_INDEX, schema.SEARCH_LONG_INDEX)
    assert not any(schema.has_search_index(schema.TRACES, i) for i in indexes)
    ran = schema.ensure_schema(ttl_days=0)
    assert all(schema.has_search_index(t, i) for t in (schema.TRACES, schema.LOGS) for i in indexes)
    assert all(any(f"MATERIALIZE INDEX {i} " in sql for sql in ran) for i in indexes)
    deadline = time.monotonic() + 60
    while clickhouse.query_one(
        "SELECT count() AS n FROM system.mutations WHERE database = 'otel_search_upgrade' AND NOT is_done", tag="test"
    )["n"]:
        assert time.monotonic() < deadline, "the index was not materialized"
        time.sleep(0.2)
    now = dt.datetime.now(dt.UTC)  # the row is stamped at its insert
    flt = SpanFilter("p1", Window(now - dt.timedelta(days=1), now + dt.timedelta(minutes=1)))
    for q in ("quokka", "환불", "Quokka 환"):
        assert [r.matched for r in spans_q.list_spans(flt, spans_q.ListQuery(kind="all", q=q)).items] == [
            "attribute gen_ai.prompt.0.content"
        ]
    assert not [sql for sql in schema.ensure_schema(ttl_days=0) if " INDEX idx_search" in sql]  # once


def test_the_reads_follow_the_candidates_not_the_window(client, alice, project, messages, monkeypatch):
    """Past the newest hour: an absent word is answered by the indexes alone (the newest 64 hours'
    candidates, then the rest's); a rare one by one read where its candidates are (not a stretch at
    a time); a word too short for the index reads a stretch at a time, as before."""
    tags: list[str] = []
    query = clickhouse.query

    def counted(sql, params=None, *, tag):
        tags.append(tag)
        return query(sql, params, tag=tag)

    monkeypatch.setattr(clickhouse, "query", counted)
    flt = SpanFilter(str(project.id), Window(NOW - dt.timedelta(days=30), NOW + dt.timedelta(minutes=1)))

    def reads(q: str) -> tuple[list[str], int]:
        tags.clear()
        page = spans_q.list_spans(flt, spans_q.ListQuery(kind="all", q=q))
        return [t for t in tags if t.startswith("traces.") and t != "traces.list.costs"], len(page.items)

    first = ["traces.search.logs_exist", "traces.list.all.search"]  # the newest hour, read as before
    candidates = "traces.search.candidates"
    assert reads("wombat") == ([*first, candidates, candidates], 0)
    assert reads("hoatzin") == ([*first, candidates, "traces.list.all.search", candidates], 1)
    stretches, found_rows = reads("환")
    assert found_rows == 1 and stretches == ["traces.search.logs_exist", *["traces.list.all.search"] * 4]


def test_a_rare_phrase_of_common_words_is_found_exactly_reading_its_candidates(
    client, alice, project, ingest_key, monkeypatch
):
    """A phrase whose every word (and trigram) many spans hold, few in that order: the page holds
    exactly the spans with the phrase (any case), newest first, page after page; past the newest
    hour each read is where the text index's candidates are (its test in the statement, its stretch
    ending at a candidate or where the stretch asked about ends), even when they are more than
    FEW_CANDIDATES at a time."""
    phrase = "drop on 2025-03-17"
    texts = {
        "hit": "Churn saw a DROP ON 2025-03-17 after the price change.",
        "decoy": "A drop onto the floor, noted on 2025-03-17.",  # every trigram of the phrase, not the phrase
        "words": "on 2025-03-17 the drop was small",
    }
    now = dt.datetime.now(dt.UTC)
    hours = [2, 5, 9, 30, 31, 75, 100, 240, 241, 500]  # spans stamped this many hours ago, a hit and two decoys each
    spans, hits = [], []
    for h in hours:
        for kind, text in texts.items():
            at = now - dt.timedelta(hours=h, seconds=len(kind))
            s = S("chat", service="agent-svc", at=at, ms=5, attributes={"gen_ai.prompt.0.content": text})
            spans.append(s)
            if kind == "hit":
                hits.append(s.span_id.hex())
    send(client, ingest_key, spans)
    monkeypatch.setattr(search, "FEW_CANDIDATES", 4)  # the candidates' times are learnt 4 at a time
    statements: list[tuple[str, str, dict]] = []
    query = clickhouse.query

    def recorded(sql, params=None, *, tag):
        statements.append((tag, sql, params or {}))
        return query(sql, params, tag=tag)

    monkeypatch.setattr(clickhouse, "query", recorded)
    flt = SpanFilter(str(project.id), Window(now - dt.timedelta(days=30), now + dt.timedelta(minutes=1)))
    shown, cursor = [], None
    for _ in range(len(hours)):
        page = spans_q.list_spans(flt, spans_q.ListQuery(kind="all", q=phrase, limit=3, cursor=cursor))
        shown += [(r.span_id, r.matched) for r in page.items]
        assert all(phrase in r.snippet.lower() for r in page.items)
        if not page.next_cursor:
            break
        cursor = spans_q.Cursor.decode(page.next_cursor)
    assert shown == [(h, "attribute gen_ai.prompt.0.content") for h in hits]
    candidates = {nanos(s.at) for s in spans if s.attributes["gen_ai.prompt.0.content"] != texts["words"]}
    floors = {p["l_start"] for tag, _, p in statements if tag == "traces.search.candidates"}  # stretches asked about
    bounds = candidates | floors | {nanos(flt.window.start)}
    reads = [p for tag, sql, p in statements if tag == "traces.list.all.search"]
    past_first_hour = [
        (sql, p)
        for tag, sql, p in statements
        if tag == "traces.list.all.search" and p["l_end"] - p["l_start"] != spans_q.FIRST_STEP_NS
    ]
    assert reads and past_first_hour
    assert all(f"'{schema.SEARCH_LONG_TOKENIZER}'" in sql and p["l_start"] in bounds for sql, p in past_first_hour)
    assert len([t for t, _, _ in statements if t == "traces.search.candidates"]) > len(hours) // 3
