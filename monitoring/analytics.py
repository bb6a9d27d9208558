"""The Analytics tab's questions, as the views import them (one module per question lives in
monitoring/queries/)."""

from __future__ import annotations

from monitoring.queries.breakdowns import DIMENSIONS, Share, breakdowns  # noqa: F401
from monitoring.queries.flow import MAX_FLOW_NODES, FlowGraph, FlowNode, agent_flow  # noqa: F401
from monitoring.queries.latency import LATENCY_EDGES_MS, Latency, LatencyBin, latency  # noqa: F401
from monitoring.queries.timeseries import METRICS, Timeseries, bucket_for, bucket_starts, timeseries  # noqa: F401
