"""LLM judges: each enabled evaluator (monitoring/quality/models.py) sends its prompt over a settled
run's or LLM call's input, output and metadata to a model alias through the LiteLLM gateway
(monitoring/gateway.py, as Replay does) and writes the answer as a score (source "judge").

- A pass (`run_once`, the background job JOB_NAME every EVERY_SECONDS, or `manage.py run_judges`)
  starts judge calls for PASS_SECONDS at most and takes, per evaluator, the retries that are due,
  then the targets settled since its cursor (`Evaluator.checked_through_ns`, on the settler's clock;
  the first pass of a new version looks back FIRST_LOOKBACK_NS), then a backfill's next targets; at
  most MAX_PER_PASS judge calls each.
- Idempotent: a target's score id is made of the evaluator, its version and the target
  (queries/judging.judge_score_id), and targets that have it are never asked again.
- Every judge call is recorded as a CLIENT span of service semconv.JUDGE_SERVICE in a trace of its
  own, linked to the judged target: traced and priced, and left out of the project's numbers as
  Replay's re-runs are (the IsReplay column counts both services as experiments).
- A failed call (gateway down, timeout, an answer that is not the JSON asked for or does not fit the
  score config) is a failed span and a JudgeFailure row, never a score; it is retried on a later
  pass after BACKOFF_SECONDS * 2^(attempts - 1) (at most MAX_BACKOFF_SECONDS), MAX_ATTEMPTS times.
- Nothing is called while the operator's JUDGES_ENABLED is off, the project's switch is off, or the
  project's judge calls of the UTC day have cost its daily cap (JudgeSettings).

The answer asked for (and parsed leniently: code fences, text around the object, numbers as text):
    {"score": <number | true | false>, "label": "<text>", "explanation": "<text>"}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import string
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from monitoring import gateway
from monitoring.ingest import otlp, span_store
from monitoring.quality import scores as writes
from monitoring.quality.models import Evaluator, JudgeFailure, JudgeSettings, ScoreConfig
from monitoring.queries import judging
from monitoring.semantics import pricing, scoping, semconv
from monitoring.store import clickhouse

log = logging.getLogger(__name__)

JOB_NAME, EVERY_SECONDS = "judges", 60
JUDGE_SCOPE = "agent-portal-monitoring.judge"
FIRST_LOOKBACK_NS = 3600 * 10**9  # a new evaluator (or version) starts with the last hour's targets
MAX_PER_PASS = 50  # judge calls per evaluator per pass
# A pass stops starting judge calls after this long: in embedded mode the background jobs share one
# thread, and the settler's next pass waits for this one (the rest is judged by the next passes).
PASS_SECONDS = 20.0
BACKFILL_MAX = 1000  # targets one backfill may ask for
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 60
MAX_BACKOFF_SECONDS = 6 * 3600
ANSWER_TOKENS = 400


class Unparsable(ValueError):
    """The judge's answer is not the JSON asked for, or does not fit the score config."""


# --- the prompt -----------------------------------------------------------------------------------
# Django templates run no code, but some tags and filters reach beyond the fields ({% debug %} prints
# the modules, {% include %} / {% load %} read files and libraries) or make text of any size
# ({{ input|ljust:"999999999" }}): prompts get a safe subset of Django's built-ins only.
_SAFE_TAGS = ("if", "for", "with", "firstof", "comment", "spaceless", "verbatim", "cycle", "filter", "now")
_SAFE_FILTERS = (
    "upper", "lower", "title", "capfirst", "truncatechars", "truncatewords", "default", "default_if_none",
    "length", "join", "first", "last", "slice", "cut", "striptags", "wordcount", "yesno", "linebreaksbr",
)  # fmt: skip
_prompt_library = Library()
for _name in _SAFE_TAGS:
    _prompt_library.tags[_name] = defaulttags.register.tags[_name]
for _name in _SAFE_FILTERS:
    _prompt_library.filters[_name] = defaultfilters.register.filters[_name]


class _PromptEngine(Engine):
    default_builtins = []


_ENGINE = _PromptEngine(autoescape=False, libraries={}, loaders=[])
_ENGINE.template_builtins.append(_prompt_library)
_WIDE_SPEC = re.compile(r"\d{4,}")  # a str.format width or precision of 1000 or more


class _FieldsOnly(string.Formatter):
    """str.format over named fields only: no attribute or index lookups ({input.__class__}), no
    width or precision of 1000 or more ({input:>999999999})."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return self.get_value(field_name, args, kwargs), field_name

    def format_field(self, value, format_spec):
        if _WIDE_SPEC.search(format_spec):
            raise ValueError(f"format spec {format_spec!r}: widths and precisions below 1000 only")
        return super().format_field(value, format_spec)


def prompt_fields(target: judging.Target, input_text: str, output_text: str) -> dict[str, Any]:
    """What a prompt may name: input, output, metadata (a dict), and each metadata key on its own."""
    metadata = target.metadata()
    return {**metadata, "input": input_text, "output": output_text, "metadata": metadata}


def render(prompt: str, syntax: str, fields: dict[str, Any]) -> str:
    """The prompt with its fields filled in. Raises ValueError naming what is wrong."""
    if syntax == Evaluator.FORMAT:
        try:
            values = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for k, v in fields.items()}
            return _FieldsOnly().vformat(prompt, (), values)
        except KeyError as exc:
            raise ValueError(f"unknown field {exc.args[0]!r}") from None
        except (IndexError, ValueError) as exc:
            raise ValueError(str(exc)) from None
    try:
        return _ENGINE.from_string(prompt).render(Context(fields, autoescape=False))
    except TemplateSyntaxError as exc:
        raise ValueError(str(exc)) from None


def check_prompt(prompt: str, syntax: str) -> None:
    """ValueError when the prompt does not render over a target's fields (the form's check)."""
    sample = judging.Target("run", "0" * 32, "", 0, "agent", "svc", ["model"], "agent", 1.0, 0.0, 1, 1, False)
    render(prompt, syntax, prompt_fields(sample, "question", "answer"))


def instructions(config: ScoreConfig) -> str:
    """The system message: the JSON to answer with, for this config's type."""
    if config.data_type == ScoreConfig.BOOLEAN:
        score = '"score": true or false'
    elif config.data_type == ScoreConfig.CATEGORICAL:
        score = f'"label": one of {", ".join(json.dumps(label) for label in config.labels)}'
    else:
        low = "" if config.min_value is None else f" from {config.min_value:g}"
        high = "" if config.max_value is None else f" to {config.max_value:g}"
        score = f'"score": a number{low}{high}'
    return (
        "You are an evaluator. Answer with one JSON object and nothing else: "
        f'{{"score": ..., "label": ..., "explanation": ...}} where {score}, and "explanation" says why in one or '
        "two sentences."
    )


# --- the answer -----------------------------------------------------------------------------------


def _json_object(text: str) -> dict:
    """The first JSON object in `text` (inside code fences or prose)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            found, _end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(found, dict):
            return found
        start = text.find("{", start + 1)
    raise Unparsable(f"no JSON object in the answer: {text[:200]!r}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "pass", "passed"):
            return 1.0
        if text in ("false", "no", "fail", "failed"):
            return 0.0
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def parse_answer(text: str, config: ScoreConfig) -> tuple[float | None, str, str]:
    """(value, label, explanation) of a judge's answer for `config`. Raises Unparsable."""
    data = {str(k).lower(): v for k, v in _json_object(text).items()}
    raw_score, raw_label = data.get("score", data.get("value")), data.get("label")
    explanation = data.get("explanation", data.get("reason", "")) or ""
    explanation = explanation if isinstance(explanation, str) else json.dumps(explanation, ensure_ascii=False)
    label = raw_label.strip() if isinstance(raw_label, str) else ""
    value = _number(raw_score) if raw_score is not None else None
    if config.data_type == ScoreConfig.BOOLEAN:
        if value is None and label:
            value = _number(label)
        if value not in (0.0, 1.0):
            raise Unparsable(f"a boolean score is true or false, not {raw_score!r}")
        label = label or ("true" if value else "false")
    elif config.data_type == ScoreConfig.CATEGORICAL:
        label = label or (raw_score.strip() if isinstance(raw_score, str) else "")
        value = value if isinstance(raw_score, (int, float)) and not isinstance(raw_score, bool) else None
        if label not in config.labels:
            raise Unparsable(f"the label {label!r} is not one of {', '.join(config.labels)}")
    elif value is None:
        raise Unparsable(f"a numeric score needs a number, not {raw_score!r}")
    try:
        value, label = config.check_score(value, label)
    except ValueError as exc:
        raise Unparsable(str(exc)) from None
    return value, label[: writes.LABEL_CHARS], explanation[: writes.TEXT_CHARS]


# --- one judge call -------------------------------------------------------------------------------


@dataclass
class Judged:
    """What judging one target did: a score, or why not (`error`, `kind`); the call's cost in USD."""

    target: judging.Target
    score: Any = None
    error: str = ""
    kind: str = ""  # "unreachable", "timeout", "error", "unparsable"; "" when scored
    cost_usd: float = 0.0


def _cost(project_id: str, evaluator: Evaluator, answer: gateway.GatewayAnswer | None) -> float:
    if answer is None:
        return 0.0
    if answer.cost_usd is not None:
        return float(answer.cost_usd)
    return pricing.cost_of_call(project_id, answer.model or evaluator.model, answer.input_tokens, answer.output_tokens)[
        0
    ]


def _record_span(
    project_id: str,
    evaluator: Evaluator,
    target: judging.Target,
    ids: tuple[bytes, bytes],
    payload: dict,
    times: tuple[int, int],
    answer: gateway.GatewayAnswer | None,
    cost_usd: float,
    error: str,
) -> None:
    """One CLIENT span of service JUDGE_SERVICE in a trace of its own, linked to the target (GenAI
    semconv request/response/usage keys, the reported cost, apm.judge.*). Raises ClickHouseError."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": payload["model"],
        "gen_ai.request.temperature": payload.get("temperature"),
        "gen_ai.request.max_tokens": payload.get("max_tokens"),
        "gen_ai.input.messages": json.dumps(
            [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in payload["messages"]],
            ensure_ascii=False,
        ),
        judging.JUDGE_KEYS["evaluator"]: str(evaluator.pk),
        judging.JUDGE_KEYS["version"]: evaluator.version,
        judging.JUDGE_KEYS["cost"]: cost_usd,
        "apm.judge.name": evaluator.name,
        "apm.judge.target": target.kind,
    }
    if answer is not None:
        attributes |= {
            "gen_ai.response.model": answer.model,
            "gen_ai.usage.input_tokens": answer.input_tokens,
            "gen_ai.usage.output_tokens": answer.output_tokens,
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer.content}]}], ensure_ascii=False
            ),
        }
        if answer.cost_usd is not None:
            attributes["gen_ai.cost.total_cost"] = float(answer.cost_usd)
    if error:
        attributes["error.type"] = "UnparsableAnswer" if answer is not None else "GatewayError"
    span = Span(
        trace_id=ids[0],
        span_id=ids[1],
        name=f"judge {evaluator.name}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=times[0],
        end_time_unix_nano=times[1],
        attributes=otlp.key_values(attributes),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error[:1000])
        if error
        else Status(code=Status.STATUS_CODE_OK),
        links=[
            Span.Link(
                trace_id=bytes.fromhex(target.trace_id),
                span_id=bytes.fromhex(target.span_id) if target.span_id else b"",
                attributes=otlp.key_values({"apm.link.type": "judge_of"}),
            )
        ],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=otlp.key_values({"service.name": semconv.JUDGE_SERVICE})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=JUDGE_SCOPE), spans=[span])],
            )
        ]
    )
    rows, _ = otlp.rows_from_request(request, project_id)
    span_store.store(rows, tag="quality.judge.record")


def judge(evaluator: Evaluator, target: judging.Target) -> Judged:
    """Ask the evaluator's model about one target, record the call as a span, and write the score (or
    the failure, retried later). Raises clickhouse.ClickHouseError when ClickHouse cannot be read."""
    project_id = str(evaluator.project_id)
    config = evaluator.score_config
    input_text, output_text = judging.content(project_id, target)
    result = Judged(target)
    try:
        prompt = render(evaluator.prompt, evaluator.syntax, prompt_fields(target, input_text, output_text))
    except ValueError as exc:
        result.error, result.kind = f"the prompt does not render: {exc}", "error"
        _failed(evaluator, result)
        return result
    payload = {
        "model": evaluator.model,
        "messages": [{"role": "system", "content": instructions(config)}, {"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": ANSWER_TOKENS,
    }
    ids = (os.urandom(16), os.urandom(8))
    # The gateway's own span joins our trace only when it exports into this same project (rerun.py says why).
    same_project = project_id == str(settings.LITELLM_PROJECT_ID)
    headers = {"traceparent": f"00-{ids[0].hex()}-{ids[1].hex()}-01"} if same_project else {}
    started = time.time_ns()
    answer = None
    try:
        answer = gateway.chat(payload, headers=headers)
    except gateway.GatewayError as exc:
        result.error, result.kind = str(exc), exc.kind
    ended = time.time_ns()
    result.cost_usd = _cost(project_id, evaluator, answer)
    parsed = None
    if answer is not None:
        try:
            parsed = parse_answer(answer.content, config)
        except Unparsable as exc:
            result.error, result.kind = f"unparsable answer: {exc}", "unparsable"
    _record_span(project_id, evaluator, target, ids, payload, (started, ended), answer, result.cost_usd, result.error)
    if parsed is None:
        _failed(evaluator, result)
        return result
    value, label, explanation = parsed
    try:
        result.score = writes.record(
            evaluator.project,
            writes.Target(target.trace_id, target.span_id),
            config.name,
            value=value,
            label=label,
            comment=explanation,
            source=writes.JUDGE,
            author=f"judge:{evaluator.pk}",
            score_id=judging.judge_score_id(
                project_id, evaluator.pk, evaluator.version, target.trace_id, target.span_id
            ),
        )
    except ValueError as exc:  # the config changed under us: a failure like an unparsable answer
        result.error, result.kind = f"unparsable answer: {exc}", "unparsable"
        _failed(evaluator, result)
        return result
    JudgeFailure.objects.filter(
        evaluator=evaluator, version=evaluator.version, trace_id=target.trace_id, span_id=target.span_id
    ).delete()
    return result


def _failed(evaluator: Evaluator, result: Judged) -> None:
    """Record a failure (or one more attempt of it) and when to try again."""
    t = result.target
    with transaction.atomic():
        failure, created = JudgeFailure.objects.select_for_update().get_or_create(
            evaluator=evaluator,
            version=evaluator.version,
            trace_id=t.trace_id,
            span_id=t.span_id,
            defaults={"error": result.error[:1000], "kind": result.kind},
        )
        if not created:
            failure.attempts += 1
        failure.error, failure.kind = result.error[:1000], result.kind
        wait = min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (failure.attempts - 1))
        failure.retry_at = timezone.now() + dt.timedelta(seconds=wait) if failure.attempts < MAX_ATTEMPTS else None
        failure.save()


# --- passes ---------------------------------------------------------------------------------------


def day_start_ns(now: dt.datetime | None = None) -> int:
    """The start of the current UTC day, ns (the daily cap's window)."""
    now = now or timezone.now()
    return int(now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()) * 10**9


@dataclass
class Budget:
    """What a project's judges may still spend today (USD); None: stopped by a switch."""

    left_usd: float | None
    reason: str = ""  # "operator", "project", "cap" when nothing may be spent

    @property
    def open(self) -> bool:
        return self.left_usd is not None and self.left_usd > 0

    def spend(self, usd: float) -> None:
        if self.left_usd is not None:
            self.left_usd -= usd
            if self.left_usd <= 0:
                self.reason = "cap"


def budget(project) -> Budget:
    """The switches and the daily cap of `project`'s judges, with today's judge spend read now."""
    if not settings.JUDGES_ENABLED:
        return Budget(None, "operator")
    own = JudgeSettings.of(project)
    if not own.enabled:
        return Budget(None, "project")
    spent = judging.judge_cost(str(project.pk), day_start_ns())
    left = float(own.daily_cost_cap_usd) - spent
    return Budget(left, "" if left > 0 else "cap")


@dataclass
class Report:
    """One evaluator's pass: targets judged (scores written), failed, and why it stopped early."""

    evaluator_id: int
    scored: int = 0
    failed: int = 0
    stopped: str = ""  # "operator", "project", "cap", "time" or a ClickHouse error
    targets: list[judging.Target] = field(default_factory=list)
    deadline: float = 0.0  # time.monotonic() after which no judge call starts; 0: none


def _judge_all(evaluator: Evaluator, targets: list[judging.Target], purse: Budget, report: Report) -> int:
    """Judge targets while the budget lasts; returns how many were asked."""
    asked = 0
    for target in targets:
        if not purse.open:
            report.stopped = purse.reason
            break
        if report.deadline and time.monotonic() > report.deadline:
            report.stopped = "time"
            break
        result = judge(evaluator, target)
        purse.spend(result.cost_usd)
        asked += 1
        report.targets.append(target)
        if result.score is not None:
            report.scored += 1
        else:
            report.failed += 1
    return asked


def _pending(evaluator: Evaluator) -> list[tuple[str, str]]:
    return list(
        JudgeFailure.objects.filter(evaluator=evaluator, version=evaluator.version).values_list("trace_id", "span_id")
    )


def evaluate(
    evaluator: Evaluator, purse: Budget | None = None, now: dt.datetime | None = None, deadline: float = 0.0
) -> Report:
    """One pass of one evaluator (the module's note); no judge call starts after `deadline`
    (time.monotonic(), 0: none). Raises clickhouse.ClickHouseError."""
    report = Report(evaluator.pk, deadline=deadline)
    purse = purse or budget(evaluator.project)
    if not purse.open:
        report.stopped = purse.reason
        return report
    now = now or timezone.now()
    project_id = str(evaluator.project_id)
    left = MAX_PER_PASS
    due = list(
        JudgeFailure.objects.filter(evaluator=evaluator, version=evaluator.version, retry_at__lte=now).order_by(
            "retry_at"
        )[:left]
    )
    if due:
        retried = judging.targets_by_id(project_id, evaluator.target, [(f.trace_id, f.span_id) for f in due])
        found_keys = {(t.trace_id, t.span_id) for t in retried}
        gone = [f.pk for f in due if (f.trace_id, f.span_id) not in found_keys]  # aged out (TTL) meanwhile
        JudgeFailure.objects.filter(pk__in=gone).delete()
        left -= _judge_all(evaluator, retried, purse, report)
    through, _server_now = scoping.state()
    if through and left > 0 and purse.open:
        # Each pass re-reads the settler's overlap: a block stamped just before its `through` may
        # have been settled by the next pass only (semantics/settle.py); judged targets are skipped.
        after = evaluator.checked_through_ns or through - FIRST_LOOKBACK_NS
        found = judging.new_targets(
            project_id,
            evaluator.pk,
            evaluator.version,
            evaluator.target,
            evaluator.filters(),
            evaluator.sampling_rate,
            after_ns=after - scoping.OVERLAP_NS,
            until_ns=through,
            pending=_pending(evaluator),
            limit=left + 1,
        )
        asked = _judge_all(evaluator, found[:left], purse, report)
        left -= asked
        if len(found) <= asked and through > evaluator.checked_through_ns:  # all seen: move the cursor on
            Evaluator.objects.filter(pk=evaluator.pk, version=evaluator.version).update(checked_through_ns=through)
            evaluator.checked_through_ns = through
    if evaluator.backfill_left and left > 0 and purse.open:
        backfill_step(evaluator, purse, report, min(left, evaluator.backfill_left))
    return report


def backfill_step(evaluator: Evaluator, purse: Budget, report: Report, limit: int) -> None:
    """Judge up to `limit` targets of the evaluator's backfill window; the backfill ends when its
    window has no more targets or its cap is used up."""
    if evaluator.backfill_from is None or evaluator.backfill_to is None:
        return
    found = judging.window_targets(
        str(evaluator.project_id),
        evaluator.pk,
        evaluator.version,
        evaluator.target,
        evaluator.filters(),
        evaluator.sampling_rate,
        start_ns=int(evaluator.backfill_from.timestamp() * 1e9),
        end_ns=int(evaluator.backfill_to.timestamp() * 1e9),
        pending=_pending(evaluator),
        limit=limit,
    )
    asked = _judge_all(evaluator, found, purse, report)
    left = 0 if len(found) < limit and asked == len(found) else max(0, evaluator.backfill_left - asked)
    Evaluator.objects.filter(pk=evaluator.pk).update(backfill_left=left)
    evaluator.backfill_left = left


def start_backfill(evaluator: Evaluator, start: dt.datetime, end: dt.datetime, limit: int) -> None:
    """Ask for a backfill of targets starting in [start, end), at most `limit` (<= BACKFILL_MAX),
    judged by the next passes MAX_PER_PASS at a time. Raises ValueError naming the field."""
    if not 1 <= limit <= BACKFILL_MAX:
        raise ValueError(f"limit: 1 to {BACKFILL_MAX} targets")
    if start >= end:
        raise ValueError("start: must be before the end")
    Evaluator.objects.filter(pk=evaluator.pk).update(backfill_from=start, backfill_to=end, backfill_left=limit)
    evaluator.backfill_from, evaluator.backfill_to, evaluator.backfill_left = start, end, limit


def backfill(evaluator: Evaluator, start: dt.datetime, end: dt.datetime, limit: int) -> Report:
    """A whole backfill now, in this thread (`run_judges --backfill`): up to `limit` targets."""
    start_backfill(evaluator, start, end, limit)
    report = Report(evaluator.pk)
    purse = budget(evaluator.project)
    while evaluator.backfill_left and purse.open:
        before = report.scored + report.failed
        backfill_step(evaluator, purse, report, min(MAX_PER_PASS, evaluator.backfill_left))
        if report.scored + report.failed == before:
            break
    if not purse.open and not report.stopped:
        report.stopped = purse.reason
    return report


def run_once(seconds: float = PASS_SECONDS) -> list[Report]:
    """One pass of every enabled evaluator, project by project (one budget each); no judge call
    starts after `seconds` (the evaluators left wait for the next pass)."""
    deadline = time.monotonic() + seconds
    reports: list[Report] = []
    if not settings.JUDGES_ENABLED:
        return reports
    evaluators = (
        Evaluator.objects.filter(enabled=True).select_related("project", "score_config").order_by("project_id", "pk")
    )
    purses: dict[str, Budget] = {}
    for evaluator in evaluators:
        key = str(evaluator.project_id)
        try:
            if key not in purses:
                purses[key] = budget(evaluator.project)
            reports.append(evaluate(evaluator, purses[key], deadline=deadline))
        except clickhouse.ClickHouseError as exc:
            log.warning("judge %s: ClickHouse %s: %s", evaluator.pk, exc.kind, exc)
            reports.append(Report(evaluator.pk, stopped=f"ClickHouse {exc.kind}"))
    return reports


# --- what the pages show --------------------------------------------------------------------------


@dataclass
class ProjectJudges:
    """A project's judges today (UTC): evaluators enabled, calls, failed calls, cost (USD) against the
    cap, targets waiting for a retry, and why judging is stopped ("operator", "project", "cap", "")."""

    project_id: str
    project_name: str
    enabled: int
    calls: int
    failed: int
    cost_usd: float
    cap_usd: float
    waiting: int
    stopped: str


def today(project) -> ProjectJudges:
    """The Health page's line and the judges page's header for one project. Raises ClickHouseError."""
    own = JudgeSettings.of(project)
    stats = judging.judge_stats(str(project.pk), day_start_ns())
    cost = round(sum(s.cost_usd for s in stats.values()), 10)
    cap = float(own.daily_cost_cap_usd)
    stopped = "operator" if not settings.JUDGES_ENABLED else "project" if not own.enabled else ""
    if not stopped and cost >= cap:
        stopped = "cap"
    return ProjectJudges(
        str(project.pk),
        project.name,
        Evaluator.objects.filter(project=project, enabled=True).count(),
        sum(s.calls for s in stats.values()),
        sum(s.failed for s in stats.values()),
        cost,
        cap,
        JudgeFailure.objects.filter(evaluator__project=project, retry_at__isnull=False).count(),
        stopped,
    )
