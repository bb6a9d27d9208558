"""Monitors, their alerts and history, and the channels that carry notifications.

A Monitor is a rule over one metric of a project's spans in a rolling window. Each evaluation
either opens an Alert (per offending group: the whole project, or one end user / model / service),
leaves it open, or resolves it. Every change is an Event (the history page); an Event that must be
told becomes one Delivery per channel, sent and retried by `delivery.py`.
Channel secrets (Slack URL, webhook URL and signing secret) are sealed (`sealing.py`), never shown.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from monitoring.models import Project
from monitoring.monitors import sealing
from monitoring.queries.filter import iso

# --- what a monitor measures ----------------------------------------------------------------

COST, LLM_CALLS, AGENT_RUNS, FAIL_RATE = "cost_usd", "llm_calls", "agent_runs", "fail_rate"
P50, P95, P99, TOKENS = "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "tokens"
# Scores (monitoring/queries/quality.py): the mean of one score's values, and the share (%) of
# evaluations that fail (one score's, or every evaluation's when the monitor names none).
SCORE_MEAN, SCORE_FAILING = "score_mean", "score_fail_share"
SCORE_METRICS = (SCORE_MEAN, SCORE_FAILING)
METRICS = [
    (COST, _("Cost (USD)")),
    (LLM_CALLS, _("LLM calls")),
    (AGENT_RUNS, _("Agent runs")),
    (FAIL_RATE, _("Fail rate (%)")),
    (P50, _("LLM latency p50 (ms)")),
    (P95, _("LLM latency p95 (ms)")),
    (P99, _("LLM latency p99 (ms)")),
    (TOKENS, _("Tokens")),
    (SCORE_MEAN, _("Average score")),
    (SCORE_FAILING, _("Failing evaluations (%)")),
]
GROUPS = [
    ("", _("Whole project")),
    ("user", _("Each end user")),
    ("model", _("Each model")),
    ("service", _("Each service")),
    ("agent", _("Each agent (scores only)")),
]
ABOVE, BELOW, INCREASE, DECREASE = "above", "below", "increase", "decrease"
CONDITIONS = [
    (ABOVE, _("is above")),
    (BELOW, _("is below")),
    (INCREASE, _("rises by at least (%) vs the previous window")),
    (DECREASE, _("falls by at least (%) vs the previous window")),
]
WINDOWS = [
    (5, _("5 minutes")),
    (15, _("15 minutes")),
    (60, _("1 hour")),
    (360, _("6 hours")),
    (1440, _("24 hours")),
    (10080, _("7 days")),
    (43200, _("30 days")),
]
STATUSES = [("", _("All")), ("ok", _("Ok only")), ("error", _("Errors only"))]
LANGUAGES = [("", _("The creator's language")), ("en", "English"), ("ko", "한국어")]


class Channel(models.Model):
    SLACK, WEBHOOK, EMAIL = "slack", "webhook", "email"
    KINDS = [(SLACK, _("Slack incoming webhook")), (WEBHOOK, _("Webhook (signed JSON)")), (EMAIL, _("Email"))]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=KINDS)
    url_sealed = models.TextField(blank=True, editable=False)  # Slack / webhook URL (it is the credential)
    url_hint = models.CharField(max_length=120, blank=True, editable=False)  # scheme://host/…last4
    secret_sealed = models.TextField(blank=True, editable=False)  # webhook HMAC-SHA256 key
    recipients = models.CharField(_("recipients"), max_length=1000, blank=True)  # email: comma list
    language = models.CharField(_("language"), max_length=8, choices=LANGUAGES, blank=True, default="")
    creator_language = models.CharField(max_length=8, blank=True, default="", editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    # Secrets go in through these and come out only to the sender (channels.py).
    def set_url(self, url: str) -> None:
        self.url_sealed = sealing.seal(url)
        parts = urlsplit(url)
        self.url_hint = f"{parts.scheme}://{parts.hostname or ''}/…{url[-4:]}" if url else ""

    def url(self) -> str:
        return sealing.unseal(self.url_sealed)

    def set_secret(self, secret: str) -> None:
        self.secret_sealed = sealing.seal(secret)

    def secret(self) -> str:
        return sealing.unseal(self.secret_sealed)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_sealed)

    def recipient_list(self) -> list[str]:
        return [r.strip() for r in self.recipients.split(",") if r.strip()]

    def notify_language(self) -> str:
        """The channel's chosen language, else its creator's, else English."""
        return self.language or self.creator_language or "en"

    @property
    def target(self) -> str:
        """What the channel sends to, safe to show: the masked URL or the addresses."""
        return ", ".join(self.recipient_list()) if self.kind == self.EMAIL else self.url_hint

    @property
    def failing(self) -> bool:
        return bool(self.last_failure_at and (not self.last_success_at or self.last_failure_at > self.last_success_at))


class Monitor(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="monitors")
    name = models.CharField(_("name"), max_length=200)
    metric = models.CharField(_("metric"), max_length=20, choices=METRICS, default=COST)
    group_by = models.CharField(_("for"), max_length=10, choices=GROUPS, blank=True, default="")
    score_name = models.CharField(
        _("score"),
        max_length=200,
        blank=True,
        default="",
        help_text=_("Score metrics: the score's name (failing evaluations: empty for every evaluation)."),
    )
    window_minutes = models.PositiveIntegerField(_("window"), choices=WINDOWS, default=60)
    services = models.JSONField(default=list, blank=True)
    model_names = models.JSONField(default=list, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=STATUSES, blank=True, default="")
    condition = models.CharField(_("condition"), max_length=10, choices=CONDITIONS, default=ABOVE)
    threshold = models.FloatField(_("threshold"))
    min_samples = models.PositiveIntegerField(
        _("minimum sample size"),
        default=1,
        help_text=_("Calls (or runs) the window must hold before the monitor may fire."),
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="monitors", verbose_name=_("channels"))
    enabled = models.BooleanField(_("enabled"), default=True)
    muted_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)
    # The last evaluation, for the list (state itself lives in the open alerts).
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_sample = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # The periodic job evaluates the monitor once this time has come, and moves it a period on in the
    # same statement: of several evaluators, one claims each period (evaluation.claim_due).
    next_evaluation_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.window_minutes)

    @property
    def scores(self) -> bool:
        return self.metric in SCORE_METRICS

    @property
    def compares(self) -> bool:
        return self.condition in (INCREASE, DECREASE)

    def is_muted(self, now: dt.datetime | None = None) -> bool:
        return bool(self.muted_until and self.muted_until > (now or timezone.now()))

    def open_alerts(self):
        return self.alerts.filter(resolved_at__isnull=True)

    def state(self, now: dt.datetime | None = None) -> str:
        """ "disabled", "muted", "firing", "ok" or "pending" (never evaluated)."""
        if not self.enabled:
            return "disabled"
        if self.is_muted(now):
            return "muted"
        if self.open_alerts().exists():
            return "firing"
        return "ok" if self.last_evaluated_at else "pending"


class Alert(models.Model):
    """One firing period of one group (or of the whole project when `group` is '')."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="alerts")
    group = models.CharField(max_length=500, blank=True, default="")
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField()  # when it fired
    last_value = models.FloatField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor", "group"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_alert_per_group",
            )
        ]

    def __str__(self) -> str:
        return f"{self.monitor} [{self.group or '-'}]"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Event(models.Model):
    """A change of a monitor's state, as the history page lists it."""

    FIRED, RESOLVED, ACKNOWLEDGED, MUTED, UNMUTED, ERROR = (
        "fired",
        "resolved",
        "acknowledged",
        "muted",
        "unmuted",
        "error",
    )
    KINDS = [
        (FIRED, pgettext_lazy("event", "Fired")),
        (RESOLVED, pgettext_lazy("event", "Resolved")),
        (ACKNOWLEDGED, pgettext_lazy("event", "Acknowledged")),
        (MUTED, pgettext_lazy("event", "Muted")),
        (UNMUTED, pgettext_lazy("event", "Unmuted")),
        (ERROR, pgettext_lazy("event", "Evaluation failed")),
    ]

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="events")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    kind = models.CharField(max_length=20, choices=KINDS)
    at = models.DateTimeField(default=timezone.now)
    group = models.CharField(max_length=500, blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    previous = models.FloatField(null=True, blank=True)  # the previous window's value (change conditions)
    sample = models.PositiveIntegerField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    muted = models.BooleanField(default=False)  # happened while muted: nobody was told
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["monitor", "-at"])]

    def __str__(self) -> str:
        return f"{self.monitor}: {self.kind} at {self.at:%Y-%m-%d %H:%M}"

    def dashboard_url(self) -> str:
        """The dashboard view that shows this value: the evaluated window and the monitor's filters
        (plus the group when it is a model or service; end users are on Analytics' breakdowns)."""
        if not self.window_start or not self.window_end:
            return ""
        m = self.monitor
        services, models_ = list(m.services), list(m.model_names)
        if m.group_by == "service" and self.group:
            services = [self.group]
        if m.group_by == "model" and self.group:
            models_ = [self.group]
        pairs = [("from", _iso(self.window_start)), ("to", _iso(self.window_end))]
        pairs += [("service", s) for s in services] + [("model", x) for x in models_]
        if m.status:
            pairs.append(("status", m.status))
        tab = "analytics" if m.group_by == "user" or m.scores else "overview"
        return reverse(f"monitoring:{tab}", args=[m.project_id]) + "?" + urlencode(pairs)


def _iso(value: dt.datetime) -> str:
    return iso(value.replace(microsecond=0), "UTC")


class Delivery(models.Model):
    """One notification of one event through one channel, retried with backoff (delivery.py)."""

    PENDING, SENT, FAILED = "pending", "sent", "failed"
    STATES = [(PENDING, _("pending")), (SENT, _("sent")), (FAILED, _("failed"))]

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} -> {self.channel}: {self.state}"
