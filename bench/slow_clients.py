#!/usr/bin/env python3
"""Slow senders against the portal as bin/demo serves it: do other requests still get answers?

    .venv/bin/python bench/slow_clients.py [--stalled 9] [--requests 20] [--also-gunicorn]

Starts the portal (config/serve.sh, embedded mode, loopback port, its own var/ folder), opens
--stalled connections that declare `Content-Length: 1000` and send 10 bytes (half to /v1/traces,
half to the login page), then times --requests ordinary requests (login page and a 1-span OTLP
export, alternately; 5 s timeout each) and prints answered / timed out and p50/max latency.
--also-gunicorn runs the same against gunicorn's gthread worker (the previous embedded server).
Bounded: at most ~2 minutes, loopback only.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live_portal import LivePortal
from otlp import S, request


def stalled(portal: LivePortal, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", portal.port), timeout=5)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Authorization: Bearer {portal.ingest_key}\r\nContent-Length: 1000\r\n\r\n0123456789".encode()
    )
    return sock


def scenario(label: str, n_stalled: int, n_requests: int, **env: str) -> None:
    portal = LivePortal(**env).prepare().start()
    socks = []
    try:
        socks = [stalled(portal, "/v1/traces" if i % 2 == 0 else "/accounts/login/") for i in range(n_stalled)]
        time.sleep(1.0)
        ok, timed_out, latencies = 0, 0, []
        body = request(S("slow-bench")).SerializeToString()
        for i in range(n_requests):
            started = time.monotonic()
            try:
                if i % 2:
                    status = portal.request("GET", "/accounts/login/", timeout=5)[0]
                else:
                    status = portal.post_spans(body, timeout=5)[0]
                ok += status == 200
            except OSError:  # socket.timeout included
                timed_out += 1
            latencies.append((time.monotonic() - started) * 1000)
        print(
            f"{label:32s} stalled={n_stalled} requests={n_requests} answered_200={ok} timed_out={timed_out} "
            f"p50={statistics.median(latencies):.0f} ms max={max(latencies):.0f} ms rss={portal.rss_mib():.0f} MiB"
        )
    finally:
        for sock in socks:
            sock.close()
        portal.stop(kill=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stalled", type=int, default=9)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--also-gunicorn", action="store_true")
    args = ap.parse_args()
    scenario("waitress (config/serve.sh)", args.stalled, args.requests)
    if args.also_gunicorn:
        scenario("gunicorn gthread 1x8 (before)", args.stalled, min(args.requests, 4), PORTAL_SERVER="gunicorn")


if __name__ == "__main__":
    main()
