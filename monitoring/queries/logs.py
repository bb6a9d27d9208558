"""GenAI events sent as OTel log records (`otel_logs`), read back as events of the span they belong to.

Since OpenTelemetry deprecated the Span Events API (2026), GenAI instrumentations send the chat as
log records correlated by trace and span id (semantic-conventions-genai, "gen-ai-events"):
`gen_ai.client.inference.operation.details` (attributes `gen_ai.input.messages`,
`gen_ai.output.messages`, `gen_ai.system_instructions`, structured values stored as JSON by the
exporter's AsString) and the older per-message events `gen_ai.{system,user,assistant,tool}.message`
and `gen_ai.choice`, whose content is the record's *body*. A record's event name is its
`LogRecord.event_name`, else its `event.name` attribute (older SDKs).

Each record becomes (ts, name, attributes), the shape span events have, so the pages, Replay and
previews read both alike (monitoring/semantics/messages.py). A body that is a JSON object is handed
over as `gen_ai.event.content`, the key messages.py already reads an event's body from.
"""

from __future__ import annotations

import json
from collections import defaultdict

from monitoring.semantics import semconv
from monitoring.store import schema
from monitoring.store.sql import Sql, run

EARLIER_NS = 3600 * 10**9  # a record may be stamped a little before its span (clock skew)
LATER_NS = 24 * 3600 * 10**9  # or after it ended (an evaluation, a late export)
MAX_RECORDS = 2000  # a trace's message events read at most (a page stays small whatever was sent)
BODY_KEY = "gen_ai.event.content"


def _attributes(attributes: dict, body: str) -> dict[str, str]:
    found = dict(attributes or {})
    if body.startswith("{") and BODY_KEY not in found:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            found[BODY_KEY] = body
    elif body and "content" not in found:
        found["content"] = body  # a plain-text body is the message's content
    return found


def message_events(
    project_id: str, trace_ids: list[str], start_ns: int, end_ns: int, spans: list[tuple[str, str]] | None = None
) -> dict[tuple[str, str], list[tuple[int, str, dict[str, str]]]]:
    """{(trace id, span id): [(ts ns, event name, attributes), …] oldest first} of the message events
    sent as log records for these traces (of `spans` only, when given), stamped from an hour before
    `start_ns` to a day after `end_ns`."""
    if not trace_ids:
        return {}
    name = schema.log_event_name()
    conditions = [
        "ResourceAttributes['project_id'] = {project:String}",
        "TraceId IN {traces:Array(String)}",
        "SpanId != ''",
        f"{name} IN {{events:Array(String)}}",
        "TimestampTime >= toDateTime(intDiv({lo:Int64}, 1000000000))",
        "TimestampTime <= toDateTime(intDiv({hi:Int64}, 1000000000))",
    ]
    if spans is not None:
        conditions.append("(TraceId, SpanId) IN {spans:Array(Tuple(String, String))}")
    rows = run(
        Sql(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId AS trace, SpanId AS span, {name} AS name,",
            f" LogAttributes AS attributes, Body AS body FROM {schema.table(schema.LOGS)} WHERE ",
            Sql.all(conditions),
            # A re-delivered record is stored twice: once here.
            " ORDER BY Timestamp LIMIT 1 BY TraceId, SpanId, Timestamp, name, cityHash64(Body, LogAttributes)",
            " LIMIT {limit:UInt32}",
            project=project_id,
            traces=sorted(set(trace_ids)),
            events=list(semconv.MESSAGE_EVENTS),
            lo=max(start_ns - EARLIER_NS, 0),
            hi=min(end_ns + LATER_NS, 2**63 - 1),
            spans=[tuple(s) for s in spans or []],
            limit=MAX_RECORDS,
        ),
        tag="logs.messages",
    )
    found: dict[tuple[str, str], list[tuple[int, str, dict[str, str]]]] = defaultdict(list)
    for r in rows:
        found[(r["trace"], r["span"])].append((int(r["ts"]), r["name"], _attributes(r["attributes"], r["body"])))
    return dict(found)
