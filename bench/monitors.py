#!/usr/bin/env python3
"""Monitor evaluation speed on the embedded engine: 100 monitors over ~1M demo spans.

    .venv/bin/python bench/monitors.py [--spans 1000000] [--monitors 100] [--runs 5]

Loads (or reuses) the demo spans of bench/dashboard.py (var/bench-<N>m, 30 days of LiteLLM proxy and
agent traffic), creates --monitors monitors in its project spread over every metric, group-by
(project / end user / model / service), window (15 min to 30 days), condition (above, below, rise
vs the previous window) and filter (none, a service, a model, errors only), then times
`evaluation.evaluate()` (all ClickHouse questions plus the state changes in Django's DB) --runs
times, and prints the distinct questions asked and the p50 / max wall time.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import load  # first: it sets up Django on var/bench-<N>m, as the dashboard bench does
from django.contrib.auth import get_user_model
from django.core.management import call_command

from monitoring.models import Membership, Project
from monitoring.monitors import evaluation, metrics
from monitoring.monitors.models import METRICS, Monitor
from monitoring.store import clickhouse, schema

WINDOWS = (15, 60, 1440, 10080, 43200)
GROUPS = ("", "user", "model", "service")
CONDITIONS = (("above", 1.0), ("below", 0.5), ("increase", 200.0))


def filters(project: Project) -> list[dict]:
    row = clickhouse.query_one(
        f"SELECT any(ServiceName) AS service, anyIf(Model, Model != '') AS model FROM {schema.table()}"
        " WHERE ProjectId = {p:String} AND IsLLMCall",
        {"p": str(project.id)},
        tag="bench.facets",
    )
    return [{}, {"services": [row["service"]]}, {"model_names": [row["model"]]}, {"status": "error"}]


def make_monitors(project: Project, count: int) -> list[Monitor]:
    Monitor.objects.filter(project=project).delete()
    combos = itertools.product(WINDOWS, GROUPS, filters(project))
    monitors = []
    for i, (window, group, flt) in zip(range(count), itertools.cycle(combos), strict=False):
        metric = METRICS[i % len(METRICS)][0]
        condition, threshold = CONDITIONS[i % len(CONDITIONS)]
        monitors.append(
            Monitor.objects.create(
                project=project,
                name=f"bench {i}",
                metric=metric,
                group_by=group,
                window_minutes=window,
                condition=condition,
                threshold=threshold,
                **flt,
            )
        )
    return monitors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--monitors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--alone", action="store_true", help="also time each question asked on its own")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    schema.ensure_schema(ttl_days=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    project, _ = Project.objects.get_or_create(name="bench")
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Membership.ADMIN})
    total = load(project, args.spans)
    monitors = make_monitors(project, args.monitors)
    questions = set()
    now = evaluation.timezone.now().replace(microsecond=0)
    for m in monitors:
        current, previous = evaluation.windows(m, now)
        questions.add(evaluation.question(m, current))
        if m.compares:
            questions.add(evaluation.question(m, previous))
    by_group = {g or "project": sum(1 for q in questions if q.group_by == g) for g in GROUPS}
    print(f"{total:,} spans; {len(monitors)} monitors -> {len(questions)} distinct questions {by_group}")

    if args.alone:  # each question in a statement of its own, to compare with the batch
        started = time.perf_counter()
        for q in questions:
            metrics.measure(q)
        print(f"the {len(questions)} questions asked one by one: {time.perf_counter() - started:.2f} s")

    times, cpu = [], []
    for _ in range(args.runs):
        fresh = list(Monitor.objects.filter(project=project).select_related("project"))
        started, started_cpu = time.perf_counter(), time.process_time()
        outcomes = evaluation.evaluate(fresh)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert not any(o.error for o in outcomes), [o.error for o in outcomes if o.error]
    firing = sum(m.open_alerts().count() for m in Monitor.objects.filter(project=project))
    # CPU time of this process (the engine runs in it) tells the work apart from waiting for a busy machine.
    print(
        f"evaluate {len(monitors)} monitors: wall p50 {statistics.median(times):.2f} s, max {max(times):.2f} s;"
        f" CPU p50 {statistics.median(cpu):.2f} s on {os.cpu_count()} cores; {args.runs} runs, {firing} alerts open;"
        f" load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
