"""What the Health page shows about monitors: plain data, no HTML (the Health view renders it).

    delivery_problems(project_ids, staff=False) -> list[Problem]

Problems: a channel whose last delivery failed, deliveries that gave up in the last day,
monitors whose evaluation fails (ClickHouse), and enabled monitors nobody has evaluated for
STALE_AFTER (the evaluator is not running: no embedded server, no `run_monitors --loop`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from monitoring.monitors.delivery import shown_error
from monitoring.monitors.models import Channel, Delivery, Monitor
from monitoring.web import preferences

STALE_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Problem:
    kind: str  # "channel_failing", "deliveries_failed", "evaluation_failing", "evaluator_stale"
    project_id: str
    subject: str  # the channel's or monitor's name
    detail: str  # what went wrong, in the active language
    url: str  # the page to act on
    since: dt.datetime | None = None


def delivery_problems(project_ids, now: dt.datetime | None = None, staff: bool = False) -> list[Problem]:
    """Problems in these projects (ids or Project objects the viewer is a member of), worst first.
    A delivery's error is told to `staff` only; others read a neutral text (delivery.shown_error)."""
    now = now or timezone.now()
    ids = [str(getattr(p, "pk", p)) for p in project_ids]
    problems: list[Problem] = []
    for channel in (
        Channel.objects.filter(project_id__in=ids).exclude(last_failure_at=None).order_by("-last_failure_at")
    ):
        if channel.failing:
            problems.append(
                Problem(
                    "channel_failing",
                    str(channel.project_id),
                    channel.name,
                    _("Last delivery failed: %(error)s") % {"error": channel.last_error}
                    if staff
                    else _("The last delivery failed."),
                    reverse("monitoring:monitors:channels", args=[channel.project_id]),
                    channel.last_failure_at,
                )
            )
    gave_up = (
        Delivery.objects.filter(
            channel__project_id__in=ids, state=Delivery.FAILED, created__gte=now - dt.timedelta(days=1)
        )
        .select_related("channel", "event__monitor")
        .order_by("-created")
    )
    for item in gave_up[:20]:
        monitor = item.event.monitor
        problems.append(
            Problem(
                "deliveries_failed",
                str(monitor.project_id),
                monitor.name,
                _("A notification to %(channel)s was given up after %(attempts)s attempts: %(error)s")
                % {
                    "channel": item.channel.name,
                    "attempts": item.attempts,
                    "error": shown_error(item.last_error, staff),
                },
                reverse("monitoring:monitors:detail", args=[monitor.project_id, monitor.pk]),
                item.created,
            )
        )
    for monitor in Monitor.objects.filter(project_id__in=ids, enabled=True):
        url = reverse("monitoring:monitors:detail", args=[monitor.project_id, monitor.pk])
        if monitor.last_error:
            problems.append(
                Problem("evaluation_failing", str(monitor.project_id), monitor.name, monitor.last_error, url)
            )
        reference = monitor.last_evaluated_at or monitor.created
        if now - reference > STALE_AFTER:
            problems.append(
                Problem(
                    "evaluator_stale",
                    str(monitor.project_id),
                    monitor.name,
                    _(
                        "Not evaluated since %(since)s: is the monitors loop running "
                        "(the embedded server, or `manage.py run_monitors --loop`)?"
                    )
                    % {"since": preferences.local_time(reference)},
                    url,
                    reference,
                )
            )
    return problems
