"""Start-up as a new user meets it: `/` leads to the dashboard, a favicon, the login bin/demo prints
stays the same when it runs again, and the printed addresses follow BIND."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from monitoring.models import IngestKey

pytestmark = pytest.mark.django_db


def demo_setup(*args, **env) -> str:
    out = StringIO()
    call_command("demo_setup", "--days", "1", *args, stdout=out)
    return out.getvalue()


def login_of(text: str) -> str:
    return re.search(r"Login:\s+(.+)", text).group(1).strip()


def test_the_front_door_is_the_dashboard(client, alice, project):
    r = client.get("/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    r = client.get("/", follow=True)
    assert r.redirect_chain[-1][0] == f"/admin/monitoring/{project.id}/overview/" and r.status_code == 200


def test_every_page_has_a_favicon(client):
    html = client.get("/accounts/login/").content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', html).group(1)
    r = client.get(href)
    assert r.status_code == 200 and b"<svg" in b"".join(r.streaming_content if r.streaming else [r.content])


def test_running_demo_setup_again_keeps_the_login_and_the_key(monkeypatch):
    monkeypatch.delenv("BIND", raising=False)
    first = demo_setup()
    second = demo_setup()
    assert login_of(first) == login_of(second) and login_of(first).startswith("demo / ")
    key = re.search(r"Bearer (apm_ingest_\S+)", first).group(1)
    assert key in second and IngestKey.objects.filter(name="demo_setup", revoked__isnull=True).count() == 1
    assert "Dashboard: http://127.0.0.1:3009/admin/monitoring" in first
    renewed = demo_setup("--new-password")
    assert login_of(renewed) != login_of(first)


def test_a_password_changed_by_the_person_is_kept(django_user_model):
    demo_setup()
    user = django_user_model.objects.get(username="demo")
    user.set_password("my-own-password-1")
    user.save()
    text = demo_setup()
    assert "password kept as you set it" in login_of(text)
    user.refresh_from_db()
    assert user.check_password("my-own-password-1")


def test_the_printed_addresses_follow_bind(monkeypatch, settings):
    monkeypatch.setenv("BIND", "0.0.0.0:8080")
    monkeypatch.setattr("socket.gethostname", lambda: "box")
    text = demo_setup()
    assert "Dashboard: http://127.0.0.1:8080/admin/monitoring" in text
    assert "http://box:8080/admin/monitoring" in text
    assert "POST http://127.0.0.1:8080/v1/traces" in text
    assert "add box to ALLOWED_HOSTS" in text
    assert (settings.VAR_DIR / "portal_url").read_text().strip() == "http://127.0.0.1:8080"


def test_favicon_ico_and_the_admin_pages_name_the_icon(client, alice):
    """Django admin's pages named no icon, so browsers asked for /favicon.ico and got a 404."""
    r = client.get("/favicon.ico", follow=True)
    assert r.status_code == 200 and b"<svg" in b"".join(r.streaming_content if r.streaming else [r.content])
    html = client.get("/admin/login/", follow=True).content.decode()
    assert re.search(r'<link rel="icon" href="[^"]+favicon\.svg"', html)
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    for url in ("/admin/", "/admin/auth/user/", "/admin/auth/user/add/"):
        html = client.get(url).content.decode()
        assert re.search(r'<link rel="icon" href="[^"]+favicon\.svg"', html), url
