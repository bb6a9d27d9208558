"""demo.traffic: the demo-traffic generator (pure: no database, no Django).

Run: .venv/bin/python -m pytest tests/test_demo.py -q -p no:django
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from demo import traffic

NOW = datetime(2025, 6, 11, 3, 30, 12, 345678, tzinfo=UTC)
DAY_NS = 86_400 * 10**9
FIXTURE = Path(__file__).parent / "fixtures" / "litellm_1.108.7_spans.json"
KINDS = {PbSpan.SPAN_KIND_INTERNAL: "Internal", PbSpan.SPAN_KIND_SERVER: "Server", PbSpan.SPAN_KIND_CLIENT: "Client"}
STATUSES = {Status.STATUS_CODE_UNSET: "Unset", Status.STATUS_CODE_OK: "Ok", Status.STATUS_CODE_ERROR: "Error"}


@dataclass
class S:
    """A decoded span, flat, for assertions."""

    trace: bytes
    id: bytes
    parent: bytes
    name: str
    kind: str
    status: str
    service: str
    scope: str
    start: int
    end: int
    attrs: dict[str, AnyValue]
    events: list[tuple[str, dict[str, AnyValue]]]

    def value(self, key: str) -> Any:
        v = self.attrs[key]
        return getattr(v, v.WhichOneof("value"))


def decode(requests) -> tuple[list[S], list[int], list[set[int]]]:
    """All spans, the yielded counts, and each request's set of UTC days (start and end)."""
    spans, counts, days = [], [], []
    for req, n in requests:
        counts.append(n)
        req_days: set[int] = set()
        for rs in req.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert "project_id" not in resource  # the ingest sets it
            for ss in rs.scope_spans:
                for p in ss.spans:
                    spans.append(
                        S(
                            p.trace_id,
                            p.span_id,
                            p.parent_span_id,
                            p.name,
                            KINDS[p.kind],
                            STATUSES[p.status.code],
                            resource["service.name"],
                            ss.scope.name,
                            p.start_time_unix_nano,
                            p.end_time_unix_nano,
                            {kv.key: kv.value for kv in p.attributes},
                            [(e.name, {kv.key: kv.value for kv in e.attributes}) for e in p.events],
                        )
                    )
                    req_days |= {p.start_time_unix_nano // DAY_NS, (p.end_time_unix_nano - 1) // DAY_NS}
        days.append(req_days)
    return spans, counts, days


@pytest.fixture(scope="module")
def week() -> tuple[list[S], list[int], list[set[int]]]:
    return decode(traffic.generate_requests(now=NOW))


@pytest.fixture(scope="module")
def traces(week) -> dict[bytes, list[S]]:
    by_trace: dict[bytes, list[S]] = defaultdict(list)
    for s in week[0]:
        by_trace[s.trace].append(s)
    return by_trace


def test_it_is_deterministic_for_a_seed_and_now():
    def blob(seed: int) -> bytes:
        return b"".join(
            r.SerializeToString(deterministic=True)
            for r, _ in traffic.generate_requests(days=2, runs_per_day=40, seed=seed, now=NOW)
        )

    assert blob(7) == blob(7)
    assert blob(7) != blob(8)


def test_it_keeps_each_request_inside_one_utc_day_and_the_batch_size(week):
    spans, counts, days = week
    assert all(len(d) == 1 for d in days)
    assert max(counts) <= 500
    assert sum(counts) == len(spans)
    now_ns = int(NOW.timestamp() * 10**9)
    assert min(s.start for s in spans) >= now_ns - 7 * DAY_NS - DAY_NS  # may slide back into its own day
    assert max(s.end for s in spans) <= now_ns


def test_it_honours_a_small_batch_size():
    _, counts, days = decode(traffic.generate_requests(days=2, runs_per_day=30, now=NOW, batch_spans=37))
    assert max(counts) == 37 and all(n <= 37 for n in counts)
    assert all(len(d) == 1 for d in days)


def test_it_gives_valid_unique_ids(week, traces):
    spans = week[0]
    assert all(len(s.trace) == 16 and any(s.trace) for s in spans)
    assert all(len(s.id) == 8 and any(s.id) for s in spans)
    assert all(s.parent == b"" or (len(s.parent) == 8 and any(s.parent)) for s in spans)
    assert len({(s.trace, s.id) for s in spans}) == len(spans)
    assert len(traces) == 7 * 120


def test_every_parent_is_in_the_same_trace_and_each_trace_has_one_root(traces):
    for trace in traces.values():
        ids = {s.id for s in trace}
        assert all(s.parent in ids for s in trace if s.parent)
        roots = [s for s in trace if not s.parent]
        assert len(roots) == 1
        root = roots[0]
        assert all(root.start <= s.start <= s.end <= root.end for s in trace)


def test_traffic_follows_office_hours(traces):
    hours = Counter(datetime.fromtimestamp(min(s.start for s in t) / 1e9, UTC).hour for t in traces.values())
    office = sum(hours[h] for h in range(0, 9))  # 09-18 KST
    night = sum(hours[h] for h in range(15, 21))  # 00-06 KST
    assert office > 5 * night


def test_every_dialect_is_present(week):
    spans = week[0]
    by_service = Counter(s.service for s in spans)
    assert set(by_service) == set(traffic.DIALECT_SERVICES.values())

    litellm = [
        s
        for s in spans
        if "litellm.call_id" in s.attrs and s.service == "litellm-proxy" and s.name != "fastapi.dependencies"
    ]  # a 401 puts the request's attributes there
    assert len(litellm) > 500
    assert {s.name for s in litellm} > {"litellm_request", "summarize-ticket"}  # renamed by generation_name

    oi = Counter(s.value("openinference.span.kind") for s in spans if "openinference.span.kind" in s.attrs)
    assert set(oi) == {"AGENT", "CHAIN", "TOOL", "LLM", "RETRIEVER", "EMBEDDING"}

    tl = Counter(s.value("traceloop.span.kind") for s in spans if "traceloop.span.kind" in s.attrs)
    assert set(tl) == {"workflow", "task", "agent", "tool"}
    tl_llm = [s for s in spans if s.attrs.get("llm.request.type") and s.service == "agent-analyze"]
    assert any("gen_ai.usage.prompt_tokens" in s.attrs for s in tl_llm)  # older keys
    assert any("gen_ai.usage.input_tokens" in s.attrs for s in tl_llm)
    assert any("gen_ai.prompt.0.content" in s.attrs for s in tl_llm)

    ops = Counter(
        s.value("gen_ai.operation.name")
        for s in spans
        if s.service == "agent-report" and "gen_ai.operation.name" in s.attrs
    )
    assert set(ops) == {"invoke_agent", "execute_tool", "chat", "embeddings"}

    models = {
        s.value(k)
        for s in spans
        for k in ("litellm.model_group", "gen_ai.request.model", "llm.model_name", "embedding.model_name")
        if k in s.attrs
    }
    assert {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "qwen-235b", "text-embedding-3-small"} <= models


def test_agents_call_through_the_proxy_in_the_same_trace(traces):
    crossing = [
        t for t in traces.values() if len({s.service for s in t}) > 1 and any(s.name == "litellm_request" for s in t)
    ]
    assert len(crossing) > 50
    for trace in crossing[:20]:
        by_id = {s.id: s for s in trace}
        server = next(s for s in trace if s.name.startswith("POST /v1/") and s.service == "litellm-proxy")
        assert by_id[server.parent].service != "litellm-proxy"


def test_litellm_values_have_litellms_types(week):
    calls = [s for s in week[0] if "gen_ai.cost.total_cost" in s.attrs]
    assert calls
    for s in calls:
        assert s.attrs["gen_ai.usage.input_tokens"].WhichOneof("value") == "int_value"
        assert s.attrs["gen_ai.usage.output_tokens"].WhichOneof("value") == "int_value"
        assert s.attrs["gen_ai.cost.total_cost"].WhichOneof("value") == "double_value"
        assert s.attrs["llm.is_streaming"].WhichOneof("value") == "string_value"
        if s.value("llm.request.type") == "acompletion":
            assert json.loads(s.value("gen_ai.input.messages"))[-1]["parts"]  # the "parts" format
    qwen = [s for s in calls if s.value("litellm.model_group") == "qwen-235b"]
    assert qwen and all(s.value("gen_ai.cost.total_cost") == 0.0 for s in qwen)  # unpriced self-hosted model
    assert any(s.value("gen_ai.cost.total_cost") > 0 for s in calls)


def test_errors_are_a_realistic_share_and_carry_exceptions(traces, week):
    failed = [t for t in traces.values() if any(s.status == "Error" for s in t)]
    assert 0.03 <= len(failed) / len(traces) <= 0.08
    errors = [s for s in week[0] if s.status == "Error"]
    litellm_failures = [s for s in errors if "litellm.call_id" in s.attrs]
    assert litellm_failures
    for s in litellm_failures:
        assert {"error.type", "error.code", "http.response.status_code"} <= set(s.attrs)
        ((name, event),) = s.events
        assert name == "exception"
        assert {"exception.type", "exception.message", "exception.stacktrace"} <= set(event)
    assert any(s.name == "Failed Proxy Server Request" for s in errors)
    tool_failures = [
        s
        for s in errors
        if s.service.startswith("agent-")
        and s.events
        and "tool" in (s.name + str(s.attrs.get("openinference.span.kind", "")).lower())
    ]
    assert tool_failures


def test_some_runs_are_long(traces):
    durations = sorted(max(s.end for s in t) - min(s.start for s in t) for t in traces.values())
    assert durations[len(durations) // 2] < 30 * 10**9
    assert durations[-1] > 60 * 10**9


def test_the_estimate_matches_what_is_generated(week):
    assert abs(sum(week[1]) / traffic.estimate_spans(7, 120) - 1) < 0.1
    other = sum(n for _, n in traffic.generate_requests(days=3, runs_per_day=50, seed=3, now=NOW))
    assert abs(other / traffic.estimate_spans(3, 50) - 1) < 0.1


def test_the_count_is_exactly_what_is_generated(week):
    """The progress bar's total (demo_traces): exact, so it ends at 100 %."""
    assert traffic.count_spans(days=7, runs_per_day=120, now=NOW) == sum(week[1])
    other = sum(n for _, n in traffic.generate_requests(days=3, runs_per_day=50, seed=3, now=NOW))
    assert traffic.count_spans(days=3, runs_per_day=50, seed=3, now=NOW) == other


def test_a_naive_now_is_taken_as_utc():
    naive = NOW.replace(tzinfo=None)
    a = [r.SerializeToString() for r, _ in traffic.generate_requests(days=1, runs_per_day=10, now=naive)]
    b = [r.SerializeToString() for r, _ in traffic.generate_requests(days=1, runs_per_day=10, now=NOW)]
    assert a == b


@pytest.mark.parametrize("now", [NOW + timedelta(days=30), datetime(2025, 6, 12, 0, 2, tzinfo=UTC)])
def test_nothing_ends_after_now_even_just_after_midnight(now):
    spans, _, days = decode(traffic.generate_requests(days=1, runs_per_day=300, now=now))
    assert max(s.end for s in spans) <= int(now.timestamp() * 10**9)
    assert all(len(d) == 1 for d in days)


# --- the LiteLLM proxy's spans follow the real capture ---------------------------------------------


def _proxy_requests(traces: dict[bytes, list[S]]) -> list[list[S]]:
    """Group the proxy's spans by request: the spans under one outside parent (an agent span, or none)."""
    groups: dict[tuple[bytes, bytes], list[S]] = defaultdict(list)
    for trace in traces.values():
        by_id = {s.id: s for s in trace}
        for s in trace:
            if s.service != "litellm-proxy":
                continue
            top = s
            while top.parent and by_id[top.parent].service == "litellm-proxy":
                top = by_id[top.parent]
            groups[(s.trace, top.parent)].append(s)
    return list(groups.values())


def _my_shape(request: list[S]) -> Counter:
    """(name, kind, status, parent's name) per span; generation_name renames mapped back to the defaults."""
    call = {s.id for s in request if "litellm.call_id" in s.attrs and s.name != "fastapi.dependencies"}
    by_id = {s.id: s for s in request}

    def name(s: S) -> str:
        if s.id in call:
            return "litellm_request"
        return "raw_gen_ai_request" if s.parent in call else s.name

    return Counter(
        (name(s), s.kind, s.status, name(by_id[s.parent]) if s.parent in by_id else ("<caller>" if s.parent else ""))
        for s in request
    )


def _fixture_shape(spans: list[dict[str, Any]], label: str) -> Counter:
    mine = [s for s in spans if s["request_label"] == label]
    names = {s["span_id"]: s["name"] for s in mine}
    return Counter(
        (
            s["name"],
            s["kind"],
            s["status"]["code"],
            names.get(s["parent_span_id"], "<caller>" if s["parent_span_id"] else ""),
        )
        for s in mine
    )


def _label_of(request: list[S]) -> str | None:
    """Which captured request this one corresponds to (None: a combination the capture lacks)."""
    server = next(s for s in request if s.kind == "Server" and s.scope == "fastapi")
    if server.name != "POST /v1/chat/completions":
        return None  # embeddings
    status = server.value("http.response.status_code")
    if server.parent:
        return "traceparent" if status == 200 else None
    if status != 200:
        return {401: "bad_key_401", 429: "rate_limit_429", 500: "internal_error_500"}.get(status)
    call = next(s for s in request if "litellm.call_id" in s.attrs)
    return "stream" if call.value("llm.is_streaming") == "True" else "success"


@pytest.mark.skipif(not FIXTURE.exists(), reason="no LiteLLM capture")
def test_proxy_spans_have_the_captured_shape(traces):
    captured = json.loads(FIXTURE.read_text())["captures"]["otel"]["spans"]
    seen: dict[str | None, Counter] = {}
    for request in _proxy_requests(traces):
        seen.setdefault(_label_of(request), _my_shape(request))
    seen.pop(None)
    assert set(seen) == {"success", "stream", "traceparent", "rate_limit_429", "internal_error_500", "bad_key_401"}
    for label, shape in seen.items():
        assert shape == _fixture_shape(captured, label), label


@pytest.mark.skipif(not FIXTURE.exists(), reason="no LiteLLM capture")
def test_proxy_spans_carry_the_captured_attribute_keys(traces):
    captured = json.loads(FIXTURE.read_text())["captures"]["otel"]["spans"]
    real = {s["name"]: set(s["attributes"]) for s in captured if s["request_label"] == "success"}
    # What the capture's requests did not exercise: a team key, client-sent params, `user`,
    # tools, and a real provider's raw response (mocks answer a placeholder string).
    optional = {
        "metadata.user_api_key_team_id",
        "metadata.user_api_key_team_alias",
        "gen_ai.request.max_tokens",
        "gen_ai.request.temperature",
        "llm.user",
    }
    request = next(
        r for r in _proxy_requests(traces) if _label_of(r) == "success" and any(s.name == "litellm_request" for s in r)
    )
    for s in request:
        if s.name == "raw_gen_ai_request":
            assert all(k.startswith("llm.") for k in s.attrs)
            continue
        assert real[s.name] <= set(s.attrs), s.name
        assert set(s.attrs) - real[s.name] <= optional, s.name
    keys = list(next(s for s in request if s.name == "litellm_request").attrs)
    real_order = list(
        next(s for s in captured if s["request_label"] == "success" and s["name"] == "litellm_request")["attributes"]
    )
    assert [k for k in keys if k in real_order] == real_order  # LiteLLM's own order


# --- bin/demo's gateway: a local LiteLLM proxy with mock answers, so Replay's re-run answers -------


def test_the_demo_gateway_has_a_mock_deployment_for_every_model_replay_can_name(week):
    """Whatever model Replay's editor shows for a demo call (its request's alias, or the provider's
    name some SDK spans record) is a deployment of the demo gateway, answering with mock_response."""
    from demo import gateway
    from monitoring.semantics import messages

    named = set()
    for s in week[0]:
        attrs = {k: s.value(k) for k in s.attrs}
        if any(k.startswith(("gen_ai.", "llm.", "litellm.")) for k in attrs):
            model = messages.request_params(attrs).model
            if model:
                named.add(model)
    config = gateway.config()
    deployments = {d["model_name"]: d["litellm_params"] for d in config["model_list"]}
    assert named and named <= set(deployments), named - set(deployments)
    assert all(p["mock_response"] and p["model"].startswith("openai/") for p in deployments.values())
    assert config["litellm_settings"]["num_retries"] == 0


def test_bin_demo_starts_the_gateway_beside_the_portal_and_points_replay_at_it():
    script = (Path(__file__).resolve().parents[1] / "bin" / "demo").read_text()
    setup = (Path(__file__).resolve().parents[1] / "bin" / "setup").read_text()
    assert "bin/setup --gateway" in script and "-r requirements-litellm.txt" in setup  # its own venv
    assert "manage.py demo_gateway" in script and ".venv-litellm/bin/litellm --config" in script
    assert "--host 127.0.0.1" in script  # loopback only
    assert 'export LITELLM_BASE_URL="http://127.0.0.1:$GATEWAY_PORT"' in script
    assert 'if [ -z "${LITELLM_BASE_URL:-}" ]' in script  # an operator's own gateway wins
    pins = (Path(__file__).resolve().parents[1] / "requirements-litellm.txt").read_text()
    assert "litellm[proxy]==1.108.7" in pins


@pytest.mark.django_db
def test_the_demo_gateway_command_writes_the_config_and_a_private_key(settings, tmp_path):
    from django.core.management import call_command

    from demo import gateway

    settings.VAR_DIR = tmp_path
    call_command("demo_gateway", stdout=open(tmp_path / "out", "w"))
    config_path, key_path = (tmp_path / "out").read_text().split()
    assert json.loads(Path(config_path).read_text()) == gateway.config()
    key = Path(key_path)
    assert key.read_text().startswith("sk-demo-") and key.stat().st_mode & 0o777 == 0o600
    first = key.read_text()
    call_command("demo_gateway", stdout=open(tmp_path / "out", "w"))
    assert key.read_text() == first  # a second run keeps the key


@pytest.mark.e2e
@pytest.mark.django_db
def test_the_demo_gateway_answers_a_replay_rerun_on_loopback(tmp_path, monkeypatch):
    """The real proxy with the demo's config answers through the portal's own gateway client, on
    127.0.0.1, even with an HTTP proxy in the environment (the operator's address is called as set)."""
    from conftest import require
    from litellm_proxy import litellm_available, start_litellm_proxy

    from demo import gateway
    from monitoring import gateway as portal_gateway

    require(litellm_available(), "no LiteLLM venv (.venv-litellm); bin/setup --gateway installs it")
    proxy = start_litellm_proxy(gateway.config(), {}, tmp_path)
    try:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a dead proxy: must not be used for loopback
        monkeypatch.setenv("NO_PROXY", "")
        answer = portal_gateway.chat(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How many orders today?"}]},
            base_url=proxy.base_url,
            api_key=proxy.master_key,
        )
    finally:
        proxy.stop()
    assert answer.content == gateway.MOCK_ANSWER.format(model="gpt-4o-mini")
    assert answer.cost_usd is not None  # LiteLLM prices the demo's models
