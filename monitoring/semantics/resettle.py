"""Re-settling a project whose rules changed: its own model prices, its agent step names, or the
public price table (a new genai-prices release). The settler (monitoring/semantics/settle.py) settles new
spans; this job recomputes a whole project's facts when what they were computed with changed, so a
price change reaches every past call (`Project.facts_version` is bumped by the models' signals).

Runs as the background job "resettle" (every RESETTLE_EVERY seconds) beside the settler, or
`python manage.py settle --resettle PROJECT`. With settler partitions (SETTLE_PARTITIONS) each
partition's job re-settles only its own projects, under the same lease as that partition's settler,
so a project's facts are never written by two processes at once.
"""

from __future__ import annotations

import logging
import math

from django.db.models.signals import pre_save
from django.dispatch import receiver

from monitoring.models import Project
from monitoring.semantics import facts, scoping, settle
from monitoring.store import schema
from monitoring.store.sql import Sql, run, run_one

log = logging.getLogger(__name__)

JOB_NAME, EVERY_SECONDS = "resettle", 5


def _traces(project_id: str, agent_names: tuple[str, ...], chunks: int, chunk: int) -> Sql:
    """Every trace whose facts may change: those with LLM calls or agent steps (by the current names),
    and those settled as runs before (a name taken off the list un-makes a run)."""
    return Sql(
        f"SELECT TraceId FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}}",
        " AND (IsLLMCall = 1 OR IsAgentStep = 1 OR SpanName IN {r_names:Array(String)})",
        " AND cityHash64(TraceId) % {r_chunks:UInt64} = {r_chunk:UInt64}",
        f" UNION DISTINCT SELECT TraceId FROM {schema.table(schema.RUNS)} WHERE ProjectId = {{project:String}}",
        " AND cityHash64(TraceId) % {r_chunks:UInt64} = {r_chunk:UInt64}",
        project=project_id,
        r_names=list(agent_names),
        r_chunks=chunks,
        r_chunk=chunk,
    )


def resettle_project(project) -> int:
    """Recompute every fact of the project with its current rules; traces looked at."""
    project_id = str(project.id)
    count = run_one(
        Sql("SELECT count() AS n FROM (", _traces(project_id, project.agent_names, 1, 0), ")"), tag="resettle.count"
    )
    traces = int(count.get("n") or 0)
    chunks = max(1, math.ceil(traces / settle.CHUNK_TRACES))
    version = int(run_one(Sql("SELECT toUnixTimestamp64Nano(now64(9)) AS t"), tag="resettle.now")["t"])
    for chunk in range(chunks):
        scope = scoping.build_scope(
            project_id, _traces(project_id, project.agent_names, chunks, chunk), project.agent_names
        )
        if scope is not None:
            settle.settle_scope(scope, version)
    return traces


def _in_partition(project_ids: list[str], partition: scoping.Partition) -> set[str]:
    """Those of `project_ids` in the partition (the engine's cityHash64, as the settler's filter)."""
    if partition.count == 1 or not project_ids:
        return set(project_ids)
    rows = run(
        Sql(
            "SELECT ProjectId AS project FROM (SELECT arrayJoin({ids:Array(String)}) AS ProjectId) WHERE 1",
            partition.where(),
            ids=project_ids,
        ),
        tag="resettle.partition",
    )
    return {r["project"] for r in rows}


def resettle_changed(partition: scoping.Partition = scoping.ALL) -> list[str]:
    """Re-settle every project (of the partition) whose rules changed since its facts were settled;
    their ids."""
    table = facts.rules_version()
    done = []
    changed = [p for p in Project.objects.all() if not (p.facts_version == p.facts_settled and p.facts_prices == table)]
    mine = _in_partition([str(p.pk) for p in changed], partition)
    for project in changed:
        if str(project.pk) not in mine:
            continue
        version = project.facts_version
        traces = resettle_project(project)
        # Only what was applied: a change made meanwhile bumps the version again and runs again.
        Project.objects.filter(pk=project.pk, facts_version=version).update(facts_settled=version, facts_prices=table)
        log.info("re-settled project %s (%d traces): its prices or agent step names changed", project.pk, traces)
        done.append(str(project.pk))
    return done


@receiver(pre_save, sender=Project)
def _made_under_todays_rules(sender, instance, **kwargs):
    """A new project has no facts yet: it starts under today's rules, with nothing to re-settle."""
    if instance._state.adding and not instance.facts_prices:
        instance.facts_prices = facts.rules_version()
