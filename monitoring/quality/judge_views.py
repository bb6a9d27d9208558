"""The judges' pages under /admin/monitoring/<project>/judges/: members read, project admins edit.

- `judges`: the project's evaluators with their calls, failures and cost (last 7 days) and scores
  written; today's spend against the daily cap and the project's switch; admins add an evaluator
  (POST action=create) and change the switch and the cap (action=settings).
- `judge`: one evaluator: its definition, numbers, the targets waiting for a retry; admins edit it
  (action=edit: a change of prompt, model, score config or target bumps its version), ask for a
  backfill (action=backfill: the last N hours, at most M targets, judged by the next passes) or
  delete it (action=delete).
ClickHouse trouble is shown as the error page people can act on (store/errors.py), never a 500.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from monitoring import access
from monitoring.models import Membership
from monitoring.quality import judges
from monitoring.quality.models import Evaluator, JudgeFailure, JudgeSettings, ScoreConfig
from monitoring.queries import judging
from monitoring.store import clickhouse, errors

STATS_DAYS = 7


class EvaluatorForm(forms.ModelForm):
    class Meta:
        model = Evaluator
        fields = [
            "name",
            "prompt",
            "syntax",
            "model",
            "score_config",
            "target",
            "sampling_rate",
            "services",
            "model_names",
            "agents",
            "span_names",
            "enabled",
        ]
        labels = {
            "name": gettext_lazy("Name"),
            "prompt": gettext_lazy("Prompt"),
            "syntax": gettext_lazy("Template syntax"),
            "model": gettext_lazy("Model alias"),
            "score_config": gettext_lazy("Score config"),
            "target": gettext_lazy("Judges"),
            "sampling_rate": gettext_lazy("Sampling rate"),
            "services": gettext_lazy("Services"),
            "model_names": gettext_lazy("Models"),
            "agents": gettext_lazy("Agents"),
            "span_names": gettext_lazy("Span names"),
            "enabled": gettext_lazy("Enabled"),
        }

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.project = project
        field = self.fields["score_config"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = ScoreConfig.objects.filter(project=project)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Evaluator.objects.filter(project=self.instance.project, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("This project has an evaluator with that name."))
        return name

    def clean(self):
        data = super().clean() or {}
        if data.get("prompt") and data.get("syntax"):
            try:
                judges.check_prompt(data["prompt"], data["syntax"])
            except ValueError as exc:
                self.add_error("prompt", _("The prompt does not render: %(reason)s") % {"reason": exc})
        return data


class JudgeSettingsForm(forms.ModelForm):
    class Meta:
        model = JudgeSettings
        fields = ["enabled", "daily_cost_cap_usd"]
        labels = {
            "enabled": gettext_lazy("Judges on"),
            "daily_cost_cap_usd": gettext_lazy("Daily cost cap (USD)"),
        }

    def clean_daily_cost_cap_usd(self):
        cap = self.cleaned_data["daily_cost_cap_usd"]
        if cap < 0:
            raise forms.ValidationError(_("A cost cap is 0 or more."))
        return cap


class BackfillForm(forms.Form):
    hours = forms.FloatField(label=gettext_lazy("The last hours"), min_value=0.1, max_value=24 * 90, initial=24)
    limit = forms.IntegerField(
        label=gettext_lazy("At most this many targets"), min_value=1, max_value=judges.BACKFILL_MAX, initial=100
    )


def _since() -> int:
    return int((timezone.now() - dt.timedelta(days=STATS_DAYS)).timestamp()) * 10**9


def _settings_row(project) -> JudgeSettings:
    return JudgeSettings.of(project)


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def judges_page(request, project_id):
    membership = access.get_membership(request.user, project_id)
    project = membership.project
    is_admin = membership.role == Membership.ADMIN
    form = EvaluatorForm(project=project)
    settings_form = JudgeSettingsForm(instance=_settings_row(project))
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden(_("Only project admins define judges."))
        if request.POST.get("action") == "settings":
            settings_form = JudgeSettingsForm(request.POST, instance=_settings_row(project))
            if settings_form.is_valid():
                settings_form.save()
                return redirect("monitoring:quality:judges", project_id=project.pk)
        else:
            form = EvaluatorForm(request.POST, project=project)
            if form.is_valid():
                saved = form.save()
                return redirect("monitoring:quality:judge", project_id=project.pk, pk=saved.pk)
    evaluators = list(Evaluator.objects.filter(project=project).select_related("score_config"))
    try:
        stats = judging.judge_stats(str(project.pk), _since())
        written = judging.scores_written(str(project.pk), [e.pk for e in evaluators])
        today = judges.today(project)
    except clickhouse.ClickHouseError as exc:
        return errors.text_response(exc, request.user)
    rows = [
        {"evaluator": e, "stats": stats.get(str(e.pk), judging.JudgeStats()), "scores": written.get(str(e.pk), 0)}
        for e in evaluators
    ]
    return render(
        request,
        "monitoring/quality/judges.html",
        {
            "project": project,
            "membership": membership,
            "is_admin": is_admin,
            "rows": rows,
            "today": today,
            "form": form,
            "settings_form": settings_form,
            "days": STATS_DAYS,
        },
        status=400 if form.errors or settings_form.errors else 200,
    )


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def judge_page(request, project_id, pk):
    membership = access.get_membership(request.user, project_id)
    project = membership.project
    evaluator = get_object_or_404(Evaluator.objects.select_related("score_config"), project=project, pk=pk)
    is_admin = membership.role == Membership.ADMIN
    form = EvaluatorForm(instance=evaluator, project=project)
    backfill = BackfillForm()
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden(_("Only project admins define judges."))
        action = request.POST.get("action")
        if action == "delete":
            evaluator.delete()
            return redirect("monitoring:quality:judges", project_id=project.pk)
        if action == "backfill":
            backfill = BackfillForm(request.POST)
            if backfill.is_valid():
                end = timezone.now()
                start = end - dt.timedelta(hours=backfill.cleaned_data["hours"])
                judges.start_backfill(evaluator, start, end, backfill.cleaned_data["limit"])
                return redirect("monitoring:quality:judge", project_id=project.pk, pk=evaluator.pk)
        else:
            form = EvaluatorForm(request.POST, instance=evaluator, project=project)
            if form.is_valid():
                form.save()
                return redirect("monitoring:quality:judge", project_id=project.pk, pk=evaluator.pk)
            evaluator.refresh_from_db()
    try:
        stats = judging.judge_stats(str(project.pk), _since()).get(str(evaluator.pk), judging.JudgeStats())
        written = judging.scores_written(str(project.pk), [evaluator.pk]).get(str(evaluator.pk), 0)
    except clickhouse.ClickHouseError as exc:
        return errors.text_response(exc, request.user)
    failures = JudgeFailure.objects.filter(evaluator=evaluator, version=evaluator.version)[:50]
    return render(
        request,
        "monitoring/quality/judge.html",
        {
            "project": project,
            "membership": membership,
            "is_admin": is_admin,
            "evaluator": evaluator,
            "stats": stats,
            "scores": written,
            "failures": failures,
            "form": form,
            "backfill": backfill,
            "days": STATS_DAYS,
        },
        status=400 if form.errors or backfill.errors else 200,
    )
