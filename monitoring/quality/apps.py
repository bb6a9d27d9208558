from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QualityConfig(AppConfig):
    """Scores, feedback and evaluations (monitoring/quality/__init__.py)."""

    name = "monitoring.quality"
    label = "quality"
    verbose_name = _("Quality")
    default_auto_field = "django.db.models.BigAutoField"
