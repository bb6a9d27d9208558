"""The setup guide's status checks, run from the portal: each check says ok or what to do."""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings

from monitoring import clickhouse, schema

log = logging.getLogger(__name__)

HINT_CLICKHOUSE = (
    "ClickHouse connection failed: `docker compose ps monitoring-clickhouse`, `curl http://localhost:8124/ping`, "
    "`docker compose restart monitoring-clickhouse`; embedded mode: is another process holding CLICKHOUSE_DATA_DIR?"
)
HINT_TABLE = "Create the schema: `python manage.py clickhouse_init`; check with `SHOW TABLES FROM otel_2`."
HINT_NO_SPANS = (
    "No traces: send a test request through LiteLLM (`curl -X POST http://localhost:4000/v1/chat/completions ...`), "
    "check OTEL_EXPORTER_OTLP_ENDPOINT/OTEL_EXPORTER_OTLP_PROTOCOL, and the collector's log "
    "(`docker compose logs otel-collector --tail=50`)."
)
HINT_STALE = "The newest span is old: is LiteLLM's otel callback on and the collector running?"
HINT_COLUMNS = (
    "The dashboard's columns are missing: run `python manage.py clickhouse_init` (it only adds, never drops)."
)
HINT_LITELLM = (
    "LiteLLM is not answering: `curl http://localhost:4000/health/liveliness`, `docker compose logs litellm`."
)

HINT_SPOOL = (
    "Spans received while ClickHouse could not store them wait in the local ingest spool "
    "(INGEST_SPOOL_DIR) and are stored as soon as it is back; if the oldest keeps ageing, fix "
    "ClickHouse first (see above). When the spool is full (INGEST_SPOOL_MAX_MB) senders get 503 and retry."
)

HINT_SETTLER = (
    "The settler applies the counting rules to new spans once and stores the results the pages read. "
    "Embedded mode: the serving process runs it (bin/demo, config/serve.sh). Server mode: "
    "`python manage.py settle --loop` (the compose `settler` service; `docker compose logs settler`). "
    "Meanwhile pages count the unsettled spans themselves: the numbers stay exact, pages get slower."
)

STALE_AFTER_SECONDS = 3600


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    extra: dict = field(default_factory=dict)
    url: str = ""  # where to act on it


def _clickhouse(staff: bool) -> Check:
    started = time.perf_counter()
    version = clickhouse.server_version()
    ms = (time.perf_counter() - started) * 1000
    mode = "embedded (chdb)" if clickhouse.is_embedded() else "server"
    if staff and not clickhouse.is_embedded():  # where the server lives is for operators only
        mode += f" {settings.CLICKHOUSE['HOST']}:{settings.CLICKHOUSE['PORT']}"
    return Check("ClickHouse reachable", True, f"version {version}, {mode}, answered in {ms:.0f} ms")


SPANS_SQL = """
SELECT count() AS spans, max(Timestamp) AS newest, dateDiff('second', max(Timestamp), now64(9)) AS age_s
FROM $table WHERE ProjectId IN {projects:Array(String)}
"""


def _table(project_ids: list[str]) -> list[Check]:
    columns = schema.existing_columns()
    if not columns:
        return [Check(f"{clickhouse.database()}.otel_traces present", False, "the table does not exist", HINT_TABLE)]
    checks = []
    row = clickhouse.query_one(
        SPANS_SQL.replace("$table", schema.table()), {"projects": project_ids}, tag="health.spans"
    )
    spans = int(row.get("spans") or 0)
    detail = f"{spans:,} spans in your projects"
    if spans:
        age = int(row.get("age_s") or 0)
        detail += f"; newest {_age(age)} ago ({row['newest']:%Y-%m-%d %H:%M:%S} UTC)"
        checks.append(
            Check(
                f"{clickhouse.database()}.otel_traces present",
                age < STALE_AFTER_SECONDS,
                detail,
                "" if age < STALE_AFTER_SECONDS else HINT_STALE,
            )
        )
    else:
        checks.append(Check(f"{clickhouse.database()}.otel_traces present", False, detail, HINT_NO_SPANS))
    needed = set(schema.TRACE_COLUMNS) | {name for name, _, _ in schema.derived_columns()}
    missing = sorted(needed - set(columns))
    checks.append(
        Check(
            "Schema columns the dashboard needs",
            not missing,
            "all present" if not missing else "missing: " + ", ".join(missing),
            "" if not missing else HINT_COLUMNS,
        )
    )
    return checks


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{max(seconds, 0)} s"


def _litellm(staff: bool) -> Check:
    url = settings.LITELLM_BASE_URL.rstrip("/") + "/health/liveliness"
    shown = url if staff else "/health/liveliness"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read(200).decode(errors="replace")
        return Check("LiteLLM gateway", True, f"{shown}: {response.status} {json.dumps(body.strip())}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Check("LiteLLM gateway", False, f"{shown}: {exc if staff else 'not answering'}", HINT_LITELLM)


def _spool() -> Check | None:
    from monitoring import ingest_batcher

    stats = ingest_batcher.spool_stats()
    if stats is None:
        return Check("Ingest spool", True, "disabled (INGEST_SPOOL_MAX_MB=0): an outage answers 503 to senders")
    if stats.empty:
        return Check("Ingest spool", True, "empty: every received span is stored")
    batches = f"{stats.batches:,} batch{'es' if stats.batches != 1 else ''}"
    size = f"{stats.bytes / 1048576:.1f} MiB" if stats.bytes >= 1048576 else f"{max(1, stats.bytes // 1024)} KiB"
    detail = (
        f"{batches} ({stats.spans:,} spans, {size}) waiting to be stored;"
        f" the oldest has waited {_age(int(stats.oldest_age_s))}"
    )
    return Check("Ingest spool", False, detail, HINT_SPOOL, {"batches": stats.batches, "spans": stats.spans})


def _settler() -> Check:
    from monitoring import settle

    through, now = settle.state()
    waiting = settle.waiting_spans(through)
    if not through:
        ok = not waiting
        detail = "no pass yet" + (f"; {waiting:,} spans waiting" if waiting else "")
        return Check("Settler", ok, detail, "" if ok else HINT_SETTLER, {"waiting": waiting})
    age = max(0, (now - through) // 10**9)
    ok = age <= settle.STALE_AFTER_SECONDS
    detail = f"last pass {_age(age)} ago" + (f"; {waiting:,} spans waiting" if waiting else "; nothing waiting")
    return Check("Settler", ok, detail, "" if ok else HINT_SETTLER, {"waiting": waiting, "age_s": age})


def _monitors(project_ids: list[str]) -> list[Check]:
    from monitoring.monitors import health as monitor_health

    return [
        Check(f"Monitor: {p.subject}", False, str(p.detail), url=p.url)
        for p in monitor_health.delivery_problems(project_ids)
    ]


def run_checks(project_ids: list[str], staff: bool = False) -> list[Check]:
    """`staff` also see where the services live (hosts, ports, URLs)."""
    try:
        checks = [_clickhouse(staff), *_table(project_ids), _settler()]
    except clickhouse.ClickHouseError as exc:
        hint = HINT_CLICKHOUSE if exc.retryable else HINT_TABLE
        if staff:
            detail = f"{exc.kind}: {exc}"
        else:  # ClickHouse's own words name hosts and internals: into the log, with an id to quote
            error_id = secrets.token_hex(4)
            log.warning("health check error %s: ClickHouse %s: %s", error_id, exc.kind, exc)
            detail = f"{exc.kind} (error id {error_id}; an administrator finds the details in the portal's log)"
        checks = [Check("ClickHouse reachable", False, detail, hint)]
    spool = _spool()
    if spool is not None:
        checks.append(spool)
    if settings.LITELLM_CONFIGURED:
        checks.append(_litellm(staff))
    checks += _monitors(project_ids)
    return checks
