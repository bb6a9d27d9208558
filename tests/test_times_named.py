"""Every time written with a zone names the zone it is really in, in the top bar's form
("KST (UTC+09:00)"): monitor pages, the Health page's monitor problems, Slack, webhook and e-mail
texts (issue 21: "evaluated 21:35:53 UTC" was Seoul time)."""

import datetime as dt

import pytest
from django.core import mail

from monitoring.models import UserPreference
from monitoring.monitors import channels, health
from monitoring.monitors.models import Alert, Channel, Event, Monitor
from monitoring.web import preferences

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 12, 7, 12, 35, 53, tzinfo=dt.UTC)  # 21:35:53 in Seoul


def zone(user, name):
    UserPreference.objects.update_or_create(user=user, defaults={"time_zone": name, "time_zone_chosen": True})


@pytest.fixture
def fired(project, alice):
    m = Monitor.objects.create(
        project=project, name="spend", metric="cost_usd", threshold=1.0, last_evaluated_at=AT, last_value=2.5
    )
    alert = Alert.objects.create(monitor=m, group="", value=2.5, last_value=2.5, opened_at=AT)
    event = Event.objects.create(
        monitor=m,
        alert=alert,
        kind=Event.FIRED,
        at=AT,
        value=2.5,
        sample=1,
        window_start=AT - dt.timedelta(minutes=5),
        window_end=AT,
    )
    return m, event


def test_the_helper_names_the_zone_as_the_top_bar_does():
    assert preferences.local_time(AT, "Y-m-d H:i:s", "Asia/Seoul") == "2026-12-07 21:35:53 KST (UTC+09:00)"
    assert preferences.local_time(AT, "H:i", "UTC") == "12:35 UTC"
    assert preferences.zone_label("Asia/Seoul", AT) == "KST (UTC+09:00)"
    # A summer time is named by the offset of that instant, not of today.
    july = dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    assert preferences.local_time(july, "H:i", "America/Los_Angeles") == "05:00 PDT (UTC-07:00)"
    assert preferences.local_time(None) == ""


def test_monitor_pages_name_the_viewers_zone_not_utc(client, alice, project, fired):
    m, _event = fired
    zone(alice, "Asia/Seoul")
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}/monitors/{m.pk}/"
    html = client.get(base).content.decode()
    assert "evaluated 2026-12-07 21:35:53 KST (UTC+09:00)" in html
    assert "(UTC)" not in html and "21:35:53 UTC" not in html
    assert 'Since <span class="muted" data-zone>KST (UTC+09:00)</span>' in html
    assert 'title="2026-12-07 21:35:53 KST (UTC+09:00)"' in html  # the alert's opening
    history = client.get(base + "history").content.decode()
    assert "When (UTC)" not in history and 'When <span class="muted" data-zone>KST (UTC+09:00)</span>' in history
    zone(alice, "UTC")
    assert "evaluated 2026-12-07 12:35:53 UTC" in client.get(base).content.decode()


def test_muting_says_until_when_in_the_viewers_zone(client, alice, project, fired):
    m, _event = fired
    zone(alice, "Asia/Seoul")
    client.force_login(alice)
    r = client.post(f"/admin/monitoring/{project.id}/monitors/{m.pk}/mute", {"minutes": "60"}, follow=True)
    html = r.content.decode()
    assert "KST (UTC+09:00)" in html and " UTC." not in html and "UTC:" not in html
    m.refresh_from_db()
    local = m.muted_until.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert f"Muted until {local:%Y-%m-%d %H:%M} KST (UTC+09:00)" in html


def test_notifications_write_times_in_the_creators_zone(project, alice, fired, settings):
    _m, event = fired
    zone(alice, "Asia/Seoul")
    c = Channel.objects.create(project=project, name="ops", kind=Channel.EMAIL, recipients="a@example.com")
    c.created_by = alice
    c.save()
    n = channels.notification(event, c)
    assert dict(n.fields)["Window"] == "2026-12-07 21:30 – 21:35 KST (UTC+09:00)"
    assert channels.webhook_body(n)["fields"][-2] == {
        "label": "Window",
        "value": "2026-12-07 21:30 – 21:35 KST (UTC+09:00)",
    }
    slack = channels.slack_body(n)
    assert any("21:30 – 21:35 KST (UTC+09:00)" in f["text"] for f in slack["blocks"][2]["fields"])
    channels.email_message(n, ["a@example.com"]).send()
    assert "Window: 2026-12-07 21:30 – 21:35 KST (UTC+09:00)" in mail.outbox[-1].body
    # Without a creator: the portal's default zone, named the same way.
    settings.PORTAL_TIME_ZONE = "UTC"
    c.created_by = None
    c.save()
    assert dict(channels.notification(event, c).fields)["Window"] == "2026-12-07 12:30 – 12:35 UTC"


def test_the_health_pages_stale_monitor_names_the_viewers_zone(project, fired):
    m, _event = fired
    from django.utils import timezone

    with timezone.override("Asia/Seoul"):
        [problem] = [p for p in health.delivery_problems([project.id]) if p.kind == "evaluator_stale"]
    assert "2026-12-07 21:35 KST (UTC+09:00)" in problem.detail and "UTC)?" not in problem.detail
