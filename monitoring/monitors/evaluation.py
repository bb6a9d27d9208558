"""Evaluate monitors: ask metrics.py once per distinct question, then move each group's state.

States per group (the whole project, or one end user / model / service):
    OK --(condition holds with at least min_samples)--> firing  (Event "fired", notified once)
    firing --(holds again)--> firing                             (nothing recorded, nobody told)
    firing --(no longer holds)--> resolved = OK                  (Event "resolved", notified once)
A muted monitor still moves states (the history stays true) but its events notify nobody.
Change conditions compare with the window just before: +200 means "at least 3x the previous
window"; a previous window with a value of 0 compares with nothing and never fires.
A group below the minimum sample size does not offend (one failed call at night pages nobody).

Several evaluators may run (two `run_monitors --loop`, a serving process with BACKGROUND_JOBS=on):
the periodic job (`run_due`) evaluates a monitor only once it has claimed the monitor's period
(`claim_due`), and a delivery is sent only by the one that claimed it (delivery.deliver_due).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from monitoring.monitors import delivery, metrics
from monitoring.monitors.models import ABOVE, BELOW, DECREASE, INCREASE, Alert, Event, Monitor
from monitoring.quality.models import pass_marks
from monitoring.store import clickhouse, errors
from monitoring.web.forms import SpanFilter, Window

log = logging.getLogger(__name__)

JOB_NAME = "monitors"
EVERY_SECONDS = 60


@dataclass
class Finding:
    """One group's numbers in one evaluation."""

    value: float
    sample: int
    previous: float | None = None


@dataclass
class Outcome:
    monitor_id: int
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    error: str = ""


def windows(monitor: Monitor, now: dt.datetime) -> tuple[Window, Window]:
    """The rolling window ending at `now`, and the one before it."""
    current = Window(now - monitor.window, now)
    return current, current.previous()


def question(monitor: Monitor, window: Window) -> metrics.Question:
    flt = SpanFilter(
        str(monitor.project_id),
        window,
        tuple(monitor.services),
        tuple(monitor.model_names),
        monitor.status,
        monitor.project.agent_names,
    )
    if monitor.scores:
        return metrics.Question(
            flt,
            monitor.group_by,
            latency=False,
            scores=True,
            score_name=monitor.score_name,
            marks=tuple(pass_marks(monitor.project)),
        )
    return metrics.Question(flt, monitor.group_by, latency=monitor.metric.startswith("latency"))


def holds(monitor: Monitor, finding: Finding) -> bool:
    """Does one group's finding break the rule (the sample size aside)?"""
    value, limit = finding.value, monitor.threshold
    if monitor.condition == ABOVE:
        return value > limit
    if monitor.condition == BELOW:
        return value < limit
    if not finding.previous:  # nothing to compare with
        return False
    change = 100.0 * (value - finding.previous) / finding.previous
    if monitor.condition == INCREASE:
        return change >= limit
    if monitor.condition == DECREASE:
        return -change >= limit
    raise ValueError(f"unknown condition {monitor.condition!r}")


def findings(monitor: Monitor, current: dict[str, metrics.Values], previous: dict[str, metrics.Values] | None):
    out = {}
    for group, values in current.items():
        before = previous.get(group) if previous is not None else None
        out[group] = Finding(
            values.value(monitor.metric),
            values.sample(monitor.metric),
            before.value(monitor.metric) if before is not None else (0.0 if previous is not None else None),
        )
    return out


def offending(monitor: Monitor, found: dict[str, Finding]) -> dict[str, Finding]:
    return {g: f for g, f in found.items() if f.sample >= monitor.min_samples and holds(monitor, f)}


def _event(monitor: Monitor, kind: str, now: dt.datetime, window: Window | None, **fields) -> Event:
    muted = monitor.is_muted(now) if kind in (Event.FIRED, Event.RESOLVED) else False
    event = Event.objects.create(
        monitor=monitor,
        kind=kind,
        at=now,
        threshold=monitor.threshold,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        muted=muted,
        **fields,
    )
    if kind in (Event.FIRED, Event.RESOLVED) and not muted:
        delivery.enqueue(event, list(monitor.channels.all()), now)
    return event


def apply(monitor: Monitor, found: dict[str, Finding], window: Window, now: dt.datetime) -> Outcome:
    """Move the monitor's alerts to what `found` says; record and notify the changes."""
    outcome = Outcome(monitor.id)
    bad = offending(monitor, found)
    with transaction.atomic():
        open_alerts = {a.group: a for a in monitor.open_alerts().select_for_update()}
        for group, finding in sorted(bad.items()):
            alert = open_alerts.get(group)
            if alert is not None:  # still firing: keep quiet
                Alert.objects.filter(pk=alert.pk).update(last_value=finding.value)
                continue
            try:
                with transaction.atomic():  # a savepoint: another pass may have opened it a moment ago
                    alert = Alert.objects.create(
                        monitor=monitor, group=group, opened_at=now, value=finding.value, last_value=finding.value
                    )
            except IntegrityError:
                continue
            _event(
                monitor,
                Event.FIRED,
                now,
                window,
                alert=alert,
                group=group,
                value=finding.value,
                previous=finding.previous,
                sample=finding.sample,
            )
            outcome.fired.append(group)
        for group, alert in sorted(open_alerts.items()):
            if group in bad:
                continue
            finding = found.get(group) or Finding(0.0, 0, None)
            alert.resolved_at = now
            alert.last_value = finding.value
            alert.save(update_fields=["resolved_at", "last_value"])
            _event(
                monitor,
                Event.RESOLVED,
                now,
                window,
                alert=alert,
                group=group,
                value=finding.value,
                previous=finding.previous,
                sample=finding.sample,
            )
            outcome.resolved.append(group)
        summary = _headline(monitor, found)
        Monitor.objects.filter(pk=monitor.pk).update(
            last_evaluated_at=now,
            last_value=summary.value if summary else None,
            last_sample=summary.sample if summary else None,
            last_error="",
        )
    return outcome


def _headline(monitor: Monitor, found: dict[str, Finding]) -> Finding | None:
    """The number the list shows: the project's, or the most extreme group's."""
    if not found:
        return None
    if not monitor.group_by:
        return found.get("")
    low = monitor.condition in (BELOW, DECREASE)
    return (min if low else max)(found.values(), key=lambda f: f.value)


def _failed(monitor: Monitor, message: str, now: dt.datetime) -> Outcome:
    if not monitor.last_error:  # once per outage, not every minute
        _event(monitor, Event.ERROR, now, None, note=message)
    Monitor.objects.filter(pk=monitor.pk).update(last_error=message)
    return Outcome(monitor.id, error=message)


def evaluate(monitors: list[Monitor] | None = None, now: dt.datetime | None = None) -> list[Outcome]:
    """Evaluate the given (default: every enabled) monitors at `now`, asking each distinct question once."""
    now = now or timezone.now()
    if monitors is None:
        monitors = list(Monitor.objects.filter(enabled=True).select_related("project"))
    plan = []
    for monitor in monitors:
        current, previous = windows(monitor, now)
        asks = (question(monitor, current), question(monitor, previous) if monitor.compares else None)
        plan.append((monitor, current, asks))
    answers = metrics.measure_many(q for _, _, asks in plan for q in asks if q is not None)
    outcomes = []
    said: dict[int, str] = {}  # one error id (and log line) per failed question, not per monitor
    for monitor, window, (now_q, before_q) in plan:
        now_a = answers[now_q]
        before_a = answers[before_q] if before_q is not None else None
        if isinstance(now_a, clickhouse.ClickHouseError) or isinstance(before_a, clickhouse.ClickHouseError):
            error = now_a if isinstance(now_a, clickhouse.ClickHouseError) else before_a
            assert isinstance(error, clickhouse.ClickHouseError)
            if id(error) not in said:  # ClickHouse's own words go to the log under an id (monitoring/store/errors.py)
                said[id(error)] = f"ClickHouse {error.kind}: {errors.trouble(error).detail}"
            outcomes.append(_failed(monitor, said[id(error)], now))
            continue
        outcomes.append(apply(monitor, findings(monitor, now_a, before_a), window, now))
    return outcomes


def run_once(now: dt.datetime | None = None) -> list[Outcome]:
    """One pass: evaluate every enabled monitor now, then send what is due (`run_monitors`)."""
    outcomes = evaluate(now=now)
    delivery.deliver_due(now)
    return outcomes


def claim_due(now: dt.datetime | None = None) -> list[Monitor]:
    """The enabled monitors due at `now` that this process claimed: each one's `next_evaluation_at`
    moved to `now` + EVERY_SECONDS by one conditional UPDATE, which of several evaluators asking at
    once exactly one matches (PostgreSQL: the row lock, then the condition checked again on the row
    as the winner left it; SQLite: the database's write lock). An evaluator killed after its claim
    leaves that period unevaluated; the next period is claimed as usual. `now` is the evaluator's
    clock (windows are computed from it too), so evaluators on several hosts need synchronised
    clocks (NTP): one running ahead by seconds claims the next period as many seconds early."""
    now = now or timezone.now()
    due = Q(enabled=True) & (Q(next_evaluation_at__isnull=True) | Q(next_evaluation_at__lte=now))
    then = now + dt.timedelta(seconds=EVERY_SECONDS)
    return [
        monitor
        for monitor in Monitor.objects.filter(due).select_related("project")
        if Monitor.objects.filter(due, pk=monitor.pk).update(next_evaluation_at=then)
    ]


def run_due(now: dt.datetime | None = None) -> list[Outcome]:
    """One pass of the periodic job: evaluate the monitors whose period this process claimed, then
    send the deliveries it claims. Outcomes of this process's monitors only."""
    now = now or timezone.now()
    outcomes = evaluate(claim_due(now), now=now)
    delivery.deliver_due(now)
    return outcomes


# --- what people do to monitors ---------------------------------------------------------------


def acknowledge(alert: Alert, user, now: dt.datetime | None = None) -> bool:
    """Mark an open alert as seen by `user`; False if it was already acknowledged or resolved."""
    now = now or timezone.now()
    if not alert.is_open or alert.acknowledged_at:
        return False
    alert.acknowledged_by, alert.acknowledged_at = user, now
    alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    Event.objects.create(
        monitor=alert.monitor, alert=alert, kind=Event.ACKNOWLEDGED, at=now, group=alert.group, user=user
    )
    return True


def mute(monitor: Monitor, until: dt.datetime, user, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    monitor.muted_until = until
    monitor.save(update_fields=["muted_until", "updated"])
    Event.objects.create(monitor=monitor, kind=Event.MUTED, at=now, user=user, note=until.isoformat())


def unmute(monitor: Monitor, user, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    monitor.muted_until = None
    monitor.save(update_fields=["muted_until", "updated"])
    Event.objects.create(monitor=monitor, kind=Event.UNMUTED, at=now, user=user)
