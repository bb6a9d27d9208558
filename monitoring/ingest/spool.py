"""The ingest spool: spans acknowledged while ClickHouse could not take them, kept on local disk.

One file per spooled batch in ``INGEST["SPOOL_DIR"]``, written append-only and never changed:
``<received ns>-<pid>-<seq>-<spans>.spool`` holding gzip'd JSON lines (a header, then one row per
line, keyed by column). A file becomes visible only once complete: it is written under a temporary
name, fsync'ed, renamed, and the directory fsync'ed, all before the sender gets its 200 — so a
SIGKILL or power loss after the answer cannot lose it. :meth:`Spool.drain` stores files oldest
first and deletes each only after ClickHouse took it (at-least-once: a crash between the insert and
the delete stores that batch twice). Several processes (gunicorn workers) may share the folder:
a drain holds an exclusive ``flock`` on the file it works on, and skips a file already gone.

The spans writer's write-behind queue (monitoring/ingest/batcher.py) uses the same folder and
promise: :meth:`Spool.append_body` keeps a batch already encoded as insert data (format 2: a header
line, then the body as it is, uncompressed: writing it costs a write and two fsyncs, not a second
encoding), and :meth:`Spool.drain` stores such files next to each other with one insert.

Bounded: :meth:`Spool.append` raises :class:`SpoolFull` past ``max_bytes``; the receiver then
answers 503 with Retry-After, so the sender keeps the batch.
"""

from __future__ import annotations

import fcntl
import gzip
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".spool"
_VERSION = 1  # gzip'd JSON lines, one row (an object) a line
_BODY_VERSION = 2  # a JSON header line, then a batch's insert data (span_store.encode) as it is


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already: refuse the batch (HTTP 503, the sender retries)."""


@dataclass(frozen=True)
class SpoolStats:
    batches: int
    spans: int
    bytes: int
    oldest_age_s: float  # 0 when empty

    @property
    def empty(self) -> bool:
        return self.batches == 0


@dataclass(frozen=True)
class _Entry:
    path: Path
    received_ns: int
    spans: int
    size: int


def _parse_name(path: Path) -> tuple[int, int] | None:
    """(received ns, spans) from a spool file name, None for anything else in the folder."""
    if not path.name.endswith(SUFFIX):
        return None
    parts = path.name[: -len(SUFFIX)].split("-")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[3])


class Spool:
    """An append-only spool of row batches in one folder. Thread-safe; several processes may share it."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._lock = threading.Lock()  # one appender at a time in this process: the size check holds

    # --- writing ---------------------------------------------------------------------------

    def append(self, rows: Sequence[dict[str, Any]]) -> Path:
        """Write one batch durably (fsync'ed file and folder) and return its path. Raises SpoolFull."""
        return self._write(self._encode(rows), len(rows))

    def append_body(self, body: str, spans: int, entries: int) -> Path:
        """Write one batch of `spans` rows already encoded as insert data (`entries` attribute entries
        in all, which bound how many files one insert takes) durably; its path. Raises SpoolFull."""
        header = json.dumps({"v": _BODY_VERSION, "spans": spans, "entries": entries})
        return self._write(f"{header}\n{body}".encode("utf-8", "surrogatepass"), spans)

    def _write(self, payload: bytes, spans: int) -> Path:
        with self._lock:
            if self.stats().bytes + len(payload) > self.max_bytes:
                raise SpoolFull(f"ingest spool full ({self.max_bytes} bytes in {self.directory})")
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}-{spans}{SUFFIX}"
            final = self.directory / name
            temporary = self.directory / f".{name}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, final)
            self._fsync_directory()
        return final

    @staticmethod
    def _encode(rows: Sequence[dict[str, Any]]) -> bytes:
        lines = [json.dumps({"v": _VERSION, "spans": len(rows)})]
        lines.extend(json.dumps(row, separators=(",", ":"), ensure_ascii=False) for row in rows)
        return gzip.compress(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"), compresslevel=1)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- reading ---------------------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        entries = []
        try:
            scan = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for item in scan:
            parsed = _parse_name(Path(item.name))
            if parsed is None:
                continue
            try:
                size = item.stat().st_size
            except FileNotFoundError:  # drained meanwhile
                continue
            entries.append(_Entry(Path(item.path), parsed[0], parsed[1], size))
        entries.sort(key=lambda e: e.path.name)
        return entries

    def stats(self) -> SpoolStats:
        entries = self._entries()
        if not entries:
            return SpoolStats(0, 0, 0, 0.0)
        oldest = min(e.received_ns for e in entries)
        return SpoolStats(
            len(entries),
            sum(e.spans for e in entries),
            sum(e.size for e in entries),
            max(0.0, (time.time_ns() - oldest) / 1e9),
        )

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """A format-1 file's rows (ValueError for another format)."""
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogatepass") as fh:
            header = json.loads(fh.readline())
            if header.get("v") != _VERSION:
                raise ValueError(f"unknown spool format {header!r} in {path.name}")
            return [json.loads(line) for line in fh if line.strip()]

    @staticmethod
    def read_body(path: Path) -> tuple[str, int] | None:
        """A format-2 file's (insert data, entries); None for a format-1 file (ValueError if damaged)."""
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip: format 1
            return None
        head, newline, body = raw.partition(b"\n")
        header = json.loads(head)
        if header.get("v") != _BODY_VERSION or not newline:
            raise ValueError(f"unknown spool format {header!r} in {path.name}")
        return body.decode("utf-8", "surrogatepass"), int(header["entries"])

    def drain(
        self,
        store: Callable[[list[dict[str, Any]]], None],
        max_batches: int | None = None,
        *,
        store_bodies: Callable[[list[str], int], None] | None = None,
        max_entries: int = 0,
    ) -> int:
        """Store spooled batches oldest first, deleting each once stored; returns the spans stored.

        Format-1 files go to ``store`` one by one. Format-2 files (`append_body`) that follow each
        other go to ``store_bodies`` together (their bodies and spans), as many as hold at most ``max_entries`` entries (at
        least one); without ``store_bodies`` such a file cannot be stored here and is moved aside.
        A callback raises to stop the drain (ClickHouse down again): its files stay for next time.
        A file another process is draining is skipped.
        """
        stored = 0
        held: list[tuple[_Entry, int, str, int]] = []  # the format-2 files gathered for one insert, locked
        try:
            for count, entry in enumerate(self._entries()):
                if max_batches is not None and count >= max_batches:
                    break
                fd = self._lock_file(entry.path)
                if fd is None:
                    continue
                try:
                    body = self.read_body(entry.path)
                    rows = self.read(entry.path) if body is None else None
                    if body is not None and store_bodies is None:
                        raise ValueError("a write-behind batch where none is expected")
                except (OSError, ValueError, EOFError, KeyError) as exc:
                    # Never delete what cannot be read: set it aside for a human.
                    log.error("ingest spool: cannot read %s (%s); moved aside as .bad", entry.path.name, exc)
                    os.rename(entry.path, entry.path.with_suffix(".bad"))
                    os.close(fd)
                    continue
                if body is not None:
                    if held and sum(h[3] for h in held) + body[1] > max_entries:
                        try:
                            stored += self._store_held(held, store_bodies)
                        except BaseException:
                            os.close(fd)
                            raise
                    held.append((entry, fd, body[0], body[1]))
                    continue
                try:
                    stored += self._store_held(held, store_bodies)
                    assert rows is not None
                    store(rows)
                    os.unlink(entry.path)
                    self._fsync_directory()
                    stored += len(rows)
                finally:
                    os.close(fd)
            stored += self._store_held(held, store_bodies)
        finally:
            for _, fd, _, _ in held:  # a callback raised: their files stay
                os.close(fd)
            held.clear()
        return stored

    @staticmethod
    def _lock_file(path: Path) -> int | None:
        """An open descriptor of `path` holding its exclusive flock; None when another process holds
        it or has drained it already."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # another process drained and deleted it meanwhile
            os.close(fd)
            return None
        return fd

    def _store_held(
        self, held: list[tuple[_Entry, int, str, int]], store_bodies: Callable[[list[str], int], None] | None
    ) -> int:
        """Store the gathered format-2 files with one call, delete them, empty `held`; the spans stored."""
        if not held:
            return 0
        assert store_bodies is not None
        spans = sum(entry.spans for entry, _, _, _ in held)
        store_bodies([body for _, _, body, _ in held], spans)
        for entry, _, _, _ in held:
            os.unlink(entry.path)
        self._fsync_directory()
        for _, fd, _, _ in held:
            os.close(fd)
        held.clear()
        return spans
