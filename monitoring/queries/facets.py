"""The filter bar's choices: services and models seen in the window (by the hour, from a rollup
fed on every insert), not narrowed by the other filters so that they can be widened again."""

from __future__ import annotations

from monitoring import schema
from monitoring.queries.filter import SpanFilter, to_nanos
from monitoring.queries.sql import Sql, run_one

MAX_CHOICES = 200


def facets(flt: SpanFilter) -> dict[str, list[str]]:
    """{"services": [...], "models": [...]}, sorted, at most MAX_CHOICES each."""
    hour = 3600 * 10**9
    row = run_one(
        Sql(
            f"SELECT groupUniqArray({MAX_CHOICES})(ServiceName) AS services,",
            f" groupUniqArrayIf({MAX_CHOICES})(Model, Model != '') AS models",
            f" FROM {schema.table(schema.FACETS_1H)} WHERE ProjectId = {{project:String}}",
            " AND Slice >= fromUnixTimestamp64Nano({f_start:Int64}) AND Slice < fromUnixTimestamp64Nano({f_end:Int64})",
            project=flt.project_id,
            f_start=to_nanos(flt.window.start) // hour * hour,
            f_end=to_nanos(flt.window.end),
        ),
        tag="filters.facets",
    )
    return {"services": sorted(row.get("services") or []), "models": sorted(row.get("models") or [])}
