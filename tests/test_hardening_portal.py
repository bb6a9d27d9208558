"""Portal hardening (issue 9): login throttling, Content-Security-Policy, rate limits, /metrics."""

from __future__ import annotations

import json
import re
import time

import pytest
from otlp import S, post, request

from monitoring.models import ApiToken
from monitoring.monitors.models import Monitor

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def _login(client, username, password, ip="10.9.8.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_that_address_out_for_that_user_with_a_clear_message(client, alice):
    for _ in range(4):
        assert _login(client, "alice", "wrong").status_code == 200  # the form again, with its error
    assert _login(client, "alice", "wrong").status_code == 429  # the fifth failure locks
    locked = _login(client, "alice", "alice-pass-123")  # even the right password, from there
    assert locked.status_code == 429
    assert "Too many failed logins from this address" in locked.content.decode()
    assert 'name="password"' in locked.content.decode()  # the login page itself, with the message
    assert int(locked["Retry-After"]) > 0


def test_an_attacker_locked_out_does_not_lock_the_user_out_of_her_own_address(client, alice):
    """Issue 22: five wrong passwords for a name from any address locked that user out everywhere."""
    attacker, own = "203.0.113.66", "10.0.0.99"
    for _ in range(5):
        _login(client, "alice", "guess", ip=attacker)
    assert _login(client, "alice", "alice-pass-123", ip=attacker).status_code == 429  # the attacker is locked
    started = time.monotonic()
    assert _login(client, "alice", "alice-pass-123", ip=own).status_code == 302
    assert time.monotonic() - started < 0.5  # and not slowed down: only failed attempts wait
    assert _login(client, "alice", "guess", ip=attacker).status_code == 429  # still locked after her login


def test_the_client_address_behind_nginx_is_what_gets_locked(client, alice, settings):
    settings.PROXY_FORWARDS_CLIENT_IP = True
    proxy, attacker, own = "172.18.0.5", "203.0.113.66", "198.51.100.7"

    def via_nginx(password, ip):
        return client.post(
            LOGIN, {"username": "alice", "password": password}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ip
        )

    for _ in range(5):
        via_nginx("guess", attacker)
    assert via_nginx("alice-pass-123", attacker).status_code == 429
    assert via_nginx("alice-pass-123", own).status_code == 302  # same proxy address, another client


def test_guessing_spread_over_many_addresses_is_slowed_per_user(client, alice, bob, settings):
    """One failure from each of 9 addresses: none is locked, but past LOGIN_FAILURE_LIMIT failures
    of the name each failed answer waits longer (0.5 s, 1 s, ... up to LOGIN_DELAY_MAX_SECONDS)."""
    settings.LOGIN_DELAY_MAX_SECONDS = 1.5
    waits = []
    for i in range(9):
        started = time.monotonic()
        assert _login(client, "alice", f"guess-{i}", ip=f"198.51.100.{i + 1}").status_code == 200
        waits.append(time.monotonic() - started)
    assert max(waits[:4]) < 0.3, waits  # a person's typos never wait
    assert 0.5 <= waits[4] < 0.9 and 1.0 <= waits[5] < 1.4, waits  # then it grows
    assert all(1.5 <= w < 1.9 for w in waits[6:]), waits  # to its bound
    # the right password from anywhere is answered at once, and other names are not slowed
    started = time.monotonic()
    assert _login(client, "alice", "alice-pass-123", ip="192.0.2.200").status_code == 302
    assert _login(client, "bob", "wrong", ip="192.0.2.201").status_code == 200
    assert time.monotonic() - started < 0.5


def test_the_delay_never_holds_more_than_its_slots(client, alice, settings):
    from monitoring import throttling

    settings.LOGIN_DELAY_MAX_SECONDS = 5
    for i in range(6):
        _login(client, "alice", "guess", ip=f"198.51.100.{i + 1}")
    held = [throttling.DELAY_SLOTS.acquire(blocking=False) for _ in range(throttling.DELAY_SLOT_COUNT)]
    try:
        assert all(held)
        started = time.monotonic()
        assert _login(client, "alice", "guess", ip="198.51.100.99").status_code == 200
        assert time.monotonic() - started < 0.5  # every slot busy: answered, not queued behind them
    finally:
        for _ in held:
            throttling.DELAY_SLOTS.release()


def test_staff_see_every_failed_login_in_the_admin(client, alice, django_user_model):
    """Staff (not only superusers) can read django-axes' lists: who failed, from where, when, locked or not."""
    for _ in range(5):
        _login(client, "alice", "guess", ip="203.0.113.66")
    operator = django_user_model.objects.create_user("operator", password="operator-pass-123", is_staff=True)
    client.force_login(operator)
    failures = client.get("/admin/axes/accessfailurelog/")
    assert failures.status_code == 200
    assert failures.content.decode().count("203.0.113.66") >= 5
    attempts = client.get("/admin/axes/accessattempt/")
    assert attempts.status_code == 200 and "203.0.113.66" in attempts.content.decode()
    assert "/admin/axes/accessfailurelog/" in client.get("/admin/").content.decode()
    client.force_login(alice)  # not staff
    assert client.get("/admin/axes/accessfailurelog/").status_code == 302  # to the admin's login


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
