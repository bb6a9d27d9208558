"""Korean and English: the catalogue is complete, compiled, and the pages speak the viewer's language.

The catalogue check reads the templates and the code the way `makemessages` does (Django's own
`templatize` for templates, the gettext calls for Python) without GNU gettext, which CI lacks:
every message the product can show has a non-empty, non-fuzzy Korean translation with the same
placeholders, and the committed .mo files say what the .po files say.

To update after changing a message: `python manage.py makemessages -l ko -l en --no-obsolete
--ignore=.venv --ignore=tests --ignore=bench --ignore=var`, translate, then compile (README, "Languages").
"""

import ast
import io
import re
import tokenize
from pathlib import Path

import polib
import pytest
from django.utils.translation.template import templatize

from monitoring.models import UserPreference

REPO = Path(__file__).resolve().parents[1]
LOCALE = REPO / "monitoring" / "locale"
KO_PO, KO_MO = LOCALE / "ko/LC_MESSAGES/django.po", LOCALE / "ko/LC_MESSAGES/django.mo"
EN_PO, EN_MO = LOCALE / "en/LC_MESSAGES/django.po", LOCALE / "en/LC_MESSAGES/django.mo"

SINGULAR = {"_", "gettext", "gettext_lazy", "gettext_noop"}
PLURAL = {"ngettext", "ngettext_lazy"}
CONTEXT = {"pgettext", "pgettext_lazy"}
CONTEXT_PLURAL = {"npgettext", "npgettext_lazy"}
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[sdrf]")


def _key(context, strings):
    return (context, strings[0], strings[1] if len(strings) > 1 else None)


def _call_key(name: str, strings: list[str]):
    if name in SINGULAR and strings:
        return _key(None, strings[:1])
    if name in PLURAL and len(strings) >= 2:
        return _key(None, strings[:2])
    if name in CONTEXT and len(strings) >= 2:
        return _key(strings[0], strings[1:2])
    if name in CONTEXT_PLURAL and len(strings) >= 3:
        return _key(strings[0], strings[1:3])
    return None


def python_messages(source: str) -> set:
    """The gettext calls with literal arguments in Python code, as (context, msgid, msgid_plural)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            strings = []
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    break
                strings.append(arg.value)
            key = _call_key(node.func.id, strings)
            if key:
                found.add(key)
    return found


def template_messages(source: str, origin: str) -> set:
    """Messages of a template: Django's templatize (what makemessages feeds xgettext), then its calls."""
    # Indentation means nothing here, and would trip Python's tokenizer.
    code = "\n".join(line.lstrip() for line in templatize(source, origin).splitlines())
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    found = set()
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or i + 1 >= len(tokens) or tokens[i + 1].string != "(":
            continue
        strings, j = [], i + 2
        while j < len(tokens) and tokens[j].type == tokenize.STRING:
            strings.append(ast.literal_eval(tokens[j].string))
            j += 1
            if tokens[j].string == ",":
                j += 1
        key = _call_key(tok.string, strings)
        if key:
            found.add(key)
    return found


def used_messages() -> dict:
    """Every message the product can show -> the file it is in."""
    used = {}
    for path in sorted((REPO / "templates").rglob("*.html")):
        for key in template_messages(path.read_text(), str(path)):
            used.setdefault(key, path.relative_to(REPO))
    for folder in ("monitoring", "portal"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for key in python_messages(path.read_text()):
                used.setdefault(key, path.relative_to(REPO))
    return used


def catalogue(path: Path) -> dict:
    return {(e.msgctxt, e.msgid, e.msgid_plural or None): e for e in polib.pofile(str(path)) if not e.obsolete}


def translations(entry) -> list[str]:
    return list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]


def test_the_extractor_finds_what_makemessages_finds():
    """A self-check of the reader on the shapes the templates and code use."""
    assert template_messages(
        '{% load i18n %}{% translate "Apply" %}{{ x|default:_("(none)") }}'
        "{% blocktranslate count n=k %}{{ n }} step{% plural %}{{ n }} steps{% endblocktranslate %}",
        "t.html",
    ) == {(None, "Apply", None), (None, "(none)", None), (None, "%(n)s step", "%(n)s steps")}
    assert python_messages(
        'x = _("a" " b")\ny = pgettext("ctx", "OK")\nz = ngettext("%(c)s run", "%(c)s runs", 2)'
    ) == {
        (None, "a b", None),
        ("ctx", "OK", None),
        (None, "%(c)s run", "%(c)s runs"),
    }


def korean() -> dict:
    """Every Korean catalogue Django loads: the product's and each app's own (monitors)."""
    found = {}
    for po in [KO_PO, *sorted((REPO / "monitoring").rglob("locale/ko/LC_MESSAGES/django.po"))]:
        found |= catalogue(po)
    return found


def test_every_message_has_a_korean_translation():
    used, ko = used_messages(), korean()
    assert len(used) > 250  # the reader found the product's messages, not nothing
    missing = sorted(f"{where}: {key[1]!r}" for key, where in used.items() if key not in ko)
    assert not missing, "not in the Korean catalogue (run makemessages):\n" + "\n".join(missing)
    empty = sorted(key[1] for key in used if not all(translations(ko[key])))
    assert not empty, f"untranslated: {empty}"
    fuzzy = sorted(key[1] for key in used if "fuzzy" in ko[key].flags)
    assert not fuzzy, f"fuzzy (check and unmark): {fuzzy}"


def test_korean_translations_keep_the_placeholders():
    for entry in catalogue(KO_PO).values():
        wanted = sorted(set(PLACEHOLDER.findall(entry.msgid + (entry.msgid_plural or ""))))
        for text in translations(entry):
            assert sorted(set(PLACEHOLDER.findall(text))) == wanted, (entry.msgid, text)


def test_the_catalogues_hold_nothing_stale():
    used = set(used_messages())
    for po in (KO_PO, EN_PO):
        stale = sorted(k[1] for k in catalogue(po) if k not in used)
        assert not stale, f"{po.relative_to(REPO)} has messages nothing uses (makemessages --no-obsolete): {stale}"


@pytest.mark.parametrize("po, mo", [(KO_PO, KO_MO), (EN_PO, EN_MO)])
def test_the_committed_mo_is_compiled_from_the_po(po, mo):
    """The .mo files are committed (a fresh machine has no msgfmt): they must match the .po."""

    def table(entries):
        return {
            (e.msgctxt, e.msgid, e.msgid_plural or None): translations(e)
            for e in entries
            if e.msgid and any(translations(e))  # an untranslated message is not in a .mo
        }

    assert table(polib.mofile(str(mo))) == table(polib.pofile(str(po)))
    assert polib.mofile(str(mo)).metadata.get("Plural-Forms") == polib.pofile(str(po)).metadata.get("Plural-Forms")


# --- the pages in the viewer's language ------------------------------------------------------------


@pytest.mark.django_db
def test_the_browser_language_picks_korean(client, alice, project):
    client.force_login(alice)
    html = client.get(f"/admin/monitoring/{project.id}/overview/", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    text = html.content.decode()
    assert '<html lang="ko">' in text
    for word in (
        "전체 비용",
        "LLM 호출 수",
        "에이전트 실행 수",
        "평균 응답 시간",
        "에러 비율",
        "개요",
        "분석",
        "트레이스",
    ):
        assert word in text, word
    assert "Total Cost" not in text
    assert html["Content-Language"] == "ko"


@pytest.mark.django_db
def test_english_is_the_default(client, alice, project):
    client.force_login(alice)
    text = client.get(f"/admin/monitoring/{project.id}/overview/").content.decode()
    assert '<html lang="en">' in text and "Total Cost" in text and "전체 비용" not in text


@pytest.mark.django_db
def test_the_switcher_remembers_the_choice_for_the_person(client, alice, project):
    client.force_login(alice)
    overview = f"/admin/monitoring/{project.id}/overview/"
    r = client.post("/admin/monitoring/preferences", {"language": "ko", "next": overview})
    assert r.status_code == 302 and r["Location"] == overview
    assert UserPreference.objects.get(user=alice).language == "ko"
    # Saved for the person: another browser (no cookie, English Accept-Language) gets Korean too.
    client.cookies.clear()
    client.force_login(alice)
    text = client.get(overview, headers={"Accept-Language": "en"}).content.decode()
    assert "전체 비용" in text


@pytest.mark.django_db
def test_the_login_page_switches_language_by_cookie(client):
    r = client.post("/admin/monitoring/preferences", {"language": "ko", "next": "/accounts/login/"})
    assert r.status_code == 302 and r.cookies["django_language"].value == "ko"
    assert "로그인" in client.get("/accounts/login/").content.decode()
    assert not UserPreference.objects.exists()


@pytest.mark.django_db
def test_a_foreign_next_is_not_followed(client):
    r = client.post("/admin/monitoring/preferences", {"language": "en", "next": "https://evil.example/"})
    assert r["Location"] == "/admin/monitoring/"


@pytest.mark.django_db
def test_an_unknown_language_is_400(client):
    assert client.post("/admin/monitoring/preferences", {"language": "xx"}).status_code == 400


@pytest.mark.django_db
def test_filter_errors_are_in_the_viewers_language(client, alice, project):
    client.force_login(alice)
    r = client.get(f"/admin/monitoring/{project.id}/overview/?from=yesterday", headers={"Accept-Language": "ko"})
    assert r.status_code == 400 and "ISO 8601 시각이어야 합니다" in r.content.decode()


@pytest.mark.django_db
def test_korean_numbers_and_durations(client, alice, project, settings):
    from django.utils import translation

    from monitoring.web import display

    with translation.override("ko"):
        assert display.count(1234567) == "1,234,567"
        assert display.duration_ms(125_000) == "2분 5초"
        assert display.duration_ms(1240) == "1.24초"
        assert display.usd(1234.5) == "$1,234.50"
        assert display.status("Unset") == ("ok", "정상")
    with translation.override("en"):
        assert display.duration_ms(125_000) == "2 min 5 s" and display.duration_ms(850) == "850 ms"
        assert display.status("Unset") == ("ok", "OK") and display.status("Error") == ("error", "Error")


# Korean msgstrs that may equal their English msgid: nothing in them is an English word to translate.
SAME_IN_KOREAN = {"%(value)s ms", "%(user)s (API)", "str.format ({input})", "URL"}


def test_no_korean_translation_is_the_english_text_again():
    """A msgstr copied from its msgid ("Temperature", "Trace ID", "Span", "scope") left English on
    Korean pages while the catalogue looked complete."""
    ko = korean()
    same = sorted(
        key[1]
        for key, entry in ko.items()
        if key[1] not in SAME_IN_KOREAN
        and re.search(r"[A-Za-z]{2,}", PLACEHOLDER.sub("", key[1]))
        and any(t in (key[1], key[2]) for t in translations(entry))
    )
    assert not same, f"Korean translations that are the English text again: {same}"
