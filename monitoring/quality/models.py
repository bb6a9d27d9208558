"""A project's score configs: what a score name means, so the pages can show, check and compare it.

A config is optional: an evaluation event, an SDK or the API may send any name, and it still shows.
With a config, values are checked (a numeric score within its range, a categorical one among its
labels, a boolean one 0 or 1) and the pages know which direction is better.
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from monitoring.models import Project
from monitoring.queries.quality import FEEDBACK, PassMark, pass_mark  # FEEDBACK: the thumbs, boolean, 1 = up

__all__ = ["FEEDBACK", "ScoreConfig", "pass_marks"]


class ScoreConfig(models.Model):
    NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
    DATA_TYPES = [(NUMERIC, _("Numeric")), (CATEGORICAL, _("Categorical")), (BOOLEAN, _("Boolean"))]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="score_configs")
    name = models.CharField(max_length=200)
    data_type = models.CharField(max_length=12, choices=DATA_TYPES, default=NUMERIC)
    min_value = models.FloatField(null=True, blank=True, help_text=_("numeric: the lowest value allowed"))
    max_value = models.FloatField(null=True, blank=True, help_text=_("numeric: the highest value allowed"))
    categories = models.CharField(
        max_length=1000, blank=True, default="", help_text=_("categorical: the labels allowed, comma-separated")
    )
    higher_is_better = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="one_config_per_score_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.data_type}) in {self.project}"

    @property
    def labels(self) -> list[str]:
        return [c.strip() for c in self.categories.split(",") if c.strip()]

    def clean(self) -> None:
        if self.data_type == self.CATEGORICAL and not self.labels:
            raise ValidationError({"categories": _("A categorical score needs its labels.")})
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValidationError({"max_value": _("The highest value is below the lowest.")})

    def check_score(self, value: float | None, label: str) -> tuple[float | None, str]:
        """The (value, label) to store for this config, or ValueError naming the field that is wrong."""
        if self.data_type == self.BOOLEAN:
            if value is None and label.lower() in ("true", "false", "up", "down", "yes", "no"):
                value = 1.0 if label.lower() in ("true", "up", "yes") else 0.0
            if value not in (0.0, 1.0):
                raise ValueError("value: a boolean score is 0 or 1")
            return value, label or ("true" if value else "false")
        if self.data_type == self.CATEGORICAL:
            if label not in self.labels:
                raise ValueError(f"label: must be one of {', '.join(self.labels)}")
            return value, label
        if value is None:
            raise ValueError("value: a numeric score needs a number")
        if self.min_value is not None and value < self.min_value:
            raise ValueError(f"value: at least {self.min_value:g}")
        if self.max_value is not None and value > self.max_value:
            raise ValueError(f"value: at most {self.max_value:g}")
        if not math.isfinite(value):
            raise ValueError("value: must be a finite number")
        return value, label

    @property
    def pass_mark(self) -> PassMark:
        """Where this score passes (monitoring/queries/quality.py: the middle of its range, else 0.5)."""
        return pass_mark(self.name, self.min_value, self.max_value, self.higher_is_better)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """[min, max] when both are set (a histogram's range), a boolean's [0, 1], else None."""
        if self.data_type == self.BOOLEAN:
            return (0.0, 1.0)
        if self.min_value is not None and self.max_value is not None:
            return (self.min_value, self.max_value)
        return None


def pass_marks(project) -> list[PassMark]:
    """The project's configs' pass marks (the failing rule's input; names without a config pass at 0.5)."""
    return [c.pass_mark for c in ScoreConfig.objects.filter(project=project)]


def _names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


class Evaluator(models.Model):
    """An LLM judge: a prompt over a run's or an LLM call's input, output and metadata, sent to a model
    alias through the LiteLLM gateway; its answer (JSON {"score", "label", "explanation"}) becomes a
    score of `score_config` (source "judge"). monitoring/quality/judges.py runs it."""

    RUN, CALL = "run", "call"
    TARGETS = [(RUN, _("Agent run")), (CALL, _("LLM call"))]
    DJANGO, FORMAT = "django", "format"
    SYNTAXES = [(DJANGO, _("Django template ({{ input }})")), (FORMAT, _("str.format ({input})"))]
    # What changes the judgement itself: a change of any of these bumps the version (a new score per target).
    JUDGED_BY = ("prompt", "syntax", "model", "score_config_id", "target")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluators")
    name = models.CharField(max_length=200)
    prompt = models.TextField(
        help_text=_(
            "Fields: input, output, metadata (name, service, model, agent, span_name, duration_ms, cost_usd, …)"
        )
    )
    syntax = models.CharField(max_length=8, choices=SYNTAXES, default=DJANGO)
    model = models.CharField(max_length=200, help_text=_("a model alias of the LiteLLM gateway"))
    score_config = models.ForeignKey(ScoreConfig, on_delete=models.PROTECT, related_name="evaluators")
    target = models.CharField(max_length=4, choices=TARGETS, default=RUN)
    sampling_rate = models.FloatField(default=1.0, help_text=_("0 to 1: the share of targets judged"))
    services = models.CharField(max_length=1000, blank=True, default="", help_text=_("comma-separated; empty: all"))
    model_names = models.CharField(max_length=1000, blank=True, default="", help_text=_("comma-separated; empty: all"))
    agents = models.CharField(max_length=1000, blank=True, default="", help_text=_("comma-separated; empty: all"))
    span_names = models.CharField(max_length=1000, blank=True, default="", help_text=_("comma-separated; empty: all"))
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    # The settler's insert time (ns, server clock) up to which targets were looked at; 0: not yet
    # (the first pass looks back judges.FIRST_LOOKBACK). Reset when the version changes.
    checked_through_ns = models.BigIntegerField(default=0, editable=False)
    # A backfill asked for (the page's button): targets starting in [from, to), at most `left` more.
    backfill_from = models.DateTimeField(null=True, blank=True, editable=False)
    backfill_to = models.DateTimeField(null=True, blank=True, editable=False)
    backfill_left = models.PositiveIntegerField(default=0, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="one_evaluator_per_name")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} in {self.project}"

    def save(self, *args, **kwargs) -> None:
        """A change of what judges (JUDGED_BY) bumps the version and looks at recent targets again."""
        bumped = False
        if self.pk:
            before = Evaluator.objects.filter(pk=self.pk).values(*self.JUDGED_BY).first()
            if before and any(before[f] != getattr(self, f) for f in self.JUDGED_BY):
                self.version += 1
                self.checked_through_ns = 0
                bumped = True
        super().save(*args, **kwargs)
        if bumped:  # the old version's failures are never retried: the new version judges afresh
            JudgeFailure.objects.filter(evaluator=self).exclude(version=self.version).delete()

    def filters(self) -> dict[str, list[str]]:
        """{"services", "models", "agents", "span_names"}: each a list, empty meaning any."""
        return {
            "services": _names(self.services),
            "models": _names(self.model_names),
            "agents": _names(self.agents),
            "span_names": _names(self.span_names),
        }

    def clean(self) -> None:
        if not 0.0 <= self.sampling_rate <= 1.0:
            raise ValidationError({"sampling_rate": _("A sampling rate is between 0 and 1.")})
        if self.score_config_id and self.score_config.project_id != self.project_id:
            raise ValidationError({"score_config": _("The score config belongs to another project.")})


class JudgeSettings(models.Model):
    """A project's switch and daily cost cap for all its judges (the operator's JUDGES_ENABLED is above both)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="judge_settings")
    enabled = models.BooleanField(default=True, help_text=_("off: no judge of this project calls a model"))
    daily_cost_cap_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=1,
        help_text=_("USD per UTC day, from the judge calls' cost; judging stops for the day once reached"),
    )

    def __str__(self) -> str:
        return f"judges of {self.project}"

    @classmethod
    def of(cls, project) -> JudgeSettings:
        """The project's settings (the defaults when none were saved; not stored until saved)."""
        found = cls.objects.filter(project=project).first()
        return found or cls(project=project)


class JudgeFailure(models.Model):
    """A target whose judge call failed (gateway down, an answer not parsable): retried on a later
    pass after a backoff, never scored meanwhile; dropped once judged, kept after MAX attempts."""

    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="failures")
    version = models.PositiveIntegerField()
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    retry_at = models.DateTimeField(null=True, blank=True, help_text=_("empty: no more attempts"))
    error = models.CharField(max_length=1000)
    kind = models.CharField(max_length=20)  # "unreachable", "timeout", "error", "unparsable"
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluator", "version", "trace_id", "span_id"], name="one_failure_per_target"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}/{self.span_id} of {self.evaluator} ({self.kind}, {self.attempts} attempts)"
