"""Full-text search over every message: which spans hold a word or phrase, where, and a snippet of it.

A message lives in a span's name, its attributes (every SDK's keys), its events' attributes, or a
GenAI event sent as an OTel log record (`otel_logs`: body and attributes). The match is what it
always was: the term found anywhere in a value, case-insensitively (positionCaseInsensitiveUTF8),
as typed or as JSON escapes it (an attribute holding JSON keeps "한" as "\\ud55c").

The text indexes (monitoring/store/schema.py, "full-text search") only prune: `hasAllTokens` of the
lower-cased term's trigrams (a term of two characters: its bigram) over the index's own expression
lets ClickHouse read just the rows holding every one, then the exact test above decides. Past the
newest hour a page learns the candidates' times from the index alone (`candidates`) and reads the
text of as few of the newest as it needs (monitoring/queries/spans.py). A search is asked as
branches, each an index-friendly condition on its own (an OR of an indexed and an unindexed test
would read everything): the span's own text, the spans whose log records match, and a trace id's
start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.store import schema
from monitoring.store.sql import Sql, run

SNIPPET_BEFORE = 60  # characters of context before the match a snippet shows
SNIPPET_CHARS = 200  # a snippet's length in characters (a list cell, not the whole message)
MIN_INDEXED_CHARS = 2  # the index holds bigrams: a shorter term is found by reading every value
# How many of the newest candidates (spans the indexes let through) a page learns the times of at
# once: it then reads the text of as few of them as the page needs, newest first.
FEW_CANDIDATES = 2000


@dataclass(frozen=True)
class Branch:
    """One way a span can match: its condition over an otel_traces row; why it matched (SQL giving
    "name", "attribute <key>", "event <name>", "log record" or "trace id") and the value holding
    the term (SQL, '' where none is shown), both over a page's rows (ROW_COLUMNS); its rank among
    branches (a span found twice keeps the lowest) and the parameters of all three."""

    condition: str
    matched: str
    value: str
    rank: int
    params: dict


def escaped(term: str) -> str:
    """The term as JSON text escapes it (non-ASCII as \\uXXXX, quotes and backslashes escaped)."""
    return json.dumps(term)[1:-1]


def _indexable(term: str) -> bool:
    """Whether every match of the term holds each bigram of the lower-cased term: at least two
    characters, and none whose other case is a different number of bytes (ClickHouse's
    case-insensitive search and lowerUTF8 may disagree on those: such a term reads every value)."""
    if len(term) < MIN_INDEXED_CHARS:
        return False
    return all(len(c.lower().encode()) == len(c.encode()) == len(c.upper().encode()) for c in term)


def _index_test(text: Callable[[bool], str], value: str, param: str) -> str:
    """SQL: whether a row holds every n-gram of `value` (bound as {param}) by the text index's
    expression `text(long)`: a value of SEARCH_LONG_CHARS or more by its trigrams (they prune to
    nearly the matches), a shorter one by its bigrams."""
    long = len(value) >= schema.SEARCH_LONG_CHARS
    tokenizer = schema.SEARCH_LONG_TOKENIZER if long else schema.SEARCH_TOKENIZER
    return f"hasAllTokens({text(long)}, lowerUTF8({{{param}:String}}), '{tokenizer}')"


def _prefilter(text: Callable[[bool], str], term: str) -> str:
    """SQL: the text indexes' test for `term` (bound as {q}, {q_json}), or '' when they cannot help;
    `text`: schema.span_search_text or log_search_text."""
    if not _indexable(term):
        return ""
    test = _index_test(text, term, "q")
    if escaped(term) != term:
        test = f"({test} OR {_index_test(text, escaped(term), 'q_json')})"
    return test


_HIT = "(positionCaseInsensitiveUTF8(v, {q:String}) > 0 OR positionCaseInsensitiveUTF8(v, {q_json:String}) > 0)"


def _snippet(value: str) -> str:
    """SQL: up to SNIPPET_CHARS of `value` around the term's first occurrence, '…' where cut."""
    found = (
        f"greatest(positionCaseInsensitiveUTF8({value}, {{q:String}}),"
        f" positionCaseInsensitiveUTF8({value}, {{q_json:String}}))"
    )
    start = f"greatest(1, toInt64({found}) - {SNIPPET_BEFORE})"
    return (
        f"concat(if({start} > 1, '…', ''), substringUTF8({value}, {start}, {SNIPPET_CHARS}),"
        f" if(lengthUTF8({value}) >= {start} + {SNIPPET_CHARS}, '…', ''))"
    )


# What a page's rows carry out of each branch's SELECT, for `matched` and `matched_value` to read.
ROW_COLUMNS = (
    "SpanName AS search_name, SpanAttributes AS search_attributes, Events.Name AS search_event_names,"
    " Events.Attributes AS search_event_attributes"
)


def _tests(name: str, attributes: str, event_attributes: str) -> tuple[str, str, str]:
    """SQL: the exact tests of a span's name, attribute values and event attribute values."""
    return (
        f"positionCaseInsensitiveUTF8({name}, {{q:String}}) > 0",
        f"arrayExists(v -> {_HIT}, mapValues({attributes}))",
        f"arrayExists(m -> arrayExists(v -> {_HIT}, mapValues(m)), {event_attributes})",
    )


def _own_text(term: str, indexed: bool) -> Branch:
    """The span's own name, attribute values and event attribute values."""
    exact = "({} OR {} OR {})".format(*_tests("SpanName", "SpanAttributes", "Events.Attributes"))
    prefilter = _prefilter(schema.span_search_text, term) if indexed else ""
    # Over a page's rows (ROW_COLUMNS): where the term is, and the value that holds it.
    in_name, in_attributes, _in_events = _tests("search_name", "search_attributes", "search_event_attributes")
    matched = (
        f"multiIf({in_name}, 'name', {in_attributes}, concat('attribute ', arrayFirst(k -> arrayExists(v -> {_HIT},"
        " [search_attributes[k]]), mapKeys(search_attributes))), concat('event ', arrayFirst((n, m) -> arrayExists("
        f"v -> {_HIT}, mapValues(m)), search_event_names, search_event_attributes)))"
    )
    value = (
        f"multiIf({in_name}, toString(search_name), {in_attributes}, arrayFirst(v -> {_HIT},"
        f" mapValues(search_attributes)), arrayFirst(v -> {_HIT}, arrayFlatten(arrayMap(m -> mapValues(m),"
        " search_event_attributes))))"
    )
    condition = f"{prefilter} AND {exact}" if prefilter else exact
    return Branch(condition, matched, value, 1, {})


def matched(found: list[Branch]) -> str:
    """SQL over a page's rows: why each matched (by the branch that found it, `search_rank`)."""
    return "multiIf(" + "".join(f"search_rank = {b.rank}, {b.matched}, " for b in found) + "'')"


def matched_value(found: list[Branch]) -> str:
    """SQL over a page's rows: the value holding the match ('' where a branch shows none)."""
    return "multiIf(" + "".join(f"search_rank = {b.rank}, {b.value}, " for b in found) + "'')"


def snippet(found: list[Branch], value: str) -> str:
    """SQL: the snippet of the column `value` (matched_value's, named once: ClickHouse plans a
    statement that repeats the value's lambdas in each of the snippet's pieces 2-3x slower); ''
    when no branch shows a value (a trace id's: {q} is not bound)."""
    return _snippet(value) if any(b.value != "''" for b in found) else "''"


def log_condition(term: str, indexed: bool = True) -> str:
    """SQL over otel_logs: a record of the project ({project}) whose body or an attribute value holds
    the term ({q}, {q_json}), the text index tested first."""
    prefilter = _prefilter(schema.log_search_text, term) if indexed else ""
    exact = (
        "(positionCaseInsensitiveUTF8(Body, {q:String}) > 0 OR positionCaseInsensitiveUTF8(Body, {q_json:String}) > 0"
        f" OR arrayExists(v -> {_HIT}, mapValues(LogAttributes)))"
    )
    return " AND ".join(
        c for c in ("ResourceAttributes['project_id'] = {project:String}", "SpanId != ''", prefilter, exact) if c
    )


def _in_logs(term: str, indexed: bool) -> Branch:
    """Spans whose GenAI events sent as log records hold the term: records stamped within the
    stretch and a day after it (an evaluation, a late export)."""
    records = (
        f"FROM {schema.table(schema.LOGS)} WHERE {log_condition(term, indexed)}"
        " AND TimestampTime >= toDateTime(intDiv({l_start:Int64}, 1000000000))"
        " AND TimestampTime <= toDateTime(intDiv({l_end:Int64}, 1000000000) + 86400)"
    )
    # TraceId alone first: the exporter's bloom filter on TraceId prunes granules by it.
    condition = f"TraceId IN (SELECT TraceId {records}) AND (TraceId, SpanId) IN (SELECT TraceId, SpanId {records})"
    return Branch(condition, "'log record'", "''", 2, {})


def _trace_prefix() -> Branch:
    return Branch("startsWith(TraceId, {trace_prefix:String})", "'trace id'", "''", 0, {})


def branches(
    term: str, trace_id: str = "", trace_prefix: str = "", indexed: bool = True, logs: bool = True
) -> list[Branch]:
    """The ways a span can match the search `term` (a whole trace id: that trace only), each with
    the parameters it binds ({q}, {q_json}, {trace_q}, {trace_prefix}); the caller binds {project},
    {l_start} and {l_end} (ns: the stretch read). `indexed`: the text indexes' tests first (few
    candidates); without, every value of the stretch is tested (a word in most spans: a short
    stretch fills a page sooner than the index's long lists of common bigrams are read). `logs`:
    whether the project has log records to look in (has_log_records)."""
    if trace_id:
        return [Branch("TraceId = {trace_q:String}", "'trace id'", "''", 0, {"trace_q": trace_id})]
    params = {"q": term, "q_json": escaped(term)}
    found = [_own_text(term, indexed), *([_in_logs(term, indexed)] if logs else [])]
    if trace_prefix:
        found.append(_trace_prefix())
        params["trace_prefix"] = trace_prefix
    return [Branch(b.condition, b.matched, b.value, b.rank, params) for b in found]


def has_log_records(project_id: str, start_ns: int, end_ns: int) -> bool:
    """Whether the project has log records stamped from `start_ns` to a day after `end_ns` (a
    search that has none leaves their branch out: its subqueries cost every statement)."""
    statement = Sql(
        f"SELECT count() AS n FROM (SELECT 1 FROM {schema.table(schema.LOGS)}",
        " WHERE ResourceAttributes['project_id'] = {project:String} AND SpanId != ''",
        " AND TimestampTime >= toDateTime(intDiv({l_start:Int64}, 1000000000))",
        " AND TimestampTime <= toDateTime(intDiv({l_end:Int64}, 1000000000) + 86400) LIMIT 1)",
        project=project_id,
        l_start=start_ns,
        l_end=end_ns,
    )
    return bool(int(run(statement, tag="traces.search.logs_exist")[0]["n"]))


@dataclass(frozen=True)
class Candidates:
    """What the text indexes let through for a term (every match is among them): `times`, the
    newest of the project's spans stamped in the stretch (ns, newest first, as many as asked);
    `complete`, whether that is all of them; `records`, how many log records stamped from then to
    a day later (counted up to FEW_CANDIDATES)."""

    times: list[int]
    complete: bool
    records: int


def candidates(
    project_id: str, term: str, start_ns: int, end_ns: int, logs: bool = True, limit: int | None = None
) -> Candidates | None:
    """The candidates of `term` in [start_ns, end_ns) (Candidates), read from the indexes alone (no
    text is read: ClickHouse answers hasAllTokens from the posting lists); None when the term is too
    short for the index. `logs`: whether the project has log records to count (has_log_records);
    `limit`: how many times at most, the newest (FEW_CANDIDATES unless told: a page's first read
    asks for a few; at 10M spans a common word's newest 100 of 190,000 took ~40 ms, 2,000 ~100)."""
    spans, in_records = _prefilter(schema.span_search_text, term), _prefilter(schema.log_search_text, term)
    if not spans:
        return None
    limit = limit or FEW_CANDIDATES
    params = {
        "project": project_id,
        "q": term,
        "q_json": escaped(term),
        "l_start": start_ns,
        "l_end": end_ns,
        "few": FEW_CANDIDATES,
    }
    logged = Sql("0")
    if logs:
        logged = Sql(
            "(SELECT count() FROM (SELECT 1",
            f" FROM {schema.table(schema.LOGS)} WHERE ResourceAttributes['project_id'] = {{project:String}} AND {in_records}",
            " AND TimestampTime >= toDateTime(intDiv({l_start:Int64}, 1000000000))",
            " AND TimestampTime <= toDateTime(intDiv({l_end:Int64}, 1000000000) + 86400)",
            " LIMIT {few:UInt32}))",
        )
    statement = Sql(
        "SELECT groupArray(ts) AS times, ",
        logged,
        " AS records FROM (SELECT toUnixTimestamp64Nano(Timestamp) AS ts",
        f" FROM {schema.table(schema.TRACES)} WHERE ProjectId = {{project:String}} AND {spans}",
        " AND Timestamp >= fromUnixTimestamp64Nano({l_start:Int64}) AND Timestamp < fromUnixTimestamp64Nano({l_end:Int64})",
        " ORDER BY Timestamp DESC LIMIT {times:UInt32})",
        **params,
        times=limit,
    )
    row = run(statement, tag="traces.search.candidates")[0]
    found = sorted((int(t) for t in row["times"]), reverse=True)
    records = int(row["records"])
    return Candidates(found, len(found) < limit, records)


def log_snippets(project_id: str, term: str, keys: list[tuple[str, str]], start_ns: int, end_ns: int) -> dict:
    """{(trace id, span id): snippet} of the first log record of each span that holds the term,
    stamped from `start_ns` to a day after `end_ns` (the spans a search matched by their records)."""
    if not keys:
        return {}
    value = (
        f"if(positionCaseInsensitiveUTF8(Body, {{q:String}}) > 0 OR positionCaseInsensitiveUTF8(Body, {{q_json:String}}) > 0,"
        f" Body, arrayFirst(v -> {_HIT}, mapValues(LogAttributes)))"
    )
    statement = Sql(
        f"SELECT TraceId AS trace_id, SpanId AS span_id, argMin({_snippet(value)}, Timestamp) AS snippet",
        f" FROM {schema.table(schema.LOGS)} WHERE {log_condition(term)}",
        " AND TraceId IN {traces:Array(String)} AND (TraceId, SpanId) IN {keys:Array(Tuple(String, String))}",
        " AND TimestampTime >= toDateTime(intDiv({l_start:Int64}, 1000000000))",
        " AND TimestampTime <= toDateTime(intDiv({l_end:Int64}, 1000000000) + 86400)",
        " GROUP BY TraceId, SpanId",
        project=project_id,
        q=term,
        q_json=escaped(term),
        traces=sorted({t for t, _ in keys}),
        keys=[tuple(k) for k in keys],
        l_start=start_ns,
        l_end=end_ns,
    )
    return {(r["trace_id"], r["span_id"]): r["snippet"] for r in run(statement, tag="traces.search.logs")}
