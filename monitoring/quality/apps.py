from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QualityConfig(AppConfig):
    """Scores, feedback and evaluations (monitoring/quality/__init__.py)."""

    name = "monitoring.quality"
    label = "quality"
    verbose_name = _("Quality")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from monitoring import background
        from monitoring.quality import judges, scores
        from monitoring.semantics import settle

        # Recorded only; it runs where `background.start()` is called (the serving process in
        # embedded mode) or under `manage.py run_judges --loop`.
        background.register(judges.JOB_NAME, judges.EVERY_SECONDS, judges.run_once)
        # Beside the settler, in the holder of its lease (`manage.py settle --loop` in server mode).
        background.register(scores.PLACE_JOB, scores.PLACE_EVERY_SECONDS, scores.place_loose, lease=settle.LEASE)
