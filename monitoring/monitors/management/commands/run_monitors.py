"""`python manage.py run_monitors`: evaluate every enabled monitor once and send what is due;
`--loop`: every minute until stopped (the compose `monitors` service, or any server-mode
deployment), the monitors whose period this process claims (more than one loop may run: each
monitor is evaluated by one of them per period), printing a line and touching a heartbeat file
after each pass; `--healthcheck`: exit 0 when that file is fresh (the container's health check).
In embedded mode the serving process runs the same job itself (monitoring/background.py), and this
command cannot open the data folder while it runs."""

import os
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monitoring import background
from monitoring.monitors import evaluation
from monitoring.store import clickhouse

HEARTBEAT = Path(os.environ.get("MONITORS_HEARTBEAT_FILE") or Path(tempfile.gettempdir()) / "run_monitors.heartbeat")
STALE_AFTER_SECONDS = 3 * evaluation.EVERY_SECONDS


def summary(outcomes: list[evaluation.Outcome]) -> str:
    """One line for a pass: monitors evaluated, groups that fired and resolved, monitors that failed."""
    fired = sum(len(o.fired) for o in outcomes)
    resolved = sum(len(o.resolved) for o in outcomes)
    failed = sum(1 for o in outcomes if o.error)
    return f"{len(outcomes)} monitors evaluated: {fired} fired, {resolved} resolved, {failed} failed"


class Command(BaseCommand):
    help = "Evaluate monitors once, or every minute with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep evaluating every minute until stopped")
        parser.add_argument("--healthcheck", action="store_true", help="exit 0 if a --loop pass ran lately")

    def handle(self, *args, loop=False, healthcheck=False, **options):
        if healthcheck:
            try:
                age = time.time() - HEARTBEAT.stat().st_mtime
            except OSError:
                raise CommandError(f"no heartbeat at {HEARTBEAT}: is `run_monitors --loop` running?") from None
            if age > STALE_AFTER_SECONDS:
                raise CommandError(f"the last pass was {age:.0f} s ago")
            self.stdout.write(f"ok: last pass {age:.0f} s ago")
            return
        if loop:
            self.stdout.write(f"evaluating monitors every {evaluation.EVERY_SECONDS} s (Ctrl-C stops)")

            def pass_and_beat() -> None:
                self.stdout.write(summary(evaluation.run_due()))
                HEARTBEAT.touch()

            background.register(evaluation.JOB_NAME, evaluation.EVERY_SECONDS, pass_and_beat)
            try:
                background.run_forever([evaluation.JOB_NAME])
            except KeyboardInterrupt:
                pass
            return
        try:
            outcomes = evaluation.run_once()
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
        self.stdout.write(summary(outcomes))
        for outcome in outcomes:
            if outcome.error:
                self.stderr.write(f"monitor {outcome.monitor_id}: {outcome.error}")
