"""Channels against real servers started here: Slack-shaped and signed webhook bodies over HTTP,
email over SMTP (aiosmtpd); languages; retries with backoff; failures reported; secrets sealed."""

import datetime as dt
import json

import pytest
from monitor_data import llm_call, now
from otlp import send
from receivers import dead_url, http_receiver, smtp_server

from monitoring.models import Project
from monitoring.monitors import channels, delivery, evaluation, health
from monitoring.monitors.models import Channel, Delivery, Monitor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings):
    """The receivers here listen on loopback, which channels reach only when the operator allows it."""
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def channel(project, kind, url="", **kw) -> Channel:
    c = Channel(project=project, name=kw.pop("name", kind), kind=kind, **kw)
    if url:
        c.set_url(url)
    c.save()
    return c


def firing_monitor(client, project, ingest_key, *chans, **kw) -> Monitor:
    fields = {"name": "Spend per user", "metric": "cost_usd", "group_by": "user", "threshold": 1.0}
    m = Monitor.objects.create(project=project, **(fields | kw))
    m.channels.add(*chans)
    send(client, ingest_key, llm_call(user="ann", cost=2.5))
    return m


def test_slack_gets_a_block_kit_message(client, project, ingest_key, settings):
    settings.PORTAL_BASE_URL = "https://monitor.example.com"
    with http_receiver() as slack:
        c = channel(project, Channel.SLACK, slack.url + "/services/T0/B0/secret")
        m = firing_monitor(client, project, ingest_key, c)
        evaluation.run_once()
    [got] = slack.received
    assert got.path == "/services/T0/B0/secret" and got.headers["content-type"] == "application/json"
    body = json.loads(got.body)
    assert body["text"].startswith("Firing: Spend per user")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "section", "actions", "context"]
    assert body["blocks"][1]["text"]["text"] == "end user ann: Cost (USD) is $2.50"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][2]["fields"]}
    assert fields["*Value*"] == "$2.50" and fields["*Sample*"] == "1"
    urls = [e["url"] for e in body["blocks"][3]["elements"]]
    assert urls[0] == f"https://monitor.example.com/admin/monitoring/{project.id}/monitors/{m.pk}/"
    assert urls[1].startswith(f"https://monitor.example.com/admin/monitoring/{project.id}/analytics/?from=")


def test_the_webhook_body_is_signed(client, project, ingest_key):
    with http_receiver() as hook:
        c = channel(project, Channel.WEBHOOK, hook.url + "/alerts")
        c.set_secret("whsec_test")
        c.save()
        firing_monitor(client, project, ingest_key, c)
        evaluation.run_once()
    [got] = hook.received
    signature = got.headers["x-monitoring-signature"]
    assert channels.verify("whsec_test", got.body, signature)
    assert not channels.verify("another secret", got.body, signature)
    assert not channels.verify("whsec_test", got.body.replace(b"ann", b"bob"), signature)
    # What a receiver does by hand (README): HMAC-SHA256 over "<t>." + the raw body.
    import hashlib
    import hmac

    t, v1 = (part.split("=", 1)[1] for part in signature.split(","))
    assert hmac.new(b"whsec_test", f"{t}.".encode() + got.body, hashlib.sha256).hexdigest() == v1
    body = json.loads(got.body)
    assert body["type"] == "monitor.fired" and body["group"] == "ann" and body["value"] == 2.5
    assert body["monitor"]["metric"] == "cost_usd" and body["project"]["id"] == str(project.id)
    assert body["delivery_id"] == Delivery.objects.get().pk


def test_email_arrives_over_smtp_in_korean(client, project, ingest_key, settings):
    with smtp_server() as (port, inbox):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        ko = channel(project, Channel.EMAIL, recipients="oncall@example.com, lead@example.com", language="ko")
        en = channel(project, Channel.EMAIL, name="en", recipients="ops@example.com", creator_language="en")
        firing_monitor(client, project, ingest_key, ko, en)
        evaluation.run_once()
    assert len(inbox) == 2
    by_to = {msg["X-Envelope-To"]: msg for msg in inbox}
    korean = by_to["oncall@example.com, lead@example.com"]
    assert korean["Subject"] == "[모니터링] 발생: Spend per user"
    text = korean.get_content()
    assert "최종 사용자 ann: 비용 (USD) 값 $2.50" in text
    english = by_to["ops@example.com"]
    assert english["Subject"] == "[Monitoring] Firing: Spend per user"
    assert "end user ann: Cost (USD) is $2.50" in english.get_content()


def test_a_dead_channel_is_retried_with_backoff_and_reported(client, project, ingest_key, alice):
    dead = channel(project, Channel.WEBHOOK, dead_url(), name="pager")
    m = firing_monitor(client, project, ingest_key, dead)
    t = now()
    evaluation.run_once(t)
    item = Delivery.objects.get()
    assert (item.state, item.attempts) == ("pending", 1) and "unreachable" in item.last_error
    assert item.next_attempt_at == t + dt.timedelta(seconds=delivery.BACKOFF_SECONDS[0])
    assert delivery.deliver_due(t + dt.timedelta(seconds=10)) == []  # not due yet
    waits = []
    for _ in range(2, delivery.MAX_ATTEMPTS + 1):  # each retry when due, after a longer wait
        before = item.next_attempt_at
        assert len(delivery.deliver_due(before)) == 1
        item.refresh_from_db()
        if item.state == "pending":
            waits.append((item.next_attempt_at - before).total_seconds())
    assert waits == list(delivery.BACKOFF_SECONDS[1:])
    assert (item.state, item.attempts) == ("failed", delivery.MAX_ATTEMPTS)
    assert delivery.deliver_due(item.next_attempt_at + dt.timedelta(days=1)) == []  # given up for good

    client.force_login(alice)
    page = client.get(f"/admin/monitoring/{project.id}/monitors/{m.pk}/").content.decode()
    assert "Notifications not delivered" in page and "pager: delivery failed" in page
    assert "unreachable" not in page  # the detail is for staff (test_hardening_channels)
    assert f"gave up after {delivery.MAX_ATTEMPTS} attempts" in page
    problems = health.delivery_problems([project])
    kinds = {p.kind for p in problems}
    assert {"channel_failing", "deliveries_failed"} <= kinds
    assert all(p.project_id == str(project.id) for p in problems)
    assert health.delivery_problems([Project.objects.create(name="other")]) == []

    # The channel comes back: the next delivery goes through and the channel is no longer failing.
    with http_receiver() as hook:
        dead.set_url(hook.url)
        dead.save()
        assert delivery.send_test(dead) == ""
    dead.refresh_from_db()
    assert not dead.failing and len(hook.received) == 1
    assert json.loads(hook.received[0].body)["type"] == "monitor.test"


def test_a_retry_that_succeeds_marks_the_delivery_sent(client, project, ingest_key):
    with http_receiver(status=503) as hook:
        c = channel(project, Channel.SLACK, hook.url)
        firing_monitor(client, project, ingest_key, c)
        t = now()
        evaluation.run_once(t)
        item = Delivery.objects.get()
        assert item.state == "pending" and item.last_error == "HTTP 503 Service Unavailable"
        hook.status = 200
        delivery.deliver_due(item.next_attempt_at)
        item.refresh_from_db()
    assert (item.state, item.attempts) == ("sent", 2) and len(hook.received) == 2


def test_secrets_are_sealed_and_never_shown_back(client, project, alice):
    client.force_login(alice)
    url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
    r = client.post(
        f"/admin/monitoring/{project.id}/monitors/channels/new",
        {"name": "ops", "kind": "slack", "url": url, "language": "ko"},
    )
    assert r.status_code == 302
    c = Channel.objects.get(name="ops")
    assert url not in c.url_sealed and "XXXXsecret" not in c.url_sealed and c.url() == url
    assert c.url_hint == "https://hooks.slack.com/…XXXX"
    for page in (
        f"/admin/monitoring/{project.id}/monitors/channels/",
        f"/admin/monitoring/{project.id}/monitors/channels/{c.pk}/edit",
    ):
        html = client.get(page).content.decode()
        assert "XXXXsecret" not in html and "services/T000" not in html
    # An edit that leaves the URL empty keeps it.
    r = client.post(f"/admin/monitoring/{project.id}/monitors/channels/{c.pk}/edit", {"name": "ops2", "language": "en"})
    assert r.status_code == 302
    c.refresh_from_db()
    assert c.url() == url and c.name == "ops2" and c.language == "en"


def test_a_webhook_secret_is_generated_and_shown_once(client, project, alice):
    client.force_login(alice)
    r = client.post(
        f"/admin/monitoring/{project.id}/monitors/channels/new",
        {"name": "hook", "kind": "webhook", "url": "https://example.com/hook", "language": ""},
        follow=True,
    )
    c = Channel.objects.get(name="hook")
    secret = c.secret()
    assert secret.startswith("whsec_") and secret in r.content.decode()
    assert secret not in client.get(f"/admin/monitoring/{project.id}/monitors/channels/").content.decode()
    assert c.creator_language == "en-us" or c.creator_language.startswith("en")


def test_a_secret_sealed_with_a_lost_key_is_reported_not_sent(client, project, ingest_key, settings):
    c = channel(project, Channel.SLACK, "https://hooks.slack.com/services/x")
    settings.SECRET_KEY = "another-key-entirely-0123456789-abcdefghijklmnopqrstuvwxyz"
    assert "SECRET_KEY" in delivery.send_test(c)
    settings.SECRET_KEY_FALLBACKS = []
