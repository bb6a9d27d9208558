"""Semantics: what spans mean, decided once.

- `semconv`: the attribute keys of every SDK dialect; `messages`: chat messages in every spelling;
  `pricing`: model prices; `facts`: the counting rules as SQL (invocations, runs, flow edges);
- `scoping`: what the settler and the read side share (the settler's progress, a set of traces'
  bounds and scope);
- `settle`: the settler's pass (writes facts and rollups); `resettle`: a project's facts again when
  its rules change.
The read side (monitoring/queries/) uses this layer and never imports `settle` or `resettle`.
"""
