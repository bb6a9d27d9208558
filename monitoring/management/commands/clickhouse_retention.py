from django.core.management.base import BaseCommand, CommandError

from monitoring.store import clickhouse, maintenance, schema


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class Command(BaseCommand):
    help = (
        "Set how long spans are kept (ALTER TABLE ... MODIFY TTL; expired daily parts are dropped whole, "
        "nothing is rewritten) and list the partitions with their rows and sizes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="keep N days (0 removes the TTL); omit to only list")

    def handle(self, *args, days=None, **options):
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (keep forever) or more")
        held = maintenance.holder()  # the running portal has the embedded folder: ask it
        try:
            if held:
                answer = (
                    maintenance.ask_portal("retention", days=days)
                    if days is not None
                    else maintenance.ask_portal("partitions")
                )
                ttl, rows = answer["ttl"], answer["partitions"]
            else:
                if days is not None:
                    schema.set_retention(days)
                ttl = schema.current_ttl()
                rows = schema.partitions()
        except maintenance.PortalUnreachable as exc:  # only asked when `held`
            raise CommandError(maintenance.held_message(held, str(exc)) if held else str(exc)) from exc
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse {exc.kind}: {exc}") from exc
        self.stdout.write(f"TTL of {clickhouse.database()}.otel_traces: {ttl or 'none (spans are kept forever)'}")
        self.stdout.write(f"{'partition':<12} {'rows':>12} {'on disk':>10} {'parts':>6}")
        for row in rows:
            self.stdout.write(f"{row['partition']:<12} {row['rows']:>12,} {_size(row['bytes']):>10} {row['parts']:>6}")
        total_rows = sum(r["rows"] for r in rows)
        total_bytes = sum(r["bytes"] for r in rows)
        self.stdout.write(f"{'total':<12} {total_rows:>12,} {_size(total_bytes):>10} {len(rows):>6} partitions")
