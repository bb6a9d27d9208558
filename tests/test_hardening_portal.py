"""Portal hardening (issue 9): login throttling, Content-Security-Policy, rate limits, /metrics."""

from __future__ import annotations

import json
import re

import pytest
from otlp import S, post, request

from monitoring.models import ApiToken
from monitoring.monitors.models import Monitor

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def _login(client, username, password, ip="10.9.8.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_it_locks_a_user_out_after_five_wrong_passwords_with_a_clear_message(client, alice):
    for _ in range(4):
        assert _login(client, "alice", "wrong").status_code == 200  # the form again, with its error
    assert _login(client, "alice", "wrong").status_code == 429  # the fifth failure locks
    locked = _login(client, "alice", "alice-pass-123")  # even the right password, for now
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert 'name="password"' in locked.content.decode()  # the login page itself, with the message
    assert int(locked["Retry-After"]) > 0
    # from another address too: the limit is per user name as well as per address
    assert _login(client, "alice", "alice-pass-123", ip="10.0.0.99").status_code == 429


def test_it_locks_an_address_that_tries_many_user_names(client, alice, bob):
    for name in ("x1", "x2", "x3", "x4", "x5"):
        _login(client, name, "guess", ip="10.1.1.1")
    assert _login(client, "bob", "bob-pass-123", ip="10.1.1.1").status_code == 429
    assert _login(client, "bob", "bob-pass-123", ip="10.2.2.2").status_code == 302  # others still log in


def test_a_good_login_is_not_slowed_down(client, alice):
    _login(client, "alice", "wrong")
    assert _login(client, "alice", "alice-pass-123").status_code == 302


def test_pages_carry_a_content_security_policy_without_inline_scripts(client, alice, project):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/overview/")
    policy = r["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    body = r.content.decode()
    # every <script> in the page loads a file of ours: none inline
    assert all(re.search(r'\bsrc="/static/', tag) for tag in re.findall(r"<script\b[^>]*>", body))
    assert not re.search(r"\son[a-z]+=", body)  # no inline event handler either


def test_the_read_api_is_rate_limited_per_token(client, alice, project, settings):
    settings.API_RATE_LIMIT = "3/m"
    _, secret = ApiToken.issue(alice, "bench")
    url = f"/api/v1/projects/{project.id}/overview"
    codes = [client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get(url, headers={"Authorization": f"Bearer {secret}"})
    assert limited["Retry-After"] == "60" and "rate limit" in limited.json()["error"]
    client.force_login(alice)  # the session is another client, with a budget of its own
    assert client.get(url).status_code == 200


def test_the_monitors_api_is_rate_limited_like_the_read_api(client, alice, project, settings):
    """Issue 22 item 8: writes past API_RATE_LIMIT get the read API's 429, from one budget per client."""
    settings.API_RATE_LIMIT = "3/m"
    _, secret = ApiToken.issue(alice, "automation")
    auth = {"Authorization": f"Bearer {secret}"}
    url = f"/api/v1/projects/{project.id}/monitors"
    body = json.dumps({"name": "spend", "metric": "cost_usd", "threshold": 20})
    codes = [client.post(url, body, content_type="application/json", headers=auth).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    assert Monitor.objects.filter(project=project).count() == 3  # the fourth was not made
    limited = client.patch(f"{url}/{Monitor.objects.first().pk}", "{}", content_type="application/json", headers=auth)
    read = client.get(f"/api/v1/projects/{project.id}/overview", headers=auth)  # the same budget
    for answer in (limited, read):
        assert answer.status_code == 429 and answer["Retry-After"] == "60"
        assert answer.json() == {"error": "rate limit exceeded (3/m per client): retry later"}
    assert client.delete(f"{url}/{Monitor.objects.first().pk}", headers=auth).status_code == 429
    assert Monitor.objects.filter(project=project).count() == 3
    assert client.get(url).status_code == 401  # no credentials: refused before any budget is spent


def test_replay_reruns_are_rate_limited_per_user(client, alice, project, settings):
    settings.RERUN_RATE_LIMIT = "2/m"
    client.force_login(alice)
    url = f"/admin/monitoring/{project.id}/replay/rerun"
    codes = [client.post(url, {"trace": "0" * 32, "span": "0" * 16}).status_code for _ in range(3)]
    assert codes[:2] == [404, 404]  # no such call: answered, and counted
    assert codes[2] == 429


def test_metrics_are_served_to_loopback_only_and_count_spans(client, project, ingest_key, settings):
    assert post(client, ingest_key, request(S("m1"), S("m2"))).status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200
    text = r.content.decode()
    assert re.search(r'apm_ingest_spans_accepted_total\{outcome="stored"\} [1-9]', text)
    assert "apm_clickhouse_query_seconds_bucket" in text and 'tag="ingest.spans"' in text
    assert "django_http_requests_latency_seconds_by_view_method" in text

    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 404
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers={"Authorization": "Bearer nope"}).status_code == 404
    )
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status_code == 200


def test_the_lockout_message_is_in_the_viewers_language(client, alice):
    for _ in range(5):
        _login(client, "alice", "wrong")
    locked = client.post(
        LOGIN, {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.9.8.7", headers={"Accept-Language": "ko"}
    )
    assert locked.status_code == 429 and "로그인이 차단됩니다" in locked.content.decode()
