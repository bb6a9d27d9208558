"""The dashboard's questions, one module per question (overview, timeseries, breakdowns, latency,
flow, facets, spans, trace, runs, sessions, users); `facts` holds the counting rules, `sources`
where rows come from (settled rollups and rows, plus traces not settled yet), `filter` the parsed
question and `sql` the composable fragments."""
