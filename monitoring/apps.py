import functools

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def _ensure_default_project(sender, **kwargs):
    """The project named by DEFAULT_PROJECT_ID exists once the database is set up."""
    from django.conf import settings

    from monitoring.models import Project

    Project.objects.get_or_create(id=settings.DEFAULT_PROJECT_ID, defaults={"name": "Default project"})


def _project_changed(sender, instance, **kwargs):
    """A project's settings or prices shape its answers: cached ones are not served again."""
    from monitoring.store import versions

    versions.bump([getattr(instance, "project_id", None) or instance.pk])


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_login_failed

        from monitoring import background, checks, prometheus, throttling  # noqa: F401 - checks register
        from monitoring.semantics import resettle, scoping, settle
        from monitoring.store import clickhouse, schema

        clickhouse.on_embedded_open = schema.ensure_schema
        settle.on_pass = prometheus.observe_settle_pass
        # Recorded only; it runs where `background.start()` is called (the serving process in
        # embedded mode) or under `manage.py settle --loop`.
        # Both write facts: they run in one process per database (per partition with SETTLE_PARTITIONS),
        # the holder of the settler's lease (of that partition's); partitions are shared out.
        parts = scoping.partitions()
        among = tuple(settle.lease(p) for p in parts) if len(parts) > 1 else ()
        for part in parts:
            lease = settle.lease(part)
            background.register(
                settle.job_name(settle.JOB_NAME, part),
                settle.EVERY_SECONDS,
                functools.partial(settle.settle_when_due, part),
                lease=lease,
                among=among,
            )
            background.register(
                settle.job_name(resettle.JOB_NAME, part),
                resettle.EVERY_SECONDS,
                functools.partial(resettle.resettle_changed, part),
                lease=lease,
                among=among,
            )
        post_migrate.connect(_ensure_default_project, sender=self)
        from monitoring.models import ModelPrice, Project

        post_save.connect(_project_changed, sender=Project, dispatch_uid="monitoring.project_changed")
        for signal in (post_save, post_delete):
            signal.connect(_project_changed, sender=ModelPrice, dispatch_uid=f"monitoring.price_changed.{id(signal)}")
        # After django-axes' receiver (its app is listed first), so this failure is counted already.
        user_login_failed.connect(throttling.delay_failed_login, dispatch_uid="monitoring.delay_failed_login")
