"""Forms for monitors and channels. The service/model/status filters go through the filter bar's
own parser (monitoring.web.forms.FilterForm), so a monitor filters exactly as the dashboard does."""

from __future__ import annotations

import math
import secrets
from typing import cast
from urllib.parse import urlsplit

from django import forms
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from monitoring.monitors import egress
from monitoring.monitors.models import INCREASE, SCORE_MEAN, SCORE_METRICS, Channel, Monitor
from monitoring.web.forms import FilterForm

MUTE_CHOICES = [
    (60, _("1 hour")),
    (240, _("4 hours")),
    (1440, _("24 hours")),
    (10080, _("7 days")),
]


def parse_filter(services, models, status) -> tuple[tuple[str, ...], tuple[str, ...], str, str]:
    """(services, models, status, error) as the filter bar parses them; error '' when valid."""
    form = FilterForm({"range": "", "start": "", "end": "", "status": status or ""}, services=services, models=models)
    if not form.is_valid():
        return (), (), "", form.error_text()
    return form.services, form.models, form.cleaned_data.get("status") or "", ""


class _NamesField(forms.MultipleChoiceField):
    """Services or models: the choices offered are those seen lately, but any name may be kept."""

    def valid_value(self, value):
        return True


class MonitorForm(forms.ModelForm):
    services = _NamesField(label=_("Services"), required=False)
    model_names = _NamesField(label=_("Models"), required=False)

    class Meta:
        model = Monitor
        fields = [
            "name",
            "metric",
            "score_name",
            "group_by",
            "window_minutes",
            "condition",
            "threshold",
            "min_samples",
            "services",
            "model_names",
            "status",
            "channels",
            "enabled",
        ]
        widgets = {"channels": forms.CheckboxSelectMultiple}

    def __init__(self, *args, project, facets=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        cast(forms.ModelMultipleChoiceField, self.fields["channels"]).queryset = Channel.objects.filter(project=project)
        facets = facets or {}
        for name, known in (("services", facets.get("services", [])), ("model_names", facets.get("models", []))):
            current = list(self.initial.get(name) or getattr(self.instance, name, None) or [])
            names = sorted(set(known) | set(current))
            cast(forms.ChoiceField, self.fields[name]).choices = [(n, n or _("(none)")) for n in names]

    def clean_threshold(self):
        value = self.cleaned_data["threshold"]
        if not math.isfinite(value):
            raise forms.ValidationError(_("Enter a finite number."))
        return value

    def clean(self):
        data = super().clean() or {}  # Form.clean returns cleaned_data
        services, models, status, error = parse_filter(
            data.get("services") or [], data.get("model_names") or [], data.get("status")
        )
        if error:
            raise forms.ValidationError(error)
        data["services"], data["model_names"], data["status"] = list(services), list(models), status
        score_name = data["score_name"] = (data.get("score_name") or "").strip()
        scores = data.get("metric") in SCORE_METRICS
        if data.get("metric") == SCORE_MEAN and not score_name:
            self.add_error("score_name", _("An average score needs the score's name."))
        if score_name and not scores:
            self.add_error("score_name", _("Only score metrics read a score; leave it empty."))
        if data.get("group_by") == "agent" and not scores:
            self.add_error("group_by", _("Only score metrics are counted per agent."))
        if data.get("condition") == INCREASE and data.get("threshold") is not None and data["threshold"] <= 0:
            self.add_error("threshold", _("A rise is a positive percentage, e.g. 200 for +200%."))
        return data

    def save(self, commit=True):
        monitor = super().save(commit=False)
        monitor.project = self.project
        if commit:
            monitor.save()
            self.save_m2m()
        return monitor


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed [IPv6 literal
        raise forms.ValidationError(_("Enter an http(s) URL.")) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise forms.ValidationError(_("Enter an http(s) URL."))
    refused = egress.refusal(value)  # judged again when it sends: DNS may change
    if refused:
        raise forms.ValidationError(refused)
    return value


class ChannelForm(forms.ModelForm):
    """Secrets are write-only: the URL and signing secret fields are always empty when shown; left
    empty on edit, the stored value is kept."""

    url = forms.CharField(
        label=_("URL"),
        required=False,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Slack: the incoming webhook URL. Webhook: where the signed JSON is POSTed."),
    )
    secret = forms.CharField(
        label=_("Signing secret"),
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Webhook only. Leave empty to generate one (shown once)."),
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "url", "secret", "recipients", "language"]
        help_texts = {"recipients": _("Email only: addresses, comma-separated.")}

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.generated_secret = ""
        if self.instance.pk:
            self.fields["kind"].disabled = True  # another kind would need other secrets
            if self.instance.url_sealed:
                self.fields["url"].help_text = _("Stored (%(hint)s). Leave empty to keep it.") % {
                    "hint": self.instance.url_hint
                }
            if self.instance.secret_sealed:
                self.fields["secret"].help_text = _("Stored. Leave empty to keep it.")

    def clean_recipients(self):
        addresses = [a.strip() for a in (self.cleaned_data.get("recipients") or "").split(",") if a.strip()]
        for address in addresses:
            validate_email(address)
        return ", ".join(addresses)

    def clean(self):
        data = super().clean() or {}  # Form.clean returns cleaned_data
        kind = data.get("kind") or self.instance.kind
        url = (data.get("url") or "").strip()
        if kind in (Channel.SLACK, Channel.WEBHOOK):
            if url:
                try:
                    data["url"] = _http_url(url)
                except forms.ValidationError as exc:
                    self.add_error("url", exc)
            elif not self.instance.url_sealed:
                self.add_error("url", _("This channel needs a URL."))
        if kind == Channel.EMAIL and not data.get("recipients"):
            self.add_error("recipients", _("Enter at least one address."))
        return data

    def save(self, commit=True):
        channel = super().save(commit=False)
        channel.project = self.project
        if self.cleaned_data.get("url"):
            channel.set_url(self.cleaned_data["url"])
        if channel.kind == Channel.WEBHOOK:
            if self.cleaned_data.get("secret"):
                channel.set_secret(self.cleaned_data["secret"])
            elif not channel.secret_sealed:
                self.generated_secret = "whsec_" + secrets.token_urlsafe(32)
                channel.set_secret(self.generated_secret)
        if commit:
            channel.save()
        return channel


class MuteForm(forms.Form):
    minutes = forms.TypedChoiceField(label=_("Mute for"), choices=MUTE_CHOICES, coerce=int)
