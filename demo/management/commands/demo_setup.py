import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from monitoring.models import IngestKey, Membership, Project
from monitoring.store import clickhouse, maintenance, schema

PASSWORD_FILE = "demo_password"  # in PORTAL_VAR_DIR, 0600: so a second run prints the same login
INGEST_KEY_FILE = "demo_ingest_key"


def _private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class Command(BaseCommand):
    help = (
        "Demo user + default project + ingest key, and demo traffic when the project has none; prints the login "
        "and the addresses BIND serves on. Run again, it keeps the password and the key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--days", type=int, default=7)
        parser.add_argument("--new-password", action="store_true", help="set and print a new demo password")

    def handle(self, *args, username="demo", days=7, new_password=False, **options):
        schema.ensure_schema()
        var = Path(settings.VAR_DIR)
        user, created = get_user_model().objects.get_or_create(username=username)
        stored = _read(var / PASSWORD_FILE)
        if stored and not (created or new_password) and user.check_password(stored):
            password = stored  # a second run prints the same login
        elif stored and not (created or new_password) and user.has_usable_password():
            password = ""  # changed since it was printed: the person's own password stays, unprinted
        else:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            _private(var / PASSWORD_FILE, password)
        user.is_staff = user.is_superuser = True
        user.save()
        project, _ = Project.objects.get_or_create(id=settings.DEFAULT_PROJECT_ID, defaults={"name": "Default project"})
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
        ingest_key = _read(var / INGEST_KEY_FILE)
        found = IngestKey.find(ingest_key)
        if found is None or found.project_id != project.id:
            _, ingest_key = IngestKey.issue(project, name="demo_setup")
            _private(var / INGEST_KEY_FILE, ingest_key)
        spans = clickhouse.query_one(
            f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{project:String}}",
            {"project": str(project.id)},
            tag="demo.count",
        ).get("n", 0)
        if not spans:
            call_command("demo_traces", project=str(project.id), days=days)
        self.stdout.write(json.dumps({"project_id": str(project.id), "ingest_key": ingest_key}))
        bind = os.environ.get("BIND", maintenance.DEFAULT_BIND)
        urls = maintenance.urls_for_bind(bind)
        maintenance.record_url(bind)  # maintenance commands in another shell find the portal there
        login = f"{username} / {password}" if password else f"{username} (password kept as you set it)"
        lines = [""]
        if urls:
            lines.append(f"  Dashboard: {urls[0]}/admin/monitoring")
            lines += [f"             {url}/admin/monitoring" for url in urls[1:]]
        else:
            lines.append(f"  Dashboard: on {bind} (a socket: put a web server in front of it)")
        lines.append(f"  Login:     {login}")
        if urls:
            lines.append(f"  OTLP:      POST {urls[0]}/v1/traces with Authorization: Bearer {ingest_key}")
        hosts = {u.split("//", 1)[1].rsplit(":", 1)[0].strip("[]") for u in urls}
        unknown = sorted(h for h in hosts if h not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS)
        if unknown:
            lines.append(f"  Note:      add {', '.join(unknown)} to ALLOWED_HOSTS to open the dashboard by that name")
        self.stdout.write(self.style.SUCCESS("\n".join(lines) + "\n"))
