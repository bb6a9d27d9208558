"""Where notifications go: Slack (incoming webhook, Block Kit), a signed JSON webhook, email.

Texts are written in the channel's language (its own choice, else its creator's) with Django's
gettext under `translation.override`. `send` raises DeliveryError, worded without the channel's
URL (the URL is the credential of a Slack or webhook channel).

Webhook signature (documented in README "Monitors"): header
    X-Monitoring-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>
The timestamp inside the signed text lets a receiver refuse replays (e.g. older than 5 minutes).
Slack's message format: https://api.slack.com/reference/block-kit/blocks (header, section,
actions, context blocks; `text` is the notification fallback). Text from spans (end users, models,
services) is untrusted: Slack's mrkdwn control characters are escaped in the fallback and in every
mrkdwn block (https://api.slack.com/reference/surfaces/formatting#escaping); the webhook is JSON;
email is plain text. Slack and webhook requests go through `egress` (no internal addresses).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from monitoring.models import UserPreference
from monitoring.monitors import egress, sealing, wording
from monitoring.monitors.models import Channel, Event, Monitor
from monitoring.web import preferences

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Monitoring-Signature"
EVENT_HEADER = "X-Monitoring-Event"
USER_AGENT = "agent-portal-monitoring/monitors"


class DeliveryError(Exception):
    """The channel did not take the notification (network, HTTP status, SMTP, a lost secret)."""


@dataclass
class Notification:
    kind: str  # "fired", "resolved" or "test"
    language: str
    title: str
    summary: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    monitor_url: str = ""
    dashboard_url: str = ""
    data: dict = field(default_factory=dict)  # the machine-readable part of the webhook body


def _absolute(path: str) -> str:
    return f"{settings.PORTAL_BASE_URL}{path}" if path else ""


def _monitor_path(monitor: Monitor) -> str:
    return reverse("monitoring:monitors:detail", args=[monitor.project_id, monitor.pk])


def notification(event: Event, channel: Channel) -> Notification:
    """The notification of a fired or resolved event, in the channel's language."""
    monitor = event.monitor
    language = channel.notify_language()
    zone = notify_zone(channel)
    with translation.override(language):
        who = wording.group_label(monitor, event.group)
        metric = str(dict(_metric_labels())[monitor.metric])
        if monitor.scores:  # which score: "Average score (relevance)"
            metric += f" ({monitor.score_name or _('every evaluation')})"
        value = wording.value(monitor.metric, event.value)
        if event.kind == Event.FIRED:
            title = _("Firing: %(monitor)s") % {"monitor": monitor.name}
            summary = (
                _("%(who)s: %(metric)s is %(value)s") % {"who": who, "metric": metric, "value": value}
                if who
                else _("%(metric)s is %(value)s") % {"metric": metric, "value": value}
            )
        else:
            title = _("Resolved: %(monitor)s") % {"monitor": monitor.name}
            summary = (
                _("%(who)s: %(metric)s is back to %(value)s") % {"who": who, "metric": metric, "value": value}
                if who
                else _("%(metric)s is back to %(value)s") % {"metric": metric, "value": value}
            )
        fields = [
            (_("Rule"), wording.rule(monitor)),
            (_("Value"), value),
        ]
        if monitor.compares:
            fields.append((_("Previous window"), wording.value(monitor.metric, event.previous)))
        fields += [
            (_("Sample"), f"{event.sample or 0:,}"),
            (_("Window"), _window(event.window_start, event.window_end, zone)),
            (_("Project"), monitor.project.name),
        ]
    return Notification(
        kind=event.kind,
        language=language,
        title=title,
        summary=summary,
        fields=fields,
        monitor_url=_absolute(_monitor_path(monitor)),
        dashboard_url=_absolute(event.dashboard_url()),
        data={
            "type": f"monitor.{event.kind}",
            "event_id": event.pk,
            "at": event.at.isoformat(),
            "project": {"id": str(monitor.project_id), "name": monitor.project.name},
            "monitor": {
                "id": monitor.pk,
                "name": monitor.name,
                "metric": monitor.metric,
                "group_by": monitor.group_by,
                "condition": monitor.condition,
                "threshold": monitor.threshold,
                "window_minutes": monitor.window_minutes,
                "min_samples": monitor.min_samples,
                **({"score_name": monitor.score_name} if monitor.scores else {}),
            },
            "group": event.group,
            "value": event.value,
            "previous": event.previous,
            "sample": event.sample,
            "window": {
                "from": event.window_start.isoformat() if event.window_start else None,
                "to": event.window_end.isoformat() if event.window_end else None,
            },
        },
    )


def test_notification(channel: Channel) -> Notification:
    with translation.override(channel.notify_language()):
        return Notification(
            kind="test",
            language=channel.notify_language(),
            title=_("Test notification from Agent Portal Monitoring"),
            summary=_("Channel “%(channel)s” of project %(project)s works.")
            % {"channel": channel.name, "project": channel.project.name},
            monitor_url=_absolute(reverse("monitoring:monitors:list", args=[channel.project_id])),
            data={
                "type": "monitor.test",
                "at": timezone.now().isoformat(),
                "project": {"id": str(channel.project_id), "name": channel.project.name},
            },
        )


def _metric_labels():
    from monitoring.monitors.models import METRICS

    return METRICS


def notify_zone(channel: Channel) -> str:
    """The zone a channel's texts write times in: its creator's (their preference), else the
    portal's default (settings.PORTAL_TIME_ZONE)."""
    pref = UserPreference.objects.filter(user_id=channel.created_by_id).first() if channel.created_by_id else None
    return preferences.valid_zone(pref.time_zone if pref else None) or settings.PORTAL_TIME_ZONE


def _window(start, end, zone: str) -> str:
    """ "2026-12-07 21:30 – 21:35 KST (UTC+09:00)": the end's date only when it is another day;
    the zone named as the top bar names it (preferences.local_time)."""
    if not start or not end:
        return "–"
    local = start.astimezone(zoneinfo.ZoneInfo(zone))
    same_day = local.date() == end.astimezone(local.tzinfo).date()
    return f"{local:%Y-%m-%d %H:%M} – {preferences.local_time(end, 'H:i' if same_day else 'Y-m-d H:i', zone)}"


# --- bodies -------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn control characters; span data (user ids, model names) is untrusted text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(n: Notification) -> dict:
    """A Block Kit message: header, summary, fields, buttons to the monitor and the dashboard."""
    with translation.override(n.language):
        icon = {"fired": "🔴", "resolved": "✅"}.get(n.kind, "🔔")
        blocks: list[dict] = [
            {"type": "header", "text": {"type": "plain_text", "text": f"{icon} {n.title}"[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(n.summary)}},
        ]
        if n.fields:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{_slack_escape(label)}*\n{_slack_escape(value)}"}
                        for label, value in n.fields[:10]  # Slack's limit per section
                    ],
                }
            )
        buttons = []
        if n.monitor_url:
            buttons.append(
                {"type": "button", "text": {"type": "plain_text", "text": _("Open monitor")}, "url": n.monitor_url}
            )
        if n.dashboard_url:
            buttons.append(
                {"type": "button", "text": {"type": "plain_text", "text": _("Open dashboard")}, "url": n.dashboard_url}
            )
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Agent Portal Monitoring"}]})
    # The fallback text is mrkdwn too (notifications, clients without blocks): escaped like the blocks.
    return {"text": _slack_escape(f"{n.title}: {n.summary}"), "blocks": blocks}


def webhook_body(n: Notification, delivery_id: int | None = None) -> dict:
    return {
        **n.data,
        "delivery_id": delivery_id,
        "language": n.language,
        "title": n.title,
        "text": n.summary,
        "fields": [{"label": label, "value": value} for label, value in n.fields],
        "monitor_url": n.monitor_url,
        "dashboard_url": n.dashboard_url,
    }


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Monitoring-Signature value for a body: "t=<unix>,v1=<hex HMAC-SHA256>"."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """A receiver's check of X-Monitoring-Signature (what README shows; the tests use it)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_seconds:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def email_message(n: Notification, recipients: list[str]) -> mail.EmailMessage:
    with translation.override(n.language):
        lines = [n.summary, ""]
        lines += [f"{label}: {value}" for label, value in n.fields]
        lines.append("")
        open_monitor, open_dashboard, brand = _("Open monitor"), _("Open dashboard"), _("Monitoring")
        if n.monitor_url:
            lines.append(f"{open_monitor}: {n.monitor_url}")
        if n.dashboard_url:
            lines.append(f"{open_dashboard}: {n.dashboard_url}")
        subject = f"[{brand}] {n.title}"
    return mail.EmailMessage(subject=subject, body="\n".join(lines), to=recipients)


# --- sending ------------------------------------------------------------------------------------


def _post_json(url: str, body: bytes, headers: dict[str, str]) -> None:
    # Only to addresses on the internet (or the operator's allowed ones), no redirects: egress.
    try:
        egress.post(
            url, body, {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}, TIMEOUT_SECONDS
        )
    except (egress.Refused, egress.Failed) as exc:
        raise DeliveryError(str(exc)) from None


def send(channel: Channel, n: Notification, delivery_id: int | None = None) -> None:
    """Deliver `n` through `channel`. Raises DeliveryError."""
    try:
        if channel.kind == Channel.SLACK:
            _post_json(channel.url(), json.dumps(slack_body(n)).encode(), {})
        elif channel.kind == Channel.WEBHOOK:
            body = json.dumps(webhook_body(n, delivery_id), separators=(",", ":")).encode()
            headers = {EVENT_HEADER: n.data.get("type", "")}
            if channel.has_secret:
                headers[SIGNATURE_HEADER] = sign(channel.secret(), body)
            _post_json(channel.url(), body, headers)
        elif channel.kind == Channel.EMAIL:
            recipients = channel.recipient_list()
            if not recipients:
                raise DeliveryError(_("no recipients"))
            try:
                email_message(n, recipients).send(fail_silently=False)
            except (smtplib.SMTPException, OSError) as exc:
                raise DeliveryError(f"SMTP: {exc}") from None
        else:
            raise DeliveryError(f"unknown channel kind {channel.kind!r}")
    except sealing.Unsealable:
        raise DeliveryError(_("the channel's secret was sealed with another SECRET_KEY: enter it again")) from None
