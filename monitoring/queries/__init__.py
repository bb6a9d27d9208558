"""The read side: the dashboard's questions, one module per question (overview, timeseries,
breakdowns, latency, flow, facets, spans, trace, runs, sessions); `sources` says where rows come
from (settled rollups and rows, plus traces not settled yet, computed by `live`), `filter` is the
parsed question. It reads the counting rules from monitoring/semantics/ and never the settler."""
