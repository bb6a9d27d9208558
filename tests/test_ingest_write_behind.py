"""The spans writer's write-behind queue (monitoring/ingest/batcher.py): while several senders export
at once, small batches are acknowledged once fsync'ed to the spool and inserted together, in fewer and
larger inserts; a lone sender's spans are stored before its answer; a queued span is stored within
WRITE_BEHIND_SECONDS, and survives a SIGKILL of the portal (the spool's promise)."""

from __future__ import annotations

import threading
import time

from live_portal import LivePortal
from otlp import S, request

from monitoring.ingest import batcher, otlp, span_store
from monitoring.ingest.spool import Spool
from monitoring.store import clickhouse, schema


def _config(tmp_path, **overrides):
    return {
        "BATCH_SECONDS": 0.2,
        "BATCH_MAX_SPANS": 100_000,
        "MAX_QUEUED_SPANS": 100_000,
        "ACK_TIMEOUT": 30,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "SPOOL_MAX_BYTES": 10**8,
        "WRITE_BEHIND_RATE": 1,
        "WRITE_BEHIND_SECONDS": 0.5,
        "MIN_INSERT_SPANS": 10_000,
        **overrides,
    }


def _rows(project, prefix: str, n: int) -> list[dict]:
    return otlp.rows_from_request(request(*[S(f"{prefix}{i:03d}") for i in range(n)]), str(project.id)).rows


def _count(project, prefix: str) -> int:
    return clickhouse.query_one(
        f"SELECT count() AS n FROM {schema.table()} WHERE ProjectId = {{p:String}} AND startsWith(SpanName, {{s:String}})",
        {"p": str(project.id), "s": prefix},
        tag="test",
    )["n"]


def _submit_at_once(writer: batcher.SpanWriter, batches: list[list[dict]]) -> list[batcher.Outcome]:
    outcomes: list = [None] * len(batches)

    def send(i):
        outcomes[i] = writer.submit(batches[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def _wait_for(predicate, timeout: float) -> float | None:
    """Seconds until `predicate()` held, None if it did not within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def test_it_queues_concurrent_small_batches_and_inserts_them_together(tmp_path, project, monkeypatch):
    inserts: list[int] = []
    real = span_store.store_encoded
    monkeypatch.setattr(
        span_store, "store_encoded", lambda bodies, tag: (inserts.append(len(bodies)), real(bodies, tag=tag))
    )
    writer = batcher.SpanWriter(_config(tmp_path, WRITE_BEHIND_SECONDS=60, MIN_INSERT_SPANS=60), write_behind=True)
    try:
        first = _submit_at_once(writer, [_rows(project, f"wb{b}-", 20) for b in range(2)])
        assert [o.status for o in first] == [batcher.QUEUED] * 2  # acknowledged from the queue on disk
        assert _count(project, "wb") == 0 and Spool(tmp_path / "spool", 10**8).stats().spans == 40
        second = _submit_at_once(writer, [_rows(project, f"wb{b}-", 20) for b in range(2, 4)])
        assert {o.status for o in second} <= {batcher.QUEUED, batcher.STORED}
        # 60 spans queued: inserted at once, long before the 60 s linger, the files together.
        assert _wait_for(lambda: _count(project, "wb") == 80, 20) is not None
        assert sum(inserts) >= 2 and len(inserts) < sum(inserts)
    finally:
        writer.stop()
    assert Spool(tmp_path / "spool", 10**8).stats().empty


def test_a_queued_span_is_stored_within_the_linger_at_a_low_rate(tmp_path, project):
    writer = batcher.SpanWriter(_config(tmp_path), write_behind=True)
    try:
        outcomes = _submit_at_once(writer, [_rows(project, f"slow{b}-", 3) for b in range(2)])
        answered = time.monotonic()
        assert [o.status for o in outcomes] == [batcher.QUEUED] * 2
        assert _wait_for(lambda: _count(project, "slow") == 6, 10) is not None
        assert time.monotonic() - answered < 2.0  # visible within 2 s of the answer
    finally:
        writer.stop()


def test_a_lone_sender_is_stored_before_its_answer(tmp_path, project):
    writer = batcher.SpanWriter(_config(tmp_path), write_behind=True)
    try:
        for b in range(3):
            outcome = writer.submit(_rows(project, f"lone{b}-", 50))
            assert outcome.status == batcher.STORED
            assert _count(project, "lone") == 50 * (b + 1)
    finally:
        writer.stop()


def test_a_queued_batch_the_engine_refuses_keeps_the_rest(tmp_path, project):
    spool = Spool(tmp_path / "spool", 10**8)
    good = span_store.encode(_rows(project, "ok-", 5))
    rows = _rows(project, "bad-", 4)
    rows[2]["SpanAttributes"] = "not a map"  # the engine refuses this one row
    bad = span_store.encode(rows)
    spool.append_body(good.body, good.spans, good.entries)
    spool.append_body(bad.body, bad.spans, bad.entries)
    writer = batcher.SpanWriter(_config(tmp_path), write_behind=True)  # finds them: drains them at once
    try:
        assert _wait_for(lambda: spool.stats().empty, 20) is not None
    finally:
        writer.stop()
    assert (_count(project, "ok-"), _count(project, "bad-")) == (5, 3)


def test_a_sigkill_loses_no_span_acknowledged_from_the_queue(tmp_path):
    portal = LivePortal(
        str(tmp_path / "portal"),
        INGEST_WRITE_BEHIND_RATE="1",
        INGEST_WRITE_BEHIND_SECONDS="600",  # queued files wait for the kill
        INGEST_MIN_INSERT_SPANS="1000000",
        INGEST_BATCH_SECONDS="0.3",
    ).prepare()
    portal.start()
    statuses: list[int] = []
    try:
        bodies = [request(*[S(f"kill-{b}-{i:03d}") for i in range(100)]).SerializeToString() for b in range(8)]

        def send(part):
            for body in part:
                statuses.append(portal.post_spans(body)[0])

        threads = [threading.Thread(target=send, args=(bodies[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        queued = list((portal.var_dir / "spool").glob("*.spool"))
    finally:
        portal.stop(kill=True)  # SIGKILL: no chance to insert the queue
    assert statuses == [200] * 8
    assert queued, "nothing went through the write-behind queue"
    assert portal.count("kill-") < 800  # the queued spans were not inserted before the kill
    portal.start()  # finds the spool and inserts it
    try:
        assert _wait_for(lambda: not list((portal.var_dir / "spool").glob("*.spool")), 60) is not None, portal.log()
    finally:
        portal.stop()
    assert portal.count("kill-") == 800


def test_the_health_page_takes_a_young_queue_for_the_spool_working(tmp_path, project, settings):
    from django.utils import translation

    from monitoring.web import health

    settings.INGEST = {
        **settings.INGEST,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "WRITE_BEHIND_RATE": 2048,
        "WRITE_BEHIND_SECONDS": 600,
    }
    queued = span_store.encode(_rows(project, "health-", 2))
    spool = Spool(tmp_path / "spool", 10**8)
    try:
        batcher.writer()  # started on an empty spool: no outage
        spool.append_body(queued.body, queued.spans, queued.entries)
        with translation.override("en"):
            check = health._spool()
        assert check is not None and check.ok and "1 batch" in check.detail
        batcher.writer()._spooling = True  # an outage: the same file is a warning
        check = health._spool()
        assert check is not None and not check.ok
    finally:
        batcher.reset()
