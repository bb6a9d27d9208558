"""The Traces tab's questions, as the views import them: the lists (monitoring/queries/spans.py)
and one trace (monitoring/queries/trace.py)."""

from __future__ import annotations

from monitoring.queries.spans import (  # noqa: F401
    DEFAULT_KIND,
    EXPORT_CHUNK,
    EXPORT_MAX_ROWS,
    KINDS,
    MAX_LIMIT,
    PAGE_SIZE,
    SPAN_ID,
    TRACE_ID,
    BadQuery,
    Cursor,
    ListQuery,
    Page,
    SpanRow,
    iter_spans,
    list_spans,
    status_name,
)
from monitoring.queries.trace import (  # noqa: F401
    MAX_TRACE_SPANS,
    Event,
    FullSpan,
    Invocation,
    TraceRef,
    TraceSummary,
    TreeRow,
    TreeSpan,
    after_token,
    children,
    full_span,
    full_spans,
    invocations,
    locate,
    mark_invocations,
    parse_after,
    summarize,
    tree_spans,
    visible_rows,
)
