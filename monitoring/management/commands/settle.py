"""`python manage.py settle`: apply the counting rules to the spans inserted since the last pass and
store the facts (monitoring/semantics/settle.py); `--loop`: again every second until stopped (server mode:
the compose `settler` service; in embedded mode the serving process runs the same job itself);
`--healthcheck`: exit 0 when a pass was recorded in the last STALE_AFTER_SECONDS (the container's
health check, read from ClickHouse: it holds wherever the settler runs; with partitions, the lowest
partition's pass). One process per database (per partition with SETTLE_PARTITIONS) settles, the
holder of the settler's lease: a second `--loop` stands by or takes its share of the partitions, a
one-off pass while a loop holds the lease is refused. `--partition 2/4`: a one-off pass over that
partition only (parallel backfills, benches)."""

import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring import background
from monitoring.models import Lease
from monitoring.semantics import scoping, settle
from monitoring.store import clickhouse


def _partition(value: str) -> scoping.Partition:
    found = re.fullmatch(r"(\d+)/(\d+)", value)
    if not found or not 1 <= int(found[1]) <= int(found[2]) <= 64:
        raise CommandError(f"--partition must be I/N with 1 <= I <= N <= 64, not {value!r}")
    return scoping.Partition(int(found[1]) - 1, int(found[2]))


class Command(BaseCommand):
    help = "Settle the spans inserted since the last pass (once, or every second with --loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep settling every second until stopped")
        parser.add_argument("--healthcheck", action="store_true", help="exit 0 if a pass was recorded lately")
        parser.add_argument("--partition", help="one pass over partition I of N only (I/N, from 1)")

    def handle(self, *args, loop=False, healthcheck=False, partition=None, **options):
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
            # The jobs under the settler's leases: settle and resettle (per partition), scores.place.
            names = [j.name for j in background.jobs() if j.lease.split("/")[0] == settle.LEASE]
            try:
                background.run_forever(names)
            except KeyboardInterrupt:
                pass
            return
        parts = [_partition(partition)] if partition else scoping.partitions()
        configured = len(scoping.partitions())
        if partition and settings.CLICKHOUSE["HOST"] and parts[0].count != configured:
            # Another N names other leases and state rows: this pass and the running settlers would
            # both settle the same projects, and VersionedCollapsing cannot fold two new rows.
            raise CommandError(
                f"--partition {partition} splits the projects in {parts[0].count}, the settlers in"
                f" {configured} (SETTLE_PARTITIONS): use I/{configured}"
            )
        reports = []
        try:
            for part in parts:
                if not background.hold(settle.lease(part)):
                    continue
                try:
                    reports.append(settle.settle_once(partition=part))
                except clickhouse.ClickHouseError as exc:
                    raise CommandError(f"ClickHouse {exc.kind}: {exc}") from None
        finally:
            background.release()
        if not reports:
            lease = Lease.objects.get(name=settle.lease(parts[0]))
            raise CommandError(
                f"another settler holds the lease until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC"
                f" ({lease.holder}): it settles these spans"
            )
        if len(reports) < len(parts):
            self.stderr.write(f"{len(parts) - len(reports)} of {len(parts)} partitions are settled by other processes")
        self.stdout.write(
            f"{sum(r.traces for r in reports)} traces settled: {sum(r.calls_written for r in reports)} call,"
            f" {sum(r.runs_written for r in reports)} run and {sum(r.edges_written for r in reports)} edge rows"
            f" written (with the rollup rows they fed) in {sum(r.seconds for r in reports):.2f} s"
        )
