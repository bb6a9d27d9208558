"""The ingest spool: spans acknowledged while ClickHouse could not take them, kept on local disk.

One file per spooled batch in ``INGEST["SPOOL_DIR"]``, written append-only and never changed:
``<received ns>-<pid>-<seq>-<spans>.spool`` holding gzip'd JSON lines (a header, then one row per
line, keyed by column). A file becomes visible only once complete: it is written under a temporary
name, fsync'ed, renamed, and the directory fsync'ed, all before the sender gets its 200 — so a
SIGKILL or power loss after the answer cannot lose it. :meth:`Spool.drain` stores files oldest
first and deletes each only after ClickHouse took it (at-least-once: a crash between the insert and
the delete stores that batch twice). Several processes (gunicorn workers) may share the folder:
a drain holds an exclusive ``flock`` on the file it works on, and skips a file already gone.

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
_VERSION = 1


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
        payload = self._encode(rows)
        with self._lock:
            if self.stats().bytes + len(payload) > self.max_bytes:
                raise SpoolFull(f"ingest spool full ({self.max_bytes} bytes in {self.directory})")
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}-{len(rows)}{SUFFIX}"
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
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogatepass") as fh:
            header = json.loads(fh.readline())
            if header.get("v") != _VERSION:
                raise ValueError(f"unknown spool format {header!r} in {path.name}")
            return [json.loads(line) for line in fh if line.strip()]

    def drain(self, store: Callable[[list[dict[str, Any]]], None], max_batches: int | None = None) -> int:
        """Store spooled batches oldest first, deleting each once stored; returns the spans stored.

        ``store`` raises to stop the drain (ClickHouse down again): the file stays for next time.
        A file another process is draining is skipped.
        """
        stored = 0
        for count, entry in enumerate(self._entries()):
            if max_batches is not None and count >= max_batches:
                break
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if os.fstat(fd).st_nlink == 0:  # another process drained and deleted it meanwhile
                    continue
                try:
                    rows = self.read(entry.path)
                except (OSError, ValueError, EOFError) as exc:
                    # Never delete what cannot be read: set it aside for a human.
                    log.error("ingest spool: cannot read %s (%s); moved aside as .bad", entry.path.name, exc)
                    os.rename(entry.path, entry.path.with_suffix(".bad"))
                    continue
                store(rows)
                os.unlink(entry.path)
                self._fsync_directory()
                stored += len(rows)
            finally:
                os.close(fd)
        return stored
