from django.core.management.base import BaseCommand, CommandError

from monitoring.store import clickhouse, maintenance, schema


class Command(BaseCommand):
    help = "Create or complete the ClickHouse schema (idempotent; never drops data)."

    def add_arguments(self, parser):
        parser.add_argument("--ttl-days", type=int, help="retention for a new table (default: CLICKHOUSE_TTL_DAYS)")
        parser.add_argument(
            "--cluster",
            help="create the schema ON CLUSTER: replicated *_local tables and Distributed otel_traces "
            "(sharded by trace id) under the names the portal and the collector use",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the statements instead of running them")

    def handle(self, *args, ttl_days=None, cluster=None, dry_run=False, **options):
        if ttl_days is not None and ttl_days < 0:
            raise CommandError("--ttl-days must be 0 (no TTL) or more")
        try:
            if cluster:
                try:
                    statements = schema.cluster_statements(cluster, self._days(ttl_days))
                except ValueError as exc:
                    raise CommandError(str(exc)) from exc
                if dry_run:
                    self.stdout.write(";\n\n".join(sql.strip() for sql in statements) + ";")
                    return
                schema.ensure_cluster_schema(cluster, ttl_days)
                self.stdout.write(self.style.SUCCESS(f"Cluster schema ready in {clickhouse.database()} on {cluster}"))
                return
            if dry_run:
                raise CommandError("--dry-run prints cluster DDL; use it with --cluster")
            held = maintenance.holder()  # the running portal has the embedded folder: ask it
            if held:
                try:
                    answer = maintenance.ask_portal("schema", ttl_days=ttl_days)
                except maintenance.PortalUnreachable as exc:
                    raise CommandError(maintenance.held_message(held, str(exc))) from exc
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Schema ready in {answer['database']} on the embedded engine of the running portal: "
                        f"{answer['columns']} columns in otel_traces"
                    )
                )
                return
            schema.ensure_schema(ttl_days)
            columns = schema.existing_columns()
        except clickhouse.ClickHouseError as exc:
            raise CommandError(f"ClickHouse schema setup failed ({exc.kind}): {exc}") from exc
        where = "embedded engine" if clickhouse.is_embedded() else "server"
        self.stdout.write(
            self.style.SUCCESS(
                f"Schema ready in {clickhouse.database()} on the {where}: {len(columns)} columns in otel_traces"
            )
        )

    @staticmethod
    def _days(ttl_days):
        from django.conf import settings

        return settings.CLICKHOUSE["TTL_DAYS"] if ttl_days is None else ttl_days
