"""Times in the viewer's zone: shown, typed (a naive From/To), sent to queries (SpanFilter.tz), and
in the API (`tz=`, ISO 8601 with offsets). Spans at fixed instants around a Seoul midnight."""

import datetime as dt

import pytest
from django.http import QueryDict
from otlp import S, post, request

from monitoring.models import UserPreference
from monitoring.queries import timeseries as timeseries_q
from monitoring.web.forms import FilterForm, SpanFilter, Window

pytestmark = pytest.mark.django_db

UTC = dt.UTC
# 23:30 on 4 December in Seoul, and 00:30 on the 5th: one UTC day (the 4th), two Seoul days.
LATE = dt.datetime(2025, 12, 4, 14, 30, tzinfo=UTC)
EARLY = dt.datetime(2025, 12, 4, 15, 30, tzinfo=UTC)


def chat(at, model="gpt-4o"):
    return S(
        "chat",
        at=at,
        ms=250,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
        },
    )


@pytest.fixture
def midnight(client, project, ingest_key):
    late, early = chat(LATE), chat(EARLY)
    assert post(client, ingest_key, request(late, early)).status_code == 200
    return late, early


def zone(user, name, chosen=True):
    UserPreference.objects.update_or_create(user=user, defaults={"time_zone": name, "time_zone_chosen": chosen})


def test_a_naive_from_to_means_the_viewers_zone(client, alice, project, midnight):
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/overview/"
    window = {"from": "2025-12-05T00:00:00", "to": "2025-12-05T01:00:00"}  # typed into datetime-local pickers
    zone(alice, "Asia/Seoul")
    html = client.get(url, window).content.decode()
    assert '<div class="kpi-main">\n        <p class="value">1</p>' in html  # 00:30 in Seoul: the early call only
    assert "2025-12-05 00:00 – 2025-12-05 01:00" in html and "KST (UTC+09:00)" in html
    zone(alice, "UTC")
    html = client.get(url, window).content.decode()
    assert '<p class="value">0</p>' in html  # nothing between 00:00 and 01:00 UTC


def test_the_pickers_show_the_window_in_the_viewers_zone(client, alice, project):
    client.force_login(alice)
    zone(alice, "Asia/Seoul")
    html = client.get(
        f"/admin/monitoring/{project.id}/overview/", {"from": "2025-12-04T15:00:00Z", "to": "2025-12-04T16:00:00Z"}
    ).content.decode()
    assert 'name="from" step="1" value="2025-12-05T00:00:00"' in html
    assert 'name="to" step="1" value="2025-12-05T01:00:00"' in html


def test_pages_show_times_in_the_browsers_zone_from_its_cookie(client, alice, project, midnight):
    client.force_login(alice)
    trace = midnight[1].trace.hex()
    client.cookies["apm_tz"] = "Asia/Seoul"
    html = client.get(f"/admin/monitoring/{project.id}/traces/{trace}/").content.decode()
    assert "2025-12-05 00:30:00" in html
    client.cookies["apm_tz"] = "America/New_York"
    html = client.get(f"/admin/monitoring/{project.id}/traces/{trace}/").content.decode()
    assert "2025-12-04 10:30:00" in html and "EST (UTC-05:00)" in html


def test_a_bad_zone_cookie_falls_back_to_the_project_default(client, alice, project, settings):
    settings.PORTAL_TIME_ZONE = "Asia/Seoul"
    client.force_login(alice)
    client.cookies["apm_tz"] = "../../etc/passwd"
    html = client.get(f"/admin/monitoring/{project.id}/overview/").content.decode()
    assert 'data-time-zone="Asia/Seoul"' in html and 'data-time-zone-known="0"' in html


def test_the_filter_carries_the_zone_to_queries():
    form = FilterForm.from_query(QueryDict("range=7d"), tz="Asia/Seoul")
    assert form.is_valid()

    class P:
        id, agent_names = "p", ()

    assert form.span_filter(P()).tz == "Asia/Seoul"
    unknown = FilterForm.from_query(QueryDict(""), tz="Nowhere/Else")
    assert unknown.is_valid() and unknown.span_filter(P()).tz == "UTC"


def test_the_browser_reports_its_zone_once_and_a_chosen_one_wins(client, alice, project):
    client.force_login(alice)
    r = client.post("/admin/monitoring/preferences", {"time_zone": "Europe/Berlin", "source": "browser"})
    assert r.status_code == 204 and r.cookies["apm_tz"].value == "Europe/Berlin"
    pref = UserPreference.objects.get(user=alice)
    assert (pref.time_zone, pref.time_zone_chosen) == ("Europe/Berlin", False)
    client.post("/admin/monitoring/preferences", {"time_zone": "Asia/Seoul", "next": "/admin/monitoring/"})
    client.post("/admin/monitoring/preferences", {"time_zone": "Europe/Berlin", "source": "browser"})
    pref.refresh_from_db()
    assert (pref.time_zone, pref.time_zone_chosen) == ("Asia/Seoul", True)
    html = client.get(f"/admin/monitoring/{project.id}/overview/").content.decode()
    assert 'data-time-zone="Asia/Seoul"' in html and 'data-time-zone-known="1"' in html
    assert client.post("/admin/monitoring/preferences", {"time_zone": "Mars/Olympus"}).status_code == 400


def test_the_preferences_page(client, alice):
    assert client.get("/admin/monitoring/preferences").status_code == 302  # a login first
    client.force_login(alice)
    html = client.get("/admin/monitoring/preferences").content.decode()
    assert '<option value="Asia/Seoul"' in html and '<option value="ko" lang="ko"' in html


def test_the_api_writes_times_with_the_offset_of_tz(client, alice, project, midnight):
    client.force_login(alice)
    base = f"/api/v1/projects/{project.id}"
    window = {"from": "2025-12-05T00:00:00", "to": "2025-12-05T01:00:00", "tz": "Asia/Seoul"}
    data = client.get(f"{base}/overview", window).json()
    assert data["from"] == "2025-12-05T00:00:00+09:00" and data["llm_calls"] == 1 and data["tz"] == "Asia/Seoul"
    items = client.get(f"{base}/traces", {**window, "kind": "llm"}).json()["items"]
    assert [i["time"] for i in items] == ["2025-12-05T00:30:00+09:00"]
    trace = client.get(f"{base}/traces/{midnight[1].trace.hex()}", {"tz": "Asia/Seoul"}).json()
    assert trace["spans"][0]["start"] == "2025-12-05T00:30:00+09:00"
    # Without tz= the API stays in UTC ("Z").
    data = client.get(f"{base}/overview", {"from": "2025-12-04T15:00:00", "to": "2025-12-04T16:00:00"}).json()
    assert data["from"] == "2025-12-04T15:00:00Z" and data["llm_calls"] == 1


@pytest.mark.parametrize("bad", ["Mars/Olympus", "../etc/passwd", "+09:00", "KST"])
def test_the_api_refuses_an_unknown_zone(client, alice, project, bad):
    client.force_login(alice)
    for path in ("overview", "timeseries", "traces"):
        r = client.get(f"/api/v1/projects/{project.id}/{path}", {"tz": bad, "range": "24h"})
        assert r.status_code == 400 and "time zone" in r.json()["error"], path


def test_a_daily_bucket_is_a_seoul_day(project, midnight):
    week = Window(dt.datetime(2025, 12, 1, tzinfo=UTC), dt.datetime(2025, 12, 8, tzinfo=UTC))
    series = timeseries_q.timeseries(SpanFilter(str(project.id), week, tz="Asia/Seoul"))
    assert series.bucket == "day"
    calls = dict(
        zip(
            [t.astimezone(dt.timezone(dt.timedelta(hours=9))).date() for t in series.times],
            series.total("llm_calls"),
            strict=True,
        )
    )
    assert calls[dt.date(2025, 12, 4)] == 1 and calls[dt.date(2025, 12, 5)] == 1


def test_a_reported_zone_follows_the_browser_but_a_chosen_one_stays(client, alice, project):
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/overview/"
    zone(alice, "Europe/Berlin", chosen=False)  # reported by another browser of alice's
    html = client.get(url).content.decode()
    assert 'data-time-zone="Europe/Berlin"' in html and 'data-time-zone-known="0"' in html  # this one reports too
    client.cookies["apm_tz"] = "Asia/Tokyo"  # this browser's zone
    html = client.get(url).content.decode()
    assert 'data-time-zone="Asia/Tokyo"' in html and 'data-time-zone-chosen="0"' in html
    zone(alice, "Asia/Seoul", chosen=True)
    html = client.get(url).content.decode()
    assert 'data-time-zone="Asia/Seoul"' in html and 'data-time-zone-chosen="1"' in html
