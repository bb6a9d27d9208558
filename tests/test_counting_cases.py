"""The real-world inputs the product got wrong (tests/fixtures/cases, from public bug reports against
other LLM-observability tools), each with its right values, on every page and in the API.

Each runs twice: computed live (spans not settled yet) and after the settler stored the facts, and
over both OTLP encodings: the numbers are the same every way.
"""

import pytest
from conftest import last_hour
from otlp import post_recorded, recorded, recorded_protobuf

from monitoring.queries import overview as overview_q
from monitoring.queries import trace as trace_q
from monitoring.queries.spans import ListQuery, list_spans
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["live", "settled"])
def mode(request):
    return request.param


@pytest.fixture(params=["json", "protobuf"])
def wire(request):
    return request.param


def ingest(client, key, case: str, mode: str, wire: str = "json", times: int = 1) -> dict:
    doc = recorded(f"cases/{case}")
    for _ in range(times):
        r = post_recorded(client, key, doc, wire)
        assert r.status_code == 200, r.content
    if mode == "settled":
        settle.settle_once()
    return doc


def rows(project, kind: str, **kw):
    return list_spans(last_hour(project), ListQuery(kind=kind, limit=500, **kw)).items


def trace_page(client, project, trace_id: str, **params) -> str:
    r = client.get(f"/admin/monitoring/{project.id}/traces/{trace_id}/", params)
    assert r.status_code == 200, r.content
    return r.content.decode()


# --- case-01: cache reads and writes priced at their own rates -----------------------------------------


def test_case_01_cached_input_is_priced_at_the_cache_rates(client, alice, project, ingest_key, mode, wire):
    ingest(client, ingest_key, "case-01-cache-read-pricing", mode, wire)
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.input_tokens, o.output_tokens) == (1, 130_213, 400)  # input already inclusive
    assert (o.cache_read_tokens, o.cache_write_tokens) == (128_955, 1_253)
    # genai-prices 0.2.3, Claude Sonnet 4: $3/M input, $0.30/M cache read, $3.75/M cache write, $15/M output
    assert o.total_cost_usd == pytest.approx(0.04940025, abs=1e-12)  # not $0.396639 (every input at $3/M)
    assert o.cache_savings_usd == pytest.approx(128_955 * (3e-6 - 0.3e-6) - 1_253 * (3.75e-6 - 3e-6))
    (row,) = rows(project, "llm")
    assert (row.input_tokens, row.cost_usd, row.cost_source) == (130_213, pytest.approx(0.04940025), "priced")
    client.force_login(alice)
    html = trace_page(client, project, "c01a0000000000000000000000000001")
    assert "$0.0494" in html


# --- case-02: a model call of the Vercel AI SDK, reasoning inside output -------------------------------


def test_case_02_the_ai_sdk_model_call_counts_once_with_reasoning_inside_output(
    client, alice, project, ingest_key, mode, wire
):
    ingest(client, ingest_key, "case-02-reasoning-tokens-ai-sdk-span", mode, wire)
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.input_tokens, o.output_tokens, o.reasoning_tokens) == (1, 22_118, 1_970, 956)
    assert o.total_cost_usd == pytest.approx(0.0473475)  # not 0.0569075 (reasoning added again)
    (call,) = rows(project, "llm")
    assert (call.span_id, call.cost_usd) == ("c02a000000000002", pytest.approx(0.0473475))
    every = {r.span_id: r for r in rows(project, "all")}
    assert set(every) == {"c02a000000000001", "c02a000000000002"}
    assert every["c02a000000000002"].cost_usd == pytest.approx(0.0473475)
    assert every["c02a000000000001"].cost_usd == 0  # the outer ai.generateText is not a second call
    ref = trace_q.locate(str(project.id), "c02a0000000000000000000000000001")
    summary = trace_q.summarize(ref, trace_q.tree_spans(ref), trace_q.invocations(ref))
    assert (summary.llm_calls, summary.cost_usd) == (1, pytest.approx(0.0473475))


# --- case-06: the chat in span events --------------------------------------------------------------------


def test_case_06_messages_in_span_events_are_shown_searched_and_replayed(
    client, alice, project, ingest_key, mode, wire
):
    from monitoring.replay import steps as replay

    ingest(client, ingest_key, "case-06-messages-in-span-events", mode, wire)
    client.force_login(alice)
    html = trace_page(client, project, "c06a0000000000000000000000000001", span="c06a000000000001")
    for text in ("You are a billing assistant.", "How much was invoice 42?", "Invoice 42 was 118.50 EUR."):
        assert text in html
    (found,) = rows(project, "llm", q="invoice 42")
    assert found.span_id == "c06a000000000001" and found.matched == "event gen_ai.content.prompt"
    step = replay.load_step(project, "c06a0000000000000000000000000001", "c06a000000000001")
    assert [(m.role, m.content) for m in step.input] == [
        ("system", "You are a billing assistant."),
        ("user", "How much was invoice 42?"),
    ]
    assert step.output_text == "Invoice 42 was 118.50 EUR."
    page = client.get(
        f"/admin/monitoring/{project.id}/replay/", {"trace": "c06a0000000000000000000000000001", "step": 1}
    ).content.decode()
    assert "How much was invoice 42?" in page  # pre-filled in the re-run editor


# --- case-10: the same export delivered twice -------------------------------------------------------------


def test_case_10_a_redelivered_export_counts_once_everywhere(client, alice, project, ingest_key, mode, wire):
    ingest(client, ingest_key, "case-10-duplicate-delivery-on-retry", mode, wire, times=2)
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.agent_calls, o.input_tokens, o.output_tokens) == (1, 1, 2_000, 500)
    assert o.total_cost_usd == pytest.approx(0.01)  # 2000 x $2.50/M + 500 x $10/M (gpt-4o)
    assert len(rows(project, "all")) == 2 and len(rows(project, "llm")) == 1
    client.force_login(alice)
    api = client.get(f"/api/v1/projects/{project.id}/traces/c10a0000000000000000000000000001").json()
    assert sorted(s["span_id"] for s in api["spans"]) == ["c10a000000000001", "c10a000000000002"]
    html = trace_page(client, project, "c10a0000000000000000000000000001")
    assert html.count('data-span="c10a000000000001"') == html.count('data-span="c10a000000000002"') >= 1
    assert html.count('class="span-row') == 2  # the root once, with one child


# --- case-13: a span without an end time ----------------------------------------------------------------


def test_case_13_a_span_without_an_end_is_in_progress_not_a_0_ms_call(client, alice, project, ingest_key, mode, wire):
    ingest(client, ingest_key, "case-13-span-without-end-time", mode, wire)
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.agent_calls, o.calls_without_end) == (2, 1, 1)
    assert o.total_cost_usd == pytest.approx(0.000027)
    assert o.avg_latency_ms == pytest.approx(2000.0) and o.p50_latency_ms == pytest.approx(2000.0)  # not 1000
    open_call = next(r for r in rows(project, "llm") if r.span_id == "c13a000000000003")
    assert open_call.duration_ms is None and open_call.in_progress
    client.force_login(alice)
    spans = client.get(f"/api/v1/projects/{project.id}/traces/c13a0000000000000000000000000001").json()["spans"]
    running = next(s for s in spans if s["span_id"] == "c13a000000000003")
    assert running["in_progress"] and running["end_ns"] is None and running["duration_ms"] is None


# --- case-13 (second round): a finished span whose end is before its start -----------------------------


def test_case_13_a_clock_skewed_span_ended_and_counts_as_0_ms(client, alice, project, ingest_key, mode, wire):
    """openobserve#14367: end 5 ms before start is a finished call whose clock stepped back — timed at
    0 ms (avg latency 1,000 ms over the two calls), never "in progress", never in calls_without_end."""
    ingest(client, ingest_key, "case-13-end-before-start-clock-skew", mode, wire)
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.calls_without_end, o.unpriced_calls) == (2, 0, 0)
    assert o.total_cost_usd == pytest.approx(0.00042)
    assert o.avg_latency_ms == pytest.approx(1000.0)
    skewed = next(r for r in rows(project, "llm") if r.span_id == "c13b000000000002")
    assert skewed.duration_ms == 0 and not skewed.in_progress
    client.force_login(alice)
    spans = client.get(f"/api/v1/projects/{project.id}/traces/c13b0000000000000000000000000001").json()["spans"]
    b = next(s for s in spans if s["span_id"] == "c13b000000000002")
    assert (b["in_progress"], b["duration_ms"], b["clock_skew_ms"]) == (False, 0.0, 5.0)
    html = trace_page(client, project, "c13b0000000000000000000000000001", span="c13b000000000002")
    assert "data-clock-skew" in html and "in progress" not in html


# --- case-09: one string that is not UTF-8 in an OTLP/protobuf export ----------------------------------


def test_case_09_a_string_cut_mid_character_keeps_the_whole_export(client, alice, project, ingest_key, mode):
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    body = recorded_protobuf("cases/case-09-invalid-utf8-protobuf")
    with pytest.raises(DecodeError, match="UTF-8"):  # the case: a strict parser refuses the whole body
        ExportTraceServiceRequest.FromString(body)
    r = client.post(
        "/v1/traces",
        data=body,
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert r.status_code == 200, r.content
    assert r.content == b""  # every span stored: no partialSuccess
    if mode == "settled":
        settle.settle_once()
    o = overview_q.overview(last_hour(project))
    assert (o.llm_calls, o.input_tokens, o.output_tokens) == (2, 500, 60)
    assert o.total_cost_usd == pytest.approx(0.000111, abs=1e-12)  # gpt-4o-mini: 500 x $0.15/M + 60 x $0.60/M
    (clean,) = rows(project, "llm", q="배송 조회")
    (cut,) = rows(project, "llm", q="환불을 요청")
    assert (clean.span_id, cut.span_id) == ("c09b000000000002", "c09b000000000001")
    client.force_login(alice)
    api = client.get(f"/api/v1/projects/{project.id}/traces/c09b0000000000000000000000000001").json()
    spans = {s["span_id"]: s for s in api["spans"]}
    assert set(spans) == {"c09b000000000001", "c09b000000000002"}
    text = spans["c09b000000000001"]["attributes"]["gen_ai.input.messages"]
    assert text.endswith('주문 환\ufffd"}]}]')  # the first 2 of the 3 bytes of '불': one U+FFFD
    html = trace_page(client, project, "c09b0000000000000000000000000001", span="c09b000000000001")
    assert "주문 환\ufffd" in html
