from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitorsConfig(AppConfig):
    """Monitors and alerts: rules over ClickHouse metrics, their states, and channels."""

    name = "monitoring.monitors"
    label = "monitors"
    verbose_name = _("Monitors")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from monitoring import background
        from monitoring.monitors import evaluation

        # Recorded only; it runs where `background.start()` is called (the serving process in
        # embedded mode) or under `manage.py run_monitors --loop`.
        # No lease: each evaluator claims each monitor's period and each delivery for itself.
        background.register(evaluation.JOB_NAME, evaluation.EVERY_SECONDS, evaluation.run_due)
