"""monitoring.ingest.otlp: OTLP/HTTP bodies -> exporter-identical rows. Pure: no Django, no database."""

from __future__ import annotations

import gzip
import json
import math
import zlib

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from monitoring.ingest.otlp import (
    MAX_BODY_BYTES,
    IngestError,
    Status,
    decode_request,
    encode_response,
    format_double,
    rows_from_request,
    status_body,
)
from monitoring.store.schema import TRACE_COLUMNS
from tests.fixtures.otlp_samples import (
    LINK_SPAN,
    LINK_TRACE,
    SAMPLE_JSON_PATH,
    SPAN_A,
    SPAN_B,
    SPAN_C,
    T0,
    TRACE_1,
    TRACE_2,
    TRACE_3,
    sample_request,
)

PB = "application/x-protobuf"
JSON = "application/json"
PROJECT = "6f1c2d1e-0000-4000-8000-000000000001"


def pb_body() -> bytes:
    return sample_request().SerializeToString()


def json_body() -> bytes:
    return SAMPLE_JSON_PATH.read_bytes()


def rows_of(req: ExportTraceServiceRequest) -> list[dict]:
    result = rows_from_request(req, PROJECT)
    assert result.rejected == 0, result.error_message
    return result.rows


def decode_error(body: bytes, content_type: str = PB, encoding: str | None = None) -> IngestError:
    with pytest.raises(IngestError) as info:
        decode_request(body, content_type, encoding)
    return info.value


def same_message(a: ExportTraceServiceRequest, b: ExportTraceServiceRequest) -> bool:
    # Serialized comparison: the sample holds NaN doubles, and NaN != NaN.
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


# --- format_double: pdata float64AsString (ES6 number formatting, Go's shortest digits) --------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, "0.5"),
        (1.0, "1"),
        (123456789.0, "123456789"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e-06, "0.000001"),  # the smallest magnitude still written in plain decimal
        (9.99e-07, "9.99e-7"),
        (1e-07, "1e-7"),  # Go's AppendFloat gives "1e-07"; pdata then strips the exponent's 0
        (2.5e-10, "2.5e-10"),
        (-3e-08, "-3e-8"),
        (5e-324, "5e-324"),
        (1e20, "100000000000000000000"),
        (999999999999999900000.0, "999999999999999900000"),
        (1e21, "1e+21"),  # from 1e21 on: exponent form
        (1.5e300, "1.5e+300"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.nan, "json: unsupported value: NaN"),  # Go writes its marshal error text
        (math.inf, "json: unsupported value: +Inf"),
        (-math.inf, "json: unsupported value: -Inf"),
    ],
)
def test_it_formats_doubles_like_pdata(value: float, expected: str) -> None:
    assert format_double(value) == expected


# --- rows -----------------------------------------------------------------------------------


def test_it_maps_a_span_to_an_exporter_row() -> None:
    row = rows_of(sample_request())[0]

    assert tuple(row) == TRACE_COLUMNS
    assert len(TRACE_COLUMNS) == 22
    expected_scalars = {
        "Timestamp": T0,
        "TraceId": TRACE_1,
        "SpanId": SPAN_A,
        "ParentSpanId": "",
        "TraceState": "",
        "SpanName": "POST /v1/chat/completions",
        "SpanKind": "Server",
        "ServiceName": "agent-text2sql",
        "ResourceAttributes": {
            "service.name": "agent-text2sql",
            "project_id": PROJECT,
            "host.name": "worker-1",
            "process.pid": "4242",
        },
        "ScopeName": "opentelemetry.instrumentation.openai",
        "ScopeVersion": "0.40.1",
        "Duration": 250_000_000,
        "StatusCode": "Ok",
        "StatusMessage": "",
        "Events.Timestamp": [T0 + 150_000_000, T0 + 200_000_000],
        "Events.Name": ["exception", "gen_ai.content.completion"],
        "Events.Attributes": [
            {"exception.type": "ValueError", "exception.message": "boom", "exception.escaped": "true"},
            {},
        ],
        "Links.TraceId": [LINK_TRACE, ""],
        "Links.SpanId": [LINK_SPAN, ""],
        "Links.TraceState": ["congo=t61rcWkgMzE", ""],
        "Links.Attributes": [{"link.kind": "follows_from"}, {}],
    }
    assert {k: v for k, v in row.items() if k != "SpanAttributes"} == expected_scalars


def test_it_formats_every_attribute_value_type() -> None:
    attributes = rows_of(sample_request())[0]["SpanAttributes"]

    assert attributes == {
        "http.route": "/v1/chat",
        "str.empty": "",
        "gen_ai.usage.input_tokens": "1234",
        "int.negative": "-42",
        "int.max": "9223372036854775807",
        "int.min": "-9223372036854775808",
        "gen_ai.cost.total_cost": "0.5",
        "double.one": "1",
        "double.small": "1e-7",
        "double.tiny": "2.5e-10",
        "double.micro": "0.000001",
        "double.big": "1e+21",
        "double.below_big": "100000000000000000000",
        "double.int_like": "123456789",
        "double.sum": "0.30000000000000004",
        "double.negative": "-2.5",
        "double.zero": "0",
        "double.nan": "json: unsupported value: NaN",
        "double.inf": "json: unsupported value: +Inf",
        "flag.true": "true",
        "flag.false": "false",
        "bytes": "AAH+/w==",
        "bytes.empty": "",
        "empty.value": "",
        # Go json.Marshal of Value.AsRaw(): ints and doubles as numbers (same ES6 formatting),
        # bytes base64 but empty bytes null, empty values null, nested values recursively.
        "array": '["a",1,1.5,true,"AQ==",null,[1e-7,1e+21],{"k":"v"},null]',
        "array.nan": "",  # json.Marshal fails on NaN inside; AsString drops the error
        "array.empty": "[]",
        # Sorted keys, HTML characters and U+2028 escaped, other non-ASCII kept as UTF-8.
        "kvlist": '{"a":"x\\u003cy\\u0026z\\u003e","nested":{"b":2.5e-8,"list":[false]},'
        '"uni":"h\u00e9llo\\n\\u2028","z":1}',
        "kvlist.empty": "{}",
        "kvlist.duplicate": '{"k":"last"}',
        "dup.key": "first",
    }


def test_it_writes_kind_and_status_strings_and_empty_ids() -> None:
    rows = rows_of(sample_request())

    assert [(r["SpanName"], r["SpanKind"], r["StatusCode"]) for r in rows] == [
        ("POST /v1/chat/completions", "Server", "Ok"),
        ("litellm_request", "Client", "Error"),
        ("clock-skew", "Unspecified", "Unset"),
        ("produce", "Producer", "Unset"),
        ("consume", "Consumer", "Ok"),
        ("internal", "Internal", "Error"),
        ("future-kind", "", ""),  # unknown enum numbers: pdata's String() gives ""
    ]
    b, c = rows[1], rows[2]
    assert (b["TraceId"], b["SpanId"], b["ParentSpanId"]) == (TRACE_1, SPAN_B, SPAN_A)
    assert (b["TraceState"], b["StatusMessage"]) == ("rojo=00f067aa0ba902b7", "RateLimitError: 429")
    assert b["SpanAttributes"] == {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.output_tokens": "56"}
    assert (c["TraceId"], c["SpanId"], c["ParentSpanId"]) == (TRACE_2, SPAN_C, "")  # all-zero parent
    # end 1 ns before start: the stock exporter's int64 -> UInt64 wrap-around, kept (>= 2**63 = "no end")
    assert c["Duration"] == 2**64 - 1
    assert {r["TraceId"] for r in rows[3:]} == {TRACE_3}  # upper-case hex in JSON, lower in rows
    assert [r["SpanId"] for r in rows[3:]] == [f"0{i}" * 8 for i in range(1, 5)]


def test_it_forces_project_id_and_reads_service_name_from_the_resource() -> None:
    rows = rows_of(sample_request())

    assert all(r["ResourceAttributes"]["project_id"] == PROJECT for r in rows)
    assert "spoofed-project" not in str(rows)
    no_resource = rows[3]
    assert (no_resource["ServiceName"], no_resource["ResourceAttributes"]) == ("", {"project_id": PROJECT})
    assert (no_resource["ScopeName"], no_resource["ScopeVersion"]) == ("", "")


def test_the_spans_of_one_resource_share_its_attributes_and_nothing_else() -> None:
    """A copy per span made a 1.2 MB export (1,000 resource attributes, 20,000 spans) hold 20M
    entries in Python; rows are never changed once made, so its spans share one dict."""
    rows = rows_of(sample_request())
    by_resource: dict[int, list[dict]] = {}
    for row in rows:
        by_resource.setdefault(id(row["ResourceAttributes"]), []).append(row)

    assert len(by_resource) == len(sample_request().resource_spans)
    assert len({id(r["SpanAttributes"]) for r in rows}) == len(rows)


def test_it_stores_no_scope_attributes_schema_urls_dropped_counts_or_flags() -> None:
    text = str(rows_of(sample_request()))

    for absent in ("scope.attr", "schemas/1.26.0", "257"):
        assert absent not in text


def test_it_decodes_the_json_fixture_to_the_same_request_and_rows() -> None:
    from_json = decode_request(json_body(), JSON, None)
    from_pb = decode_request(pb_body(), PB, None)

    assert same_message(from_json, sample_request())
    assert same_message(from_pb, sample_request())
    assert rows_of(from_json) == rows_of(from_pb)


def test_it_accepts_content_type_parameters_and_case() -> None:
    assert same_message(decode_request(json_body(), "application/json; charset=utf-8", None), sample_request())
    assert same_message(decode_request(pb_body(), "Application/X-Protobuf", "identity"), sample_request())


def test_it_accepts_proto_field_names_in_json() -> None:
    doc = {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": TRACE_1, "span_id": SPAN_A, "name": "x"}]}]}]}

    req = decode_request(json.dumps(doc).encode(), JSON, None)

    assert rows_of(req)[0]["TraceId"] == TRACE_1


def test_it_decodes_an_empty_request() -> None:
    for body, content_type in ((b"", PB), (b"{}", JSON)):
        assert rows_from_request(decode_request(body, content_type, None), PROJECT).rows == []


# --- rejected spans -------------------------------------------------------------------------


def _span(**fields: object) -> Span:
    values: dict[str, object] = {
        "trace_id": bytes.fromhex(TRACE_1),
        "span_id": bytes.fromhex(SPAN_A),
        "name": "s",
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 1,
    }
    values.update(fields)
    return Span(**values)


def _request(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])


def test_it_rejects_spans_with_invalid_ids_and_keeps_the_rest() -> None:
    req = _request(
        _span(name="good"),
        _span(trace_id=b""),
        _span(trace_id=bytes(16)),
        _span(span_id=b""),
        _span(span_id=bytes(8)),
        _span(trace_id=bytes(15) + b"\x01"),  # 16 bytes, not all zero: valid
        _span(trace_id=b"\x01" * 15),
        _span(parent_span_id=b"\x01" * 4),
        _span(links=[Span.Link(trace_id=b"\x01" * 16, span_id=b"\x01" * 9)]),
        _span(start_time_unix_nano=2**63),
        _span(events=[Span.Event(time_unix_nano=2**64 - 1, name="late")]),
    )

    result = rows_from_request(req, PROJECT)
    rows, rejected = result  # unpacks as a pair

    assert [r["TraceId"] for r in rows] == [TRACE_1, "00" * 15 + "01"]
    assert rejected == result.rejected == 9
    assert result.rejected_reasons == {
        "missing or all-zero trace id": 2,
        "missing or all-zero span id": 2,
        "invalid trace id length": 1,
        "invalid parent span id length": 1,
        "invalid link span id length": 1,
        "start time after 2106-02-07 06:28:15 UTC": 1,
        "event time out of range": 1,
    }
    assert result.error_message.startswith("9 span(s) rejected: ")
    assert "2 with missing or all-zero trace id" in result.error_message


def test_it_rejects_json_spans_with_empty_ids_but_keeps_the_rest() -> None:
    doc = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": TRACE_1, "spanId": SPAN_A}, {"traceId": "", "spanId": SPAN_A}, {}]}]}
        ]
    }

    result = rows_from_request(decode_request(json.dumps(doc).encode(), JSON, None), PROJECT)

    assert (len(result.rows), result.rejected) == (1, 2)


def test_a_clean_request_has_no_error_message() -> None:
    result = rows_from_request(sample_request(), PROJECT)

    assert (result.rejected, result.error_message, result.rejected_reasons) == (0, "", {})


# --- compression and size limits ------------------------------------------------------------


def test_it_decompresses_gzip() -> None:
    for body, content_type in ((pb_body(), PB), (json_body(), JSON)):
        assert same_message(decode_request(gzip.compress(body), content_type, "gzip"), sample_request())


def test_it_decompresses_concatenated_gzip_members() -> None:
    body = pb_body()
    split = len(body) // 3

    req = decode_request(gzip.compress(body[:split]) + gzip.compress(body[split:]), PB, "GZIP")

    assert same_message(req, sample_request())


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(b"x" * 1000)[:-12],  # truncated
        b"not gzip at all",
        gzip.compress(b"") + b"trailing garbage",
    ],
)
def test_it_answers_400_for_a_broken_gzip_body(body: bytes) -> None:
    error = decode_error(body, PB, "gzip")

    assert error.status == 400
    assert "gzip" in error.message


def _padded_protobuf(size: int) -> bytes:
    """A valid, empty ExportTraceServiceRequest of exactly ``size`` bytes (one unknown field 15)."""
    payload = size - 5  # 1 tag byte + 4 length bytes for any payload in [2**21, 2**28)
    length = bytearray()
    n = payload
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    body = bytes([15 << 3 | 2]) + bytes(length) + b"\0" * payload
    assert len(body) == size
    return body


def test_it_accepts_a_body_of_exactly_the_limit() -> None:
    body = _padded_protobuf(MAX_BODY_BYTES)

    assert decode_request(body, PB, None).resource_spans == []
    assert decode_request(gzip.compress(body, 1), PB, "gzip").resource_spans == []


def test_it_answers_413_one_byte_over_the_limit() -> None:
    body = _padded_protobuf(MAX_BODY_BYTES + 1)

    assert decode_error(body, PB).status == 413
    assert decode_error(gzip.compress(body, 1), PB, "gzip").status == 413


def _single_stream_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()


@pytest.mark.parametrize(
    "bomb",
    [
        _single_stream_bomb(),  # ~64 KiB inflating to 64 MiB
        gzip.compress(bytes(1024 * 1024), 9) * 64,  # the same as 64 concatenated members
    ],
    ids=["one-stream", "many-members"],
)
def test_it_stops_inflating_a_gzip_bomb_at_the_limit(bomb: bytes) -> None:
    assert len(bomb) < 256 * 1024

    error = decode_error(bomb, PB, "gzip")

    assert error.status == 413
    assert "larger than" in error.message


# --- 415 / 400 --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/grpc", "application/protobuf-json"])
def test_it_answers_415_for_other_content_types(content_type: str) -> None:
    assert decode_error(pb_body(), content_type).status == 415


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, br"])
def test_it_answers_415_for_other_content_encodings(encoding: str) -> None:
    assert decode_error(pb_body(), PB, encoding).status == 415


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"\xff\xff\xff\xff", PB, "protobuf"),
        (b"{not json", JSON, "JSON"),
        (b"\xff\xfe\x00", JSON, "JSON"),
        (b"[]", JSON, "JSON object"),
        (b'{"resourceSpans": 5}', JSON, "resourceSpans"),
        (
            b'{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":"9223372036854775808"}}]}}]}',
            JSON,
            "intValue",
        ),
    ],
)
def test_it_answers_400_for_undecodable_bodies(body: bytes, content_type: str, fragment: str) -> None:
    error = decode_error(body, content_type)

    assert error.status == 400
    assert fragment in error.message


@pytest.mark.parametrize("bad_id", ["xyz", "abc", "0af7 651916cd43dd8448eb211c80319c", 12, "AAH+/w=="])
def test_it_answers_400_for_ids_that_are_not_hex(bad_id: object) -> None:
    for span in (
        {"traceId": bad_id, "spanId": SPAN_A},
        {"traceId": TRACE_1, "spanId": SPAN_A, "parentSpanId": bad_id},
        {"traceId": TRACE_1, "spanId": SPAN_A, "links": [{"spanId": bad_id}]},
    ):
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        error = decode_error(json.dumps(doc).encode(), JSON)
        assert error.status == 400
        assert "hex" in error.message


# --- text that is not UTF-8 (opentelemetry-specification#3421: the Collector takes it) ----------

CUT = b"\xeb\xb6"  # the first 2 of the 3 bytes of '불': one U+FFFD (one maximal invalid subpart)


def _marked_request(mark: str = "Qz") -> ExportTraceServiceRequest:
    """A span with `mark` and two digits in every text field OTLP traces have."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    nested = AnyValue(
        kvlist_value=KeyValueList(
            values=[
                kv(mark + "01", mark + "02"),
                KeyValue(key="a", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=mark + "03")]))),
            ]
        )
    )
    span = _span(
        name=mark + "04",
        trace_state=mark + "05",
        attributes=[kv(mark + "06", mark + "07"), KeyValue(key="nested", value=nested)],
        events=[Span.Event(time_unix_nano=T0, name=mark + "08", attributes=[kv(mark + "09", mark + "10")])],
        links=[
            Span.Link(
                trace_id=bytes.fromhex(TRACE_2),
                span_id=bytes.fromhex(SPAN_B),
                trace_state=mark + "11",
                attributes=[kv("k", mark + "12")],
            )
        ],
        status={"code": 2, "message": mark + "13"},
    )
    req = _request(span, _span(span_id=bytes.fromhex(SPAN_C), name="clean"))
    rs = req.resource_spans[0]
    rs.schema_url = mark + "14"
    rs.resource.attributes.extend([kv("service.name", mark + "15"), kv(mark + "16", "v")])
    rs.scope_spans[0].schema_url = mark + "17"
    rs.scope_spans[0].scope.name, rs.scope_spans[0].scope.version = mark + "18", mark + "19"
    rs.scope_spans[0].scope.attributes.append(kv(mark + "20", mark + "21"))
    return req


def test_every_text_field_that_is_not_utf8_is_stored_with_u_fffd_and_no_span_is_lost() -> None:
    body = _marked_request().SerializeToString().replace(b"Qz", CUT)
    with pytest.raises(Exception, match="UTF-8"):
        ExportTraceServiceRequest.FromString(body)  # what refused the whole export before

    rows = rows_of(decode_request(body, PB, None))

    bad, clean = rows
    assert (bad["SpanName"], clean["SpanName"]) == ("\ufffd04", "clean")
    assert (bad["TraceState"], bad["StatusMessage"], bad["ServiceName"]) == ("\ufffd05", "\ufffd13", "\ufffd15")
    assert bad["SpanAttributes"] == {"\ufffd06": "\ufffd07", "nested": '{"a":["\ufffd03"],"\ufffd01":"\ufffd02"}'}
    assert (bad["Events.Name"], bad["Events.Attributes"]) == (["\ufffd08"], [{"\ufffd09": "\ufffd10"}])
    assert (bad["Links.TraceState"], bad["Links.Attributes"]) == (["\ufffd11"], [{"k": "\ufffd12"}])
    assert bad["ResourceAttributes"] == {"service.name": "\ufffd15", "\ufffd16": "v", "project_id": PROJECT}
    assert (bad["ScopeName"], bad["ScopeVersion"]) == ("\ufffd18", "\ufffd19")
    # The same export as UTF-8 with U+FFFD already in place gives the same rows.
    assert rows == rows_of(decode_request(_marked_request("\ufffd").SerializeToString(), PB, None))


@pytest.mark.parametrize("request_type", [ExportTraceServiceRequest, ExportLogsServiceRequest])
def test_the_lenient_reading_knows_every_text_field_of_a_trace_and_a_logs_export(request_type) -> None:
    from monitoring.ingest import otlp

    def string_fields(root) -> set[str]:
        seen, stack, found = set(), [root], set()
        while stack:
            message = stack.pop()
            if message.full_name in seen:
                continue
            seen.add(message.full_name)
            for field in message.fields:
                if field.type == field.TYPE_STRING:
                    found.add(field.full_name)
                if field.message_type is not None:
                    stack.append(field.message_type)
        return found

    expected = string_fields(request_type.DESCRIPTOR)
    assert "opentelemetry.proto.common.v1.KeyValue.key" in expected
    assert {f.full_name for f in otlp.lenient_class(request_type.DESCRIPTOR.full_name)[1]} == expected


@pytest.mark.parametrize("cut", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"])
def test_any_invalid_utf8_sequence_is_replaced(cut: bytes) -> None:
    body = _request(_span(name="ab" + "Q" * len(cut) + "cd")).SerializeToString().replace(b"Q" * len(cut), cut)

    (row,) = rows_of(decode_request(body, PB, None))

    assert row["SpanName"] == (b"ab" + cut + b"cd").decode("utf-8", "replace")
    assert "\ufffd" in row["SpanName"]


def test_a_body_broken_beyond_its_text_is_still_a_400() -> None:
    body = _request(_span(name="Qz")).SerializeToString().replace(b"Qz", CUT)

    error = decode_error(body[:-3], PB)

    assert error.status == 400
    assert "invalid protobuf" in error.message


# --- responses ------------------------------------------------------------------------------


def test_it_encodes_a_plain_success_response() -> None:
    assert encode_response(PB) == b""
    assert json.loads(encode_response(JSON)) == {}
    assert not ExportTraceServiceResponse.FromString(encode_response(PB)).HasField("partial_success")


def test_it_encodes_partial_success_in_the_request_encoding() -> None:
    proto = ExportTraceServiceResponse.FromString(encode_response(PB, 2, "2 span(s) rejected"))
    as_json = json.loads(encode_response("application/json; charset=utf-8", 2, "2 span(s) rejected"))

    assert (proto.partial_success.rejected_spans, proto.partial_success.error_message) == (2, "2 span(s) rejected")
    assert as_json == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 span(s) rejected"}}
    assert json.loads(encode_response(JSON, 0, "warning only")) == {"partialSuccess": {"errorMessage": "warning only"}}


def test_it_answers_400_with_a_status_body_in_the_request_encoding() -> None:
    error = decode_error(b"{broken", JSON)

    json_body_, json_type = status_body(JSON, error.status, error.message)
    pb_body_, pb_type = status_body(PB, 400, "bad protobuf")

    assert json_type == JSON
    assert json.loads(json_body_) == {"code": 3, "message": error.message}  # 3 = INVALID_ARGUMENT
    assert pb_type == PB
    status = Status.FromString(pb_body_)
    assert (status.code, status.message) == (3, "bad protobuf")


@pytest.mark.parametrize(("http_status", "grpc_code"), [(400, 3), (413, 2), (415, 2), (429, 8), (503, 14), (14, 14)])
def test_it_maps_http_statuses_to_grpc_codes_like_the_collector(http_status: int, grpc_code: int) -> None:
    body, _ = status_body(PB, http_status, "m")

    assert Status.FromString(body).code == grpc_code


def test_the_status_message_is_wire_compatible_with_google_rpc_status() -> None:
    # google.rpc.Status: int32 code = 1; string message = 2; repeated Any details = 3.
    body, _ = status_body(PB, 400, "hi")

    assert body == bytes([0x08, 3, 0x12, 2]) + b"hi"
    assert json_format.MessageToDict(Status.FromString(body)) == {"code": 3, "message": "hi"}


def test_ingest_error_carries_status_and_message() -> None:
    error = IngestError(413, "too big")

    assert (error.status, error.message, str(error)) == (413, "too big", "too big")
