"""`python manage.py run_judges`: one pass of every enabled LLM judge (monitoring/quality/judges.py);
`--loop`: again every minute until stopped (server mode: the compose `judges` service; the embedded
server runs the same job itself), touching a heartbeat file after each pass; `--healthcheck`: exit 0
when that file is fresh (the container's health check); `--backfill <evaluator id> --hours N --limit M`: judge up to M targets of the last N hours
now. The operator's JUDGES_ENABLED, each project's switch and daily cost cap hold throughout."""

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from monitoring import background
from monitoring.quality import judges
from monitoring.quality.models import Evaluator
from monitoring.store import clickhouse

HEARTBEAT = Path(os.environ.get("JUDGES_HEARTBEAT_FILE") or Path(tempfile.gettempdir()) / "run_judges.heartbeat")
STALE_AFTER_SECONDS = 3 * judges.EVERY_SECONDS + judges.MAX_PER_PASS * 30  # a pass may wait on slow judges


def _pass_and_beat():
    reports = judges.run_once()
    HEARTBEAT.touch()
    return reports


class Command(BaseCommand):
    help = "Run the LLM judges once, every minute with --loop, or backfill one evaluator."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep judging every minute until stopped")
        parser.add_argument("--healthcheck", action="store_true", help="exit 0 if a --loop pass ran lately")
        parser.add_argument("--backfill", type=int, metavar="EVALUATOR_ID", help="judge a past window now")
        parser.add_argument("--hours", type=float, default=24.0, help="the backfill's window: the last N hours")
        parser.add_argument(
            "--limit", type=int, default=100, help=f"at most this many targets (<= {judges.BACKFILL_MAX})"
        )

    def handle(self, *args, loop=False, healthcheck=False, backfill=None, hours=24.0, limit=100, **options):
        if healthcheck:
            try:
                age = time.time() - HEARTBEAT.stat().st_mtime
            except OSError:
                raise CommandError(f"no heartbeat at {HEARTBEAT}: is `run_judges --loop` running?") from None
            if age > STALE_AFTER_SECONDS:
                raise CommandError(f"the last pass was {age:.0f} s ago")
            self.stdout.write(f"ok: last pass {age:.0f} s ago")
            return
        if backfill is not None:
            evaluator = Evaluator.objects.select_related("project", "score_config").filter(pk=backfill).first()
            if evaluator is None:
                raise CommandError(f"no evaluator {backfill}")
            if not 0 < hours <= 24 * 366:
                raise CommandError("--hours: more than 0, at most a year")
            end = timezone.now()
            try:
                report = judges.backfill(evaluator, end - dt.timedelta(hours=hours), end, limit)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            except clickhouse.ClickHouseError as exc:
                raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
            stopped = f"; stopped: {report.stopped}" if report.stopped else ""
            self.stdout.write(f"evaluator {evaluator.pk}: {report.scored} scored, {report.failed} failed{stopped}")
            return
        if loop:
            self.stdout.write(f"judging every {judges.EVERY_SECONDS} s (Ctrl-C stops)")
            background.register(judges.JOB_NAME, judges.EVERY_SECONDS, _pass_and_beat)
            try:
                background.run_forever([judges.JOB_NAME])
            except KeyboardInterrupt:
                pass
            return
        reports = judges.run_once()
        scored = sum(r.scored for r in reports)
        failed = sum(r.failed for r in reports)
        self.stdout.write(f"{len(reports)} evaluators: {scored} scored, {failed} failed")
        for r in reports:
            if r.stopped:
                self.stderr.write(f"evaluator {r.evaluator_id}: stopped ({r.stopped})")
