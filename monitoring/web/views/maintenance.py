"""POST /admin/monitoring/maintenance: schema, retention and the partition listing, run inside the
portal that holds the embedded engine, for `manage.py` commands that cannot open its data folder
while it runs (monitoring/store/maintenance.py). Only the local maintenance key opens it; embedded mode only."""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring import access
from monitoring.store import clickhouse, errors, maintenance, schema


def _partitions() -> dict:
    rows = schema.partitions()
    return {
        "database": clickhouse.database(),
        "ttl": schema.current_ttl(),
        "partitions": [
            {
                "partition": str(r["partition"]),
                "rows": int(r["rows"]),
                "bytes": int(r["bytes"]),
                "parts": int(r["parts"]),
            }
            for r in rows
        ],
    }


def _days(value, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("days must be a whole number, 0 or more")
    return value


@access.guarded_by("local maintenance key")
@csrf_exempt  # not a browser form: a bearer secret from the portal's own var/ folder
@require_POST
def maintenance_view(request):
    if not clickhouse.is_embedded():
        return JsonResponse({"error": "maintenance through the portal is for embedded mode only"}, status=404)
    if not maintenance.key_matches(request.headers.get("Authorization", "")):
        return JsonResponse({"error": "the local maintenance key is required"}, status=403)
    try:
        asked = json.loads(request.body or b"{}")
        operation = asked.get("operation")
        if operation == "schema":
            schema.ensure_schema(_days(asked.get("ttl_days"), allow_none=True))
            return JsonResponse({"database": clickhouse.database(), "columns": len(schema.existing_columns())})
        if operation == "retention":
            schema.set_retention(_days(asked.get("days"), allow_none=False) or 0)
            return JsonResponse(_partitions())
        if operation == "partitions":
            return JsonResponse(_partitions())
        return JsonResponse({"error": "operation must be schema, retention or partitions"}, status=400)
    except (ValueError, AttributeError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except clickhouse.ClickHouseError as exc:
        return errors.json_response(exc, request.user)
