"""Run a real LiteLLM proxy (from its own venv) as a subprocess for tests.

    if not litellm_available():
        pytest.skip("LiteLLM venv not installed")
    proxy = start_litellm_proxy(config, {"OTEL_EXPORTER_OTLP_ENDPOINT": ...}, tmp_path)
    try:
        ...  # POST f"{proxy.base_url}/v1/chat/completions" with proxy.headers
    finally:
        proxy.stop()   # SIGINT: graceful, flushes the OTel batch processor's pending spans

The venv is ``$LITELLM_VENV`` (default ``<repo>/.venv-litellm``) with ``litellm[proxy]==1.108.7``
plus ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http`` (not pulled in by the
``proxy`` extra). The config is written as JSON, which is valid YAML, so no PyYAML is needed here.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Inherited variables that would change the proxy's behaviour or reach the network.
_DROPPED_ENV_PREFIXES = ("OTEL_", "LITELLM_", "DATABASE_URL", "REDIS_", "OPENAI_", "ANTHROPIC_")


def litellm_venv() -> Path:
    return Path(os.environ.get("LITELLM_VENV") or REPO_ROOT / ".venv-litellm")


def litellm_bin() -> Path:
    return litellm_venv() / "bin" / "litellm"


def litellm_available() -> bool:
    return os.access(litellm_bin(), os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiteLLMProxy:
    base_url: str
    master_key: str
    process: subprocess.Popen
    log_path: Path
    config_path: Path
    _log_file: object = field(repr=False, default=None)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}", "Content-Type": "application/json"}

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        """Shut down gracefully and flush pending spans; SIGKILL after ``timeout`` s.

        SIGINT, not SIGTERM: uvicorn re-raises SIGTERM after its shutdown, which kills the
        process before atexit runs, so the OTel batch processor never flushes.
        """
        if self.alive():
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LiteLLMProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_litellm_proxy(config: dict, env: dict, tmp_path, timeout: float = 120) -> LiteLLMProxy:
    """Write ``config`` to ``tmp_path/litellm_config.yaml``, start the proxy and wait until it is live.

    ``env`` is layered over a scrubbed copy of os.environ (OTEL_*, LITELLM_*, provider keys and
    DATABASE_URL are removed first). LITELLM_MASTER_KEY is random unless ``env`` sets it.
    Raises RuntimeError, with the proxy's log, if it exits or is not live within ``timeout`` s.
    """
    tmp_path = Path(tmp_path)
    config_path = tmp_path / "litellm_config.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = tmp_path / "litellm_proxy.log"
    port = _free_port()

    child_env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    child_env.pop("VIRTUAL_ENV", None)
    child_env.update(
        LITELLM_MASTER_KEY="sk-" + secrets.token_hex(16),
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # don't download the price map
        LITELLM_DONT_SHOW_FEEDBACK_BOX="True",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",  # OTLP export and calls stay on loopback
        no_proxy="127.0.0.1,localhost",
    )
    child_env.update({k: str(v) for k, v in env.items()})

    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        [str(litellm_bin()), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)],
        env=child_env,
        cwd=tmp_path,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    proxy = LiteLLMProxy(
        f"http://127.0.0.1:{port}", child_env["LITELLM_MASTER_KEY"], process, log_path, config_path, log_file
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proxy.alive():
            proxy.stop()
            raise RuntimeError(f"LiteLLM proxy exited with {process.returncode}:\n{proxy.logs()}")
        try:
            with opener.open(f"{proxy.base_url}/health/liveliness", timeout=2) as r:
                if r.status == 200:
                    return proxy
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    proxy.stop()
    raise RuntimeError(f"LiteLLM proxy not live after {timeout}s:\n{proxy.logs()}")
