"""API tokens are made and revoked in the UI by the person they belong to (issue 21)."""

import re

import pytest

from monitoring.models import ApiToken

pytestmark = pytest.mark.django_db


def test_it_needs_a_login(client):
    assert client.get("/admin/monitoring/tokens").status_code == 302
    assert client.post("/admin/monitoring/tokens", {"name": "x"}).status_code == 302
    assert not ApiToken.objects.exists()


def test_a_person_makes_a_token_sees_it_once_uses_it_and_revokes_it(client, alice, bob, project):
    client.force_login(alice)
    page = client.get("/admin/monitoring/preferences").content.decode()
    assert 'href="/admin/monitoring/tokens"' in page
    made = client.post("/admin/monitoring/tokens", {"name": "CI export"})
    html = made.content.decode()
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    secret = re.search(r"data-secret>(apm_token_[^<]+)<", html).group(1)
    assert "CI export" in html
    again = client.get("/admin/monitoring/tokens").content.decode()
    assert secret not in again and secret[:16] in again  # the prefix only, from now on
    client.logout()
    api = f"/api/v1/projects/{project.id}/overview"
    assert client.get(api, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    token = ApiToken.objects.get(user=alice)
    client.force_login(bob)  # another person's token is not theirs to revoke
    assert client.post(f"/admin/monitoring/tokens/{token.pk}/revoke").status_code == 404
    assert "data-token=" not in client.get("/admin/monitoring/tokens").content.decode()  # none of theirs
    client.force_login(alice)
    assert client.post(f"/admin/monitoring/tokens/{token.pk}/revoke").status_code == 302
    client.logout()
    assert client.get(api, headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert client.post("/admin/monitoring/tokens", {"name": "x"}).status_code == 302  # logged out


def test_a_name_too_long_is_a_400(client, alice):
    client.force_login(alice)
    assert client.post("/admin/monitoring/tokens", {"name": "n" * 101}).status_code == 400
    assert not ApiToken.objects.exists()
