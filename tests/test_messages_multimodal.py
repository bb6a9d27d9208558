"""Messages in the GenAI `parts` form with images and reasoning (handed case
case-05-genai-parts-multimodal, tests/fixtures/cases): images shown as images (inline data as an <img>
of an allowed raster type, an address as a link), the reasoning apart from the answer, and Replay
re-sends the real parts (OpenAI `image_url` content parts) and records them back as parts."""

import html as htmllib
import json
import re

import pytest
from conftest import last_hour
from django.test import override_settings
from otlp import post_recorded, recorded
from receivers import http_receiver

from monitoring.queries import overview as overview_q
from monitoring.queries.spans import ListQuery, list_spans
from monitoring.replay import forms as rerun_forms
from monitoring.replay import rerun, steps
from monitoring.semantics import messages, settle

pytestmark = pytest.mark.django_db

CASE = "cases/case-05-genai-parts-multimodal"
TRACE, SPAN = "c05b0000000000000000000000000001", "c05b000000000001"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
JPEG_URL = "https://example.org/starry-night.jpg"
ANSWER = "This is The Starry Night by Vincent van Gogh (1889)."
REASONING = "Swirling night sky over a village: Van Gogh."


@pytest.mark.parametrize("mode", ["live", "settled"])
def test_case_05_one_call_priced_and_found_by_its_text(client, project, ingest_key, mode):
    assert post_recorded(client, ingest_key, recorded(CASE)).status_code == 200
    if mode == "settled":
        settle.settle_once()
    o = overview_q.overview(last_hour(project))
    assert o.llm_calls == 1
    assert o.total_cost_usd == pytest.approx(0.00475, abs=1e-12)  # 1,500 x $2.50/M + 100 x $10/M
    for term in ("Starry Night", "museum guide", "이 그림은"):
        found = list_spans(last_hour(project), ListQuery(kind="llm", q=term)).items
        assert [r.span_id for r in found] == [SPAN], term


def test_case_05_the_trace_page_shows_the_images_and_keeps_reasoning_apart(client, alice, project, ingest_key):
    assert post_recorded(client, ingest_key, recorded(CASE)).status_code == 200
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/traces/{TRACE}/", {"span": SPAN})
    assert r.status_code == 200
    page = r.content.decode()
    page = page[page.index('<section class="chat">') :]
    page = page[: page.index("</section>")]  # the chat (the raw attributes below keep the JSON as sent)
    assert "You are a museum guide. Answer in one sentence." in page
    assert "Which painting is this? 이 그림은 무엇인가요?" in page
    assert f'src="data:image/png;base64,{PNG}"' in page and 'data-media="inline"' in page
    link = re.search(r'<a class="msg-link" href="([^"]+)"[^>]*rel="noopener noreferrer nofollow"', page)
    assert link and htmllib.unescape(link.group(1)) == JPEG_URL
    assert "[blob]" not in page and "[uri]" not in page and "iVBOR" not in page.replace(f"base64,{PNG}", "")
    reasoning = re.search(r"data-reasoning>.*?<div class=\"msg-content\">(.*?)</div>", page, re.S)
    assert reasoning and reasoning.group(1) == REASONING
    answers = re.findall(
        r'data-role="assistant">.*?</div>\s*(?:<details.*?</details>\s*)?<div class="msg-content">(.*?)</div>',
        page,
        re.S,
    )
    assert answers == [ANSWER]  # the answer alone, its reasoning not merged into it


def test_only_raster_images_of_valid_base64_are_inlined():
    ok = messages.Media("image", "image/png", data=PNG)
    assert ok.data_uri == f"data:image/png;base64,{PNG}"
    assert messages.Media("image", "image/svg+xml", data=PNG).data_uri == ""  # an SVG can carry script
    assert messages.Media("image", "image/png", data='x" onerror="alert(1)').data_uri == ""
    assert messages.Media("image", "image/png", data="A" * (messages.MAX_INLINE_IMAGE_CHARS + 4)).data_uri == ""
    assert messages.Media("image", "", uri="javascript:alert(1)").link == ""
    assert messages.Media("image", "", uri=JPEG_URL).link == JPEG_URL


def test_openai_and_anthropic_images_and_thinking_are_read_too():
    attrs = {
        "input.value": json.dumps(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        ],
                    }
                ]
            }
        ),
        "output.value": json.dumps(
            {
                "type": "message",
                "content": [{"type": "thinking", "thinking": "A tiny PNG."}, {"type": "text", "text": "A pixel."}],
            }
        ),
    }
    (asked,) = messages.request_messages(attrs)
    assert asked.content == "What is this?" and asked.media == [messages.Media("image", "image/png", data=PNG)]
    (said,) = messages.response_messages(attrs)
    assert (said.content, said.reasoning) == ("A pixel.", "A tiny PNG.")


def test_case_05_replay_sends_the_real_parts_and_records_them_back(client, alice, project, ingest_key):
    assert post_recorded(client, ingest_key, recorded(CASE)).status_code == 200
    step = steps.load_step(project, TRACE, SPAN)
    edited = json.loads(rerun_forms.initial(step)["messages"])
    user = next(m for m in edited if m["role"] == "user")
    assert user["content"] == [
        {"type": "text", "text": "Which painting is this? 이 그림은 무엇인가요?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": JPEG_URL}},
    ]
    assert "[blob]" not in json.dumps(edited) and "[uri]" not in json.dumps(edited)
    client.force_login(alice)
    with http_receiver() as gateway, override_settings(LITELLM_BASE_URL=gateway.url):
        client.post(
            f"/admin/monitoring/{project.id}/replay/rerun",
            {"trace": TRACE, "span": SPAN, "model": "gpt-4o", "messages": json.dumps(edited)},
        )
    (sent,) = gateway.received
    assert sent.path == "/v1/chat/completions"
    assert json.loads(sent.body)["messages"] == edited  # what the gateway got: the real image parts
    # A recorded re-run stores them as GenAI parts, which read back as the same images.
    back = messages.request_messages({"gen_ai.input.messages": rerun._parts(edited)})
    assert [m.media for m in back if m.role == "user"] == [
        [messages.Media("image", "image/png", data=PNG), messages.Media("image", "", uri=JPEG_URL)]
    ]
