"""Monitor pages and API: who may see and change what, forms that reuse the filter bar, htmx."""

import json

import pytest
from conftest import api_token
from monitor_data import llm_call
from otlp import send

from monitoring.monitors import evaluation, wording
from monitoring.monitors.models import Channel, Event, Monitor

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Spend per user",
    "metric": "cost_usd",
    "group_by": "user",
    "window_minutes": "43200",
    "condition": "above",
    "threshold": "20",
    "min_samples": "1",
    "status": "",
    "enabled": "on",
}


def base(project) -> str:
    return f"/admin/monitoring/{project.id}/monitors/"


@pytest.fixture
def spend(project):
    return Monitor.objects.create(project=project, name="spend", metric="cost_usd", threshold=1.0)


def test_an_admin_creates_a_monitor_with_filters_and_a_channel(client, alice, project):
    client.force_login(alice)
    slack = Channel.objects.create(project=project, name="ops", kind="slack")
    page = client.get(base(project) + "new?service=api&model=gpt-4o&status=error&range=7d")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option value="api" selected>' in html and '<option value="gpt-4o" selected>' in html
    data = FORM | {"services": ["api"], "model_names": ["gpt-4o"], "status": "error", "channels": [slack.pk]}
    r = client.post(base(project) + "new", data)
    assert r.status_code == 302
    m = Monitor.objects.get()
    assert (m.services, m.model_names, m.status, m.group_by) == (["api"], ["gpt-4o"], "error", "user")
    assert list(m.channels.all()) == [slack] and m.created_by == alice
    detail = client.get(r["Location"]).content.decode()
    assert "Spend per user" in detail and "Cost (USD) · Each end user · last 30 days is above $20.00" in detail


def test_bad_input_is_a_400_with_the_reason(client, alice, project, other_project):
    client.force_login(alice)
    foreign = Channel.objects.create(project=other_project, name="theirs", kind="slack")
    r = client.post(base(project) + "new", FORM | {"threshold": "nan", "channels": [foreign.pk]})
    assert r.status_code == 400 and not Monitor.objects.exists()
    html = r.content.decode()
    assert "Select a valid choice" in html  # another project's channel is no choice
    r = client.post(base(project) + "new", FORM | {"services": ["x" * 600]})
    assert r.status_code == 400 and "too long" in r.content.decode()


def test_a_viewer_sees_but_cannot_create_or_edit(client, bob, project, spend):
    client.force_login(bob)
    assert client.get(base(project)).status_code == 200
    assert client.get(base(project) + f"{spend.pk}/").status_code == 200
    assert client.get(base(project) + f"{spend.pk}/history").status_code == 200
    assert client.get(base(project) + "channels/").status_code == 200
    html = client.get(base(project) + f"{spend.pk}/").content.decode()
    assert "Evaluate now" not in html and "data-mute" not in html
    for url, data in [
        ("new", FORM),
        (f"{spend.pk}/edit", FORM),
        (f"{spend.pk}/delete", {}),
        (f"{spend.pk}/mute", {"minutes": "60"}),
        (f"{spend.pk}/evaluate", {}),
        ("channels/new", {"name": "x", "kind": "email", "recipients": "a@example.com"}),
    ]:
        assert client.post(base(project) + url, data).status_code == 403, url
    assert client.get(base(project) + "new").status_code == 403
    spend.refresh_from_db()
    assert spend.name == "spend" and spend.muted_until is None and not Channel.objects.exists()


def test_strangers_get_404_and_anonymous_a_login(client, charlie, project, spend):
    assert client.get(base(project)).status_code == 302
    client.force_login(charlie)
    for url in ["", f"{spend.pk}/", f"{spend.pk}/history", "channels/", "new"]:
        assert client.get(base(project) + url).status_code == 404, url
    assert client.post(base(project) + f"{spend.pk}/delete").status_code == 404
    assert Monitor.objects.filter(pk=spend.pk).exists()


def test_a_monitor_of_another_project_is_404(client, charlie, other_project, spend):
    client.force_login(charlie)
    assert client.get(f"/admin/monitoring/{other_project.id}/monitors/{spend.pk}/").status_code == 404


def test_evaluate_now_mute_ack_and_history(client, alice, project, ingest_key, spend):
    send(client, ingest_key, llm_call(cost=3))
    client.force_login(alice)
    r = client.post(base(project) + f"{spend.pk}/evaluate", follow=True)
    html = r.content.decode()
    assert "Evaluated: 1 fired, 0 resolved." in html and 'data-state="firing"' in html and "$3.00" in html
    alert = spend.open_alerts().get()
    client.post(base(project) + f"{spend.pk}/alerts/{alert.pk}/acknowledge")
    alert.refresh_from_db()
    assert alert.acknowledged_by == alice
    client.post(base(project) + f"{spend.pk}/mute", {"minutes": "60"})
    spend.refresh_from_db()
    assert spend.state() == "muted"
    history = client.get(base(project) + f"{spend.pk}/history").content.decode()
    for label in ("Fired", "Acknowledged", "Muted"):
        assert label in history
    link = Event.objects.get(kind="fired").dashboard_url()
    assert f'href="{link.replace("&", "&amp;")}"' in history and link.startswith(
        f"/admin/monitoring/{project.id}/overview/?from="
    )
    assert client.get(link).status_code == 200
    client.post(base(project) + f"{spend.pk}/mute", {"unmute": "1"})
    spend.refresh_from_db()
    assert spend.state() == "firing"


def test_the_state_panel_refreshes_as_an_htmx_partial(client, bob, project, spend):
    client.force_login(bob)
    r = client.get(base(project) + f"{spend.pk}/", headers={"HX-Request": "true", "HX-Target": "monitor-state"})
    html = r.content.decode()
    assert r.status_code == 200 and 'id="monitor-state"' in html and "<html" not in html


def test_the_pages_in_korean(client, alice, project, spend):
    from django.utils import translation

    client.force_login(alice)
    with translation.override("ko"):
        assert wording.rule(spend) == "비용 (USD) · 프로젝트 전체 · 최근 1시간 · 초과 $1.00"
    # The request's language comes from LocaleMiddleware: the browser's Accept-Language here.
    korean = {"Accept-Language": "ko"}
    html = client.get(base(project), headers=korean).content.decode()
    detail = client.get(base(project) + f"{spend.pk}/", headers=korean).content.decode()
    assert ">모니터</a>" in html and "새 모니터" in html and "아직 평가 전" in html
    assert "지금 평가" in detail and "현재 발생 중" in detail


def test_the_dashboard_tab_bar_links_to_monitors(client, alice, project):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/overview/").content.decode()
    assert f'href="/admin/monitoring/{project.id}/monitors/" hx-boost="false" data-tab-link="monitors"' in html


def test_the_monitor_pages_carry_the_dashboards_tabs_and_are_not_boosted(client, alice, project):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/monitors/").content.decode()
    for key in ("overview", "analytics", "traces", "replay"):
        assert f'href="/admin/monitoring/{project.id}/{key}/" data-tab-link="{key}"' in html
    # Its forms post and redirect to whole pages: boosted into #panel they would nest a page in a page.
    assert 'data-tab="monitors" hx-boost="false"' in html


# --- the API ----------------------------------------------------------------------------------


def api(project, pk=None) -> str:
    return f"/api/v1/projects/{project.id}/monitors" + (f"/{pk}" if pk else "")


def test_the_api_lists_monitors_and_their_state(client, bob, project, ingest_key, spend):
    send(client, ingest_key, llm_call(cost=3))
    evaluation.evaluate([spend])
    r = client.get(api(project), headers={"Authorization": f"Bearer {api_token('bob')}"})
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert item["state"] == "firing" and item["firing"][0]["value"] == 3.0 and item["last_value"] == 3.0
    client.force_login(bob)
    assert client.get(api(project, spend.pk)).json()["name"] == "spend"


def test_the_api_creates_updates_and_deletes_with_an_admins_token(client, alice, project):
    auth = {"Authorization": f"Bearer {api_token('alice')}"}
    body = {"name": "p95", "metric": "latency_p95_ms", "group_by": "model", "threshold": 2000, "window_minutes": 60}
    r = client.post(api(project), json.dumps(body), content_type="application/json", headers=auth)
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["group_by"] == "model" and created["state"] == "pending" and created["condition"] == "above"
    r = client.patch(
        api(project, created["id"]), json.dumps({"threshold": 3000}), content_type="application/json", headers=auth
    )
    assert r.status_code == 200 and r.json()["threshold"] == 3000 and r.json()["group_by"] == "model"
    r = client.patch(
        api(project, created["id"]), json.dumps({"metric": "nope"}), content_type="application/json", headers=auth
    )
    assert r.status_code == 400 and "metric" in r.json()["fields"]
    assert client.delete(api(project, created["id"]), headers=auth).status_code == 204
    assert not Monitor.objects.exists()


def test_the_api_refuses_viewers_sessions_strangers_and_anonymous(client, alice, bob, charlie, project, spend):
    body = json.dumps({"name": "x", "metric": "cost_usd", "threshold": 1, "window_minutes": 60})
    viewer = {"Authorization": f"Bearer {api_token('bob')}"}
    assert client.post(api(project), body, content_type="application/json", headers=viewer).status_code == 403
    assert client.delete(api(project, spend.pk), headers=viewer).status_code == 403
    client.force_login(alice)  # a session, even an admin's, cannot write (no CSRF surface)
    assert client.post(api(project), body, content_type="application/json").status_code == 403
    client.logout()
    assert client.get(api(project)).status_code == 401
    stranger = {"Authorization": f"Bearer {api_token('charlie')}"}
    assert client.get(api(project), headers=stranger).status_code == 404
    assert client.delete(api(project, spend.pk), headers=stranger).status_code == 404
    assert Monitor.objects.filter(pk=spend.pk).exists()


def test_every_monitors_view_is_guarded():
    from monitoring.monitors.urls import urlpatterns

    assert len(urlpatterns) >= 16
    for entry in urlpatterns:
        assert getattr(entry.callback, "apm_auth", None) in ("login", "api"), entry.pattern
