"""The one writer of received spans: merges concurrent OTLP requests into few inserts, never loses one.

Request threads hand their rows to :func:`submit` and wait for the outcome; ``INGEST["WRITERS"]``
writer threads per process (2: an insert releases the GIL, so two use both cores) each take what
is queued once the oldest queued request has waited ``INGEST["BATCH_SECONDS"]`` (or
``BATCH_MAX_SPANS`` are queued) and store it with one ClickHouse insert: the exports in flight go
in together — fewer, bigger parts, each costing less CPU a span — for a short added wait. A request is acknowledged only after its rows are
stored, or written durably to the spool (monitoring.ingest.spool):

- insert ok                               -> STORED
- ClickHouse unreachable / timeout / busy -> the rows go to the spool -> SPOOLED (sender gets 200);
  while the spool holds batches, new batches go straight to it (no 30 s connect timeout per
  request) and a flusher thread drains it oldest first, probing ClickHouse with backoff;
- spool full or disabled                  -> UNAVAILABLE (503 + Retry-After: the sender keeps them);
- ClickHouse refuses the data itself      -> each request is retried alone and, if it still fails,
  bisected until the rows that cannot be stored are found: those are rejected (partialSuccess),
  the rest stored. So one bad value never sinks a batch, let alone its neighbours.

Embedded and server mode alike (the spool is a local folder either way).

Write-behind (spans, embedded mode): a 512-span export is one small insert, and an insert's CPU a
span falls with its size (otel_traces with its views: ~145 us at 2,048 rows, ~120 at 4,096, ~100 at
8,192; bench/ingest_tables.py). A sender waits for its answer, so four senders never have more than
four exports queued: the batches cannot grow by waiting. So while spans arrive at
``WRITE_BEHIND_RATE`` a second or more, a batch smaller than ``MIN_INSERT_SPANS`` is written, already
encoded as insert data, to the spool (fsync'ed: the spool's promise) and acknowledged (QUEUED); the
flusher inserts the queued files together, as many as one insert may hold (span_store.INSERT_ENTRIES),
once they hold ``MIN_INSERT_SPANS`` or the oldest has waited ``WRITE_BEHIND_SECONDS`` — so a span is
stored within about that long of its 200, and a quiet project's spans are inserted at once as before.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from monitoring import prometheus
from monitoring.ingest import log_store, span_store
from monitoring.ingest.spool import Spool, SpoolFull, SpoolStats
from monitoring.store import clickhouse

log = logging.getLogger(__name__)

STORED, SPOOLED, QUEUED, UNAVAILABLE, BUSY = "stored", "spooled", "queued", "unavailable", "busy"

Row = dict[str, Any]


@dataclass
class Outcome:
    """What happened to one request's rows. ``rejected`` rows could not be stored (partialSuccess)."""

    status: str
    stored: int = 0
    spooled: int = 0
    rejected: int = 0
    queued: int = 0  # in the write-behind queue: on disk, inserted within WRITE_BEHIND_SECONDS
    error_message: str = ""


@dataclass
class _Submission:
    rows: list[Row]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    queued_at: float = field(default_factory=time.monotonic)

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()


def _store(rows: Sequence[Row]) -> None:
    span_store.store(rows, tag="ingest.spans")


def _store_logs(rows: Sequence[Row]) -> None:
    log_store.store(rows, tag="ingest.logs")


def _store_bodies(bodies: Sequence[str]) -> None:
    if clickhouse.is_embedded():
        span_store.store_encoded(bodies, tag="ingest.spans")
    else:  # queued by an embedded portal before this one was pointed at a server
        for body in bodies:
            _store(span_store.decode(body))


# What a writer stores: spans (`/v1/traces`) or log records (`/v1/logs`), each with its own queue,
# inserts and spool folder (logs spool under SPOOL_DIR/logs), so one never waits on the other.
SPANS, LOGS = "spans", "logs"
_STORES: dict[str, Callable[[Sequence[Row]], None]] = {SPANS: _store, LOGS: _store_logs}


class SpanWriter:
    """The batcher + spool + flusher of one process. ``store`` is the insert (a parameter for tests)."""

    def __init__(
        self,
        config: dict[str, Any],
        store: Callable[[Sequence[Row]], None] = _store,
        *,
        write_behind: bool = False,
    ):
        """`write_behind`: queue small batches of a busy stream on disk (spans in embedded mode; the
        module's docstring), when the spool is on and ``WRITE_BEHIND_RATE`` is not 0."""
        self.linger = float(config["BATCH_SECONDS"])
        self.max_spans = int(config["BATCH_MAX_SPANS"])
        self.max_queued = int(config["MAX_QUEUED_SPANS"])
        self.ack_timeout = float(config["ACK_TIMEOUT"])
        self.spool = Spool(config["SPOOL_DIR"], int(config["SPOOL_MAX_BYTES"])) if config["SPOOL_MAX_BYTES"] else None
        self.store = store
        self.write_behind_rate = int(config.get("WRITE_BEHIND_RATE", 0)) if write_behind and self.spool else 0
        self.write_behind_seconds = float(config.get("WRITE_BEHIND_SECONDS", 0.5))
        self.min_insert = int(config.get("MIN_INSERT_SPANS", 4096))
        self._taken: collections.deque[tuple[float, int]] = collections.deque()  # (when, spans) of the last second
        self._taken_lock = threading.Lock()
        self._inserting = 0  # writers (and the flusher) inside an insert now
        self._last_queued = -1e9  # time.monotonic() of the last batch queued
        self._queue: list[_Submission] = []
        self._queued_spans = 0
        self._cond = threading.Condition()
        self._stopping = False
        # While the spool holds batches ClickHouse is presumed down: new batches go to the spool.
        self._spooling = bool(self.spool and not self.spool.stats().empty)
        self._wake_flusher = threading.Event()
        self._threads = [
            *(
                threading.Thread(target=self._write_loop, name=f"ingest-writer-{n}", daemon=True)
                for n in range(max(1, int(config.get("WRITERS", 1))))
            ),
            threading.Thread(target=self._flush_loop, name="ingest-spool-flusher", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # --- request side ------------------------------------------------------------------------

    @property
    def spooling(self) -> bool:
        """Whether ClickHouse is presumed down: batches go to the spool until it is drained."""
        return self._spooling

    def submit(self, rows: list[Row]) -> Outcome:
        """Hand over one request's rows; blocks until they are stored or spooled (or refused)."""
        if not rows:
            return Outcome(STORED)
        item = _Submission(rows)
        with self._cond:
            if self._queued_spans + len(rows) > self.max_queued and self._queue:
                return Outcome(BUSY, error_message="ingest queue full, retry later")
            self._queue.append(item)
            self._queued_spans += len(rows)
            self._cond.notify_all()
        if not item.done.wait(self.ack_timeout):
            # Still queued or being inserted: not acknowledged, so the sender retries (maybe a duplicate).
            return Outcome(BUSY, error_message="span storage too slow, retry later")
        assert item.outcome is not None
        return item.outcome

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake_flusher.set()
        for thread in self._threads:
            thread.join(timeout)

    # --- writer thread -------------------------------------------------------------------------

    def _take_batch(self) -> list[_Submission]:
        with self._cond:
            while True:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return []
                remaining = self._queue[0].queued_at + self.linger - time.monotonic()
                if remaining <= 0 or self._queued_spans >= self.max_spans:
                    break
                # Wait for more; then look again (another writer may have taken the queue).
                self._cond.wait(remaining)
            batch: list[_Submission] = []
            spans = 0
            while self._queue and (not batch or spans + len(self._queue[0].rows) <= self.max_spans):
                item = self._queue.pop(0)
                batch.append(item)
                spans += len(item.rows)
            self._queued_spans -= spans
            return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return
            try:
                self._write(batch)
            except Exception as exc:  # never leave a sender hanging on a bug
                log.exception("ingest writer failed")
                for item in batch:
                    if not item.done.is_set():
                        item.finish(Outcome(UNAVAILABLE, error_message=f"internal error: {type(exc).__name__}"))

    def _busy(self, batch: list[_Submission], spans: int) -> bool:
        """Whether a batch of `spans` goes to the write-behind queue: it is small, several senders
        are at it (the batch holds several requests, an insert is under way, or a batch was queued
        in the last second) and spans arrive at WRITE_BEHIND_RATE a second or more (counting it).
        One sender at a time — a quiet project, a test — has its spans inserted before its answer,
        as without the queue."""
        if not self.write_behind_rate:
            return False
        now = time.monotonic()
        with self._taken_lock:
            self._taken.append((now, spans))
            while self._taken[0][0] < now - 1.0:
                self._taken.popleft()
            rate = sum(n for _, n in self._taken)
            concurrent = len(batch) > 1 or self._inserting > 0 or now - self._last_queued < 1.0
        return spans < self.min_insert and concurrent and rate >= self.write_behind_rate

    def _insert(self, rows: list[Row]) -> None:
        with self._inserting_now():
            self.store(rows)

    @contextlib.contextmanager
    def _inserting_now(self) -> Iterator[None]:
        with self._taken_lock:
            self._inserting += 1
        try:
            yield
        finally:
            with self._taken_lock:
                self._inserting -= 1

    def _write(self, batch: list[_Submission]) -> None:
        if self._spooling:
            self._to_spool(batch)
            return
        rows = [row for item in batch for row in item.rows]
        if self._busy(batch, len(rows)) and self._to_queue(batch, rows):
            return
        try:
            self._insert(rows)
        except clickhouse.ClickHouseError as exc:
            if exc.retryable:
                log.warning("ingest: ClickHouse %s, spooling %d spans: %s", exc.kind, len(rows), exc)
                self._spooling = bool(self.spool)
                self._to_spool(batch)
            else:
                for item in batch:  # find who brought the bad data
                    self._write_alone(item)
            return
        prometheus.INSERT_BATCH_SPANS.observe(len(rows))
        for item in batch:
            item.finish(Outcome(STORED, stored=len(item.rows)))

    def _to_queue(self, batch: list[_Submission], rows: list[Row]) -> bool:
        """Write `rows` to the write-behind queue and acknowledge `batch` (QUEUED); False when the
        spool cannot take them (full, disk trouble): the caller inserts them now instead."""
        assert self.spool is not None
        encoded = span_store.encode(rows)
        try:
            self.spool.append_body(encoded.body, encoded.spans, encoded.entries)
        except (SpoolFull, OSError) as exc:
            log.warning("ingest: write-behind queue unavailable (%s), inserting %d spans now", exc, len(rows))
            return False
        self._last_queued = time.monotonic()
        for item in batch:
            item.finish(Outcome(QUEUED, queued=len(item.rows)))
        self._wake_flusher.set()
        return True

    def _to_spool(self, batch: list[_Submission]) -> None:
        if self.spool is None:
            for item in batch:
                item.finish(Outcome(UNAVAILABLE, error_message="span storage unavailable, retry later"))
            return
        for item in batch:
            try:
                self.spool.append(item.rows)
            except SpoolFull as exc:
                item.finish(Outcome(UNAVAILABLE, error_message=str(exc)))
            except OSError as exc:
                log.error("ingest spool: cannot write: %s", exc)
                item.finish(Outcome(UNAVAILABLE, error_message="span storage unavailable, retry later"))
            else:
                item.finish(Outcome(SPOOLED, spooled=len(item.rows)))
        self._wake_flusher.set()

    def _write_alone(self, item: _Submission) -> None:
        """Store one request's rows, setting aside the rows ClickHouse refuses (bisection)."""
        stored, rejected, pending = 0, 0, [item.rows]
        errors: list[str] = []
        while pending:
            rows = pending.pop()
            try:
                self.store(rows)
                stored += len(rows)
            except clickhouse.ClickHouseError as exc:
                if exc.retryable:  # it went down meanwhile: the rest goes to the spool
                    rest = [row for chunk in [rows, *pending] for row in chunk]
                    self._spooling = bool(self.spool)
                    self._write_rest_to_spool(item, rest, stored, rejected, errors)
                    return
                if len(rows) == 1:
                    rejected += 1
                    errors.append(str(exc).splitlines()[0][:200] if str(exc) else exc.kind)
                else:
                    middle = len(rows) // 2
                    pending += [rows[middle:], rows[:middle]]
        message = ""
        if rejected:
            message = f"{rejected} span(s) not storable: {errors[0]}"
            log.warning("ingest: %s", message)
        item.finish(Outcome(STORED, stored=stored, rejected=rejected, error_message=message))

    def _write_rest_to_spool(self, item, rest, stored, rejected, errors) -> None:
        if self.spool is None:
            item.finish(Outcome(UNAVAILABLE, error_message="span storage unavailable, retry later"))
            return
        try:
            self.spool.append(rest)
        except (SpoolFull, OSError) as exc:
            # Part of the request is stored already; the retry may store that part twice.
            item.finish(Outcome(UNAVAILABLE, error_message=str(exc)))
            return
        message = f"{rejected} span(s) not storable: {errors[0]}" if rejected else ""
        item.finish(Outcome(SPOOLED, stored=stored, spooled=len(rest), rejected=rejected, error_message=message))
        self._wake_flusher.set()

    # --- flusher thread ------------------------------------------------------------------------

    def _flush_loop(self) -> None:
        if self.spool is None:
            return
        backoff = 0.5
        while not self._stopping:
            try:
                wait = self._queue_wait()
                if wait > 0:
                    self._wake_flusher.wait(wait)
                    self._wake_flusher.clear()
                    continue
                drained = self.spool.drain(
                    self._drain_store, store_bodies=self._drain_bodies, max_entries=span_store.INSERT_ENTRIES
                )
                if drained:
                    prometheus.SPANS_DRAINED.inc(drained)
                    # The write-behind queue drains every half second under load: not news.
                    log.log(logging.INFO if self._spooling else logging.DEBUG, "ingest spool: %d spans stored", drained)
                stats = self.spool.stats()
                self._publish(stats)
                if stats.empty:
                    self._spooling = False
                    backoff = 0.5
                    self._wake_flusher.wait(5.0)
                else:
                    # Files are left: another process drains them, ClickHouse failed, or (after a
                    # drain that stored) the write-behind queue has new ones. Back off.
                    if drained and self.write_behind_rate:
                        backoff = 0.5
                    self._wake_flusher.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
            except clickhouse.ClickHouseError as exc:
                log.info("ingest spool: ClickHouse still %s; retry in %.1f s", exc.kind, backoff)
                self._publish(self.spool.stats())
                self._wake_flusher.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("ingest spool flusher failed")
                self._wake_flusher.wait(5.0)
            self._wake_flusher.clear()

    def _queue_wait(self) -> float:
        """Seconds the flusher waits before draining: while the spool holds only a young write-behind
        queue of fewer than MIN_INSERT_SPANS spans, until its oldest file is WRITE_BEHIND_SECONDS old."""
        assert self.spool is not None
        if not self.write_behind_rate or self._spooling:
            return 0.0
        stats = self.spool.stats()
        self._publish(stats)
        if stats.empty or stats.spans >= self.min_insert:
            return 0.0
        return max(0.0, self.write_behind_seconds - stats.oldest_age_s)

    def _drain_bodies(self, bodies: list[str], spans: int) -> None:
        """Store write-behind files' bodies with one insert; if the engine refuses the data itself,
        each file's rows alone, setting aside those it refuses (as `_drain_store`)."""
        try:
            with self._inserting_now():
                _store_bodies(bodies)
        except clickhouse.ClickHouseError as exc:
            if exc.retryable:
                raise
            for body in bodies:
                self._drain_store(span_store.decode(body))
            return
        prometheus.INSERT_BATCH_SPANS.observe(spans)

    def _drain_store(self, rows: list[Row]) -> None:
        try:
            self.store(rows)
        except clickhouse.ClickHouseError as exc:
            if exc.retryable:
                raise
            # The data itself is refused: store what can be stored, report the rest in the log.
            item = _Submission(rows)
            self._write_alone(item)
            if item.outcome and item.outcome.status == SPOOLED:
                return  # the unstored part was spooled again as a new file
            if item.outcome and item.outcome.status == UNAVAILABLE:
                # ClickHouse went away mid-way and the rest could not be spooled again (spool full):
                # the file must stay for the next drain, not be deleted with rows unstored. What was
                # stored of it may be stored twice then (as after a crash between insert and delete).
                raise clickhouse.ClickHouseError(
                    item.outcome.error_message or "span storage unavailable",
                    kind=clickhouse.UNAVAILABLE,
                    tag="ingest.drain",
                )
            if item.outcome and item.outcome.rejected:
                prometheus.SPANS_REJECTED.labels(reason="spooled_unstorable").inc(item.outcome.rejected)

    @staticmethod
    def _publish(stats: SpoolStats) -> None:
        prometheus.SPOOL_BATCHES.set(stats.batches)
        prometheus.SPOOL_BYTES.set(stats.bytes)
        prometheus.SPOOL_OLDEST_AGE.set(stats.oldest_age_s)


# --- the process-wide writers ------------------------------------------------------------------

_writers: dict[str, SpanWriter] = {}
_writer_lock = threading.Lock()


def _config(kind: str) -> dict[str, Any]:
    config = dict(settings.INGEST)
    if kind != SPANS:
        config["SPOOL_DIR"] = str(Path(config["SPOOL_DIR"]) / kind)
    return config


def writer(kind: str = SPANS) -> SpanWriter:
    """The process's writer of `kind` (SPANS or LOGS), started on first use."""
    instance = _writers.get(kind)
    if instance is None:
        with _writer_lock:
            if kind not in _writers:
                embedded = kind == SPANS and clickhouse.is_embedded()
                _writers[kind] = SpanWriter(_config(kind), store=_STORES[kind], write_behind=embedded)
            instance = _writers[kind]
    return instance


def submit(rows: list[Row], kind: str = SPANS) -> Outcome:
    return writer(kind).submit(rows)


def spool_stats(kind: str = SPANS) -> SpoolStats | None:
    """The spool as the Health page shows it; None when the spool is disabled."""
    config = _config(kind)
    if not config["SPOOL_MAX_BYTES"]:
        return None
    return Spool(config["SPOOL_DIR"], int(config["SPOOL_MAX_BYTES"])).stats()


def reset() -> None:
    """Stop and forget the process's writers (settings changed; tests)."""
    with _writer_lock:
        for instance in _writers.values():
            instance.stop()
        _writers.clear()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting, **kwargs):
    if setting in ("INGEST", "CLICKHOUSE"):
        reset()
