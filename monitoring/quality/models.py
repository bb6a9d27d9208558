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
