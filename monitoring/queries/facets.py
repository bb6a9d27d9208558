"""The filter bar's choices: services and models seen in the window (by the hour, from a rollup
fed on every insert), not narrowed by the other filters so that they can be widened again. Names
longer than MAX_NAME_CHARS are not offered (they would not fit a URL's filter either)."""

from __future__ import annotations

from monitoring.queries.filter import SpanFilter
from monitoring.store import schema
from monitoring.store.sql import Sql, run_one, to_nanos

MAX_CHOICES = 200
MAX_NAME_CHARS = 500


def facets(flt: SpanFilter) -> dict[str, list[str]]:
    """{"services": [...], "models": [...]}, sorted, at most MAX_CHOICES each."""
    hour = 3600 * 10**9
    row = run_one(
        Sql(
            f"SELECT groupUniqArrayIf({MAX_CHOICES})(ServiceName, length(ServiceName) <= {MAX_NAME_CHARS}) AS services,",
            f" groupUniqArrayIf({MAX_CHOICES})(Model, Model != '' AND length(Model) <= {MAX_NAME_CHARS}) AS models",
            f" FROM {schema.table(schema.FACETS_1H)} WHERE ProjectId = {{project:String}}",
            " AND Slice >= fromUnixTimestamp64Nano({f_start:Int64}) AND Slice < fromUnixTimestamp64Nano({f_end:Int64})",
            project=flt.project_id,
            f_start=to_nanos(flt.window.start) // hour * hour,
            f_end=to_nanos(flt.window.end),
        ),
        tag="filters.facets",
    )
    return {"services": sorted(row.get("services") or []), "models": sorted(row.get("models") or [])}
