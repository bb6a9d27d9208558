"""`python manage.py settle`: apply the counting rules to the spans inserted since the last pass and
store the facts (monitoring/semantics/settle.py); `--loop`: again every second until stopped (server mode:
the compose `settler` service; in embedded mode the serving process runs the same job itself);
`--healthcheck`: exit 0 when a pass was recorded in the last STALE_AFTER_SECONDS (the container's
health check, read from ClickHouse: it holds wherever the settler runs). One process per database
settles, the holder of the settler's lease: a second `--loop` stands by, a one-off pass while a loop
holds the lease is refused."""

from django.core.management.base import BaseCommand, CommandError

from monitoring import background
from monitoring.models import Lease
from monitoring.semantics import resettle, scoping, settle
from monitoring.store import clickhouse


class Command(BaseCommand):
    help = "Settle the spans inserted since the last pass (once, or every second with --loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep settling every second until stopped")
        parser.add_argument("--healthcheck", action="store_true", help="exit 0 if a pass was recorded lately")

    def handle(self, *args, loop=False, healthcheck=False, **options):
        if healthcheck:
            try:
                through, now = scoping.state()
            except clickhouse.ClickHouseError as exc:
                raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
            if not through:
                raise CommandError("no pass recorded yet: is `settle --loop` running?")
            age = (now - through) / 1e9
            if age > scoping.STALE_AFTER_SECONDS:
                raise CommandError(f"the last pass was recorded {age:.0f} s ago")
            self.stdout.write(f"ok: last pass recorded {age:.0f} s ago")
            return
        if loop:
            self.stdout.write(f"settling every {settle.EVERY_SECONDS} s (Ctrl-C stops)")
            try:
                background.run_forever([settle.JOB_NAME, resettle.JOB_NAME, "scores.place"])  # quality/scores.py
            except KeyboardInterrupt:
                pass
            return
        if not background.hold(settle.LEASE):
            lease = Lease.objects.get(name=settle.LEASE)
            raise CommandError(
                f"another settler holds the lease until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC"
                f" ({lease.holder}): it settles these spans"
            )
        try:
            report = settle.settle_once()
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
        finally:
            background.release()
        self.stdout.write(
            f"{report.traces} traces settled: {report.calls_written} call, {report.runs_written} run and"
            f" {report.edges_written} edge rows written (with the rollup rows they fed) in {report.seconds:.2f} s"
        )
