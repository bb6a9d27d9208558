"""The Agent Flow Graph: how agent steps, tools and model calls lead to one another in the runs
the filter bar selects.

Runs are agent runs (monitoring/semantics/facts.py) starting in the window; a service or model filter
keeps runs holding a matching span, "errors only" the failed runs, "ok only" the rest. Nodes are
agent steps (by span name; tools apart), model calls ("llm:<model>") and embeddings
("embed:<model>"); a node's parent is the nearest node above it (HTTP and proxy spans are climbed
over). Counts are exact for any window: the edges are settled per run and summed per slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitoring.queries import sources
from monitoring.queries.filter import SpanFilter
from monitoring.store.sql import Sql, run, run_one

MAX_FLOW_NODES = 60


@dataclass
class FlowNode:
    key: str  # "agent:<span name>", "tool:<span name>", "llm:<model>" or "embed:<model>"
    count: int = 0
    errors: int = 0
    duration_ns: int = 0
    roots: int = 0  # times it had no node above it (a run's entry)
    self_calls: int = 0  # times its parent was a node of the same key (recursion)

    @property
    def kind(self) -> str:
        return self.key.partition(":")[0]

    @property
    def label(self) -> str:
        return self.key.partition(":")[2]

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.count, 6) if self.count else 0.0

    @property
    def avg_latency_ms(self) -> float:
        return round(self.duration_ns / self.count / 1e6, 3) if self.count else 0.0


@dataclass(frozen=True)
class FlowGraph:
    runs: int
    nodes: list[FlowNode]  # most frequent first, at most MAX_FLOW_NODES
    edges: dict[tuple[str, str], int]  # (parent key, child key) -> count, among kept nodes
    hidden_nodes: int = 0  # nodes beyond the cap
    hidden_edges: dict[str, int] = field(default_factory=dict)  # child key -> count from hidden parents
    sampled_every: int = 1  # always 1: every run is counted (kept for the template and the API)

    @property
    def empty(self) -> bool:
        return not self.nodes


def agent_flow(flt: SpanFilter, max_nodes: int = MAX_FLOW_NODES) -> FlowGraph:
    rows = run(
        Sql(
            "SELECT Parent AS parent, Child AS child, sum(Calls) AS calls, sum(Errors) AS errors,",
            " sum(Duration) AS duration FROM (",
            sources.edges(flt),
            ") GROUP BY parent, child HAVING calls != 0 ORDER BY calls DESC, parent, child LIMIT 5000",
        ),
        tag="analytics.agent_flow",
    )
    runs = run_one(Sql("SELECT sum(Runs) AS runs FROM (", sources.runs(flt, ("Runs",)), ")"), tag="analytics.flow_runs")
    nodes: dict[str, FlowNode] = {}
    edges: dict[tuple[str, str], int] = {}
    for row in rows:
        parent, child, calls = row["parent"], row["child"], int(row["calls"])
        node = nodes.setdefault(child, FlowNode(child))
        node.count += calls
        node.errors += int(row["errors"])
        node.duration_ns += int(row["duration"])
        if not parent:
            node.roots += calls
        elif parent == child:
            node.self_calls += calls
        else:
            edges[(parent, child)] = edges.get((parent, child), 0) + calls
    ranked = sorted(nodes.values(), key=lambda n: (-n.count, n.key))
    kept = ranked[:max_nodes]
    keys = {n.key for n in kept}
    hidden_edges: dict[str, int] = {}
    for (parent, child), count in edges.items():
        if child in keys and parent not in keys:
            hidden_edges[child] = hidden_edges.get(child, 0) + count
    return FlowGraph(
        runs=int(runs.get("runs") or 0),
        nodes=kept,
        edges={e: c for e, c in edges.items() if e[0] in keys and e[1] in keys},
        hidden_nodes=len(ranked) - len(kept),
        hidden_edges=hidden_edges,
    )
