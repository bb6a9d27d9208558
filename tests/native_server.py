"""Serve the real ClickHouse engine (embedded in chdb) over the native TCP protocol.

There is no clickhouse-server on the test machines, but chdb embeds
clickhouse-local, and clickhouse-local honours ``SYSTEM START LISTEN TCP``:
it starts the TCP handler described by ``<listen_host>``/``<tcp_port>`` of the
``config.xml`` it loaded.  Details that matter (checked against chdb 4.4 /
engine 26.9):

* Only the one-shot entry point ``chdb._chdb.query(sql, fmt, path=...)`` wires
  up the server callback.  Through ``chdb._chdb.connect(...)`` (sessions,
  ``chdb.connect``) the same statement fails with ``Can't start servers because
  start_servers_callback is not set. (LOGICAL_ERROR)``.
* clickhouse-local reads ``config.xml`` from the *current working directory*.
  ``path`` is taken literally by ``_chdb.query`` (``?config-file=...`` is NOT
  parsed there, it becomes part of the directory name), so the script chdirs
  into a private directory holding the generated ``config.xml``.
* The listener only lives while that ``_chdb.query`` call runs; it is torn
  down when the call returns.  So the call is
  ``SYSTEM START LISTEN TCP; SELECT sleepEachRow(1) FROM numbers(huge)
  SETTINGS max_block_size = 1 FORMAT Null`` -- a keep-alive query that sleeps
  for ~30 years at almost no CPU cost.  It is visible in ``system.processes``
  (with the marker ``native_server_keepalive``); ``KILL QUERY`` on it stops
  the server.
* One process may use one data directory (ClickHouse holds a lock on
  ``<path>/status``), and ``_chdb.query`` with a path works once per process;
  hence one subprocess per data directory.

Usage as a script::

    python tests/native_server.py --path DIR --port N

serves ``DIR`` on 127.0.0.1:N until killed (SIGTERM/SIGINT).  From tests use
:func:`start_native_server` / :func:`stop_native_server`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

KEEPALIVE_MARKER = "native_server_keepalive"

CONFIG_TEMPLATE = """<clickhouse>
    <listen_host>{host}</listen_host>
    <tcp_port>{port}</tcp_port>
{extra}</clickhouse>
"""

# Roughly 30 years of one-second sleeps; one row per block keeps each
# sleepEachRow() call under function_sleep_max_microseconds_per_block (3 s).
KEEPALIVE_SQL = (
    "SYSTEM START LISTEN TCP; "
    "SELECT /* " + KEEPALIVE_MARKER + " */ sleepEachRow(1) "
    "FROM numbers(1000000000) SETTINGS max_block_size = 1 FORMAT Null"
)


# --------------------------------------------------------------------------
# server side (runs inside the subprocess)
# --------------------------------------------------------------------------
def serve(path: str, port: int, host: str = "127.0.0.1", parent_pid: int | None = None, extra_config: str = "") -> int:
    """Serve ``path`` on ``host:port`` until signalled; returns an exit code.

    With ``parent_pid`` the server also exits once that process is gone
    (so a crashed test run does not leave servers behind). ``extra_config``:
    more elements of ``<clickhouse>`` (a cluster's ``remote_servers``, ``macros``).
    """
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    # The config must be the cwd's config.xml; keep it out of the data dir.
    conf_dir = tempfile.mkdtemp(prefix="chdb-native-conf-")
    with open(os.path.join(conf_dir, "config.xml"), "w") as fh:
        fh.write(CONFIG_TEMPLATE.format(host=host, port=int(port), extra=extra_config))

    outcome: dict = {}
    done = threading.Event()

    def cleanup() -> None:
        shutil.rmtree(conf_dir, ignore_errors=True)

    def on_signal(signum, _frame):
        cleanup()
        sys.stderr.flush()
        # The engine is blocked in C++; there is nothing to unwind cleanly.
        # Inserted parts are already on disk (each INSERT writes its part).
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    os.chdir(conf_dir)
    # Import after chdir: importing chdb already boots an in-memory engine.
    from chdb import _chdb

    def run() -> None:
        try:
            res = _chdb.query(KEEPALIVE_SQL, "CSV", path=path)
            outcome["error"] = res.error_message() if res.has_error() else None
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()

    # The query runs in a worker thread so that the main thread stays in the
    # interpreter and can handle SIGTERM/SIGINT.
    threading.Thread(target=run, name="chdb-native-server", daemon=True).start()
    print(f"native_server: pid {os.getpid()} serving {path} on {host}:{port}", file=sys.stderr, flush=True)
    while not done.wait(0.5):
        if parent_pid is not None and os.getppid() != parent_pid:
            print("native_server: parent process gone; exiting", file=sys.stderr, flush=True)
            cleanup()
            os._exit(0)
    cleanup()
    err = outcome.get("error")
    if err:
        print(f"native_server: engine stopped with error: {err}", file=sys.stderr, flush=True)
        return 1
    print(
        "native_server: keep-alive query ended (KILL QUERY, or an engine error printed above); exiting",
        file=sys.stderr,
        flush=True,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", required=True, help="chdb/ClickHouse data directory")
    ap.add_argument("--port", required=True, type=int, help="native TCP port")
    ap.add_argument("--host", default="127.0.0.1", help="listen host")
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this parent process goes away")
    ap.add_argument("--extra-config", default=None, help="a file of more <clickhouse> elements for config.xml")
    args = ap.parse_args(argv)
    extra = ""
    if args.extra_config:
        with open(args.extra_config) as fh:
            extra = fh.read()
    return serve(args.path, args.port, args.host, args.parent_pid, extra)


# --------------------------------------------------------------------------
# client side (used by tests)
# --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_log(log) -> str:
    try:
        log.flush()
        log.seek(0)
        return log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def start_native_server(
    data_dir: str, timeout: float = 30, port: int | None = None, extra_config: str = ""
) -> tuple[subprocess.Popen, int]:
    """Start a native-protocol server serving ``data_dir`` on ``port`` (default: a free one).

    Returns ``(process, port)`` once ``clickhouse_driver.Client('127.0.0.1',
    port=port).execute('SELECT 1')`` succeeds.  Raises ``RuntimeError`` (with
    the subprocess's stderr) when it cannot start within ``timeout`` seconds.
    ``data_dir`` must not be used by any other chdb process/session.
    ``extra_config``: more elements of the server's ``<clickhouse>`` config
    (see :func:`serve`); a cluster's nodes name each other's ports there, so
    they are chosen first and passed as ``port``.
    """
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as DriverError

    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    deadline = time.monotonic() + timeout
    last_reason = "not started"
    output = ""
    attempts = 0
    fixed_port = port
    extra_file = None
    if extra_config:
        fd, extra_file = tempfile.mkstemp(prefix="chdb-native-extra-", suffix=".xml")
        with os.fdopen(fd, "w") as fh:
            fh.write(extra_config)
    while attempts < (1 if fixed_port else 3) and time.monotonic() < deadline:
        attempts += 1
        port = fixed_port or _free_port()
        log = tempfile.TemporaryFile(prefix="chdb-native-server-", suffix=".log")
        proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--path",
                data_dir,
                "--port",
                str(port),
                "--parent-pid",
                str(os.getpid()),
                *(["--extra-config", extra_file] if extra_file else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
        proc._native_server_log = log  # type: ignore[attr-defined]
        proc._native_server_port = port  # type: ignore[attr-defined]
        while time.monotonic() < deadline:
            rc = proc.poll()
            if rc is not None:
                last_reason = f"server exited with code {rc}"
                break
            # Plain socket probe first: clickhouse-driver logs a warning with
            # a traceback for every refused connection.
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError as exc:
                last_reason = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
                continue
            client = Client("127.0.0.1", port=port, connect_timeout=1, send_receive_timeout=5)
            try:
                if client.execute("SELECT 1") == [(1,)]:
                    if extra_file:  # read by the server before it started listening
                        os.unlink(extra_file)
                    return proc, port
            except (DriverError, OSError, EOFError) as exc:
                last_reason = f"{type(exc).__name__}: {exc}"
            finally:
                client.disconnect()
            time.sleep(0.2)
        else:
            last_reason = f"timed out after {timeout}s ({last_reason})"
        output = _read_log(log)
        stop_native_server(proc)
        # A port race (someone grabbed the port) is worth another try.
        if "Address already in use" not in output and "NETWORK_ERROR" not in output:
            break
    if extra_file:
        os.unlink(extra_file)
    raise RuntimeError(
        f"chdb native server for {data_dir!r} did not start: {last_reason}\n--- server output ---\n{output}"
    )


def stop_native_server(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server started by :func:`start_native_server` (idempotent)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    log = getattr(proc, "_native_server_log", None)
    if log is not None:
        try:
            log.close()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
