"""The re-run editor: the recorded request as the editor shows it, and the edited one checked before
it is sent to the gateway (model, temperature, max tokens, messages, tools)."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from monitoring.replay.steps import Step
from monitoring.semantics.messages import RequestParams

# Bounds of what the editor may send: deeper JSON than any chat request needs is refused before it
# can exhaust the stack; numbers stay within what every provider's API takes.
MAX_JSON_DEPTH = 64
MAX_TOKENS = 10_000_000
MAX_TEMPERATURE = 2.0  # OpenAI's upper bound; providers with a lower one answer with their own error

# Plain ASCII digits only (int() and float() would take "١٢", "nan", "inf", "1e400").
_INT = re.compile(r"[0-9]{1,12}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")


def _json_value(raw: str, what: str) -> Any:
    """The editor's JSON text parsed; ValidationError when it is not JSON or nests deeper than
    MAX_JSON_DEPTH. `what` names the field in the message."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = _("it nests too deep") if isinstance(exc, RecursionError) else str(exc)
        raise forms.ValidationError(_("%(what)s are not valid JSON: %(reason)s") % {"what": what, "reason": reason})
    stack = [(value, 1)]
    while stack:  # iterative: the check itself must not recurse
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise forms.ValidationError(
                _("%(what)s nest deeper than %(depth)s levels.") % {"what": what, "depth": MAX_JSON_DEPTH}
            )
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


def _number(raw: str, name: str, pattern: re.Pattern[str], cast: type, lo: float, hi: float) -> Any:
    """An optional number field: None when empty; ValidationError unless plain ASCII within [lo, hi]."""
    raw = raw.strip()
    if not raw:
        return None
    if not pattern.fullmatch(raw) or not lo <= cast(raw) <= hi:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise forms.ValidationError(
            _("%(name)s must be a number from %(lo)s to %(hi)s, not %(value)s.")
            % {"name": name, "lo": f"{lo:g}", "hi": f"{hi:g}", "value": repr(shown)}
        )
    return cast(raw)


class RerunForm(forms.Form):
    """The edited request. `payload()` is what the gateway gets: model, messages (a JSON list of
    objects with a role), temperature (0..MAX_TEMPERATURE) and max_tokens (1..MAX_TOKENS) when given,
    tools (a JSON list) when not empty. `error_text()` says the first thing wrong, field by field."""

    model = forms.CharField(required=False)
    messages = forms.CharField(required=False, strip=False)
    temperature = forms.CharField(required=False)
    max_tokens = forms.CharField(required=False)
    tools = forms.CharField(required=False)

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        if not model:
            raise forms.ValidationError(gettext_lazy("Choose a model."))
        return model

    def clean_messages(self) -> list:
        messages = _json_value(self.cleaned_data["messages"] or "[]", str(_("Messages")))
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and m.get("role") for m in messages)
        ):
            raise forms.ValidationError(
                _('Messages must be a JSON list of objects with a role, e.g. [{"role": "user", "content": "Hello"}].')
            )
        return messages

    def clean_temperature(self) -> float | None:
        return _number(self.cleaned_data["temperature"], "temperature", _FLOAT, float, 0.0, MAX_TEMPERATURE)

    def clean_max_tokens(self) -> int | None:
        return _number(self.cleaned_data["max_tokens"], "max_tokens", _INT, int, 1, MAX_TOKENS)

    def clean_tools(self) -> list | None:
        raw = self.cleaned_data["tools"].strip()
        if not raw or raw == "[]":
            return None
        tools = _json_value(raw, str(_("Tools")))
        if not isinstance(tools, list):
            raise forms.ValidationError(_("Tools must be a JSON list."))
        return tools

    def error_text(self) -> str:
        """The first field's first error, in the editor's order."""
        return next(str(self.errors[name][0]) for name in self.fields if name in self.errors)

    def payload(self) -> dict[str, Any]:
        """The request to send (call after is_valid())."""
        data = self.cleaned_data
        payload: dict[str, Any] = {"model": data["model"], "messages": data["messages"]}
        for name in ("temperature", "max_tokens", "tools"):
            if data[name] is not None:
                payload[name] = data[name]
        return payload


def initial(step: Step) -> dict[str, Any]:
    """The recorded request, as the editor shows it."""
    params = step.params or RequestParams()
    messages = [m.as_openai() for m in step.input]
    return {
        "model": params.model or step.span.model,
        "temperature": "" if params.temperature is None else params.temperature,
        "max_tokens": "" if params.max_tokens is None else params.max_tokens,
        "messages": json.dumps(messages, indent=2, ensure_ascii=False),
        "tools": json.dumps([t.as_openai() for t in params.tools], indent=2, ensure_ascii=False)
        if params.tools
        else "",
    }
