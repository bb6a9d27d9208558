"""Scores, feedback and evaluations: OTLP logs in, GenAI events understood, the scores API, scores on
the runs and LLM call lists, the score filter, people's feedback and score configs — against the
real engine (chdb) and, for the SDK path, a real OpenTelemetry SDK exporting to a live portal."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import time

import pytest
from conftest import api_token
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from otlp import S, nanos, send

from monitoring.ingest.otlp import any_value
from monitoring.ingest.otlp import key_values as attrs
from monitoring.models import Membership
from monitoring.quality.models import ScoreConfig
from monitoring.semantics import settle
from monitoring.store import clickhouse, schema

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
AGENT = {"openinference.span.kind": "AGENT"}


def chat(parent: S, *, at, response_id="", model="gpt-4o", **extra) -> S:
    return parent.child(
        "chat gpt-4o",
        at=at,
        ms=50,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            **({"gen_ai.response.id": response_id} if response_id else {}),
            **extra,
        },
    )


def run_of(*, at=AT, session="", response_id="") -> tuple[S, S]:
    """An agent run (its root) and its one chat call, whose content is sent only as log records."""
    root = S("support_agent", service="agent-support", at=at, ms=500, attributes={**AGENT, "session.id": session})
    return root, chat(root, at=at + dt.timedelta(milliseconds=10), response_id=response_id)


def record(name: str, *, span: S | None = None, at=AT, body=None, trace: bytes = b"", **attributes) -> LogRecord:
    r = LogRecord(
        time_unix_nano=nanos(at),
        event_name=name,
        trace_id=span.trace if span else trace,
        span_id=span.span_id if span else b"",
        attributes=attrs(attributes),
    )
    if body is not None:
        r.body.CopyFrom(any_value(body))
    return r


def logs_request(*records: LogRecord, service: str = "agent-support") -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource={"attributes": attrs({"service.name": service})},
                scope_logs=[ScopeLogs(scope={"name": "opentelemetry.instrumentation.genai"}, log_records=records)],
            )
        ]
    )


def post_logs(client, key: str, req: ExportLogsServiceRequest, *, wire: str = "protobuf", gzipped: bool = False):
    if wire == "json":
        doc = json_format.MessageToDict(req)
        for rl in doc.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for lr in sl.get("logRecords", []):
                    for k in ("traceId", "spanId"):
                        if k in lr:  # OTLP/JSON ids are hex
                            lr[k] = __import__("base64").b64decode(lr[k]).hex()
        body, content_type = json.dumps(doc).encode(), "application/json"
    else:
        body, content_type = req.SerializeToString(), "application/x-protobuf"
    headers = {"Authorization": f"Bearer {key}"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return client.post("/v1/logs", data=body, content_type=content_type, headers=headers)


def evaluation(span: S | None, name: str, *, value=None, label="", explanation="", response_id="", at=AT, trace=b""):
    fields = {
        "gen_ai.evaluation.name": name,
        **({"gen_ai.evaluation.score.value": value} if value is not None else {}),
        **({"gen_ai.evaluation.score.label": label} if label else {}),
        **({"gen_ai.evaluation.explanation": explanation} if explanation else {}),
        **({"gen_ai.response.id": response_id} if response_id else {}),
    }
    return record("gen_ai.evaluation.result", span=span, at=at, trace=trace, **fields)


def scores_api(client, token: str, project, **params):
    return client.get(f"/api/v1/projects/{project.id}/scores", params, headers={"Authorization": f"Bearer {token}"})


def runs_api(client, project, **params):
    """The runs list through the read API, as the project's admin."""
    client.force_login(project.memberships.get(role=Membership.ADMIN).user)
    return client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "runs", "range": "24h", **params})


# --- OTLP logs in --------------------------------------------------------------------------------


def test_it_stores_log_records_as_the_collector_exporter_does(client, project, ingest_key):
    root, call = run_of()
    r = record(
        "gen_ai.user.message", span=call, body={"content": "Which invoices are overdue?"}, **{"gen_ai.system": "openai"}
    )
    r.severity_number, r.severity_text, r.flags = 9, "INFO", 1
    response = post_logs(client, ingest_key, logs_request(r))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    rows = clickhouse.query(
        f"SELECT * FROM {schema.table(schema.LOGS)} WHERE ResourceAttributes['project_id'] = {{p:String}}",
        {"p": str(project.id)},
        tag="t",
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["TraceId"], row["SpanId"]) == (call.trace.hex(), call.span_id.hex())
    assert (row["SeverityNumber"], row["SeverityText"], row["TraceFlags"]) == (9, "INFO", 1)
    assert row["ServiceName"] == "agent-support" and row["EventName"] == "gen_ai.user.message"
    assert json.loads(row["Body"]) == {"content": "Which invoices are overdue?"}
    assert row["LogAttributes"] == {"gen_ai.system": "openai"}
    assert row["ResourceAttributes"]["project_id"] == str(project.id)
    assert row["ScopeName"] == "opentelemetry.instrumentation.genai"


def test_logs_take_json_gzip_and_report_what_cannot_be_stored(client, project, ingest_key):
    root, call = run_of()
    bad = evaluation(call, "relevance", value=0.5)
    bad.trace_id = b"\x01\x02\x03"  # not 16 bytes
    req = logs_request(evaluation(call, "relevance", value=0.9), bad)
    response = post_logs(client, ingest_key, req, wire="json", gzipped=True)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    partial = json.loads(response.content)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "trace id" in partial["errorMessage"]
    assert post_logs(client, "apm_ingest_wrong", req).status_code == 401
    wrong_type = client.post(
        "/v1/logs", data=b"x", content_type="text/plain", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    assert wrong_type.status_code == 415
    garbage = client.post(
        "/v1/logs", data=b"\xff\x00garbage", content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {ingest_key}"},
    )  # fmt: skip
    assert garbage.status_code == 400


CUT = b"\xeb\xb6"  # the first 2 of the 3 bytes of '불' (an SDK cutting text by bytes): one U+FFFD


@pytest.mark.parametrize("gzipped", [False, True])
def test_log_text_that_is_not_utf8_is_stored_with_u_fffd_and_the_rest_of_the_export_kept(
    client, alice, project, ingest_key, gzipped
):
    # As spans (case-09): proto3's parser refuses the whole body for one cut character; the
    # collector takes it, so the records are stored with U+FFFD in place of the bad bytes.
    root, call = run_of()
    send(client, ingest_key, root, call)
    cut_body = record("gen_ai.user.message", span=call, body="환불 요청 QzQz", **{"gen_ai.system": "openai"})
    cut_attribute = record("gen_ai.choice", span=call, body="clean", **{"note": "주문 Qz", "Qzkey": "v"})
    cut_label = evaluation(call, "tone", label="okQz", explanation="polite")
    clean = evaluation(call, "relevance", value=0.75)
    body = logs_request(cut_body, cut_attribute, cut_label, clean).SerializeToString().replace(b"Qz", CUT)
    with pytest.raises(Exception, match="UTF-8"):
        ExportLogsServiceRequest.FromString(body)  # what answered 400 before
    headers = {"Authorization": f"Bearer {ingest_key}"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"

    response = client.post("/v1/logs", data=body, content_type="application/x-protobuf", headers=headers)

    assert response.status_code == 200, response.content
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    rows = clickhouse.query(
        f"SELECT EventName, Body, LogAttributes FROM {schema.table(schema.LOGS)}"
        " WHERE ResourceAttributes['project_id'] = {p:String} ORDER BY EventName",
        {"p": str(project.id)},
        tag="t",
    )
    assert sorted(((r["EventName"], r["Body"], r["LogAttributes"]) for r in rows), key=repr) == [
        ("gen_ai.choice", "clean", {"note": "주문 \ufffd", "\ufffdkey": "v"}),
        (
            "gen_ai.evaluation.result",
            "",
            {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": "0.75"},
        ),
        (
            "gen_ai.evaluation.result",
            "",
            {
                "gen_ai.evaluation.name": "tone",
                "gen_ai.evaluation.score.label": "ok\ufffd",
                "gen_ai.evaluation.explanation": "polite",
            },
        ),
        ("gen_ai.user.message", "환불 요청 \ufffd\ufffd", {"gen_ai.system": "openai"}),
    ]
    # The evaluation with the cut label is a score like the clean one, its label shown with U+FFFD.
    items = scores_api(client, api_token("alice"), project, trace_id=root.trace.hex()).json()["items"]
    assert sorted((i["name"], i["value"], i["label"]) for i in items) == [
        ("relevance", 0.75, ""),
        ("tone", None, "ok\ufffd"),
    ]


# --- evaluation events become scores ---------------------------------------------------------------


def test_evaluation_events_become_scores_on_their_span_once_whatever_arrives_first(client, alice, project, ingest_key):
    root, call = run_of()
    token = api_token("alice")
    req = logs_request(evaluation(call, "relevance", value=0.25, label="fail", explanation="off topic"))
    # The event arrives before its span, and is delivered twice (a retry).
    assert post_logs(client, ingest_key, req).status_code == 200
    assert post_logs(client, ingest_key, req).status_code == 200
    send(client, ingest_key, root, call)
    items = scores_api(client, token, project, trace_id=root.trace.hex()).json()["items"]
    assert len(items) == 1
    score = items[0]
    assert (score["name"], score["value"], score["label"], score["comment"]) == ("relevance", 0.25, "fail", "off topic")
    assert (score["source"], score["trace_id"], score["span_id"]) == (
        "evaluation",
        root.trace.hex(),
        call.span_id.hex(),
    )
    settle.settle_once()
    run = runs_api(client, project).json()["items"][0]
    assert run["scores"] == {"relevance": {"value": 0.25, "label": "fail", "count": 1}}


def test_an_evaluation_without_span_context_lands_on_the_call_with_its_response_id(client, alice, project, ingest_key):
    root, call = run_of(response_id="chatcmpl-abc123")
    send(client, ingest_key, root, call)
    assert (
        post_logs(
            client, ingest_key, logs_request(evaluation(None, "hallucination", value=1, response_id="chatcmpl-abc123"))
        ).status_code
        == 200
    )
    from monitoring.quality import scores as writes

    token = api_token("alice")
    assert scores_api(client, token, project, trace_id=root.trace.hex()).json()["items"] == []  # not placed yet
    assert writes.place_loose() == 1 and writes.place_loose() == 0  # placed once (the settler's companion job)
    items = scores_api(client, token, project, trace_id=root.trace.hex()).json()["items"]
    assert [(s["name"], s["value"], s["trace_id"], s["span_id"]) for s in items] == [
        ("hallucination", 1.0, root.trace.hex(), call.span_id.hex())
    ]
    orphan = logs_request(evaluation(None, "hallucination", value=0, response_id="chatcmpl-unknown"))
    assert post_logs(client, ingest_key, orphan).status_code == 200
    assert writes.place_loose() == 0  # no call recorded that id: it waits, unplaced


def test_evaluation_results_sent_as_span_events_become_scores_too(client, alice, project, ingest_key):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span
    from otlp import post, request

    root, call = run_of()
    req = request(root, call)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                if span.span_id == call.span_id:
                    span.events.append(
                        Span.Event(
                            time_unix_nano=nanos(AT),
                            name="gen_ai.evaluation.result",
                            attributes=attrs(
                                {"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.value": 0.0}
                            ),
                        )
                    )
    assert post(client, ingest_key, req).status_code == 200
    items = scores_api(client, api_token("alice"), project, trace_id=root.trace.hex()).json()["items"]
    assert [(s["name"], s["value"], s["span_id"]) for s in items] == [("toxicity", 0.0, call.span_id.hex())]


# --- GenAI events as log records feed the chat ------------------------------------------------------


def test_inference_details_sent_as_log_records_show_as_the_calls_chat_and_preview(client, alice, project, ingest_key):
    root, call = run_of()
    send(client, ingest_key, root, call)
    details = record(
        "gen_ai.client.inference.operation.details",
        span=call,
        **{
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Which invoices are overdue in March?"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Three: INV-7, INV-9 and INV-12."}]}]
            ),
        },
    )
    assert post_logs(client, ingest_key, logs_request(details)).status_code == 200
    client.force_login(alice)
    page = client.get(f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}/spans", {"span": call.span_id.hex()})
    html = page.content.decode()
    assert page.status_code == 200
    assert "Which invoices are overdue in March?" in html and "Three: INV-7, INV-9 and INV-12." in html
    settle.settle_once()
    run = runs_api(client, project).json()["items"][0]
    assert run["first_input"] == "Which invoices are overdue in March?"
    assert run["last_output"] == "Three: INV-7, INV-9 and INV-12."


def test_per_message_events_with_their_content_in_the_body_show_as_the_chat(client, alice, project, ingest_key):
    root, call = run_of()
    send(client, ingest_key, root, call)
    later = AT + dt.timedelta(milliseconds=20)
    req = logs_request(
        record("gen_ai.system.message", span=call, body={"content": "You answer billing questions."}),
        record("gen_ai.user.message", span=call, at=later, body={"content": "Is INV-7 paid?"}),
        record(
            "gen_ai.choice",
            span=call,
            at=later,
            body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Not yet."}},
        ),
    )
    assert post_logs(client, ingest_key, req).status_code == 200
    client.force_login(alice)
    api = client.get(f"/api/v1/projects/{project.id}/traces/{root.trace.hex()}").json()
    events = next(s for s in api["spans"] if s["span_id"] == call.span_id.hex())["events"]
    assert [e["name"] for e in events] == ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]
    html = client.get(
        f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}/spans", {"span": call.span_id.hex()}
    ).content.decode()
    assert "You answer billing questions." in html and "Is INV-7 paid?" in html and "Not yet." in html


def test_a_real_sdk_log_exporter_sends_events_the_portal_reads_back(live_server, alice, project, ingest_key):
    """OpenTelemetry Python SDK 1.45 (OTLPLogExporter over HTTP/protobuf) and its span exporter."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    headers = {"Authorization": f"Bearer {ingest_key}"}
    resource = Resource.create({"service.name": "agent-sdk"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces", headers=headers))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{live_server.url}/v1/logs", headers=headers))
    )
    tracer = tracer_provider.get_tracer("sdk-test")
    logger = logger_provider.get_logger("opentelemetry.instrumentation.genai")
    with tracer.start_as_current_span("invoke_agent billing", attributes={"gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 5,
            },
        ) as span:
            logger.emit(
                event_name="gen_ai.client.inference.operation.details",
                severity_number=SeverityNumber.INFO,
                attributes={
                    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Refund INV-3?"}]}]',
                    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"Refunded."}]}]',
                },
            )
            logger.emit(
                event_name="gen_ai.evaluation.result",
                attributes={
                    "gen_ai.evaluation.name": "correctness",
                    "gen_ai.evaluation.score.value": 0.75,
                    "gen_ai.evaluation.score.label": "pass",
                },
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
            span_id = format(span.get_span_context().span_id, "016x")
    tracer_provider.shutdown()
    logger_provider.shutdown()
    token = api_token("alice")
    import requests

    got = requests.get(
        f"{live_server.url}/api/v1/projects/{project.id}/scores",
        params={"trace_id": trace_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["items"]
    assert [(s["name"], s["value"], s["label"], s["span_id"]) for s in got] == [("correctness", 0.75, "pass", span_id)]
    whole = requests.get(
        f"{live_server.url}/api/v1/projects/{project.id}/traces/{trace_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    chat_span = next(s for s in whole["spans"] if s["span_id"] == span_id)
    assert "gen_ai.client.inference.operation.details" in [e["name"] for e in chat_span["events"]]
    # A run carries its scores from the settler's next pass (a second), as it carries its spans.
    deadline = time.monotonic() + 10
    while True:
        runs = requests.get(
            f"{live_server.url}/api/v1/projects/{project.id}/traces",
            params={"kind": "runs", "range": "1h", "score": "correctness:gt:0.5"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["items"]
        if runs or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r["trace_id"], r["first_input"], r["last_output"]) for r in runs] == [
        (trace_id, "Refund INV-3?", "Refunded.")
    ]


# --- the scores API ---------------------------------------------------------------------------------


def test_the_scores_api_writes_reads_and_deletes(client, alice, bob, charlie, project, other_project, ingest_key):
    root, call = run_of(session="chat-9")
    send(client, ingest_key, root, call)
    token, bobs = api_token("alice"), api_token("bob")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/projects/{project.id}/scores"

    def post(body, key=token):
        return client.post(
            url, json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )

    made = post({"trace_id": root.trace.hex().upper(), "name": "helpfulness", "value": 4, "comment": "good"})
    assert made.status_code == 201, made.content
    score = made.json()
    assert (score["name"], score["value"], score["source"], score["trace_id"], score["comment"]) == (
        "helpfulness", 4.0, "api", root.trace.hex(), "good",
    )  # fmt: skip
    assert post({"session_id": "chat-9", "name": "resolved", "label": "yes"}, key=bobs).status_code == 201
    span_score = post({"trace_id": root.trace.hex(), "span_id": call.span_id.hex(), "name": "helpfulness", "value": 2})
    assert span_score.status_code == 201
    # Bad input: a clear 400 naming the field.
    for body, field in [
        ({"name": "x", "value": 1}, "trace_id"),
        ({"trace_id": "nothex", "name": "x", "value": 1}, "trace_id"),
        ({"trace_id": root.trace.hex(), "value": 1}, "name"),
        ({"trace_id": root.trace.hex(), "name": "x", "value": "high"}, "value"),
        ({"trace_id": root.trace.hex(), "name": "x"}, "value"),
        ({"trace_id": root.trace.hex(), "name": "x", "value": 1, "colour": "red"}, "colour"),
        ({"trace_id": root.trace.hex(), "span_id": "abc", "name": "x", "value": 1}, "span_id"),
    ]:
        answer = post(body)
        assert answer.status_code == 400 and answer.json()["field"] == field, (body, answer.content)
    assert client.post(url, "[1]", content_type="application/json", headers=auth).status_code == 400
    # Reading: by trace (its spans' too), by session, by name; bad input named.
    by_trace = client.get(url, {"trace_id": root.trace.hex()}, headers=auth).json()["items"]
    assert sorted((s["name"], s["value"], s["span_id"]) for s in by_trace) == [
        ("helpfulness", 2.0, call.span_id.hex()), ("helpfulness", 4.0, ""),
    ]  # fmt: skip
    by_session = client.get(url, {"session_id": "chat-9"}, headers=auth).json()["items"]
    assert [(s["name"], s["label"]) for s in by_session] == [("resolved", "yes")]
    assert len(client.get(url, {"name": "helpfulness"}, headers=auth).json()["items"]) == 2
    assert client.get(url, {"name": "helpfulness", "to": "2001-01-01T00:00:00Z"}, headers=auth).json()["items"] == []
    assert client.get(url, {}, headers=auth).status_code == 400
    assert client.get(url, {"trace_id": "zz"}, headers=auth).json()["field"] == "trace_id"
    # Who may: a token deletes what it wrote; another member's token may not; an admin's may.
    bob_score = client.get(url, {"session_id": "chat-9"}, headers=auth).json()["items"][0]["id"]
    assert client.delete(f"{url}/{score['id']}", headers={"Authorization": f"Bearer {bobs}"}).status_code == 403
    assert client.delete(f"{url}/{score['id']}", headers=auth).status_code == 204
    assert client.delete(f"{url}/{bob_score}", headers=auth).status_code == 204  # alice is an admin
    assert [s["value"] for s in client.get(url, {"trace_id": root.trace.hex()}, headers=auth).json()["items"]] == [2.0]
    # Strangers and anonymous callers.
    assert client.get(url, {"name": "helpfulness"}).status_code == 401
    assert post({"trace_id": root.trace.hex(), "name": "x", "value": 1}, key=api_token("charlie")).status_code == 404
    assert client.get(f"/api/v1/projects/{other_project.id}/scores", {"name": "x"}, headers=auth).status_code == 404
    client.force_login(alice)
    assert client.post(url, json.dumps({"trace_id": root.trace.hex(), "name": "x", "value": 1}),
                       content_type="application/json").status_code == 403  # fmt: skip


def test_an_api_score_with_its_own_id_is_written_once(client, alice, project):
    token = api_token("alice")
    url = f"/api/v1/projects/{project.id}/scores"
    trace = os.urandom(16).hex()
    for value in (1, 3):
        body = {"id": "eval-run-17", "trace_id": trace, "name": "accuracy", "value": value}
        assert client.post(url, json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"}).status_code == 201  # fmt: skip
    items = client.get(url, {"trace_id": trace}, headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert [s["value"] for s in items] == [3.0]


def test_score_configs_check_what_is_written(client, alice, project):
    ScoreConfig.objects.create(project=project, name="verdict", data_type="categorical", categories="pass, fail")
    ScoreConfig.objects.create(project=project, name="quality", data_type="numeric", min_value=0, max_value=1)
    ScoreConfig.objects.create(project=project, name="thumbs", data_type="boolean")
    token = api_token("alice")
    url = f"/api/v1/projects/{project.id}/scores"
    trace = os.urandom(16).hex()

    def post(body):
        return client.post(url, json.dumps({"trace_id": trace, **body}), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    assert post({"name": "verdict", "label": "maybe"}).json()["field"] == "label"
    assert post({"name": "quality", "value": 1.5}).json()["field"] == "value"
    assert post({"name": "thumbs", "value": 0.5}).json()["field"] == "value"
    assert post({"name": "verdict", "label": "pass"}).status_code == 201
    assert post({"name": "thumbs", "label": "true"}).json()["value"] == 1.0
    assert post({"name": "anything-else", "value": 42}).status_code == 201  # no config: still accepted


# --- scores in the lists, and the score filter ----------------------------------------------------------


def test_runs_and_calls_carry_their_scores_and_filter_by_them(client, alice, bob, project, ingest_key):
    runs = [run_of(at=AT + dt.timedelta(minutes=i)) for i in range(3)]
    for root, call in runs:
        send(client, ingest_key, root, call)
    settle.settle_once()
    token = api_token("alice")
    url = f"/api/v1/projects/{project.id}/scores"

    def score(root, call, name, value=None, label=""):
        body = {"trace_id": root.trace.hex(), "name": name, **({"value": value} if value is not None else {})}
        if call is not None:
            body["span_id"] = call.span_id.hex()
        if label:
            body["label"] = label
        made = client.post(
            url, json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
        )
        assert made.status_code == 201, made.content

    (r0, c0), (r1, c1), (r2, c2) = runs
    score(r0, None, "relevance", 0.9)
    score(r0, c0, "relevance", 0.7)  # the run's value is the mean of the run and its spans
    score(r1, c1, "relevance", 0.2, "fail")
    score(r2, None, "verdict", label="pass")
    client.force_login(bob)  # a person's thumbs: their latest only
    for thumb in ("up", "down"):
        answer = client.post(
            f"/admin/monitoring/{project.id}/scores/",
            {
                "trace_id": r1.trace.hex(),
                "thumb": thumb,
                "comment": "wrong invoice",
                "next": f"/admin/monitoring/{project.id}/traces/",
            },
        )
        assert answer.status_code == 302
    items = {r["trace_id"]: r["scores"] for r in runs_api(client, project).json()["items"]}
    assert items[r0.trace.hex()] == {"relevance": {"value": 0.8, "label": "", "count": 2}}
    assert items[r1.trace.hex()] == {
        "feedback": {"value": 0.0, "label": "down", "count": 1},
        "relevance": {"value": 0.2, "label": "fail", "count": 1},
    }
    assert items[r2.trace.hex()] == {"verdict": {"value": None, "label": "pass", "count": 1}}

    def runs_where(*conditions):
        answer = client.get(
            f"/api/v1/projects/{project.id}/traces",
            [("kind", "runs"), ("range", "24h"), *[("score", c) for c in conditions]],
        )
        assert answer.status_code == 200, answer.content
        return {r["trace_id"] for r in answer.json()["items"]}

    assert runs_where("relevance:lt:0.5") == {r1.trace.hex()}
    assert runs_where("relevance:gt:0.5") == {r0.trace.hex()}
    assert runs_where("feedback:eq:down") == {r1.trace.hex()}
    assert runs_where("relevance:eq:fail") == {r1.trace.hex()}
    assert runs_where("relevance:ne:fail") == {r0.trace.hex(), r2.trace.hex()}
    assert runs_where("verdict:exists") == {r2.trace.hex()}
    assert runs_where("relevance:missing") == {r2.trace.hex()}
    assert runs_where("relevance:exists", "relevance:lt:0.85") == {r0.trace.hex(), r1.trace.hex()}
    calls = client.get(
        f"/api/v1/projects/{project.id}/traces", {"kind": "llm", "range": "24h", "score": "relevance:lt:0.5"}
    ).json()["items"]
    assert [(c["span_id"], c["scores"]) for c in calls] == [
        (c1.span_id.hex(), {"relevance": {"value": 0.2, "label": "fail", "count": 1}})
    ]
    by_score = runs_api(client, project, sort="score:relevance", limit="2").json()
    assert [r["trace_id"] for r in by_score["items"]] == [r0.trace.hex(), r1.trace.hex()]  # 0.8, then 0.2
    rest = runs_api(client, project, sort="score:relevance", limit="2", cursor=by_score["next_cursor"]).json()
    assert [r["trace_id"] for r in rest["items"]] == [r2.trace.hex()] and rest["next_cursor"] is None  # unscored last
    assert runs_api(client, project, sort="score:").status_code == 400
    for bad in ("relevance", "relevance:between:1", "relevance:gt:high", "relevance:exists:1", ":eq:1", "relevance:eq"):
        answer = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "runs", "score": bad})
        assert answer.status_code == 400 and "'score'" in answer.json()["error"], bad
    llm_page = client.get(f"/admin/monitoring/{project.id}/traces/", {"kind": "llm", "range": "24h"}).content.decode()
    assert 'data-score-column="relevance"' in llm_page and "0.20 · fail" in llm_page  # c1's own score
    page = client.get(
        f"/admin/monitoring/{project.id}/traces/", {"kind": "runs", "range": "24h", "score": "relevance:lt:0.5"}
    )
    html = page.content.decode()
    assert page.status_code == 200 and 'data-score-column="relevance"' in html
    assert html.count('class="run-item') == 1 and "relevance:lt:0.5" in html


def test_people_choose_which_scores_show_as_columns_on_every_list(client, alice, project, ingest_key):
    import re

    runs = []
    for i in range(2):
        at = AT + dt.timedelta(minutes=i)
        root = S("support_agent", service="agent-support", at=at, ms=500,
                 attributes={**AGENT, "session.id": "chat-7", "user.id": "u-1"})  # fmt: skip
        runs.append((root, chat(root, at=at + dt.timedelta(milliseconds=10))))
        send(client, ingest_key, *runs[-1])
    settle.settle_once()
    (r0, c0), (r1, c1) = runs
    token = api_token("alice")
    for root, call, name, value in [
        (r0, None, "relevance", 0.9), (r1, None, "relevance", 0.5), (r0, c0, "relevance", 0.7),
        (r0, None, "tone", 1), (r1, None, "tone", 0), (r0, None, "verdict", 1), (r1, None, "verdict", 1),
        (r0, None, "helpfulness", 4), (r1, c1, "rare", 0.3),
    ]:  # fmt: skip
        body = {"trace_id": root.trace.hex(), "name": name, "value": value}
        if call is not None:
            body["span_id"] = call.span_id.hex()
        made = client.post(
            f"/api/v1/projects/{project.id}/scores",
            json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.content
    client.force_login(alice)
    traces, sessions, users = (
        f"/admin/monitoring/{project.id}/traces/{p}" for p in ("", "sessions/", "users/")
    )  # fmt: skip

    def page(url, **params):
        answer = client.get(url, {"range": "24h", **params})
        html = answer.content.decode()
        return answer.status_code, re.findall(r'data-score-column="([^"]*)"', html), html

    most_used = ["relevance", "tone", "verdict", "helpfulness"]  # by use, then name; "rare" is the 5th
    # Without a choice, as before: the project's four most used names.
    assert page(traces, kind="runs")[:2] == (200, most_used)
    assert page(traces, kind="llm")[:2] == (200, most_used)
    assert page(sessions, session="chat-7")[:2] == (200, most_used)
    assert page(users, user="u-1")[:2] == (200, most_used)

    # A choice, in its order, on the runs list: the columns, their cells, and links that keep it.
    status, columns, html = page(traces, kind="runs", scores="rare,relevance")
    assert (status, columns) == (200, ["rare", "relevance"])
    assert html.count('data-score="rare">0.30<') == 1 and html.count('data-score="relevance">0.80 (2)<') == 1
    assert html.count('data-score="tone"') == 0
    kept = "scores=rare%2Crelevance"
    assert f"sort=score%3Arare&amp;{kept}" in html or f"{kept}&amp;sort=score%3Arare" in html  # sorting keeps it
    assert html.count('name="scores" value="rare,relevance"') >= 2  # the filter bar's and the lists' own forms
    assert re.search(r'href="[^"]*/traces/sessions/\?[^"]*scores=rare%2Crelevance[^"]*session=', html)
    # The picker: every score name of the project, the chosen ones ticked, and the way back.
    picker = html[html.index("data-score-picker") :]
    picker = picker[: picker.index("</details>")]
    assert re.findall(r'data-score-choice="([^"]*)"', picker) == [*most_used, "rare"]
    assert re.findall(r'value="([^"]*)" checked data-score-choice', picker) == ["relevance", "rare"]
    assert '<input type="hidden" name="kind" value="runs">' in picker and "data-score-columns-default" in picker
    # What the picker's checkboxes send (repeated names, a lone comma for "none ticked").
    assert page(traces, kind="runs", scores=[",", "tone", "rare"])[1] == ["tone", "rare"]
    assert page(traces, kind="runs", scores=",")[:2] == (200, [])
    assert 'class="run-item' in page(traces, kind="runs", scores=",")[2]

    # The LLM Call list shows each call's own score; the session's and the user's runs tables too.
    status, columns, html = page(traces, kind="llm", scores="rare")
    assert (status, columns) == (200, ["rare"]) and html.count('data-score="rare">0.30<') == 1
    assert page(sessions, session="chat-7", scores="helpfulness,tone")[:2] == (200, ["helpfulness", "tone"])
    status, columns, html = page(users, user="u-1", scores="unused-yet")
    assert (status, columns) == (200, ["unused-yet"])  # a name without scores yet: an empty column
    assert 'data-score-choice="unused-yet"' in html

    # A choice the person can fix: a clear 400 on every list.
    too_many = ",".join(f"s{i}" for i in range(13))
    for url, params in [(traces, {"kind": "runs"}), (traces, {"kind": "llm"}), (sessions, {"session": "chat-7"})]:
        status, _, html = page(url, **params, scores=too_many)
        assert status == 400 and "Choose at most 12 score columns." in html, url
    status, _, html = page(users, user="u-1", scores="x" * 201)
    assert status == 400 and "A score name is at most 200 characters." in html


def test_people_give_feedback_on_a_run_a_call_and_a_session_from_the_pages(
    client, alice, bob, charlie, project, ingest_key
):
    root, call = run_of(session="chat-5")
    send(client, ingest_key, root, call)
    settle.settle_once()
    ScoreConfig.objects.create(project=project, name="tone", data_type="categorical", categories="kind,rude")
    give = f"/admin/monitoring/{project.id}/scores/"
    client.force_login(bob)
    trace_page = client.get(f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}/").content.decode()
    assert f'action="{give}"' in trace_page and 'name="thumb"' in trace_page and 'value="tone"' in trace_page
    assert (
        client.post(
            give, {"trace_id": root.trace.hex(), "span_id": call.span_id.hex(), "name": "tone", "label": "rude"}
        ).status_code
        == 302
    )
    assert client.post(give, {"session_id": "chat-5", "thumb": "up"}).status_code == 302
    assert client.post(give, {"trace_id": root.trace.hex(), "name": "tone", "label": "grumpy"}).status_code == 400
    assert client.post(give, {"trace_id": "x" * 32, "thumb": "up"}).status_code == 400
    # A redirect elsewhere is refused: back to the traces list.
    away = client.post(give, {"trace_id": root.trace.hex(), "thumb": "up", "next": "https://evil.example/"})
    assert away.status_code == 302 and away["Location"] == f"/admin/monitoring/{project.id}/traces/"
    token = api_token("alice")
    items = scores_api(client, token, project, trace_id=root.trace.hex()).json()["items"]
    assert sorted((s["name"], s["label"], s["source"], s["author"]) for s in items) == [
        ("feedback", "up", "person", f"user:{bob.pk}"), ("tone", "rude", "person", f"user:{bob.pk}"),
    ]  # fmt: skip
    trace_page = client.get(f"/admin/monitoring/{project.id}/traces/{root.trace.hex()}/").content.decode()
    assert "bob" in trace_page and "rude" in trace_page
    session = scores_api(client, token, project, session_id="chat-5").json()["items"]
    assert [(s["name"], s["value"]) for s in session] == [("feedback", 1.0)]
    session_page = client.get(f"/admin/monitoring/{project.id}/traces/sessions/", {"session": "chat-5", "range": "24h"})
    html = session_page.content.decode()
    assert session_page.status_code == 200 and 'name="session_id" value="chat-5"' in html
    assert 'data-score-column="feedback"' in html  # its runs table has a column per most used score name
    client.force_login(charlie)  # not a member
    assert client.post(give, {"trace_id": root.trace.hex(), "thumb": "down"}).status_code == 404


def test_score_configs_are_defined_by_admins(client, alice, bob, project):
    url = f"/admin/monitoring/{project.id}/scores/configs/"
    client.force_login(bob)
    assert client.get(url).status_code == 200
    assert client.post(url, {"name": "x", "data_type": "numeric"}).status_code == 403
    client.force_login(alice)
    assert client.post(url, {"name": "verdict", "data_type": "categorical", "categories": ""}).status_code == 400
    assert (
        client.post(
            url, {"name": "verdict", "data_type": "categorical", "categories": "pass,fail", "higher_is_better": "on"}
        ).status_code
        == 302
    )
    config = ScoreConfig.objects.get(project=project, name="verdict")
    assert config.labels == ["pass", "fail"]
    assert Membership.objects.get(project=project, user=alice).role == Membership.ADMIN
    assert client.post(f"{url}{config.pk}/delete").status_code == 302
    assert not ScoreConfig.objects.filter(project=project).exists()


def test_logs_are_spooled_while_clickhouse_is_away(client, project, ingest_key, settings, tmp_path):
    """The same durable spool as spans: a log export acknowledged while the engine refuses inserts is
    stored once it is back."""
    from monitoring.ingest import batcher

    root, call = run_of()
    settings.INGEST = {**settings.INGEST, "SPOOL_DIR": str(tmp_path / "spool")}
    writer = batcher.writer(batcher.LOGS)
    real = writer.store

    def down(rows):
        raise clickhouse.ClickHouseError("Connection refused", kind=clickhouse.UNAVAILABLE)

    writer.store = down
    try:
        assert post_logs(client, ingest_key, logs_request(evaluation(call, "spooled", value=1))).status_code == 200
        assert batcher.spool_stats(batcher.LOGS).batches == 1
    finally:
        writer.store = real
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and batcher.spool_stats(batcher.LOGS).batches:
        writer._wake_flusher.set()
        time.sleep(0.2)
    rows = clickhouse.query(
        f"SELECT count() AS n FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{p:String}} AND Name = 'spooled'",
        {"p": str(project.id)},
        tag="t",
    )
    assert rows[0]["n"] == 1


def test_a_collectors_logs_table_without_event_name_gets_the_column_and_its_events_count(settings, project):
    """The compose collector (exporter 0.135) makes otel_logs without EventName and writes the event's
    name into the `event.name` attribute (config/otel-collector-config.yaml): both are read."""
    settings.CLICKHOUSE = {**settings.CLICKHOUSE, "DATABASE": f"otel_logs_{os.getpid()}_{time.time_ns()}"}
    schema.ensure_schema(ttl_days=0)  # opening the engine made it already: as the collector's, then
    clickhouse.command(f"DROP TABLE {schema.table(schema.SCORES_FROM_LOGS_MV)}", tag="t")
    clickhouse.command(f"DROP TABLE {schema.table(schema.LOGS)}", tag="t")
    older = "\n".join(line for line in schema._logs_ddl(0).splitlines() if "EventName" not in line)
    clickhouse.command(older, tag="t")
    assert "EventName" not in schema.existing_columns(schema.LOGS)
    statements = schema.ensure_schema(ttl_days=0)
    assert any("ADD COLUMN IF NOT EXISTS EventName" in s for s in statements)
    row = {
        "Timestamp": nanos(AT), "TraceId": "ab" * 16, "SpanId": "cd" * 8, "TraceFlags": 0, "SeverityText": "",
        "SeverityNumber": 0, "ServiceName": "collector-sent", "Body": "", "ResourceSchemaUrl": "",
        "ResourceAttributes": {"project_id": str(project.id)}, "ScopeSchemaUrl": "", "ScopeName": "",
        "ScopeVersion": "", "ScopeAttributes": {},
        "LogAttributes": {"event.name": "gen_ai.evaluation.result", "gen_ai.evaluation.name": "faithfulness",
                          "gen_ai.evaluation.score.value": "0.5"},
    }  # fmt: skip
    columns = [c for c in schema.LOG_COLUMNS if c != "EventName"]  # the 0.135 exporter's INSERT list
    clickhouse.insert(schema.table(schema.LOGS), columns, [row], tag="t", nanos_columns=schema.LOG_NANOS_COLUMNS)
    from monitoring.queries import scores as scores_q

    found = scores_q.for_traces(str(project.id), ["ab" * 16])
    assert [(s.name, s.value, s.author) for s in found] == [("faithfulness", 0.5, "collector-sent")]
    assert not any("ADD COLUMN" in s for s in schema.ensure_schema(ttl_days=0))


def test_search_finds_words_said_only_in_log_records(client, alice, project, ingest_key):
    root, call = run_of()
    send(client, ingest_key, root, call)
    req = logs_request(record("gen_ai.user.message", span=call, body={"content": "배송 지연 환불 요청"}))
    assert post_logs(client, ingest_key, req).status_code == 200
    client.force_login(alice)
    for q in ("환불", "배송 지연"):
        found = client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "all", "range": "24h", "q": q}).json()
        assert [(r["span_id"], r["matched"]) for r in found["items"]] == [(call.span_id.hex(), "log record")], q
    assert (
        client.get(f"/api/v1/projects/{project.id}/traces", {"kind": "all", "range": "24h", "q": "없는말"}).json()[
            "items"
        ]
        == []
    )


def test_the_scores_api_shares_the_apis_rate_limit(client, alice, project, settings):
    settings.API_RATE_LIMIT = "3/m"
    token = api_token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/projects/{project.id}/scores"
    body = json.dumps({"trace_id": os.urandom(16).hex(), "name": "x", "value": 1})
    answers = [client.get(f"/api/v1/projects/{project.id}/overview", headers=headers).status_code]
    answers += [client.post(url, body, content_type="application/json", headers=headers).status_code for _ in range(3)]
    assert answers == [200, 201, 201, 429]
    assert client.get(url, {"name": "x"}, headers=headers)["Retry-After"] == "60"


def test_the_filter_bar_keeps_the_score_filters_when_it_is_applied(client, alice, project):
    """A score filter (score=<name>:<op>[:<value>]) is part of the filter bar's query like an attribute
    filter: applying the bar (another window, a service) keeps it, on every tab that has the bar."""
    import re

    client.force_login(alice)
    for path in ("traces/?kind=runs&", "traces/?kind=llm&", "overview/?", "analytics/?"):
        html = client.get(
            f"/admin/monitoring/{project.id}/{path}score=relevance:lt:0.5&score=feedback:eq:down"
        ).content.decode()
        bar = re.search(r'<form class="filter-bar".*?</form>', html, re.S).group(0)
        kept = re.findall(r'<input type="hidden" name="score" value="([^"]*)" data-keep-score>', bar)
        assert kept == ["relevance:lt:0.5", "feedback:eq:down"], path
