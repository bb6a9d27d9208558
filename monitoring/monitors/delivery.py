"""Sending notifications: one Delivery per (event, channel), attempted when due, retried with backoff.

Attempt n+1 waits BACKOFF_SECONDS[n] after attempt n fails; after MAX_ATTEMPTS the delivery is
"failed" for good. Every failure is kept on the delivery and on its channel (last_error,
last_failure_at), where the monitor page and the health page (monitors.health) show it: the detail
(HTTP status, network or TLS error, a refused address) to staff only, everyone else reads one
neutral text (`shown_error`), since the detail of a request aimed anywhere would map the portal's
network (issue 22).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from monitoring.monitors import channels
from monitoring.monitors.models import Channel, Delivery, Event

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (30, 120, 600, 1800)  # after the 1st, 2nd, 3rd, 4th failure
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
# How long a claimed delivery is left to its sender: well past any channel's timeout (EMAIL_TIMEOUT
# is at most 300 s), so no second sender takes it while the first may still be sending.
SENDING_SECONDS = 600


def shown_error(error: str, staff: bool) -> str:
    """What a viewer reads of a delivery's failure `error` (as stored): the error itself for staff
    (is_staff), one neutral text in the active language for anyone else; '' for no error."""
    if not error:
        return ""
    return error if staff else _("delivery failed")


def enqueue(event: Event, to: list[Channel], now: dt.datetime | None = None) -> list[Delivery]:
    now = now or timezone.now()
    return [Delivery.objects.create(event=event, channel=c, next_attempt_at=now, created=now) for c in to]


def attempt(item: Delivery, now: dt.datetime | None = None) -> bool:
    """Send one delivery now; True when the channel took it. Never raises for a channel's fault."""
    now = now or timezone.now()
    channel = item.channel
    try:
        channels.send(channel, channels.notification(item.event, channel), delivery_id=item.pk)
    except channels.DeliveryError as exc:
        item.attempts += 1
        item.last_error = str(exc)[:500]
        if item.attempts >= MAX_ATTEMPTS:
            item.state = Delivery.FAILED
        else:
            item.next_attempt_at = now + dt.timedelta(seconds=BACKOFF_SECONDS[item.attempts - 1])
        item.save(update_fields=["attempts", "last_error", "state", "next_attempt_at"])
        Channel.objects.filter(pk=channel.pk).update(last_failure_at=now, last_error=item.last_error)
        log.warning(
            "monitors: delivery %s to channel %s failed (attempt %s/%s): %s",
            item.pk,
            channel.pk,
            item.attempts,
            MAX_ATTEMPTS,
            item.last_error,
        )
        return False
    item.attempts += 1
    item.state, item.sent_at, item.last_error = Delivery.SENT, now, ""
    item.save(update_fields=["attempts", "state", "sent_at", "last_error"])
    Channel.objects.filter(pk=channel.pk).update(last_success_at=now)
    return True


def deliver_due(now: dt.datetime | None = None, limit: int = 200) -> list[Delivery]:
    """Attempt every pending delivery whose time has come (oldest first) that this process claims;
    returns those it attempted.

    A claim moves the delivery's `next_attempt_at` SENDING_SECONDS on in one conditional UPDATE, so of
    several evaluators exactly one sends it (the others find it no longer due); the attempt then
    sets the delivery's real state. A process killed while sending leaves it to be tried again then."""
    now = now or timezone.now()
    due = Q(state=Delivery.PENDING, next_attempt_at__lte=now)
    claimed = now + dt.timedelta(seconds=SENDING_SECONDS)
    mine = [
        item
        for item in Delivery.objects.filter(due)
        .select_related("channel__project", "event__monitor__project")
        .order_by("next_attempt_at", "id")[:limit]
        if Delivery.objects.filter(due, pk=item.pk).update(next_attempt_at=claimed)
    ]
    for item in mine:
        attempt(item, now)
    return mine


def send_test(channel: Channel) -> str:
    """Send a test notification right now; '' when it went through, else what went wrong (the
    detail: show it through `shown_error`). Records the outcome on the channel like a real delivery."""
    now = timezone.now()
    try:
        channels.send(channel, channels.test_notification(channel))
    except channels.DeliveryError as exc:
        Channel.objects.filter(pk=channel.pk).update(last_failure_at=now, last_error=str(exc)[:500])
        return str(exc)
    Channel.objects.filter(pk=channel.pk).update(last_success_at=now)
    return ""
