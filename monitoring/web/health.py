"""The status checks of the stack (README, "Health" and "Troubleshooting"), run from the portal: each
check says ok or what to do, in the viewer's language; times in the viewer's time zone."""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from monitoring.store import clickhouse, schema
from monitoring.store.sql import from_nanos
from monitoring.web import display

log = logging.getLogger(__name__)

HINT_CLICKHOUSE = gettext_lazy(
    "ClickHouse connection failed: `docker compose ps monitoring-clickhouse`, `curl http://localhost:8124/ping`, "
    "`docker compose restart monitoring-clickhouse`; embedded mode: is another process holding CLICKHOUSE_DATA_DIR?"
)
HINT_TABLE = gettext_lazy(
    "Create the schema: `python manage.py clickhouse_init`; check with `SHOW TABLES FROM otel_2`."
)
HINT_NO_SPANS = gettext_lazy(
    "No traces: send a test request through LiteLLM (`curl -X POST http://localhost:4000/v1/chat/completions ...`), "
    "check OTEL_EXPORTER_OTLP_ENDPOINT/OTEL_EXPORTER_OTLP_PROTOCOL, and the collector's log "
    "(`docker compose logs otel-collector --tail=50`)."
)
HINT_STALE = gettext_lazy("The newest span is old: is LiteLLM's otel callback on and the collector running?")
HINT_COLUMNS = gettext_lazy(
    "The dashboard's columns are missing: run `python manage.py clickhouse_init` (it only adds, never drops)."
)
HINT_LITELLM = gettext_lazy(
    "LiteLLM is not answering: `curl http://localhost:4000/health/liveliness`, `docker compose logs litellm`."
)
QUEUE_SECONDS = 10  # a spool this young, while ClickHouse takes inserts, is the write-behind queue
HINT_SPOOL = gettext_lazy(
    "Spans received while ClickHouse could not store them wait in the local ingest spool "
    "(INGEST_SPOOL_DIR) and are stored as soon as it is back; if the oldest keeps ageing, fix "
    "ClickHouse first (see above). When the spool is full (INGEST_SPOOL_MAX_MB) senders get 503 and retry."
)
HINT_SETTLER = gettext_lazy(
    "The settler applies the counting rules to new spans once and stores the results the pages read. "
    "Embedded mode: the serving process runs it (bin/demo, config/serve.sh). Server mode: "
    "`python manage.py settle --loop` (the compose `settler` service; `docker compose logs settler`). "
    "Meanwhile pages count the unsettled spans themselves: the numbers stay exact, pages get slower."
)

STALE_AFTER_SECONDS = 3600


@dataclass
class Check:
    key: str  # stable id (the row's data-check), whatever the language
    name: str
    ok: bool
    detail: str
    hint: str | Promise = ""  # a lazy translation too: rendered in the viewer's language
    url: str = ""  # where to act on it


def _clickhouse(staff: bool) -> Check:
    started = time.perf_counter()
    version = clickhouse.server_version()
    ms = (time.perf_counter() - started) * 1000
    mode = _("embedded (chdb)") if clickhouse.is_embedded() else _("server")
    if staff and not clickhouse.is_embedded():  # where the server lives is for operators only
        mode += f" {settings.CLICKHOUSE['HOST']}:{settings.CLICKHOUSE['PORT']}"
    detail = _("version %(version)s, %(mode)s, answered in %(ms)s ms") % {
        "version": version,
        "mode": mode,
        "ms": f"{ms:.0f}",
    }
    return Check("clickhouse", _("ClickHouse reachable"), True, detail)


# otel_spans is ordered by (ProjectId, Timestamp): the newest span and the count read the index and
# one column, not every row of otel_traces (a re-delivered span not merged yet may count twice).
SPANS_SQL = """
SELECT count() AS spans, toUnixTimestamp64Nano(max(Timestamp)) AS newest_ns,
       dateDiff('second', max(Timestamp), now64(9)) AS age_s
FROM $table WHERE ProjectId IN {projects:Array(String)}
"""


def _table(project_ids: list[str]) -> list[Check]:
    columns = schema.existing_columns()
    name = _("%(table)s present") % {"table": f"{clickhouse.database()}.otel_traces"}
    if not columns:
        return [Check("table", name, False, _("the table does not exist"), HINT_TABLE)]
    row = clickhouse.query_one(
        SPANS_SQL.replace("$table", schema.table(schema.SPANS)), {"projects": project_ids}, tag="health.spans"
    )
    spans = int(row.get("spans") or 0)
    detail = ngettext("%(count)s span in your projects", "%(count)s spans in your projects", spans) % {
        "count": display.count(spans)
    }
    if spans:
        age = int(row.get("age_s") or 0)
        newest = timezone.localtime(from_nanos(int(row["newest_ns"])))
        detail += "; " + _("newest %(age)s ago (%(time)s)") % {
            "age": _age(age),
            "time": newest.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        ok = age < STALE_AFTER_SECONDS
        checks = [Check("table", name, ok, detail, "" if ok else HINT_STALE)]
    else:
        checks = [Check("table", name, False, detail, HINT_NO_SPANS)]
    needed = set(schema.TRACE_COLUMNS) | {column for column, _type, _expr in schema.derived_columns()}
    missing = sorted(needed - set(columns))
    checks.append(
        Check(
            "columns",
            _("Schema columns the dashboard needs"),
            not missing,
            _("all present") if not missing else _("missing: %(columns)s") % {"columns": ", ".join(missing)},
            "" if not missing else HINT_COLUMNS,
        )
    )
    return checks


def _age(seconds: int) -> str:
    """A short age: "3 d", "5 h", "12 min", "40 s"."""
    seconds = max(seconds, 0)
    for unit, size in ((_("%(n)s d"), 86400), (_("%(n)s h"), 3600), (_("%(n)s min"), 60)):
        if seconds >= size:
            return unit % {"n": seconds // size}
    return _("%(n)s s") % {"n": seconds}


def _litellm(staff: bool) -> Check:
    url = settings.LITELLM_BASE_URL.rstrip("/") + "/health/liveliness"
    shown = url if staff else "/health/liveliness"
    name = _("LiteLLM gateway")
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read(200).decode(errors="replace")
        return Check("litellm", name, True, f"{shown}: {response.status} {json.dumps(body.strip())}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Check("litellm", name, False, f"{shown}: {exc if staff else _('not answering')}", HINT_LITELLM)


def _spool() -> Check | None:
    from monitoring.ingest import batcher

    name = _("Ingest spool")
    stats = batcher.spool_stats()
    if stats is None:
        return Check("spool", name, True, _("disabled (INGEST_SPOOL_MAX_MB=0): an outage answers 503 to senders"))
    if stats.empty:
        return Check("spool", name, True, _("empty: every received span is stored"))
    size = f"{stats.bytes / 1048576:.1f} MiB" if stats.bytes >= 1048576 else f"{max(1, stats.bytes // 1024)} KiB"
    batches = ngettext("%(count)s batch", "%(count)s batches", stats.batches) % {"count": display.count(stats.batches)}
    detail = _("%(batches)s (%(spans)s spans, %(size)s) waiting to be stored; the oldest has waited %(age)s") % {
        "batches": batches,
        "spans": display.count(stats.spans),
        "size": size,
        "age": _age(int(stats.oldest_age_s)),
    }
    # Under heavy ingest the write-behind queue holds a second's batches (monitoring/ingest/batcher.py):
    # that is the spool working, not an outage.
    writer = batcher.writer()
    queue_only = bool(writer.write_behind_rate) and not writer.spooling and stats.oldest_age_s < QUEUE_SECONDS
    return Check("spool", name, queue_only, detail, "" if queue_only else HINT_SPOOL)


def _settler(project_ids: list[str] | None) -> Check:
    """The settler's last pass and the spans waiting for it (`project_ids`' only, None: all)."""
    from monitoring.semantics import scoping

    name = _("Settler")
    through, now = scoping.state()
    waiting = scoping.waiting_spans(through, project_ids)
    waits = (
        ngettext("%(count)s span waiting", "%(count)s spans waiting", waiting) % {"count": display.count(waiting)}
        if waiting
        else _("nothing waiting")
    )
    if not through:
        ok = not waiting
        return Check("settler", name, ok, _("no pass yet") + "; " + waits, "" if ok else HINT_SETTLER)
    age = max(0, (now - through) // 10**9)
    ok = age <= scoping.STALE_AFTER_SECONDS
    detail = _("last pass %(age)s ago") % {"age": _age(age)} + "; " + waits
    return Check("settler", name, ok, detail, "" if ok else HINT_SETTLER)


def _monitors(project_ids: list[str], staff: bool) -> list[Check]:
    from monitoring.monitors import health as monitor_health

    return [
        Check(f"monitor-{p.kind}", _("Monitor: %(name)s") % {"name": p.subject}, False, str(p.detail), url=p.url)
        for p in monitor_health.delivery_problems(project_ids, staff=staff)
    ]


def _judges(project_ids: list[str]) -> list[Check]:
    """A line per project with LLM judges: today's calls, failures and cost against the daily cap."""
    from monitoring.models import Project
    from monitoring.quality import judges
    from monitoring.quality.models import Evaluator

    checks = []
    with_judges = Evaluator.objects.filter(project_id__in=project_ids).values_list("project_id", flat=True)
    for project in Project.objects.filter(pk__in=set(with_judges)).order_by("name"):
        t = judges.today(project)
        detail = _(
            "%(enabled)s enabled; today (UTC) %(calls)s calls, %(failed)s failed, %(cost)s of the %(cap)s daily cap"
        ) % {
            "enabled": display.count(t.enabled),
            "calls": display.count(t.calls),
            "failed": display.count(t.failed),
            "cost": display.usd(t.cost_usd),  # the digits a tiny cost needs, as everywhere
            "cap": display.usd(t.cap_usd),
        }
        if t.waiting:
            detail += "; " + ngettext(
                "%(count)s target waits for a retry", "%(count)s targets wait for a retry", t.waiting
            ) % {"count": display.count(t.waiting)}
        stopped = {
            "operator": _("stopped by the operator (JUDGES_ENABLED=off)"),
            "project": _("switched off for this project"),
            "cap": _("the daily cost cap is reached"),
        }.get(t.stopped)
        if stopped:
            detail += "; " + stopped
        checks.append(
            Check(
                f"judges-{project.pk}",
                _("LLM judges: %(project)s") % {"project": project.name},
                not stopped and not t.waiting,
                detail,
                url=reverse("monitoring:quality:judges", args=[project.pk]),
            )
        )
    return checks


def run_checks(project_ids: list[str], staff: bool = False) -> list[Check]:
    """The checks in the stack's order (ClickHouse, the tables, the settler, ...). `staff` also see where the services live (hosts, ports,
    URLs) and ClickHouse's own error messages; others get an error id to quote."""
    try:
        checks = [_clickhouse(staff), *_table(project_ids), _settler(None if staff else project_ids)]
    except clickhouse.ClickHouseError as exc:
        hint = HINT_CLICKHOUSE if exc.retryable else HINT_TABLE
        if staff:
            detail = f"{exc.kind}: {exc}"
        else:  # ClickHouse's own words name hosts and internals: into the log, with an id to quote
            error_id = secrets.token_hex(4)
            log.warning("health check error %s: ClickHouse %s: %s", error_id, exc.kind, exc)
            detail = _("%(kind)s (error id %(id)s; an administrator finds the details in the portal's log)") % {
                "kind": exc.kind,
                "id": error_id,
            }
        checks = [Check("clickhouse", _("ClickHouse reachable"), False, detail, hint)]
    spool = _spool()
    if spool is not None:
        checks.append(spool)
    if settings.LITELLM_CONFIGURED:
        checks.append(_litellm(staff))
    checks += _monitors(project_ids, staff)
    try:
        checks += _judges(project_ids)
    except clickhouse.ClickHouseError:
        pass  # the ClickHouse line above already says what is wrong
    return checks
