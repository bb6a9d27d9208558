import json
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from monitoring.models import IngestKey, Membership, Project


class Command(BaseCommand):
    help = "Create a project (or reuse the one with --id), make OWNER its admin, and print a new ingest key as JSON."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username of the project's first admin")
        parser.add_argument("--id", dest="project_id", help="the project's UUID (its project_id in ClickHouse)")

    @transaction.atomic
    def handle(self, name, owner, project_id=None, **options):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user named {owner!r}; create one with `python manage.py createsuperuser`.")
        if project_id:
            try:
                project_id = uuid.UUID(project_id)
            except ValueError:
                raise CommandError(f"--id must be a UUID, not {project_id!r}") from None
            project, _ = Project.objects.get_or_create(id=project_id, defaults={"name": name})
        else:
            project = Project.objects.create(name=name)
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
        _, secret = IngestKey.issue(project, name=f"createproject for {owner}")
        self.stdout.write(json.dumps({"project_id": str(project.id), "ingest_key": secret}))
