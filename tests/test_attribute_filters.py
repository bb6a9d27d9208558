"""Filters on any attribute (`attr=<key>:<op>[:<value>]`, issue 24) against the real engine: each SDK
dialect's spelling of tags, metadata, users and sessions, resource attributes, the operators, the
runs list (a run matches when any span does), the span lists, the Overview's numbers, exports, the
key picker, and clear 400s.

Seeded (each run: an agent root and one LLM call, ten minutes apart):
- oi: OpenInference, `tag.tags` ["vip", "beta"], `metadata` '{"tenant": "acme", "prompt": {"v": 7}}'
  on the root only, `user.id` kim and `session.id` s-1 on both spans, temperature 0.2 on the call;
- lf: Langfuse, `langfuse.trace.tags` ["vip"], `langfuse.trace.metadata.tenant` globex,
  `langfuse.user.id` lee, `langfuse.session.id` s-2 on the root, temperature 0.9 on the call;
- genai: GenAI semconv call alone (no run) with `gen_ai.conversation.id` s-3, resource
  `deployment.environment` staging (the others: production).
"""

import datetime as dt
import json

import pytest
from conftest import api_token
from otlp import S, post, request

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=40)
MIN = dt.timedelta(minutes=1)


def _call(parent: S | None, *, at, model, temperature, extra=None, service="agent-support") -> S:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.request.temperature": temperature,
        **(extra or {}),
    }
    if parent is None:
        return S("chat " + model, service=service, at=at, ms=200, attributes=attributes)
    return parent.child("chat " + model, at=at, ms=200, attributes=attributes)


@pytest.fixture
def world(client, project, ingest_key):
    w = {}
    oi_who = {"user.id": "kim", "session.id": "s-1"}
    w["oi"] = S(
        "support_agent",
        service="agent-support",
        at=AT,
        ms=1000,
        attributes={
            "openinference.span.kind": "AGENT",
            "tag.tags": ["vip", "beta"],
            "metadata": json.dumps({"tenant": "acme", "prompt": {"v": 7}}),
            **oi_who,
        },
    )
    w["oi_call"] = _call(w["oi"], at=AT + dt.timedelta(milliseconds=100), model="gpt-4o", temperature=0.2, extra=oi_who)
    w["lf"] = S(
        "support_agent",
        service="agent-support",
        at=AT + 10 * MIN,
        ms=1000,
        attributes={
            "openinference.span.kind": "AGENT",
            "langfuse.trace.tags": ["vip"],
            "langfuse.trace.metadata.tenant": "globex",
            "langfuse.user.id": "lee",
            "langfuse.session.id": "s-2",
        },
    )
    w["lf_call"] = _call(
        w["lf"], at=AT + 10 * MIN + dt.timedelta(milliseconds=100), model="gpt-4o-mini", temperature=0.9
    )
    resource = {"deployment.environment": "production"}
    assert (
        post(client, ingest_key, request(w["oi"], w["oi_call"], w["lf"], w["lf_call"], resource=resource)).status_code
        == 200
    )
    w["genai"] = _call(
        None,
        at=AT + 20 * MIN,
        model="claude-haiku",
        temperature=0.5,
        extra={"gen_ai.conversation.id": "s-3"},
        service="backend",
    )
    staging = {"deployment.environment": "staging"}
    assert post(client, ingest_key, request(w["genai"], resource=staging)).status_code == 200
    return w


def _api(client, project, token, **params):
    query = [("range", "24h"), *((k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs]))]
    return client.get(f"/api/v1/projects/{project.id}/traces", query, headers={"Authorization": f"Bearer {token}"})


def _runs(client, project, token, attr) -> set[str]:
    r = _api(client, project, token, kind="runs", attr=attr)
    assert r.status_code == 200, r.content
    return {item["trace_id"] for item in r.json()["items"]}


def _calls(client, project, token, attr) -> set[str]:
    r = _api(client, project, token, kind="llm", attr=attr)
    assert r.status_code == 200, r.content
    return {item["span_id"] for item in r.json()["items"]}


def tid(s: S) -> str:
    return s.trace.hex()


def sid(s: S) -> str:
    return s.span_id.hex()


def test_it_filters_runs_on_each_dialects_tags_metadata_users_and_sessions(client, alice, project, world):
    token = api_token("alice")
    oi, lf = tid(world["oi"]), tid(world["lf"])
    # Tags: an OpenInference list and a Langfuse list, one element each matching; kin keys.
    assert _runs(client, project, token, "tag.tags:eq:vip") == {oi, lf}
    assert _runs(client, project, token, "tag.tags:eq:beta") == {oi}
    assert _runs(client, project, token, "langfuse.trace.tags:eq:beta") == {oi}
    assert _runs(client, project, token, "tag.tags:ne:beta") == {lf}
    # Metadata: inside OpenInference's JSON string, and Langfuse's flattened key.
    assert _runs(client, project, token, "metadata.tenant:eq:acme") == {oi}
    assert _runs(client, project, token, "metadata.tenant:eq:globex") == {lf}
    assert _runs(client, project, token, "langfuse.trace.metadata.tenant:eq:acme") == {oi}
    assert _runs(client, project, token, "metadata.tenant:exists") == {oi, lf}
    assert _runs(client, project, token, 'metadata.prompt:contains:"v"') == {oi}
    # Users and sessions in every spelling.
    assert _runs(client, project, token, "user.id:eq:lee") == {lf}
    assert _runs(client, project, token, "langfuse.user.id:eq:kim") == {oi}
    assert _runs(client, project, token, "session.id:eq:s-2") == {lf}
    assert _runs(client, project, token, "langfuse.session.id:missing") == set()
    # A run matches when any of its spans does: the temperature lives on the call, not the root.
    assert _runs(client, project, token, "gen_ai.request.temperature:gt:0.5") == {lf}
    assert _runs(client, project, token, "gen_ai.request.temperature:lt:0.5") == {oi}
    # Two filters: both must hold.
    assert _runs(client, project, token, ["tag.tags:eq:vip", "metadata.tenant:contains:GLOB"]) == {lf}


def test_it_filters_calls_on_their_own_and_resource_attributes(client, alice, project, world):
    token = api_token("alice")
    every = {sid(world[k]) for k in ("oi_call", "lf_call", "genai")}
    assert _calls(client, project, token, "deployment.environment:eq:staging") == {sid(world["genai"])}
    assert _calls(client, project, token, "deployment.environment:ne:staging") == every - {sid(world["genai"])}
    assert _calls(client, project, token, "session.id:eq:s-3") == {sid(world["genai"])}  # gen_ai.conversation.id
    assert _calls(client, project, token, "gen_ai.request.temperature:gt:0.3") == {
        sid(world["lf_call"]),
        sid(world["genai"]),
    }
    assert _calls(client, project, token, "gen_ai.request.model:contains:HAIKU") == {sid(world["genai"])}
    # A tag on the run's root is not the call's own.
    assert _calls(client, project, token, "tag.tags:exists") == set()
    assert _calls(client, project, token, "user.id:eq:kim") == {sid(world["oi_call"])}


def test_the_overview_api_counts_only_the_matching_calls(client, alice, project, world):
    token = api_token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/projects/{project.id}/overview"
    everything = client.get(url, {"range": "24h"}, headers=headers).json()
    staging = client.get(url, {"range": "24h", "attr": "deployment.environment:eq:staging"}, headers=headers).json()
    assert everything["llm_calls"] == 3
    assert staging["llm_calls"] == 1
    assert staging["input_tokens"] == 100


def test_bad_attribute_filters_are_400s_naming_what_is_wrong(client, alice, project, world):
    token = api_token("alice")
    cases = {
        "tenant": "<key>:<op>[:<value>]",
        "tenant:like:acme": "operator must be one of",
        "tenant:eq": "needs a value",
        "tenant:exists:yes": "takes no value",
        "latency:gt:fast": "compares numbers",
        ":eq:x": "<key>:<op>[:<value>]",
    }
    for text, message in cases.items():
        r = _api(client, project, token, kind="runs", attr=text)
        assert r.status_code == 400, text
        assert message in r.json()["error"], (text, r.json())
    client.force_login(alice)
    page = client.get(f"/admin/monitoring/{project.id}/overview/", {"attr": "tenant:like:x"})
    assert page.status_code == 400
    assert "operator must be one of" in page.content.decode()


def test_a_value_may_hold_colons(client, alice, project, ingest_key):
    token = api_token("alice")
    span = S(
        "chat",
        service="svc",
        at=AT,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "url.full": "https://x.test:8443/a"},
    )
    assert post(client, ingest_key, request(span)).status_code == 200
    assert _calls(client, project, token, "url.full:eq:https://x.test:8443/a") == {sid(span)}


def test_pages_and_exports_keep_and_honour_the_filter(client, alice, project, world):
    client.force_login(alice)
    base = f"/admin/monitoring/{project.id}"
    html = client.get(
        f"{base}/traces/", {"range": "24h", "kind": "runs", "attr": "metadata.tenant:eq:globex"}
    ).content.decode()
    assert tid(world["lf"]) in html and tid(world["oi"]) not in html
    assert "attr=metadata.tenant%3Aeq%3Aglobex" in html  # the tabs' links keep it
    # The bar's three fields without script: key, operator, value.
    html = client.get(
        f"{base}/traces/", {"range": "24h", "kind": "llm", "attr_key": "user.id", "attr_op": "eq", "attr_value": "lee"}
    ).content.decode()
    assert "attr=user.id%3Aeq%3Alee" in html
    export = client.get(
        f"{base}/traces/export.csv", {"range": "24h", "kind": "llm", "attr": "deployment.environment:eq:staging"}
    )
    text = b"".join(export.streaming_content).decode()
    assert sid(world["genai"]) in text and sid(world["oi_call"]) not in text
    for tab in ("overview", "analytics"):
        r = client.get(f"{base}/{tab}/", {"range": "24h", "attr": "tag.tags:eq:vip"})
        assert r.status_code == 200, tab


def test_the_key_picker_lists_span_and_resource_keys_with_common_values(client, alice, project, world):
    token = api_token("alice")
    r = client.get(
        f"/api/v1/projects/{project.id}/attributes", {"range": "24h"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.content
    keys = {k["key"]: k for k in r.json()["items"]}
    assert keys["deployment.environment"]["resource"] is True
    assert set(keys["deployment.environment"]["values"]) == {"production", "staging"}
    assert set(keys["tag.tags"]["values"]) == {"vip", "beta"}
    assert keys["metadata.tenant"]["values"] == ["acme"]
    assert "langfuse.trace.metadata.tenant" in keys and keys["user.id"]["resource"] is False


def test_the_key_picker_and_filters_stay_in_their_project(client, alice, charlie, project, other_project, world):
    token = api_token("charlie")
    r = client.get(
        f"/api/v1/projects/{other_project.id}/attributes",
        {"range": "24h"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.json()["items"] == []
    r = client.get(
        f"/api/v1/projects/{project.id}/attributes", {"range": "24h"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 404


def test_cost_tokens_and_latency_ranges_narrow_calls_runs_and_numbers(client, alice, project, ingest_key):
    token = api_token("alice")
    root = S("agent", service="agent-a", at=AT, ms=5000, attributes={"openinference.span.kind": "AGENT"})
    big = _call(root, at=AT + dt.timedelta(seconds=1), model="gpt-4o", temperature=0.1)
    big.attributes["gen_ai.usage.input_tokens"] = 5000
    big.ms = 3000
    small = _call(None, at=AT + 5 * MIN, model="gpt-4o", temperature=0.1, service="backend")  # 110 tokens, 200 ms
    assert post(client, ingest_key, request(root, big, small)).status_code == 200
    assert _api(client, project, token, kind="llm", tokens_min="1000").json()["items"][0]["span_id"] == sid(big)
    assert len(_api(client, project, token, kind="llm", tokens_min="1000").json()["items"]) == 1
    assert {i["span_id"] for i in _api(client, project, token, kind="llm", latency_max="500").json()["items"]} == {
        sid(small)
    }
    runs = _api(client, project, token, kind="runs", latency_min="4000").json()["items"]
    assert [r["trace_id"] for r in runs] == [tid(root)]
    assert _api(client, project, token, kind="runs", latency_max="4000").json()["items"] == []
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/projects/{project.id}/overview"
    assert client.get(url, {"range": "24h", "tokens_max": "500"}, headers=headers).json()["llm_calls"] == 1
    for params, message in (
        ({"cost_min": "cheap"}, "'cost_min' must be a number"),
        ({"tokens_min": "9", "tokens_max": "1"}, "'tokens_min' is above"),
    ):
        r = client.get(url, {"range": "24h", **params}, headers=headers)
        assert r.status_code == 400 and message in r.json()["error"]
    client.force_login(alice)
    html = client.get(
        f"/admin/monitoring/{project.id}/traces/", {"range": "24h", "kind": "llm", "latency_max": "500"}
    ).content.decode()
    assert (
        sid(small) in html
        and sid(big) not in html
        and 'name="latency_max" min="0" step="any" size="5" value="500"' in html
    )
