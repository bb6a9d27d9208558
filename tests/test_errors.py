"""ClickHouse trouble as people see it (monitoring/store/errors.py): every page, banner, export and API
answer says what went wrong and its hint with an error id; ClickHouse's own message (hosts,
ports, codes) reaches the log under that id, and the page only for staff."""

import logging
import re

import pytest
from django.test import override_settings

from monitoring.store import clickhouse

pytestmark = pytest.mark.django_db

INTERNALS = re.compile(r"127\.0\.0\.1|Connection refused|Code: \d+|:1\b")


def down():
    return override_settings(
        CLICKHOUSE={**clickhouse.settings.CLICKHOUSE, "HOST": "127.0.0.1", "PORT": 1, "CONNECT_TIMEOUT": 1.0}
    )


def answers(client, project) -> dict[str, object]:
    base = f"/admin/monitoring/{project.id}"
    with down():
        return {
            "page": client.get(f"{base}/overview/"),
            "panel": client.get(f"{base}/analytics/", headers={"HX-Request": "true", "HX-Target": "panel"}),
            "part": client.get(f"{base}/analytics/flow"),
            "export": client.get(f"{base}/traces/export.csv"),
            "api": client.get(f"/api/v1/projects/{project.id}/overview"),
        }


def text(response) -> str:
    return response.content.decode()


def test_people_get_the_hint_and_an_error_id_never_clickhouses_words(client, bob, project, caplog):
    client.force_login(bob)  # a viewer, not staff
    with caplog.at_level(logging.WARNING, logger="monitoring.store.errors"):
        found = answers(client, project)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "monitoring.store.errors")
    for name, response in found.items():
        assert response.status_code == 503, name
        body = text(response)
        assert not INTERNALS.search(body), (name, INTERNALS.search(body))
        error_id = re.search(r"error id ([0-9a-f]{8})", body)
        assert error_id, (name, body[:300])
        assert error_id.group(1) in logged  # the administrator finds the message under the id
    assert "docker compose restart monitoring-clickhouse" in text(found["page"])
    data = found["api"].json()
    assert data["kind"] == "unavailable" and re.fullmatch(r"[0-9a-f]{8}", data["error_id"]) and data["hint"]
    assert found["api"]["Retry-After"] == "5"


def test_staff_also_see_clickhouses_message(client, alice, project):
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    found = answers(client, project)
    for name in ("page", "api"):
        assert INTERNALS.search(text(found[name])), name
