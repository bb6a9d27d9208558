from django.core.management.base import BaseCommand, CommandError

from monitoring import clickhouse, schema


class Command(BaseCommand):
    help = "Create or complete the ClickHouse schema (idempotent; never drops data)."

    def add_arguments(self, parser):
        parser.add_argument("--ttl-days", type=int, help="retention for a new table (default: CLICKHOUSE_TTL_DAYS)")

    def handle(self, *args, ttl_days=None, **options):
        try:
            schema.ensure_schema(ttl_days)
            columns = schema.existing_columns()
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse schema setup failed ({exc.kind}): {exc}") from exc
        where = "embedded engine" if clickhouse.is_embedded() else "server"
        self.stdout.write(
            self.style.SUCCESS(f"Schema ready in {clickhouse.database()} on the {where}: {len(columns)} columns in otel_traces")
        )
