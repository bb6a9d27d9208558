import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from monitoring import clickhouse, schema
from monitoring.models import IngestKey, Membership, Project


class Command(BaseCommand):
    help = "Demo user + default project + ingest key, and demo traffic when the project has none; prints the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--days", type=int, default=7)

    def handle(self, *args, username="demo", days=7, **options):
        schema.ensure_schema()
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        project, _ = Project.objects.get_or_create(id=settings.DEFAULT_PROJECT_ID, defaults={"name": "Default project"})
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
        _, ingest_key = IngestKey.issue(project, name="demo_setup")
        spans = clickhouse.query_one(
            f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{project:String}}",
            {"project": str(project.id)},
            tag="demo.count",
        ).get("n", 0)
        if not spans:
            call_command("demo_traces", project=str(project.id), days=days)
        self.stdout.write(json.dumps({"project_id": str(project.id), "ingest_key": ingest_key}))
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Dashboard: http://127.0.0.1:3009/admin/monitoring\n"
                f"  Login:     {username} / {password}\n"
                f"  OTLP:      POST http://127.0.0.1:3009/v1/traces with Authorization: Bearer {ingest_key}\n"
            )
        )
