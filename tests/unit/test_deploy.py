"""Static checks of the deployment files under deploy/.

Nothing here builds an image or starts a container (no Docker engine on the build machine):
the files are parsed and checked against the code they deploy — setting names against
`service.settings.ENV_NAMES`, the console script against pyproject, the dashboard's PromQL
against the metric names ftq exports.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = frozenset(ENV_NAMES.values())
SECRET_SETTINGS = frozenset(
    {"DATABASE_URL", "FIREWORKS_API_KEY", "FTQ_SECRET_KEY", "FTQ_SECRET_KEY_OLD"}
)
# Variables a deploy file may set that are not ftq settings (Python/pip runtime knobs).
RUNTIME_ENV = frozenset(
    {
        "PATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
)
PORT = 8000

# The metric names ftq exports (service/metrics). Kept here by hand: a later test should
# compare this list against the names the running app actually serves on GET /metrics.
METRICS = frozenset(
    {
        "ftq_http_requests_total",
        "ftq_http_request_seconds",
        "ftq_queue_depth",
        "ftq_gpus_quota",
        "ftq_gpus_in_use",
        "ftq_gpus_available",
        "ftq_jobs_in_progress",
        "ftq_admissions_total",
        "ftq_jobs_finished_total",
        "ftq_fireworks_errors_total",
        "ftq_tick_seconds",
        "ftq_stream_clients",
        "ftq_is_leader",
        "ftq_scheduler_paused",
        "ftq_stuck_jobs",
    }
)
HISTOGRAMS = frozenset({"ftq_http_request_seconds", "ftq_tick_seconds"})

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def _k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in _load_all(path)]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _k8s_docs() if doc.get("kind") == kind]


def _deployment() -> dict[str, Any]:
    (deployment,) = _k8s("Deployment")
    return deployment


def _compose() -> dict[str, Any]:
    (compose,) = _load_all(DEPLOY / "compose.yaml")
    return compose


def _ftq_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the ftq image (not postgres)."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).split(":")[0] == "ftq" or "build" in svc
    }


def _env_file_keys(path: Path) -> set[str]:
    keys = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keys.add(line.split("=", 1)[0].strip())
    return keys


def _assert_known(names: set[str], where: str) -> None:
    unknown = sorted(names - SETTINGS - RUNTIME_ENV)
    assert not unknown, f"{where}: unknown environment variables {unknown}"


# --- Dockerfile -----------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    stages: list[list[tuple[str, str]]] = [[]]
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, args.strip()))
    return [stage for stage in stages if stage and stage[0][0] == "FROM"]


def _instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def _dockerfile_env_names() -> set[str]:
    names = set()
    for stage in _dockerfile_stages():
        for args in _instruction(stage, "ENV"):
            tokens = shlex.split(args)
            if "=" in tokens[0]:
                names |= {token.split("=", 1)[0] for token in tokens}
            else:  # legacy `ENV KEY value`
                names.add(tokens[0])
    return names


def test_dockerfile_is_multi_stage_with_a_venv_copied_into_the_runtime() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert any("pip install ." in args for args in _instruction(builder, "RUN"))
    assert any(args.startswith("--from=") for args in _instruction(runtime, "COPY"))
    assert not any("pip install" in args for args in _instruction(runtime, "RUN"))


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    runtime = _dockerfile_stages()[-1]
    users = _instruction(runtime, "USER")
    assert users, "the runtime stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_entrypoint_is_the_ftq_console_script() -> None:
    runtime = _dockerfile_stages()[-1]
    (entrypoint,) = _instruction(runtime, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["ftq"]
    (cmd,) = _instruction(runtime, "CMD")
    assert json.loads(cmd) == ["serve", "--host", "0.0.0.0", "--port", str(PORT)]
    assert str(PORT) in _instruction(runtime, "EXPOSE")
    with (ROOT / "pyproject.toml").open("rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    assert "ftq" in scripts


def test_dockerfile_healthcheck_uses_python_on_healthz() -> None:
    runtime = _dockerfile_stages()[-1]
    (healthcheck,) = _instruction(runtime, "HEALTHCHECK")
    cmd = json.loads(healthcheck.split("CMD", 1)[1])
    assert cmd[0] == "python"
    assert f":{PORT}/healthz" in cmd[-1]
    assert "curl" not in healthcheck


def test_dockerfile_copies_the_three_packages() -> None:
    copied = " ".join(_instruction(_dockerfile_stages()[0], "COPY"))
    for needed in ("pyproject.toml", "events", "projections", "service"):
        assert needed in copied


# --- YAML -----------------------------------------------------------------------------------


def test_there_are_yaml_files_to_check() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"compose.yaml", "k8s/deployment.yaml", "k8s/kustomization.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs
    assert all(isinstance(doc, dict) for doc in docs)


# --- docker compose -------------------------------------------------------------------------


def test_compose_runs_postgres_migrate_and_two_ftq_replicas() -> None:
    services = _compose()["services"]
    assert {"postgres", "migrate", "ftq-1", "ftq-2", "fireworks-sim"} <= set(services)

    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert "healthcheck" in postgres
    assert any(str(v).endswith("/var/lib/postgresql/data") for v in postgres["volumes"])

    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    ports = set()
    for name in ("ftq-1", "ftq-2"):
        svc = services[name]
        assert svc["command"][0] == "serve"
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert ".env" in svc["env_file"]
        ports |= {str(p) for p in svc["ports"]}
    assert ports == {f"8001:{PORT}", f"8002:{PORT}"}


def test_compose_simulator_is_an_optional_profile_the_replicas_can_point_at() -> None:
    services = _compose()["services"]
    sim = services["fireworks-sim"]
    assert sim["profiles"] == ["sim"]
    command = sim["command"]
    assert command[0] == "fireworks-sim"
    sim_port = command[command.index("--port") + 1]
    for name in ("ftq-1", "ftq-2"):
        assert services[name]["depends_on"]["fireworks-sim"]["required"] is False

    sim_env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "sim.env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert sim_env["COMPOSE_PROFILES"] == "sim"
    assert sim_env["FIREWORKS_BASE_URL"] == f"http://fireworks-sim:{sim_port}"


def test_compose_env_names_are_known_settings() -> None:
    compose = _compose()
    services = _ftq_services(compose)
    assert {"migrate", "ftq-1", "ftq-2"} <= set(services)
    for name, svc in services.items():
        env = svc.get("environment", {})
        keys = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        _assert_known(keys, f"compose service {name}")
    # Variables for docker compose itself (COMPOSE_*) are not passed on as settings.
    sim_keys = {
        k for k in _env_file_keys(DEPLOY / "sim.env.example") if not k.startswith("COMPOSE_")
    }
    _assert_known(sim_keys, "sim.env.example")


# --- Kubernetes -----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_except_the_optional_servicemonitor() -> None:
    (kustomization,) = _load_all(K8S / "kustomization.yaml")
    resources = set(kustomization["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert resources == manifests - {"servicemonitor.yaml"}
    assert {
        "namespace.yaml",
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    } <= resources


def test_k8s_manifests_share_one_namespace() -> None:
    for doc in _k8s_docs():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "ftq"
        elif doc["kind"] != "Kustomization":
            assert doc["metadata"]["namespace"] == "ftq", doc["metadata"]["name"]


def test_k8s_deployment_replicas_probes_and_security() -> None:
    deployment = _deployment()
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0

    (container,) = pod["containers"]
    assert container["args"][0] == "serve"
    (port,) = container["ports"]
    assert port["containerPort"] == PORT
    probe_ports = {port["containerPort"], port.get("name")}
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert liveness["port"] in probe_ports
    assert readiness["port"] in probe_ports

    for c in [*pod["containers"], *pod["initContainers"]]:
        security = c["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "memory" in c["resources"]["limits"]
        assert c["resources"]["requests"]

    (init,) = pod["initContainers"]
    assert init["args"] == ["migrate"]
    assert init["image"] == container["image"]


def test_k8s_deployment_env_comes_from_the_configmap_and_secret() -> None:
    (configmap,) = _k8s("ConfigMap")
    secret_names = {s["metadata"]["name"] for s in _k8s("Secret")}
    pod = _deployment()["spec"]["template"]["spec"]
    for c in [*pod["containers"], *pod["initContainers"]]:
        refs = c["envFrom"]
        assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in refs
        assert {"secretRef": {"name": "ftq-secrets"}} in refs
        names = {e["name"] for e in c.get("env", [])}
        _assert_known(names, f"deployment container {c['name']}")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secret_names


def test_k8s_configmap_and_secret_hold_exactly_the_settings() -> None:
    (configmap,) = _k8s("ConfigMap")
    config_keys = set(configmap["data"])
    secrets = _k8s("Secret")
    secret_keys = set().union(*(s["stringData"] for s in secrets))
    _assert_known(config_keys, "configmap")
    _assert_known(secret_keys, "secret")
    assert config_keys <= SETTINGS
    assert secret_keys <= SETTINGS
    # secrets stay out of the ConfigMap, and together they cover every setting
    assert not config_keys & SECRET_SETTINGS
    assert secret_keys == SECRET_SETTINGS
    assert config_keys | secret_keys == SETTINGS
    assert all(isinstance(v, str) for v in configmap["data"].values())
    assert configmap["data"]["FTQ_PORT"] == str(PORT)
    for secret in secrets:
        assert "data" not in secret  # placeholders in stringData, never base64 blobs


def test_k8s_service_and_pdb_select_the_deployment_pods() -> None:
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    (service,) = _k8s("Service")
    (pdb,) = _k8s("PodDisruptionBudget")
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {"http", PORT}


def test_k8s_servicemonitor_scrapes_metrics() -> None:
    (monitor,) = _k8s("ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    (service,) = _k8s("Service")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


# --- systemd --------------------------------------------------------------------------------


def _unit(name: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file (all sections), repeated keys kept in order."""
    entries: dict[str, list[str]] = {}
    for raw in (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def _unit_env_names(unit: dict[str, list[str]]) -> set[str]:
    names = set()
    for value in unit.get("Environment", []):
        names |= {assignment.split("=", 1)[0] for assignment in shlex.split(value)}
    for command in unit.get("ExecStart", []) + unit.get("ExecStartPre", []):
        names |= set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", command))
    return names


def test_systemd_units_migrate_first_then_serve_hardened() -> None:
    service = _unit("ftq.service")
    migrate = _unit("ftq-migrate.service")
    assert migrate["Type"] == ["oneshot"]
    assert migrate["ExecStart"][0].split()[-1] == "migrate"
    assert "ftq-migrate.service" in service["Requires"][0].split()
    assert "ftq-migrate.service" in service["After"][0].split()
    assert service["ExecStart"][0].split()[1] == "serve"
    assert service["ExecStart"][0].split()[0].endswith("/ftq")
    assert service["Restart"] == ["on-failure"]
    for unit in (service, migrate):
        assert "/etc/ftq/ftq.env" in unit["EnvironmentFile"]
        assert unit["NoNewPrivileges"] == ["yes"]
        assert unit["ProtectSystem"] == ["strict"]
        assert unit["ProtectHome"] == ["yes"]
        assert unit["PrivateTmp"] == ["yes"]
        assert unit["CapabilityBoundingSet"] == [""]


def test_systemd_env_names_are_known_settings() -> None:
    for name in ("ftq.service", "ftq-migrate.service"):
        _assert_known(_unit_env_names(_unit(name)), name)


def test_dockerfile_env_names_are_known_settings() -> None:
    names = _dockerfile_env_names()
    assert "FTQ_HOST" in names
    _assert_known(names, "Dockerfile")


# --- Grafana --------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    with (DEPLOY / "grafana" / "ftq-dashboard.json").open(encoding="utf-8") as fh:
        dashboard: dict[str, Any] = json.load(fh)
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def _exprs() -> list[str]:
    return [
        target["expr"]
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _metric_names(expr: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bftq_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def test_grafana_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    panels = _panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]


def test_grafana_exprs_use_only_exported_metrics_and_cover_them_all() -> None:
    used: set[str] = set()
    for expr in _exprs():
        names = _metric_names(expr)
        assert names, f"no ftq metric in {expr!r}"
        assert names <= METRICS, f"unknown metrics {sorted(names - METRICS)} in {expr!r}"
        assert expr.count("(") == expr.count(")"), expr
        used |= names
    assert used == METRICS, f"metrics without a panel: {sorted(METRICS - used)}"


def test_grafana_histograms_are_queried_through_buckets() -> None:
    for expr in _exprs():
        if "histogram_quantile" in expr:
            assert "_bucket" in expr
        for histogram in HISTOGRAMS:
            assert not re.search(rf"\b{histogram}\b(?!_)", expr), expr
