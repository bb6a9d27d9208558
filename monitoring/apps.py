from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_default_project(sender, **kwargs):
    """The project named by DEFAULT_PROJECT_ID exists once the database is set up."""
    from django.conf import settings

    from monitoring.models import Project

    Project.objects.get_or_create(id=settings.DEFAULT_PROJECT_ID, defaults={"name": "Default project"})


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from monitoring import checks, clickhouse, schema  # noqa: F401 - checks register themselves

        clickhouse.on_embedded_open = schema.ensure_schema
        post_migrate.connect(_ensure_default_project, sender=self)
