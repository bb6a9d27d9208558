"""Scores as the pages and the API read them: one model for every source (evaluation events, the API,
people, LLM judges), stored in `otel_scores` (monitoring/store/schema.py says how rows replace each
other). Read with FINAL, so a re-delivered event counts once and a person's latest score on a target
is their only one.

A score's target is a span (TraceId + SpanId), a run (TraceId alone) or a session (SessionId). An
evaluation event sent without span context names the evaluated call's `gen_ai.response.id`
(semantic-conventions-genai, "Evaluation event"): it is resolved here to the call with that
response id, else it stays unplaced.

The filter grammar, shared with attribute filters: `score=<name>:<op>[:<value>]`, split at the first
two colons (a name may not hold one; a value may), `op` one of eq, ne, gt, lt, exists, missing. On a
run (or a call) a score's numbers are the mean of its values on the run and its spans (a call: its
own), its label the latest one; `gt`/`lt` compare the mean, `eq`/`ne` the mean when the value is a
number and the latest label otherwise; `ne` also keeps runs without that score.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

from monitoring.queries.filter import BadQuery, finite_number, iso
from monitoring.store import schema
from monitoring.store.sql import Sql, from_nanos, run

OPS = ("eq", "ne", "gt", "lt", "exists", "missing")
VALUELESS = ("exists", "missing")
SOURCES = ("evaluation", "api", "person", "judge")
NAME_CHARS = 200
MAX_CONDITIONS = 10


@dataclass(frozen=True)
class ScoreCondition:
    """One `score=<name>:<op>[:<value>]` filter (the module's note)."""

    name: str
    op: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> ScoreCondition:
        """Raises BadQuery naming what is wrong ("'score' …")."""
        name, sep, rest = text.partition(":")
        op, _, value = rest.partition(":")
        name, op = name.strip(), op.strip().lower()
        if not sep or not name:
            raise BadQuery("'score' must be <name>:<op>[:<value>], e.g. score=relevance:lt:0.5")
        if len(name) > NAME_CHARS:
            raise BadQuery(f"'score' names are at most {NAME_CHARS} characters")
        if op not in OPS:
            raise BadQuery(f"'score' operator must be one of {', '.join(OPS)}, not {op!r}")
        if op in VALUELESS:
            if value:
                raise BadQuery(f"'score' operator {op} takes no value")
            return cls(name, op)
        if not value:
            raise BadQuery(f"'score' operator {op} needs a value: {name}:{op}:<value>")
        if op in ("gt", "lt") and finite_number(value) is None:
            raise BadQuery(f"'score' operator {op} compares numbers: {value!r} is not one")
        return cls(name, op, value)

    def query_value(self) -> str:
        return ":".join([self.name, self.op, *([self.value] if self.op not in VALUELESS else [])])

    def having(self, p: str) -> tuple[str, dict]:
        """The HAVING condition over a target's rows of this score, and its parameters (prefix `p`)."""
        number = finite_number(self.value) if self.value else None
        if self.op in ("exists", "missing", "ne"):
            check = "1" if self.op != "ne" else self._equal(p, number)
        elif self.op == "eq":
            check = self._equal(p, number)
        else:
            check = f"avgOrNull(Value) {'>' if self.op == 'gt' else '<'} {{{p}v:Float64}}"
        return check, {f"{p}name": self.name, f"{p}v": number or 0.0, f"{p}label": self.value}

    @staticmethod
    def _equal(p: str, number: float | None) -> str:
        if number is not None:
            return f"avgOrNull(Value) = {{{p}v:Float64}}"
        return f"argMax(Label, Timestamp) = {{{p}label:String}}"

    def on_run(self, p: str) -> tuple[str, dict]:
        """The condition on a settled run's score columns (schema.RUN_SCORE_COLUMNS), and its
        parameters (prefix `p`): the same rule as `having` over the run's scores."""
        number = finite_number(self.value) if self.value else None
        at = f"indexOf(ScoreNames, {{{p}name:String}})"
        if self.op in ("exists", "missing"):
            check = f"{at} {'>' if self.op == 'exists' else '='} 0"
        else:
            if self.op in ("gt", "lt"):
                test = f"ScoreValues[{at}] {'>' if self.op == 'gt' else '<'} {{{p}v:Float64}}"
            elif number is not None:
                test = f"ScoreValues[{at}] = {{{p}v:Float64}}"
            else:
                test = f"ScoreLabels[{at}] = {{{p}label:String}}"
            check = f"({at} > 0 AND {test})"  # nan (no number) compares false
            check = f"NOT {check}" if self.op == "ne" else check
        return check, {f"{p}name": self.name, f"{p}v": number or 0.0, f"{p}label": self.value}

    def negated(self) -> bool:
        """Whether the condition keeps the targets *outside* its subquery (missing, ne)."""
        return self.op in ("missing", "ne")


def parse_all(values: list[str]) -> tuple[ScoreCondition, ...]:
    """Every `score=` of a request (repeatable, all must hold). Raises BadQuery."""
    if len(values) > MAX_CONDITIONS:
        raise BadQuery(f"at most {MAX_CONDITIONS} 'score' filters")
    return tuple(ScoreCondition.parse(v) for v in values if v.strip())


def from_query(query) -> tuple[ScoreCondition, ...]:
    """The `score=` conditions of a QueryDict (or a plain dict of one string or a list). Raises BadQuery."""
    raw = query.getlist("score") if hasattr(query, "getlist") else query.get("score") or []
    return parse_all([raw] if isinstance(raw, str) else list(raw))


def conditions(found: tuple[ScoreCondition, ...], level: str = "run") -> tuple[list[str], dict]:
    """SQL conditions (with their parameters) keeping the runs (`level="run"`: on the settled run's
    score columns) or the calls (`"call"`: by TraceId, SpanId) that satisfy every score condition;
    a call's statement binds `{project:String}` itself."""
    key = "TraceId" if level == "run" else "(TraceId, SpanId)"
    out: list[str] = []
    params: dict = {}
    for i, condition in enumerate(found):
        p = f"sc{i}_"
        if level == "run":
            check, values = condition.on_run(p)
            out.append(check)
            params.update(values)
            continue
        having, values = condition.having(p)
        params.update(values)
        target = "TraceId != ''" if level == "run" else "SpanId != ''"
        subquery = (
            f"SELECT {key} FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}}"
            f" AND Name = {{{p}name:String}} AND {target} GROUP BY {key} HAVING {having}"
        )
        out.append(f"{key} {'NOT IN' if condition.negated() else 'IN'} ({subquery})")
    return out, params


# --- reading scores ------------------------------------------------------------------------------


@dataclass
class Score:
    """One score. `value` is a number or None; `label` a category or ''; times in ns."""

    score_id: str
    name: str
    value: float | None
    label: str
    comment: str
    source: str
    author: str
    trace_id: str
    span_id: str
    session_id: str
    response_id: str
    config_id: str
    timestamp_ns: int

    @property
    def time(self):
        return from_nanos(self.timestamp_ns)

    def as_dict(self, zone: str = "UTC") -> dict:
        data = asdict(self)
        data["id"] = data.pop("score_id")
        data["time"] = iso(self.time, zone)
        return data


_COLUMNS = (
    "ScoreId, Name, Value, Label, Comment, Source, Author, TraceId, SpanId, SessionId, ResponseId, ConfigId,"
    " toUnixTimestamp64Nano(Timestamp) AS ts"
)


def _score(r: dict) -> Score:
    value = r["Value"]
    return Score(
        r["ScoreId"],
        r["Name"],
        None if value is None else float(value),
        r["Label"],
        r["Comment"],
        r["Source"],
        r["Author"],
        r["TraceId"],
        r["SpanId"],
        r["SessionId"],
        r["ResponseId"],
        r["ConfigId"],
        int(r["ts"]),
    )


def _placed(project_id: str, scores: list[Score]) -> list[Score]:
    """Scores named only by a response id, moved onto the call that recorded that id."""
    loose = sorted({s.response_id for s in scores if s.response_id and not s.span_id})
    if not loose:
        return scores
    rows = run(
        Sql(
            f"SELECT ResponseId AS rid, any(TraceId) AS trace, any(SpanId) AS span FROM {schema.table(schema.SPANS)}",
            " WHERE ProjectId = {project:String} AND ResponseId IN {rids:Array(String)} AND IsLLMCall = 1",
            " GROUP BY ResponseId",
            project=project_id,
            rids=loose,
        ),
        tag="scores.placed",
    )
    where = {r["rid"]: (r["trace"], r["span"]) for r in rows}
    for s in scores:
        if s.response_id in where and not s.span_id:
            s.trace_id, s.span_id = where[s.response_id]
    return scores


def for_traces(project_id: str, trace_ids: list[str]) -> list[Score]:
    """Every score on these traces (runs) and their spans, oldest first. An evaluation event that named
    a call by response id only is here once the settler's companion job placed it on that call
    (monitoring/quality/scores.py `place_loose`, seconds after the call's span is stored)."""
    if not trace_ids:
        return []
    traces = sorted(set(trace_ids))
    rows = run(
        Sql(
            f"SELECT {_COLUMNS} FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}}",
            " AND TraceId IN {traces:Array(String)} ORDER BY Timestamp, ScoreId",
            project=project_id,
            traces=traces,
        ),
        tag="scores.traces",
    )
    return [_score(r) for r in rows]


def for_session(project_id: str, session_id: str) -> list[Score]:
    """The scores given to a session itself (not to its runs); oldest first."""
    rows = run(
        Sql(
            f"SELECT {_COLUMNS} FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}}",
            " AND SessionId = {session:String} ORDER BY Timestamp, ScoreId",
            project=project_id,
            session=session_id,
        ),
        tag="scores.session",
    )
    return [_score(r) for r in rows]


def listing(
    project_id: str,
    *,
    trace_id: str = "",
    session_id: str = "",
    name: str = "",
    start_ns: int | None = None,
    end_ns: int | None = None,
    limit: int = 1000,
) -> list[Score]:
    """Scores of a trace (with its spans'), of a session, or by name, newest first; `start_ns`/`end_ns`
    bound the score's own time when given."""
    if trace_id:
        found = for_traces(project_id, [trace_id])
    else:
        conditions = ["ProjectId = {project:String}"]
        if session_id:
            conditions.append("SessionId = {session:String}")
        if name:
            conditions.append("Name = {name:String}")
        if start_ns is not None:
            conditions.append("Timestamp >= fromUnixTimestamp64Nano({lo:Int64})")
        if end_ns is not None:
            conditions.append("Timestamp < fromUnixTimestamp64Nano({hi:Int64})")
        rows = run(
            Sql(
                f"SELECT {_COLUMNS} FROM {schema.table(schema.SCORES)} FINAL WHERE ",
                Sql.all(conditions),
                " ORDER BY Timestamp DESC, ScoreId LIMIT {limit:UInt32}",
                project=project_id,
                session=session_id,
                name=name,
                lo=start_ns or 0,
                hi=end_ns or 0,
                limit=limit,
            ),
            tag="scores.list",
        )
        found = _placed(project_id, [_score(r) for r in rows])
    if trace_id and name:
        found = [s for s in found if s.name == name]
    if trace_id and start_ns is not None:
        found = [s for s in found if s.timestamp_ns >= start_ns]
    if trace_id and end_ns is not None:
        found = [s for s in found if s.timestamp_ns < end_ns]
    found.sort(key=lambda s: (-s.timestamp_ns, s.score_id))
    return found[:limit]


def get(project_id: str, score_id: str) -> Score | None:
    rows = run(
        Sql(
            f"SELECT {_COLUMNS} FROM {schema.table(schema.SCORES)} FINAL",
            " WHERE ProjectId = {project:String} AND ScoreId = {score:String}",
            project=project_id,
            score=score_id,
        ),
        tag="scores.get",
    )
    return _score(rows[0]) if rows else None


def names(project_id: str, limit: int = 50) -> list[str]:
    """The project's score names, most used first (the lists' score columns and the filter bar)."""
    rows = run(
        Sql(
            # Without FINAL: an order by use, where a row replaced but not yet merged away hardly matters.
            f"SELECT Name, count() AS n FROM {schema.table(schema.SCORES)} WHERE ProjectId = {{project:String}}",
            " GROUP BY Name ORDER BY n DESC, Name LIMIT {limit:UInt32}",
            project=project_id,
            limit=limit,
        ),
        tag="scores.names",
    )
    return [r["Name"] for r in rows]


def summarize(scores: list[Score]) -> dict[str, dict]:
    """{name: {"value": mean of the numeric values or None, "label": the latest label or '',
    "count": n}} over `scores` (a person's own score is already one: their latest)."""
    by_name: dict[str, list[Score]] = defaultdict(list)
    for s in scores:
        by_name[s.name].append(s)
    out = {}
    for name, items in sorted(by_name.items()):
        values = [s.value for s in items if s.value is not None]
        labelled = [s for s in items if s.label]
        latest = max(labelled, key=lambda s: (s.timestamp_ns, s.score_id)).label if labelled else ""
        out[name] = {
            "value": round(math.fsum(values) / len(values), 6) if values else None,
            "label": latest,
            "count": len(items),
        }
    return out


def from_columns(names, values, labels, counts) -> dict[str, dict]:
    """`summarize`'s shape from a settled run's score columns (schema.RUN_SCORE_COLUMNS)."""
    return {
        # nan (no number) arrives as null through JSON formats, as nan through the native protocol
        name: {"value": None if v is None or math.isnan(v) else round(v, 6), "label": label, "count": int(n)}
        for name, v, label, n in zip(names, values, labels, counts, strict=True)
    }


def per_call(scores: list[Score]) -> dict[tuple[str, str], dict[str, dict]]:
    """{(trace id, span id): summarize(that span's scores)}."""
    by_span: dict[tuple[str, str], list[Score]] = defaultdict(list)
    for s in scores:
        if s.span_id:
            by_span[(s.trace_id, s.span_id)].append(s)
    return {key: summarize(items) for key, items in by_span.items()}
