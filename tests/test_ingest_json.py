"""The OTLP/JSON fast path (monitoring.ingest.otlp_json) gives exactly the rows of the protobuf path.

Pure: no database. Random requests (every attribute type, extreme times, bad ids, odd enums,
events and links) are written as canonical OTLP/JSON, then mutated; for each body the fast path
must either step aside (NotCanonical) or agree with protobuf's own JSON parser to the byte —
and it must never accept a body that protobuf refuses.
"""

from __future__ import annotations

import base64
import copy
import json
import random

import pytest
from fixtures.otlp_samples import SAMPLE_JSON_PATH, sample_request
from google.protobuf import json_format
from test_fuzz_ingest import _request

from monitoring.ingest import decode, otlp, otlp_json

PROJECT = "6f1c2d1e-0000-4000-8000-000000000002"
FIXTURES = SAMPLE_JSON_PATH.parent


def _to_json(req) -> str:
    """OTLP/JSON as SDKs write it: integer enums, hex ids."""
    doc = json_format.MessageToDict(req, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for item in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64decode(item[key]).hex()
    return json.dumps(doc)


def exact(doc: dict):
    """Rows by protobuf's JSON mapping, or the IngestError it raises."""
    try:
        return otlp.rows_from_request(otlp._request_from_json(copy.deepcopy(doc)), PROJECT)
    except otlp.IngestError as exc:
        return exc


def fast(doc: dict):
    try:
        return otlp_json.rows_from_json(doc, PROJECT)
    except otlp_json.NotCanonical:
        return None


def same(a: otlp.SpanRows, b: otlp.SpanRows) -> bool:
    # json round trip: NaN-free rows compare as text, key order included
    return json.dumps([a.rows, a.rejected, a.error_message, a.rejected_reasons]) == json.dumps(
        [b.rows, b.rejected, b.error_message, b.rejected_reasons]
    )


def test_the_sample_takes_the_fast_path_or_matches():
    doc = json.loads(SAMPLE_JSON_PATH.read_bytes())
    quick, slow = fast(doc), exact(doc)
    assert not isinstance(slow, Exception)
    if quick is not None:  # the sample holds bytes values and NaN strings: it may step aside
        assert same(quick, slow)
    via_body = decode.rows_from_body(SAMPLE_JSON_PATH.read_bytes(), "application/json", None, PROJECT)
    assert same(via_body, otlp.rows_from_request(sample_request(), PROJECT)) or same(via_body, slow)


def test_real_litellm_exports_take_the_fast_path():
    capture = json.loads((FIXTURES / "litellm_1.108.7_spans.json").read_text())["captures"]["otel"]
    for doc in capture["otlp_requests"]:
        quick = fast(doc)
        assert quick is not None and quick.rows
        assert same(quick, exact(doc))


MUTATIONS = [
    ("kind", lambda r: "SPAN_KIND_SERVER"),
    ("kind", lambda r: 2.0),
    ("kind", lambda r: True),
    ("kind", lambda r: -1),
    ("startTimeUnixNano", lambda r: 1.5),
    ("startTimeUnixNano", lambda r: "12 34"),
    ("startTimeUnixNano", lambda r: "-5"),
    ("startTimeUnixNano", lambda r: str(2**64)),
    ("startTimeUnixNano", lambda r: None),
    ("traceId", lambda r: "XYZ"),
    ("traceId", lambda r: 7),
    ("traceId", lambda r: None),
    ("name", lambda r: 5),
    ("name", lambda r: None),
    ("flags", lambda r: 2**32),
    ("flags", lambda r: -1),
    ("status", lambda r: {"code": "STATUS_CODE_ERROR"}),
    ("status", lambda r: {"code": 2, "message": None}),
    ("status", lambda r: []),
    ("attributes", lambda r: {"a": 1}),
    ("attributes", lambda r: [{"key": "k", "value": {"intValue": "1e3"}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"intValue": str(2**63)}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"doubleValue": 10**400}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"doubleValue": "NaN"}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"boolValue": 1}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"bytesValue": "AAE="}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"arrayValue": {"values": [{"intValue": 1}, {}, None]}}}]),
    ("attributes", lambda r: [{"key": "k", "value": {"kvlistValue": {"values": [{"key": "b"}, {"key": "a"}]}}}]),
    ("attributes", lambda r: [{"key": "k", "value": None}, {"key": "k", "value": {"intValue": 2}}]),
    ("events", lambda r: [{"timeUnixNano": str(2**63), "name": "late"}]),
    ("events", lambda r: [{"timeUnixNano": "0", "name": "zero", "extra": 1}]),
    ("links", lambda r: [{"traceId": "00" * 16, "spanId": "01" * 9}]),
    ("links", lambda r: [{"traceId": "ab" * 16, "spanId": "cd" * 8, "flags": 1}]),
    ("unknownField", lambda r: 1),
    ("parent_span_id", lambda r: "ab" * 8),
]


def test_random_requests_and_their_mutations_agree_with_protobufs_parser():
    rng = random.Random(99)
    fast_count = total = 0
    for n in range(1500):
        req, _ = _request(rng, f"m{n}-")
        doc = json.loads(_to_json(req))
        candidates = [doc]
        spans = [
            s for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])
        ]
        if spans:
            field, make = rng.choice(MUTATIONS)
            mutated = copy.deepcopy(doc)
            target = [
                s for rs in mutated["resourceSpans"] for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])
            ][0]
            target[field] = make(rng)
            candidates.append(mutated)
        for candidate in candidates:
            total += 1
            slow, quick = exact(candidate), fast(candidate)
            if quick is None:
                continue
            fast_count += 1
            assert not isinstance(slow, Exception), (candidate, slow)  # never accept what protobuf refuses
            assert same(quick, slow), candidate
    print(f"\njson fast path: {fast_count} of {total} hostile bodies; the rest took protobuf's parser")
    assert fast_count >= 100  # the comparison did happen, many times


def test_realistic_traffic_takes_the_fast_path_with_identical_rows():
    from datetime import UTC, datetime

    from demo import traffic

    requests = traffic.generate_requests(days=1, runs_per_day=40, batch_spans=200, now=datetime(2026, 1, 2, tzinfo=UTC))
    for req, _ in requests:
        doc = json.loads(_to_json(req))
        quick = fast(doc)
        assert quick is not None
        assert same(quick, otlp.rows_from_request(req, PROJECT))


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"resourceSpans": []},
        {"resourceSpans": [{"scopeSpans": [{"spans": []}]}]},
        {"resourceSpans": [{"resource": None, "scopeSpans": [{"scope": None, "spans": [{}]}]}]},
    ],
)
def test_empty_shapes_agree(doc):
    quick, slow = fast(doc), exact(doc)
    assert quick is not None and same(quick, slow)


# --- text that is not Unicode: U+FFFD on both paths, and as protobuf gets it ---------------------------


def _both_paths(body: bytes) -> tuple[otlp.SpanRows, otlp.SpanRows]:
    """(the receiver's rows: the fast path when it applies, protobuf's JSON parser's rows)."""
    return (
        decode.rows_from_body(body, "application/json", None, PROJECT),
        otlp.rows_from_request(otlp.decode_request(body, "application/json", None), PROJECT),
    )


_SPAN = '{"traceId":"%s","spanId":"%s","name":%s,"attributes":[%s],"events":[{"name":%s,"attributes":[%s]}]}'


# Raw bytes are written as <XX> and put in after encoding; \uXXXX escapes are JSON's own.
@pytest.mark.parametrize(
    ("name", "attribute", "expected_name", "expected_attributes"),
    [
        (r'"cut \ud83d"', r'{"key":"k","value":{"stringValue":"x\udca9y"}}', "cut \ufffd", {"k": "x\ufffdy"}),
        (r'"\udc00\ud800"', r'{"key":"\ud800k","value":{"intValue":"1"}}', "\ufffd\ufffd", {"\ufffdk": "1"}),
        (
            r'"pair \ud83d\ude00 kept"',
            r'{"key":"m","value":{"kvlistValue":{"values":[{"key":"\udfff","value":{"stringValue":"\ud800"}}]}}}',
            "pair \U0001f600 kept",
            {"m": '{"\ufffd":"\ufffd"}'},
        ),
        (
            '"bytes <EB><B6>"',
            '{"key":"<FF>","value":{"arrayValue":{"values":[{"stringValue":"<C3>"}]}}}',
            "bytes \ufffd",
            {"\ufffd": '["\ufffd"]'},
        ),
    ],
    ids=["lone-high-and-low", "key", "kvlist-pair-kept", "raw-bytes"],
)
def test_text_that_is_not_unicode_is_u_fffd_on_both_paths(name, attribute, expected_name, expected_attributes):
    span = _SPAN % ("ab" * 16, "cd" * 8, name, attribute, name, attribute)
    body = ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + "]}]}]}").encode()
    for raw in (b"\xeb", b"\xb6", b"\xff", b"\xc3"):
        body = body.replace(b"<%02X>" % raw[0], raw)

    quick, slow = _both_paths(body)

    assert same(quick, slow)
    (row,) = quick.rows
    assert (row["SpanName"], row["SpanAttributes"]) == (expected_name, expected_attributes)
    assert (row["Events.Name"], row["Events.Attributes"]) == ([expected_name], [expected_attributes])
    assert fast(otlp._load_json(body)) is not None  # the fast path did take it


def test_case_09_as_json_with_the_same_bytes_gives_the_protobuf_rows():
    """The handed case's export as OTLP/JSON, its string cut at the same byte: the rows of its
    protobuf body (fixtures/cases/case-09-invalid-utf8-protobuf.pb)."""
    body = (FIXTURES / "cases" / "case-09-invalid-utf8-protobuf.pb").read_bytes()
    from_protobuf = decode.rows_from_body(body, "application/x-protobuf", None, PROJECT)
    request = otlp.parse_protobuf(body, otlp.ExportTraceServiceRequest)  # U+FFFD in place; JSON, then the cut put back
    as_json = _to_json(request).replace("\\ufffd", "\ufffd").encode().replace("\ufffd".encode(), b"\xeb\xb6")
    assert as_json.count(b"\xeb\xb6") == 1

    from_json, exact_json = _both_paths(as_json)

    assert len(from_protobuf.rows) == 2 and from_protobuf.rejected == 0
    assert same(from_json, from_protobuf) and same(exact_json, from_protobuf)


# --- a span cut to Rules.span_entries: the same cut on both paths ---------------------------------------


def test_spans_cut_to_their_entries_are_cut_alike_on_both_paths():
    """Random requests (many attributes, events and links, duplicate keys) under small limits: the
    fast path cuts each span and resource where protobuf's parser's rows are cut, and both count it."""
    rng = random.Random(7)
    compared = cut = 0
    for n in range(400):
        req, _ = _request(rng, f"c{n}-")
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    for i in range(rng.randrange(2, 30)):  # more attributes, some with the same key
                        span.attributes.add(key=f"extra{rng.randrange(6)}").value.int_value = i
        doc = json.loads(_to_json(req))
        for limit in (1, 3, 8, 25):
            rules = otlp.Rules(span_entries=limit)
            try:
                slow = otlp.rows_from_request(otlp._request_from_json(copy.deepcopy(doc)), PROJECT, rules)
            except otlp.IngestError:
                continue
            try:
                quick = otlp_json.rows_from_json(copy.deepcopy(doc), PROJECT, rules)
            except otlp_json.NotCanonical:
                continue
            compared += 1
            cut += quick.limited > 0
            assert same(quick, slow) and quick.limited == slow.limited, (limit, doc)
            for row in quick.rows:
                entries = len(row["SpanAttributes"]) + len(row["Events.Name"]) + len(row["Links.TraceId"])
                entries += sum(map(len, row["Events.Attributes"])) + sum(map(len, row["Links.Attributes"]))
                assert entries <= limit
    assert compared >= 100 and cut >= 40, (compared, cut)


def test_the_plan_of_a_cut_keeps_attributes_then_events_then_links():
    assert otlp.span_plan(0, 10**6, [5]) is None and otlp.span_plan(10, 3, [2, 2]) is None  # 3 + 2 x (1 + 2) = 9
    assert otlp.span_plan(10, 20, [2]) == (10, [])
    assert otlp.span_plan(10, 4, [3, 3, 3]) == (4, [3, 1])  # 4, then 1 + 3, then 1 + 1
    assert otlp.span_plan(5, 0, [0, 0, 0, 0, 0, 0]) == (0, [0, 0, 0, 0, 0])
