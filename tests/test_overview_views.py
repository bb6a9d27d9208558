"""The Overview page and API: login, membership (404 for strangers), windows, numbers, htmx partials."""

import datetime as dt

import pytest
from conftest import api_token
from django.test import override_settings
from otlp import S, post, request

from monitoring.store import clickhouse

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)


@pytest.fixture
def spans(client, project, ingest_key):
    req = request(
        S(
            "chat",
            at=AT,
            ms=250,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 1000,
            },
        ),
        S(
            "chat",
            at=AT,
            ms=750,
            error=True,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        ),
    )
    assert post(client, ingest_key, req).status_code == 200


def test_it_redirects_anonymous_pages_to_login(client, project):
    for url in ["/admin/monitoring", "/admin/monitoring/", f"/admin/monitoring/{project.id}/overview/"]:
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/"), url


def test_it_shows_the_login_page(client):
    r = client.get("/accounts/login/")
    assert r.status_code == 200 and b"Log in" in r.content


def test_it_sends_a_member_to_their_project(client, alice, project):
    client.force_login(alice)
    r = client.get("/admin/monitoring/?range=7d")
    assert r.status_code == 302 and r["Location"] == f"/admin/monitoring/{project.id}/overview/?range=7d"


def test_it_shows_the_five_numbers(client, alice, project, spans):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/overview/")
    assert r.status_code == 200
    html = r.content.decode()
    for label in ["Total Cost", "LLM Calls", "Agent Calls", "Avg Latency", "Fail Rate"]:
        assert label in html
    assert "$0.0125" in html  # 1000 x $2.5/M + 1000 x $10/M
    assert "500 ms" in html
    assert "50.00%" in html
    assert r.headers["Vary"].count("HX-Request") == 1


def test_it_serves_only_the_panel_to_htmx(client, alice, project, spans):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/overview/", headers={"HX-Request": "true", "HX-Target": "panel"})
    html = r.content.decode()
    assert r.status_code == 200 and 'data-tab="overview"' in html and "<html" not in html


def test_it_lists_only_the_users_projects(client, alice, project, other_project):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/overview/").content.decode()
    assert project.name.replace("'", "&#x27;") in html and other_project.name.replace("'", "&#x27;") not in html


def test_it_hides_other_projects_from_pages(client, charlie, project):
    client.force_login(charlie)
    assert client.get(f"/admin/monitoring/{project.id}/overview/").status_code == 404


def test_it_rejects_a_bad_window_with_400(client, alice, project):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/overview/?from=yesterday")
    assert r.status_code == 400 and b"ISO 8601" in r.content


def test_it_shows_a_banner_when_clickhouse_is_down(client, alice, project):
    client.force_login(alice)
    down = {**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 2.0}
    with override_settings(CLICKHOUSE=down):
        r = client.get(f"/admin/monitoring/{project.id}/overview/")
    assert r.status_code == 503
    assert b"docker compose ps monitoring-clickhouse" in r.content


def test_the_api_answers_a_session(client, alice, project, spans):
    client.force_login(alice)
    r = client.get(f"/api/v1/projects/{project.id}/overview")
    assert r.status_code == 200
    data = r.json()
    assert {k: data[k] for k in ["llm_calls", "agent_calls", "fail_rate"]} == {
        "llm_calls": 2,
        "agent_calls": 0,
        "fail_rate": 0.5,
    }
    assert data["total_cost_usd"] == pytest.approx(0.0125)
    assert data["avg_latency_ms"] == pytest.approx(500.0)


def test_the_api_answers_a_personal_token_and_honours_the_window(client, bob, project, spans):
    token = api_token("bob")
    since = (AT + dt.timedelta(minutes=1)).isoformat()
    r = client.get(
        f"/api/v1/projects/{project.id}/overview", {"from": since}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["llm_calls"] == 0
    r = client.get(
        f"/api/v1/projects/{project.id}/overview",
        {"from": (AT - dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.json()["llm_calls"] == 2


def test_the_api_needs_authentication(client, project):
    assert client.get(f"/api/v1/projects/{project.id}/overview").status_code == 401
    r = client.get(f"/api/v1/projects/{project.id}/overview", headers={"Authorization": "Bearer apm_token_nope"})
    assert r.status_code == 401


def test_the_api_hides_other_projects(client, charlie, project):
    token = api_token("charlie")
    for pid in [project.id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"]:
        r = client.get(f"/api/v1/projects/{pid}/overview", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404, pid


@pytest.mark.parametrize(
    "query",
    [
        {"from": "nope"},
        {"to": "2025-01-01T00:00:00Z"},
        {"from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
        {"range": "5y"},
    ],
)
def test_the_api_rejects_bad_windows_with_400(client, alice, project, query):
    client.force_login(alice)
    r = client.get(f"/api/v1/projects/{project.id}/overview", query)
    assert r.status_code == 400 and r.json()["error"]


def test_an_ingest_key_is_not_an_api_token(client, project, ingest_key):
    r = client.get(f"/api/v1/projects/{project.id}/overview", headers={"Authorization": f"Bearer {ingest_key}"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "query", [{"from": "0001-01-01T00:00:00+01:00"}, {"from": "2025-01-01T00:00:00Z", "to": "2300-01-01T00:00:00Z"}]
)
def test_times_outside_what_spans_can_hold_are_400_not_500(client, alice, project, query):
    client.force_login(alice)
    assert client.get(f"/api/v1/projects/{project.id}/overview", query).status_code == 400
    assert client.get(f"/admin/monitoring/{project.id}/overview/", query).status_code == 400


def test_there_are_no_password_reset_pages(client):
    assert client.get("/accounts/password_reset/").status_code == 404
