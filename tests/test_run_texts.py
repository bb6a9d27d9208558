"""A run's input and output, by one rule everywhere (monitoring.queries.runs.texts): the last user
message of its first *chat* call and the answer of its last chat call; an embedding call is nobody's
question; a run without a chat call shows its agent step's own input and output. The runs list, its
API, a session's conversation, a user page and the judges read it the same way, live and settled."""

import datetime as dt
import html as htmllib
import json
import re

import pytest
from otlp import S, send

from monitoring.queries import judging
from monitoring.semantics import settle

pytestmark = pytest.mark.django_db

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)
QUESTION = "Which invoices are overdue for ACME?"
ANSWER = "Three invoices are overdue: 1041, 1057 and 1090."
EMBED_BODY = json.dumps({"input": QUESTION, "model": "text-embedding-3-small", "encoding_format": "base64"})
WHO = {"session.id": "chat-7", "user.id": "kim"}


def embedding(parent: S, at, who=WHO) -> S:
    """OpenInference's OpenAI embedding span: its request body is JSON in input.value."""
    return parent.child(
        "CreateEmbeddings",
        at=at,
        ms=40,
        attributes={
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "input.value": EMBED_BODY,
            "input.mime_type": "application/json",
            "embedding.embeddings.0.embedding.text": QUESTION,
            "llm.token_count.prompt": 9,
            "llm.token_count.total": 9,
            **who,
        },
    )


def rag_run(at) -> tuple[S, list[S]]:
    """An agent that embeds the question, then asks the model (the embedding comes first)."""
    root = S(
        "billing_agent", service="agent-billing", at=at, ms=2000, attributes={"openinference.span.kind": "AGENT", **WHO}
    )
    chat = root.child(
        "ChatCompletion",
        at=at + dt.timedelta(milliseconds=200),
        ms=800,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 300,
            "llm.token_count.completion": 20,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Answer from these invoices: …",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": QUESTION,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": ANSWER,
            **WHO,
        },
    )
    # A last embedding (indexing the answer) is not the run's output either.
    return root, [
        root,
        embedding(root, at + dt.timedelta(milliseconds=50)),
        chat,
        embedding(root, at + dt.timedelta(milliseconds=1500)),
    ]


def embed_only_run(at) -> tuple[S, list[S]]:
    """An agent step that only embeds: its own input and output are the run's."""
    root = S(
        "indexer_agent",
        service="agent-indexer",
        at=at,
        ms=500,
        attributes={
            "openinference.span.kind": "AGENT",
            "input.value": "Index ticket 88",
            "output.value": "Ticket 88 indexed.",
        },
    )
    return root, [root, embedding(root, at + dt.timedelta(milliseconds=10), who={})]


@pytest.fixture
def runs_sent(client, project, ingest_key):
    rag, spans = rag_run(AT)
    indexer, more = embed_only_run(AT + dt.timedelta(minutes=2))
    send(client, ingest_key, spans + more, scope="openinference.instrumentation.openai")
    return rag.trace.hex(), indexer.trace.hex()


def page(client, project, path="traces/", **params) -> str:
    r = client.get(f"/admin/monitoring/{project.id}/{path}", {"range": "24h", **params})
    assert r.status_code == 200, r.content[:2000]
    return htmllib.unescape(r.content.decode())


@pytest.mark.parametrize("mode", ["live", "settled"])
def test_a_runs_input_is_its_first_chat_calls_question_not_an_embedding_request(
    client, alice, project, runs_sent, mode
):
    rag, indexer = runs_sent
    if mode == "settled":
        settle.settle_once()
    client.force_login(alice)
    items = {
        i["trace_id"]: i
        for i in client.get(f"/api/v1/projects/{project.id}/traces", {"range": "24h", "kind": "runs"}).json()["items"]
    }
    assert (items[rag]["first_input"], items[rag]["last_output"]) == (QUESTION, ANSWER)
    assert (items[indexer]["first_input"], items[indexer]["last_output"]) == ("Index ticket 88", "Ticket 88 indexed.")
    runs_html = page(client, project, kind="runs")
    assert f'data-preview="input" title="{QUESTION}"' in runs_html
    assert f'data-preview="output" title="{ANSWER}"' in runs_html
    assert 'data-preview="input" title="Index ticket 88"' in runs_html
    for html in (
        runs_html,
        page(client, project, "traces/sessions/", session="chat-7"),
        page(client, project, "traces/users/", user="kim"),
    ):
        assert '"encoding_format"' not in html and '{"input"' not in html
    session = page(client, project, "traces/sessions/", session="chat-7")
    bubbles = re.findall(r'<div class="bubble (user|assistant)" data-role="\1">(.*?)</div>', session, re.S)
    assert bubbles == [("user", QUESTION), ("assistant", ANSWER)]
    assert f'title="{QUESTION}"' in page(client, project, "traces/users/", user="kim")


def test_a_judge_reads_a_runs_input_by_the_same_rule(project, runs_sent):
    rag, indexer = runs_sent
    settle.settle_once()
    targets = {t.trace_id: t for t in judging.targets_by_id(str(project.id), "run", [(rag, ""), (indexer, "")])}
    assert judging.content(str(project.id), targets[rag]) == (QUESTION, ANSWER)
    assert judging.content(str(project.id), targets[indexer]) == ("Index ticket 88", "Ticket 88 indexed.")
