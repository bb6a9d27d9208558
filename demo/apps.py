from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo user, project and traffic (`manage.py demo_setup`, `manage.py demo_traces`)."""

    name = "demo"
    verbose_name = "Demo traffic"
