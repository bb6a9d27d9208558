"""The Traces tab, its export, the trace page and the read API, on spans written in every dialect."""

import csv
import datetime as dt
import io
import json
import logging
import re
import time
from pathlib import Path

import pytest
from otlp import S, attrs, post, request

from monitoring.models import DEFAULT_AGENT_SPAN_NAMES, ModelPrice
from monitoring.queries import spans as spans_q
from monitoring.queries import trace as trace_q

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)
AT = NOW - dt.timedelta(minutes=10)
CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "litellm_1.108.7_spans.json").read_text())
TRACEBACK = 'Traceback (most recent call last):\n  File "agent.py", line 7, in run\n    cursor.execute(sql)\nsqlite3.OperationalError: no such table: users\n'


def send(client, key, spans, scope="tests", events=None, links=None):
    """Post spans under one instrumentation scope; `events` and `links` are keyed by span id (bytes)."""
    req = request(*spans)
    events, links = events or {}, links or {}
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            ss.scope.name = scope
            for span in ss.spans:
                for name, attributes in events.get(span.span_id, []):
                    span.events.add(
                        name=name, time_unix_nano=span.start_time_unix_nano + 1_000_000, attributes=attrs(attributes)
                    )
                for target in links.get(span.span_id, []):
                    span.links.add(
                        trace_id=target.trace, span_id=target.span_id, attributes=attrs({"link.kind": "follows"})
                    )
    r = post(client, key, req)
    assert r.status_code == 200, r.content


def hexid(s: S) -> str:
    return s.span_id.hex()


def api(client, project, **params):
    r = client.get(f"/api/v1/projects/{project.id}/traces", params)
    assert r.status_code == 200, r.content
    return r.json()


def ids(items) -> set[str]:
    return {i["span_id"] for i in items}


def litellm_request(name="litellm_request", *, at=AT, cost=0.002, trace=None, content="Say hello"):
    """The LiteLLM proxy's seven spans for one chat completion, as 1.108.7 writes them (scope litellm)."""
    server = S("POST /v1/chat/completions", service="litellm-proxy", at=at, ms=240)
    if trace:
        server.trace = trace
    received = server.child("Received Proxy Server Request", ms=230)
    call = received.child(
        name,
        ms=200,
        attributes={
            "llm.request.type": "acompletion",
            "gen_ai.operation.name": "acompletion",
            "litellm.model_group": "gpt-4o-mini",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.cost.total_cost": cost,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": content}]}]),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]
            ),
        },
    )
    raw = call.child(
        name if name != "litellm_request" else "raw_gen_ai_request",
        attributes={"llm.openai.stringified_raw_response": "{}"},
    )
    return [
        server,
        received,
        received.child("auth"),
        received.child("router"),
        received.child("proxy_pre_call"),
        call,
        raw,
    ], call


@pytest.fixture
def world(client, project, ingest_key):
    return write_world(client, ingest_key)


def write_world(client, ingest_key):
    """One trace per dialect, plus plain spans. Returns the S objects by role."""
    w = {}
    w["litellm"], w["litellm_call"] = litellm_request()
    w["renamed"], w["renamed_call"] = litellm_request("my-generation", cost=0.003)
    send(client, ingest_key, w["litellm"] + w["renamed"], scope="litellm")

    # OpenInference: an AGENT with an LLM call (priced from tokens) and a TOOL step.
    w["oi_agent"] = S(
        "analyze", service="agent-analyze", at=AT, ms=3000, attributes={"openinference.span.kind": "AGENT"}
    )
    w["oi_llm"] = w["oi_agent"].child(
        "ChatCompletion",
        ms=900,
        at=AT + dt.timedelta(milliseconds=100),
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 500,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You analyse sales.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Summarise Q3",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Q3 grew 12%.",
        },
    )
    w["oi_tool"] = w["oi_agent"].child(
        "search", ms=50, at=AT + dt.timedelta(milliseconds=1100), attributes={"openinference.span.kind": "TOOL"}
    )
    send(client, ingest_key, [w["oi_agent"], w["oi_llm"], w["oi_tool"]], scope="openinference")

    # OpenLLMetry: a workflow with a chat call in the flat prompt/completion keys.
    w["tl_flow"] = S(
        "report.workflow", service="report-svc", at=AT, ms=5000, attributes={"traceloop.span.kind": "workflow"}
    )
    w["tl_llm"] = w["tl_flow"].child(
        "openai.chat",
        ms=700,
        attributes={
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 30,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Weather in Paris?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.tool_calls.0.name": "get_weather",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
        },
    )
    send(client, ingest_key, [w["tl_flow"], w["tl_llm"]], scope="opentelemetry.instrumentation.openai")

    # GenAI semconv: a failing agent; its chat call (Korean text, JSON-escaped like json.dumps does) and a failing tool.
    w["ga_agent"] = S(
        "invoke_agent text2sql",
        service="agent-text2sql",
        at=AT,
        ms=1500,
        error=True,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    w["ga_llm"] = w["ga_agent"].child(
        "chat qwen-235b",
        ms=400,
        at=AT + dt.timedelta(milliseconds=10),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "qwen-235b",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "사용자 수를 알려줘"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": "call_1",
                                "name": "run_sql",
                                "arguments": {"query": "select count() from users"},
                            }
                        ],
                    }
                ]
            ),
        },
    )
    w["ga_tool"] = w["ga_agent"].child(
        "execute_tool run_sql",
        ms=30,
        at=AT + dt.timedelta(milliseconds=500),
        error=True,
        attributes={"gen_ai.operation.name": "execute_tool"},
    )
    send(
        client,
        ingest_key,
        [w["ga_agent"], w["ga_llm"], w["ga_tool"]],
        scope="genai",
        events={
            w["ga_tool"].span_id: [
                (
                    "exception",
                    {
                        "exception.type": "sqlite3.OperationalError",
                        "exception.message": "no such table: users",
                        "exception.stacktrace": TRACEBACK,
                    },
                )
            ],
            w["ga_llm"].span_id: [("gen_ai.content.prompt", {"note": "kept"})],
        },
        links={w["ga_llm"].span_id: [w["oi_agent"]]},
    )

    # No dialect: a span named like the project's agent steps, and noise.
    w["named"] = S("text2sql", service="backend", at=AT, ms=80)
    w["noise"] = S("GET /healthz", service="backend", at=AT, ms=2)
    send(client, ingest_key, [w["named"], w["noise"]])
    return w


# --- the sub-tabs ---------------------------------------------------------------------------------


def test_it_lists_exactly_the_rows_of_each_sub_tab(client, alice, project, world):
    client.force_login(alice)
    w = world
    agent = ids(api(client, project, kind="agent", limit=500)["items"])
    assert agent == {hexid(w[k]) for k in ("oi_agent", "oi_tool", "tl_flow", "ga_agent", "ga_tool", "named")}
    llm = ids(api(client, project, kind="llm", limit=500)["items"])
    # Only the call span of each LiteLLM request, renamed or not; never raw_gen_ai_request (also renamed).
    assert llm == {hexid(w[k]) for k in ("litellm_call", "renamed_call", "oi_llm", "tl_llm", "ga_llm")}
    everything = api(client, project, kind="all", limit=500)["items"]
    assert len(everything) == 14 + 3 + 2 + 3 + 2 == len(ids(everything))
    assert ids(api(client, project, limit=500)["items"]) == agent  # Agent is the default


def test_it_renders_the_sub_tabs_with_the_columns(client, alice, project, world):
    ModelPrice.objects.create(project=project, model="qwen-235b", input_per_million=1, output_per_million=2)
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "llm", "range": "1h"})
    assert r.status_code == 200
    html = r.content.decode()
    assert html.count('class="span-item') == 5
    for k in ("litellm_call", "renamed_call", "oi_llm", "tl_llm", "ga_llm"):
        assert f'data-span="{hexid(world[k])}"' in html
    assert "raw_gen_ai_request" not in html
    call = world["litellm_call"]
    assert f'href="/admin/monitoring/{project.id}/replay/?trace={call.trace.hex()}&amp;span={hexid(call)}"' in html
    assert "$0.002000" in html and "$0.003000" in html  # reported by LiteLLM
    assert "$0.007500" in html  # 1000 x $2.5/M + 500 x $10/M: priced from tokens
    assert "$0.000200" in html  # qwen-235b at the project's own price
    assert "900 ms" in html and "gpt-4o" in html and ">1,000<" in html
    # Sub-tab links keep the filter bar and the search.
    assert re.search(r'href="[^"]*\?range=1h&amp;kind=agent"', html)
    assert re.search(r'data-kind-link="llm"\s+class="active"', html)


def test_it_serves_the_panel_to_htmx_and_keeps_the_search_on_the_filter_bar(client, alice, project, world):
    client.force_login(alice)
    r = client.get(
        f"/admin/monitoring/{project.id}/traces/?kind=all&q=paris", headers={"HX-Request": "true", "HX-Target": "panel"}
    )
    html = r.content.decode()
    assert r.status_code == 200 and "<html" not in html and 'data-tab="traces"' in html
    assert 'hx-include="[data-trace-param]"' in html
    assert 'name="q" value="paris"' in html and 'name="kind" value="all" data-trace-param' in html


def test_it_shows_a_real_litellm_capture_one_row_per_call(client, alice, project, ingest_key):
    cap = CAPTURE["captures"]["otel"]
    for body in cap["otlp_requests"]:
        r = client.post(
            "/v1/traces",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {ingest_key}"},
        )
        assert r.status_code == 200
    starts = [int(s["start_ns"]) for s in cap["spans"]]
    window = {
        "from": dt.datetime.fromtimestamp(min(starts) / 1e9 - 60, dt.UTC).isoformat(),
        "to": dt.datetime.fromtimestamp(max(starts) / 1e9 + 60, dt.UTC).isoformat(),
    }
    client.force_login(alice)
    items = api(client, project, kind="llm", limit=500, **window)["items"]
    calls = {
        s["span_id"] for s in cap["spans"] if s["scope"]["name"] == "litellm" and "llm.request.type" in s["attributes"]
    }
    assert ids(items) == calls and len(items) == 11
    assert {i["name"] for i in items} == {"litellm_request", "my-generation", "qwen-named"}
    assert sum(i["status"] == "Error" for i in items) == 3
    assert api(client, project, kind="agent", limit=500, **window)["items"] == []
    assert len(api(client, project, kind="all", limit=500, **window)["items"]) == len(cap["spans"])


def test_it_lists_an_agents_llm_call_through_the_proxy_once(client, alice, project, ingest_key):
    agent = S("text2sql", service="agent-text2sql", at=AT, ms=2000, attributes={"openinference.span.kind": "AGENT"})
    caller = agent.child(
        "ChatCompletion", ms=900, attributes={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o"}
    )
    proxy, call = litellm_request(at=AT + dt.timedelta(milliseconds=50), trace=caller.trace)
    for span in proxy:
        span.trace = caller.trace
    proxy[0].parent = caller.span_id
    send(client, ingest_key, [agent, caller], scope="openinference")
    send(client, ingest_key, proxy, scope="litellm")
    client.force_login(alice)
    assert ids(api(client, project, kind="llm")["items"]) == {hexid(call)}
    r = client.get(f"/admin/monitoring/{project.id}/traces/{caller.trace.hex()}/")
    assert r.status_code == 200 and "<dt>LLM calls</dt><dd>1</dd>" in r.content.decode()


# --- search and filters ---------------------------------------------------------------------------


def test_it_searches_by_trace_id_name_and_message_text(client, alice, project, world):
    client.force_login(alice)
    w = world
    trace = w["oi_agent"].trace.hex()
    assert ids(api(client, project, kind="all", q=trace)["items"]) == {
        hexid(w[k]) for k in ("oi_agent", "oi_llm", "oi_tool")
    }
    assert ids(api(client, project, kind="all", q=trace.upper())["items"]) == {
        hexid(w[k]) for k in ("oi_agent", "oi_llm", "oi_tool")
    }
    assert ids(api(client, project, kind="all", q="REPORT.WORK")["items"]) == {hexid(w["tl_flow"])}  # name, any case
    assert ids(api(client, project, kind="all", q="paris")["items"]) == {hexid(w["tl_llm"])}  # a prompt's text
    assert ids(api(client, project, kind="all", q="Q3 GREW")["items"]) == {hexid(w["oi_llm"])}  # an answer's text
    assert ids(api(client, project, kind="all", q="사용자 수")["items"]) == {hexid(w["ga_llm"])}  # JSON-escaped Korean
    assert ids(api(client, project, kind="llm", q="hello")["items"]) == {
        hexid(w["litellm_call"]),
        hexid(w["renamed_call"]),
    }
    assert api(client, project, kind="all", q="'; DROP TABLE otel_traces; --")["items"] == []
    assert api(client, project, kind="all", q="0" * 32)["items"] == []


def test_it_filters_by_minimum_duration_and_status(client, alice, project, world):
    client.force_login(alice)
    w = world
    assert ids(api(client, project, kind="all", min_ms=2999)["items"]) == {hexid(w["oi_agent"]), hexid(w["tl_flow"])}
    assert ids(api(client, project, kind="all", min_ms="4000.5")["items"]) == {hexid(w["tl_flow"])}
    assert ids(api(client, project, kind="all", status="error")["items"]) == {hexid(w["ga_agent"]), hexid(w["ga_tool"])}
    assert ids(api(client, project, kind="agent", status="error", min_ms=1000)["items"]) == {hexid(w["ga_agent"])}
    ok = ids(api(client, project, kind="llm", status="ok")["items"])
    assert ok == {hexid(w[k]) for k in ("litellm_call", "renamed_call", "oi_llm", "tl_llm", "ga_llm")}
    assert ids(api(client, project, kind="all", service="report-svc")["items"]) == {
        hexid(w["tl_flow"]),
        hexid(w["tl_llm"]),
    }
    assert ids(api(client, project, kind="llm", model="gpt-4o")["items"]) == {hexid(w["oi_llm"])}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"kind": "spans"}, "'kind'"),
        ({"min_ms": "fast"}, "'min_ms'"),
        ({"min_ms": "-1"}, "'min_ms'"),
        ({"limit": "501"}, "'limit'"),
        ({"limit": "0"}, "'limit'"),
        ({"cursor": "not-a-cursor!"}, "'cursor'"),
        ({"cursor": "W1swXV0"}, "'cursor'"),
        ({"q": "x" * 501}, "'q'"),
        ({"range": "2y"}, "2y"),
    ],
)
def test_it_answers_400_to_bad_parameters(client, alice, project, params, message):
    client.force_login(alice)
    r = client.get(f"/api/v1/projects/{project.id}/traces", params)
    assert r.status_code == 400 and message in r.json()["error"]
    page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all", **params})  # a span list
    if "limit" in params:  # the page has a fixed size and ignores the API's `limit`
        assert page.status_code == 200
    else:
        assert page.status_code == 400 and 'class="banner' in page.content.decode()


def test_it_rejects_a_cursor_it_did_not_give_out(client, alice, project):
    client.force_login(alice)
    forged = spans_q.Cursor(10, "zz" * 8, 0)  # not hex
    for cursor in ["%%%", forged.encode(), spans_q.Cursor(5, "ab" * 8, 9).encode()]:  # since after ts
        assert client.get(f"/api/v1/projects/{project.id}/traces", {"cursor": cursor}).status_code == 400
    good = spans_q.Cursor(10**18, "ab" * 8, 10**17).encode()
    assert client.get(f"/api/v1/projects/{project.id}/traces", {"cursor": good}).status_code == 200


# --- keyset paging --------------------------------------------------------------------------------


def _paged_spans(client, key, n=60, ties=6):
    base = AT - dt.timedelta(minutes=5)
    spans = [S(f"p{i}", service="pager", at=base + dt.timedelta(milliseconds=i)) for i in range(n - ties)]
    spans += [S(f"tie{i}", service="pager", at=base + dt.timedelta(milliseconds=7)) for i in range(ties)]  # same ns
    send(client, key, spans)
    return spans


def test_it_pages_by_keyset_every_row_once_while_new_spans_arrive(client, alice, project, ingest_key):
    spans = _paged_spans(client, ingest_key)
    client.force_login(alice)
    seen, cursor, pages = [], None, 0
    while True:
        data = api(client, project, kind="all", limit=7, **({"cursor": cursor} if cursor else {}))
        seen += data["items"]
        pages += 1
        # Newer spans arrive between pages (and an older one, written late, below the first page).
        send(client, ingest_key, [S(f"new{pages}", service="pager", at=NOW - dt.timedelta(seconds=30))])
        cursor = data["next_cursor"]
        if cursor is None:
            break
    originals = {hexid(s) for s in spans}
    got = [i["span_id"] for i in seen if i["span_id"] in originals]
    assert len(got) == len(set(got)) == len(originals)  # each once
    assert not any(i["name"].startswith("new") for i in seen)  # arrived above the first page
    order = [(i["timestamp_ns"], i["span_id"]) for i in seen]
    assert order == sorted(order, reverse=True)
    assert pages == 9  # 60 rows / 7


def test_it_appends_older_rows_to_the_table_through_htmx(client, alice, project, ingest_key):
    spans = _paged_spans(client, ingest_key)
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all"})
    html = r.content.decode()
    assert html.count('class="span-item') == 50 and 'id="trace-more"' in html
    older = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#trace-more" hx-swap="outerHTML"', html).group(1)
    more = client.get(older.replace("&amp;", "&"), headers={"HX-Request": "true", "HX-Target": "trace-more"})
    rows = more.content.decode()
    assert more.status_code == 200 and "<html" not in rows and "filter-bar" not in rows
    assert rows.count('class="span-item') == 10 and 'id="trace-more"' not in rows
    shown = set(re.findall(r'class="span-item[^"]*" data-span="([0-9a-f]{16})"', html + rows))
    assert shown == {hexid(s) for s in spans}
    # Without JS the same link is a whole page of older rows.
    page2 = client.get(older.replace("&amp;", "&"))
    assert (
        page2.status_code == 200
        and page2.content.decode().count('class="span-item') == 10
        and "↑ Newest" in page2.content.decode()
    )


# --- export ---------------------------------------------------------------------------------------


def test_it_exports_the_filtered_list_as_csv_streamed_in_chunks(client, alice, project, world, monkeypatch):
    monkeypatch.setattr(spans_q, "EXPORT_CHUNK", 4)
    calls = []
    real = spans_q.list_spans
    monkeypatch.setattr(spans_q, "list_spans", lambda *a, **k: calls.append(1) or real(*a, **k))
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/traces/export.csv", {"kind": "all", "service": "litellm-proxy"})
    assert r.status_code == 200 and r.streaming
    assert r["Content-Type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="traces-alices-project-all-\d{8}T\d{6}Z\.csv"', r["Content-Disposition"])
    assert r["X-Export-Max-Rows"] == str(spans_q.EXPORT_MAX_ROWS)
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert len(rows) == 14 and len(calls) == 4  # 14 rows in pages of 4
    assert {row["span_id"] for row in rows} == {hexid(s) for s in world["litellm"] + world["renamed"]}
    call = next(row for row in rows if row["span_id"] == hexid(world["litellm_call"]))
    assert (
        call["name"],
        call["model"],
        call["input_tokens"],
        call["cost_usd"],
        call["cost_source"],
        call["duration_ms"],
    ) == ("litellm_request", "gpt-4o-mini", "10", "0.002", "reported", "200.0")
    assert call["trace_id"] == world["litellm_call"].trace.hex() and call["status"] == "OK"  # not OTel's "Unset"


def test_it_exports_json_with_the_cap_and_the_search(client, alice, project, world, monkeypatch):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/traces/export.json", {"kind": "llm", "q": "hello"})
    data = json.loads(b"".join(r.streaming_content))
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert ids(data["items"]) == {hexid(world["litellm_call"]), hexid(world["renamed_call"])}
    assert (data["count"], data["truncated"], data["max_rows"]) == (2, False, spans_q.EXPORT_MAX_ROWS)
    monkeypatch.setattr(spans_q, "EXPORT_MAX_ROWS", 3)
    data = json.loads(
        b"".join(client.get(f"/admin/monitoring/{project.id}/traces/export.json", {"kind": "all"}).streaming_content)
    )
    assert (len(data["items"]), data["count"], data["truncated"], data["max_rows"]) == (3, 3, True, 3)


def test_it_exports_only_csv_and_json_and_defuses_formulas(client, alice, project, ingest_key):
    hostile = [
        '=HYPERLINK("http://evil")',
        '\x00=HYPERLINK("http://evil")',
        " \x01+cmd|' /C calc'!A0",
        "\t=1+1",
        "@SUM(A1)",
    ]
    send(client, ingest_key, [S(name, service="-2+3", at=AT) for name in hostile])
    send(client, ingest_key, [S("plain name", service="=svc", at=AT, error=True)])
    client.force_login(alice)
    assert client.get(f"/admin/monitoring/{project.id}/traces/export.xml").status_code == 404
    assert client.get(f"/admin/monitoring/{project.id}/traces/export.csv?cursor=bad").status_code == 400
    body = b"".join(client.get(f"/admin/monitoring/{project.id}/traces/export.csv?kind=all").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 6
    assert {row["name"] for row in rows} == {"'" + name for name in hostile} | {"plain name"}
    # Every column, not only the name: the service is a client's text too.
    assert {row["service"] for row in rows} == {"'-2+3", "'=svc"}
    for row in rows:
        for cell in row.values():
            assert cell.lstrip("".join(map(chr, range(33))))[:1] not in ("=", "+", "-", "@") or cell.startswith("'"), (
                cell
            )


# --- the trace page -------------------------------------------------------------------------------


def trace_page(client, project, s: S, **params):
    r = client.get(f"/admin/monitoring/{project.id}/traces/{s.trace.hex()}/", params)
    assert r.status_code == 200, r.content[:500]
    return r.content.decode()


def panel(client, project, s: S):
    r = client.get(
        f"/admin/monitoring/{project.id}/traces/{s.trace.hex()}/spans",
        {"span": hexid(s)},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    return r.content.decode()


def test_it_shows_a_trace_with_summary_tree_waterfall_and_chat_of_each_dialect(client, alice, project, world):
    client.force_login(alice)
    w = world
    html = trace_page(client, project, w["oi_agent"])
    assert "<h2>analyze</h2>" in html
    assert html.count('class="span-row') == 3 and html.count('class="wf-bar') == 3
    assert re.search(r'data-span="{}" data-depth="0" data-open="1"'.format(hexid(w["oi_agent"])), html)
    assert 'data-depth="1"' in html
    assert "<dt>Spans</dt><dd>3</dd>" in html and "<dt>Duration</dt><dd>3.00 s</dd>" in html
    assert "<dt>Cost</dt><dd>$0.0075</dd>" in html and "1,000 in · 500 out" in html
    # The panel opens on the LLM call: its chat, and a Replay link for it.
    assert f'data-span-detail="{hexid(w["oi_llm"])}"' in html
    assert (
        'data-role="system"' in html
        and "You analyse sales." in html
        and "Summarise Q3" in html
        and "Q3 grew 12%." in html
    )
    assert (
        f"/admin/monitoring/{project.id}/replay/?trace={w['oi_agent'].trace.hex()}&amp;span={hexid(w['oi_llm'])}"
        in html
    )
    assert f'/admin/monitoring/{project.id}/replay/?trace={w["oi_agent"].trace.hex()}"' in html

    html = trace_page(client, project, w["tl_flow"], span=hexid(w["tl_llm"]))
    assert "Weather in Paris?" in html and "⚙ get_weather" in html and "&quot;city&quot;: &quot;Paris&quot;" in html

    html = panel(client, project, w["ga_llm"])
    assert "<html" not in html and "사용자 수를 알려줘" in html and "⚙ run_sql" in html
    assert "select count() from users" in html and "gen_ai.content.prompt" in html  # a non-exception event
    assert "<dt>" not in html  # a fragment, not the page

    html = panel(client, project, w["litellm_call"])
    assert 'data-role="user"' in html and "Say hello" in html and 'data-role="assistant"' in html and "Hello!" in html
    assert '$0.002 <span class="muted">(reported)</span>' in html  # the digits the amount needs ($0.00000026 too)
    html = trace_page(client, project, w["litellm_call"])
    assert "<h2>POST /v1/chat/completions</h2>" in html and html.count('class="span-row') == 7  # small: shown whole
    assert "<dt>LLM calls</dt><dd>1</dd>" in html


def test_pages_without_a_filter_bar_do_not_ask_for_its_choices(client, alice, project, world, caplog):
    client.force_login(alice)
    with caplog.at_level(logging.DEBUG, logger="monitoring.store.clickhouse"):
        trace_page(client, project, world["litellm_call"])
        client.get(f"/admin/monitoring/{project.id}/replay/", {"trace": world["litellm_call"].trace.hex()})
    assert "traces.whole" in caplog.text and "filters.facets" not in caplog.text
    with caplog.at_level(logging.DEBUG, logger="monitoring.store.clickhouse"):
        client.get(f"/admin/monitoring/{project.id}/traces/")
    assert "filters.facets" in caplog.text  # the list has the bar


def test_it_shows_exceptions_with_their_stack_trace(client, alice, project, world):
    client.force_login(alice)
    html = panel(client, project, world["ga_tool"])
    assert "sqlite3.OperationalError" in html and "no such table: users" in html
    assert '<pre class="stacktrace">Traceback (most recent call last):\n  File &quot;agent.py&quot;, line 7' in html
    html = trace_page(client, project, world["ga_agent"])
    assert '<dt>Errors</dt><dd class="bad">2</dd>' in html and 'class="span-row error' in html


def test_it_shows_the_real_litellm_tool_call_and_error_trace(client, alice, project, ingest_key):
    for body in CAPTURE["captures"]["otel"]["otlp_requests"]:
        assert (
            client.post(
                "/v1/traces",
                data=json.dumps(body),
                content_type="application/json",
                headers={"Authorization": f"Bearer {ingest_key}"},
            ).status_code
            == 200
        )
    spans = CAPTURE["captures"]["otel"]["spans"]
    client.force_login(alice)
    call = next(s for s in spans if s["request_label"] == "tool_call" and s["name"] == "litellm_request")
    html = client.get(f"/admin/monitoring/{project.id}/traces/{call['trace_id']}/").content.decode()
    assert f'data-span-detail="{call["span_id"]}"' in html  # the call, not the FastAPI root
    assert (
        "Use a tool" in html
        and "This is a mock request" in html
        and "⚙ run_sql" in html
        and "tool offered: run_sql" in html
    )
    failed = next(s for s in spans if s["request_label"] == "rate_limit_429" and s["name"] == "litellm_request")
    html = client.get(
        f"/admin/monitoring/{project.id}/traces/{failed['trace_id']}/spans", {"span": failed["span_id"]}
    ).content.decode()
    assert (
        "litellm.exceptions.RateLimitError" in html
        and '<pre class="stacktrace">Traceback' in html
        and "Fail please" in html
    )


def test_it_answers_404_for_bad_or_unknown_traces_and_400_for_bad_fragments(client, alice, project, world):
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}/traces"
    trace = world["oi_agent"].trace.hex()
    assert client.get(f"{base}/not-a-trace/").status_code == 404
    assert client.get(f"{base}/{'a' * 31}/").status_code == 404
    assert client.get(f"{base}/{'0' * 32}/").status_code == 404
    assert client.get(f"{base}/{trace.upper()}/").status_code == 200
    assert client.get(f"{base}/{trace}/spans", {"span": "xyz"}).status_code == 400
    assert client.get(f"{base}/{trace}/spans", {"span": "ab" * 8}).status_code == 404
    assert client.get(f"{base}/{trace}/spans", {"parent": "ab" * 8}).status_code == 404
    assert client.get(f"{base}/{trace}/spans", {"parent": hexid(world["oi_agent"]), "depth": "x"}).status_code == 400
    assert client.get(f"{base}/{trace}/spans").status_code == 400


# --- a 10,000-span trace --------------------------------------------------------------------------


def test_it_opens_a_10000_span_trace_with_a_bounded_page_and_lazy_subtrees(client, alice, project, ingest_key):
    # A run of 120 steps; 99 of them made 100 LLM calls each, one made 150: 10,071 spans.
    root = S("batch", service="agent-batch", at=AT, ms=60_000)
    steps = [root.child(f"step {i}", at=AT + dt.timedelta(milliseconds=10 * i), ms=500) for i in range(120)]
    calls = {
        i: [
            step.child(
                f"llm {i}.{j}",
                at=step.at + dt.timedelta(microseconds=j),
                ms=5,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1,
                    "gen_ai.usage.output_tokens": 1,
                },
            )
            for j in range(150 if i == 2 else 100)
        ]
        for i, step in enumerate(steps[:99])
    }
    send(client, ingest_key, [root, *steps, *(c for group in calls.values() for c in group)])
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}"
    started = time.perf_counter()
    r = client.get(f"{base}/")
    elapsed = time.perf_counter() - started
    html = r.content.decode()
    assert r.status_code == 200
    assert "<dt>Spans</dt><dd>10,071</dd>" in html and "<dt>LLM calls</dt><dd>9,950</dd>" in html
    assert len(r.content) < 250_000, len(r.content)
    rows = html.count('class="span-row')
    assert rows <= 310, rows
    print(f"\n10,071-span trace page: {elapsed * 1000:.0f} ms, {len(r.content) / 1024:.0f} KiB, {rows} rows")

    # Level 1 is there (100 steps, then a "more" line for 20); the first step is open, later ones collapsed.
    shown = re.findall(r'data-span="([0-9a-f]{16})" data-depth="1"', html)
    assert shown == [hexid(s) for s in steps[:100]]
    assert f'data-span="{hexid(steps[0])}" data-depth="1" data-open="1"' in html
    assert f'data-span="{hexid(steps[60])}" data-depth="1" data-open="0" data-loaded="0"' in html
    more = re.findall(rf'hx-get="([^"]*parent={hexid(root)}[^"]*after=[^"]+)"', html)
    assert len(more) == 1 and "Show 20 more" in html
    rest = client.get(more[0].replace("&amp;", "&"), headers={"HX-Request": "true"}).content.decode()
    assert re.findall(r'data-span="([0-9a-f]{16})" data-depth="1"', rest) == [hexid(s) for s in steps[100:]]

    # A collapsed step's children come on demand, on the trace's time axis, a page at a time.
    t0 = re.search(r'data-t0="(\d+)"', html).group(1)
    tn = re.search(r'data-tn="(\d+)"', html).group(1)
    sub = client.get(
        f"{base}/spans", {"parent": hexid(steps[60]), "depth": 2, "t0": t0, "tn": tn}, headers={"HX-Request": "true"}
    )
    frag = sub.content.decode()
    assert sub.status_code == 200 and "<html" not in frag
    assert re.findall(r'data-span="([0-9a-f]{16})" data-depth="2"', frag) == [hexid(c) for c in calls[60]]
    sub = client.get(f"{base}/spans", {"parent": hexid(steps[2]), "depth": 2, "t0": t0, "tn": tn})
    frag = sub.content.decode()
    assert frag.count('class="span-row"') == 100 and "Show more" in frag
    next_page = re.search(r'hx-get="([^"]+)"', frag).group(1).replace("&amp;", "&")
    frag2 = client.get(next_page).content.decode()
    assert re.findall(r'data-span="([0-9a-f]{16})" data-depth="2"', frag + frag2) == [hexid(c) for c in calls[2]]


def test_it_opens_a_deep_chain_without_recursion(client, alice, project, ingest_key):
    spans = [S("hop 0", at=AT, ms=5000)]
    for i in range(1, 3000):
        spans.append(spans[-1].child(f"hop {i}", at=AT + dt.timedelta(microseconds=i), ms=1))
    send(client, ingest_key, spans)
    client.force_login(alice)
    html = trace_page(client, project, spans[0])
    assert html.count('class="span-row') == 3  # depths 0-2 open, hop 2 collapsed
    assert f'data-span="{hexid(spans[2])}" data-depth="2" data-open="0"' in html


# --- who may see what -----------------------------------------------------------------------------


def test_it_hides_another_projects_traces_everywhere(client, charlie, project, other_project, world):
    client.force_login(charlie)
    trace = world["oi_agent"].trace.hex()
    span = hexid(world["oi_llm"])
    for pid in (project.id,):  # not a member: the project does not exist for charlie
        for url in [
            f"/admin/monitoring/{pid}/traces/",
            f"/admin/monitoring/{pid}/traces/export.csv",
            f"/admin/monitoring/{pid}/traces/{trace}/",
            f"/admin/monitoring/{pid}/traces/{trace}/spans?span={span}",
            f"/api/v1/projects/{pid}/traces",
            f"/api/v1/projects/{pid}/traces/{trace}",
        ]:
            assert client.get(url).status_code == 404, url
    # A member of another project asks for this project's trace through their own project.
    pid = other_project.id
    for url in [
        f"/admin/monitoring/{pid}/traces/{trace}/",
        f"/admin/monitoring/{pid}/traces/{trace}/spans?span={span}",
        f"/admin/monitoring/{pid}/traces/{trace}/spans?parent={hexid(world['oi_agent'])}",
        f"/api/v1/projects/{pid}/traces/{trace}",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.get(f"/api/v1/projects/{pid}/traces", {"q": trace, "kind": "all"}).json()["items"] == []
    body = b"".join(
        client.get(f"/admin/monitoring/{pid}/traces/export.csv", {"kind": "all", "q": trace}).streaming_content
    )
    assert body.decode().count("\n") == 1  # the header only


def test_it_needs_a_login(client, project):
    for url in [
        f"/admin/monitoring/{project.id}/traces/",
        f"/admin/monitoring/{project.id}/traces/export.csv",
        f"/admin/monitoring/{project.id}/traces/{'a' * 32}/",
        f"/admin/monitoring/{project.id}/traces/{'a' * 32}/spans",
    ]:
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/"), url
    assert client.get(f"/api/v1/projects/{project.id}/traces").status_code == 401
    assert client.get(f"/api/v1/projects/{project.id}/traces/{'a' * 32}").status_code == 401


# --- the read API ---------------------------------------------------------------------------------


def test_the_api_lists_spans_with_a_stable_shape_and_a_bearer_token(client, alice, project, world):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", "alice", stdout=out)
    headers = {"Authorization": f"Bearer {out.getvalue().strip()}"}
    r = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "llm", "limit": 2}, headers=headers)
    data = r.json()
    assert r.status_code == 200 and set(data) == {"items", "next_cursor"} and len(data["items"]) == 2
    assert set(data["items"][0]) == {
        "time",
        "timestamp_ns",
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "span_kind",
        "service",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_source",
        "duration_ms",
        "status",
        "status_message",
        "is_llm_call",
        "matched",  # why a search found the row ("" without a search)
        "snippet",  # the text around the match (search results; "" otherwise)
        "scores",  # the span's own scores, {name: {value, label, count}} (added with scores; {} when none)
        "end_user",  # whose it is (added with the exports' columns; an invocation's are its call's)
        "session",
    }
    assert isinstance(data["next_cursor"], str)
    client.force_login(alice)
    item = next(
        i for i in api(client, project, kind="llm", limit=500)["items"] if i["span_id"] == hexid(world["oi_llm"])
    )
    assert (item["model"], item["input_tokens"], item["output_tokens"], item["cost_source"], item["duration_ms"]) == (
        "gpt-4o",
        1000,
        500,
        "priced",
        900.0,
    )
    assert item["cost_usd"] == pytest.approx(0.0075) and item["is_llm_call"] is True and item["time"].endswith("Z")
    assert client.get(f"/api/v1/projects/{project.id}/traces", {"limit": 500}).status_code == 200


def test_the_api_returns_a_whole_trace(client, alice, project, world):
    client.force_login(alice)
    trace = world["ga_agent"].trace.hex()
    r = client.get(f"/api/v1/projects/{project.id}/traces/{trace}")
    data = r.json()
    assert r.status_code == 200 and set(data) == {"trace_id", "spans", "truncated"} and data["trace_id"] == trace
    assert [s["name"] for s in data["spans"]] == ["invoke_agent text2sql", "chat qwen-235b", "execute_tool run_sql"]
    llm = data["spans"][1]
    assert set(llm) >= {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "service",
        "scope",
        "start",
        "start_ns",
        "end_ns",
        "duration_ms",
        "status",
        "resource",
        "attributes",
        "events",
        "links",
    }
    assert llm["parent_span_id"] == hexid(world["ga_agent"]) and llm["resource"]["project_id"] == str(project.id)
    assert llm["attributes"]["gen_ai.request.model"] == "qwen-235b" and llm["scope"]["name"] == "genai"
    assert llm["links"] == [
        {
            "trace_id": world["oi_agent"].trace.hex(),
            "span_id": hexid(world["oi_agent"]),
            "trace_state": "",
            "attributes": {"link.kind": "follows"},
            "attributes_truncated": False,  # nothing cut: no count beside it
        }
    ]
    assert not any(llm[f"{part}_truncated"] for part in ("resource", "attributes", "events", "links"))
    tool = data["spans"][2]
    assert tool["status"]["code"] == "Error"
    assert (
        tool["events"][0]["name"] == "exception"
        and tool["events"][0]["attributes"]["exception.stacktrace"] == TRACEBACK
    )
    assert client.get(f"/api/v1/projects/{project.id}/traces/xyz").status_code == 400
    assert client.get(f"/api/v1/projects/{project.id}/traces/{'0' * 32}").status_code == 404


def test_it_finds_a_trace_through_the_lookup_table(client, alice, project, world):
    ref = trace_q.locate(str(project.id), world["oi_agent"].trace.hex())
    assert ref.end_ns - ref.start_ns <= 3 * 10**9  # the trace's seconds, not all time
    unknown = trace_q.locate(str(project.id), "f" * 32)
    assert unknown.start_ns > unknown.end_ns  # not a trace of this project: an empty range, nothing is read


def test_a_trace_is_located_in_one_read_and_another_projects_trace_has_nothing(project, other_project, world, caplog):
    trace = world["oi_agent"].trace.hex()
    with caplog.at_level(logging.DEBUG, logger="monitoring.store.clickhouse"):
        ref = trace_q.locate(str(other_project.id), trace)
    assert len([r for r in caplog.records if "tag=traces." in r.getMessage()]) == 1
    # The lookup knows the trace's seconds but not its project: every question names the project.
    assert ref.start_ns <= ref.end_ns
    assert trace_q.tree_spans(ref) == [] and trace_q.full_spans(ref) == [] and trace_q.invocations(ref) == []
    assert trace_q.full_span(ref, hexid(world["oi_llm"])) is None
    assert trace_q.children(ref, "") is None


def test_a_small_traces_page_reads_it_whole_once_and_its_tree_is_the_same(client, alice, project, world, caplog):
    """A trace of at most WHOLE_TRACE_SPANS spans is read whole in one statement; the tree made
    from it is the tree read from otel_spans, for every dialect's trace."""
    traces = {s.trace.hex() for s in world.values() if hasattr(s, "trace")}
    assert len(traces) > 3
    for trace in sorted(traces):
        ref = trace_q.locate(str(project.id), trace)
        tree, calls, whole = trace_q.page_reads(ref, "", DEFAULT_AGENT_SPAN_NAMES)
        assert tree == trace_q.tree_spans(ref) and calls == trace_q.invocations(ref)
        assert list(whole) == [s.span_id for s in tree]
    client.force_login(alice)
    with caplog.at_level(logging.DEBUG, logger="monitoring.store.clickhouse"):
        assert client.get(f"/admin/monitoring/{project.id}/traces/{world['oi_agent'].trace.hex()}/").status_code == 200
    tags = [m.group(1) for r in caplog.records if (m := re.search(r"tag=(traces\.\w+)", r.getMessage()))]
    assert "traces.whole" in tags and "traces.tree" not in tags and "traces.span" not in tags, tags


def _store(rows):
    from monitoring.store import clickhouse, schema

    clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test", nanos_columns=schema.NANOS_COLUMNS)


def test_a_traces_page_reads_agree_on_odd_deliveries(project, other_project):
    """What a collector may write: a span exported unfinished and then finished (the finished copy
    is shown, by the whole read and the tree alike), a row without a span id (not a span: left
    out), and another project's span under the same trace id years away (the range is narrowed
    to this project's own spans)."""
    from monitoring.ingest import otlp

    root = S("agent", service="agent-a", at=AT, ms=2000)
    step = root.child("step", at=AT + dt.timedelta(milliseconds=10), ms=500)
    rows = otlp.rows_from_request(request(root, step), str(project.id)).rows
    unfinished = {**next(r for r in rows if r["SpanId"] == hexid(step)), "Duration": 2**64 - rows[0]["Timestamp"]}
    nameless = {**rows[0], "SpanId": "", "ParentSpanId": "", "SpanName": "no id"}
    _store([unfinished, nameless])
    _store(rows)
    stray = otlp.rows_from_request(
        request(S("far", trace=root.trace, at=AT - dt.timedelta(days=800))), str(other_project.id)
    ).rows
    _store(stray)
    ref = trace_q.locate(str(project.id), root.trace.hex())
    assert ref.end_ns - ref.start_ns < 10 * 10**9  # the stray span's 800 days are not scanned
    tree, _, whole = trace_q.page_reads(ref, "", DEFAULT_AGENT_SPAN_NAMES)
    assert [s.span_id for s in tree] == [hexid(root), hexid(step)] == list(whole)
    assert tree == trace_q.tree_spans(ref)
    assert all(s.has_end for s in tree) and whole[hexid(step)].duration_ns == 500 * 10**6
    assert [s.span_id for s in trace_q.full_spans(ref)] == [hexid(root), hexid(step)]


def test_whole_spans_are_read_by_trace_id_not_by_the_exporters_order(settings, project):
    """The exporter orders otel_traces by service and span name, which scatters a trace over the
    table; the by-trace-id projection holds it in one granule (monitoring/store/schema.py). ClickHouse
    picks it when it reads fewer marks: here (a database of its own) a trace of 26 services among
    300,000 spans of the same services and seconds lies in 26 granules, as at 10M spans
    (bench/dashboard.py shows the time). The projection is required below, so a column the trace
    reads that it lacks fails the test too."""
    from monitoring.store import clickhouse, schema

    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": "otel_by_trace"}
    schema.ensure_schema(ttl_days=0)
    assert schema.has_trace_projection()
    trace, start = "7ace" * 8, time.time_ns() - 10**9
    for where, n in (("'7ace7ace7ace7ace7ace7ace7ace7ace'", 26), ("hex(cityHash64(number % 50000))", 300_000)):
        clickhouse.command(
            f"INSERT INTO {schema.table()} (Timestamp, TraceId, SpanId, SpanName, ServiceName, ResourceAttributes,"
            " SpanAttributes, Duration, StatusCode)"
            " SELECT fromUnixTimestamp64Nano({start:Int64} + toInt64(number * 997 % 1000000000)),"
            f" {where}, lower(hex(number + {{first:UInt64}})), 'step', concat(char(97 + number % 26), '-svc'),"
            " map('project_id', {p:String}), map('gen_ai.prompt.0.content', repeat('x', 200)), 1000, 'Ok'"
            " FROM numbers({n:UInt64})",
            {"start": start, "p": str(project.id), "n": n, "first": 0 if n == 26 else 10**6},
            tag="test",
        )
    clickhouse.command(f"OPTIMIZE TABLE {schema.table()} FINAL", tag="test")  # one part, as merges leave a day
    ref = trace_q.locate(str(project.id), trace)
    required = (
        f" SETTINGS preferred_optimize_projection_name = '{schema.TRACE_PROJECTION}',"
        f" force_optimize_projection_name = '{schema.TRACE_PROJECTION}'"
    )
    whole = trace_q.full_spans(ref)
    assert len(whole) == 26 and len({s.service for s in whole}) == 26
    # A page's read of a small trace whole: its stored rows unsorted, the copies chosen in Python.
    rows = clickhouse.query(
        trace_q._trace_sql(trace_q.WHOLE_COPIES_SQL) + required, ref.params(limit=100, **trace_q._CAPS), tag="test"
    )
    assert [s.as_dict() for s in trace_q._first_copies([trace_q._full_span(r) for r in rows])] == [
        s.as_dict() for s in whole
    ]
    for where, answer in (("", whole), ("AND SpanId = {span:String}", [trace_q.full_span(ref, whole[3].span_id)])):
        sql = trace_q._trace_sql(trace_q.FULL_SPANS_SQL.replace("$span", where)) + required
        rows = clickhouse.query(
            sql, ref.params(limit=100, span=whole[3].span_id, **trace_q._CAPS), tag="test.projection"
        )
        assert [trace_q._full_span(r).as_dict() for r in rows] == [s.as_dict() for s in answer]


def test_a_name_of_100000_characters_is_cut_where_it_is_listed_and_whole_where_it_is_read(
    client, alice, project, ingest_key
):
    """Lists, the trace tree and the filter bar show the start of a huge name (a browser laying out
    100,000 characters per row took 12 s); the span panel and the exports keep it whole."""
    huge = "한" + "n" * 99_999
    root = S(huge, service="s" * 2_000, at=AT, attributes={"gen_ai.operation.name": "invoke_agent"})
    send(client, ingest_key, [root])
    client.force_login(alice)
    page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "all", "range": "1h"}).content.decode()
    assert huge[: spans_q.NAME_CHARS] in page and huge[: spans_q.NAME_CHARS + 1] not in page
    assert "s" * 2_000 not in page  # neither in the row nor among the filter bar's services
    api = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "all", "range": "1h"}).json()
    assert [len(row["name"]) for row in api["items"]] == [spans_q.NAME_CHARS]
    tree, detail = trace_page(client, project, root), panel(client, project, root)
    assert huge in detail  # the span panel reads the span itself: the whole name
    # The trace page holds the tree and the root's panel: the name is whole in the panel only.
    assert tree.count(huge[: spans_q.NAME_CHARS + 1]) == detail.count(huge[: spans_q.NAME_CHARS + 1]) == 1
    assert tree.count(huge[: spans_q.NAME_CHARS]) >= 2
    body = b"".join(client.get(f"/admin/monitoring/{project.id}/traces/export.json", {"kind": "all"}).streaming_content)
    assert [row["name"] for row in json.loads(body)["items"]] == [huge]


def test_a_tree_row_names_its_children_in_the_viewers_language(client, alice, project, ingest_key):
    """The toggle of a span with children says how many, translated and pluralized (made with the
    row in Python: a blocktranslate per row was the tree's slowest part)."""
    root = S("agent", service="agent-a", at=AT, ms=2000)
    kids = [root.child(f"step {i}", at=AT + dt.timedelta(milliseconds=10 * i), ms=5) for i in range(1, 3)]
    only = kids[0].child("tool", at=AT + dt.timedelta(milliseconds=11), ms=1)
    send(client, ingest_key, [root, *kids, only])
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}/"
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'title="2 child spans"' in page and 'title="1 child span"' in page
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert 'title="하위 스팬 2개"' in page and 'title="하위 스팬 1개"' in page


@pytest.mark.parametrize(
    ("source", "html"),
    [
        ("reported", "$0.001200"),
        ("priced", "$0.001200<sup>p</sup>"),
        ("wrapped", '<span class="muted">—</span>'),
        ("", ""),
        (
            "unpriced",
            '<span class="unpriced" data-unpriced title="No reported cost and no known price: set one in Django'
            ' admin, Projects, model prices">unpriced</span>',
        ),
    ],
)
def test_a_list_rows_cost_cell_says_where_the_cost_comes_from(source, html):
    from django.template import Context, Template
    from django.utils import translation

    cell = Template("{% load display %}{% cost_cell cost source 6 %}")
    with translation.override("en"):
        assert cell.render(Context({"cost": 0.0012, "source": source})) == html
    if source == "unpriced":
        with translation.override("ko"):
            korean = cell.render(Context({"cost": 0, "source": source}))
            assert ">가격 없음</span>" in korean and 'title="보고된 비용도 알려진 가격도 없습니다' in korean


def test_a_list_rows_duration_cell_marks_a_span_without_an_end():
    from django.template import Context, Template
    from django.utils import translation

    cell = Template("{% load display %}{% duration_cell ms %}")
    with translation.override("en"):
        assert cell.render(Context({"ms": 1534.0})) == "1.53 s"
        unfinished = cell.render(Context({"ms": None}))
        assert unfinished.startswith('<span class="in-progress" title="No end time: the span was exported before')
        assert unfinished.endswith("data-in-progress>in progress</span>")


def test_a_tree_rows_child_count_reads_as_before_in_any_size():
    """The count is printed as the template's blocktranslate printed it (no thousands separator)."""
    from django.utils import translation

    from monitoring.web.views.traces import _tree_lines

    span = trace_q.TreeSpan(
        ts=10**18, span_id="a" * 16, parent_span_id="", name="agent", service="s", span_kind="Internal",
        scope="", duration_ns=10**9, status="Ok", is_llm_call=False, is_agent_step=True, model="",
        input_tokens=0, output_tokens=0, reported_cost=0.0, child_count=1234,
    )  # fmt: skip
    with translation.override("en"):
        (line,) = _tree_lines([trace_q.TreeRow(span, 0, open=True)], 10**18, 10**9, "/spans")
    assert (line["children"], line["open"], line["bar"], line["duration"]) == (
        "1234 child spans",
        "1",
        "left:0.0%;width:100.0%",
        "1.00 s",
    )
    with translation.override("ko"):
        assert _tree_lines([trace_q.TreeRow(span, 0)], 10**18, 10**9, "/spans")[0]["children"] == "하위 스팬 1234개"


def test_a_whole_read_keeps_the_copy_every_other_read_keeps():
    """_first_copies keeps, per span id, the first copy of FULL_SPANS_SQL's order (start time, then
    finished first), also when a sender re-delivered a span with another start."""
    from types import SimpleNamespace as Copy

    copies = [
        Copy(span_id="a", ts=5, has_end=False, n=1),
        Copy(span_id="a", ts=5, has_end=True, n=2),
        Copy(span_id="b", ts=3, has_end=True, n=3),
        Copy(span_id="b", ts=2, has_end=False, n=4),
        Copy(span_id="c", ts=2, has_end=True, n=5),
    ]
    assert [c.n for c in trace_q._first_copies(copies)] == [4, 5, 2]
