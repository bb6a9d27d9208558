"""Lists people use every day: Sessions and Users paged, sorted by each column and searched (pages and
the read API), the exports of every list, Replay's short ids and run list, against the real engine.

Seeded: 120 sessions of 60 end users, one plain gateway call each (session s-000 … s-119 a second
apart, newest last; call i has i + 1 output tokens, and every seventh call failed).
"""

import csv
import datetime as dt
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
import test_runs_sessions as seeded
from otlp import S, send

from monitoring.models import IngestKey

pytestmark = pytest.mark.django_db

world = seeded.world  # the runs, sessions and end users of that module (a fixture)
tid = seeded.tid

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=40)
N = 120


def call(i: int) -> S:
    return S(
        "chat gpt-4o",
        service="backend",
        at=AT + dt.timedelta(seconds=i),
        ms=100 + i,
        error=i % 7 == 0,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": i + 1,
            "session.id": f"s-{i:03d}",
            "user.id": f"user-{i % 60:02d}",
        },
    )


@pytest.fixture
def crowd(client, project, ingest_key):
    send(client, ingest_key, [call(i) for i in range(N)])


def keys(html: str) -> list[str]:
    return re.findall(r'<tr class="group-item" data-group="([^"]+)"', html)


def get(client, project, path, **params):
    return client.get(f"/admin/monitoring/{project.id}/traces/{path}", {"range": "24h", **params})


def api_all(client, project, which: str, **params) -> list[str]:
    """Every key through the API's pages of 7."""
    seen, cursor = [], None
    for _ in range(100):
        query = {"range": "24h", "limit": 7, **params, **({"cursor": cursor} if cursor else {})}
        r = client.get(f"/api/v1/projects/{project.id}/{which}", query)
        assert r.status_code == 200, r.content
        data = r.json()
        assert len(data["items"]) <= 7
        seen += [i["key"] for i in data["items"]]
        cursor = data["next_cursor"]
        if not cursor:
            return seen
    raise AssertionError("the pages did not end")


def test_the_sessions_list_pages_at_50_rows_and_the_more_row_continues(client, alice, project, crowd):
    client.force_login(alice)
    r = get(client, project, "sessions/")
    assert r.status_code == 200
    html = r.content.decode()
    first = keys(html)
    assert first == [f"s-{i:03d}" for i in range(N - 1, N - 51, -1)]  # 50, most recently active first
    more = re.search(r'<tr id="group-more".*?href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    assert "cursor=" in more and "range=24h" in more
    second = client.get(more, headers={"HX-Request": "true", "HX-Target": "group-more"})
    assert second.status_code == 200 and "<html" not in second.content.decode()  # only the rows
    assert keys(second.content.decode()) == [f"s-{i:03d}" for i in range(N - 51, N - 101, -1)]
    full = client.get(more).content.decode()
    assert "data-first-page" in full and 'id="group-rows"' in full


@pytest.mark.parametrize("which", ["sessions", "users"])
def test_every_sort_pages_through_each_key_once_in_order_pages_and_api(client, alice, project, crowd, which):
    client.force_login(alice)
    everyone = [f"s-{i:03d}" for i in range(N)] if which == "sessions" else [f"user-{i:02d}" for i in range(60)]
    for sort in ("last", "first", "key", "runs", "calls", "errors", "tokens", "cost"):
        seen = api_all(client, project, which, sort=sort)
        assert sorted(seen) == everyone and len(seen) == len(everyone), sort
    assert api_all(client, project, which, sort="key") == everyone
    if which == "sessions":
        assert api_all(client, project, which, sort="tokens") == [f"s-{i:03d}" for i in range(N - 1, -1, -1)]
        errors = api_all(client, project, which, sort="errors")
        assert errors[:18] == sorted((f"s-{i:03d}" for i in range(N) if i % 7 == 0), reverse=True)
    else:  # user-59 has calls 59 and 119: the most output tokens
        assert api_all(client, project, which, sort="tokens")[:2] == ["user-59", "user-58"]
    # The page's headers sort, and say which one is sorted.
    html = get(client, project, f"{which}/", sort="tokens").content.decode()
    assert re.search(r'aria-sort="descending"><a href="[^"]*sort=tokens[^"]*" data-sort="tokens" class="sorted"', html)
    for key in ("key", "runs", "calls", "errors", "tokens", "cost", "first", "last"):
        assert f'data-sort="{key}"' in html


def test_search_narrows_the_lists_by_a_part_of_the_id(client, alice, project, crowd):
    client.force_login(alice)
    html = get(client, project, "sessions/", q="S-10").content.decode()
    assert keys(html) == [f"s-{i}" for i in range(109, 99, -1)]
    assert 'value="S-10"' in html and "data-clear-search" in html
    assert api_all(client, project, "users", q="user-0", sort="key") == [f"user-0{i}" for i in range(10)]
    nothing = get(client, project, "users/", q="nobody").content.decode()
    assert keys(nothing) == [] and "nobody" in nothing


def test_the_filter_bar_narrows_the_lists(client, alice, project, crowd):
    client.force_login(alice)
    failed = keys(get(client, project, "sessions/", status="error").content.decode())
    assert failed == sorted((f"s-{i:03d}" for i in range(N) if i % 7 == 0), reverse=True)
    assert keys(get(client, project, "sessions/", service="nothing-here").content.decode()) == []


def test_bad_list_parameters_are_a_clear_400(client, alice, charlie, project, crowd):
    client.force_login(alice)
    for params in ({"sort": "name"}, {"cursor": "not-a-cursor"}, {"limit": "0"}, {"limit": "501"}, {"q": "x" * 501}):
        r = client.get(f"/api/v1/projects/{project.id}/sessions", {"range": "24h", **params})
        assert r.status_code == 400 and r.json()["error"], params
    page = client.get(f"/api/v1/projects/{project.id}/sessions", {"range": "24h", "limit": 2}).json()
    # A cursor belongs to its sort.
    r = client.get(f"/api/v1/projects/{project.id}/sessions", {"sort": "cost", "cursor": page["next_cursor"]})
    assert r.status_code == 400 and "cursor" in r.json()["error"]
    r = get(client, project, "users/", sort="nope")
    assert r.status_code == 400 and "sort" in r.content.decode()
    client.force_login(charlie)
    assert client.get(f"/api/v1/projects/{project.id}/users").status_code == 404
    client.logout()
    assert client.get(f"/api/v1/projects/{project.id}/users").status_code == 401


def test_the_api_item_shape(client, alice, project, crowd):
    client.force_login(alice)
    data = client.get(
        f"/api/v1/projects/{project.id}/sessions", {"range": "24h", "q": "s-007", "tz": "Asia/Seoul"}
    ).json()
    (item,) = data["items"]
    assert data["next_cursor"] is None
    assert (item["key"], item["calls"], item["errors"], item["runs"], item["failed_runs"]) == ("s-007", 1, 1, 0, 0)
    assert (item["input_tokens"], item["output_tokens"]) == (10, 8)
    assert item["first_seen"].endswith("+09:00") and item["last_seen"] == item["first_seen"]
    assert item["cost_usd"] > 0 and item["unpriced"] == 0


# --- exports ---------------------------------------------------------------------------------------


def export(client, project, fmt: str, **params):
    r = client.get(f"/admin/monitoring/{project.id}/traces/export.{fmt}", {"range": "24h", **params})
    assert r.status_code == 200, r.content
    body = b"".join(r.streaming_content).decode()
    return r, (list(csv.DictReader(io.StringIO(body))) if fmt == "csv" else json.loads(body))


def test_the_agent_runs_list_exports_as_it_is_sorted_and_narrowed(client, alice, project, world):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/traces/", {"range": "24h", "sort": "cost"}).content.decode()
    link = re.search(r'href="([^"]+)" download hx-boost="false" data-export="csv"', html).group(1)
    assert "export.csv" in link and "kind=runs" in link and "sort=cost" in link
    r, rows = export(client, project, "csv", kind="runs")
    assert re.fullmatch(
        r'attachment; filename="traces-alices-project-runs-\d{8}T\d{6}Z\.csv"', r["Content-Disposition"]
    )
    assert [row["trace_id"] for row in rows] == [tid(world[k]) for k in ("r5", "r4", "r3", "r2", "r1")]
    first = rows[-1]
    assert (first["end_user"], first["session"], first["llm_calls"], first["status"]) == (
        "kim@example.com",
        "chat-42",
        "2",
        "OK",
    )
    assert (first["first_input"], first["last_output"]) == ("Where is my order 1182?", "Order 1182 ships tomorrow.")
    assert first["input_tokens"] == "200" and first["duration_ms"] == "1000.0" and first["name"] == "support_agent"
    assert rows[1]["unpriced_calls"] == "1" and rows[1]["first_input"] == "안녕하세요, 환불 가능한가요?"
    _, data = export(client, project, "json", kind="runs", session="chat-42", sort="duration")
    assert [i["trace_id"] for i in data["items"]] == [tid(world[k]) for k in ("r2", "r3", "r1")]
    assert data["items"][0]["last_output"] == "I could not reach the address service." and data["count"] == 3
    bad = client.get(f"/admin/monitoring/{project.id}/traces/export.csv", {"kind": "runs", "sort": "name"})
    assert bad.status_code == 400


def test_span_exports_carry_end_user_session_and_the_input_and_output_text(client, alice, project, world):
    client.force_login(alice)
    _, rows = export(client, project, "csv", kind="llm")
    by_input = {row["input"]: row for row in rows}
    asked = by_input["Where is my order 1182?"]
    assert (asked["output"], asked["end_user"], asked["session"]) == (
        "Let me look it up.",
        "kim@example.com",
        "chat-42",
    )
    assert by_input["It was last week"]["output"] == "Order 1182 ships tomorrow."
    plain = next(row for row in rows if row["service"] == "backend")  # a gateway call of chat-42, no messages
    assert (plain["session"], plain["input"], plain["output"]) == ("chat-42", "", "")
    _, data = export(client, project, "json", kind="all", q="ping")
    call = next(i for i in data["items"] if i["name"] == "ChatCompletion")
    assert (call["input"], call["output"], call["end_user"], call["session"]) == ("ping", "pong", "", "")


# --- Replay: short ids, and its run list's filter bar, search and paging -----------------------------


def gateway_call(trace_hex: str) -> S:
    return S(
        "litellm_request",
        service="litellm-proxy",
        at=AT,
        trace=bytes.fromhex(trace_hex),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 5,
        },
    )


def replay(client, project, path="", **params):
    return client.get(f"/admin/monitoring/{project.id}/replay/{path}", {"range": "24h", **params})


def test_replay_opens_a_run_by_its_short_id_or_any_6_digit_start(client, alice, project, world):
    client.force_login(alice)
    full = tid(world["r1"])
    for typed in (full[:8], full[:6].upper(), full):
        r = replay(client, project, trace=typed)
        assert r.status_code == 200, typed
        assert f"<code>{full}</code>" in r.content.decode() and "data-step-position" in r.content.decode()
    r = replay(client, project, "compare/", a=tid(world["r1"])[:8], b=tid(world["r3"])[:8])
    assert r.status_code == 200 and full in r.content.decode() and tid(world["r3"]) in r.content.decode()
    r = replay(client, project, trace="zz-not-hex")
    assert r.status_code == 400 and "32 hex digits, or its first 6 or more" in r.content.decode()


def test_an_ambiguous_or_unknown_short_id_says_so(client, alice, charlie, project, other_project, ingest_key):
    twins = ["abcdef00" + "1" * 24, "abcdef11" + "2" * 24]
    send(client, ingest_key, [gateway_call(t) for t in twins])
    other_key = IngestKey.issue(other_project)[1]
    send(client, other_key, [gateway_call("fedcba00" + "3" * 24)])
    client.force_login(alice)
    r = replay(client, project, trace="abcdef")
    html = r.content.decode()
    assert r.status_code == 400 and "More than one trace starts with abcdef" in html
    assert re.findall(r'data-candidate="([0-9a-f]{32})"', html) == twins  # each a link that opens it
    assert replay(client, project, trace="abcdef1").status_code == 200
    r = replay(client, project, trace="fedcba")  # another project's: not found here
    assert r.status_code == 404 and "No trace of this project starts with fedcba" in r.content.decode()
    client.force_login(charlie)
    assert replay(client, other_project, trace="fedcba00").status_code == 200


def test_the_replay_run_list_has_the_filter_bar_search_and_pages(client, alice, project, world, monkeypatch):
    from monitoring.web.views import replay as replay_views

    client.force_login(alice)
    html = replay(client, project).content.decode()
    assert 'class="filter-bar"' in html and "data-replay-search" in html
    listed = re.findall(r'data-replay-trace="([0-9a-f]{32})"', html)
    runs = [tid(world[k]) for k in ("r5", "r4", "r3", "r2", "r1")]
    assert [t for t in listed if t in runs] == runs  # newest first (and the plain call's trace)
    assert len(listed) == 6  # the Replay re-run is left out unless the filter bar asks for it
    assert len(re.findall(r'data-replay-trace="', replay(client, project, replays="1").content.decode())) == 7
    # Search: a short id, a session, an end user, a name.
    found = re.findall(r'data-replay-trace="([0-9a-f]{32})"', replay(client, project, q=runs[2][:8]).content.decode())
    assert found == [runs[2]]
    found = re.findall(r'data-replay-trace="([0-9a-f]{32})"', replay(client, project, q="chat-43").content.decode())
    assert found == [runs[1]]
    found = re.findall(r'data-replay-trace="([0-9a-f]{32})"', replay(client, project, q="KIM@").content.decode())
    assert found == runs[2:]
    # The filter bar: status and service.
    failed = re.findall(r'data-replay-trace="([0-9a-f]{32})"', replay(client, project, status="error").content.decode())
    assert failed == [tid(world["r2"])]
    assert not re.findall(r'data-replay-trace="', replay(client, project, service="nothing-here").content.decode())
    # Pages of two, through the Older links: every trace once, in order.
    monkeypatch.setattr(replay_views, "PICKER_PAGE", 2)
    seen, url = [], f"/admin/monitoring/{project.id}/replay/?range=24h"
    for _ in range(10):
        page = client.get(url).content.decode()
        seen += re.findall(r'data-replay-trace="([0-9a-f]{32})"', page)
        more = re.search(r'<a href="([^"]+)" data-older>', page)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")
        assert "range=24h" in url
    assert seen == listed
    assert replay(client, project, cursor="bad").status_code == 400


# --- Korean pages hold no English msgid ---------------------------------------------------------------


class _Shown(HTMLParser):
    """The text a person reads on a page: text nodes and the titles, placeholders and labels
    (not scripts, styles, code, or the values of data the page shows)."""

    SKIP = {"script", "style", "code", "pre", "textarea", "option", "time"}

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        for name, value in attrs:
            if name in ("title", "placeholder", "aria-label", "alt") and value:
                self.found.append(value.strip())

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping and data.strip():
            self.found.append(" ".join(data.split()))


def test_every_tab_in_korean_shows_no_english_message(client, alice, project, world):
    """Render each tab with Accept-Language ko and look for a text that is an English msgid."""
    ko = polib.pofile(str(Path(__file__).resolve().parents[1] / "monitoring/locale/ko/LC_MESSAGES/django.po"))
    # Every message with letters and no placeholder: a Korean page shows its msgstr, never the msgid
    # (also when the msgstr was the msgid copied: "Temperature" on Replay's re-run form).
    english = {e.msgid for e in ko if "%" not in e.msgid and re.search("[a-z]{3}", e.msgid)}
    english -= {"Tool", "Error", "OK", "LLM call"}  # also the names of a span's role or status in the data
    client.force_login(alice)
    pid, r1, r4 = project.id, tid(world["r1"]), tid(world["r4"])
    llm_step = tid(world["r1"])
    pages = [
        f"/admin/monitoring/{pid}/overview/",
        f"/admin/monitoring/{pid}/analytics/",
        *(f"/admin/monitoring/{pid}/traces/?kind={k}" for k in ("runs", "agent", "llm", "all")),
        f"/admin/monitoring/{pid}/traces/sessions/",
        f"/admin/monitoring/{pid}/traces/sessions/?session=chat-42",
        f"/admin/monitoring/{pid}/traces/users/",
        f"/admin/monitoring/{pid}/traces/users/?user=lee",
        f"/admin/monitoring/{pid}/traces/{r1}/",
        f"/admin/monitoring/{pid}/replay/",
        f"/admin/monitoring/{pid}/replay/?trace={llm_step}&step=2",  # an LLM call: the re-run form
        f"/admin/monitoring/{pid}/replay/compare/?a={r1}&b={r4}",
        f"/admin/monitoring/{pid}/monitors/",
        f"/admin/monitoring/{pid}/monitors/new",
        f"/admin/monitoring/{pid}/monitors/channels/",
        f"/admin/monitoring/{pid}/scores/configs/",
        f"/admin/monitoring/{pid}/judges/",
        "/admin/monitoring/health",
        "/admin/monitoring/preferences",
        "/admin/monitoring/tokens",
    ]
    left = {}
    for url in pages:
        sep = "&" if "?" in url else "?"
        r = client.get(url + sep + "range=24h", headers={"Accept-Language": "ko"})
        assert r.status_code == 200 or (url.endswith("health") and r.status_code == 503), (url, r.status_code)
        html = r.content.decode()
        assert '<html lang="ko">' in html, url
        if "replay/?trace=" in url:
            assert "data-rerun-form" in html  # the form whose labels are checked
        shown = _Shown()
        shown.feed(html)
        found = sorted({text for text in shown.found if text in english})
        if found:
            left[url] = found
    assert not left, f"English on Korean pages: {left}"
