"""Saved views (issue 24): the API (create, list, delete with its 400/403/404s), project isolation,
the filter bar's list and buttons, a person's default view per tab, and a saved attribute filter
reused (against the real engine)."""

import datetime as dt
import json

import pytest
from conftest import api_token
from otlp import S, post, request

from monitoring.models import Membership, SavedView

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)


def _post(client, project, token, **body):
    return client.post(
        f"/api/v1/projects/{project.id}/views",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def _list(client, project, token):
    r = client.get(f"/api/v1/projects/{project.id}/views", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.content
    return {v["name"]: v for v in r.json()["items"]}


def _delete(client, project, token, view_id):
    return client.delete(f"/api/v1/projects/{project.id}/views/{view_id}", headers={"Authorization": f"Bearer {token}"})


def test_it_creates_lists_and_deletes_views_through_the_api(client, alice, bob, project):
    alice_token, bob_token = api_token("alice"), api_token("bob")
    query = "range=7d&attr=tenant:eq:acme&kind=runs&sort=cost"
    r = _post(client, project, bob_token, name="Acme, dearest", tab="traces", query="?" + query, shared=False)
    assert r.status_code == 201, r.content
    mine = r.json()
    assert mine["id"] and mine["tab"] == "traces" and mine["shared"] is False and mine["mine"] is True
    assert mine["query"] == "range=7d&attr=tenant%3Aeq%3Aacme&kind=runs&sort=cost"
    assert mine["url"] == f"/admin/monitoring/{project.id}/traces/?{mine['query']}"
    shared = _post(client, project, bob_token, name="Errors", tab="overview", query="status=error", shared=True).json()
    # Alice sees bob's shared view, not his personal one; bob sees both.
    assert set(_list(client, project, alice_token)) == {"Errors"}
    assert set(_list(client, project, bob_token)) == {"Acme, dearest", "Errors"}
    # Deleting: another member's personal view is not found; a shared one of another member needs
    # an admin (bob is a viewer of alice's project), and the owner may always.
    alice_personal = _post(client, project, alice_token, name="Mine", tab="analytics", query="").json()
    assert _delete(client, project, bob_token, alice_personal["id"]).status_code == 404
    alice_shared = _post(client, project, alice_token, name="Team", tab="analytics", query="", shared=True).json()
    r = _delete(client, project, bob_token, alice_shared["id"])
    assert r.status_code == 403 and "owner or a project admin" in r.json()["error"]
    assert _delete(client, project, alice_token, shared["id"]).status_code == 204  # alice is the admin
    assert _delete(client, project, bob_token, mine["id"]).status_code == 204
    assert set(_list(client, project, bob_token)) == {"Team"}


def test_bad_views_are_400s_naming_the_field(client, alice, project):
    token = api_token("alice")
    cases = [
        ({"name": "x", "tab": "replay", "query": ""}, "tab", "'tab' must be one of"),
        ({"name": "x", "tab": "traces", "query": "range=24h&" + "q=a&" * 600}, "query", "at most 2000"),
        ({"name": "x", "tab": "traces", "query": "attr=tenant:like:acme"}, "query", "operator must be one of"),
        ({"name": "x", "tab": "overview", "query": "range=2y"}, "query", "a bad filter in the query"),
        ({"name": "x", "tab": "traces", "query": "kind=runs&sort=loudest"}, "query", "'sort' must be one of"),
        ({"name": "", "tab": "traces", "query": ""}, "name", "needs a name"),
        ({"name": "x", "tab": "traces", "query": "", "shared": "yes"}, "shared", "true or false"),
    ]
    for body, field, message in cases:
        r = _post(client, project, token, **body)
        assert r.status_code == 400, body
        assert r.json()["field"] == field and message in r.json()["error"], (body, r.json())
    assert not SavedView.objects.exists()


def test_views_stay_in_their_project_and_writes_need_a_token(client, alice, charlie, project, other_project):
    alice_token, charlie_token = api_token("alice"), api_token("charlie")
    view = _post(client, project, alice_token, name="Team", tab="overview", query="", shared=True).json()
    assert _list(client, other_project, charlie_token) == {}
    assert _delete(client, other_project, charlie_token, view["id"]).status_code == 404
    assert (
        client.get(
            f"/api/v1/projects/{project.id}/views", headers={"Authorization": f"Bearer {charlie_token}"}
        ).status_code
        == 404
    )
    client.force_login(alice)  # a session may read, not write
    assert client.get(f"/api/v1/projects/{project.id}/views").status_code == 200
    r = client.post(
        f"/api/v1/projects/{project.id}/views",
        json.dumps({"name": "x", "tab": "overview"}),
        content_type="application/json",
    )
    assert r.status_code == 403
    client.logout()
    assert client.get(f"/api/v1/projects/{project.id}/views").status_code == 401


def test_the_filter_bar_saves_lists_and_opens_a_default_view(client, alice, bob, project, ingest_key):
    tenants = [
        S(
            "chat",
            service="svc",
            at=AT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "tenant": t},
        )
        for t in ("acme", "globex")
    ]
    assert post(client, ingest_key, request(*tenants)).status_code == 200
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}"
    page = client.get(f"{base}/traces/", {"range": "24h", "kind": "llm", "attr": "tenant:eq:acme"}).content.decode()
    assert (
        "data-save-view" in page and 'name="query" value="range=24h&amp;attr=tenant%3Aeq%3Aacme&amp;kind=llm"' in page
    )
    r = client.post(
        f"{base}/views/save",
        {
            "name": "Acme calls",
            "tab": "traces",
            "query": "range=24h&attr=tenant%3Aeq%3Aacme&kind=llm",
            "shared": "1",
            "default": "1",
        },
    )
    assert r.status_code == 302
    view = SavedView.objects.get(name="Acme calls")
    assert view.shared and r["Location"].endswith("/traces/?range=24h&attr=tenant%3Aeq%3Aacme&kind=llm")
    # The saved view reused: the list holds acme's call only.
    html = client.get(r["Location"]).content.decode()
    assert tenants[0].span_id.hex() in html and tenants[1].span_id.hex() not in html
    # Alice's tab opens on her default; bob's does not (a default is a person's), but he sees it shared.
    r = client.get(f"{base}/traces/")
    assert r.status_code == 302 and "attr=tenant%3Aeq%3Aacme" in r["Location"]
    client.force_login(bob)
    html = client.get(f"{base}/traces/").content.decode()
    assert "Acme calls" in html and f'data-view="{view.id}"' in html
    assert client.post(f"{base}/views/{view.id}/delete").status_code == 403  # a viewer, not its owner
    # A bad view from the bar is a 400 with the reason.
    r = client.post(f"{base}/views/save", {"name": "x", "tab": "traces", "query": "attr=tenant"})
    assert r.status_code == 400 and r["Content-Type"].startswith("text/plain") and "<key>:<op>" in r.content.decode()
    client.force_login(alice)
    assert client.post(f"{base}/views/{view.id}/default").status_code == 302  # again: no default any more
    assert client.get(f"{base}/traces/").status_code == 200
    assert client.post(f"{base}/views/{view.id}/delete").status_code == 302
    assert not SavedView.objects.exists()


def test_the_bar_lists_only_the_tabs_views(client, alice, project):
    Membership.objects.filter(user=alice).update(role=Membership.ADMIN)
    SavedView.objects.create(
        project=project, owner=alice, name="Costly runs", tab="traces", query="kind=runs&sort=cost"
    )
    SavedView.objects.create(project=project, owner=alice, name="Errors overview", tab="overview", query="status=error")
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/overview/", {"range": "24h"}).content.decode()
    assert "Errors overview" in html and "Costly runs" not in html
