import contextlib
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from demo import traffic
from monitoring.ingest import otlp, span_store
from monitoring.models import Project
from monitoring.store import clickhouse, maintenance


class Command(BaseCommand):
    help = "Send realistic demo traffic (LiteLLM proxy + agents in every dialect) through the OTLP ingest path."

    def add_arguments(self, parser):
        parser.add_argument("--project", default=None, help="project UUID (default: DEFAULT_PROJECT_ID)")
        parser.add_argument("--days", type=int, default=7)
        parser.add_argument("--runs-per-day", type=int, default=120)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, project=None, days=7, runs_per_day=120, seed=0, no_progress=False, **options):
        try:
            project_id = str(uuid.UUID(project or settings.DEFAULT_PROJECT_ID))
        except ValueError:
            raise CommandError(f"--project must be a UUID, not {project!r}") from None
        if not Project.objects.filter(id=project_id).exists():
            raise CommandError(f"No project {project_id}; create it with `python manage.py createproject`.")
        if days < 1 or runs_per_day < 1:
            raise CommandError("--days and --runs-per-day must be at least 1")
        # Exact, so the bar ends at 100 % (an estimate left it at 96 %): the same `now` draws the same traces.
        now = datetime.now(UTC)
        total = traffic.count_spans(days=days, runs_per_day=runs_per_day, seed=seed, now=now)
        stored = 0
        held = maintenance.holder()  # the running portal has the embedded folder: send it OTLP instead
        portal = maintenance.SpansToPortal(project_id) if held else contextlib.nullcontext()
        with portal as to_portal, tqdm(total=total, unit="span", desc="demo traces", disable=no_progress) as bar:
            for request, _ in traffic.generate_requests(days=days, runs_per_day=runs_per_day, seed=seed, now=now):
                # The same path as a real exporter: wire bytes -> decode -> rows -> insert.
                body = request.SerializeToString()
                if to_portal and held:
                    sent = to_portal.send(body, held)
                    stored += sent
                    bar.update(sent)
                    continue
                decoded = otlp.decode_request(body, otlp.PROTOBUF_CONTENT_TYPE, None)
                rows, _ = otlp.rows_from_request(decoded, project_id)
                try:
                    span_store.store(rows, tag="demo.spans")
                except clickhouse.ClickHouseError as exc:
                    raise CommandError(f"ClickHouse {exc.kind}: {exc}") from exc
                stored += len(rows)
                bar.update(len(rows))
        self.stdout.write(self.style.SUCCESS(f"Sent {stored:,} demo spans to project {project_id}."))
