"""`python manage.py run_monitors`: evaluate every enabled monitor once and send what is due;
`--loop`: again every minute until stopped (the compose `monitors` service, or any server-mode
deployment). In embedded mode the serving process runs the same job itself (monitoring/background.py),
and this command cannot open the data folder while the server holds it."""

from django.core.management.base import BaseCommand, CommandError

from monitoring import background, clickhouse
from monitoring.monitors import evaluation


class Command(BaseCommand):
    help = "Evaluate monitors once, or every minute with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep evaluating every minute until stopped")

    def handle(self, *args, loop=False, **options):
        if loop:
            self.stdout.write(f"evaluating monitors every {evaluation.EVERY_SECONDS} s (Ctrl-C stops)")
            try:
                background.run_forever([evaluation.JOB_NAME])
            except KeyboardInterrupt:
                pass
            return
        try:
            outcomes = evaluation.run_once()
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
        fired = sum(len(o.fired) for o in outcomes)
        resolved = sum(len(o.resolved) for o in outcomes)
        failed = sum(1 for o in outcomes if o.error)
        self.stdout.write(f"{len(outcomes)} monitors evaluated: {fired} fired, {resolved} resolved, {failed} failed")
        for outcome in outcomes:
            if outcome.error:
                self.stderr.write(f"monitor {outcome.monitor_id}: {outcome.error}")
