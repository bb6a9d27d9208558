from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


def _config_changed(sender, instance, **kwargs):
    from monitoring.store import versions

    versions.bump([instance.project_id])


class QualityConfig(AppConfig):
    """Scores, feedback and evaluations (monitoring/quality/__init__.py)."""

    name = "monitoring.quality"
    label = "quality"
    verbose_name = _("Quality")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from monitoring import background
        from monitoring.quality import judges, scores
        from monitoring.quality.models import ScoreConfig
        from monitoring.semantics import settle

        # Recorded only; it runs where `background.start()` is called (the serving process in
        # embedded mode) or under `manage.py run_judges --loop`.
        background.register(judges.JOB_NAME, judges.EVERY_SECONDS, judges.run_once)
        # Beside the settler, in the holder of its lease (`manage.py settle --loop` in server mode).
        # A score config's rules (pass, fail) shape the quality numbers: cached answers go.
        for signal in (post_save, post_delete):
            signal.connect(_config_changed, sender=ScoreConfig, dispatch_uid=f"quality.config_changed.{id(signal)}")
        background.register(scores.PLACE_JOB, scores.PLACE_EVERY_SECONDS, scores.place_loose, lease=settle.LEASE)
