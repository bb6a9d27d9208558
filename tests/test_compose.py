"""The docker-compose stack and its configs: they parse, hang together, and match the setup guide.

No database and no Docker engine are needed:

    .venv/bin/python -m pytest tests/test_compose.py -q -p no:django

The last tests run `docker-compose config -q` (Debian's docker-compose; skipped only when the
binary is missing) and `docker compose config -q` (skipped when the compose v2 plugin is missing).
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

try:
    import yaml
except ImportError as exc:  # pragma: no cover - a clear message instead of a bare collection error
    raise ImportError("tests/test_compose.py needs PyYAML (requirements-test.txt: PyYAML==6.0.4)") from exc

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COLLECTOR_CONFIG = ROOT / "config" / "otel-collector-config.yaml"
LITELLM_CONFIG = ROOT / "config" / "litellm.yaml"
USERS_XML = ROOT / "config" / "clickhouse" / "users.d" / "monitoring-users.xml"
CLICKHOUSE_XML = ROOT / "config" / "clickhouse" / "config.d" / "monitoring.xml"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus.yml"
NGINX_CONF = ROOT / "config" / "nginx.conf"
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
ENTRYPOINT = ROOT / "config" / "portal-entrypoint.sh"
ENV_EXAMPLE = ROOT / ".env.example"

# The collector image the allowlist below was checked against. Bumping the image means checking
# the component types again, so the version is pinned here too.
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.135.0"

# Component types of the contrib distribution that this stack may use, checked against the
# distribution's manifest (opentelemetry-collector-releases, distributions/otelcol-contrib/
# manifest.yaml for 0.135.0: otlpreceiver, memorylimiterprocessor, batchprocessor,
# clickhouseexporter, healthcheckextension, ... ) and each component's README.
CONTRIB_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "resource", "attributes", "filter", "transform"},
    "exporters": {"clickhouse", "debug", "otlp", "otlphttp"},
    "extensions": {"health_check", "pprof", "zpages"},
    "connectors": set(),
}

# The setup guide's service names and published ports (host -> container).
SEED_SERVICES = {"monitoring-clickhouse", "otel-collector", "litellm", "backend", "webui", "prometheus"}
SEED_PORTS = {
    "monitoring-clickhouse": {(8124, 8123)},
    "otel-collector": {(4317, 4317), (4318, 4318)},
    "litellm": {(4000, 4000)},
    "webui": {(3009, 3009)},
    "prometheus": {(9090, 9090)},
}
# What the portal reads from its environment (portal/settings.py).
PORTAL_ENV = {
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_PORT",
    "CLICKHOUSE_HTTP_PORT",
    "CLICKHOUSE_DATABASE",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "CLICKHOUSE_CONNECT_TIMEOUT",
    "CLICKHOUSE_QUERY_TIMEOUT",
    "CLICKHOUSE_TTL_DAYS",
    "DEFAULT_PROJECT_ID",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CSRF_TRUSTED_ORIGINS",
    "LITELLM_BASE_URL",
    "LITELLM_API_KEY",
}
SEED_PROJECT_ID = "8c59e361-3727-418c-bc68-086b69f7598b"

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- helpers ---------------------------------------------------------------------------------


def _load_yaml(path: Path):
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def collector() -> dict:
    return _load_yaml(COLLECTOR_CONFIG)


def _published(service: dict) -> set[tuple[int, int]]:
    """(host port, container port) of a service's short-syntax `ports`, host address ignored."""
    pairs = set()
    for entry in service.get("ports", []):
        spec = str(entry).split("/")[0]
        # Drop a leading host address, literal or ${VAR:-0.0.0.0}.
        spec = re.sub(r"^(\$\{[^}]*\}|[0-9.]+|\[[0-9a-f:]*\]):(?=\d+:\d+$)", "", spec)
        host, _, container = spec.rpartition(":")
        pairs.add((int(host), int(container)))
    return pairs


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _is_one_shot(service: dict) -> bool:
    return str(service.get("restart", "no")) == "no"


# --- the compose file ------------------------------------------------------------------------


def test_it_parses_the_compose_file_and_names_the_seed_services(services):
    assert SEED_SERVICES <= set(services), SEED_SERVICES - set(services)
    assert "postgres" in services


def test_it_publishes_the_seed_ports(services):
    for name, ports in SEED_PORTS.items():
        assert ports <= _published(services[name]), f"{name}: {services[name].get('ports')}"


def test_it_keeps_clickhouse_native_port_internal(services):
    clickhouse = services["monitoring-clickhouse"]
    assert all(container != 9000 for _, container in _published(clickhouse))
    assert "9000" in [str(p) for p in clickhouse.get("expose", [])]


def test_it_pins_every_image(services):
    for name, service in services.items():
        image = service.get("image")
        assert image or service.get("build"), f"{name} has neither image nor build"
        if not image or service.get("build"):
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image!r} is not pinned"
    assert services["monitoring-clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["otel-collector"]["image"] == COLLECTOR_IMAGE
    assert re.fullmatch(r"ghcr\.io/berriai/litellm:v1\.108\.\d+", services["litellm"]["image"])
    assert re.fullmatch(r"postgres:16\.\d+.*", services["postgres"]["image"])
    assert services["webui"]["image"].startswith("nginx:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v")


def test_it_builds_the_portal_from_the_dockerfile(services):
    for name in ("backend", "clickhouse-init"):
        build = services[name]["build"]
        assert build["context"] == "." and build["dockerfile"] == "Dockerfile"
    assert (ROOT / "Dockerfile").is_file()


def test_it_health_checks_every_long_running_service(services):
    for name, service in services.items():
        if _is_one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_it_orders_start_up_by_health(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use conditions"
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if _is_one_shot(services[dep]) else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dep}: {spec}"
    order = {
        "otel-collector": "monitoring-clickhouse",
        "litellm": "otel-collector",
        "backend": "clickhouse-init",
        "webui": "backend",
        "clickhouse-init": "monitoring-clickhouse",
    }
    for name, dep in order.items():
        assert dep in services[name]["depends_on"], f"{name} must wait for {dep}"
    assert "postgres" in services["backend"]["depends_on"]


def test_it_limits_the_collectors_resources(services, collector):
    limits = services["otel-collector"]["deploy"]["resources"]["limits"]
    assert limits.get("cpus") and limits.get("memory")
    memory_mib = int(re.fullmatch(r"(\d+)M", str(limits["memory"])).group(1))
    limiter = collector["processors"]["memory_limiter"]
    assert limiter["limit_mib"] < memory_mib, "memory_limiter must trip before the container limit"
    assert limiter["spike_limit_mib"] < limiter["limit_mib"]
    for name in ("monitoring-clickhouse", "litellm", "backend"):
        assert services[name]["deploy"]["resources"]["limits"].get("memory"), name


def test_it_gives_clickhouse_its_ulimits_volume_and_config(services):
    clickhouse = services["monitoring-clickhouse"]
    nofile = clickhouse["ulimits"]["nofile"]
    assert nofile["soft"] >= 262144 and nofile["hard"] >= 262144
    volumes = [str(v) for v in clickhouse["volumes"]]
    assert any(v.startswith("clickhouse-data:/var/lib/clickhouse") for v in volumes)
    # Files, not directories: the image's own config.d/users.d files must stay visible.
    assert any(
        v.startswith("./config/clickhouse/users.d/monitoring-users.xml:/etc/clickhouse-server/users.d/")
        for v in volumes
    )
    assert any(
        v.startswith("./config/clickhouse/config.d/monitoring.xml:/etc/clickhouse-server/config.d/") for v in volumes
    )
    env = _env(clickhouse)
    assert env.get("CLICKHOUSE_SKIP_USER_SETUP") == "1"
    # The image would turn these into an unrestricted account.
    assert "CLICKHOUSE_USER" not in env and "CLICKHOUSE_PASSWORD" not in env


def test_it_puts_prometheus_in_its_own_profile(services):
    assert services["prometheus"]["profiles"] == ["prometheus"]
    assert all("profiles" not in s for n, s in services.items() if n != "prometheus")


def test_it_passes_the_seeds_env_names(services):
    backend = _env(services["backend"])
    for name in (
        "CLICKHOUSE_HOST",
        "CLICKHOUSE_HTTP_PORT",
        "CLICKHOUSE_DATABASE",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "DEFAULT_PROJECT_ID",
    ):
        assert name in backend, name
    assert backend["CLICKHOUSE_HOST"] == "monitoring-clickhouse"
    assert backend["CLICKHOUSE_DATABASE"] == "otel_2"
    assert backend["CLICKHOUSE_HTTP_PORT"] == "8123"
    assert SEED_PROJECT_ID in backend["DEFAULT_PROJECT_ID"]

    litellm = _env(services["litellm"])
    assert litellm["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert litellm["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert litellm["OTEL_SERVICE_NAME"] == "litellm-proxy"
    assert litellm["OTEL_RESOURCE_ATTRIBUTES"].startswith("project_id=${DEFAULT_PROJECT_ID")
    assert litellm["LITELLM_MASTER_KEY"].startswith("${LITELLM_MASTER_KEY:?")


def test_it_gives_the_portal_everything_it_reads(services):
    for name in ("backend", "clickhouse-init"):
        env = _env(services[name])
        assert PORTAL_ENV <= set(env), f"{name} lacks {sorted(PORTAL_ENV - set(env))}"
    backend = _env(services["backend"])
    assert backend["PORT"] == "8000"
    assert backend["CLICKHOUSE_PORT"] == "9000"
    assert backend["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in backend["DATABASE_URL"]


def test_it_runs_the_settler_as_its_own_service_and_account(services):
    settler = services["settler"]
    assert settler["command"] == ["python", "manage.py", "settle", "--loop"]
    assert _env(settler)["CLICKHOUSE_USER"] == "portal_settler"
    assert settler["healthcheck"]["test"] == ["CMD", "python", "manage.py", "settle", "--healthcheck"]
    assert PORTAL_ENV <= set(_env(settler))


def test_it_runs_the_schema_step_with_the_ddl_account_only(services):
    backend, init = _env(services["backend"]), _env(services["clickhouse-init"])
    assert backend["CLICKHOUSE_USER"] == "portal_reader"
    assert backend["PORTAL_CLICKHOUSE_INIT"] == "0"
    assert init["CLICKHOUSE_USER"] == "portal_migrator"
    assert services["clickhouse-init"]["command"] == ["python", "manage.py", "clickhouse_init"]
    assert _env(services["otel-collector"])["CLICKHOUSE_WRITER_USER"] == "otel_writer"


def test_it_refuses_to_start_without_secrets(services):
    """ClickHouse reads a missing from_env password as NO password: compose must insist."""
    required = {
        ("monitoring-clickhouse", "CH_WRITER_PASSWORD"),
        ("monitoring-clickhouse", "CH_MIGRATOR_PASSWORD"),
        ("monitoring-clickhouse", "CH_READER_PASSWORD"),
        ("monitoring-clickhouse", "CH_SETTLER_PASSWORD"),
        ("settler", "CLICKHOUSE_PASSWORD"),
        ("otel-collector", "CLICKHOUSE_WRITER_PASSWORD"),
        ("backend", "CLICKHOUSE_PASSWORD"),
        ("clickhouse-init", "CLICKHOUSE_PASSWORD"),
        ("backend", "SECRET_KEY"),
        ("postgres", "POSTGRES_PASSWORD"),
        ("litellm", "LITELLM_MASTER_KEY"),
    }
    for service, name in required:
        value = _env(services[service])[name]
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{service}.{name} = {value!r}"


def _strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def test_env_example_defines_every_variable_compose_reads_and_no_secret(compose):
    compose_vars = {m.group(1) for text in _strings(compose) for m in _VAR_REF.finditer(text)}
    example = _env_example()
    assert compose_vars <= set(example), f"missing in .env.example: {sorted(compose_vars - set(example))}"
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|_KEY$", key) and key != "QWEN_API_KEY":
            assert "change-me" in value, f"{key} must be a change-me placeholder, not {value!r}"
    assert example["DEFAULT_PROJECT_ID"] == SEED_PROJECT_ID
    assert example["LITELLM_MASTER_KEY"].startswith("sk-") and example["LITELLM_MASTER_KEY"] != "sk-1234"


# --- the collector ---------------------------------------------------------------------------


def test_it_parses_the_collector_config(collector):
    for section in ("receivers", "processors", "exporters", "extensions", "service"):
        assert section in collector, section
    assert collector["service"]["pipelines"]


def test_every_pipeline_component_is_defined(collector):
    for pipeline, spec in collector["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in spec.get(kind, []):
                assert component in (collector.get(kind) or {}), f"{pipeline}: {kind[:-1]} {component} is not defined"
        assert spec.get("receivers") and spec.get("exporters"), pipeline
    for extension in collector["service"].get("extensions", []):
        assert extension in collector["extensions"], f"extension {extension} is not defined"


def test_every_component_type_ships_in_the_contrib_distribution(collector):
    for kind, allowed in CONTRIB_COMPONENTS.items():
        for component in collector.get(kind) or {}:
            component_type = component.split("/", 1)[0]
            assert component_type in allowed, f"{kind}: {component_type!r} is not a known contrib component"


def test_memory_limiter_comes_first_and_batch_is_the_seeds(collector):
    for pipeline, spec in collector["service"]["pipelines"].items():
        processors = spec.get("processors", [])
        assert processors and processors[0].split("/")[0] == "memory_limiter", pipeline
        assert any(p.split("/")[0] == "batch" for p in processors), pipeline
    batch = collector["processors"]["batch"]
    assert batch["timeout"] == "5s"
    assert batch["send_batch_size"] == 512


def test_the_receivers_listen_on_every_interface(collector, services):
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert collector["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    assert "13133" in " ".join(services["otel-collector"]["healthcheck"]["test"])


def test_the_clickhouse_exporter_writes_otel_2(collector, services):
    exporter = collector["exporters"]["clickhouse"]
    assert exporter["endpoint"] == "tcp://monitoring-clickhouse:9000?dial_timeout=10s"
    assert exporter["database"] == "otel_2"
    assert exporter["traces_table_name"] == "otel_traces"
    assert exporter["ttl"] == "720h"
    assert exporter["create_schema"] is True
    assert exporter["retry_on_failure"]["enabled"] is True
    assert exporter["sending_queue"]["enabled"] is True
    env = _env(services["otel-collector"])
    for key in ("username", "password"):
        ref = re.fullmatch(r"\$\{env:([A-Z_]+)\}", exporter[key])
        assert ref and ref.group(1) in env, f"{key} must come from the container environment"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["clickhouse"]
    # GenAI events are log records: the same exporter writes them into otel_logs, their event name kept.
    assert exporter["logs_table_name"] == "otel_logs"
    logs = collector["service"]["pipelines"]["logs"]
    assert logs["receivers"] == ["otlp"] and logs["exporters"] == ["clickhouse"]
    assert "transform/event_name" in logs["processors"]
    statements = collector["processors"]["transform/event_name"]["log_statements"][0]["statements"]
    assert statements == ['set(log.attributes["event.name"], log.event_name) where log.event_name != ""']


def test_the_collector_and_clickhouse_expose_metrics_to_prometheus(collector):
    readers = collector["service"]["telemetry"]["metrics"]["readers"]
    prom = readers[0]["pull"]["exporter"]["prometheus"]
    assert (prom["host"], prom["port"]) == ("0.0.0.0", 8888)
    targets = {
        job["job_name"]: target
        for job in _load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets["otel-collector"] == "otel-collector:8888"
    assert targets["clickhouse"] == "monitoring-clickhouse:9363"
    endpoint = ET.parse(CLICKHOUSE_XML).getroot().find("prometheus")
    assert endpoint.findtext("port") == "9363" and endpoint.findtext("endpoint") == "/metrics"


# --- LiteLLM ---------------------------------------------------------------------------------


def test_litellm_traces_every_call_to_the_collector(services):
    config = _load_yaml(LITELLM_CONFIG)
    settings = config["litellm_settings"]
    assert settings["success_callback"] == ["otel"] and settings["failure_callback"] == ["otel"]
    # Both lists AND callbacks: ["otel"] would register the logger twice.
    assert "otel" not in settings.get("callbacks", [])
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    (qwen,) = [m for m in config["model_list"] if m["model_name"] == "qwen-235b"]
    assert qwen["litellm_params"]["api_base"].startswith("os.environ/")
    # The config's environment_variables override the container's inside LiteLLM: keep them equal.
    env = _env(services["litellm"])
    for key, value in config["environment_variables"].items():
        assert env.get(key) == value, key
    assert "./config/litellm.yaml:/app/config.yaml:ro" in services["litellm"]["volumes"]
    assert services["litellm"]["command"][:2] == ["--config", "/app/config.yaml"]


# --- ClickHouse accounts ---------------------------------------------------------------------


def test_clickhouse_accounts_have_least_privilege(services):
    users = ET.parse(USERS_XML).getroot().find("users")
    grants = {user.tag: [q.text.strip() for q in user.iter("query")] for user in users}
    temporary = "GRANT CREATE TEMPORARY TABLE ON *.*"  # session-scoped Memory tables of the live counting
    assert grants["portal_reader"] == [
        "GRANT SELECT ON otel_2.*",
        *(f"GRANT INSERT ON otel_2.{name}" for name in ("otel_traces", "otel_logs", "otel_scores")),
        temporary,
    ]
    assert grants["portal_settler"] == [
        "GRANT SELECT ON otel_2.*",
        *(
            f"GRANT INSERT ON otel_2.{name}"
            for name in ("otel_calls", "otel_runs", "otel_run_edges", "otel_settle_state")
        ),
        temporary,
    ]
    for name in ("otel_writer", "portal_migrator"):
        assert grants[name], name
        for grant in grants[name]:
            assert grant.endswith(" ON otel_2.*") or grant.startswith("GRANT TABLE ENGINE ON "), grant
            assert not re.search(r"\b(DROP TABLE|DROP DATABASE|TRUNCATE|ALL)\b", grant), grant
    assert not any("ALTER" in g for g in grants["otel_writer"])
    default_networks = [ip.text for ip in users.find("default").find("networks")]
    assert set(default_networks) == {"::1", "127.0.0.1"}
    env = _env(services["monitoring-clickhouse"])
    for user in ("otel_writer", "portal_migrator", "portal_reader", "portal_settler"):
        password = users.find(user).find("password")
        assert password is not None and password.get("from_env") in env, user
        assert users.find(user).findtext("access_management", "0") == "0"


# --- the portal image ------------------------------------------------------------------------


def _gunicorn(monkeypatch, **env) -> dict:
    for name in ("CLICKHOUSE_HOST", "GUNICORN_WORKERS", "GUNICORN_THREADS", "PORT", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_runs_one_process_in_embedded_mode(monkeypatch):
    conf = _gunicorn(monkeypatch, GUNICORN_WORKERS="9")
    assert (conf["workers"], conf["threads"]) == (1, 8)
    assert conf["bind"] == "0.0.0.0:3009"
    assert conf["preload_app"] is False
    assert conf["timeout"] == 60 and conf["accesslog"] == "-"


def test_gunicorn_scales_with_cpus_in_server_mode(monkeypatch):
    conf = _gunicorn(monkeypatch, CLICKHOUSE_HOST="monitoring-clickhouse", PORT="8000")
    assert conf["workers"] == 2 * conf["available_cpus"]() + 1
    assert conf["threads"] == 4 and conf["bind"] == "0.0.0.0:8000"
    conf = _gunicorn(monkeypatch, CLICKHOUSE_HOST="monitoring-clickhouse", GUNICORN_WORKERS="3")
    assert conf["workers"] == 3


def test_the_image_runs_the_entrypoint_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert "pip install --no-compile -r requirements.txt" in dockerfile
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert 'ENTRYPOINT ["/app/config/portal-entrypoint.sh"]' in dockerfile
    script = ENTRYPOINT.read_text(encoding="utf-8")
    steps = [
        "python manage.py migrate",
        "python manage.py clickhouse_init",
        "python manage.py collectstatic --noinput",
        "exec config/serve.sh",
    ]
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    positions = [code.index(step) for step in steps]
    assert positions == sorted(positions), "migrate, clickhouse_init, collectstatic, then the web server"
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
    serve = (ROOT / "config" / "serve.sh").read_text(encoding="utf-8")
    assert "-m monitoring.serving" in serve and "-m gunicorn -c config/gunicorn.conf.py" in serve
    subprocess.run(["sh", "-n", str(ROOT / "config" / "serve.sh")], check=True)


def test_dockerignore_keeps_state_and_secrets_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var", ".env"} <= ignored


def test_nginx_serves_3009_and_proxies_to_the_backend(tmp_path):
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert re.search(r"^\s*listen 3009;", conf, re.M)
    assert "server backend:8000;" in conf and "proxy_pass http://portal_backend;" in conf
    assert "proxy_set_header Host $http_host;" in conf
    nginx = shutil.which("nginx")
    if nginx:  # syntax check with the upstream made resolvable
        local = conf.replace("server backend:8000;", "server 127.0.0.1:8000;").replace(
            "pid /var/run/nginx.pid;", f"pid {tmp_path}/nginx.pid;"
        )
        (tmp_path / "nginx.conf").write_text(local)
        run = subprocess.run([nginx, "-t", "-q", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


# --- the compose CLI -------------------------------------------------------------------------


def _compose_project(tmp_path: Path, env_text: str) -> Path:
    """The compose file and what it mounts, with a .env made from .env.example, in a scratch dir."""
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    (tmp_path / ".env").write_text(env_text)
    return tmp_path


def _clean_env() -> dict[str, str]:
    """No variable of ours leaks in from the caller's shell; .env alone decides."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "DOCKER_HOST", "DOCKER_CONFIG")
    return {k: v for k, v in os.environ.items() if k in keep}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=120)


def test_docker_compose_config_validates(tmp_path):
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed")
    project = _compose_project(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    run = _run([binary, "config", "-q"], project)
    assert run.returncode == 0, run.stderr
    run = _run([binary, "--profile", "prometheus", "config", "--services"], project)
    assert run.returncode == 0, run.stderr
    assert SEED_SERVICES <= set(run.stdout.split())


def test_docker_compose_refuses_a_missing_password(tmp_path):
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed")
    env_text = "".join(
        line + "\n"
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if not line.startswith("CLICKHOUSE_WRITER_PASSWORD=")
    )
    run = _run([binary, "config", "-q"], _compose_project(tmp_path, env_text))
    assert run.returncode != 0
    assert "CLICKHOUSE_WRITER_PASSWORD" in run.stderr


def test_docker_compose_v2_config_validates(tmp_path):
    docker = shutil.which("docker")
    if not docker or _run([docker, "compose", "version"], tmp_path).returncode != 0:
        pytest.skip("the docker compose v2 plugin is not installed")
    project = _compose_project(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    run = _run([docker, "compose", "--profile", "prometheus", "config", "-q"], project)
    assert run.returncode == 0, run.stderr
