"""The settler: the facts it stores give the answers the counting rules give live, it writes only
what changed, and a later span that changes a decision (a gateway span arriving after its agent's
call, a re-delivery, a price) corrects the stored facts and every rollup fed from them."""

import datetime as dt

import pytest
from otlp import S, post_recorded, recorded, send

from demo import traffic
from monitoring import models
from monitoring.ingest import otlp
from monitoring.models import ModelPrice
from monitoring.queries import breakdowns, facets, flow, latency, runs, sessions, timeseries
from monitoring.queries import overview as overview_q
from monitoring.queries.filter import SpanFilter, Window
from monitoring.queries.spans import ListQuery, list_spans
from monitoring.semantics import pricing, resettle, settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)
AT = NOW - dt.timedelta(minutes=20)


def window(project, hours: float, **kw) -> SpanFilter:
    return SpanFilter(str(project.id), Window(NOW - dt.timedelta(hours=hours), NOW), **kw)


def answers(project) -> dict:
    """Every question of the dashboard, for a short window (raw rows) and a long one (rollup slices)."""
    found = {}
    for hours in (1, 24 * 30):
        flt = window(project, hours)
        o = overview_q.overview(flt)
        found[f"overview {hours}"] = o.as_dict()
        ts = timeseries.timeseries(flt)
        found[f"series {hours}"] = (ts.values, ts.runs, ts.failed_runs, ts.extra)
        found[f"breakdowns {hours}"] = {k: [vars(s) for s in v] for k, v in breakdowns.breakdowns(flt).items()}
        found[f"latency {hours}"] = latency.latency(flt)
        graph = flow.agent_flow(flt)
        found[f"flow {hours}"] = (graph.runs, [vars(n) for n in graph.nodes], graph.edges)
        found[f"runs {hours}"] = [vars(r) for r in runs.list_runs(flt, runs.RunQuery(limit=500)).items]
        found[f"sessions {hours}"] = [
            vars(g) for g in sessions.sessions(flt, sessions.GroupQuery(limit=sessions.MAX_ROWS)).items
        ]
        found[f"users {hours}"] = [
            vars(g) for g in sessions.users(flt, sessions.GroupQuery(limit=sessions.MAX_ROWS)).items
        ]
        found[f"facets {hours}"] = facets.facets(flt)
        found[f"llm list {hours}"] = [r.as_dict() for r in list_spans(flt, ListQuery(kind="llm", limit=500)).items]
        for service in ("litellm-proxy", "agent-text2sql"):
            narrowed = window(project, hours, services=(service,))
            found[f"overview {hours} {service}"] = overview_q.overview(narrowed).as_dict()
            found[f"flow {hours} {service}"] = flow.agent_flow(narrowed).runs
        found[f"overview {hours} errors"] = overview_q.overview(window(project, hours, status="error")).as_dict()
    return found


def demo_traffic(project, days=3, runs_per_day=25):
    for req, _ in traffic.generate_requests(days=days, runs_per_day=runs_per_day, seed=11, batch_spans=2000):
        rows, _ = otlp.rows_from_request(req, str(project.id))
        clickhouse.insert(schema.table(), schema.TRACE_COLUMNS, rows, tag="test", nanos_columns=schema.NANOS_COLUMNS)


def test_settled_facts_answer_every_question_as_the_rules_do_live(client, project, ingest_key):
    demo_traffic(project)
    for sdk in ("openinference-langchain-openai", "strands-agents-1.40", "vercel-ai-v5-streamText-embed"):
        assert post_recorded(client, ingest_key, recorded(f"sdk/{sdk}")).status_code == 200
    live = answers(project)
    assert live["overview 720"]["llm_calls"] > 100 and live["overview 720"]["agent_calls"] > 30
    settle.settle_once()
    assert answers(project) == live


def test_a_pass_writes_only_what_changed(client, project, ingest_key):
    demo_traffic(project, days=1, runs_per_day=10)
    first = settle.settle_once()
    assert first.calls_written > 0 and first.runs_written > 0 and first.edges_written > 0
    again = settle.settle_once()  # the same spans again (its overlap): nothing new to write
    assert (again.calls_written, again.runs_written, again.edges_written) == (0, 0, 0)


def test_a_project_id_that_names_no_project_does_not_stop_the_pass(client, project, ingest_key):
    """A collector takes `project_id` from whatever the sender wrote: a name, a typo. The pass
    settles those spans with the default rules and goes on to the real projects'."""
    for bogus in ("team-a", ""):
        clickhouse.command(
            f"INSERT INTO {schema.table()} (Timestamp, TraceId, SpanId, SpanName, ServiceName, ResourceAttributes,"
            " SpanAttributes, Duration) VALUES (now64(9), {t:String}, 'b0b0b0b0b0b0b0b0', 'chat gpt-4o', 'app',"
            " map('project_id', {p:String}), map('gen_ai.operation.name', 'chat', 'gen_ai.request.model', 'gpt-4o',"
            " 'gen_ai.usage.input_tokens', '3'), 1000)",
            {"t": (bogus or "none").encode().hex().ljust(32, "0"), "p": bogus},
            tag="test",
        )
    demo_traffic(project, days=1, runs_per_day=5)
    report = settle.settle_once()
    assert report.calls_written > 0
    settled = clickhouse.query_one(
        f"SELECT countIf(ProjectId = {{p:String}}) AS mine, countIf(ProjectId = 'team-a') AS named"
        f" FROM {schema.table(schema.CALLS)}",
        {"p": str(project.id)},
        tag="test",
    )
    assert settled["mine"] > 0 and settled["named"] == 1
    # Only the spelling the portal writes names a project: pages match ProjectId exactly.
    assert models.project_pk(str(project.id)) == project.id
    assert models.project_pk(str(project.id).upper()) is None and models.project_pk("team-a") is None


def _calls_in_storage(project) -> list[dict]:
    return clickhouse.query(
        f"SELECT SpanId, Sign, ServiceName, Cost FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{p:String}}"
        " ORDER BY Version, Sign DESC",
        {"p": str(project.id)},
        tag="test",
    )


def test_a_gateway_span_arriving_after_its_agents_call_replaces_it(client, project, ingest_key):
    """The agent SDK did not propagate traceparent: its client span and LiteLLM's call span are in
    different traces, matched by the response id. Settled first alone, the agent's span counted
    (priced from its tokens); when the gateway's span arrives, the stored fact is cancelled."""
    agent = S(
        "invoke_agent planner",
        service="agent-planner",
        at=AT,
        ms=3000,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    client_call = agent.child(
        "chat gpt-4o-mini",
        at=AT + dt.timedelta(milliseconds=100),
        ms=1500,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.response.id": "chatcmpl-42",
        },
    )
    send(client, ingest_key, agent, client_call)
    settle.settle_once()
    before = overview_q.overview(window(project, 1))
    assert (before.llm_calls, before.total_cost_usd) == (1, pytest.approx(10 * 0.15e-6 + 20 * 0.6e-6))

    gateway = S(
        "litellm_request",
        service="litellm-proxy",
        at=AT + dt.timedelta(milliseconds=150),
        ms=1200,
        attributes={
            "llm.request.type": "acompletion",
            "litellm.model_group": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.cost.total_cost": 0.002,
            "gen_ai.response.id": "chatcmpl-42",
        },
    )
    send(client, ingest_key, gateway, scope="litellm")
    settle.settle_once()
    after = overview_q.overview(window(project, 1))
    assert (after.llm_calls, after.agent_calls, after.total_cost_usd) == (1, 1, pytest.approx(0.002))
    by_service = {s.name: s.calls for s in breakdowns.breakdowns(window(project, 1))["service"]}
    assert by_service == {"agent-planner": 1}  # the agent made the call; the gateway served it
    (run,) = runs.list_runs(window(project, 1)).items
    assert (run.trace_id, run.llm_calls, run.cost_usd) == (agent.trace.hex(), 1, pytest.approx(0.002))
    # The agent's fact was cancelled (+1 then -1; a background merge may already have collapsed the
    # pair), the gateway's stands.
    stored = _calls_in_storage(project)
    net: dict[str, int] = {}
    for r in stored:
        net[r["SpanId"]] = net.get(r["SpanId"], 0) + r["Sign"]
    assert {span: sign for span, sign in net.items() if sign} == {gateway.span_id.hex(): 1}
    assert [r["SpanId"] for r in stored][-1] == gateway.span_id.hex()
    # The rollups were fed the cancel row too: a month's slices count one call.
    assert overview_q.overview(window(project, 24 * 30)).llm_calls == 1


def test_calls_are_matched_across_traces_one_to_one_and_only_with_the_same_usage(client, project, ingest_key):
    """No response ids: the gateway call inside the client span, for the same alias, with the same
    tokens. Two concurrent calls pair up one to one; a direct call that merely overlaps is its own."""

    def client_span(i, inp, out, ms=1000):
        return S(
            f"chat {i}",
            service="agent-x",
            at=AT + dt.timedelta(milliseconds=10 * i),
            ms=ms,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": out,
            },
        )

    def gateway_span(i, inp, out):
        return S(
            "litellm_request",
            service="litellm-proxy",
            at=AT + dt.timedelta(milliseconds=10 * i + 50),
            ms=500,
            attributes={
                "llm.request.type": "acompletion",
                "litellm.model_group": "gpt-4o",
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": out,
                "gen_ai.cost.total_cost": 0.01,
            },
        )

    send(client, ingest_key, client_span(1, 100, 10), client_span(2, 200, 20), client_span(3, 300, 30))
    send(client, ingest_key, gateway_span(1, 100, 10), gateway_span(2, 200, 20), scope="litellm")
    for mode in ("live", "settled"):
        if mode == "settled":
            settle.settle_once()
        o = overview_q.overview(window(project, 1))
        assert o.llm_calls == 3, mode  # two through the gateway, one direct (300/30 overlaps, other usage)
        assert o.reported_cost_usd == pytest.approx(0.02), mode


def test_a_framework_span_around_the_sdk_span_is_one_call(client, project, ingest_key):
    """OpenInference's LangChain span with the OpenAI SDK's span as its child (the same call)."""
    framework = S(
        "ChatOpenAI",
        service="svc",
        at=AT,
        ms=900,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 100,
        },
    )
    sdk = framework.child(
        "ChatCompletion",
        at=AT + dt.timedelta(milliseconds=5),
        ms=850,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 100,
        },
    )
    send(client, ingest_key, framework, sdk)
    o = overview_q.overview(window(project, 1))
    assert (o.llm_calls, o.input_tokens) == (1, 1000)
    (row,) = list_spans(window(project, 1), ListQuery(kind="llm")).items
    assert row.span_id == sdk.span_id.hex()  # the innermost span is the invocation


def test_replay_reruns_are_left_out_of_the_numbers_unless_asked_for(client, project, ingest_key):
    call = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 0,
    }
    send(client, ingest_key, S("chat gpt-4o", service="app", at=AT, attributes=call))
    rerun = S("chat gpt-4o", service="apm-replay", at=AT, ms=900, attributes=call)
    # The gateway exports the re-run's call into the project, in the re-run's trace (traceparent).
    gateway = rerun.child(
        "litellm_request",
        service="litellm-proxy",
        ms=800,
        attributes={"llm.request.type": "acompletion", "litellm.model_group": "gpt-4o", "gen_ai.cost.total_cost": 0.05},
    )
    send(client, ingest_key, rerun)
    send(client, ingest_key, gateway, scope="litellm")
    for mode in ("live", "settled"):
        if mode == "settled":
            settle.settle_once()
        assert overview_q.overview(window(project, 1)).total_cost_usd == pytest.approx(1000 * 2.5e-6), mode
        everything = overview_q.overview(window(project, 1, include_replays=True))
        assert (everything.llm_calls, everything.total_cost_usd) == (2, pytest.approx(1000 * 2.5e-6 + 0.05)), mode


def test_a_price_change_reaches_every_settled_call(client, project, ingest_key):
    call = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "qwen-235b",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 500,
    }
    send(client, ingest_key, S("chat qwen-235b", service="app", at=AT, attributes=call))
    settle.settle_once()
    unpriced = overview_q.overview(window(project, 1))
    assert (unpriced.total_cost_usd, unpriced.unpriced_calls, unpriced.unpriced_models) == (0, 1, ["qwen-235b"])
    ModelPrice.objects.create(project=project, model="qwen-235b", input_per_million=1, output_per_million=2)
    assert str(project.id) in resettle.resettle_changed()
    priced = overview_q.overview(window(project, 24 * 30))
    assert (priced.total_cost_usd, priced.unpriced_calls) == (pytest.approx(1000 * 1e-6 + 500 * 2e-6), 0)
    assert resettle.resettle_changed() == []  # done once


def test_new_agent_step_names_make_and_unmake_runs(client, project, ingest_key):
    send(client, ingest_key, S("summarise", service="backend", at=AT, ms=50))
    settle.settle_once()
    assert overview_q.overview(window(project, 1)).agent_calls == 0
    project.agent_span_names = "summarise"
    project.save()
    resettle.resettle_changed()
    assert overview_q.overview(window(project, 1, agent_names=("summarise",))).agent_calls == 1
    project.agent_span_names = ""
    project.save()
    resettle.resettle_changed()
    assert overview_q.overview(window(project, 24 * 30, agent_names=())).agent_calls == 0


def test_a_model_named_without_its_provider_takes_the_price_its_providers_agree_on(
    client, project, ingest_key, monkeypatch
):
    """OpenInference names an embedding model without its provider; genai-prices' provider-less lookup
    misses OpenAI's embedding models, which OpenAI and Azure list at one price: that price. A rules
    change re-prices what was settled before it."""
    embed = {
        "openinference.span.kind": "EMBEDDING",
        "embedding.model_name": "text-embedding-3-small",
        "llm.token_count.prompt": 1_000_000,
        "llm.token_count.total": 1_000_000,
    }
    send(client, ingest_key, S("CreateEmbeddings", service="rag", at=AT, attributes=embed))
    monkeypatch.setattr(pricing, "_sole_price", lambda model: None)  # as before the rule
    pricing.public_rates.cache_clear()
    settle.settle_once()
    before = overview_q.overview(window(project, 1))
    assert (before.llm_calls, before.unpriced_calls, before.total_cost_usd) == (1, 1, 0)
    monkeypatch.undo()
    pricing.public_rates.cache_clear()
    monkeypatch.setattr(pricing, "RULES_VERSION", pricing.RULES_VERSION + 1)
    assert str(project.id) in resettle.resettle_changed()
    after = overview_q.overview(window(project, 1))
    assert (after.unpriced_calls, after.total_cost_usd) == (0, pytest.approx(0.02))  # $0.02 per million
    assert pricing.public_rates("gpt-4o-unknown-variant-xyz") is None


@pytest.mark.parametrize("settled", [False, True], ids=["live", "settled"])
def test_calls_take_their_runs_end_user_and_session(client, project, ingest_key, settled):
    """The end user and session sit on the run's root span only (as Langfuse's SDK and LiteLLM's
    request metadata put them); the run's calls are that user's and session's, cost included. A
    call naming its own keeps it."""
    root = S(
        "invoke_agent planner",
        service="agent-planner",
        at=AT,
        ms=3000,
        attributes={"gen_ai.operation.name": "invoke_agent", "user.id": "u-42", "session.id": "s-7"},
    )
    usage = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 100,
    }
    first = root.child("chat gpt-4o-mini", at=AT + dt.timedelta(milliseconds=100), ms=500, attributes=usage)
    second = root.child(
        "chat gpt-4o-mini",
        at=AT + dt.timedelta(milliseconds=900),
        ms=500,
        attributes={**usage, "user.id": "u-other"},
    )
    send(client, ingest_key, root, first, second)
    if settled:
        settle.settle_once()
    flt = window(project, 1)
    by_user = {g.key: g for g in sessions.users(flt).items}
    assert (by_user["u-42"].calls, by_user["u-42"].runs) == (1, 1)
    assert (by_user["u-other"].calls, by_user["u-other"].runs) == (1, 0)
    assert by_user["u-42"].cost_usd == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)
    (session,) = sessions.sessions(flt).items
    assert (session.key, session.calls, session.runs) == ("s-7", 2, 1)


def _chat(name: str) -> S:
    return S(name, at=AT, attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})


def test_an_embedded_pass_settles_each_span_once_without_re_reading_the_last_pass(client, project, ingest_key):
    """Embedded mode: the portal is the only writer, so a pass reads only what came after the
    last one (no overlap re-read: with one pass a second, each span was settled three times)."""
    send(client, ingest_key, _chat("chat first"), _chat("chat second"))
    assert settle.settle_once().traces == 2
    send(client, ingest_key, _chat("chat third"))
    assert settle.settle_once().traces == 1  # the first two are not read again
    assert settle.settle_once().traces == 0
    assert overview_q.overview(window(project, 1)).llm_calls == 3


def test_a_pass_stops_short_of_a_write_still_under_way(client, project, ingest_key):
    """A block the engine stamps (InsertedAt) before a pass reads but commits after it must be
    settled by the next pass, never skipped: a pass stops before the oldest write under way."""
    with clickhouse._in_flight():  # a write begun before these spans, not finished yet
        send(client, ingest_key, _chat("chat during a slow write"))
        assert settle.settle_once().traces == 0
    assert settle.settle_once().traces == 1
    assert overview_q.overview(window(project, 1)).llm_calls == 1


def test_the_job_settles_light_traffic_at_once_and_lets_heavy_traffic_gather(client, project, ingest_key, monkeypatch):
    """A pass costs about the same for a few spans as for thousands: after a pass that settled
    BUSY_SPANS or more, the job waits BUSY_SECONDS; after a light one it settles at its next tick."""
    monkeypatch.setattr(settle, "BUSY_SPANS", 3)
    monkeypatch.setattr(settle, "BUSY_SECONDS", 3600.0)
    monkeypatch.setattr(settle, "_last_pass", {})
    send(client, ingest_key, _chat("chat light"))
    assert settle.settle_when_due().spans == 1
    send(client, ingest_key, _chat("chat a"), _chat("chat b"), _chat("chat c"))
    assert settle.settle_when_due().spans == 3  # light before: settled at once
    send(client, ingest_key, _chat("chat d"))
    assert settle.settle_when_due() is None  # heavy before: it gathers
    assert _settled_calls(project) == 4
    monkeypatch.setattr(settle, "BUSY_SECONDS", 0.0)
    assert settle.settle_when_due().spans == 1  # until the wait is over
    assert _settled_calls(project) == 5


def _settled_calls(project) -> int:
    return int(
        clickhouse.query_one(
            f"SELECT sum(Sign) AS n FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{p:String}}",
            {"p": str(project.id)},
            tag="test",
        )["n"]
    )
