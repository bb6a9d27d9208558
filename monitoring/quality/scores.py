"""Writing scores into `otel_scores` (the API, people's feedback, LLM judges). Evaluation events
become scores inside ClickHouse itself (monitoring/store/schema.py), so a collector's writes count too.

A score's id says what it replaces (ReplacingMergeTree by its trace and ScoreId, the latest Version
wins; a score moved to another target leaves a tombstone under the old one):
- a person's score: their user, the target and the name, so their new score on a run replaces the old;
- a judge's: the evaluator's version and the target (one score per target per evaluator version);
- an API score: a new id each time, unless the caller names one (`id`), which makes a retry idempotent.
Authors: "user:<id>" (a person), "token:<id>" (an API token), "judge:<id>" (an evaluator).
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import dataclass

from monitoring.quality.models import ScoreConfig
from monitoring.queries.scores import Score, _score
from monitoring.queries.scores import get as get_score
from monitoring.store import clickhouse, schema, versions
from monitoring.store.sql import Sql, run

PERSON, API, JUDGE, EVALUATION = "person", "api", "judge", "evaluation"
TEXT_CHARS = 10_000  # a comment or explanation; names and labels are shorter
NAME_CHARS = 200
LABEL_CHARS = 200


def _id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def person_score_id(project_id: str, user_id: int, name: str, trace_id: str, span_id: str, session_id: str) -> str:
    return _id("person", project_id, str(user_id), name, trace_id, span_id, session_id)


@dataclass(frozen=True)
class Target:
    """What a score is about: a span (trace + span id), a run (trace id) or a session."""

    trace_id: str = ""
    span_id: str = ""
    session_id: str = ""

    def check(self) -> None:
        """ValueError naming the field that is wrong."""
        if self.span_id and not self.trace_id:
            raise ValueError("span_id: needs its trace_id")
        if not (self.trace_id or self.session_id):
            raise ValueError("trace_id: a score needs a trace_id (optionally a span_id) or a session_id")
        if self.trace_id and (len(self.trace_id) != 32 or not _hex(self.trace_id)):
            raise ValueError("trace_id: 32 hex digits")
        if self.span_id and (len(self.span_id) != 16 or not _hex(self.span_id)):
            raise ValueError("span_id: 16 hex digits")
        if len(self.session_id) > 500:
            raise ValueError("session_id: at most 500 characters")


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def checked(project, name: str, value, label: str) -> tuple[str, float | None, str, str]:
    """(name, value, label, config id) as they will be stored, or ValueError naming the field."""
    name = (name or "").strip()
    if not name or len(name) > NAME_CHARS or ":" in name:
        raise ValueError(f"name: 1-{NAME_CHARS} characters, no ':'")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("value: must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("value: must be a finite number")
    label = (label or "").strip()
    if len(label) > LABEL_CHARS:
        raise ValueError(f"label: at most {LABEL_CHARS} characters")
    config = ScoreConfig.objects.filter(project=project, name=name).first()
    if config is not None:
        value, label = config.check_score(value, label)
    elif value is None and not label:
        raise ValueError("value: a score needs a value or a label")
    return name, value, label, str(config.pk) if config else ""


def record(
    project,
    target: Target,
    name: str,
    *,
    value: float | None = None,
    label: str = "",
    comment: str = "",
    source: str,
    author: str,
    score_id: str = "",
) -> Score:
    """Store one score (checked against the project's config for `name`) and return it as read back
    would show it. Raises ValueError naming the field that is wrong, clickhouse.ClickHouseError."""
    target.check()
    name, value, label, config_id = checked(project, name, value, label)
    if len(comment or "") > TEXT_CHARS:
        raise ValueError(f"comment: at most {TEXT_CHARS} characters")
    now = time.time_ns()
    score = Score(
        score_id=score_id or uuid.uuid4().hex,
        name=name,
        value=value,
        label=label,
        comment=comment or "",
        source=source,
        author=author,
        trace_id=target.trace_id,
        span_id=target.span_id,
        session_id=target.session_id,
        response_id="",
        config_id=config_id,
        timestamp_ns=now,
    )
    if score_id:
        # The same id given again (an API client's retry, or a corrected target) replaces the
        # score: otel_scores is ordered by trace, so a row under another target goes by a tombstone.
        old = get_score(str(project.pk), score_id)
        aimed = (score.trace_id, score.span_id, score.session_id)
        if old is not None and (old.trace_id, old.span_id, old.session_id) != aimed:
            gone = max(now, old.timestamp_ns + 1)
            _insert(str(project.pk), old, version=gone, deleted=True)
            now = gone + 1  # later than the tombstone, should both rows share a key (a table ordered by ScoreId)
    _insert(str(project.pk), score, version=now, deleted=False)
    return score


def delete(project_id: str, score: Score) -> None:
    """Remove a score (a later row with IsDeleted = 1 under the same key; FINAL reads hide it)."""
    _insert(project_id, score, version=max(time.time_ns(), score.timestamp_ns + 1), deleted=True)


def _insert(project_id: str, score: Score, version: int, deleted: bool) -> None:
    row = {
        "ProjectId": project_id,
        "ScoreId": score.score_id,
        "Timestamp": score.timestamp_ns,
        "TraceId": score.trace_id,
        "SpanId": score.span_id,
        "SessionId": score.session_id,
        "ResponseId": score.response_id,
        "Name": score.name,
        "Value": score.value,
        "Label": score.label,
        "Comment": score.comment,
        "Source": score.source,
        "Author": score.author,
        "ConfigId": score.config_id,
        "Version": version,
        "IsDeleted": 1 if deleted else 0,
    }
    clickhouse.insert(
        schema.table(schema.SCORES),
        schema.SCORE_COLUMNS,
        [row],
        tag="quality.scores.write",
        nanos_columns=schema.SCORE_NANOS_COLUMNS,
    )
    versions.bump([project_id])


# --- evaluation events that named only a response id -----------------------------------------------

PLACE_JOB, PLACE_EVERY_SECONDS = "scores.place", 2
PLACE_BATCH = 10_000
PLACE_WITHIN_NS = 24 * 3600 * 10**9  # the call is looked for a day either side of the score


def place_loose(limit: int = PLACE_BATCH) -> int:
    """Move evaluation scores that named only a `gen_ai.response.id` (semantic-conventions-genai,
    "Evaluation event": no span context) onto the call that recorded that id, once its span is
    stored: a new version of the same score with the call's trace and span ids, so every read finds
    it by trace like any other. Runs beside the settler (its lease); returns the scores placed."""
    rows = run(
        Sql(
            "SELECT ProjectId AS project, ScoreId, Name, Value, Label, Comment, Source, Author, TraceId, SpanId,",
            " SessionId, ResponseId, ConfigId, toUnixTimestamp64Nano(Timestamp) AS ts, Version AS version",
            f" FROM {schema.table(schema.SCORES)} FINAL WHERE SpanId = '' AND ResponseId != ''",
            " ORDER BY Timestamp DESC LIMIT {limit:UInt32}",
            limit=limit,
        ),
        tag="scores.loose",
    )
    placed = 0
    by_project: dict[str, list[dict]] = {}
    for r in rows:
        by_project.setdefault(r["project"], []).append(r)
    for project_id, found in by_project.items():
        calls = run(
            Sql(
                "SELECT ResponseId AS rid, argMin(TraceId, Timestamp) AS trace, argMin(SpanId, Timestamp) AS span",
                f" FROM {schema.table(schema.SPANS)} WHERE ProjectId = {{project:String}} AND IsLLMCall = 1",
                " AND ResponseId IN {rids:Array(String)}",
                " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})",
                " GROUP BY ResponseId",
                project=project_id,
                rids=sorted({r["ResponseId"] for r in found}),
                lo=max(min(int(r["ts"]) for r in found) - PLACE_WITHIN_NS, 0),
                hi=max(int(r["ts"]) for r in found) + PLACE_WITHIN_NS,
            ),
            tag="scores.place",
        )
        where = {c["rid"]: (c["trace"], c["span"]) for c in calls}
        for r in found:
            if r["ResponseId"] not in where:
                continue  # its call is not stored (yet): looked for again on the next pass
            # Its row under the old target (scores are ordered by trace) goes; the placed one, a
            # version later, wins should both targets share a trace (an event without a span id).
            _insert(project_id, _score(r), version=int(r["version"]) + 1, deleted=True)
            score = _score(r)
            score.trace_id, score.span_id = where[r["ResponseId"]]
            _insert(project_id, score, version=int(r["version"]) + 2, deleted=False)
            placed += 1
    return placed
