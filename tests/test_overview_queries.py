"""The Overview's five numbers, exactly, on spans written for the test in every dialect (monitoring/semantics/semconv.py)."""

import datetime as dt
import json
from pathlib import Path

import pytest
from otlp import S, send

from monitoring.models import ModelPrice
from monitoring.queries import live, sources, timeseries
from monitoring.queries import overview as queries
from monitoring.queries.overview import Overview
from monitoring.semantics import settle
from monitoring.web.forms import SpanFilter, Window

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)
HOUR = Window(NOW - dt.timedelta(hours=1), NOW + dt.timedelta(minutes=1))
AT = NOW - dt.timedelta(minutes=10)
CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "litellm_1.108.7_spans.json").read_text())


def litellm_request_spans(name="litellm_request", *, model="gpt-4o-mini", cost=0.002, ms=200.0, error=False):
    """The LiteLLM proxy's spans for one chat completion, as 1.108.7 writes them."""
    server = S("POST /v1/chat/completions", service="litellm-proxy", at=AT, ms=ms + 20)
    received = server.child("Received Proxy Server Request", ms=ms + 10, error=error)
    call_attrs = {
        "llm.request.type": "acompletion",
        "gen_ai.operation.name": "acompletion",
        "litellm.model_group": model,
        "gen_ai.request.model": f"openai/{model}",
        "litellm.call_id": "c-1",
    }
    if not error:
        call_attrs |= {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.cost.total_cost": cost,
        }
    call = received.child(name, ms=ms, attributes=call_attrs, error=error)
    spans = [
        server,
        received,
        received.child("auth"),
        received.child("router"),
        received.child("proxy_pre_call"),
        call,
        call.child(
            name if name != "litellm_request" else "raw_gen_ai_request",
            attributes={"llm.openai.stringified_raw_response": "{}"},
        ),
    ]
    if error:
        spans.append(received.child("Failed Proxy Server Request", error=True, attributes={"exception": "boom"}))
    return spans


def test_it_counts_one_litellm_call_per_request_even_when_renamed(client, project, ingest_key):
    send(client, ingest_key, litellm_request_spans(cost=0.002, ms=100), scope="litellm")
    send(client, ingest_key, litellm_request_spans("my-generation", cost=0.003, ms=300), scope="litellm")
    send(client, ingest_key, litellm_request_spans(error=True, ms=200), scope="litellm")
    o = queries.overview(SpanFilter(str(project.id), HOUR))
    assert (o.llm_calls, o.llm_errors, o.agent_calls) == (3, 1, 0)
    assert o.total_cost_usd == pytest.approx(0.005)
    assert o.avg_latency_ms == pytest.approx(200.0)
    assert o.fail_rate == pytest.approx(1 / 3)


def test_it_counts_agents_and_llm_calls_of_every_dialect_and_prices_tokens(client, project, ingest_key):
    ModelPrice.objects.create(project=project, model="qwen-235b", input_per_million=1, output_per_million=2)
    # OpenInference: an AGENT run with one LLM call (gpt-4o: $2.5 / $10 per 1M tokens).
    oi = S("analyze", service="agent-analyze", at=AT, attributes={"openinference.span.kind": "AGENT"})
    oi_llm = oi.child(
        "ChatCompletion",
        ms=400,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 500,
        },
    )
    # OpenLLMetry: a workflow with an LLM call in the older token keys (claude-3-5-sonnet: $3 / $15).
    tl = S("generate.workflow", service="agent-report", at=AT, attributes={"traceloop.span.kind": "workflow"})
    tl_llm = tl.child(
        "anthropic.chat",
        ms=600,
        attributes={
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-3-5-sonnet",
            "gen_ai.usage.prompt_tokens": 2000,
            "gen_ai.usage.completion_tokens": 100,
        },
    )
    # GenAI semconv: a failing agent with a chat call on a self-hosted model priced by the project.
    ga = S(
        "invoke_agent text2sql",
        service="agent-text2sql",
        at=AT,
        error=True,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    ga_llm = ga.child(
        "chat qwen-235b",
        ms=200,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "qwen-235b",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 1000,
        },
    )
    ga_tool = ga.child("execute_tool run_sql", attributes={"gen_ai.operation.name": "execute_tool"})
    # No dialect at all: the root span of an agent-* service is an agent run; a seed name is a step.
    plain = S("execute", service="agent-sql", at=AT)
    named = S("text2sql", service="backend", at=AT)
    # Not counted: outside the window, and a plain span.
    old = S(
        "analyze",
        service="agent-analyze",
        at=NOW - dt.timedelta(days=2),
        attributes={"openinference.span.kind": "AGENT"},
    )
    noise = S("GET /healthz", service="backend", at=AT)
    send(client, ingest_key, [oi, oi_llm, tl, tl_llm, ga, ga_llm, ga_tool, plain, named, old, noise], scope="agent-sdk")

    o = queries.overview(SpanFilter(str(project.id), HOUR))
    assert o.llm_calls == 3
    assert o.llm_errors == 0
    assert o.agent_calls == 5  # oi, tl, ga, plain, named
    assert o.agent_errors == 1
    assert o.fail_rate == pytest.approx(1 / 8)
    assert o.avg_latency_ms == pytest.approx(400.0)
    assert o.reported_cost_usd == 0
    assert o.priced_cost_usd == pytest.approx(0.0075 + 0.0075 + 0.003)
    assert o.total_cost_usd == pytest.approx(0.018)


def test_it_prefers_the_reported_cost_and_prices_only_unpriced_calls(client, project, ingest_key):
    send(client, ingest_key, litellm_request_spans(model="gpt-4o", cost=0.5), scope="litellm")  # reported: kept as is
    # unpriced: 10 in, 20 out tokens
    send(client, ingest_key, litellm_request_spans(model="gpt-4o", cost=0.0), scope="litellm")
    o = queries.overview(SpanFilter(str(project.id), HOUR))
    assert o.reported_cost_usd == pytest.approx(0.5)
    assert o.priced_cost_usd == pytest.approx(10 * 2.5e-6 + 20 * 10e-6)


def test_it_sees_only_its_own_project(client, project, other_project, ingest_key):
    from monitoring.models import IngestKey

    send(client, IngestKey.issue(other_project)[1], litellm_request_spans(), scope="litellm")
    assert queries.overview(SpanFilter(str(project.id), HOUR)).llm_calls == 0
    assert queries.overview(SpanFilter(str(other_project.id), HOUR)).llm_calls == 1


_KINDS = {"Unspecified": 0, "Internal": 1, "Server": 2, "Client": 3, "Producer": 4, "Consumer": 5}
_CODES = {"Unset": 0, "Ok": 1, "Error": 2}


def _otlp_value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _otlp_json(spans) -> dict:
    """A capture's decoded spans back into one OTLP/JSON body (for captures kept without raw bodies)."""
    groups = {}
    for s in spans:
        key = (json.dumps(s["resource"], sort_keys=True), s["scope"]["name"], s["scope"].get("version", ""))
        groups.setdefault(key, []).append(
            {
                "traceId": s["trace_id"],
                "spanId": s["span_id"],
                "parentSpanId": s["parent_span_id"],
                "name": s["name"],
                "kind": _KINDS[s["kind"]],
                "startTimeUnixNano": str(s["start_ns"]),
                "endTimeUnixNano": str(s["end_ns"]),
                "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in s["attributes"].items()],
                "status": {"code": _CODES[s["status"]["code"]], "message": s["status"]["message"]},
            }
        )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": k, "value": _otlp_value(v)} for k, v in json.loads(res).items()]},
                "scopeSpans": [{"scope": {"name": scope, "version": version}, "spans": group}],
            }
            for (res, scope, version), group in groups.items()
        ]
    }


# 12 requests: 11 reached model routing, 3 of those failed (429, 500, unknown model), one key was
# rejected before routing. The V2 tracer records no call at all for the unknown model.
@pytest.mark.parametrize("capture, calls, failed", [("otel", 11, 3), ("otel_no_content", 11, 3), ("otel_v2", 10, 2)])
def test_it_counts_real_litellm_1_108_7_exports(client, project, ingest_key, capture, calls, failed):
    """The proxy's own OTLP exports, replayed into the receiver."""
    cap = CAPTURE["captures"][capture]
    for body in cap.get("otlp_requests") or [_otlp_json(cap["spans"])]:
        r = client.post(
            "/v1/traces",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {ingest_key}"},
        )
        assert r.status_code == 200, r.content
    starts = [int(s["start_ns"]) for s in cap["spans"]]
    window = Window(
        dt.datetime.fromtimestamp(min(starts) / 1e9 - 60, dt.UTC),
        dt.datetime.fromtimestamp(max(starts) / 1e9 + 60, dt.UTC),
    )
    costs = [
        float(r["response_headers"].get("x-litellm-response-cost") or 0) for r in cap["requests"] if r["status"] == 200
    ]
    o = queries.overview(SpanFilter(str(project.id), window))
    assert o.llm_calls == calls
    assert o.llm_errors == failed
    assert o.agent_calls == 0
    if capture != "otel_v2":  # the V2 tracer reports cost on its own keys; streaming cost is only on the span
        streamed = [
            s for s in cap["spans"] if s["request_label"] == "stream" and "gen_ai.cost.total_cost" in s["attributes"]
        ]
        stream_cost = sum(float(s["attributes"]["gen_ai.cost.total_cost"]) for s in streamed)
        assert o.reported_cost_usd == pytest.approx(sum(costs) + stream_cost)


def agent_call_through_the_proxy(client, key):
    """An OpenInference agent whose LLM span (gpt-4o, 10 + 20 tokens) called through LiteLLM ($0.25, 800 ms)."""
    agent = S("text2sql", service="agent-text2sql", at=AT, ms=2000, attributes={"openinference.span.kind": "AGENT"})
    caller = agent.child(
        "ChatCompletion",
        at=AT,
        ms=900,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 20,
        },
    )
    proxy = litellm_request_spans(model="gpt-4o", cost=0.25, ms=800)
    for span in proxy:
        span.trace = caller.trace
        span.at = AT + dt.timedelta(milliseconds=50)
    proxy[0].parent = caller.span_id
    send(client, key, [agent, caller], scope="openinference")
    send(client, key, proxy, scope="litellm")


def test_it_counts_a_call_through_the_proxy_once(client, project, ingest_key):
    """An OpenInference LLM span whose HTTP call went through LiteLLM: one invocation, the gateway's cost."""
    agent_call_through_the_proxy(client, ingest_key)
    o = queries.overview(SpanFilter(str(project.id), HOUR))
    assert (o.llm_calls, o.agent_calls) == (1, 1)
    assert o.total_cost_usd == pytest.approx(0.25)  # not also 10 x $2.5/M + 20 x $10/M for the caller's span
    assert o.avg_latency_ms == pytest.approx(800.0)


def test_a_service_filter_keeps_the_agents_own_calls_and_a_model_filter_keeps_its_runs(client, project, ingest_key):
    """Through the proxy the gateway's span is the counted call, made by the agent's service: filtered
    to that service it is still one call, priced once at the gateway's reported cost."""
    agent_call_through_the_proxy(client, ingest_key)
    by_service = queries.overview(SpanFilter(str(project.id), HOUR, services=("agent-text2sql",)))
    assert (by_service.llm_calls, by_service.agent_calls) == (1, 1)
    assert by_service.total_cost_usd == pytest.approx(0.25)  # the gateway's cost, not the caller's tokens priced
    by_model = queries.overview(SpanFilter(str(project.id), HOUR, models=("gpt-4o",)))
    assert (by_model.llm_calls, by_model.agent_calls) == (1, 1)
    assert by_model.total_cost_usd == pytest.approx(0.25)


@pytest.mark.parametrize("hours", [1, 30])  # raw rows only; rollup slices plus raw edges
def test_both_windows_in_one_go_answer_as_each_alone(client, project, ingest_key, hours, settings):
    """The Overview tab reads the window, the previous one and its trend lines in the same
    statements: the same numbers as two separate overviews (the previous one's latency percentiles
    are not asked for) and the same series as asked apart."""
    window = Window(NOW - dt.timedelta(hours=hours), NOW + dt.timedelta(minutes=1))
    earlier = NOW - dt.timedelta(hours=hours, minutes=30)
    send(client, ingest_key, litellm_request_spans(cost=0.002, ms=100), scope="litellm")
    send(client, ingest_key, litellm_request_spans(model="gpt-4o", cost=0.01, ms=300, error=True), scope="litellm")
    for spans in (litellm_request_spans(cost=0.004, ms=500), litellm_request_spans(cost=0.001, ms=50)):
        for s in spans:
            s.at = earlier
        send(client, ingest_key, spans, scope="litellm")
    flt = SpanFilter(str(project.id), window)
    for settled in (False, True):  # the live part of unsettled traces; settled rows and rollup slices
        if settled:
            settle.settle_once()
            settings.SETTLE_FRESH_SECONDS = 1e12  # the settler keeps up: no live part
            live.forget()
        assert (live.facts_for(flt) is None) == settled
        now, before, series = queries.overview_page(flt, window.previous())
        assert now == queries.overview(flt)
        assert (now.llm_calls, now.llm_errors) == (2, 1)
        alone = queries.overview(flt.with_window(window.previous()))
        assert (before.llm_calls, before.total_cost_usd) == (2, pytest.approx(0.005))
        assert before == Overview(
            **{**vars(alone), "p50_latency_ms": 0.0, "p95_latency_ms": 0.0, "p99_latency_ms": 0.0}
        )
        alone_series = timeseries.timeseries(flt)
        assert (series.bucket, series.times, series.models, series.runs, series.failed_runs) == (
            alone_series.bucket,
            alone_series.times,
            alone_series.models,
            alone_series.runs,
            alone_series.failed_runs,
        )
        assert series.values == alone_series.values and series.extra == alone_series.extra
        assert sum(series.total("llm_calls")) == 2 and any(series.total("errors"))
    with pytest.raises(ValueError, match="overlapping"):  # a row would be counted in one window only
        queries.overview_page(flt, Window(NOW - dt.timedelta(hours=hours + 1), NOW - dt.timedelta(minutes=5)))


def test_the_overviews_services_are_the_leader_board(client, project, ingest_key):
    """The Overview reads calls and runs per service in its own statements: "Top services by
    errors" is those rows, failed LLM calls plus failed runs, calls plus runs."""
    send(client, ingest_key, litellm_request_spans(error=True), scope="litellm")
    send(client, ingest_key, litellm_request_spans(cost=0.001), scope="litellm")
    agent = S(
        "invoke_agent planner",
        service="agent-planner",
        at=AT,
        error=True,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    send(client, ingest_key, agent)
    flt = SpanFilter(str(project.id), HOUR)
    board = queries.top_services(queries.overview(flt))
    assert [(s.name, s.calls, s.errors) for s in board] == [("agent-planner", 1, 1), ("litellm-proxy", 2, 1)]


def test_usd_totals_are_summed_exactly_and_never_refused():
    """The Overview rolls (model, service) groups up in Python (monitoring/queries/overview.py):
    exactly rounded, and an inf cancelled by -inf (a settled call with an absurd reported cost,
    later cancelled) reads nan as ClickHouse's sum did, not a 500."""
    assert sources.usd_sum([0.1] * 10) == 1.0
    assert str(sources.usd_sum([float("inf"), float("-inf")])) == "nan"


def test_a_live_answer_never_reads_another_scopes_tables(client, project, other_project, ingest_key):
    """The live part's temporary tables belong to the scope they were computed for: a later scope,
    even one CPython allocates where a freed one was (the same id()), computes its own. Keyed on
    id() the second project read the first's tables, a run short (CI's flaky "Top services")."""
    from monitoring.models import IngestKey

    other_key = IngestKey.issue(other_project)[1]
    send(
        client,
        ingest_key,
        S("invoke_agent a", service="agent-a", at=AT, error=True, attributes={"gen_ai.operation.name": "invoke_agent"}),
    )
    send(
        client,
        other_key,
        S("invoke_agent b", service="agent-b", at=AT, error=True, attributes={"gen_ai.operation.name": "invoke_agent"}),
    )
    for _ in range(20):
        for p, service in ((project, "agent-a"), (other_project, "agent-b")):
            live.forget()  # the scope is dropped and freed: the next one may take its address
            board = queries.top_services(queries.overview(SpanFilter(str(p.id), HOUR)))
            assert [(s.name, s.calls, s.errors) for s in board] == [(service, 1, 1)]
