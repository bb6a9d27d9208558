"""Monitor pages under /admin/monitoring/<project>/monitors/: members see, project admins change.

Strangers get 404 (access.get_membership), viewers 403 on anything that changes state. Every
change is a POST (CSRF-protected) answered with a redirect, so the pages work without JavaScript;
htmx refreshes the state panel of a monitor page in place.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from monitoring import access
from monitoring.models import Membership
from monitoring.monitors import delivery, evaluation
from monitoring.monitors.forms import ChannelForm, MonitorForm, MuteForm, parse_filter
from monitoring.monitors.models import Alert, Channel, Delivery, Monitor
from monitoring.queries import facets as facets_q
from monitoring.store import clickhouse, errors
from monitoring.web import preferences
from monitoring.web.forms import FilterForm, SpanFilter, Window
from monitoring.web.views.dashboard import TABS

FACET_DAYS = 7  # services and models offered in the monitor form: those seen in the last week


def _member(request, project_id, admin: bool = False) -> Membership:
    membership = access.get_membership(request.user, project_id)
    if admin and membership.role != Membership.ADMIN:
        raise PermissionDenied(_("Only project admins can change monitors and channels."))
    return membership


def _page(request, membership: Membership, template: str, context: dict, status: int = 200):
    project = membership.project
    context = {
        "project": project,
        "membership": membership,
        "is_admin": membership.role == Membership.ADMIN,
        "projects": access.projects_for(request.user),
        "tab": "monitors",
        "subnav": "monitors",
        "tab_links": [
            {"key": key, "label": label, "url": reverse(f"monitoring:{key}", args=[project.id])} for key, label in TABS
        ],
        **context,
    }
    return render(request, template, context, status=status)


def _facets(project, user) -> tuple[dict, str]:
    now = timezone.now()
    flt = SpanFilter(str(project.id), Window(now - dt.timedelta(days=FACET_DAYS), now))
    try:
        return facets_q.facets(flt), ""
    except clickhouse.ClickHouseError as exc:
        t = errors.trouble(exc, user)
        return {}, _("%(title)s: the lists of services and models are not available (%(detail)s).") % {
            "title": t.title,
            "detail": t.detail,
        }


def _monitor_of(membership, pk) -> Monitor:
    return get_object_or_404(Monitor.objects.select_related("project"), project=membership.project, pk=pk)


# --- monitors -------------------------------------------------------------------------------------


@access.guarded_by("login")
@login_required
@require_GET
def monitor_list(request, project_id):
    membership = _member(request, project_id)
    monitors = list(Monitor.objects.filter(project=membership.project).prefetch_related("channels"))
    now = timezone.now()
    firing: dict[int, list[Alert]] = {}
    for alert in Alert.objects.filter(monitor__in=monitors, resolved_at__isnull=True):
        firing.setdefault(alert.monitor_id, []).append(alert)
    rows = [(m, m.state(now), firing.get(m.pk, [])) for m in monitors]
    return _page(
        request,
        membership,
        "monitoring/monitors/list.html",
        {
            "rows": rows,
            "channel_count": Channel.objects.filter(project=membership.project).count(),
            "failing_channels": [c for c in Channel.objects.filter(project=membership.project) if c.failing],
        },
    )


def _initial_from_filter_bar(request) -> dict:
    """A monitor started from a dashboard view takes its filters (?service=&model=&status=)."""
    form = FilterForm.from_query(request.GET)
    services, models, status, error = parse_filter(form.services, form.models, request.GET.get("status", ""))
    if error:
        return {}
    return {"services": list(services), "model_names": list(models), "status": status}


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def monitor_create(request, project_id):
    membership = _member(request, project_id, admin=True)
    project = membership.project
    facets, facet_error = _facets(project, request.user)
    if request.method == "POST":
        form = MonitorForm(request.POST, project=project, facets=facets)
        if form.is_valid():
            monitor = form.save(commit=False)
            monitor.created_by = request.user
            monitor.save()
            form.save_m2m()
            messages.success(request, _("Monitor “%(name)s” created.") % {"name": monitor.name})
            return redirect("monitoring:monitors:detail", project.id, monitor.pk)
    else:
        form = MonitorForm(project=project, facets=facets, initial=_initial_from_filter_bar(request))
    return _page(
        request,
        membership,
        "monitoring/monitors/form.html",
        {"form": form, "facet_error": facet_error, "creating": True},
        status=400 if request.method == "POST" else 200,
    )


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def monitor_edit(request, project_id, pk):
    membership = _member(request, project_id, admin=True)
    monitor = _monitor_of(membership, pk)
    facets, facet_error = _facets(membership.project, request.user)
    form = MonitorForm(request.POST or None, instance=monitor, project=membership.project, facets=facets)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Monitor saved."))
        return redirect("monitoring:monitors:detail", membership.project_id, monitor.pk)
    return _page(
        request,
        membership,
        "monitoring/monitors/form.html",
        {"form": form, "monitor": monitor, "facet_error": facet_error, "creating": False},
        status=400 if request.method == "POST" else 200,
    )


@access.guarded_by("login")
@login_required
@require_POST
def monitor_delete(request, project_id, pk):
    membership = _member(request, project_id, admin=True)
    monitor = _monitor_of(membership, pk)
    name = monitor.name
    monitor.delete()
    messages.success(request, _("Monitor “%(name)s” deleted.") % {"name": name})
    return redirect("monitoring:monitors:list", membership.project_id)


def _detail_context(monitor: Monitor) -> dict:
    now = timezone.now()
    return {
        "monitor": monitor,
        "state": monitor.state(now),
        "open_alerts": list(monitor.open_alerts().select_related("acknowledged_by").order_by("group")),
        "events": list(monitor.events.select_related("user")[:10]),
        "problems": list(
            Delivery.objects.filter(event__monitor=monitor)
            .exclude(last_error="")
            .exclude(state=Delivery.SENT)
            .select_related("channel", "event")[:10]
        ),
        "channels": list(monitor.channels.all()),
        "mute_form": MuteForm(),
        "now": now,
    }


@access.guarded_by("login")
@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def monitor_detail(request, project_id, pk):
    membership = _member(request, project_id)
    monitor = _monitor_of(membership, pk)
    context = _detail_context(monitor)
    if request.htmx and request.htmx.target == "monitor-state":
        return render(
            request,
            "monitoring/monitors/detail.html#state",
            {**context, "project": membership.project, "is_admin": membership.role == Membership.ADMIN},
        )
    return _page(request, membership, "monitoring/monitors/detail.html", context)


@access.guarded_by("login")
@login_required
@require_POST
def monitor_evaluate(request, project_id, pk):
    """Evaluate one monitor now (instead of waiting for the next minute) and send what it fires."""
    membership = _member(request, project_id, admin=True)
    monitor = _monitor_of(membership, pk)
    outcome = evaluation.evaluate([monitor])[0]
    delivery.deliver_due()
    if outcome.error:
        messages.error(request, outcome.error)
    else:
        messages.info(
            request,
            _("Evaluated: %(fired)s fired, %(resolved)s resolved.")
            % {
                "fired": len(outcome.fired),
                "resolved": len(outcome.resolved),
            },
        )
    return redirect("monitoring:monitors:detail", membership.project_id, monitor.pk)


@access.guarded_by("login")
@login_required
@require_POST
def monitor_mute(request, project_id, pk):
    membership = _member(request, project_id, admin=True)
    monitor = _monitor_of(membership, pk)
    if request.POST.get("unmute"):
        evaluation.unmute(monitor, request.user)
        messages.success(request, _("Unmuted."))
    else:
        form = MuteForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose how long to mute."))
        else:
            until = timezone.now() + dt.timedelta(minutes=form.cleaned_data["minutes"])
            evaluation.mute(monitor, until, request.user)
            messages.success(request, _("Muted until %(until)s.") % {"until": preferences.local_time(until)})
    return redirect("monitoring:monitors:detail", membership.project_id, monitor.pk)


@access.guarded_by("login")
@login_required
@require_POST
def alert_acknowledge(request, project_id, pk, alert_id):
    membership = _member(request, project_id, admin=True)
    monitor = _monitor_of(membership, pk)
    alert = get_object_or_404(Alert, monitor=monitor, pk=alert_id)
    if evaluation.acknowledge(alert, request.user):
        messages.success(request, _("Acknowledged."))
    return redirect("monitoring:monitors:detail", membership.project_id, monitor.pk)


@access.guarded_by("login")
@login_required
@require_GET
def monitor_history(request, project_id, pk):
    membership = _member(request, project_id)
    monitor = _monitor_of(membership, pk)
    page = Paginator(monitor.events.select_related("user"), 50).get_page(request.GET.get("page"))
    return _page(request, membership, "monitoring/monitors/history.html", {"monitor": monitor, "page": page})


# --- channels -------------------------------------------------------------------------------------


@access.guarded_by("login")
@login_required
@require_GET
def channel_list(request, project_id):
    membership = _member(request, project_id)
    channels = Channel.objects.filter(project=membership.project).prefetch_related("monitors")
    return _page(request, membership, "monitoring/monitors/channels.html", {"channels": channels, "subnav": "channels"})


@access.guarded_by("login")
@login_required
@require_http_methods(["GET", "POST"])
def channel_form(request, project_id, pk=None):
    membership = _member(request, project_id, admin=True)
    channel = get_object_or_404(Channel, project=membership.project, pk=pk) if pk else None
    form = ChannelForm(request.POST or None, instance=channel, project=membership.project)
    if request.method == "POST" and form.is_valid():
        created = form.instance.pk is None
        saved = form.save(commit=False)
        if created:
            saved.created_by = request.user
            saved.creator_language = translation.get_language() or "en"
        saved.save()
        if form.generated_secret:
            messages.warning(
                request,
                _("Signing secret of “%(name)s”: %(secret)s — copy it now, it is not shown again.")
                % {"name": saved.name, "secret": form.generated_secret},
            )
        else:
            messages.success(request, _("Channel saved."))
        return redirect("monitoring:monitors:channels", membership.project_id)
    return _page(
        request,
        membership,
        "monitoring/monitors/channel_form.html",
        {"form": form, "channel": channel, "subnav": "channels"},
        status=400 if request.method == "POST" else 200,
    )


@access.guarded_by("login")
@login_required
@require_POST
def channel_delete(request, project_id, pk):
    membership = _member(request, project_id, admin=True)
    channel = get_object_or_404(Channel, project=membership.project, pk=pk)
    channel.delete()
    messages.success(request, _("Channel deleted."))
    return redirect("monitoring:monitors:channels", membership.project_id)


@access.guarded_by("login")
@login_required
@require_POST
def channel_test(request, project_id, pk):
    membership = _member(request, project_id, admin=True)
    channel = get_object_or_404(Channel, project=membership.project, pk=pk)
    error = delivery.send_test(channel)
    if error:
        messages.error(
            request,
            _("The test to “%(name)s” failed: %(error)s")
            % {"name": channel.name, "error": delivery.shown_error(error, request.user.is_staff)},
        )
    else:
        messages.success(request, _("Test sent to “%(name)s”.") % {"name": channel.name})
    return redirect("monitoring:monitors:channels", membership.project_id)
