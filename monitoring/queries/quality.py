"""Scores where decisions are made (issue 20, item 4): each score's trend, distribution and
breakdown by model, agent and service (Analytics and `GET …/scores/summary`), the Overview's
quality numbers, and the monitors' score metrics.

Which scores a window holds: those given inside it, by the score's own time (as the scores API's
`from`/`to`), read with FINAL as monitoring/queries/scores.py reads them; an evaluation event that
named only a response id is placed on the LLM call that recorded it. A score's model, agent and
service come from the settled facts (`otel_calls` by TraceId + SpanId for a score on an LLM call,
`otel_runs` by TraceId): a call's score has the call's model and service; any other score on a run
has the run's service and every model the run called (a run that called two models counts under
both in the model breakdown); the agent is the run's name. A score on a trace not settled yet, or on
a session, has none of them ('' in a breakdown; the filter bar's service and model choices then leave
it out). Replay's re-runs are left out unless the filter counts them, as everywhere.

The failing rule (one, used by the Overview card and the monitors): a score is an evaluation when a
machine gave it — an evaluation event, an LLM judge or the API — and its name is not the people's
`feedback`. An evaluation fails when its label is "fail", "failed" or "false" (any case), or when its
value lies on the wrong side of its pass mark: below it when higher is better, above it when lower
is better. The pass mark is the middle of the score config's range when the config sets both ends,
else 0.5 (a boolean's 0, a 0..1 score's lower half); without a config higher is better. A run fails
its evaluations when any evaluation on it or on its spans fails. Negative feedback is a `feedback`
score with value 0 (thumbs down, monitoring/quality/models.py) among all `feedback` scores with a value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from monitoring.queries import attributes, parallel, ranges
from monitoring.queries import timeseries as timeseries_q
from monitoring.queries.filter import SpanFilter, Window, iso
from monitoring.store import schema
from monitoring.store.sql import Sql, run, to_nanos

FEEDBACK = "feedback"  # the people's thumbs (monitoring/quality/models.py): 1 = up, 0 = down
FAIL_LABELS = ("fail", "failed", "false")
EVALUATION_SOURCES = ("evaluation", "judge", "api")
DEFAULT_PASS_MARK = 0.5
HISTOGRAM_BINS = 10
MAX_LABELS = 20  # a categorical distribution's most frequent labels; the rest are summed as "…"
MAX_BREAKDOWN = 10  # rows per breakdown, most scored first
DIMENSIONS = ("model", "agent", "service")


@dataclass(frozen=True)
class PassMark:
    """A score config's pass mark (the module's note): `mark` in the score's own unit."""

    name: str
    mark: float = DEFAULT_PASS_MARK
    higher_is_better: bool = True


def pass_mark(name: str, low: float | None, high: float | None, higher_is_better: bool) -> PassMark:
    """The mark of a config with range [low, high] (either end may be unset): its middle, else 0.5."""
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        return PassMark(name, (low + high) / 2, higher_is_better)
    return PassMark(name, DEFAULT_PASS_MARK, higher_is_better)


# --- the scores of a window, placed and described --------------------------------------------------


def _window(p: str) -> str:
    return (
        f"Timestamp >= fromUnixTimestamp64Nano({{{p}start:Int64}})"
        f" AND Timestamp < fromUnixTimestamp64Nano({{{p}end:Int64}})"
    )


def _has_loose(flt: SpanFilter, p: str, name: str) -> bool:
    """Whether the window may hold a score named only by a response id (not placed on its call yet:
    monitoring/quality/scores.place_loose does that within seconds). Read without FINAL, so a placed
    score's old version still says yes until it is merged away: never a wrong no."""
    name_condition = f" AND Name = {{{p}name:String}}" if name else ""
    bounds = flt.window.nanos()
    row = run(
        Sql(
            f"SELECT count() > 0 AS loose FROM {schema.table(schema.SCORES)} WHERE ProjectId = {{project:String}}",
            f" AND {_window(p)}{name_condition} AND SpanId = '' AND ResponseId != ''",
            project=flt.project_id,
            **{f"{p}start": bounds["start"], f"{p}end": bounds["end"], f"{p}name": name},
        ),
        tag="quality.loose",
    )
    return bool(row and int(row[0]["loose"]))


def _placed(p: str, name_condition: str, loose: bool = True) -> str:
    """Rows Time, Name, Value, Label, Source, Author, Trace, Span of the window's scores, a score
    named only by a response id moved onto its call (as scores._placed does in Python). Without
    `loose` (the window holds no such score) the scores as they are: the response ids' look-up reads
    every LLM call of the project (150 ms at 10M spans), once per use of this subquery."""
    scores = schema.table(schema.SCORES)
    window = _window(p)
    if not loose:
        return (
            "SELECT Timestamp AS Time, Name, Value, Label, Source, Author, TraceId AS Trace, SpanId AS Span"
            f" FROM {scores} FINAL WHERE ProjectId = {{project:String}} AND {window}{name_condition}"
        )
    return (
        "SELECT s.Timestamp AS Time, s.Name AS Name, s.Value AS Value, s.Label AS Label, s.Source AS Source,"
        " s.Author AS Author, if(s.SpanId = '' AND r.span != '', r.trace, s.TraceId) AS Trace,"
        " if(s.SpanId = '' AND r.span != '', r.span, s.SpanId) AS Span FROM ("
        f"SELECT Timestamp, Name, Value, Label, Source, Author, TraceId, SpanId, ResponseId FROM {scores} FINAL"
        f" WHERE ProjectId = {{project:String}} AND {window}{name_condition}) AS s LEFT JOIN ("
        f"SELECT ResponseId AS rid, any(TraceId) AS trace, any(SpanId) AS span FROM {schema.table(schema.SPANS)}"
        " WHERE ProjectId = {project:String} AND IsLLMCall = 1 AND ResponseId != '' AND ResponseId IN ("
        f"SELECT ResponseId FROM {scores} FINAL WHERE ProjectId = {{project:String}} AND {window}"
        f" AND SpanId = '' AND ResponseId != ''{name_condition}) GROUP BY ResponseId) AS r ON s.ResponseId = r.rid"
    )


def scored(
    flt: SpanFilter, *, name: str = "", marks: Iterable[PassMark] = (), p: str = "q_", context: bool = True
) -> Sql:
    """One row per score given in the filter's window (of `name` only, when given): Time, Name,
    Value (Nullable Float64), Label, Source, Author, Trace, Span, Agent, Service, Models (Array),
    EndUser, IsEvaluation (UInt8), Fails (UInt8: an evaluation that fails, by `marks`), IsDown (UInt8:
    a thumbs down). The filter bar's services, models, status and replays narrow them (the note).
    With `context=False` (a caller that reads none of Agent, Service, Models, EndUser) and a filter
    that narrows by none of them, those are left empty and only the replays are looked up: joining
    every scored run's facts cost most of the Overview at 10M spans (a score on every run)."""
    marks = list(marks)
    name_condition = f" AND Name = {{{p}name:String}}" if name else ""
    loose = _has_loose(flt, p, name)
    placed = _placed(p, name_condition, loose)
    window = _window(p)
    traces = f"SELECT TraceId FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}} AND {window}{name_condition}"
    # The traces the window's scores name, plus those their response ids resolve to.
    wanted = (
        f"(TraceId IN ({traces}) OR TraceId IN (SELECT Trace FROM ({placed})))" if loose else f"TraceId IN ({traces})"
    )
    runs = (
        "SELECT TraceId, Name AS Agent, ServiceName AS RunService, Models AS RunModels, EndUser AS RunUser,"
        f" IsError AS RunError, IsReplay AS RunReplay FROM {schema.table(schema.RUNS)} FINAL"
        f" WHERE ProjectId = {{project:String}} AND Sign = 1 AND {wanted}"
    )
    # Only the calls a score names by its span (placed): a run's own score (no span) joins no call,
    # so the calls of every scored run are not read for it.
    wanted_calls = f"(TraceId, SpanId) IN (SELECT Trace, Span FROM ({placed}) WHERE Span != '')"
    calls = (
        "SELECT TraceId AS CallTrace, SpanId AS CallSpan, Model AS CallModel, ServiceName AS CallService,"
        f" EndUser AS CallUser, IsReplay AS CallReplay FROM {schema.table(schema.CALLS)} FINAL"
        f" WHERE ProjectId = {{project:String}} AND Sign = 1 AND {wanted_calls}"
    )
    mark_of = f"indexOf({{{p}mark_names:Array(String)}}, Name)"
    fails = (
        f"multiIf(lower(Label) IN {{{p}fail_labels:Array(String)}}, 1, Value IS NULL, 0,"
        f" {mark_of} = 0, Value < {{{p}default_mark:Float64}},"
        f" {{{p}mark_higher:Array(UInt8)}}[{mark_of}] = 1, Value < {{{p}marks:Array(Float64)}}[{mark_of}],"
        f" Value > {{{p}marks:Array(Float64)}}[{mark_of}])"
    )
    evaluation = f"(Source IN {{{p}sources:Array(String)}} AND Name != {{{p}feedback:String}})"
    judged = (
        f" toUInt8({evaluation}) AS IsEvaluation, toUInt8({evaluation} AND {fails}) AS Fails,"
        f" toUInt8(Name = {{{p}feedback:String}} AND Value IS NOT NULL AND Value < 0.5) AS IsDown"
    )
    if context or flt.services or flt.models or flt.status in ("error", "ok"):
        described = (
            "SELECT Time, Name, Value, Label, Source, Author, Trace, Span, Agent,"
            " if(CallService != '', CallService, RunService) AS Service,"
            " if(CallModel != '', [CallModel], arrayFilter(m -> m != '', RunModels)) AS Models,"
            " if(CallUser != '', CallUser, RunUser) AS EndUser, RunError, greatest(RunReplay, CallReplay) AS Replay,"
            f"{judged} FROM ({placed}) AS sc LEFT JOIN ({runs}) AS ru ON sc.Trace = ru.TraceId"
            f" LEFT JOIN ({calls}) AS ca ON sc.Trace = ca.CallTrace AND sc.Span = ca.CallSpan"
        )
    else:
        # Only whether a score's run or call is a Replay re-run: those few, by their flag.
        replay_runs = (
            f"SELECT TraceId FROM {schema.table(schema.RUNS)} WHERE ProjectId = {{project:String}} AND IsReplay = 1"
            " GROUP BY TraceId HAVING sum(Sign) > 0"
        )
        replay_calls = (
            f"SELECT TraceId, SpanId FROM {schema.table(schema.CALLS)} WHERE ProjectId = {{project:String}}"
            " AND IsReplay = 1 GROUP BY TraceId, SpanId HAVING sum(Sign) > 0"
        )
        described = (
            "SELECT Time, Name, Value, Label, Source, Author, Trace, Span, '' AS Agent, '' AS Service,"
            " emptyArrayString() AS Models, '' AS EndUser, toUInt8(0) AS RunError,"
            f" toUInt8(Trace IN ({replay_runs}) OR (Trace, Span) IN ({replay_calls})) AS Replay,{judged}"
            f" FROM ({placed}) AS sc"
        )
    where = []
    if flt.services:
        where.append(f"Service IN {{{p}services:Array(String)}}")
    if flt.models:
        where.append(f"hasAny(Models, {{{p}models:Array(String)}})")
    if flt.status == "error":
        where.append("RunError = 1")
    elif flt.status == "ok":
        where.append("Trace != '' AND RunError = 0")
    if not flt.include_replays:
        where.append("Replay = 0")
    bounds = flt.window.nanos()
    by_attrs, attr_params = attributes.for_filter(flt, "run", p, target="Trace")  # a score of a matching run
    by_range, range_params = ranges.conditions(flt, "trace", p, target="Trace")
    where += by_attrs + by_range
    return Sql(
        f"SELECT * FROM ({described}) WHERE ",
        Sql.all(where),
        **attr_params,
        **range_params,
        project=flt.project_id,
        **{
            f"{p}start": bounds["start"],
            f"{p}end": bounds["end"],
            f"{p}name": name,
            f"{p}services": list(flt.services),
            f"{p}models": list(flt.models),
            f"{p}fail_labels": list(FAIL_LABELS),
            f"{p}default_mark": DEFAULT_PASS_MARK,
            f"{p}mark_names": [m.name for m in marks],
            f"{p}marks": [float(m.mark) for m in marks],
            f"{p}mark_higher": [1 if m.higher_is_better else 0 for m in marks],
            f"{p}sources": list(EVALUATION_SOURCES),
            f"{p}feedback": FEEDBACK,
        },
    )


# --- one score's summary: trend, distribution, breakdowns ----------------------------------------


@dataclass(frozen=True)
class Bin:
    """[low, high) of a histogram (the last bin holds `high` too), and how many values fell in it."""

    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Group:
    """One row of a breakdown: its key ('' = none known), scores, their numbers' mean (None: labels
    only) and, for evaluations, how many fail."""

    key: str
    count: int
    mean: float | None
    failing: int = 0


@dataclass
class Summary:
    """One score over a window. `trend[i]` is bucket `times[i]` (mean of its values, None where none;
    `counts[i]` scores in it); `histogram` for numeric scores, `labels` [(label, count)] for scores
    with labels (a boolean's label, or its value as "1"/"0"); breakdowns by DIMENSIONS."""

    name: str
    bucket: str
    times: list
    trend: list[float | None]
    counts: list[int]
    count: int = 0
    mean: float | None = None
    failing: int = 0
    histogram: list[Bin] = field(default_factory=list)
    labels: list[tuple[str, int]] = field(default_factory=list)
    breakdowns: dict[str, list[Group]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """ "labels" when the score's scores carry labels (categorical, boolean), else "histogram"."""
        return "labels" if self.labels else "histogram"

    def as_dict(self, zone: str = "UTC") -> dict:
        return {
            "name": self.name,
            "bucket": self.bucket,
            "count": self.count,
            "mean": self.mean,
            "failing": self.failing,
            "trend": [
                {"t": iso(t, zone), "mean": m, "count": c}
                for t, m, c in zip(self.times, self.trend, self.counts, strict=True)
            ],
            "distribution": {
                "kind": self.kind,
                "bins": [{"low": b.low, "high": b.high, "count": b.count} for b in self.histogram],
                "labels": [{"label": label, "count": n} for label, n in self.labels],
            },
            "breakdowns": {
                dim: [{"key": g.key, "count": g.count, "mean": g.mean, "failing": g.failing} for g in groups]
                for dim, groups in self.breakdowns.items()
            },
        }


def _mean(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def summary(
    flt: SpanFilter,
    name: str,
    marks: Iterable[PassMark] = (),
    bounds: tuple[float, float] | None = None,
    kind: str = "",
) -> Summary:
    """Score `name` over the filter's window: its trend (mean per bucket, the Analytics buckets of
    monitoring/queries/timeseries.py), distribution and breakdowns by model, agent and service.
    The distribution follows the config's `kind` (ScoreConfig.data_type): "numeric", HISTOGRAM_BINS
    equal bins over `bounds` (the config's range, else the values' own [min, max]); "categorical",
    counts per label; "boolean", counts per value ("1", "0"); "" (no config): labels when any score
    has one, else the histogram. One statement. Raises ClickHouseError."""
    marks = list(marks)
    bucket = timeseries_q.bucket_for(flt)
    base = scored(flt, name=name, marks=marks)
    label = (
        "if(Value IS NULL, Label, toString(Value))"
        if kind == "boolean"
        else "if(Label != '', Label, if(Value IS NULL, '', toString(Value)))"
    )
    # One statement reads the window's scores once, grouped by each key on its own (GROUPING SETS;
    # `grouping()` says which: its bit for a column is 0 in that column's set). A model breakdown
    # groups by a run's whole list of models, split per model below. Seven statements over the same
    # rows read them seven times (3.4 s at 10M spans with a score on every run).
    # The histogram's bin of each value is found here, not from every distinct value in Python (a
    # score on every run: 390k values), scaled before dividing (0.6 of [0, 1] is bin 6, not 5.999…), over the config's range
    # (`bounds`) or the values' own [min, max].
    keys = ("tb", "lbl", "bin", "Models", "Agent", "Service")
    lo_sql, hi_sql = (
        ("{q_hist_lo:Float64}", "{q_hist_hi:Float64}")
        if bounds
        else ("minOrNull(Value) OVER ()", "maxOrNull(Value) OVER ()")
    )
    binned = (
        f"if(Value IS NULL, -1, if(vhi <= vlo, 0, toInt64(least(greatest((Value - vlo) * {HISTOGRAM_BINS}"
        f" / (vhi - vlo), 0), {HISTOGRAM_BINS - 1}))))"
    )
    grouped = Sql(
        f"SELECT grouping({', '.join(keys)}) AS g, tb AS t, lbl AS label, bin, Models, Agent, Service,",
        " count() AS n, avgOrNull(Value) AS mean, sum(Value) AS total, count(Value) AS valued, minOrNull(Value) AS lo,",
        " maxOrNull(Value) AS hi, countIf(Label != '') AS labelled, sum(Fails) AS failing",
        f" FROM (SELECT *, {binned} AS bin FROM (SELECT *, {timeseries_q.bucket_sql(bucket)} AS tb, {label} AS lbl,",
        f" {lo_sql} AS vlo, {hi_sql} AS vhi FROM (",
        base,
        f"))) GROUP BY GROUPING SETS ((), {', '.join(f'({k})' for k in keys)})",
        " SETTINGS force_grouping_standard_compatibility = 1",  # grouping(): 1 = not in the set
        tz=flt.tz,
        q_hist_lo=float(bounds[0]) if bounds else 0.0,
        q_hist_hi=float(bounds[1]) if bounds else 0.0,
    )
    every = (1 << len(keys)) - 1
    by_mask = {every - (1 << (len(keys) - 1 - i)): k for i, k in enumerate(keys)}
    groups: dict[str, list[dict]] = {k: [] for k in ("", *keys)}
    for row in run(grouped, tag="quality.summary"):
        groups[by_mask.get(int(row["g"]), "")].append(row)
    total_rows, trend_rows = groups[""], groups["tb"]
    bin_counts = {int(r["bin"]): int(r["n"]) for r in groups["bin"] if int(r["bin"]) >= 0}
    label_rows = sorted(groups["lbl"], key=lambda r: (-int(r["n"]), r["label"]))
    models: dict[str, dict] = {}
    for r in groups["Models"]:
        for model in r["Models"] or [""]:
            into = models.setdefault(model, {"key": model, "n": 0, "total": 0.0, "valued": 0, "failing": 0})
            into["n"] += int(r["n"])
            into["total"] += float(r["total"] or 0)
            into["valued"] += int(r["valued"])
            into["failing"] += int(r["failing"])
    for into in models.values():
        into["mean"] = into["total"] / into["valued"] if into["valued"] else None
    by_dim = [
        sorted(rows, key=lambda r: (-int(r["n"]), r["key"]))
        for rows in (
            list(models.values()),
            [r | {"key": r["Agent"]} for r in groups["Agent"]],
            [r | {"key": r["Service"]} for r in groups["Service"]],
        )
    ]
    top = total_rows[0] if total_rows else {}
    times = timeseries_q.bucket_starts(flt, bucket)
    index = {int(t.timestamp()): i for i, t in enumerate(times)}
    means: list[float | None] = [None] * len(times)
    counts = [0] * len(times)
    for row in trend_rows:
        i = index.get(int(row["t"]))
        if i is not None:
            means[i], counts[i] = _mean(row["mean"]), int(row["n"])
    found = Summary(
        name,
        bucket,
        times,
        means,
        counts,
        count=int(top.get("n") or 0),
        mean=_mean(top.get("mean")),
        failing=int(top.get("failing") or 0),
    )
    by_label = kind in ("categorical", "boolean") or (kind != "numeric" and int(top.get("labelled") or 0))
    if by_label and top.get("n"):
        pairs = [(r["label"], int(r["n"])) for r in label_rows]
        found.labels = pairs[:MAX_LABELS]
        if len(pairs) > MAX_LABELS:
            found.labels.append(("…", sum(n for _l, n in pairs[MAX_LABELS:])))
    else:
        lo, hi = bounds if bounds else (top.get("lo"), top.get("hi"))
        found.histogram = binned_histogram(bin_counts, lo, hi)
    found.breakdowns = {
        dim: [Group(r["key"], int(r["n"]), _mean(r["mean"]), int(r["failing"])) for r in rows[:MAX_BREAKDOWN]]
        for dim, rows in zip(DIMENSIONS, by_dim, strict=True)
    }
    return found


def binned_histogram(counts: dict[int, int], low, high, bins: int = HISTOGRAM_BINS) -> list[Bin]:
    """`bins` equal bins over [low, high] from the values' counts per bin index, as summary's
    statement bins them (a value outside goes to the nearest end bin; the last bin holds `high`);
    one bin when low == high; [] without values."""
    if not counts or low is None or high is None:
        return []
    low, high = float(low), float(high)
    if high <= low:
        return [Bin(low, high, sum(counts.values()))]
    width = (high - low) / bins
    return [Bin(round(low + i * width, 6), round(low + (i + 1) * width, 6), counts.get(i, 0)) for i in range(bins)]


def names(flt: SpanFilter, limit: int = 4) -> list[str]:
    """The names of the scores given in the window, most given first (ties by name)."""
    rows = run(
        Sql(
            f"SELECT Name, count() AS n FROM {schema.table(schema.SCORES)} FINAL WHERE ProjectId = {{project:String}}",
            f" AND {_window('q_')} GROUP BY Name ORDER BY n DESC, Name LIMIT {{limit:UInt32}}",
            project=flt.project_id,
            limit=limit,
            q_start=to_nanos(flt.window.start),
            q_end=to_nanos(flt.window.end),
        ),
        tag="quality.names",
    )
    return [r["Name"] for r in rows]


# --- the Overview's quality numbers ------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """A window's quality: runs with evaluations, those failing one (the note's rule), and the thumbs."""

    scored_runs: int = 0
    failing_runs: int = 0
    feedback: int = 0  # feedback scores with a value (thumbs up and down)
    negative_feedback: int = 0  # thumbs down

    @property
    def fail_share(self) -> float:
        """failing_runs / scored_runs (0..1), 0 without scored runs."""
        return self.failing_runs / self.scored_runs if self.scored_runs else 0.0

    @property
    def negative_feedback_rate(self) -> float:
        """negative_feedback / feedback (0..1), 0 without thumbs."""
        return self.negative_feedback / self.feedback if self.feedback else 0.0

    @property
    def empty(self) -> bool:
        return not self.scored_runs and not self.feedback

    def as_dict(self) -> dict:
        return {
            "scored_runs": self.scored_runs,
            "failing_runs": self.failing_runs,
            "fail_share": round(self.fail_share, 6),
            "feedback": self.feedback,
            "negative_feedback": self.negative_feedback,
            "negative_feedback_rate": round(self.negative_feedback_rate, 6),
        }


def _quality_sql(flt: SpanFilter, marks: list[PassMark], p: str) -> Sql:
    return Sql(
        "SELECT uniqExactIf(Trace, IsEvaluation = 1 AND Trace != '') AS scored,",
        " uniqExactIf(Trace, Fails = 1 AND Trace != '') AS failing,",
        f" countIf(Name = {{{p}feedback:String}} AND Value IS NOT NULL) AS thumbs, sum(IsDown) AS down FROM (",
        scored(flt, marks=marks, p=p, context=False),
        ")",
    )


def quality(flt: SpanFilter, marks: Iterable[PassMark] = (), windows: tuple[Window, ...] = ()) -> list[Quality]:
    """The quality of each of `windows` (default the filter's own), asked at once. Raises ClickHouseError."""
    marks = list(marks)
    windows = windows or (flt.window,)
    asked = [_quality_sql(flt.with_window(w), marks, f"q{i}_") for i, w in enumerate(windows)]
    rows = parallel.gather(flt, *[lambda s=s: run(s, tag="quality.overview") for s in asked])
    out = []
    for found in rows:
        r = found[0] if found else {}
        out.append(
            Quality(
                int(r.get("scored") or 0),
                int(r.get("failing") or 0),
                int(r.get("thumbs") or 0),
                int(r.get("down") or 0),
            )
        )
    return out
