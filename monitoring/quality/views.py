"""People's feedback and the project's score configs, from the pages.

- `give_score` (POST): thumbs up/down with a comment, or any defined score, on a run (trace), an LLM
  call (trace + span) or a session; any member. A person's new score on the same target and name
  replaces their old one. Answers with a redirect back (htmx: the refreshed scores block).
- `configs`: the project's score configs; members read them, admins add and delete.
- `scores_block`: the context of the scores block the trace and session pages include.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from monitoring import access
from monitoring.models import ApiToken, Membership
from monitoring.quality import scores as writes
from monitoring.quality.models import FEEDBACK, ScoreConfig
from monitoring.queries import scores as scores_q
from monitoring.store import clickhouse, errors


def _authors(found: list[scores_q.Score]) -> dict[str, str]:
    """author key -> what a page shows: a person's user name, a token's owner, else the key itself."""
    users = {int(a.split(":", 1)[1]) for s in found if (a := s.author).startswith("user:") and a[5:].isdigit()}
    tokens = {int(a.split(":", 1)[1]) for s in found if (a := s.author).startswith("token:") and a[6:].isdigit()}
    names = {f"user:{u.pk}": u.get_username() for u in get_user_model().objects.filter(pk__in=users)}
    for t in ApiToken.objects.filter(pk__in=tokens).select_related("user"):
        names[f"token:{t.pk}"] = _("%(user)s (API)") % {"user": t.user.get_username()}
    return names


def scores_block(membership, found: list[scores_q.Score], *, trace_id="", span_id="", session_id="", next_url=""):
    """What `monitoring/quality/_scores.html` shows for one target: its scores with their authors'
    names, their summary, the feedback form's hidden target and the project's configs."""
    names = _authors(found)
    mine = None
    if membership is not None:
        own = f"user:{membership.user_id}"
        mine = next((s for s in reversed(found) if s.author == own and s.name == FEEDBACK), None)
    return {
        "items": [{"score": s, "author": names.get(s.author, s.author)} for s in found],
        "summary": scores_q.summarize(found),
        "target": {"trace_id": trace_id, "span_id": span_id, "session_id": session_id},
        "action": reverse("monitoring:quality:give", args=[membership.project_id]) if membership else "",
        "configs": list(ScoreConfig.objects.filter(project_id=membership.project_id)) if membership else [],
        "my_feedback": mine,
        "next": next_url,
    }


class GiveScoreForm(forms.Form):
    trace_id = forms.RegexField(regex=r"^[0-9a-f]{32}$", required=False)
    span_id = forms.RegexField(regex=r"^[0-9a-f]{16}$", required=False)
    session_id = forms.CharField(max_length=500, required=False)
    thumb = forms.ChoiceField(choices=[("", ""), ("up", "up"), ("down", "down")], required=False)
    name = forms.CharField(max_length=writes.NAME_CHARS, required=False)
    value = forms.FloatField(required=False)
    label = forms.CharField(max_length=writes.LABEL_CHARS, required=False)
    comment = forms.CharField(max_length=writes.TEXT_CHARS, required=False, widget=forms.Textarea)
    next = forms.CharField(max_length=2000, required=False)


@access.guarded_by("login")
@login_required
@require_POST
def give_score(request, project_id):
    membership = access.get_membership(request.user, project_id)
    form = GiveScoreForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Bad score: %(fields)s") % {"fields": ", ".join(form.errors)})
    data = form.cleaned_data
    next_url = data["next"] or reverse("monitoring:traces", args=[membership.project_id])
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("monitoring:traces", args=[membership.project_id])
    if data["thumb"]:
        name, value, label = FEEDBACK, 1.0 if data["thumb"] == "up" else 0.0, data["thumb"]
    else:
        name, value, label = data["name"], data["value"], data["label"]
    target = writes.Target(data["trace_id"], data["span_id"], data["session_id"].strip())
    try:
        writes.record(
            membership.project,
            target,
            name,
            value=value,
            label=label,
            comment=data["comment"],
            source=writes.PERSON,
            author=f"user:{request.user.pk}",
            score_id=writes.person_score_id(
                str(membership.project_id),
                request.user.pk,
                name.strip(),
                *(target.trace_id, target.span_id, target.session_id),
            ),
        )
    except ValueError as exc:
        return HttpResponseBadRequest(_("Bad score: %(reason)s") % {"reason": exc})
    except clickhouse.ClickHouseError as exc:
        return errors.text_response(exc, request.user)
    return redirect(next_url)


class ScoreConfigForm(forms.ModelForm):
    class Meta:
        model = ScoreConfig
        fields = ["name", "data_type", "min_value", "max_value", "categories", "higher_is_better", "description"]
        labels = {
            "name": gettext_lazy("Name"),
            "data_type": gettext_lazy("Type"),
            "min_value": gettext_lazy("Lowest value"),
            "max_value": gettext_lazy("Highest value"),
            "categories": gettext_lazy("Labels"),
            "higher_is_better": gettext_lazy("Higher is better"),
            "description": gettext_lazy("Description"),
        }

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.project = project

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if ":" in name:
            raise forms.ValidationError(_("A score name holds no ':'."))
        if ScoreConfig.objects.filter(project=self.instance.project, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("This project has a config with that name."))
        return name


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def configs(request, project_id):
    membership = access.get_membership(request.user, project_id)
    is_admin = membership.role == Membership.ADMIN
    form = ScoreConfigForm(project=membership.project)
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden(_("Only project admins define score configs."))
        form = ScoreConfigForm(request.POST, project=membership.project)
        if form.is_valid():
            form.save()
            return redirect("monitoring:quality:configs", project_id=membership.project_id)
    return render(
        request,
        "monitoring/quality/configs.html",
        {
            "project": membership.project,
            "membership": membership,
            "is_admin": is_admin,
            "configs": ScoreConfig.objects.filter(project=membership.project),
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@access.guarded_by("login")
@login_required
@require_POST
def config_delete(request, project_id, pk):
    membership = access.get_membership(request.user, project_id)
    if membership.role != Membership.ADMIN:
        return HttpResponseForbidden(_("Only project admins define score configs."))
    config = get_object_or_404(ScoreConfig, project=membership.project, pk=pk)
    if config.evaluators.exists():  # an LLM judge writes it (the foreign key protects it)
        names = ", ".join(config.evaluators.values_list("name", flat=True))
        return HttpResponseBadRequest(
            _("LLM judges write this score: %(judges)s. Delete them or give them another config first.")
            % {"judges": names}
        )
    config.delete()
    return redirect("monitoring:quality:configs", project_id=membership.project_id)
